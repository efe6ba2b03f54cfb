//! A gate in front of a TDS server that a test can close: the database's outage, for the
//! consistency checker and the SQL Server suite.

use std::time::Duration;

use tokio::sync::watch;

/// Resolves when the gate closes; never, once nobody can close it any more (the outages are
/// over).
async fn closing(is_open: &mut watch::Receiver<bool>) {
    if is_open.wait_for(|open| !*open).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `url` (a TDS server's) rewritten to reach the server through a gate, and the switch that
/// opens and closes it: a TCP forwarder on a port of its own. While the switch is false its
/// listener is closed, so new connections are refused, and every forwarded connection is cut:
/// to whoever connects through it, the database is down.
///
/// It runs on a thread and runtime of its own, so the database's traffic does not queue behind
/// the test's clients.
pub fn behind_gate(url: &str) -> (url::Url, watch::Sender<bool>) {
    let mut url = url::Url::parse(url).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(1433));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (open, is_open) = watch::channel(true);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    std::thread::spawn(move || runtime.block_on(run_gate(listener, upstream, is_open)));
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(port)).unwrap();
    (url, open)
}

async fn run_gate(
    listener: std::net::TcpListener,
    upstream: String,
    mut is_open: watch::Receiver<bool>,
) {
    let port = listener.local_addr().unwrap().port();
    let mut listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((inbound, _)) = accepted {
                        tokio::spawn(forward(inbound, upstream.clone(), is_open.clone()));
                    }
                }
                () = closing(&mut is_open) => break,
            }
        }
        drop(listener);
        // Open again (or nobody can close it any more).
        let _ = is_open.wait_for(|open| *open).await;
        listener = listen_again(port).await;
    }
}

/// One connection through the gate, until either side closes it or the gate does.
async fn forward(
    mut inbound: tokio::net::TcpStream,
    upstream: String,
    mut is_open: watch::Receiver<bool>,
) {
    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
        return;
    };
    // TDS is small requests and answers: Nagle would hold each one back until the previous one
    // is acknowledged.
    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        () = closing(&mut is_open) => {}
    }
}

/// The gate's port again, though the cut connections left it in TIME_WAIT.
async fn listen_again(port: u16) -> tokio::net::TcpListener {
    loop {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        match socket
            .bind(([127, 0, 0, 1], port).into())
            .and_then(|()| socket.listen(128))
        {
            Ok(listener) => return listener,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

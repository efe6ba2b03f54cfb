//! Issue 17, point 2 (slowloris): what one connection may hold, over real sockets. A head that
//! never finishes, a body that never finishes and an idle keep-alive connection are closed
//! after their limits; connections beyond the cap wait until one closes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn limits() -> Options {
    Options::default()
        .set("MANGO_HEADER_READ_TIMEOUT_SECS", "0.5")
        .set("MANGO_BODY_READ_TIMEOUT_SECS", "0.5")
        .set("MANGO_KEEP_ALIVE_TIMEOUT_SECS", "1.5")
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (answers what it sent), or gives up after
/// `within`, answering `None`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&all).into_owned()),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn half_a_request_line_is_closed_after_the_header_timeout() {
    let app = spawn_with(limits()).await;
    let mut stream = connect(&app).await;
    let started = Instant::now();
    stream.write_all(b"GET /api/v1/serv").await.unwrap();
    let closed = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "still open after 5 s");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );

    // Headers dribbled one line at a time are no better: the limit is on the whole head.
    let mut stream = connect(&app).await;
    let started = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut closed = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if stream.write_all(b"x-slow: 1\r\n").await.is_err() {
            closed = true;
            break;
        }
    }
    if !closed {
        closed = read_until_closed(&mut stream, Duration::from_secs(3))
            .await
            .is_some();
    }
    assert!(closed && started.elapsed() < Duration::from_secs(3));

    // A connection that never says anything is closed too.
    let mut silent = connect(&app).await;
    assert!(
        read_until_closed(&mut silent, Duration::from_secs(3))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_answered_408() {
    let app = spawn_with(limits()).await;
    let mut stream = connect(&app).await;
    let started = Instant::now();
    stream
        .write_all(
            b"POST /api/v1/booking/draft HTTP/1.1\r\nhost: x\r\nx-store-id: salon\r\n\
              content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"name\":",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("closed within 5 s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_with(limits()).await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    // Idle for longer than the header timeout is fine: it only runs once a head starts.
    tokio::time::sleep(Duration::from_millis(800)).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle_from_2 = Instant::now();
    assert!(
        read_until_closed(&mut stream, Duration::from_secs(5))
            .await
            .is_some(),
        "still open after 5 s idle"
    );
    let idle = idle_from_2.elapsed();
    assert!(
        idle >= Duration::from_millis(1400) && idle < Duration::from_secs(4),
        "closed after {idle:?} idle"
    );
    assert!(idle_from.elapsed() > Duration::from_millis(2000));
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let app = spawn_with(
        Options::default()
            .set("MANGO_MAX_CONNECTIONS", "2")
            .set("MANGO_KEEP_ALIVE_TIMEOUT_SECS", "0.2")
            .set("MANGO_HEADER_READ_TIMEOUT_SECS", "30"),
    )
    .await;
    // The harness's own keep-alive connection (it created the store) closes while idle.
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Two connections that hold their slots (each mid-way through a request head).
    let mut first = connect(&app).await;
    first.write_all(b"GET /heal").await.unwrap();
    let mut second = connect(&app).await;
    second.write_all(b"GET /heal").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let client = reqwest::Client::new();
    let url = app.url("/healthz");
    let third = tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!third.is_finished(), "a third connection was served");

    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a slot was free")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    drop(second);
}

/// The figure: 200 connections that each sent half a request line were all still open
/// after 85 s. Now all are closed within the header timeout (plus scheduling), and the service
/// answers throughout.
#[tokio::test]
async fn two_hundred_slow_heads_are_all_closed_within_the_header_timeout() {
    let app = spawn_with(limits()).await;
    let started = Instant::now();
    let mut streams = Vec::new();
    for _ in 0..200 {
        let mut stream = connect(&app).await;
        stream.write_all(b"GET /api/v1/services HTT").await.unwrap();
        streams.push(stream);
    }
    let (status, _, _) = parts(app.get("/healthz").await).await;
    assert_eq!(status, 200);
    let closed = futures::future::join_all(
        streams
            .iter_mut()
            .map(|s| read_until_closed(s, Duration::from_secs(5))),
    )
    .await;
    let took = started.elapsed();
    assert!(closed.iter().all(Option::is_some), "some still open");
    eprintln!("200 slow heads closed after {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

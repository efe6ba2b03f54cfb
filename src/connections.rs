//! The accept loop and what every connection is allowed: a cap on open connections, a time
//! limit on a request's head, on its body and on an idle keep-alive connection, and graceful
//! shutdown.
//!
//! `axum::serve` runs hyper without a timer, so a client that sends half a request line holds a
//! connection (and its task and buffers) forever. hyper's own `header_read_timeout` cannot
//! express "idle for 60 s, but a started head must finish in 10 s" (its timer starts as soon as
//! a connection is idle), so each connection has a small watchdog instead: the socket records
//! when a new head starts arriving, the service records when a request is in flight and when
//! it ended, and the watchdog (in the connection's own task) closes the connection at whichever
//! deadline applies. Per request that costs a few atomics and one timer reset, and nothing is
//! allocated beyond what `axum::serve` allocated (the body box); a request with a body gets a
//! timer of its own.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::Service;

/// What a connection may take (`MANGO_HEADER_READ_TIMEOUT_SECS`, `MANGO_BODY_READ_TIMEOUT_SECS`,
/// `MANGO_KEEP_ALIVE_TIMEOUT_SECS`, `MANGO_MAX_CONNECTIONS`).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// From the first byte of a request to the end of its head.
    pub header_read_timeout: Duration,
    /// From the end of the head to the end of the body.
    pub body_read_timeout: Duration,
    /// How long a connection may sit idle between requests (and before its first).
    pub keep_alive_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

/// The body of a request stopped arriving before `body_read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the time limit")]
pub struct BodyReadTimeout;

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, closes idle
/// connections, and waits for the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Dropped when serving stops: every connection then shuts down gracefully. Each connection
    // holds a receiver of `closed`, so `closed_tx.closed()` resolves when the last one is done.
    let (stop_tx, stop_rx) = watch::channel(());
    let (closed_tx, closed_rx) = watch::channel(());
    let limits = Arc::new(limits);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = Connection {
            router: router.clone(),
            limits: limits.clone(),
            stop: stop_rx.clone(),
            _closed: closed_rx.clone(),
            _slot: slot,
        };
        tokio::spawn(connection.run(stream, addr));
    }
    drop(listener);
    drop(stop_tx);
    drop(closed_rx);
    closed_tx.closed().await;
    Ok(())
}

struct Connection {
    router: Router,
    limits: Arc<ConnectionLimits>,
    stop: watch::Receiver<()>,
    _closed: watch::Receiver<()>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, addr: SocketAddr) {
        // An answer is written whole; Nagle's algorithm would only hold its tail back until
        // the client acknowledges the previous one (a delayed ACK: up to 40 ms).
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(WatchedIo {
            inner: stream,
            activity: activity.clone(),
        });
        let service = ConnService {
            router: self.router.clone(),
            addr,
            activity: activity.clone(),
            body_read_timeout: self.limits.body_read_timeout,
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.keep_alive(true);
        let mut conn = std::pin::pin!(builder.serve_connection(io, service));
        let limits = self.limits.clone();
        let mut stopping = false;
        let mut timer = std::pin::pin!(tokio::time::sleep_until(
            activity.next_deadline(&limits).0.into()
        ));
        loop {
            tokio::select! {
                // The connection first, so a head that started during this poll is seen by the
                // next branch in the same round.
                biased;
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                    return;
                }
                // A head started: its deadline may be nearer than the one the timer is set to
                // (an idle connection's). One timer reset per request, as hyper's own header
                // timer would cost; no task wake-up, no lock.
                () = std::future::poll_fn(|_| activity.take_head_started()) => {
                    let (deadline, _) = activity.next_deadline(&limits);
                    if tokio::time::Instant::from(deadline) < timer.deadline() {
                        timer.as_mut().reset(deadline.into());
                    }
                }
                _ = self.stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = timer.as_mut() => {
                    let (deadline, expiry) = activity.next_deadline(&limits);
                    let mut next = deadline;
                    if deadline <= Instant::now() {
                        match expiry {
                            // Half a request: nothing worth a graceful goodbye.
                            Expiry::Head => {
                                tracing::debug!("request head not received in time; closing");
                                return;
                            }
                            Expiry::Idle => conn.as_mut().graceful_shutdown(),
                            Expiry::Recheck => {}
                        }
                        next = Instant::now() + limits.keep_alive_timeout;
                    }
                    timer.as_mut().reset(next.into());
                }
            }
        }
    }
}

/// What a connection is doing, as its socket and its service see it. Times are milliseconds
/// since the connection was accepted.
struct Activity {
    accepted: Instant,
    in_flight: AtomicU32,
    /// Whether any request has reached the service (until then, even silence is a slow head).
    served: AtomicBool,
    /// A byte arrived while no request was in flight: a head is on its way.
    head_in_progress: AtomicBool,
    head_started_ms: AtomicU64,
    idle_since_ms: AtomicU64,
    /// Raised when a head starts, taken by the watchdog.
    head_signal: AtomicBool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expiry {
    Head,
    Idle,
    /// A request is in flight; look again later.
    Recheck,
}

impl Activity {
    fn new() -> Self {
        Self {
            accepted: Instant::now(),
            in_flight: AtomicU32::new(0),
            served: AtomicBool::new(false),
            head_in_progress: AtomicBool::new(false),
            head_started_ms: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_signal: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.accepted.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.accepted + Duration::from_millis(ms)
    }

    fn next_deadline(&self, limits: &ConnectionLimits) -> (Instant, Expiry) {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // A handler's time is bounded by its own timeouts and the body by its timer; the
            // watchdog only looks again once the request may have ended.
            return (Instant::now() + limits.keep_alive_timeout, Expiry::Recheck);
        }
        if self.head_in_progress.load(Ordering::Acquire) {
            let started = self.head_started_ms.load(Ordering::Acquire);
            return (self.at(started) + limits.header_read_timeout, Expiry::Head);
        }
        if !self.served.load(Ordering::Acquire) {
            return (self.at(0) + limits.header_read_timeout, Expiry::Head);
        }
        let idle = self.idle_since_ms.load(Ordering::Acquire);
        (self.at(idle) + limits.keep_alive_timeout, Expiry::Idle)
    }

    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && !self.head_in_progress.load(Ordering::Acquire)
        {
            self.head_started_ms.store(self.now_ms(), Ordering::Release);
            self.head_in_progress.store(true, Ordering::Release);
            self.head_signal.store(true, Ordering::Release);
        }
    }

    fn take_head_started(&self) -> Poll<()> {
        if self.head_signal.load(Ordering::Acquire)
            && self.head_signal.swap(false, Ordering::AcqRel)
        {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.store(true, Ordering::Release);
        self.head_in_progress.store(false, Ordering::Release);
    }

    fn request_ended(&self) {
        self.idle_since_ms.store(self.now_ms(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket, reporting the first byte of each request head to the watchdog.
struct WatchedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.on_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router as hyper calls it: with the peer address (`ConnectInfo<SocketAddr>`, as
/// `into_make_service_with_connect_info` gave it), the body under its timer, and the request
/// counted in flight until its response is ready.
#[derive(Clone)]
struct ConnService {
    router: Router,
    addr: SocketAddr,
    activity: Arc<Activity>,
    body_read_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = InFlight;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        let mut unread = None;
        let mut request = if request.body().is_end_stream() {
            request.map(Body::new)
        } else {
            let timeout = self.body_read_timeout;
            let slot = Unread::default();
            unread = Some(slot.clone());
            request.map(|body| {
                Body::new(ReturnedBody {
                    inner: Some(Box::pin(TimedBody::new(body, timeout))),
                    unread: slot,
                })
            })
        };
        request.extensions_mut().insert(ConnectInfo(self.addr));
        InFlight {
            inner: self.router.clone().call(request),
            guard: InFlightGuard(self.activity.clone()),
            unread,
            draining: None,
        }
    }
}

/// How much of a body its handler left unread is read and thrown away after the answer, so
/// the connection can serve the next request. Past it (or past the body timeout) the answer
/// says `Connection: close` instead.
const DRAIN_LIMIT: u64 = 1024 * 1024;

/// Where a request body its handler dropped unread is handed back to the connection.
type Unread = Arc<std::sync::Mutex<Option<Pin<Box<TimedBody>>>>>;

/// The request body as handlers see it. Dropped before its end (a handler that answers
/// without reading it: a 405, a 401 before the JSON, a 413, the key rotation, which takes no
/// body), it hands the rest back to the connection instead of dropping it. Dropping it would
/// tell hyper nobody wants the body, and hyper then reads only what has already arrived and,
/// if the body is not complete, closes the connection after the answer, without saying
/// `Connection: close`: a client that wrote the head and the body separately found its
/// pooled connection dead at the next request (issue 16).
struct ReturnedBody {
    inner: Option<Pin<Box<TimedBody>>>,
    unread: Unread,
}

impl HttpBody for ReturnedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut().inner.as_mut() {
            Some(body) => body.as_mut().poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for ReturnedBody {
    fn drop(&mut self) {
        if let Some(body) = self.inner.take()
            && !body.is_end_stream()
            && let Ok(mut slot) = self.unread.lock()
        {
            *slot = Some(body);
        }
    }
}

struct InFlightGuard(Arc<Activity>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

pin_project_lite::pin_project! {
    /// The router's future, then the draining of a body its handler left unread; the request
    /// stops counting as in flight when it is dropped.
    pub struct InFlight {
        #[pin]
        inner: axum::routing::future::RouteFuture<Infallible>,
        guard: InFlightGuard,
        unread: Option<Unread>,
        draining: Option<Draining>,
    }
}

struct Draining {
    response: Option<Response<Body>>,
    body: Pin<Box<TimedBody>>,
    drained: u64,
}

impl Future for InFlight {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(draining) = this.draining else {
            let response = ready!(this.inner.poll(cx))?;
            let body = this
                .unread
                .take()
                .and_then(|slot| slot.lock().ok().and_then(|mut b| b.take()));
            let Some(body) = body else {
                return Poll::Ready(Ok(response));
            };
            if body.size_hint().lower() > DRAIN_LIMIT {
                return Poll::Ready(Ok(closing(response)));
            }
            *this.draining = Some(Draining {
                response: Some(response),
                body,
                drained: 0,
            });
            return poll_draining(this.draining.as_mut().expect("just set"), cx);
        };
        poll_draining(draining, cx)
    }
}

/// Reads and discards the rest of an unread body, then answers; `Connection: close` when the
/// rest is too long, broken or late.
fn poll_draining(
    draining: &mut Draining,
    cx: &mut Context<'_>,
) -> Poll<Result<Response<Body>, Infallible>> {
    loop {
        let keep_alive = match ready!(draining.body.as_mut().poll_frame(cx)) {
            None => true,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    draining.drained += data.len() as u64;
                }
                if draining.drained <= DRAIN_LIMIT {
                    continue;
                }
                false
            }
            Some(Err(_)) => false,
        };
        let response = draining.response.take().expect("answered once");
        return Poll::Ready(Ok(if keep_alive {
            response
        } else {
            closing(response)
        }));
    }
}

/// The answer, telling the client that this connection ends with it (hyper then closes it).
fn closing(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

pin_project_lite::pin_project! {
    /// A request body that must arrive in full before its deadline.
    struct TimedBody {
        #[pin]
        inner: Incoming,
        #[pin]
        deadline: tokio::time::Sleep,
    }
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: tokio::time::sleep(timeout),
        }
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(this.deadline.poll(cx));
        Poll::Ready(Some(Err(BodyReadTimeout.into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

//! The one layer every request passes through once routed: its request id, its log context
//! (with the matched route, never the raw path), the route's metrics, problem+json for the
//! framework's own errors, and a handler's panic turned into a 500.
//!
//! Written by hand rather than with `from_fn` and stacked tower-http layers: `Router::layer`
//! boxes the service and its future once per layer per request, and `from_fn` boxes again, so
//! on a cache HIT those allocations cost more than the cache lookup. This is one layer with a
//! plain future.
//!
//! The log context is not a `tracing` span. A span per request, with its fields formatted when
//! it is created and again when the store is recorded, cost more than everything else mango
//! adds to a cache HIT, for log lines that a HIT never writes. Instead the request's
//! [`RequestInfo`] is current on this thread while its future is polled, and the log formatter
//! (`telemetry`) adds it to every line written meanwhile: the same fields, paid for only by the
//! lines that are written.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::error::{ApiError, PROBLEM_JSON, problem_response};
use crate::telemetry;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Paths under this are the storefront API, the only routes that answer CORS headers.
pub const STOREFRONT_PREFIX: &str = "/api/v1/";

const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");
const EXPOSED: HeaderValue = HeaderValue::from_static("etag, x-cache, x-request-id");

/// Label for requests no route matched.
const UNMATCHED: &str = "unmatched";

#[derive(Clone, Copy, Debug, Default)]
pub struct RequestContextLayer;

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContext { inner }
    }
}

#[derive(Clone, Debug)]
pub struct RequestContext<S> {
    inner: S,
}

impl<S> Service<Request> for RequestContext<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let request_id = request
            .headers()
            .get(&X_REQUEST_ID)
            .filter(|v| telemetry::is_acceptable_request_id(v.as_bytes()))
            .cloned()
            .unwrap_or_else(telemetry::new_request_id);
        // CORS (CONTRACT §14) concerns storefront routes only, and costs nothing more than this
        // lookup for a request without `Origin`.
        let origin = if request.uri().path().starts_with(STOREFRONT_PREFIX) {
            request.headers().get(header::ORIGIN).cloned()
        } else {
            None
        };
        let info = Arc::new(RequestInfo {
            id: request_id,
            method: request.method().clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
            store: OnceLock::new(),
            origin,
            origin_allowed: AtomicBool::new(false),
        });
        let inner = {
            let _current = Current::enter(&info);
            catch_unwind(AssertUnwindSafe(|| self.inner.call(request))).ok()
        };
        ResponseFuture {
            inner,
            finish: Some(Finish { info, started }),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct ResponseFuture<F> {
        // `None` when the handler panicked before it returned a future.
        #[pin]
        inner: Option<F>,
        finish: Option<Finish>,
    }
}

struct Finish {
    info: Arc<RequestInfo>,
    started: Instant,
}

/// What every log line written while serving a request says about it.
#[derive(Debug)]
pub struct RequestInfo {
    id: HeaderValue,
    method: Method,
    route: Option<MatchedPath>,
    store: OnceLock<Arc<str>>,
    /// The `Origin` of a storefront request, if it sent one.
    origin: Option<HeaderValue>,
    /// Set once the resolved store (or a preflight) allows that origin.
    origin_allowed: AtomicBool,
}

impl RequestInfo {
    /// The request id (printable ASCII: generated, or a client's that passed the check).
    pub fn id(&self) -> &str {
        self.id.to_str().unwrap_or_default()
    }

    pub fn method(&self) -> &str {
        self.method.as_str()
    }

    /// The matched route pattern, or `unmatched`.
    pub fn route(&self) -> &str {
        self.route.as_ref().map_or(UNMATCHED, MatchedPath::as_str)
    }

    /// The store's slug, once the request has been resolved to one.
    pub fn store(&self) -> Option<&str> {
        self.store.get().map(|s| &**s)
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<RequestInfo>>> = const { RefCell::new(None) };
}

/// Makes a request current on this thread until dropped (then restores what was current).
struct Current(Option<Arc<RequestInfo>>);

impl Current {
    fn enter(info: &Arc<RequestInfo>) -> Self {
        Self(CURRENT.with(|current| current.replace(Some(info.clone()))))
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

/// The request being served on this thread, if any (for the log formatter).
pub fn current() -> Option<Arc<RequestInfo>> {
    CURRENT.with(|current| current.borrow().clone())
}

/// Notes which store the current request is for; its later log lines carry the slug.
pub fn record_store(slug: &Arc<str>) {
    CURRENT.with(|current| {
        if let Some(info) = &*current.borrow() {
            let _ = info.store.set(slug.clone());
        }
    });
}

/// For a storefront request with an `Origin`: asks `allows` about it, and if it answers yes,
/// the answer will carry `Access-Control-Allow-Origin` (whatever its status). Does nothing,
/// and calls nothing, for a request without `Origin`.
pub fn check_origin(allows: impl FnOnce(&str) -> bool) {
    CURRENT.with(|current| {
        if let Some(info) = &*current.borrow()
            && let Some(origin) = &info.origin
            && origin.to_str().is_ok_and(allows)
        {
            info.origin_allowed.store(true, Ordering::Relaxed);
        }
    });
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let finish = this.finish.as_ref().expect("polled after completion");
        let _current = Current::enter(&finish.info);
        let response = match this.inner.as_pin_mut() {
            None => None,
            Some(inner) => match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
                Ok(Poll::Ready(Ok(response))) => Some(response),
                Ok(Poll::Pending) => return Poll::Pending,
                Err(_) => None,
            },
        };
        let finish = this.finish.take().expect("polled after completion");
        let response = response.unwrap_or_else(|| {
            tracing::error!("a handler panicked");
            ApiError::internal(anyhow::anyhow!("handler panicked")).into_response()
        });
        Poll::Ready(Ok(finish.finish(response)))
    }
}

impl Finish {
    fn finish(self, response: Response) -> Response {
        let mut response = problem_for_framework_errors(response);
        let status = response.status().as_u16();
        let elapsed = self.started.elapsed();
        telemetry::record_request(self.info.route(), status, elapsed);
        tracing::debug!(status, elapsed_ms = elapsed.as_millis() as u64, "answered");
        let headers = response.headers_mut();
        headers.insert(X_REQUEST_ID, self.info.id.clone());
        if let Some(origin) = &self.info.origin {
            headers.append(header::VARY, VARY_ORIGIN);
            if self.info.origin_allowed.load(Ordering::Relaxed) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED);
            }
        }
        response
    }
}

/// Rewrites error answers that did not come from `ApiError` (the router's 405, a layer's 413,
/// an extractor's 415) into problem+json, so clients meet one error format.
fn problem_for_framework_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if is_problem {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no route matches this path"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "the method is not allowed on this route",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("invalid_request", "unsupported content type"),
        s if s.is_client_error() => ("invalid_request", "the request could not be understood"),
        _ => (
            "internal_error",
            "an internal error occurred; it has been logged",
        ),
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut problem = problem_response(status, code, detail);
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn answer(layer_input: Request, handler: fn() -> Response) -> Response {
        let service = RequestContextLayer.layer(tower::service_fn(move |_req: Request| {
            let response = handler();
            async move { Ok::<_, Infallible>(response) }
        }));
        service.oneshot(layer_input).await.unwrap()
    }

    fn get() -> Request {
        Request::builder().uri("/x").body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_handler_panicking_when_called_becomes_a_problem_500_with_a_request_id() {
        let response = answer(get(), || panic!("boom")).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[&X_REQUEST_ID].len(), 32);
    }

    #[tokio::test]
    async fn a_handler_panicking_while_polled_becomes_a_problem_500() {
        let service = RequestContextLayer.layer(tower::service_fn(|_req: Request| async {
            tokio::task::yield_now().await;
            panic!("boom");
            #[allow(unreachable_code)]
            Ok::<Response, Infallible>(Response::default())
        }));
        let response = service.oneshot(get()).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[&X_REQUEST_ID].len(), 32);
    }

    #[tokio::test]
    async fn a_client_request_id_is_echoed_only_when_acceptable() {
        let mut request = get();
        request
            .headers_mut()
            .insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        let response = answer(request, || StatusCode::NO_CONTENT.into_response()).await;
        assert_eq!(response.headers()[&X_REQUEST_ID], "abc-123");

        let mut request = get();
        request
            .headers_mut()
            .insert(&X_REQUEST_ID, HeaderValue::from_static("has space"));
        let response = answer(request, || StatusCode::NO_CONTENT.into_response()).await;
        assert_ne!(response.headers()[&X_REQUEST_ID], "has space");
    }

    #[tokio::test]
    async fn framework_errors_become_problem_json_and_keep_allow() {
        let response = answer(get(), || {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, "GET,HEAD")],
                "plain",
            )
                .into_response()
        })
        .await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[header::ALLOW], "GET,HEAD");
    }
}

//! The application: shared state, the router with its middleware, and `serve`, which takes an
//! already-bound listener so tests run the real thing on port 0.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::biz::BizClient;
use crate::catalog::CatalogCache;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::db::Db;
use crate::error::{ApiError, PROBLEM_JSON, problem_response};
use crate::telemetry;
use crate::tenant::TenantResolver;

/// Request bodies larger than this get 413 `payload_too_large` (CONTRACT §4).
pub const BODY_LIMIT: usize = 256 * 1024;

/// What every handler shares. Cloned per request by `State`, so it is one `Arc`: one atomic
/// increment, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Arc<Config>,
    pub db: Db,
    pub biz: BizClient,
    pub catalog: CatalogCache,
    pub tenants: TenantResolver,
    pub clock: SharedClock,
    /// Today's analytics salt, remembered between requests.
    pub salts: crate::analytics::DailySalts,
    /// Booking confirms in flight in this process (joined by concurrent confirms).
    pub confirms: crate::booking::ConfirmFlights,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(config: Config, db: Db) -> anyhow::Result<Self> {
        Self::with_clock(config, db, Arc::new(SystemClock))
    }

    pub fn with_clock(config: Config, db: Db, clock: SharedClock) -> anyhow::Result<Self> {
        // Metric handles created below must find the recorder installed.
        telemetry::metrics_handle();
        let biz = BizClient::new(&config.biz)?;
        let catalog =
            CatalogCache::new(db.clone(), biz.clone(), clock.clone(), config.cache.clone());
        let tenants = TenantResolver::new(db.clone(), &config.base_domain);
        Ok(Self(Arc::new(Shared {
            config: Arc::new(config),
            db,
            biz,
            catalog,
            tenants,
            clock,
            salts: Default::default(),
            confirms: Default::default(),
        })))
    }
}

/// A router that remembers its path patterns, so a test can hold the OpenAPI document to
/// every route the service really has.
#[derive(Default)]
pub struct ApiRouter {
    router: Router<AppState>,
    paths: Vec<&'static str>,
}

impl ApiRouter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn route(mut self, path: &'static str, method_router: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, method_router);
        self.paths.push(path);
        self
    }

    pub fn merge(mut self, other: ApiRouter) -> Self {
        self.router = self.router.merge(other.router);
        self.paths.extend(other.paths);
        self
    }
}

fn api_routes() -> ApiRouter {
    ApiRouter::new()
        .merge(crate::catalog::routes())
        .merge(crate::webhooks::routes())
        .merge(crate::booking::routes())
        .merge(crate::analytics::routes())
        .merge(crate::admin::routes())
        .merge(crate::ops::routes())
}

/// Every route's path pattern (for the OpenAPI completeness test).
pub fn route_paths() -> Vec<&'static str> {
    api_routes().paths
}

pub fn router(state: AppState) -> Router {
    api_routes()
        .router
        .fallback(|| async { ApiError::NotFound("no route matches this path".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .route_layer(middleware::from_fn(record_route))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            ApiError::internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(middleware::from_fn(request_context))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Other instances' invalidations reach this one's memory through the shared database.
    let feed = tokio::spawn(crate::catalog::feed::tail(
        state.db.clone(),
        state.catalog.clone(),
    ));
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    feed.abort();
    served?;
    Ok(())
}

/// Serves until `shutdown` resolves, then drains in-flight requests for at most `grace`: a
/// request stuck on a hung upstream must not hold a deploy hostage.
pub async fn serve_with_grace(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: std::time::Duration,
) -> anyhow::Result<()> {
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let server = serve(state, listener, async move {
        shutdown.await;
        let _ = signalled.send(());
    });
    let deadline = async move {
        match on_signal.await {
            Ok(()) => tokio::time::sleep(grace).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over; exiting with requests still in flight");
            Ok(())
        }
    }
}

/// `x-request-id` in and out, one span per request, problem+json for the framework's own
/// errors, and the request metrics: one middleware, so one boxed future per request.
async fn request_context(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .filter(|v| telemetry::is_acceptable_request_id(v.as_bytes()))
        .cloned()
        .unwrap_or_else(telemetry::new_request_id);
    let span = tracing::info_span!(
        "request",
        request_id = %request_id.to_str().unwrap_or(""),
        method = %request.method(),
        route = tracing::field::Empty,
        store = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let mut response =
        problem_for_framework_errors(next.run(request).instrument(span.clone()).await);
    let status = response.status().as_u16();
    span.record("status", status);
    let route = response.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    telemetry::record_request(route, status, started.elapsed());
    span.in_scope(|| {
        tracing::debug!(
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "answered"
        )
    });
    response.headers_mut().insert("x-request-id", request_id);
    response
}

/// Runs after routing, so the matched pattern (never the raw path) labels the metrics; it
/// hands the pattern back out on the response (a cheap clone of a shared string).
async fn record_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    if let Some(route) = &route {
        tracing::Span::current().record("route", route.as_str());
    }
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

/// Rewrites error answers that did not come from `ApiError` (the router's 405, a layer's 413,
/// a panic's 500) into problem+json, so clients meet one error format.
fn problem_for_framework_errors(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
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

//! The application: shared state, the router with its middleware, and `serve`, which takes an
//! already-bound listener so tests run the real thing on port 0.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::MethodRouter;
use tokio::net::TcpListener;

use crate::biz::BizClient;
use crate::catalog::CatalogCache;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::context::RequestContextLayer;
use crate::db::Db;
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
    /// Rate limits of the public write routes.
    pub rate_limits: crate::ratelimit::RateLimiter,
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
        let catalog = CatalogCache::new(
            db.clone(),
            biz.clone(),
            clock.clone(),
            config.cache.clone(),
            config.resources.clone(),
        );
        let tenants = TenantResolver::new(db.clone(), &config.base_domain);
        let rate_limits = crate::ratelimit::RateLimiter::new(config.rate_limits.clone());
        Ok(Self(Arc::new(Shared {
            config: Arc::new(config),
            db,
            biz,
            catalog,
            tenants,
            clock,
            salts: Default::default(),
            confirms: Default::default(),
            rate_limits,
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
        .merge(crate::availability::routes())
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
        .merge(crate::web::routes())
        // Both also answer CORS preflights (`cors`).
        .fallback(crate::cors::not_found)
        .method_not_allowed_fallback(crate::cors::method_not_allowed)
        // One `layer` call: axum boxes every route's service once per call.
        .layer(
            tower::ServiceBuilder::new()
                .layer(RequestContextLayer)
                .layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Other instances' invalidations reach this one's memory through the shared database;
    // memory is served only under the lease the tailer keeps (`catalog::feed`).
    crate::catalog::feed::join(&state.catalog).await;
    let feed = tokio::spawn(crate::catalog::feed::tail(state.catalog.clone()));
    let catalog = state.catalog.clone();
    // And their store-settings changes reach its store lookups.
    let settings_feed = tokio::spawn(crate::tenant::tail_store_changes(
        state.db.clone(),
        state.tenants.clone(),
    ));
    let limits = state.config.connections.clone();
    // Handlers read `ConnectInfo<SocketAddr>`, which `connections` inserts per request.
    let served = crate::connections::serve(listener, router(state), limits, shutdown).await;
    feed.abort();
    settings_feed.abort();
    crate::catalog::feed::leave(&catalog).await;
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

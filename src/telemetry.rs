//! Logs (tracing, text or JSON lines), Prometheus metrics, request ids.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::HeaderValue;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Installs the global subscriber; JSON lines when asked. Safe to call twice (tests).
pub fn init_logging(config: &LogConfig) -> anyhow::Result<()> {
    let mut filter = EnvFilter::try_new(&config.filter)
        .map_err(|e| anyhow::anyhow!("MANGO_LOG: invalid filter {:?}: {e}", config.filter))?;
    // tiberius narrates every connection (TLS handshake, database context, collation) at info;
    // keep that to warnings unless MANGO_LOG asks for it by name.
    if !config.filter.contains("tiberius") {
        filter = filter.add_directive("tiberius=warn".parse()?);
    }
    // Colour codes only for a person at a terminal: they cost formatting on every span.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stdout);
    let result = if config.json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    // A second initialisation in one process (tests) keeps the first subscriber.
    drop(result);
    Ok(())
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide metrics recorder, installed on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed, in which case metrics go there.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Per-route handles, resolved once per worker thread: the request path then costs two
/// atomic increments, no label hashing in the shared registry, no allocation.
struct RouteMetrics {
    by_class: [metrics::Counter; 5],
    duration: metrics::Histogram,
}

thread_local! {
    static ROUTE_METRICS: std::cell::RefCell<std::collections::HashMap<String, RouteMetrics>> =
        std::cell::RefCell::default();
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

pub fn record_request(route: &str, status: u16, elapsed: Duration) {
    let class = usize::from((status / 100).clamp(1, 5) - 1);
    ROUTE_METRICS.with_borrow_mut(|routes| {
        if !routes.contains_key(route) {
            let owned = route.to_string();
            let handles = RouteMetrics {
                by_class: STATUS_CLASSES.map(|c| {
                    metrics::counter!("mango_http_requests_total", "route" => owned.clone(), "status" => c)
                }),
                duration: metrics::histogram!("mango_http_request_duration_seconds", "route" => owned.clone()),
            };
            routes.insert(owned, handles);
        }
        let handles = &routes[route];
        handles.by_class[class].increment(1);
        handles.duration.record(elapsed.as_secs_f64());
    });
}

/// A client's request id is echoed only if it is short and printable.
pub fn is_acceptable_request_id(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= 128 && value.iter().all(|b| b.is_ascii_graphic())
}

/// 32 hex digits: a random per-process prefix and a counter. Unique across instances and
/// restarts without drawing random bytes per request (ids need not be unguessable).
pub fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(rand::random);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    HeaderValue::from_str(&format!("{prefix:016x}{n:016x}")).expect("hex is a valid header value")
}

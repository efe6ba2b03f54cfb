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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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

pub fn record_request(route: &str, status: u16, elapsed: Duration) {
    let status_class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("mango_http_requests_total", "route" => route.to_string(), "status" => status_class)
        .increment(1);
    metrics::histogram!("mango_http_request_duration_seconds", "route" => route.to_string())
        .record(elapsed.as_secs_f64());
}

/// A client's request id is echoed only if it is short and printable.
pub fn is_acceptable_request_id(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= 128 && value.iter().all(|b| b.is_ascii_graphic())
}

pub fn new_request_id() -> HeaderValue {
    let bytes: [u8; 16] = rand::random();
    HeaderValue::from_str(&hex::encode(bytes)).expect("hex is a valid header value")
}

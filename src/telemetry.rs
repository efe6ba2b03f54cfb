//! Logs (tracing, text or JSON lines), Prometheus metrics, request ids.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::HeaderValue;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogConfig;
use crate::context;

/// Installs the global subscriber; JSON lines when asked. Safe to call twice (tests).
pub fn init_logging(config: &LogConfig) -> anyhow::Result<()> {
    let mut filter = EnvFilter::try_new(&config.filter)
        .map_err(|e| anyhow::anyhow!("MANGO_LOG: invalid filter {:?}: {e}", config.filter))?;
    // tiberius narrates every connection (TLS handshake, database context, collation) at info,
    // and logs every error the server sends at error, expected ones too (a duplicate key is
    // how a duplicate webhook is recognised); the errors that matter reach our own logs with
    // their context. Keep tiberius to warnings unless MANGO_LOG asks for it by name.
    if !config.filter.contains("tiberius") {
        filter = filter
            .add_directive("tiberius=warn".parse()?)
            .add_directive("tiberius::tds::stream::token=off".parse()?);
    }
    // Colour codes only for a person at a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stdout);
    let result = if config.json {
        let format = tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false);
        builder
            .fmt_fields(JsonFields::new())
            .event_format(WithRequest::json(format))
            .try_init()
    } else {
        let format = tracing_subscriber::fmt::format();
        builder.event_format(WithRequest::text(format)).try_init()
    };
    // A second initialisation in one process (tests) keeps the first subscriber.
    drop(result);
    Ok(())
}

/// Adds the request being served (see `context`) to each log line written while serving it:
/// `"request":{"id":…,"method":…,"route":…,"store":…}` in JSON, `request{id=… …}` in text.
pub struct WithRequest<F> {
    inner: F,
    json: bool,
}

impl<F> WithRequest<F> {
    pub fn json(inner: F) -> Self {
        Self { inner, json: true }
    }

    pub fn text(inner: F) -> Self {
        Self { inner, json: false }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithRequest<F>
where
    F: FormatEvent<S, N>,
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(request) = context::current() else {
            return self.inner.format_event(ctx, writer, event);
        };
        // The inner format ends its line; the request goes in before that end. (Buffered, the
        // line loses colour codes: a terminal shows request lines plain.)
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        if self.json {
            let object = line.strip_suffix('}').ok_or(fmt::Error)?;
            let request = serde_json::json!({
                "id": request.id(),
                "method": request.method(),
                "route": request.route(),
                "store": request.store(),
            });
            writeln!(writer, "{object},\"request\":{request}}}")
        } else {
            write!(
                writer,
                "{line} request{{id={} method={} route={}",
                request.id(),
                request.method(),
                request.route()
            )?;
            if let Some(store) = request.store() {
                write!(writer, " store={store}")?;
            }
            writer.write_str("}\n")
        }
    }
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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let prefix = *PREFIX.get_or_init(rand::random);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut id = [0u8; 32];
    let digits = (u128::from(prefix) << 64) | u128::from(n);
    for (i, digit) in id.iter_mut().rev().enumerate() {
        *digit = HEX[((digits >> (4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).expect("hex is a valid header value")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    /// Captures what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs one request through the request layer under a subscriber with `format`, logging
    /// an awkward line inside it and a plain one outside; returns what was written.
    fn log_a_request<F>(format: F, json: bool) -> String
    where
        F: tracing_subscriber::fmt::FormatEvent<tracing_subscriber::Registry, super::JsonFields>
            + tracing_subscriber::fmt::FormatEvent<
                tracing_subscriber::Registry,
                tracing_subscriber::fmt::format::DefaultFields,
            > + Send
            + Sync
            + 'static,
    {
        use axum::extract::Request;
        use tower::{Layer, ServiceExt};

        let out = Captured::default();
        let writer = out.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone());
        let _default = if json {
            tracing::subscriber::set_default(
                builder
                    .fmt_fields(super::JsonFields::new())
                    .event_format(super::WithRequest::json(format))
                    .finish(),
            )
        } else {
            tracing::subscriber::set_default(
                builder
                    .event_format(super::WithRequest::text(format))
                    .finish(),
            )
        };
        let service = crate::context::RequestContextLayer.layer(tower::service_fn(
            |_request: Request| async {
                crate::context::record_store(&Arc::from("demo-salon"));
                tracing::info!(detail = "quote \" and \\ and \n", "inside");
                Ok::<_, std::convert::Infallible>(axum::response::Response::default())
            },
        ));
        let request = Request::builder()
            .uri("/x")
            .header("x-request-id", "id\"with\\odd{chars}")
            .body(axum::body::Body::empty())
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(service.oneshot(request)).unwrap();
        tracing::info!("outside");
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_lines_written_while_serving_carry_the_request() {
        let format = tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false);
        let text = log_a_request(format, true);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["message"], "inside");
        assert_eq!(lines[0]["detail"], "quote \" and \\ and \n");
        let request = &lines[0]["request"];
        assert_eq!(request["id"], "id\"with\\odd{chars}");
        assert_eq!(request["method"], "GET");
        assert_eq!(request["route"], "unmatched");
        assert_eq!(request["store"], "demo-salon");
        assert_eq!(lines[1]["message"], "outside");
        assert!(lines[1].get("request").is_none(), "{text}");
    }

    #[test]
    fn text_lines_written_while_serving_carry_the_request() {
        let text = log_a_request(tracing_subscriber::fmt::format(), false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("inside"), "{text}");
        assert!(
            lines[0].ends_with(
                " request{id=id\"with\\odd{chars} method=GET route=unmatched store=demo-salon}"
            ),
            "{text}"
        );
        assert!(!lines[1].contains("request{"), "{text}");
    }

    #[test]
    fn request_ids_are_32_hex_digits_a_process_prefix_then_a_counter() {
        let a = super::new_request_id();
        let b = super::new_request_id();
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_eq!(a[..16], b[..16], "one prefix per process");
        let count = |id: &str| u64::from_str_radix(&id[16..], 16).unwrap();
        assert!(count(b) > count(a));
    }
}

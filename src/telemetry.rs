//! Logs (tracing, text or JSON lines), Prometheus metrics, request ids.

use std::fmt::{self, Write as _};
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::HeaderValue;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::field::{Field, Visit};
use tracing::span;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

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
            .fmt_fields(JsonSpanFields)
            .try_init()
    } else {
        builder.try_init()
    };
    // A second initialisation in one process (tests) keeps the first subscriber.
    drop(result);
    Ok(())
}

/// Span fields as one JSON object, written straight into the span's string.
///
/// tracing-subscriber's own `JsonFields` builds a map of `serde_json::Value`s for every span and
/// parses and re-serialises it on every `record`: per request that cost several times the
/// cache lookup the span wraps. The JSON event formatter only needs each span's string to be
/// one JSON object, which this writes directly; a later `record` reopens the object and
/// appends (a key recorded twice appears twice, and the last one wins when parsed).
pub struct JsonSpanFields;

impl<'w> FormatFields<'w> for JsonSpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        writer.write_char('{')?;
        let mut object = JsonObject::new(&mut writer, true);
        fields.record(&mut object);
        object.finish()
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &span::Record<'_>,
    ) -> fmt::Result {
        let first = match current.fields.pop() {
            Some('}') => current.fields.len() == 1,
            // Only ever `{…}` or empty here; start over if not.
            _ => {
                current.fields.clear();
                current.fields.push('{');
                true
            }
        };
        let mut object = JsonObject::new(&mut current.fields, first);
        fields.record(&mut object);
        object.finish()
    }
}

/// Writes the `"key":value` pairs of a JSON object, then its closing brace.
struct JsonObject<'a, W: fmt::Write> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<'a, W: fmt::Write> JsonObject<'a, W> {
    /// `out` ends inside an object (after its `{` or after a value); `first` says which.
    fn new(out: &'a mut W, first: bool) -> Self {
        Self {
            out,
            first,
            result: Ok(()),
        }
    }

    fn key(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.out.write_char(',')?;
        }
        write_json_str(self.out, field.name())?;
        self.out.write_char(':')
    }

    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| value(self.out));
        }
    }

    fn finish(self) -> fmt::Result {
        self.result?;
        self.out.write_char('}')
    }
}

impl<W: fmt::Write> Visit for JsonObject<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |out| write_json_str(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |out| {
            out.write_char('"')?;
            write!(JsonEscaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.entry(field, |out| write!(out, "{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }
}

fn write_json_str(out: &mut impl fmt::Write, value: &str) -> fmt::Result {
    out.write_char('"')?;
    JsonEscaped(out).write_str(value)?;
    out.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string.
struct JsonEscaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for JsonEscaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            let escape = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c if u32::from(c) < 0x20 => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{:04x}", u32::from(c))?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + c.len_utf8();
        }
        self.0.write_str(&s[plain..])
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

    #[test]
    fn json_span_fields_are_valid_json_with_later_records_appended() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(super::JsonSpanFields)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let awkward = "quote \" backslash \\ newline \n bell \u{7} é";
            let span = tracing::info_span!(
                "request",
                text = awkward,
                debug = ?vec!["a\"b"],
                count = 3u64,
                delta = -2i64,
                flag = true,
                ratio = 0.5f64,
                later = tracing::field::Empty,
            );
            span.record("later", "added");
            span.in_scope(|| tracing::info!("inside"));
            let empty = tracing::info_span!("empty", later = tracing::field::Empty);
            empty.in_scope(|| tracing::info!("no fields yet"));
            empty.record("later", 1u64);
            empty.in_scope(|| tracing::info!("one field"));
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let span = &lines[0]["span"];
        assert_eq!(
            span["text"],
            "quote \" backslash \\ newline \n bell \u{7} é"
        );
        assert_eq!(span["debug"], "[\"a\\\"b\"]");
        assert_eq!(span["count"], 3);
        assert_eq!(span["delta"], -2);
        assert_eq!(span["flag"], true);
        assert_eq!(span["ratio"], 0.5);
        assert_eq!(span["later"], "added");
        assert_eq!(lines[1]["span"]["name"], "empty");
        assert_eq!(lines[2]["span"]["later"], 1);
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

//! The Biz API client (CONTRACT §7): bearer auth, a per-request timeout, cursor pagination
//! joined in order, and errors classified by what the caller should do about them.
//!
//! Calls in flight are bounded (`MANGO_BIZ_MAX_CONCURRENCY`): a call that cannot get a place
//! within `MANGO_BIZ_QUEUE_TIMEOUT_MS` is shed as `Unavailable` without reaching Biz, so a
//! flood of cold misses (each a distinct key, which coalescing cannot join) costs a slow Biz
//! at most that many requests, and what cannot be served in time is answered at once (STALE
//! when a copy exists, else 503 with `Retry-After`) instead of waiting in an unbounded queue.
//! A call made for readers (`for_readers`) also leaves the queue as soon as none of them
//! waits any more, so when a flood stops, the calls of its abandoned requests do not hold
//! the places the next readers need.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use url::Url;

use crate::config::BizConfig;
use crate::domain::{Resource, Secret};

/// Lists longer than this many pages are refused rather than followed forever.
pub const MAX_PAGES: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum BizError {
    /// Timeout, connection failure, 5xx, or an answer we cannot read: try again later.
    #[error("Biz is unavailable: {0}")]
    Unavailable(String),
    #[error("Biz has no such item")]
    NotFound,
    /// 409: the request clashes with Biz's state (a taken slot).
    #[error("Biz refused the request as conflicting")]
    Conflict,
    /// Another 4xx: Biz understood and refused; `detail` is Biz's reason.
    #[error("Biz rejected the request ({status}): {detail}")]
    Rejected { status: u16, detail: String },
    /// 401/403: our API key is wrong. Logged loudly; callers treat it as unavailable.
    #[error("Biz refused our credentials ({0}); check MANGO_BIZ_API_KEY")]
    Misconfigured(u16),
    /// Never sent: nobody waited for the answer any more (`BizClient::for_readers`). Says
    /// nothing about Biz.
    #[error("nobody waits for this Biz call any more")]
    Abandoned,
}

impl BizError {
    /// Whether a cached copy may stand in for the answer (serve-stale).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Misconfigured(_))
    }
}

/// What availability is asked for (validated by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AvailabilityQuery {
    pub service_id: String,
    pub staff_id: Option<String>,
    /// `YYYY-MM-DD`, the business's calendar day.
    pub date: String,
    pub days: u8,
}

impl AvailabilityQuery {
    /// The cache key's id: one line per field (none may contain a newline).
    pub fn key(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.service_id,
            self.date,
            self.days,
            self.staff_id.as_deref().unwrap_or("")
        )
    }

    /// The inverse of [`AvailabilityQuery::key`].
    pub fn from_key(key: &str) -> Option<Self> {
        let mut parts = key.split('\n');
        let service_id = parts.next()?.to_string();
        let date = parts.next()?.to_string();
        let days = parts.next()?.parse().ok()?;
        let staff_id = Some(parts.next()?.to_string()).filter(|s| !s.is_empty());
        Some(Self {
            service_id,
            staff_id,
            date,
            days,
        })
    }
}

/// One item of a list: Biz's JSON, untouched, with the id the cache keys it by.
#[derive(Debug, Clone)]
pub struct BizItem {
    pub id: String,
    pub json: Box<RawValue>,
}

#[derive(Deserialize)]
struct Page {
    data: Vec<Box<RawValue>>,
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct One {
    data: Box<RawValue>,
}

#[derive(Deserialize)]
struct ItemId {
    id: serde_json::Value,
}

fn item_id(json: &RawValue) -> Result<String, BizError> {
    match serde_json::from_str::<ItemId>(json.get()).map(|i| i.id) {
        Ok(serde_json::Value::String(s)) if !s.is_empty() => Ok(s),
        Ok(serde_json::Value::Number(n)) => Ok(n.to_string()),
        _ => Err(BizError::Unavailable(
            "Biz listed an item without an id".into(),
        )),
    }
}

#[derive(Clone)]
pub struct BizClient {
    http: reqwest::Client,
    base: Url,
    api_key: Secret,
    permits: Arc<tokio::sync::Semaphore>,
    queue_timeout: Duration,
    /// Asked while a call waits for a place (`for_readers`): false once nobody waits for it.
    still_wanted: Option<StillWanted>,
}

/// Whether anyone still waits for a call's answer (see `BizClient::for_readers`).
pub type StillWanted = Arc<dyn Fn() -> bool + Send + Sync>;

/// How often a call waiting for a place looks whether its readers still wait.
const READERS_CHECK: Duration = Duration::from_millis(20);

/// Why a call got no place among the calls in flight.
enum Shed {
    /// None came free within the queue timeout.
    Full,
    /// Nobody waits for the answer any more.
    Abandoned,
}

impl BizClient {
    pub fn new(config: &BizConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("mango-store/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: config.base_url.clone(),
            api_key: config.api_key.clone(),
            permits: Arc::new(tokio::sync::Semaphore::new(config.max_concurrency.max(1))),
            queue_timeout: config.queue_timeout,
            still_wanted: None,
        })
    }

    /// This client for calls made on behalf of readers who may leave: a call still waiting
    /// for a place when `still_wanted` says nobody waits any more is abandoned.
    pub fn for_readers(&self, still_wanted: StillWanted) -> Self {
        Self {
            still_wanted: Some(still_wanted),
            ..self.clone()
        }
    }

    /// `BASE/biz-api/v1/SEGMENTS…`, each segment percent-encoded (ids are not trusted).
    fn url(&self, segments: &[&str]) -> Url {
        self.resource_url(None, segments)
    }

    /// The URL of a resource (its `biz_path`, whose `/` separate segments) and then
    /// `segments`, each percent-encoded.
    fn resource_url(&self, resource: Option<Resource>, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["biz-api", "v1"]);
            if let Some(resource) = resource {
                path.extend(resource.biz_path().split('/'));
            }
            path.extend(segments);
        }
        url
    }

    async fn send(
        &self,
        what: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<bytes::Bytes, BizError> {
        let _permit = match self.permit().await {
            Ok(permit) => permit,
            // Not logged per call: under a flood that would be a line per shed request.
            Err(shed) => {
                let (outcome, err) = match shed {
                    Shed::Full => (
                        "shed",
                        BizError::Unavailable("too many Biz calls in flight; shed".into()),
                    ),
                    Shed::Abandoned => ("abandoned", BizError::Abandoned),
                };
                metrics::counter!("mango_biz_requests_total", "call" => what, "outcome" => outcome)
                    .increment(1);
                return Err(err);
            }
        };
        let started = Instant::now();
        let result = self.send_inner(request).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(BizError::NotFound) => "not_found",
            Err(BizError::Conflict) => "conflict",
            Err(BizError::Rejected { .. }) => "rejected",
            Err(BizError::Misconfigured(_)) => "unauthorized",
            Err(BizError::Unavailable(_)) => "unavailable",
            Err(BizError::Abandoned) => "abandoned",
        };
        metrics::counter!("mango_biz_requests_total", "call" => what, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("mango_biz_request_duration_seconds", "call" => what)
            .record(started.elapsed().as_secs_f64());
        if let Err(err) = &result {
            match err {
                BizError::Misconfigured(_) => {
                    tracing::error!(call = what, error = %err, "Biz refused our API key")
                }
                BizError::Unavailable(_) => {
                    tracing::warn!(call = what, error = %err, "Biz call failed")
                }
                _ => tracing::debug!(call = what, error = %err, "Biz refused"),
            }
        }
        result
    }

    /// A place among the calls in flight, at once or within the queue timeout, while someone
    /// still waits for the answer.
    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Shed> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        let deadline = tokio::time::Instant::now() + self.queue_timeout;
        // Pinned once, so the call keeps its place in the (fair) queue between checks.
        let acquire = self.permits.acquire();
        tokio::pin!(acquire);
        loop {
            let wake = match &self.still_wanted {
                Some(_) => deadline.min(tokio::time::Instant::now() + READERS_CHECK),
                None => deadline,
            };
            if let Ok(permit) = tokio::time::timeout_at(wake, &mut acquire).await {
                return permit.map_err(|_| Shed::Full);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Shed::Full);
            }
            if self.still_wanted.as_ref().is_some_and(|wanted| !wanted()) {
                return Err(Shed::Abandoned);
            }
        }
    }

    async fn send_inner(&self, request: reqwest::RequestBuilder) -> Result<bytes::Bytes, BizError> {
        let response = request
            .bearer_auth(self.api_key.expose())
            .send()
            .await
            .map_err(|e| {
                BizError::Unavailable(if e.is_timeout() {
                    "timed out".into()
                } else if e.is_connect() {
                    "connection failed".into()
                } else {
                    "request failed".into()
                })
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            BizError::Unavailable(if e.is_timeout() {
                "timed out reading the body".into()
            } else {
                "body read failed".into()
            })
        })?;
        match status {
            s if s.is_success() => Ok(body),
            StatusCode::NOT_FOUND => Err(BizError::NotFound),
            StatusCode::CONFLICT => Err(BizError::Conflict),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(BizError::Misconfigured(status.as_u16()))
            }
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                Err(BizError::Unavailable(format!("status {}", s.as_u16())))
            }
            s => Err(BizError::Rejected {
                status: s.as_u16(),
                detail: rejection_detail(&body),
            }),
        }
    }

    /// Every item of a resource, all pages joined in Biz's order.
    pub async fn list(
        &self,
        business_id: &str,
        resource: Resource,
    ) -> Result<Vec<BizItem>, BizError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self.resource_url(Some(resource), &[]);
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("business_id", business_id);
                if let Some(c) = &cursor {
                    query.append_pair("cursor", c);
                }
            }
            let body = self.send("list", self.http.get(url)).await?;
            let page: Page = serde_json::from_slice(&body).map_err(|_| {
                BizError::Unavailable("Biz sent a list page that is not valid JSON".into())
            })?;
            for json in page.data {
                items.push(BizItem {
                    id: item_id(&json)?,
                    json,
                });
            }
            match page.next_cursor {
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    return Err(BizError::Unavailable("Biz repeated a cursor".into()));
                }
                Some(next) => cursor = Some(next),
                None => return Ok(items),
            }
        }
        Err(BizError::Unavailable(format!(
            "the list has more than {MAX_PAGES} pages"
        )))
    }

    /// One item, untouched.
    pub async fn item(
        &self,
        business_id: &str,
        resource: Resource,
        id: &str,
    ) -> Result<Box<RawValue>, BizError> {
        let mut url = self.resource_url(Some(resource), &[id]);
        url.query_pairs_mut()
            .append_pair("business_id", business_id);
        let body = self.send("item", self.http.get(url)).await?;
        serde_json::from_slice::<One>(&body)
            .map(|one| one.data)
            .map_err(|_| BizError::Unavailable("Biz sent an item that is not valid JSON".into()))
    }

    /// `GET /availability`: the free slots of a service (CONTRACT §7), untouched. Biz's 404
    /// (an unknown service) is `NotFound`.
    pub async fn availability(
        &self,
        business_id: &str,
        query: &AvailabilityQuery,
    ) -> Result<Box<RawValue>, BizError> {
        let mut url = self.url(&["availability"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("business_id", business_id)
                .append_pair("service_id", &query.service_id)
                .append_pair("date", &query.date)
                .append_pair("days", &query.days.to_string());
            if let Some(staff) = &query.staff_id {
                q.append_pair("staff_id", staff);
            }
        }
        let body = self.send("availability", self.http.get(url)).await?;
        #[derive(Deserialize)]
        struct Slots {
            slots: Box<RawValue>,
        }
        serde_json::from_slice::<One>(&body)
            .ok()
            .and_then(|one| serde_json::from_str::<Slots>(one.data.get()).ok())
            .filter(|s| s.slots.get().trim_start().starts_with('['))
            .map(|s| s.slots)
            .ok_or_else(|| BizError::Unavailable("Biz sent availability that is not valid".into()))
    }

    /// `POST /bookings` with the draft id as `Idempotency-Key`; answers Biz's `data`.
    pub async fn create_booking(
        &self,
        idempotency_key: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, BizError> {
        let request = self
            .http
            .post(self.url(&["bookings"]))
            .header("Idempotency-Key", idempotency_key)
            .json(body);
        let body = self.send("create_booking", request).await?;
        serde_json::from_slice::<One>(&body)
            .ok()
            .and_then(|one| serde_json::from_str(one.data.get()).ok())
            .ok_or_else(|| {
                BizError::Unavailable("Biz sent a booking answer that is not valid JSON".into())
            })
    }
}

/// Biz's own reason from a 4xx body (`detail`, else `error`, else `message`), kept short.
fn rejection_detail(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = ["detail", "error", "message"]
        .iter()
        .find_map(|k| value.get(k).and_then(|v| v.as_str()))
        .unwrap_or("no reason given");
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_paths_may_have_several_segments() {
        let c = client("http://biz.local");
        let r = crate::domain::Resources::declare(&[crate::domain::ResourceDecl {
            name: "hours".into(),
            biz_path: Some("shop/working-hours".into()),
            ttl_secs: None,
        }])
        .unwrap();
        let hours = r.parse("hours").unwrap();
        assert_eq!(
            c.resource_url(Some(hours), &["a/b"]).as_str(),
            "http://biz.local/biz-api/v1/shop/working-hours/a%2Fb"
        );
    }

    fn client(base: &str) -> BizClient {
        BizClient::new(&BizConfig {
            base_url: base.parse().unwrap(),
            api_key: Secret::new("k"),
            timeout: Duration::from_secs(1),
            max_concurrency: 4,
            queue_timeout: Duration::from_millis(10),
        })
        .unwrap()
    }

    #[test]
    fn ids_are_encoded_as_one_path_segment() {
        let c = client("http://biz.local/prefix/");
        let url = c.url(&["services", "../admin?x=1#y"]);
        assert_eq!(
            url.as_str(),
            "http://biz.local/prefix/biz-api/v1/services/..%2Fadmin%3Fx=1%23y"
        );
    }

    #[test]
    fn item_ids_may_be_strings_or_numbers() {
        let raw = |s: &str| RawValue::from_string(s.to_string()).unwrap();
        assert_eq!(item_id(&raw(r#"{"id":"svc_1"}"#)).unwrap(), "svc_1");
        assert_eq!(item_id(&raw(r#"{"id":42}"#)).unwrap(), "42");
        assert!(item_id(&raw(r#"{"name":"x"}"#)).is_err());
        assert!(item_id(&raw(r#"{"id":""}"#)).is_err());
    }

    #[test]
    fn rejection_detail_prefers_detail() {
        assert_eq!(
            rejection_detail(br#"{"error":"bad","detail":"slot in past"}"#),
            "slot in past"
        );
        assert_eq!(rejection_detail(b"not json"), "no reason given");
    }
}

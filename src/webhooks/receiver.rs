//! `POST /webhooks/{resource}/{event}`: verify → parse → record → invalidate → answer.
//!
//! The order is the point. Nothing from the body is trusted before the signature over its raw
//! bytes checks out. The inbox row is written before any work, so a repeated `webhook-id` is
//! answered "duplicate" without work, and it is marked processed only after the invalidation,
//! so a crash in between leaves a row that Biz's retry redoes. The 2xx goes out only once the
//! item and its list are invalidated in SQL and in memory, this instance's and every other
//! one's (`catalog::feed`): a read that follows it, anywhere, asks Biz.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::join_all;
use serde_json::json;

use super::event::{Subject, Topic, WebhookEvent};
use super::signature::{self, SignatureError, SignedDelivery};
use crate::app::AppState;
use crate::catalog::is_plausible_id;
use crate::db::{Claim, DbError, NewDelivery, Scope};
use crate::error::ApiError;
use crate::extract::Path;
use crate::openapi::problems;
use crate::openapi::schemas::{WebhookAnswer, WebhookEvent as WebhookEventSchema};

/// How a delivery was answered when it was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepted {
    /// Invalidated; `retry` when an earlier attempt had recorded it without finishing.
    Processed {
        retry: bool,
    },
    Duplicate,
    /// Recorded without work; the reason is a metric label.
    Ignored(&'static str),
}

impl Accepted {
    fn status(self) -> &'static str {
        match self {
            Self::Processed { .. } => "processed",
            Self::Duplicate => "duplicate",
            Self::Ignored(_) => "ignored",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Self::Processed { retry: false } => "first_delivery",
            Self::Processed { retry: true } => "unfinished_retry",
            Self::Duplicate => "already_recorded",
            Self::Ignored(reason) => reason,
        }
    }
}

/// A delivery that was not accepted: `rejected` (the sender's fault, do not retry as is) or
/// `failed` (ours, Biz should retry). `reason` is a bounded metric label.
struct Refusal {
    outcome: &'static str,
    reason: &'static str,
    error: ApiError,
}

impl Refusal {
    fn rejected(reason: &'static str, error: ApiError) -> Self {
        Self {
            outcome: "rejected",
            reason,
            error,
        }
    }

    fn signature(err: SignatureError) -> Self {
        let (reason, code) = match err {
            SignatureError::MissingHeaders => ("missing_headers", "invalid_signature"),
            SignatureError::InvalidTimestamp => ("invalid_timestamp", "invalid_signature"),
            SignatureError::InvalidSignature => ("invalid_signature", "invalid_signature"),
            SignatureError::TimestampOutOfTolerance => {
                ("timestamp_out_of_tolerance", "timestamp_out_of_tolerance")
            }
        };
        Self::rejected(
            reason,
            ApiError::other(StatusCode::UNAUTHORIZED, code, err.to_string()),
        )
    }

    fn invalid(detail: String) -> Self {
        Self::rejected("invalid_request", ApiError::invalid(detail))
    }

    fn failed(err: DbError) -> Self {
        let reason = match err {
            DbError::Unavailable(_) => "database_unavailable",
            _ => "database_error",
        };
        Self {
            outcome: "failed",
            reason,
            error: ApiError::from(err),
        }
    }
}

problems!(WebhookProblems {
    400 "An unknown event, a bad body, or a `type` or `id` that does not match the path and headers" [invalid_request],
    401 "The signature does not verify, or the timestamp is outside the tolerance; nothing changed" [invalid_signature, timestamp_out_of_tolerance],
    413 "The body is larger than 256 KiB" [payload_too_large],
    503 "The database is down: retry (memory was invalidated)" [database_unavailable],
});

/// Receives a Biz webhook
///
/// Signed per Standard Webhooks (HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`
/// with any configured `whsec_` secret); invalidates the item and its list before it answers.
#[utoipa::path(post, path = "/webhooks/{resource}/{event}", operation_id = "receiveWebhook", tag = "webhooks",
    params(
        ("resource" = String, Path, description = "A declared resource, or `bookings`; any other resource is recorded and answered `ignored`"),
        ("event" = String, Path, description = "`created`, `updated` or `deleted` (`bookings`: `created`, `updated` or `cancelled`)"),
        ("webhook-id" = String, Header, description = "The delivery id; equals the body's `id`"),
        ("webhook-timestamp" = String, Header, pattern = "^[0-9]{1,19}$", description = "Unix seconds, within MANGO_WEBHOOK_TOLERANCE_SECS"),
        ("webhook-signature" = String, Header, description = "Space-separated `v1,BASE64` entries"),
    ),
    request_body = WebhookEventSchema,
    responses(
        (status = 200, description = "`processed` (first delivery), `duplicate` (the same webhook-id again) or `ignored` (an unknown business or resource)", body = WebhookAnswer),
        WebhookProblems,
    ))]
pub async fn receive(
    State(state): State<AppState>,
    Path((resource, event)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let topic = Topic::parse(state.catalog.resources(), &resource, &event);
    let result = deliver(&state, topic.as_ref(), &headers, &body).await;
    let event_type = topic
        .as_ref()
        .map_or_else(|_| "unknown".to_string(), |t| t.to_string());
    // The id is logged only in a harmless shape: before verification it is anyone's input.
    let webhook_id = Some(header_str(&headers, "webhook-id"))
        .filter(|id| is_plausible_id(id))
        .unwrap_or("-");
    let (outcome, reason, response) = match result {
        Ok(accepted) => {
            let body = json!({"data": {"status": accepted.status()}});
            tracing::info!(
                webhook_id,
                event_type,
                outcome = accepted.status(),
                reason = accepted.reason(),
                "webhook delivery"
            );
            let response = axum::Json(body).into_response();
            (accepted.status(), accepted.reason(), response)
        }
        Err(refusal) => {
            tracing::warn!(
                webhook_id,
                event_type,
                outcome = refusal.outcome,
                reason = refusal.reason,
                "webhook delivery"
            );
            let response = refusal.error.into_response();
            (refusal.outcome, refusal.reason, response)
        }
    };
    metrics::counter!("mango_webhooks_total", "outcome" => outcome, "reason" => reason)
        .increment(1);
    response
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Biz sends `application/json`; a body declared as something else is refused, a missing
/// `Content-Type` is tolerated (the signature already vouches for the bytes).
fn declared_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let media = value.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json") || media.to_ascii_lowercase().ends_with("+json")
}

async fn deliver(
    state: &AppState,
    topic: Result<&Topic, &String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Accepted, Refusal> {
    let signed = SignedDelivery {
        id: header_str(headers, "webhook-id"),
        timestamp: header_str(headers, "webhook-timestamp"),
        signatures: header_str(headers, "webhook-signature"),
        body,
    };
    let now_unix = state.clock.now_ms().div_euclid(1000);
    signature::verify(
        &signed,
        &state.config.webhook_secrets,
        now_unix,
        state.config.webhook_tolerance.as_secs(),
    )
    .map_err(Refusal::signature)?;
    let topic = topic
        .map_err(|detail| Refusal::rejected("unknown_topic", ApiError::invalid(detail.clone())))?;
    if !declared_json(headers) {
        return Err(Refusal::invalid(
            "the webhook body must be JSON with `Content-Type: application/json`".into(),
        ));
    }
    let event = WebhookEvent::parse(topic, signed.id, body).map_err(Refusal::invalid)?;
    apply(state, &event).await
}

/// What a delivery invalidates in each store of its business (rule 2 of §5): a catalog item
/// and its list; for services and staff also availability (durations and who performs what
/// decide the free times); for bookings, availability.
fn scopes(state: &AppState, event: &WebhookEvent) -> Vec<Scope> {
    let resources = state.catalog.resources();
    let availability = Scope::Resource(resources.availability());
    match &event.topic.subject {
        Subject::Catalog(r) => {
            let item = Scope::Item(*r, event.item_id.clone());
            if *r == resources.services() || *r == resources.staff() {
                vec![item, availability]
            } else {
                vec![item]
            }
        }
        Subject::Bookings => vec![availability],
        Subject::Undeclared(_) => Vec::new(),
    }
}

/// Records the delivery and invalidates what it covers in SQL for every store of the business
/// (one transaction on SQLite, shared with concurrent deliveries), then in memory, then marks
/// it processed. Memory comes after SQL (else a reader could refill it from the rows about to
/// go) and before `processed` (else a concurrent repeat could be answered `duplicate` while
/// memory still serves the old item; until then a repeat finds the row `processing` and does
/// the idempotent work again). Other instances' memory is waited for the same way.
async fn apply(state: &AppState, event: &WebhookEvent) -> Result<Accepted, Refusal> {
    let scopes = scopes(state, event);
    let delivery = NewDelivery {
        webhook_id: event.id.clone(),
        event_type: event.topic.to_string(),
        business_id: event.business_id.clone(),
        item_id: event.item_id.clone(),
        occurred_at_ms: event.occurred_at_ms,
        received_at_ms: state.clock.now_ms(),
        ignore: scopes.is_empty(),
    };
    let claimed = state
        .db
        .claim_and_invalidate(
            &delivery,
            &scopes,
            state.catalog.instance_id(),
            state.clock.now_ms(),
        )
        .await;
    let (store_ids, retry) = match claimed {
        Ok(Claim::First { store_ids }) => (store_ids, false),
        Ok(Claim::Unfinished { store_ids }) => (store_ids, true),
        Ok(Claim::Duplicate(_)) => return Ok(Accepted::Duplicate),
        Ok(Claim::Ignored) if scopes.is_empty() => {
            return Ok(Accepted::Ignored("undeclared_resource"));
        }
        Ok(Claim::Ignored) => return Ok(Accepted::Ignored("unknown_business")),
        Err(err) => {
            // Nothing is recorded, or the row is still `processing`, so the answer must make
            // Biz retry. Until it does, memory must not keep serving the old item: invalidate
            // every store this process knows for the business (the database that would name
            // them is what failed). Its SQL part most likely fails too; the catalog then
            // distrusts those rows.
            let mut stores = state.tenants.known_stores(&event.business_id);
            // A database that refuses writes may still answer reads (a locked SQLite file
            // does); then this also covers stores this process has not met yet.
            if let Ok(found) = state.db.stores_by_business(&event.business_id).await {
                stores.extend(found.iter().map(|s| s.id));
                stores.sort_unstable();
                stores.dedup();
            }
            if let Err(also) = invalidate(state, &stores, &scopes).await {
                tracing::debug!(error = %also, "SQL invalidation failed as well");
            }
            return Err(Refusal::failed(err));
        }
    };
    state.tenants.learn(&event.business_id, &store_ids);
    for store_id in &store_ids {
        for scope in &scopes {
            state.catalog.invalidate_memory(*store_id, scope);
        }
    }
    // Other instances' memory too (rule 2 says "anywhere"): until each has applied this
    // invalidation or can no longer serve memory. Before `processed`, so that a repeat
    // answered `duplicate` comes after this wait as well.
    state.catalog.await_peers().await;
    crate::failpoint::hit("webhook_before_finish");
    let availability = state.catalog.resources().availability();
    if scopes.contains(&Scope::Resource(availability)) {
        let cause = match event.topic.subject {
            Subject::Bookings => "webhook_bookings",
            _ => "webhook_catalog",
        };
        metrics::counter!("mango_availability_invalidations_total", "cause" => cause).increment(1);
    }
    // A failure here leaves the row `processing`, so Biz's retry redoes the (done) work.
    state
        .db
        .finish_delivery(&event.id, state.clock.now_ms())
        .await
        .map_err(Refusal::failed)?;
    crate::failpoint::hit("webhook_after_commit");
    Ok(Accepted::Processed { retry })
}

/// Invalidates `scopes` in every store, all of them even if one fails; answers the first
/// error.
async fn invalidate(state: &AppState, store_ids: &[i64], scopes: &[Scope]) -> Result<(), DbError> {
    let results = join_all(store_ids.iter().flat_map(|store_id| {
        scopes
            .iter()
            .map(|scope| state.catalog.invalidate(*store_id, scope))
    }))
    .await;
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn json_content_types() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            declared_json(&h)
        };
        assert!(declared_json(&HeaderMap::new()));
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/webhook+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
    }
}

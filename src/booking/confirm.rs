//! Confirming a draft: exactly one Biz booking per draft, whatever the clients do.
//!
//! Three layers, each covering what the one above cannot:
//! - **The database claim** decides. `draft → confirming` is a conditional UPDATE, so of any
//!   number of confirms on any number of instances exactly one holds the claim; its number
//!   (`confirm_attempts`) fences a release, so a confirm whose claim was taken over cannot undo
//!   it. Biz's definite answer is recorded even when the fence moved (a slow write outlived the
//!   stale-claim window): the booking is a fact, and its event is written once, with it.
//! - **Biz's idempotency** makes retries harmless. The draft id is the `Idempotency-Key` and the
//!   `external_ref`, so a retry after a timeout or a 5xx (the booking may exist) or a takeover
//!   after a crash between claiming and hearing back gets Biz's first answer, not a second
//!   appointment.
//! - **In-memory flights** are the optimisation: concurrent confirms of one draft in this
//!   process join the one in flight and all answer its result. The flight runs in its own
//!   task, so a client that hangs up never leaves the claim half-done. Another instance that
//!   finds the draft `confirming` polls the database until the claim ends, or takes it over
//!   once it is older than the Biz timeout plus a margin.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde_json::{Value, json};

use super::draft::{UNRESOLVED_GRACE_MS, effective_status, utc_text};
use crate::app::AppState;
use crate::biz::BizError;
use crate::catalog::Tenant;
use crate::db::{
    ClaimOutcome, ClaimRules, ConfirmFinish, DbError, DraftFailure, DraftRecord, DraftStatus,
    NewEvent,
};
use crate::error::ApiError;

/// Added to the Biz timeout before a `confirming` claim counts as abandoned.
const CLAIM_MARGIN: Duration = Duration::from_secs(2);
/// How often a confirm that found another instance's claim looks again.
const POLL_EVERY: Duration = Duration::from_millis(50);

pub const SLOT_UNAVAILABLE: &str = "slot_unavailable";
pub const BOOKING_REJECTED: &str = "booking_rejected";

/// Why a confirm did not answer 200. `Clone`, because every waiter of a flight gets it.
#[derive(Debug, Clone)]
pub enum ConfirmError {
    NotFound,
    Expired,
    Cancelled,
    /// Another instance's claim neither ended nor went stale while we waited.
    InProgress,
    /// The draft failed; `code` and `detail` as recorded.
    Failed(DraftFailure),
    /// Biz gave no definite answer; the draft is confirmable again.
    Upstream(String),
    DatabaseUnavailable,
    Internal(String),
}

impl From<DbError> for ConfirmError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(cause) => {
                tracing::warn!(error = %format!("{cause:#}"), "database unavailable during confirm");
                Self::DatabaseUnavailable
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<ConfirmError> for ApiError {
    fn from(err: ConfirmError) -> Self {
        match err {
            ConfirmError::NotFound => ApiError::NotFound("no booking draft has this id".into()),
            ConfirmError::Expired => ApiError::other(
                StatusCode::GONE,
                "draft_expired",
                "the draft expired before it was confirmed; make a new one",
            ),
            ConfirmError::Cancelled => ApiError::other(
                StatusCode::CONFLICT,
                "draft_cancelled",
                "the draft was cancelled",
            ),
            ConfirmError::InProgress => ApiError::other(
                StatusCode::CONFLICT,
                "confirm_in_progress",
                "another confirm of this draft is still waiting for Biz; try again shortly",
            ),
            ConfirmError::Failed(failure) if failure.code == SLOT_UNAVAILABLE => ApiError::other(
                StatusCode::CONFLICT,
                SLOT_UNAVAILABLE,
                "the time slot is no longer available; make a new draft for another time",
            ),
            ConfirmError::Failed(failure) => ApiError::unprocessable(
                BOOKING_REJECTED,
                failure
                    .detail
                    .unwrap_or_else(|| "Biz rejected the booking".into()),
            ),
            ConfirmError::Upstream(detail) => ApiError::UpstreamUnavailable {
                status: StatusCode::BAD_GATEWAY,
                detail: format!(
                    "Biz did not confirm the booking ({detail}); the draft is unchanged, \
                     confirm again to retry safely"
                ),
                retry_after: Some(2),
            },
            ConfirmError::DatabaseUnavailable => ApiError::DatabaseUnavailable,
            ConfirmError::Internal(cause) => ApiError::internal(anyhow::anyhow!(cause)),
        }
    }
}

pub type ConfirmResult = Result<DraftRecord, ConfirmError>;

struct Flight {
    id: u64,
    result: Shared<BoxFuture<'static, ConfirmResult>>,
}

/// The confirms in flight in this process, by `(store, draft)`.
#[derive(Clone, Default)]
pub struct ConfirmFlights {
    inner: Arc<FlightsInner>,
}

#[derive(Default)]
struct FlightsInner {
    flights: Mutex<HashMap<(i64, String), Flight>>,
    next_id: AtomicU64,
    before_finish: Mutex<Option<FinishHook>>,
}

/// A failpoint for tests: awaited after Biz answered a confirm and before the answer is
/// recorded, to stand for a slow database write (the stale-claim job may run meanwhile).
pub type FinishHook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

impl ConfirmFlights {
    /// Installs the test failpoint [`FinishHook`]; production code never sets one.
    pub fn set_before_finish(&self, hook: Option<FinishHook>) {
        *self
            .inner
            .before_finish
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = hook;
    }

    fn before_finish(&self) -> Option<FinishHook> {
        self.inner
            .before_finish
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, String), Flight>> {
        self.inner
            .flights
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct FlightGuard {
    flights: ConfirmFlights,
    key: (i64, String),
    id: u64,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut flights = self.flights.lock();
        if flights.get(&self.key).is_some_and(|f| f.id == self.id) {
            flights.remove(&self.key);
        }
    }
}

/// Confirms the draft, joining a confirm of it already in flight here.
pub async fn confirm(state: &AppState, tenant: &Tenant, draft_id: &str) -> ConfirmResult {
    let key = (tenant.store_id, draft_id.to_owned());
    let result = {
        let mut flights = state.confirms.lock();
        match flights.get(&key) {
            Some(flight) => flight.result.clone(),
            None => {
                let id = state.confirms.inner.next_id.fetch_add(1, Ordering::Relaxed);
                let (state, tenant, key2) = (state.clone(), tenant.clone(), key.clone());
                // The map lock is held until the flight is registered, so the guard's removal
                // cannot run before the insert.
                let task = tokio::spawn(async move {
                    // Dropped when the flight ends, even by a panic: the entry never outlives it.
                    let _guard = FlightGuard {
                        flights: state.confirms.clone(),
                        key: key2.clone(),
                        id,
                    };
                    run(&state, &tenant, &key2.1).await
                });
                let result = async move {
                    task.await.unwrap_or_else(|e| {
                        Err(ConfirmError::Internal(format!("confirm task: {e}")))
                    })
                }
                .boxed()
                .shared();
                flights.insert(
                    key,
                    Flight {
                        id,
                        result: result.clone(),
                    },
                );
                result
            }
        }
    };
    result.await
}

/// How long a claim may stand before another confirm takes it over.
fn stale_after(state: &AppState) -> i64 {
    (state.config.biz.timeout + CLAIM_MARGIN).as_millis() as i64
}

pub fn claim_rules(state: &AppState) -> ClaimRules {
    let now_ms = state.clock.now_ms();
    ClaimRules {
        now_ms,
        unresolved_grace_ms: UNRESOLVED_GRACE_MS,
        stale_before_ms: now_ms - stale_after(state),
    }
}

/// One confirm: claim, call Biz, record the outcome — or answer the outcome someone else
/// recorded, waiting for it if it is still in flight on another instance.
async fn run(state: &AppState, tenant: &Tenant, draft_id: &str) -> ConfirmResult {
    let db = &state.db;
    // Real time, not the clock: a bound on how long this request waits, even if the clock
    // that judges staleness is moved (tests) or another instance's clock disagrees.
    let give_up =
        tokio::time::Instant::now() + Duration::from_millis(2 * stale_after(state) as u64);
    loop {
        let outcome = db
            .claim_draft(tenant.store_id, draft_id, claim_rules(state))
            .await?;
        let draft = match outcome {
            ClaimOutcome::Missing => return Err(ConfirmError::NotFound),
            ClaimOutcome::Claimed(draft) => return call_biz(state, tenant, draft).await,
            ClaimOutcome::NotClaimable(draft) => draft,
        };
        match effective_status(&draft, state.clock.now_ms()) {
            DraftStatus::Confirmed => return Ok(draft),
            DraftStatus::Failed => return Err(failure_of(&draft)),
            DraftStatus::Cancelled => return Err(ConfirmError::Cancelled),
            DraftStatus::Expired => return Err(ConfirmError::Expired),
            // Claimed on another instance (or by a confirm that died): wait for it to end or
            // to go stale, reading rather than writing while we wait.
            DraftStatus::Confirming | DraftStatus::Draft => {
                wait_for_claim_to_end(state, tenant.store_id, draft_id, give_up).await?
            }
        }
    }
}

async fn wait_for_claim_to_end(
    state: &AppState,
    store_id: i64,
    draft_id: &str,
    give_up: tokio::time::Instant,
) -> Result<(), ConfirmError> {
    loop {
        if tokio::time::Instant::now() >= give_up {
            return Err(ConfirmError::InProgress);
        }
        tokio::time::sleep(POLL_EVERY).await;
        let Some(draft) = state.db.draft(store_id, draft_id).await? else {
            return Err(ConfirmError::NotFound);
        };
        let stale = draft
            .claimed_at_ms
            .is_none_or(|at| at < claim_rules(state).stale_before_ms);
        if draft.status != DraftStatus::Confirming || stale {
            return Ok(());
        }
    }
}

fn failure_of(draft: &DraftRecord) -> ConfirmError {
    ConfirmError::Failed(draft.failure.clone().unwrap_or(DraftFailure {
        code: BOOKING_REJECTED.into(),
        detail: None,
    }))
}

/// The booking as Biz expects it (CONTRACT §7); built from the stored draft only, so a
/// takeover on another instance sends the same request.
fn biz_booking_body(business_id: &str, d: &DraftRecord) -> Value {
    json!({
        "business_id": business_id,
        "service_id": d.service_id,
        "staff_id": d.staff_id,
        "start_at": utc_text(d.start_at_ms),
        "end_at": utc_text(d.end_at_ms),
        "client": {
            "name": d.customer.name,
            "phone": d.customer.phone,
            "email": d.customer.email,
        },
        "notes": d.notes,
        "external_ref": d.id,
    })
}

fn event(draft: &DraftRecord, name: &str, now_ms: i64) -> NewEvent {
    NewEvent {
        store_id: draft.store_id,
        name: name.into(),
        draft_id: Some(draft.id.clone()),
        occurred_at_ms: now_ms,
        ..Default::default()
    }
}

/// Holds the claim numbered `draft.confirm_attempts`: asks Biz once and records the answer.
async fn call_biz(state: &AppState, tenant: &Tenant, draft: DraftRecord) -> ConfirmResult {
    let attempt = draft.confirm_attempts;
    let body = biz_booking_body(&tenant.business_id, &draft);
    let answer = state.biz.create_booking(&draft.id, &body).await;
    if let Some(hook) = state.confirms.before_finish() {
        hook().await;
    }
    let now_ms = state.clock.now_ms();
    let confirmed = |booking: Value| {
        let text = booking.to_string();
        let ours = DraftRecord {
            status: DraftStatus::Confirmed,
            booking: Some(text.clone()),
            ..draft.clone()
        };
        let event = event(&draft, "booking_confirmed", now_ms);
        let finish = ConfirmFinish::Confirmed {
            booking: text,
            event,
        };
        (finish, "confirmed", Ok(ours))
    };
    let failed = |code: &str, detail: Option<String>, label| {
        let failure = DraftFailure {
            code: code.into(),
            detail,
        };
        let event = event(&draft, "booking_failed", now_ms);
        let ours = Err(ConfirmError::Failed(failure.clone()));
        (ConfirmFinish::Failed { failure, event }, label, ours)
    };
    let (finish, label, ours) = match answer {
        Ok(booking) => confirmed(booking),
        Err(BizError::Conflict) => failed(SLOT_UNAVAILABLE, None, "slot_unavailable"),
        Err(BizError::Rejected { detail, .. }) => failed(
            BOOKING_REJECTED,
            Some(format!("Biz rejected the booking: {detail}")),
            "rejected",
        ),
        // Timeout, 5xx, garbage, our key refused, a 404 from a misrouted Biz: the booking may
        // or may not exist, so the draft goes back to confirmable and the retry reuses the key.
        Err(err) => {
            let detail = match err {
                BizError::Unavailable(d) => d,
                other => other.to_string(),
            };
            metrics::counter!("mango_booking_confirms_total", "outcome" => "upstream_unavailable")
                .increment(1);
            tracing::warn!(draft_id = %draft.id, attempt, "Biz gave no definite answer; draft released");
            release(state, tenant, &draft, attempt).await?;
            return Err(ConfirmError::Upstream(detail));
        }
    };
    metrics::counter!("mango_booking_confirms_total", "outcome" => label).increment(1);
    tracing::info!(draft_id = %draft.id, attempt, outcome = label, "confirm finished");
    let finished = state
        .db
        .finish_confirm(tenant.store_id, &draft.id, attempt, finish, now_ms)
        .await;
    if finished.is_ok() {
        crate::failpoint::hit("confirm_after_commit");
    }
    match finished {
        // What the database holds: Biz's answer as recorded by this finish, even if the claim
        // was released or taken over meanwhile, or the same answer recorded first by a
        // takeover (Biz replays it for the same idempotency key).
        Ok(Some(recorded)) => match recorded.status {
            DraftStatus::Confirmed => Ok(recorded),
            DraftStatus::Failed => Err(failure_of(&recorded)),
            _ => ours,
        },
        Ok(None) => ours,
        Err(err) => {
            // The claim stays; once stale, the next confirm takes it over and Biz replays.
            tracing::error!(draft_id = %draft.id, "could not record Biz's answer to a confirm");
            Err(err.into())
        }
    }
}

async fn release(
    state: &AppState,
    tenant: &Tenant,
    draft: &DraftRecord,
    attempt: i64,
) -> Result<(), ConfirmError> {
    let now_ms = state.clock.now_ms();
    state
        .db
        .finish_confirm(
            tenant.store_id,
            &draft.id,
            attempt,
            ConfirmFinish::Released,
            now_ms,
        )
        .await?;
    Ok(())
}

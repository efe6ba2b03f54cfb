//! The persistence seam for booking drafts and their idempotency keys (store_booking.*).
//!
//! Every change two requests — or two instances on one database — could race for is a
//! conditional UPDATE whose row count decides: the claim of a confirm, its takeover after a
//! crash, its finish, a cancel. No backend may rely on MERGE, `UPDATE … OUTPUT` or lock hints.
//! The analytics event of a create or of a finished confirm is written in the same transaction
//! as the change it reports, so it can be neither lost nor doubled.

use async_trait::async_trait;

use super::{DbResult, NewEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftStatus {
    Draft,
    /// Claimed by one confirm, whose Biz call is in flight (internal; clients see `draft`).
    Confirming,
    Confirmed,
    Failed,
    Expired,
    Cancelled,
}

impl DraftStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Confirming => "confirming",
            Self::Confirmed => "confirmed",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "draft" => Self::Draft,
            "confirming" => Self::Confirming,
            "confirmed" => Self::Confirmed,
            "failed" => Self::Failed,
            "expired" => Self::Expired,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// Who the booking is for. All `None` once erased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerDetails {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// Why a confirm ended in `failed`, kept so that a repeated confirm answers the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftFailure {
    /// The stable API code (`slot_unavailable`, `booking_rejected`).
    pub code: String,
    /// Biz's reason; erased with the customer details.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DraftRecord {
    pub id: String,
    pub store_id: i64,
    pub status: DraftStatus,
    pub service_id: String,
    pub staff_id: Option<String>,
    pub start_at_ms: i64,
    pub end_at_ms: i64,
    pub duration_minutes: i64,
    /// The service's `price` object (JSON text) when the draft was made.
    pub price: Option<String>,
    pub customer: CustomerDetails,
    pub notes: Option<String>,
    pub expires_at_ms: i64,
    /// How many times a confirm claimed the draft; each claim's number fences its finish.
    pub confirm_attempts: i64,
    pub claimed_at_ms: Option<i64>,
    /// Biz's answer (JSON text) once confirmed.
    pub booking: Option<String>,
    pub failure: Option<DraftFailure>,
    pub created_at_ms: i64,
    pub ended_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewDraft {
    pub id: String,
    pub store_id: i64,
    pub service_id: String,
    pub staff_id: Option<String>,
    pub start_at_ms: i64,
    pub end_at_ms: i64,
    pub duration_minutes: i64,
    pub price: Option<String>,
    pub customer: CustomerDetails,
    pub notes: Option<String>,
    pub expires_at_ms: i64,
    pub created_at_ms: i64,
}

/// A create's `Idempotency-Key` and the hash of the request that first used it.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
    /// Keys created before this are forgotten (they were kept 24 h).
    pub not_before_ms: i64,
}

/// The draft an idempotency key already answers, with the hash of the request it came with.
#[derive(Debug, Clone)]
pub struct KeyedDraft {
    pub request_hash: String,
    pub draft: DraftRecord,
}

#[derive(Debug, Clone)]
pub enum DraftCreation {
    Created(DraftRecord),
    /// The key was already held (perhaps by a create that won a race); nothing was written.
    Existing(KeyedDraft),
}

/// The rules a claim applies, computed by the booking module from its clock and policy.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules {
    pub now_ms: i64,
    /// A draft whose earlier confirm got no definite answer from Biz stays confirmable this long
    /// past `expires_at`, so its client can still learn whether Biz booked it.
    pub unresolved_grace_ms: i64,
    /// A `confirming` claim older than this was abandoned (its instance died) and may be taken
    /// over; the retry is safe because Biz deduplicates on the draft id.
    pub stale_before_ms: i64,
}

#[derive(Debug, Clone)]
pub enum ClaimOutcome {
    /// This caller now owns the confirm; `confirm_attempts` is its fencing number.
    Claimed(DraftRecord),
    /// The draft exists but is not claimable (confirmed, in flight elsewhere, expired, …).
    NotClaimable(DraftRecord),
    Missing,
}

impl ClaimOutcome {
    /// What a claim found, from the rows its conditional UPDATE changed and the draft read
    /// back in the same transaction: the row count decides, on every backend.
    pub fn decide(rows_claimed: u64, draft: Option<DraftRecord>) -> Self {
        match (rows_claimed, draft) {
            (_, None) => Self::Missing,
            (0, Some(draft)) => Self::NotClaimable(draft),
            (_, Some(draft)) => Self::Claimed(draft),
        }
    }
}

/// How a claimed confirm ended.
#[derive(Debug, Clone)]
pub enum ConfirmFinish {
    Confirmed {
        booking: String,
        event: NewEvent,
    },
    Failed {
        failure: DraftFailure,
        event: NewEvent,
    },
    /// Biz gave no definite answer: back to `draft`, confirmable again with the same key.
    Released,
}

#[async_trait]
pub trait DraftRepo {
    async fn draft(&self, store_id: i64, id: &str) -> DbResult<Option<DraftRecord>>;

    /// The draft a live idempotency key answers.
    async fn idempotent_draft(
        &self,
        store_id: i64,
        key: &str,
        not_before_ms: i64,
    ) -> DbResult<Option<KeyedDraft>>;

    /// Inserts the draft, its key and `event` in one transaction. If the key is already held
    /// (by a key younger than `not_before_ms`), writes nothing and answers the holder.
    async fn create_draft(
        &self,
        draft: NewDraft,
        key: Option<IdempotencyKey>,
        event: NewEvent,
    ) -> DbResult<DraftCreation>;

    /// `draft → confirming` if the draft is confirmable, or takes over a stale claim.
    async fn claim_draft(
        &self,
        store_id: i64,
        id: &str,
        rules: ClaimRules,
    ) -> DbResult<ClaimOutcome>;

    /// Ends the claim numbered `attempt`, writing the finish's event with it. A `Released`
    /// finish whose claim is no longer this caller's writes nothing and answers `None`. A
    /// definite answer (`Confirmed`, `Failed`) is never lost: if the fence moved (the claim
    /// was released as stale or taken over), it is recorded anyway while the draft has not
    /// ended, and otherwise the draft as recorded is answered.
    async fn finish_confirm(
        &self,
        store_id: i64,
        id: &str,
        attempt: i64,
        finish: ConfirmFinish,
        now_ms: i64,
    ) -> DbResult<Option<DraftRecord>>;

    /// `draft → cancelled` for a draft that is still open and was never sent to Biz; answers
    /// the draft as it is afterwards (the caller reads the outcome from its status).
    async fn cancel_draft(
        &self,
        store_id: i64,
        id: &str,
        now_ms: i64,
    ) -> DbResult<Option<DraftRecord>>;

    /// Maintenance, each bounded by `limit` rows and idempotent: abandoned claims back to
    /// `draft`; drafts past their confirm deadline to `expired`; customer details of drafts
    /// that ended before `ended_before_ms` erased; idempotency keys older than `before_ms`.
    async fn release_stale_claims(&self, stale_before_ms: i64, limit: u32) -> DbResult<u64>;
    async fn expire_drafts(
        &self,
        now_ms: i64,
        unresolved_grace_ms: i64,
        limit: u32,
    ) -> DbResult<u64>;
    async fn erase_ended_drafts(
        &self,
        ended_before_ms: i64,
        now_ms: i64,
        limit: u32,
    ) -> DbResult<u64>;
    async fn purge_idempotency_keys(&self, before_ms: i64, limit: u32) -> DbResult<u64>;
    /// Deletes drafts that ended before `ended_before_ms` and whose customer details are
    /// already erased, at most `limit` (their idempotency keys go with them).
    async fn delete_ended_drafts(&self, ended_before_ms: i64, limit: u32) -> DbResult<u64>;
}

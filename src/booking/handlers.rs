//! The HTTP side of booking drafts (CONTRACT §8): parse, check against the catalog, persist,
//! answer. Catalog checks go through the read path (`state.catalog`), never straight to Biz,
//! so drafting shares the cache, its stampede protection and its serve-stale rules.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::confirm;
use super::draft::{
    self, DraftRequest, ServiceTerms, draft_json, effective_status, is_draft_id, new_draft_id,
    staff_offers, to_ms,
};
use super::{IDEMPOTENCY_KEY_TTL_MS, ROUTE_DRAFT};
use crate::analytics::visitor::ClientAddr;
use crate::app::AppState;
use crate::catalog::{CacheKey, EntryKind, Resource, Tenant, is_plausible_id};
use crate::db::{
    DraftCreation, DraftRecord, DraftStatus, IdempotencyKey, KeyedDraft, NewDraft, NewEvent,
};
use crate::error::{ApiError, Result};
use crate::extract::{Json, Path};
use crate::openapi::problems;
use crate::openapi::schemas::{DraftAnswer, DraftRequest as DraftRequestSchema};
use crate::tenant::CurrentStore;

fn not_found() -> ApiError {
    ApiError::NotFound("no booking draft has this id".into())
}

fn answer(status: StatusCode, draft: &DraftRecord, now_ms: i64) -> Response {
    (
        status,
        axum::Json(json!({"data": draft_json(draft, now_ms)})),
    )
        .into_response()
}

fn created(draft: &DraftRecord, now_ms: i64, replayed: bool) -> Response {
    let mut response = answer(StatusCode::CREATED, draft, now_ms);
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("{ROUTE_DRAFT}/{}", draft.id)) {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// The answer for a key that is already held: the same draft for the same request.
fn replay(held: KeyedDraft, request_hash: &str, now_ms: i64) -> Result<Response> {
    if held.request_hash != request_hash {
        return Err(ApiError::unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
        ));
    }
    Ok(created(&held.draft, now_ms, true))
}

problems!(CreateDraftProblems {
    400 "Malformed JSON, a wrong content type, a missing field, overlong notes or a bad Idempotency-Key" [invalid_request],
    404 "No such store" [store_not_found],
    413 "The body is larger than 256 KiB" [payload_too_large],
    422 "The draft cannot be made" [service_not_found, service_inactive, staff_not_eligible, start_in_past, invalid_start_at, invalid_customer, idempotency_key_reused],
    429 "Too many writes from this client or to this store" [rate_limited],
    502 "Biz describes the service without a usable duration" [upstream_unavailable],
    503 "The catalog cannot be read and no copy is young enough" [upstream_unavailable],
});

/// Makes a booking draft
///
/// Holds the slot's terms for `MANGO_DRAFT_TTL_SECS`; an `Idempotency-Key` makes a retried
/// create answer the same draft (the same key with another body: 422
/// `idempotency_key_reused`; keys are kept 24 h).
#[utoipa::path(post, path = "/api/v1/booking/draft", operation_id = "createBookingDraft", tag = "booking",
    params(crate::catalog::StoreHeaders,
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Same key and body within 24 h answer the same draft")),
    request_body = DraftRequestSchema,
    responses(
        (status = 201, description = "The draft, `status: draft`", body = DraftAnswer, headers(
            ("Location" = String, description = "The draft's URL"),
            ("Idempotent-Replayed" = Option<String>, description = "`true` when an earlier create with this Idempotency-Key answered it"))),
        CreateDraftProblems,
    ))]
pub async fn create(
    State(state): State<AppState>,
    CurrentStore(store): CurrentStore,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Json(request): Json<DraftRequest>,
) -> Result<Response> {
    let store_id = store.tenant.store_id;
    state
        .rate_limits
        .check(store_id, client, state.clock.now_ms())?;
    let key = draft::idempotency_key(&headers)?;
    let request_hash = request.canonical_hash();
    let now_ms = state.clock.now_ms();
    let key_not_before = now_ms - IDEMPOTENCY_KEY_TTL_MS;
    if let Some(key) = &key
        && let Some(held) = state
            .db
            .idempotent_draft(store_id, key, key_not_before)
            .await?
    {
        return replay(held, &request_hash, now_ms);
    }

    // Checks that need nobody first, then the catalog.
    let checked = draft::check_request(&request, state.clock.now(), state.config.booking_horizon)?;
    let staff_id = request.staff_id.as_deref().filter(|s| !s.is_empty());
    let service = bookable_service(&state, &store.tenant, &request.service_id, staff_id).await?;
    let end_at = draft::end_at(checked.start_at, service.duration_minutes).ok_or_else(|| {
        ApiError::unprocessable("invalid_start_at", "start_at is too far in the future")
    })?;

    let id = new_draft_id();
    let new = NewDraft {
        id: id.clone(),
        store_id,
        service_id: request.service_id.clone(),
        staff_id: staff_id.map(str::to_owned),
        start_at_ms: to_ms(checked.start_at),
        end_at_ms: to_ms(end_at),
        duration_minutes: service.duration_minutes,
        price: Some(service.price.to_string()),
        customer: checked.customer,
        notes: checked.notes,
        expires_at_ms: now_ms + state.config.draft_ttl.as_millis() as i64,
        created_at_ms: now_ms,
    };
    let event = NewEvent {
        store_id,
        name: "booking_draft_created".into(),
        draft_id: Some(id.clone()),
        occurred_at_ms: now_ms,
        ..Default::default()
    };
    let key = key.map(|key| IdempotencyKey {
        key,
        request_hash: request_hash.clone(),
        not_before_ms: key_not_before,
    });
    match state.db.create_draft(new, key, event).await? {
        DraftCreation::Created(draft) => {
            metrics::counter!("mango_booking_drafts_created_total").increment(1);
            tracing::info!(draft_id = %draft.id, "booking draft created");
            Ok(created(&draft, now_ms, false))
        }
        // A concurrent create with the same key committed first.
        DraftCreation::Existing(held) => replay(held, &request_hash, now_ms),
    }
}

/// One catalog item through the read path: `None` when Biz has no such item.
async fn catalog_item(
    state: &AppState,
    tenant: &Tenant,
    resource: Resource,
    id: &str,
) -> Result<Option<Value>> {
    if !is_plausible_id(id) {
        return Ok(None);
    }
    let key = CacheKey::item(tenant.store_id, resource, id);
    let lookup = state
        .catalog
        .get(tenant, key)
        .await
        .map_err(crate::catalog::unavailable)?;
    if lookup.entry.kind == EntryKind::NotFound {
        return Ok(None);
    }
    let mut body: Value = serde_json::from_slice(&lookup.entry.body)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("cached {resource} item: {e}")))?;
    Ok(Some(body["data"].take()))
}

/// The service's terms, if it exists, is active and (when a staff member is named) is one
/// that staff member offers. An unknown staff id is `staff_not_eligible` too: to the client
/// both mean "this person cannot do this service".
pub(crate) async fn bookable_service(
    state: &AppState,
    tenant: &Tenant,
    service_id: &str,
    staff_id: Option<&str>,
) -> Result<ServiceTerms> {
    let service = catalog_item(
        state,
        tenant,
        state.catalog.resources().services(),
        service_id,
    );
    let staff = async {
        match staff_id {
            Some(id) => catalog_item(state, tenant, state.catalog.resources().staff(), id).await,
            None => Ok(None),
        }
    };
    let (service, staff) = tokio::join!(service, staff);
    let service = service?.ok_or_else(|| {
        ApiError::unprocessable("service_not_found", "no service has this service_id")
    })?;
    let terms = ServiceTerms::from_item(&service).ok_or_else(|| ApiError::UpstreamUnavailable {
        status: StatusCode::BAD_GATEWAY,
        detail: "Biz describes this service without a usable duration_minutes".into(),
        retry_after: None,
    })?;
    if !terms.is_active {
        return Err(ApiError::unprocessable(
            "service_inactive",
            "this service cannot be booked at the moment",
        ));
    }
    if staff_id.is_some() {
        let offers = staff?.is_some_and(|member| staff_offers(&member, service_id));
        if !offers {
            return Err(ApiError::unprocessable(
                "staff_not_eligible",
                "this staff member does not offer this service (or does not exist)",
            ));
        }
    }
    Ok(terms)
}

problems!(DraftProblems {
    404 "No such draft in this store, or no such store" [not_found, store_not_found],
});

/// Reads a booking draft
///
/// Any status, `cancelled` and `expired` included; another store's draft is 404.
#[utoipa::path(get, path = "/api/v1/booking/draft/{id}", operation_id = "getBookingDraft", tag = "booking",
    params(("id" = String, Path, pattern = "^drf_[0-9a-f]{32}$", description = "The draft id"), crate::catalog::StoreHeaders),
    responses((status = 200, description = "The draft", body = DraftAnswer), DraftProblems))]
pub async fn get(
    State(state): State<AppState>,
    CurrentStore(store): CurrentStore,
    Path(id): Path<String>,
) -> Result<Response> {
    if !is_draft_id(&id) {
        return Err(not_found());
    }
    let draft = state.db.draft(store.tenant.store_id, &id).await?;
    let draft = draft.ok_or_else(not_found)?;
    Ok(answer(StatusCode::OK, &draft, state.clock.now_ms()))
}

problems!(ConfirmProblems {
    404 "No such draft in this store, or no such store" [not_found, store_not_found],
    409 "The slot is taken (the draft is `failed`), the draft was cancelled, or another confirm is waiting for Biz" [slot_unavailable, draft_cancelled, confirm_in_progress],
    410 "The draft expired" [draft_expired],
    422 "Biz rejected the booking (its reason in `detail`)" [booking_rejected],
    429 "Too many writes from this client or to this store" [rate_limited],
    502 "Biz did not answer; the draft stays confirmable and a retry reuses the same Idempotency-Key" [upstream_unavailable],
});

/// Confirms a booking draft
///
/// With Biz, exactly once: concurrent confirms share the one call, and a repeat of a confirmed
/// draft answers the same 200.
#[utoipa::path(post, path = "/api/v1/booking/draft/{id}/confirm", operation_id = "confirmBookingDraft", tag = "booking",
    params(("id" = String, Path, pattern = "^drf_[0-9a-f]{32}$", description = "The draft id"), crate::catalog::StoreHeaders),
    responses((status = 200, description = "The draft with `status: confirmed` and `booking` (Biz's answer)", body = DraftAnswer), ConfirmProblems))]
pub async fn confirm(
    State(state): State<AppState>,
    CurrentStore(store): CurrentStore,
    ClientAddr(client): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response> {
    let now_ms = state.clock.now_ms();
    state
        .rate_limits
        .check(store.tenant.store_id, client, now_ms)?;
    if !is_draft_id(&id) {
        return Err(not_found());
    }
    let draft = confirm::confirm(&state, &store.tenant, &id).await?;
    // The slot is taken: no storefront may be offered it once this answer is out.
    crate::availability::invalidate_after_confirm(&state, &store.tenant).await;
    Ok(answer(StatusCode::OK, &draft, state.clock.now_ms()))
}

problems!(CancelProblems {
    404 "No such draft in this store, or no such store" [not_found, store_not_found],
    409 "The draft is confirmed, or a confirm is (or may have been) with Biz" [already_confirmed, confirm_in_progress, confirm_outcome_unknown],
});

/// Cancels a booking draft
///
/// A draft that already failed or expired has nothing left to cancel (204, unchanged); it
/// stays readable with its status.
#[utoipa::path(delete, path = "/api/v1/booking/draft/{id}", operation_id = "cancelBookingDraft", tag = "booking",
    params(("id" = String, Path, pattern = "^drf_[0-9a-f]{32}$", description = "The draft id"), crate::catalog::StoreHeaders),
    responses((status = 204, description = "Cancelled (or already failed or expired)"), CancelProblems))]
pub async fn cancel(
    State(state): State<AppState>,
    CurrentStore(store): CurrentStore,
    Path(id): Path<String>,
) -> Result<Response> {
    if !is_draft_id(&id) {
        return Err(not_found());
    }
    let now_ms = state.clock.now_ms();
    let draft = state
        .db
        .cancel_draft(store.tenant.store_id, &id, now_ms)
        .await?;
    let draft = draft.ok_or_else(not_found)?;
    match effective_status(&draft, now_ms) {
        DraftStatus::Cancelled | DraftStatus::Failed | DraftStatus::Expired => {
            if draft.status == DraftStatus::Cancelled {
                metrics::counter!("mango_booking_draft_transitions_total", "to" => "cancelled")
                    .increment(1);
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        DraftStatus::Confirmed => Err(ApiError::other(
            StatusCode::CONFLICT,
            "already_confirmed",
            "the draft is confirmed; cancel the appointment with the business",
        )),
        DraftStatus::Confirming => Err(ApiError::other(
            StatusCode::CONFLICT,
            "confirm_in_progress",
            "a confirm of this draft is waiting for Biz; try again shortly",
        )),
        // Still open only because an earlier confirm got no answer: Biz may hold the booking.
        DraftStatus::Draft => Err(ApiError::other(
            StatusCode::CONFLICT,
            "confirm_outcome_unknown",
            "an earlier confirm may have reached Biz; confirm again to learn its outcome",
        )),
    }
}

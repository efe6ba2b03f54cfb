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
use crate::openapi::Problem;
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

/// Holds a draft booking for `MANGO_DRAFT_TTL_SECS`; `Idempotency-Key` makes a retry safe.
#[utoipa::path(post, path = "/api/v1/booking/draft", operation_id = "createBookingDraft", tag = "booking",
    params(crate::catalog::StoreHeaders, ("Idempotency-Key" = Option<String>, Header, description = "Same key and body within 24 h answer the same draft")),
    request_body(content = serde_json::Value, description = "`{service_id, staff_id?, start_at (RFC 3339 with offset), customer: {name, phone?, email?}, notes?}`"),
    responses(
        (status = 201, description = "`{\"data\": {id, status, service_id, staff_id, start_at, end_at, price, customer, notes, expires_at, booking}}`", body = serde_json::Value),
        (status = 400, description = "invalid_request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "store_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "service_not_found, service_inactive, staff_not_eligible, start_in_past, invalid_start_at, invalid_customer, idempotency_key_reused", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited: see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "upstream_unavailable: the catalog cannot be read", body = Problem, content_type = "application/problem+json"),
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

/// A draft of this store.
#[utoipa::path(get, path = "/api/v1/booking/draft/{id}", operation_id = "getBookingDraft", tag = "booking",
    params(("id" = String, Path, description = "The draft id (`drf_…`)"), crate::catalog::StoreHeaders),
    responses(
        (status = 200, description = "`{\"data\": {id, status, service_id, staff_id, start_at, end_at, price, customer, notes, expires_at, booking}}`", body = serde_json::Value),
        (status = 404, description = "not_found (also another store's draft) or store_not_found", body = Problem, content_type = "application/problem+json"),
    ))]
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

/// Confirms the draft with Biz, exactly once (concurrent confirms share the one call).
#[utoipa::path(post, path = "/api/v1/booking/draft/{id}/confirm", operation_id = "confirmBookingDraft", tag = "booking",
    params(("id" = String, Path, description = "The draft id (`drf_…`)"), crate::catalog::StoreHeaders),
    responses(
        (status = 200, description = "The draft with `status: confirmed` and `booking` (Biz's answer)", body = serde_json::Value),
        (status = 404, description = "not_found or store_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "slot_unavailable (status failed), draft_cancelled, confirm_in_progress", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "draft_expired", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "booking_rejected: Biz's reason in detail", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited: see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "upstream_unavailable: retry; the same Idempotency-Key is reused", body = Problem, content_type = "application/problem+json"),
    ))]
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

/// Cancels the draft.
#[utoipa::path(delete, path = "/api/v1/booking/draft/{id}", operation_id = "cancelBookingDraft", tag = "booking",
    params(("id" = String, Path, description = "The draft id (`drf_…`)"), crate::catalog::StoreHeaders),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 404, description = "not_found or store_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "already_confirmed, confirm_in_progress, confirm_outcome_unknown", body = Problem, content_type = "application/problem+json"),
    ))]
/// that already failed or expired has nothing left to cancel (204, unchanged).
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

//! `GET /api/v1/availability` (CONTRACT §13): a service's free times, from Biz, through the
//! catalog's read path.
//!
//! An answer is cached under the internal `availability` resource, keyed by the query, so it
//! has every guarantee of the catalog — coalesced fills in their own task, generations, STALE
//! on failure, ETag/304 — with its own TTL and stale window. It is kept in memory only: it is
//! fresh for seconds, and a SQL write per fill would cost the single SQLite writer more than a
//! restart's cold read costs Biz. Anything that can change the free times invalidates every
//! availability entry of the business's stores (generation bump, and the feed for the other
//! instances): a `bookings` webhook, a `services` or `staff` webhook (receiver), and a
//! successful confirm ([`invalidate_after_confirm`]).

use axum::extract::{RawQuery, State};
use axum::response::Response;
use time::Date;
use time::macros::format_description;

use crate::app::{ApiRouter, AppState};
use crate::biz::AvailabilityQuery;
use crate::catalog::{CacheKey, EntryKind, IfNoneMatch, StoreHeaders, Tenant, is_plausible_id};
use crate::domain::Scope;
use crate::error::{ApiError, Result};
use crate::openapi::problems;
use crate::openapi::responses::cached_answers;
use crate::tenant::CurrentStore;

pub const MAX_DAYS: u8 = 14;

pub fn routes() -> ApiRouter {
    ApiRouter::new().route("/api/v1/availability", axum::routing::get(availability))
}

/// `service_id`, `date`, optional `staff_id` and `days`; anything else, a repeat, a missing
/// or a malformed value is 400 naming the parameter.
fn parse(raw: &str) -> Result<AvailabilityQuery> {
    let invalid = |name: &str, problem: &str| {
        let shown: String = name.chars().take(64).collect();
        ApiError::invalid(format!("query parameter `{shown}` {problem}"))
    };
    let (mut service_id, mut staff_id, mut date, mut days) = (None, None, None, None);
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        let slot = match key.as_ref() {
            "service_id" => &mut service_id,
            "staff_id" => &mut staff_id,
            "date" => &mut date,
            "days" => &mut days,
            other => return Err(invalid(other, "is not one this route takes")),
        };
        if slot.is_some() {
            return Err(invalid(&key, "is given more than once"));
        }
        *slot = Some(value.into_owned());
    }
    let id = |name: &str, value: Option<String>| match value {
        Some(v) if is_plausible_id(&v) => Ok(v),
        Some(_) => Err(invalid(name, "must be 1 to 128 printable characters")),
        None => Err(invalid(name, "is required")),
    };
    let service_id = id("service_id", service_id)?;
    let staff_id = staff_id.map(|s| id("staff_id", Some(s))).transpose()?;
    let date = date.ok_or_else(|| invalid("date", "is required (YYYY-MM-DD)"))?;
    Date::parse(&date, format_description!("[year]-[month]-[day]"))
        .map_err(|_| invalid("date", "must be a calendar date YYYY-MM-DD"))?;
    let days = match days {
        None => 1,
        Some(d) => d
            .parse::<u8>()
            .ok()
            .filter(|d| (1..=MAX_DAYS).contains(d))
            .ok_or_else(|| invalid("days", "must be an integer from 1 to 14"))?,
    };
    Ok(AvailabilityQuery {
        service_id,
        staff_id,
        date,
        days,
    })
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct AvailabilityParams {
    /// The service to book.
    #[param(max_length = 128, pattern = r"^(?!\.{1,2}$)[!-~]+$")]
    service_id: String,
    /// The business's calendar day the slots start on (`YYYY-MM-DD`); past dates too.
    #[param(format = Date)]
    date: String,
    /// Only this staff member's slots (422 `staff_not_eligible` when they do not perform the
    /// service).
    #[param(max_length = 128, pattern = r"^(?!\.{1,2}$)[!-~]+$")]
    staff_id: Option<String>,
    /// Days from `date` (1–14, default 1).
    #[param(minimum = 1, maximum = 14)]
    days: Option<u8>,
}

cached_answers!(
    AvailabilityAnswers,
    "AvailabilityAnswer",
    "The slots as Biz lists them, in Biz's order"
);

problems!(AvailabilityProblems {
    400 "A missing, repeated, unknown or malformed parameter (named in `detail`)" [invalid_request],
    404 "No such store" [store_not_found],
    422 "The service cannot be booked with this staff member" [service_not_found, service_inactive, staff_not_eligible],
    502 "Biz describes the service without a usable duration" [upstream_unavailable],
    503 "Biz failed and no copy is young enough" [upstream_unavailable],
});

/// A service's free times
///
/// As Biz lists them, cached per store and query for `MANGO_AVAILABILITY_TTL_SECS`; a booking
/// webhook, a services or staff webhook and a confirm invalidate them.
#[utoipa::path(
    get,
    path = "/api/v1/availability",
    operation_id = "getAvailability",
    tag = "availability",
    params(AvailabilityParams, StoreHeaders, crate::catalog::ConditionalHeaders),
    responses(AvailabilityAnswers, AvailabilityProblems)
)]
pub async fn availability(
    State(state): State<AppState>,
    CurrentStore(store): CurrentStore,
    IfNoneMatch(if_none_match): IfNoneMatch,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let query = parse(raw.as_deref().unwrap_or(""))?;
    let tenant = &store.tenant;
    let availability = state.catalog.resources().availability();
    let key = CacheKey::item(tenant.store_id, availability, &query.key());
    // A fresh answer was filled after the service and staff checks passed, and every change
    // that could make them fail (a services or staff webhook) invalidates it: a HIT skips them.
    let lookup = match state.catalog.fresh_hit(&key).await {
        Some(hit) => hit,
        None => {
            crate::booking::handlers::bookable_service(
                &state,
                tenant,
                &query.service_id,
                query.staff_id.as_deref(),
            )
            .await?;
            state
                .catalog
                .get(tenant, key)
                .await
                .map_err(crate::catalog::unavailable)?
        }
    };
    if lookup.entry.kind == EntryKind::NotFound {
        return Err(ApiError::unprocessable(
            "service_not_found",
            "Biz does not know this service",
        ));
    }
    let entry = &lookup.entry;
    Ok(crate::catalog::answer(
        &entry.body,
        &entry.etag,
        lookup.status,
        if_none_match,
    ))
}

/// After a confirm Biz accepted, before it is answered: every availability entry of the
/// business's stores goes, here and (through the feed, waited for) on every instance, so no
/// storefront offers the slot just booked. Best effort: memory is invalidated even when SQL fails.
pub async fn invalidate_after_confirm(state: &AppState, tenant: &Tenant) {
    let mut stores = vec![tenant.store_id];
    match state.db.stores_by_business(&tenant.business_id).await {
        Ok(found) => stores.extend(found.iter().map(|s| s.id)),
        Err(err) => tracing::warn!(error = %err, "cannot list the business's stores"),
    }
    stores.sort_unstable();
    stores.dedup();
    let scope = Scope::Resource(state.catalog.resources().availability());
    for store_id in stores {
        if let Err(err) = state.catalog.invalidate(store_id, &scope).await {
            tracing::warn!(error = %err, "availability invalidated in memory only after a confirm");
        }
    }
    // And on the other instances before the confirm answers (`catalog::feed`).
    state.catalog.await_peers().await;
    metrics::counter!("mango_availability_invalidations_total", "cause" => "confirm").increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_and_named() {
        let q = parse("service_id=svc_1&date=2027-03-27&days=2&staff_id=stf_a").unwrap();
        assert_eq!((q.days, q.staff_id.as_deref()), (2, Some("stf_a")));
        assert_eq!(parse("service_id=s&date=2027-03-27").unwrap().days, 1);
        for (raw, named) in [
            ("date=2027-03-27", "service_id"),
            ("service_id=s", "date"),
            ("service_id=s&date=2027-02-30", "date"),
            ("service_id=s&date=27.03.2027", "date"),
            ("service_id=s&date=2027-03-27&days=0", "days"),
            ("service_id=s&date=2027-03-27&days=15", "days"),
            ("service_id=s&date=2027-03-27&days=x", "days"),
            ("service_id=a+b&date=2027-03-27", "service_id"),
            ("service_id=s&date=2027-03-27&staff_id=", "staff_id"),
            ("service_id=s&service_id=t&date=2027-03-27", "service_id"),
            ("service_id=s&date=2027-03-27&hour=9", "hour"),
        ] {
            let err = parse(raw).unwrap_err();
            assert_eq!(err.code(), "invalid_request");
            assert!(err.to_string().contains(named), "{raw}: {err}");
        }
    }

    #[test]
    fn keys_round_trip() {
        let q = parse("service_id=svc_1&date=2027-03-27&days=2").unwrap();
        assert_eq!(AvailabilityQuery::from_key(&q.key()), Some(q));
    }
}

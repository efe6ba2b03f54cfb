//! What a draft is: its id, the request that makes one and the checks it must pass without
//! asking anyone, its times as exact instants, and the JSON a client sees.
//!
//! Times: `start_at` must carry an explicit offset (`Z` or `±hh:mm`); it is turned into an
//! instant at once, `end_at` is that instant plus the service's duration (plain arithmetic on
//! instants, so a duration that spans a DST change is still exactly that many minutes), and
//! both are stored as Unix milliseconds and echoed in UTC (`…Z`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{Duration as TimeDuration, OffsetDateTime};

use crate::db::{CustomerDetails, DraftRecord, DraftStatus};
use crate::error::ApiError;

pub const ID_PREFIX: &str = "drf_";
/// `drf_` and 32 lowercase hex digits: 128 random bits.
pub const ID_LEN: usize = ID_PREFIX.len() + 32;

pub const MAX_NAME: usize = 200;
pub const MAX_PHONE: usize = 64;
pub const MAX_EMAIL: usize = 254;
pub const MAX_NOTES: usize = 2000;
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A new draft id with 128 random bits.
pub fn new_draft_id() -> String {
    format!("{ID_PREFIX}{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// Whether `raw` can be a draft id at all; anything else is 404 without touching the database.
pub fn is_draft_id(raw: &str) -> bool {
    raw.len() == ID_LEN
        && raw.starts_with(ID_PREFIX)
        && raw[ID_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `POST /api/v1/booking/draft`. Unknown fields are ignored; a missing or mistyped field is a
/// 400 from the extractor. The derived `Serialize` is the canonical form that idempotency
/// compares (fixed field order, absent and `null` alike, unknown fields dropped).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DraftRequest {
    pub service_id: String,
    #[serde(default)]
    pub staff_id: Option<String>,
    pub start_at: String,
    pub customer: CustomerRequest,
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CustomerRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

impl DraftRequest {
    /// SHA-256 (hex) of the canonical JSON: the same request in any key order or spacing, with
    /// or without unknown fields, hashes the same.
    pub fn canonical_hash(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a request always serialises");
        hex::encode(Sha256::digest(canonical))
    }
}

/// The checks that need no catalog: when, who, and the notes.
#[derive(Debug, Clone)]
pub struct CheckedRequest {
    pub start_at: OffsetDateTime,
    pub customer: CustomerDetails,
    pub notes: Option<String>,
}

/// `horizon` is how far ahead a booking may start (`MANGO_BOOKING_HORIZON_DAYS`).
pub fn check_request(
    req: &DraftRequest,
    now: OffsetDateTime,
    horizon: std::time::Duration,
) -> Result<CheckedRequest, ApiError> {
    let start_at = parse_start_at(&req.start_at)?;
    if start_at <= now {
        return Err(ApiError::unprocessable(
            "start_in_past",
            "start_at must be in the future",
        ));
    }
    let days = horizon.as_secs() / 86_400;
    if start_at - now > horizon || !representable(start_at) {
        return Err(ApiError::unprocessable(
            "invalid_start_at",
            format!("start_at must be at most {days} days ahead"),
        ));
    }
    let customer = check_customer(&req.customer)?;
    let notes = non_empty(&req.notes);
    if notes
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTES)
    {
        return Err(ApiError::invalid(format!(
            "notes must be at most {MAX_NOTES} characters"
        )));
    }
    Ok(CheckedRequest {
        start_at,
        customer,
        notes,
    })
}

/// RFC 3339 with an explicit offset. A time without one is refused rather than guessed: the
/// store cannot know which zone the client meant.
pub fn parse_start_at(raw: &str) -> Result<OffsetDateTime, ApiError> {
    let shown: String = raw.chars().take(64).collect();
    match OffsetDateTime::parse(raw.trim(), &Rfc3339) {
        Ok(at) => Ok(truncate_to_ms(at)),
        Err(_) if lacks_offset(raw.trim()) => Err(ApiError::unprocessable(
            "invalid_start_at",
            format!(
                "start_at {shown:?} has no UTC offset; send RFC 3339 with `Z` or `±hh:mm`, \
                 e.g. 2027-03-28T10:30:00+05:00"
            ),
        )),
        Err(e) => Err(ApiError::unprocessable(
            "invalid_start_at",
            format!("start_at {shown:?} is not an RFC 3339 date-time: {e}"),
        )),
    }
}

/// `2027-03-28T10:30:00` or `2027-03-28T10:30:00.5`: a date-time whose time part has no `Z`,
/// `+` or `-`.
fn lacks_offset(raw: &str) -> bool {
    raw.split_once(['T', 't', ' '])
        .is_some_and(|(_, time)| !time.is_empty() && !time.contains(['Z', 'z', '+', '-']))
}

fn truncate_to_ms(at: OffsetDateTime) -> OffsetDateTime {
    let ms = at.millisecond();
    at.replace_millisecond(ms).unwrap_or(at)
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn check_customer(c: &CustomerRequest) -> Result<CustomerDetails, ApiError> {
    let invalid = |detail: &str| ApiError::unprocessable("invalid_customer", detail);
    let name = non_empty(&c.name).ok_or_else(|| invalid("customer.name is required"))?;
    let phone = non_empty(&c.phone);
    let email = non_empty(&c.email);
    if phone.is_none() && email.is_none() {
        return Err(invalid("customer needs a phone or an email"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(invalid("customer.name is too long"));
    }
    if phone
        .as_ref()
        .is_some_and(|p| p.len() > MAX_PHONE || !p.bytes().any(|b| b.is_ascii_digit()))
    {
        return Err(invalid("customer.phone is not a phone number"));
    }
    if email.as_ref().is_some_and(|e| {
        e.len() > MAX_EMAIL
            || e.contains(char::is_whitespace)
            || !e
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
    }) {
        return Err(invalid("customer.email is not an email address"));
    }
    Ok(CustomerDetails {
        name: Some(name),
        phone,
        email,
    })
}

/// An optional `Idempotency-Key`: 1–255 visible ASCII characters.
pub fn idempotency_key(headers: &http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_IDEMPOTENCY_KEY
        || !bytes.iter().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::invalid(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
        )));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// What the draft needs from the catalog's service item.
#[derive(Debug, Clone)]
pub struct ServiceTerms {
    pub duration_minutes: i64,
    pub price: Value,
    pub is_active: bool,
}

impl ServiceTerms {
    /// `None` when Biz's item lacks a usable duration.
    pub fn from_item(item: &Value) -> Option<Self> {
        let duration_minutes = item["duration_minutes"]
            .as_i64()
            .filter(|d| (1..=7 * 24 * 60).contains(d))?;
        Some(Self {
            duration_minutes,
            price: item["price"].clone(),
            is_active: item["is_active"].as_bool().unwrap_or(false),
        })
    }
}

/// Whether a staff item lists the service in its `service_ids`.
pub fn staff_offers(staff: &Value, service_id: &str) -> bool {
    staff["service_ids"]
        .as_array()
        .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(service_id)))
}

/// `start + duration`, on instants; `None` when the end cannot be written as RFC 3339 in UTC.
pub fn end_at(start: OffsetDateTime, duration_minutes: i64) -> Option<OffsetDateTime> {
    start
        .checked_add(TimeDuration::minutes(duration_minutes))
        .filter(|end| representable(*end))
}

/// Whether the instant can be stored and answered: RFC 3339 in UTC has four-digit years
/// (`9999-12-31T22:00:00-12:00` is a valid input whose UTC instant is in year 10000).
fn representable(at: OffsetDateTime) -> bool {
    at.checked_to_offset(time::UtcOffset::UTC)
        .is_some_and(|utc| (1..=9999).contains(&utc.year()))
}

pub fn to_ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Unix milliseconds as RFC 3339 in UTC (`2027-03-28T01:30:00Z`).
pub fn utc_text(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// How long past `expires_at` a draft whose earlier confirm got no definite answer from Biz
/// stays confirmable (the retry is how its client learns whether Biz booked it).
pub const UNRESOLVED_GRACE_MS: i64 = 24 * 60 * 60 * 1000;

/// The last instant a confirm may claim the draft.
pub fn confirmable_until(d: &DraftRecord) -> i64 {
    if d.confirm_attempts > 0 {
        d.expires_at_ms.saturating_add(UNRESOLVED_GRACE_MS)
    } else {
        d.expires_at_ms
    }
}

/// The status as of `now`: an open draft past its deadline is expired even before the job has
/// marked it.
pub fn effective_status(d: &DraftRecord, now_ms: i64) -> DraftStatus {
    match d.status {
        DraftStatus::Draft if now_ms >= confirmable_until(d) => DraftStatus::Expired,
        other => other,
    }
}

/// The status a client sees: `confirming` is shown as `draft` (the contract's five states; a
/// confirm in flight has not confirmed anything yet).
pub fn public_status(d: &DraftRecord, now_ms: i64) -> &'static str {
    match effective_status(d, now_ms) {
        DraftStatus::Confirming => DraftStatus::Draft.as_str(),
        other => other.as_str(),
    }
}

/// The draft as clients see it (CONTRACT §8), without the `{"data": …}` wrapper.
pub fn draft_json(d: &DraftRecord, now_ms: i64) -> Value {
    let parse = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .unwrap_or(Value::Null)
    };
    json!({
        "id": d.id,
        "status": public_status(d, now_ms),
        "service_id": d.service_id,
        "staff_id": d.staff_id,
        "start_at": utc_text(d.start_at_ms),
        "end_at": utc_text(d.end_at_ms),
        "price": parse(&d.price),
        "customer": {
            "name": d.customer.name,
            "phone": d.customer.phone,
            "email": d.customer.email,
        },
        "notes": d.notes,
        "expires_at": utc_text(d.expires_at_ms),
        "booking": parse(&d.booking),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_128_random_bits_and_a_strict_shape() {
        let (a, b) = (new_draft_id(), new_draft_id());
        assert_ne!(a, b);
        assert!(is_draft_id(&a) && is_draft_id(&b));
        assert!(!is_draft_id(&a.to_uppercase()));
        assert!(!is_draft_id(&a[..ID_LEN - 1]));
        assert!(!is_draft_id(&format!("{a}0")));
        assert!(!is_draft_id(&"x".repeat(10_000)));
        assert!(!is_draft_id("drf_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"));
    }

    #[test]
    fn start_at_needs_an_offset_and_becomes_one_instant() {
        let utc = parse_start_at("2027-03-28T01:30:00Z").unwrap();
        assert_eq!(parse_start_at("2027-03-28T03:30:00+02:00").unwrap(), utc);
        assert_eq!(parse_start_at("2027-03-28T01:30:00+00:00").unwrap(), utc);
        for naive in ["2027-03-28T01:30:00", "2027-03-28T01:30:00.250"] {
            let err = parse_start_at(naive).unwrap_err();
            assert_eq!(err.code(), "invalid_start_at");
            assert!(err.to_string().contains("no UTC offset"), "{err}");
        }
        assert_eq!(
            parse_start_at("tomorrow").unwrap_err().code(),
            "invalid_start_at"
        );
        assert_eq!(utc_text(to_ms(utc)), "2027-03-28T01:30:00Z");
        let precise = parse_start_at("2027-03-28T01:30:00.123456+00:00").unwrap();
        assert_eq!(utc_text(to_ms(precise)), "2027-03-28T01:30:00.123Z");
    }

    #[test]
    fn durations_across_a_dst_change_are_exact() {
        // Europe/Berlin springs forward at 01:00Z on 2027-03-28: 01:30 CET is 00:30Z.
        let start = parse_start_at("2027-03-28T01:30:00+01:00").unwrap();
        let end = end_at(start, 120).unwrap();
        assert_eq!(utc_text(to_ms(end)), "2027-03-28T02:30:00Z");
        assert_eq!(to_ms(end) - to_ms(start), 120 * 60 * 1000);
    }

    #[test]
    fn customers_need_a_name_and_a_way_to_reach_them() {
        let customer = |name: Option<&str>, phone: Option<&str>, email: Option<&str>| {
            check_customer(&CustomerRequest {
                name: name.map(str::to_owned),
                phone: phone.map(str::to_owned),
                email: email.map(str::to_owned),
            })
        };
        assert!(customer(Some("Aru"), Some("+7 701 000 00 00"), None).is_ok());
        let ok = customer(Some(" Aru "), Some(""), Some("aru@example.com")).unwrap();
        assert_eq!((ok.name.as_deref(), ok.phone), (Some("Aru"), None));
        for bad in [
            customer(None, Some("+77010000000"), None),
            customer(Some("  "), Some("+77010000000"), None),
            customer(Some("Aru"), None, None),
            customer(Some("Aru"), Some(" "), Some("")),
            customer(Some("Aru"), None, Some("not-an-email")),
            customer(Some("Aru"), Some("call me"), None),
        ] {
            assert_eq!(bad.unwrap_err().code(), "invalid_customer");
        }
    }

    #[test]
    fn the_canonical_hash_ignores_key_order_and_unknown_fields() {
        let parse = |text: &str| serde_json::from_str::<DraftRequest>(text).unwrap();
        let a = parse(
            r#"{"service_id":"s","start_at":"2030-01-01T10:00:00Z","customer":{"name":"A","phone":"1"}}"#,
        );
        let b = parse(
            r#"{"customer":{"phone":"1","name":"A"},"start_at":"2030-01-01T10:00:00Z",
                "service_id":"s","staff_id":null,"utm":"x"}"#,
        );
        let c = parse(
            r#"{"service_id":"s","start_at":"2030-01-01T10:00:00Z","customer":{"name":"B","phone":"1"}}"#,
        );
        assert_eq!(a.canonical_hash(), b.canonical_hash());
        assert_ne!(a.canonical_hash(), c.canonical_hash());
    }
}

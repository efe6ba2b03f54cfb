//! Cookieless visitors, in the manner of Plausible: a visitor is
//! `SHA-256(daily salt, store, client address, user agent)`, truncated. The salt is random,
//! one per UTC day, shared by every instance through the database, and deleted 48 h after its
//! day began, after which nobody (us included) can link a hash back to an address. Neither the
//! address nor the user agent is ever stored or logged.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderValue;
use axum::http::header::GetAll;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::db::{Db, DbError};
use crate::error::ApiError;

pub const DAY_MS: i64 = 86_400_000;
/// Salts older than this (counted from the start of their day) are deleted.
pub const SALT_RETENTION_MS: i64 = 2 * DAY_MS;
/// Hex characters of the visitor hash kept (128 bits).
const VISITOR_HASH_LEN: usize = 32;

/// The UTC day (days since the Unix epoch) of a moment.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The client's address: the socket peer, or, when `MANGO_TRUST_FORWARDED_FOR` says trusted
/// proxies set `X-Forwarded-For`, the rightmost entry they did not add themselves.
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.config.trust_forwarded_for
            && let Some(ip) = client_forwarded(
                parts.headers.get_all("x-forwarded-for"),
                state.config.trusted_proxies,
            )
        {
            return Ok(Self(ip));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(Self(peer))
    }
}

/// The client as the outermost of `trusted` proxies saw it. Each proxy appends the address it
/// received the request from, so the rightmost `trusted - 1` entries are proxies of ours and
/// the one before them is the client; anything further left is whatever the client sent (the
/// leftmost entry is the client's to forge). Several header lines count as one list, in order.
/// `None` when that entry is missing or not an address: the socket peer is used instead.
fn client_forwarded(values: GetAll<'_, HeaderValue>, trusted: usize) -> Option<IpAddr> {
    let mut entries: Vec<&str> = Vec::new();
    for value in values {
        entries.extend(value.to_str().ok()?.split(','));
    }
    // Fewer entries than proxies: all were added by our proxies, the leftmost is the client.
    let entry = entries
        .len()
        .checked_sub(trusted)
        .map_or(entries.first(), |i| entries.get(i))?
        .trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

pub fn visitor_hash(salt: &str, store_id: i64, addr: IpAddr, user_agent: &[u8]) -> String {
    let mut h = Sha256::new();
    // Length-prefixed parts, so no two different inputs concatenate to the same bytes.
    for part in [
        salt.as_bytes(),
        &store_id.to_be_bytes(),
        addr.to_string().as_bytes(),
        user_agent,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let mut hex = hex::encode(h.finalize());
    hex.truncate(VISITOR_HASH_LEN);
    hex
}

/// Today's salt, remembered in memory for the day so that most requests do not ask the
/// database for it.
#[derive(Clone, Default)]
pub struct DailySalts {
    current: Arc<Mutex<Option<SaltOfDay>>>,
}

struct SaltOfDay {
    day: i64,
    salt: Arc<str>,
}

impl DailySalts {
    pub async fn for_day(&self, db: &Db, day: i64, now_ms: i64) -> Result<Arc<str>, DbError> {
        if let Some(known) = self.current.lock().expect("salt lock").as_ref()
            && known.day == day
        {
            return Ok(known.salt.clone());
        }
        let candidate = hex::encode(rand::random::<[u8; 32]>());
        let salt: Arc<str> = Arc::from(db.daily_salt(day, candidate, now_ms).await?);
        *self.current.lock().expect("salt lock") = Some(SaltOfDay {
            day,
            salt: salt.clone(),
        });
        Ok(salt)
    }
}

/// Scheduled job: delete the salts whose day began more than 48 h ago.
pub async fn purge_old_salts(state: AppState) -> anyhow::Result<u64> {
    let first_kept = day_of(state.clock.now_ms() - SALT_RETENTION_MS) + 1;
    crate::db::in_batches(|| state.db.delete_salts_before(first_kept, crate::db::BATCH)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(lines: &[&str], trusted: usize) -> Option<IpAddr> {
        let mut headers = axum::http::HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        client_forwarded(headers.get_all("x-forwarded-for"), trusted)
    }

    #[test]
    fn forwarded_for_takes_the_rightmost_untrusted_entry() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // One proxy: it appended the client; a forged entry on the left is ignored.
        assert_eq!(forwarded(&["1.2.3.4, 203.0.113.7"], 1), ip("203.0.113.7"));
        assert_eq!(forwarded(&["1.2.3.4", "203.0.113.7"], 1), ip("203.0.113.7"));
        // Two proxies: the outer one's address is the rightmost entry.
        assert_eq!(
            forwarded(&["1.2.3.4, 203.0.113.7, 10.0.0.1"], 2),
            ip("203.0.113.7")
        );
        assert_eq!(forwarded(&["203.0.113.7"], 2), ip("203.0.113.7"));
        assert_eq!(forwarded(&["[2001:db8::1]:443"], 1), ip("2001:db8::1"));
        assert_eq!(forwarded(&["1.2.3.4, garbage"], 1), None);
        assert_eq!(forwarded(&[], 1), None);
    }

    #[test]
    fn hashes_separate_every_input() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let base = visitor_hash("salt", 1, ip, b"ua");
        assert_eq!(base.len(), VISITOR_HASH_LEN);
        assert_eq!(base, visitor_hash("salt", 1, ip, b"ua"));
        assert_ne!(base, visitor_hash("salt2", 1, ip, b"ua"));
        assert_ne!(base, visitor_hash("salt", 2, ip, b"ua"));
        assert_ne!(
            base,
            visitor_hash("salt", 1, "203.0.113.8".parse().unwrap(), b"ua")
        );
        assert_ne!(base, visitor_hash("salt", 1, ip, b"ub"));
        assert!(!base.contains("203"));
    }

    #[test]
    fn days_are_utc() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), 1);
    }
}

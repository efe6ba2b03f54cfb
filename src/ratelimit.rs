//! Rate limits on the public write routes (analytics events, draft create, confirm): a token
//! bucket per client (store and address, as `ClientAddr` sees it) and one per store, held in
//! this instance's memory. Answered 429 `rate_limited` with `Retry-After`.
//!
//! Per instance on purpose: a limit that needs the database on every write would cost more
//! than the writes it protects. N instances behind a balancer allow up to N times the limit
//! in all; the per-store daily quota on analytics events is the shared, durable bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::error::ApiError;

/// Requests per minute, with bursts of up to a minute's worth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_minute: u32,
}

/// `MANGO_RATE_LIMIT_PER_CLIENT`, `MANGO_RATE_LIMIT_PER_STORE`.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub per_client: Rate,
    pub per_store: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_client: Rate { per_minute: 120 },
            per_store: Rate { per_minute: 6000 },
        }
    }
}

/// Past this many client buckets, idle (full) ones are forgotten.
const MAX_CLIENTS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl Bucket {
    fn full(rate: Rate, now_ms: i64) -> Self {
        Self {
            tokens: f64::from(rate.per_minute),
            at_ms: now_ms,
        }
    }

    fn refill(&mut self, rate: Rate, now_ms: i64) {
        let per_ms = f64::from(rate.per_minute) / 60_000.0;
        let elapsed = (now_ms - self.at_ms).max(0) as f64;
        self.tokens = (self.tokens + elapsed * per_ms).min(f64::from(rate.per_minute));
        self.at_ms = now_ms;
    }

    /// Seconds until a token is there (0: there is one now).
    fn wait_secs(&self, rate: Rate) -> u64 {
        if self.tokens >= 1.0 {
            return 0;
        }
        let per_ms = f64::from(rate.per_minute) / 60_000.0;
        (((1.0 - self.tokens) / per_ms) / 1000.0).ceil().max(1.0) as u64
    }
}

pub struct RateLimiter {
    limits: RateLimits,
    clients: Mutex<HashMap<(i64, IpAddr), Bucket>>,
    stores: Mutex<HashMap<i64, Bucket>>,
}

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            clients: Mutex::default(),
            stores: Mutex::default(),
        }
    }

    /// Takes one request from the client's and the store's buckets, or answers 429 with how
    /// long to wait. A request refused by either takes nothing from the other.
    pub fn check(&self, store_id: i64, client: IpAddr, now_ms: i64) -> Result<(), ApiError> {
        let (client_rate, store_rate) = (self.limits.per_client, self.limits.per_store);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_CLIENTS {
            clients.retain(|_, b| {
                b.refill(client_rate, now_ms);
                b.tokens < f64::from(client_rate.per_minute)
            });
        }
        let client_bucket = clients
            .entry((store_id, client))
            .or_insert_with(|| Bucket::full(client_rate, now_ms));
        client_bucket.refill(client_rate, now_ms);
        let wait = client_bucket.wait_secs(client_rate);
        if wait > 0 {
            return Err(limited(wait, "this client"));
        }
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        let store_bucket = stores
            .entry(store_id)
            .or_insert_with(|| Bucket::full(store_rate, now_ms));
        store_bucket.refill(store_rate, now_ms);
        let wait = store_bucket.wait_secs(store_rate);
        if wait > 0 {
            return Err(limited(wait, "this store"));
        }
        store_bucket.tokens -= 1.0;
        client_bucket.tokens -= 1.0;
        Ok(())
    }
}

fn limited(retry_after: u64, whose: &str) -> ApiError {
    metrics::counter!("mango_rate_limited_total").increment(1);
    ApiError::RateLimited {
        retry_after,
        detail: format!("too many requests from {whose}; try again in {retry_after} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::new(RateLimits {
            per_client: Rate { per_minute: 3 },
            per_store: Rate { per_minute: 100 },
        });
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..3 {
            limiter.check(1, ip, 0).unwrap();
        }
        let Err(ApiError::RateLimited { retry_after, .. }) = limiter.check(1, ip, 0) else {
            panic!("the fourth is refused");
        };
        assert_eq!(retry_after, 20);
        // Another client, or the same client on another store, has its own bucket.
        limiter.check(1, "203.0.113.8".parse().unwrap(), 0).unwrap();
        limiter.check(2, ip, 0).unwrap();
        limiter.check(1, ip, 20_000).unwrap();
        assert!(limiter.check(1, ip, 20_000).is_err());
    }

    #[test]
    fn the_store_bucket_is_shared_by_its_clients() {
        let limiter = RateLimiter::new(RateLimits {
            per_client: Rate { per_minute: 100 },
            per_store: Rate { per_minute: 2 },
        });
        limiter.check(1, "10.0.0.1".parse().unwrap(), 0).unwrap();
        limiter.check(1, "10.0.0.2".parse().unwrap(), 0).unwrap();
        assert!(limiter.check(1, "10.0.0.3".parse().unwrap(), 0).is_err());
        limiter.check(2, "10.0.0.3".parse().unwrap(), 0).unwrap();
    }
}

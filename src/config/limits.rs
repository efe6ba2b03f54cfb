//! The settings of issue 17 (hardening): what one connection, one client and one store may
//! take. Kept beside `config.rs` so that the list of core settings stays short.

use std::time::Duration;

use super::{ConfigError, Settings};
use crate::connections::ConnectionLimits;
use crate::ratelimit::{Rate, RateLimits};

impl Settings {
    /// Seconds, fractions allowed (`0.5`), so tests can use short limits.
    fn fractional_secs(&self, var: &str, default: u64) -> Result<Duration, ConfigError> {
        let secs: f64 = self.parse_or(var, default as f64)?;
        if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
            return Err(ConfigError::new(
                var,
                "must be a positive number of seconds",
            ));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    pub(super) fn positive(&self, var: &str, default: u64) -> Result<u64, ConfigError> {
        let value: u64 = self.parse_or(var, default)?;
        if value == 0 {
            return Err(ConfigError::new(var, "must be greater than 0"));
        }
        Ok(value)
    }
}

pub(super) fn connection_limits(s: &Settings) -> Result<ConnectionLimits, ConfigError> {
    let default = ConnectionLimits::default();
    Ok(ConnectionLimits {
        header_read_timeout: s.fractional_secs(
            "MANGO_HEADER_READ_TIMEOUT_SECS",
            default.header_read_timeout.as_secs(),
        )?,
        body_read_timeout: s.fractional_secs(
            "MANGO_BODY_READ_TIMEOUT_SECS",
            default.body_read_timeout.as_secs(),
        )?,
        keep_alive_timeout: s.fractional_secs(
            "MANGO_KEEP_ALIVE_TIMEOUT_SECS",
            default.keep_alive_timeout.as_secs(),
        )?,
        max_connections: s.positive("MANGO_MAX_CONNECTIONS", default.max_connections as u64)?
            as usize,
    })
}

/// `(MANGO_BIZ_MAX_CONCURRENCY, MANGO_BIZ_QUEUE_TIMEOUT_MS)`: Biz calls in flight at once, and
/// how long a call may wait for a place among them before it is shed.
pub(super) fn biz_concurrency(s: &Settings) -> Result<(usize, Duration), ConfigError> {
    use crate::config::BizConfig;
    let max = s.positive(
        "MANGO_BIZ_MAX_CONCURRENCY",
        BizConfig::DEFAULT_MAX_CONCURRENCY as u64,
    )?;
    if max > 100_000 {
        return Err(ConfigError::new(
            "MANGO_BIZ_MAX_CONCURRENCY",
            "must be at most 100000",
        ));
    }
    let default_wait = BizConfig::DEFAULT_QUEUE_TIMEOUT.as_millis() as u64;
    let wait_ms: u64 = s.parse_or("MANGO_BIZ_QUEUE_TIMEOUT_MS", default_wait)?;
    if wait_ms > 60_000 {
        return Err(ConfigError::new(
            "MANGO_BIZ_QUEUE_TIMEOUT_MS",
            "must be at most 60000",
        ));
    }
    Ok((max as usize, Duration::from_millis(wait_ms)))
}

/// At most 100 years, so every accepted start is an instant the service can write.
pub(super) fn booking_horizon(s: &Settings) -> Result<Duration, ConfigError> {
    let var = "MANGO_BOOKING_HORIZON_DAYS";
    let days = s.positive(var, 730)?;
    if days > 36_500 {
        return Err(ConfigError::new(var, "must be at most 36500 (100 years)"));
    }
    Ok(Duration::from_secs(days * 86_400))
}

pub(super) fn rate_limits(s: &Settings) -> Result<RateLimits, ConfigError> {
    let default = RateLimits::default();
    let rate = |var: &str, default: Rate| -> Result<Rate, ConfigError> {
        let per_minute = s.positive(var, u64::from(default.per_minute))?;
        let per_minute = u32::try_from(per_minute)
            .map_err(|_| ConfigError::new(var, "must be at most 4294967295"))?;
        Ok(Rate { per_minute })
    };
    Ok(RateLimits {
        per_client: rate("MANGO_RATE_LIMIT_PER_CLIENT", default.per_client)?,
        per_store: rate("MANGO_RATE_LIMIT_PER_STORE", default.per_store)?,
    })
}

/// At least 2 days: a draft's customer details are erased a day after it ended, and deletion
/// comes after that.
pub(super) fn draft_retention(s: &Settings) -> Result<Duration, ConfigError> {
    let var = "MANGO_DRAFT_RETENTION_DAYS";
    let days = s.positive(var, 30)?;
    if !(2..=36_500).contains(&days) {
        return Err(ConfigError::new(var, "must be between 2 and 36500"));
    }
    Ok(Duration::from_secs(days * 86_400))
}

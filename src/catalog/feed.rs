//! Several instances, one database: every invalidation is also appended to a feed table in
//! the same transaction, and each instance tails that feed to retire its own memory entries.
//! The SQL cache is shared, so only memory needs this.
//!
//! Tailing alone would leave another instance's memory a poll behind a webhook answered
//! elsewhere, and rule 2 of CONTRACT §5 says *no read anywhere*. So memory is served under a
//! **lease**, and answers that promise read-your-writes wait for **acknowledgements**:
//! - Each instance keeps a row (`store_cache_instances`): the newest feed entry it has applied
//!   and a heartbeat (its wall clock when the read behind the row began). A sync reads the feed
//!   from a moment `t0`, applies it and writes the row; it lets the instance serve from memory
//!   until `t0 + LEASE` on its own monotonic clock (one atomic load on the HIT path) — provided
//!   a row written at least `VIEW_FRESH` before `t0` already shows the instance live, so that
//!   anyone who looked for live instances since `t0 - VIEW_FRESH` saw this one.
//! - [`CatalogCache::await_peers`], called after an invalidation committed and before its 2xx,
//!   waits until every live peer has acknowledged the newest entry, or until `LEASE` has passed
//!   since the commit: a peer that could not read the entry by then has no lease left (a dead,
//!   hung or partitioned peer stops serving memory on its own). A peer whose heartbeat is older
//!   than `DEAD_AFTER` (wall clocks, assumed within `CLOCK_SKEW` of each other) is not waited
//!   for: its lease is over. The tailer also reads the rows each poll; when that read, begun
//!   within `VIEW_FRESH`, found no live peer, the waiter returns without touching the database
//!   (an instance alone pays nothing).
//! - Tailers poll every `POLL_EVERY`, so the wait is a few tens of milliseconds.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::CatalogCache;
use crate::clock::{SharedClock, unix_ms_now};
use crate::db::{Db, DbResult, FeedAck};
use crate::domain::Scope;

pub const POLL_EVERY: Duration = Duration::from_millis(20);
/// How long a sync lets this instance serve from memory.
pub const LEASE: Duration = Duration::from_secs(1);
/// The row is rewritten at least this often without news (the heartbeat)...
const HEARTBEAT_EVERY: Duration = Duration::from_millis(200);
/// ...and a lease runs from no later than this after the heartbeat it stands on, so a peer
/// whose heartbeat is older than `LEASE + HEARTBEAT_SLACK` has no lease left.
const HEARTBEAT_SLACK: Duration = Duration::from_millis(500);
/// How far apart the instances' wall clocks may be (only the "dead peer" rule uses them).
pub const CLOCK_SKEW: Duration = Duration::from_millis(500);
const DEAD_AFTER: Duration = LEASE
    .saturating_add(HEARTBEAT_SLACK)
    .saturating_add(CLOCK_SKEW);
/// How recent the tailer's look at the rows must be for a waiter to trust "no live peer"; a
/// lease stands only on a row that has been visible at least this long.
const VIEW_FRESH: Duration = Duration::from_millis(50);
/// A waiter's re-read of the acknowledgements.
const WAIT_POLL: Duration = Duration::from_millis(10);
/// Monotonic clocks of two processes may run at slightly different rates.
const WAIT_MARGIN: Duration = Duration::from_millis(50);
/// Feed entries are kept this long (an instance that falls further behind drops its memory).
pub const KEEP_MS: i64 = 60 * 60 * 1000;
const BATCH: u32 = 1000;

/// Nanoseconds on this process's monotonic clock (never 0).
fn mono_now() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(|| Instant::now() - Duration::from_nanos(1));
    origin.elapsed().as_nanos() as u64
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Whether `ack` is of an instance that may still hold a lease.
fn live(ack: &FeedAck, now_ms: i64) -> bool {
    now_ms - ack.heartbeat_ms <= DEAD_AFTER.as_millis() as i64
}

/// `read`'s value, if it has one by `deadline`: a database that stops answering must not hold
/// a webhook's answer past the leases it waits out.
async fn by<T>(deadline: Instant, read: impl Future<Output = DbResult<T>>) -> Option<T> {
    tokio::time::timeout_at(deadline.into(), read)
        .await
        .ok()
        .and_then(Result::ok)
}

/// This instance's side of the feed: where it has read to, and its memory lease.
#[derive(Default)]
pub(super) struct FeedState {
    /// Monotonic nanos until which memory may be served; 0: not yet.
    lease_until: AtomicU64,
    /// When the tailer's latest look at the rows began, if it found no live peer; else 0.
    alone_since: AtomicU64,
    cursor: tokio::sync::Mutex<Cursor>,
}

#[derive(Default)]
struct Cursor {
    /// The newest entry applied (`None` before the first sync).
    position: Option<i64>,
    /// The rows written lately, newest last: `(applied, read began, write done)`, monotonic.
    written: VecDeque<(i64, u64, u64)>,
}

impl FeedState {
    /// `None` while the lease holds; else the monotonic now, to which the caller compares
    /// fills in flight (see `CatalogCache::get`). One atomic load and a clock read.
    pub(super) fn untrusted_since(&self) -> Option<u64> {
        let now = mono_now();
        (now >= self.lease_until.load(Ordering::Acquire)).then_some(now)
    }

    /// When a fill begins, for [`Self::untrusted_since`] comparisons.
    pub(super) fn now(&self) -> u64 {
        mono_now()
    }
}

impl CatalogCache {
    /// Reads the feed from where this instance left off, retires what other instances
    /// invalidated, acknowledges, and extends the memory lease. Answers whether the lease holds.
    pub async fn sync_feed(&self) -> bool {
        let state = self.feed_state();
        let db = self.feed_db();
        let me = self.instance_id();
        let mut cursor = state.cursor.lock().await;
        let mut position = match cursor.position {
            Some(p) => p,
            None => match db.latest_invalidation().await {
                Ok(latest) => {
                    // Memory filled before this point may predate entries at or below
                    // `latest`, which this instance will never read: forget it all.
                    self.invalidate_all_memory();
                    cursor.position = Some(latest);
                    latest
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the invalidation feed");
                    return false;
                }
            },
        };
        let (t0, wall0) = (mono_now(), unix_ms_now());
        let caught_up = match db.invalidations_since(position, BATCH).await {
            Ok(entries) => {
                for entry in &entries {
                    if entry.origin != me {
                        let scope = Scope::from_columns(
                            self.resources(),
                            entry.resource.as_deref(),
                            entry.item.clone(),
                        );
                        self.invalidate_memory(entry.store_id, &scope);
                        metrics::counter!("mango_cache_feed_invalidations_total").increment(1);
                    }
                    position = entry.id;
                }
                cursor.position = Some(position);
                entries.len() < BATCH as usize
            }
            Err(err) => {
                // While the database is down nothing new can be written to it either.
                tracing::debug!(error = %err, "invalidation feed poll failed");
                return false;
            }
        };
        // The row this lease stands on: visible since before `t0 - VIEW_FRESH`.
        let standing = cursor
            .written
            .iter()
            .rev()
            .find(|(_, _, done)| done + nanos(VIEW_FRESH) <= t0)
            .map(|(_, began, _)| *began);
        let news = cursor.written.back().is_none_or(|(applied, began, _)| {
            *applied != position || t0 - began >= nanos(HEARTBEAT_EVERY)
        });
        if news {
            let ack = FeedAck {
                instance_id: me,
                applied_id: position,
                heartbeat_ms: wall0,
            };
            match db.ack_feed(&ack).await {
                Ok(()) => {
                    cursor.written.push_back((position, t0, mono_now()));
                    let keep_from = t0.saturating_sub(nanos(HEARTBEAT_SLACK));
                    while cursor.written.len() > 2 && cursor.written[1].1 < keep_from {
                        cursor.written.pop_front();
                    }
                }
                Err(err) => tracing::debug!(error = %err, "cannot acknowledge the feed"),
            }
        }
        self.look_for_peers(state).await;
        let Some(heartbeat) = standing.filter(|_| caught_up) else {
            return false;
        };
        let until = t0.min(heartbeat + nanos(HEARTBEAT_SLACK)) + nanos(LEASE);
        state.lease_until.fetch_max(until, Ordering::AcqRel);
        mono_now() < until
    }

    /// Notes whether any other instance is live, for [`Self::await_peers`]'s shortcut.
    async fn look_for_peers(&self, state: &FeedState) {
        let began = mono_now();
        let me = self.instance_id();
        let alone = match self.feed_db().feed_acks().await {
            Ok(acks) => {
                let now = unix_ms_now();
                !acks.iter().any(|a| a.instance_id != me && live(a, now))
            }
            Err(_) => false,
        };
        state
            .alone_since
            .store(if alone { began } else { 0 }, Ordering::Release);
    }

    /// Waits, after an invalidation has committed, until no other live instance can serve
    /// memory older than it: each has acknowledged the feed's newest entry, or `LEASE` has
    /// passed. Immediate when no other instance is running. See the module docs.
    pub async fn await_peers(&self) {
        let alone_since = self.feed_state().alone_since.load(Ordering::Acquire);
        if alone_since != 0 && mono_now().saturating_sub(alone_since) <= nanos(VIEW_FRESH) {
            return;
        }
        let started = Instant::now();
        let deadline = started + LEASE + WAIT_MARGIN;
        let db = self.db();
        let me = self.instance_id();
        let applied = |acks: &[FeedAck], id: i64| {
            let now = unix_ms_now();
            acks.iter()
                .find(|a| a.instance_id == id && live(a, now))
                .map(|a| a.applied_id)
        };
        let Some(mut acks) = by(deadline, db.feed_acks()).await else {
            // Who is running is unknown: wait out every lease.
            tokio::time::sleep_until(deadline.into()).await;
            return;
        };
        let mut waiting: Vec<i64> = acks
            .iter()
            .map(|a| a.instance_id)
            .filter(|id| *id != me && applied(&acks, *id).is_some())
            .collect();
        if waiting.is_empty() {
            return;
        }
        let Some(target) = by(deadline, db.latest_invalidation()).await else {
            tokio::time::sleep_until(deadline.into()).await;
            return;
        };
        loop {
            waiting.retain(|id| applied(&acks, *id).is_some_and(|at| at < target));
            if waiting.is_empty() {
                metrics::counter!("mango_feed_peer_waits_total", "outcome" => "acknowledged")
                    .increment(1);
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    peers = waiting.len(),
                    "peers did not acknowledge an invalidation; their leases have run out"
                );
                metrics::counter!("mango_feed_peer_waits_total", "outcome" => "lease_expired")
                    .increment(1);
                break;
            }
            tokio::time::sleep(WAIT_POLL).await;
            if let Some(fresh) = by(deadline, db.feed_acks()).await {
                acks = fresh;
            }
        }
        metrics::histogram!("mango_feed_peer_wait_seconds").record(started.elapsed());
    }
}

/// Joins the instances: registers this one and takes its first lease (bounded: a database
/// that is down must not stop the service from starting; the tailer keeps trying).
pub async fn join(cache: &CatalogCache) {
    let attempt = async {
        while !cache.sync_feed().await {
            tokio::time::sleep(POLL_EVERY).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .is_err()
    {
        tracing::warn!("no memory lease yet: reads go to SQL until the feed can be read");
    }
}

/// Tails the feed until the task is dropped.
pub async fn tail(cache: CatalogCache) {
    let mut ticker = tokio::time::interval(POLL_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        cache.sync_feed().await;
    }
}

/// Leaves: a stopping instance's row goes, so no webhook waits for it.
pub async fn leave(cache: &CatalogCache) {
    let before = unix_ms_now() - KEEP_MS;
    if let Err(err) = cache
        .db()
        .forget_instances(Some(cache.instance_id()), before)
        .await
    {
        tracing::debug!(error = %err, "could not retire this instance's feed row");
    }
}

/// Deletes feed entries older than [`KEEP_MS`], and the rows of instances silent as long (a
/// scheduled job).
pub async fn prune(db: &Db, clock: &SharedClock) -> anyhow::Result<u64> {
    let before = clock.now_ms() - KEEP_MS;
    let rows = db.forget_instances(None, unix_ms_now() - KEEP_MS).await?;
    Ok(rows + crate::db::in_batches(|| db.prune_invalidations(before, crate::db::BATCH)).await?)
}

//! The consistency checker's history and its checks (the run itself is `tests/consistency.rs`).
//! Clients record what they did and saw with times from one epoch; after the run the checks
//! go over the whole history and name every violation with the events that make it one.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

/// One observation of a key's version by a read (an item, a list, a filtered list). Every
/// field is part of a violation's history (printed with `Debug`).
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct Read {
    pub start: Duration,
    pub end: Duration,
    pub instance: usize,
    pub path: &'static str,
    pub key: &'static str,
    pub version: u64,
}

/// A webhook answered 2xx: when, by which instance, and the Biz version of its key then.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct Ack {
    pub at: Duration,
    pub instance: usize,
    pub key: &'static str,
    pub version: u64,
    pub event_id: String,
    pub answer: String,
    pub latency: Duration,
}

/// What a booking client meant to do with a draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Confirm,
    Cancel,
    Expire,
}

/// A draft and every definite answer its clients got.
#[derive(Debug, Clone)]
pub struct Draft {
    pub id: String,
    pub plan: Plan,
    /// `(instance, status, code or booking id)` of each definite answer.
    pub answers: Vec<(usize, u16, String)>,
    /// The draft's status read back after the run.
    pub final_status: String,
}

/// The faults injected, by kind.
#[derive(Debug, Default)]
pub struct Faults {
    pub biz_errors: AtomicUsize,
    pub biz_hangs: AtomicUsize,
    pub biz_slow: AtomicUsize,
    pub kills: AtomicUsize,
    pub db_outages: AtomicUsize,
}

#[derive(Default)]
pub struct History {
    pub reads: Mutex<Vec<Read>>,
    pub acks: Mutex<Vec<Ack>>,
    pub drafts: Mutex<Vec<Draft>>,
    /// Violations found while running (a 5xx, a hung request…), with their context.
    pub violations: Mutex<Vec<String>>,
    pub faults: Faults,
    pub requests: AtomicUsize,
    pub unavailable: AtomicUsize,
    pub refused: AtomicUsize,
    pub duplicates: AtomicUsize,
    pub reordered: AtomicUsize,
    pub confirms: AtomicUsize,
    /// Largest resident set seen per instance slot, in KiB.
    pub max_rss_kib: Mutex<Vec<u64>>,
}

impl History {
    pub fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    pub fn count(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::Relaxed)
    }

    /// No read that began after a webhook's 2xx, on any instance, saw an older version.
    pub fn check_reads(&self) {
        let reads = self.reads.lock().unwrap();
        let acks = self.acks.lock().unwrap();
        // Per key: the acknowledgements in time order, with the highest version so far.
        let mut by_key: HashMap<&str, Vec<(&Ack, u64)>> = HashMap::new();
        let mut sorted: Vec<&Ack> = acks.iter().collect();
        sorted.sort_by_key(|a| a.at);
        for a in sorted {
            let line = by_key.entry(a.key).or_default();
            let highest = line.last().map_or(0, |(_, v)| *v).max(a.version);
            line.push((a, highest));
        }
        for read in reads.iter() {
            let Some(line) = by_key.get(read.key) else {
                continue;
            };
            let before = line.partition_point(|(a, _)| a.at < read.start);
            let required = before.checked_sub(1).map_or(0, |i| line[i].1);
            if read.version < required {
                let history: Vec<_> = line[..before]
                    .iter()
                    .rev()
                    .filter(|(a, _)| a.version > read.version)
                    .take(3)
                    .map(|(a, _)| a)
                    .collect();
                self.violation(format!(
                    "stale read: {read:?} saw v{} after v{required} was acknowledged; acks {history:?}",
                    read.version
                ));
            }
        }
    }

    /// Exactly one Biz booking per confirmed draft, with the id every 200 answered; none for
    /// any other draft; none that no draft asked for.
    pub fn check_bookings(&self, created: &[Value]) {
        let mut by_ref: HashMap<String, Vec<String>> = HashMap::new();
        for booking in created {
            let draft = booking["external_ref"].as_str().unwrap_or_default();
            let id = booking["id"].as_str().unwrap_or_default();
            by_ref.entry(draft.into()).or_default().push(id.into());
        }
        let drafts = self.drafts.lock().unwrap();
        for d in drafts.iter() {
            let booked = by_ref.remove(&d.id).unwrap_or_default();
            let confirmed_ids: Vec<&str> = d
                .answers
                .iter()
                .filter(|(_, status, _)| *status == 200)
                .map(|(_, _, id)| id.as_str())
                .collect();
            let ok = if d.final_status == "confirmed" {
                booked.len() == 1 && confirmed_ids.iter().all(|id| *id == booked[0])
            } else {
                booked.is_empty() && confirmed_ids.is_empty()
            };
            if !ok {
                self.violation(format!(
                    "booking: draft {} ({:?}, now {}) has Biz bookings {booked:?}; answers {:?}",
                    d.id, d.plan, d.final_status, d.answers
                ));
            }
        }
        for (draft, ids) in by_ref {
            self.violation(format!(
                "booking: Biz bookings {ids:?} for {draft:?}, no draft of this run"
            ));
        }
    }

    /// The one-line summary and the violations, for the log.
    pub fn report(&self, header: &str, extra: &str) -> String {
        let reads = self.reads.lock().unwrap();
        let acks = self.acks.lock().unwrap();
        let drafts = self.drafts.lock().unwrap();
        let violations = self.violations.lock().unwrap();
        let plans = |p: Plan| drafts.iter().filter(|d| d.plan == p).count();
        let finals = |s: &str| drafts.iter().filter(|d| d.final_status == s).count();
        let mut latencies: Vec<Duration> = acks.iter().map(|a| a.latency).collect();
        latencies.sort();
        let pct = |p: usize| {
            latencies
                .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        let rss = self.max_rss_kib.lock().unwrap();
        let max_rss_mib = rss.iter().copied().max().unwrap_or(0) / 1024;
        let f = &self.faults;
        let c = Self::count;
        let mut out = format!(
            "checker summary ({header}): operations: {} requests, {} reads checked, {} webhooks \
             acknowledged ({} duplicate deliveries, {} reordered), {} drafts ({} to confirm, {} \
             to cancel, {} left to expire; now {} confirmed, {} cancelled, {} expired, {} \
             failed) with {} confirm requests; faults: {} Biz 5xx bursts, {} Biz hangs, {} Biz \
             slow windows, {} SIGKILLs, {} database outages; {} documented 503s, {} requests \
             refused by a killed instance; webhook 2xx latency p50 {:?} p99 {:?}; max RSS {} \
             MiB{extra}; violations: {}",
            c(&self.requests),
            reads.len(),
            acks.len(),
            c(&self.duplicates),
            c(&self.reordered),
            drafts.len(),
            plans(Plan::Confirm),
            plans(Plan::Cancel),
            plans(Plan::Expire),
            finals("confirmed"),
            finals("cancelled"),
            finals("expired"),
            finals("failed"),
            c(&self.confirms),
            c(&f.biz_errors),
            c(&f.biz_hangs),
            c(&f.biz_slow),
            c(&f.kills),
            c(&f.db_outages),
            c(&self.unavailable),
            c(&self.refused),
            pct(50),
            pct(99),
            max_rss_mib,
            violations.len(),
        );
        for v in violations.iter().take(20) {
            let _ = write!(out, "\nviolation: {v}");
        }
        out
    }
}

/// The resident set of a process, in KiB (Linux `/proc`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

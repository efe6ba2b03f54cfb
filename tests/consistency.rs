//! Issue 16, the consistency checker: three `serve` processes on one database (a SQLite file;
//! the TDS server when `MANGO_TEST_MSSQL_URL` is set) in front of a fake Biz whose items carry a
//! `version` that grows on every update. At the same time:
//! - readers on every instance read items, the list, a filtered list and availability;
//! - a writer updates Biz, then sends the signed webhook to a random instance until one answers
//!   2xx, now and then repeating an earlier delivery elsewhere or delivering two out of order;
//! - booking clients create drafts and confirm each one concurrently on several instances,
//!   retrying after errors, or cancel it, or let it expire;
//! - faults: Biz answering 5xx, hanging and answering too slowly, at random; an instance killed
//!   with SIGKILL and started again; a database outage of 1.5 s (the SQLite file locked by
//!   another connection; on SQL Server, connections refused and cut by a gate in front of it).
//!
//! Then (`checker/`): no read on ANY instance that began after a webhook's 2xx saw an older
//! version; every acknowledged webhook visible on every instance; exactly one Biz booking per
//! confirmed draft and none for the others; no 5xx but the documented ones; no request left
//! unanswered past the client's timeout; memory bounded. `MANGO_CHECKER_SECS` (default 30)
//! sets the length; `bench/soak.sh --minutes N` runs it as a soak.

mod checker;
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use checker::{Ack, Draft, History, Plan, Read, rss_kib};
use common::*;
use mango_store::fakebiz::{BizCatalog, Failure, FakeBiz, Route};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const KEYS: [&str; 3] = ["svc_haircut_women", "svc_blowdry", "svc_haircut_men"];
const INSTANCES: usize = 3;
const READERS_PER_INSTANCE: usize = 2;
const BOOKERS: usize = 3;
const NONE: usize = usize::MAX;
/// A request not answered within this is a hung request (the service's own bounds: Biz 1 s,
/// a confirm's wait for another instance's claim, SQLite's 5 s busy timeout).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const BIZ_TIMEOUT_MS: &str = "1000";
const DRAFT_TTL_SECS: u64 = 3;
/// How long each database outage lasts.
const OUTAGE: Duration = Duration::from_millis(1500);
const ROUTES: [Route; 4] = [
    Route::Item,
    Route::List,
    Route::Bookings,
    Route::Availability,
];

/// The instances and what every client shares.
struct Cluster {
    epoch: Instant,
    deadline: Instant,
    bases: RwLock<Vec<String>>,
    pids: RwLock<Vec<u32>>,
    /// The instance killed and not yet restarted (`NONE`: none).
    down: AtomicUsize,
    client: reqwest::Client,
    store: String,
    business: String,
    /// The first bookable instant; drafts take successive two-hour slots after it.
    slots_from: time::OffsetDateTime,
    next_slot: AtomicUsize,
    history: History,
}

/// What a request came to: an answer, or none because its instance was killed under it (or
/// a violation, already recorded).
enum Answer {
    Done(u16, Value),
    Lost,
}

impl Cluster {
    fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn base(&self, instance: usize) -> String {
        self.bases.read().unwrap()[instance].clone()
    }

    fn pick(&self, rng: &mut StdRng) -> usize {
        loop {
            let i = rng.random_range(0..INSTANCES);
            if self.down.load(Ordering::Acquire) != i {
                return i;
            }
        }
    }

    /// Sends one request to `instance`; records it, and any 5xx but the documented ones, and
    /// any request left unanswered past `REQUEST_TIMEOUT`, as violations.
    async fn send(
        &self,
        instance: usize,
        what: &str,
        build: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Answer {
        self.history.requests.fetch_add(1, Ordering::Relaxed);
        let base = self.base(instance);
        let start = self.now();
        let request = build(&self.client, &base).header("X-Store-Id", &self.store);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or_default();
                let code = body["code"].as_str().unwrap_or_default();
                let documented = matches!(
                    (status, code),
                    (503, "upstream_unavailable" | "database_unavailable")
                ) || (what == "confirm"
                    && (status, code) == (502, "upstream_unavailable"));
                if status >= 500 {
                    if documented {
                        self.history.unavailable.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.history.violation(format!(
                            "undocumented {status}: {what} on instance {instance} at {start:?}: {body}"
                        ));
                    }
                }
                Answer::Done(status, body)
            }
            Err(err) => {
                let killed =
                    self.down.load(Ordering::Acquire) == instance || self.base(instance) != base;
                if killed {
                    self.history.refused.fetch_add(1, Ordering::Relaxed);
                } else if err.is_timeout() {
                    self.history.violation(format!(
                        "hung: {what} on instance {instance} sent at {start:?} had no answer \
                         within {REQUEST_TIMEOUT:?}"
                    ));
                } else {
                    self.history.violation(format!(
                        "no answer: {what} on instance {instance} at {start:?}: {err}"
                    ));
                }
                Answer::Lost
            }
        }
    }
}

fn version_of(item: &Value) -> u64 {
    item["version"].as_u64().unwrap_or(0)
}

async fn reader(cluster: Arc<Cluster>, instance: usize, mut rng: StdRng) {
    let date = cluster.slots_from.date();
    while cluster.running() {
        if cluster.down.load(Ordering::Acquire) == instance {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let key = KEYS[rng.random_range(0..KEYS.len())];
        let (path, url) = match rng.random_range(0..10) {
            0..6 => ("item", format!("/api/v1/services/{key}")),
            6..8 => ("list", "/api/v1/services".to_string()),
            8 => (
                "filtered",
                "/api/v1/services?category_id=cat_hair".to_string(),
            ),
            _ => (
                "availability",
                format!("/api/v1/availability?service_id={key}&date={date}"),
            ),
        };
        let start = cluster.now();
        let Answer::Done(200, body) = cluster
            .send(instance, path, |c, base| c.get(format!("{base}{url}")))
            .await
        else {
            continue;
        };
        let end = cluster.now();
        let seen: Vec<(&'static str, u64)> = match path {
            "item" => vec![(key, version_of(&body["data"]))],
            "availability" => Vec::new(),
            _ => body["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|item| {
                    let k = KEYS.iter().find(|k| item["id"] == **k)?;
                    Some((*k, version_of(item)))
                })
                .collect(),
        };
        let mut reads = cluster.history.reads.lock().unwrap();
        for (key, version) in seen {
            reads.push(Read {
                start,
                end,
                instance,
                path,
                key,
                version,
            });
        }
    }
}

/// Delivers one webhook until an instance answers it 2xx (Biz retries the same way); records
/// the acknowledgement with the Biz version of the key when it was sent.
async fn deliver(
    cluster: &Cluster,
    rng: &mut StdRng,
    event_id: &str,
    key: &'static str,
    version: u64,
) {
    let sent = Instant::now();
    for attempt in 0.. {
        if sent.elapsed() > Duration::from_secs(30) {
            cluster
                .history
                .violation(format!("webhook {event_id} never acknowledged"));
            return;
        }
        let instance = cluster.pick(rng);
        let business = cluster.business.clone();
        let answer = cluster
            .send(instance, "webhook", |c, base| {
                signed_services_webhook_for(c, base, &business, event_id, key)
            })
            .await;
        match answer {
            Answer::Done(200, body) => {
                let answer = body["data"]["status"].as_str().unwrap_or_default();
                if answer != "processed" && (attempt == 0 || answer != "duplicate") {
                    cluster.history.violation(format!(
                        "webhook {event_id} (attempt {attempt}) answered {body}"
                    ));
                }
                cluster.history.acks.lock().unwrap().push(Ack {
                    at: cluster.now(),
                    instance,
                    key,
                    version,
                    event_id: event_id.to_string(),
                    answer: answer.to_string(),
                    latency: sent.elapsed(),
                });
                return;
            }
            // The documented 503 (the database is down): Biz retries.
            Answer::Done(503, _) | Answer::Lost => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Answer::Done(status, body) => {
                cluster.history.violation(format!(
                    "webhook {event_id} on instance {instance}: {status} {body}"
                ));
                return;
            }
        }
    }
}

async fn writer(
    cluster: Arc<Cluster>,
    biz: FakeBiz,
    items: Vec<Value>,
    mut rng: StdRng,
) -> [u64; 3] {
    let mut versions = [0u64; KEYS.len()];
    let mut n = 0;
    let update = |k: usize, versions: &mut [u64; 3]| {
        versions[k] += 1;
        let mut item = items.iter().find(|i| i["id"] == KEYS[k]).unwrap().clone();
        item["version"] = json!(versions[k]);
        biz.upsert_item(&cluster.business, "services", item);
    };
    while cluster.running() {
        n += 1;
        let k = rng.random_range(0..KEYS.len());
        update(k, &mut versions);
        let event_id = format!("evt_chk_{}_{n}", cluster.store);
        if rng.random_bool(0.1) {
            // Two updates, their deliveries reordered: the later event arrives first.
            update(k, &mut versions);
            let later = format!("{event_id}_b");
            deliver(&cluster, &mut rng, &later, KEYS[k], versions[k]).await;
            cluster.history.reordered.fetch_add(1, Ordering::Relaxed);
        }
        deliver(&cluster, &mut rng, &event_id, KEYS[k], versions[k]).await;
        if rng.random_bool(0.2) {
            // An earlier delivery again, to any instance: a duplicate, acknowledged as such.
            let earlier = {
                let acks = cluster.history.acks.lock().unwrap();
                acks[rng.random_range(0..acks.len())].clone()
            };
            let instance = cluster.pick(&mut rng);
            let business = cluster.business.clone();
            let sent = Instant::now();
            let answer = cluster
                .send(instance, "duplicate webhook", |c, base| {
                    signed_services_webhook_for(c, base, &business, &earlier.event_id, earlier.key)
                })
                .await;
            if let Answer::Done(status, body) = answer {
                let status_of = body["data"]["status"].as_str().unwrap_or_default();
                match (status, status_of) {
                    (200, "duplicate") => {
                        cluster.history.duplicates.fetch_add(1, Ordering::Relaxed);
                        cluster.history.acks.lock().unwrap().push(Ack {
                            at: cluster.now(),
                            instance,
                            latency: sent.elapsed(),
                            answer: status_of.into(),
                            ..earlier
                        });
                    }
                    (503, _) => {}
                    _ => cluster.history.violation(format!(
                        "repeated delivery {} on instance {instance}: {status} {body}",
                        earlier.event_id
                    )),
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..40))).await;
    }
    versions
}

/// Creates a draft (retrying with its `Idempotency-Key`), then confirms it from several
/// instances at once, cancels it, or lets it expire.
async fn booker(cluster: Arc<Cluster>, mut rng: StdRng) {
    while cluster.running() {
        let slot = cluster.next_slot.fetch_add(1, Ordering::Relaxed);
        let start_at = cluster.slots_from + time::Duration::hours(2 * slot as i64);
        let start_at = start_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let body = json!({"service_id": "svc_haircut_men", "start_at": start_at,
            "customer": {"name": "Checker", "phone": "+77010000000"}});
        let key = format!("{}-{slot}", cluster.store);
        let Some(id) = create_draft(&cluster, &mut rng, &body, &key).await else {
            continue;
        };
        let plan = match rng.random_range(0..20) {
            0..14 => Plan::Confirm,
            14..17 => Plan::Cancel,
            _ => Plan::Expire,
        };
        let answers = match plan {
            Plan::Confirm => {
                let confirmers = rng.random_range(2..=3);
                let runs = (0..confirmers).map(|i| {
                    let cluster = cluster.clone();
                    let (id, seed) = (id.clone(), rng.random::<u64>() ^ i);
                    tokio::spawn(async move {
                        confirm_until_definite(&cluster, &mut StdRng::seed_from_u64(seed), &id)
                            .await
                    })
                });
                let done = futures::future::join_all(runs).await;
                done.into_iter().filter_map(|r| r.unwrap()).collect()
            }
            Plan::Cancel => cancel(&cluster, &mut rng, &id).await.into_iter().collect(),
            Plan::Expire => {
                tokio::time::sleep(Duration::from_millis(DRAFT_TTL_SECS * 1000 + 300)).await;
                let answer = confirm_until_definite(&cluster, &mut rng, &id).await;
                if let Some((_, status, _)) = &answer
                    && *status != 410
                {
                    cluster
                        .history
                        .violation(format!("draft {id} confirmed past its expiry: {answer:?}"));
                }
                answer.into_iter().collect()
            }
        };
        cluster.history.drafts.lock().unwrap().push(Draft {
            id,
            plan,
            answers,
            final_status: String::new(),
        });
    }
}

async fn create_draft(
    cluster: &Cluster,
    rng: &mut StdRng,
    body: &Value,
    key: &str,
) -> Option<String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let instance = cluster.pick(rng);
        let answer = cluster
            .send(instance, "draft", |c, base| {
                c.post(format!("{base}/api/v1/booking/draft"))
                    .header("Idempotency-Key", key)
                    .json(body)
            })
            .await;
        match answer {
            Answer::Done(201, body) => return body["data"]["id"].as_str().map(str::to_owned),
            Answer::Done(status, _) if status >= 500 || status == 429 => {}
            Answer::Lost => {}
            Answer::Done(status, body) => {
                cluster
                    .history
                    .violation(format!("draft create {key}: {status} {body}"));
                return None;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster
        .history
        .violation(format!("draft create {key} never succeeded"));
    None
}

/// Confirms until a definite answer: 200 (the booking id), 410, or a failure code.
async fn confirm_until_definite(
    cluster: &Cluster,
    rng: &mut StdRng,
    id: &str,
) -> Option<(usize, u16, String)> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let instance = cluster.pick(rng);
        cluster.history.confirms.fetch_add(1, Ordering::Relaxed);
        let answer = cluster
            .send(instance, "confirm", |c, base| {
                c.post(format!("{base}/api/v1/booking/draft/{id}/confirm"))
            })
            .await;
        match answer {
            Answer::Done(200, body) => {
                let booking = body["data"]["booking"]["id"].as_str().unwrap_or_default();
                return Some((instance, 200, booking.to_string()));
            }
            Answer::Done(409, body) if body["code"] == "confirm_in_progress" => {}
            Answer::Done(429, _) => {}
            Answer::Done(status, body) if status < 500 => {
                let code = body["code"].as_str().unwrap_or_default().to_string();
                return Some((instance, status, code));
            }
            Answer::Done(..) | Answer::Lost => {}
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..200))).await;
    }
    None
}

async fn cancel(cluster: &Cluster, rng: &mut StdRng, id: &str) -> Option<(usize, u16, String)> {
    for _ in 0..100 {
        let instance = cluster.pick(rng);
        let answer = cluster
            .send(instance, "cancel", |c, base| {
                c.delete(format!("{base}/api/v1/booking/draft/{id}"))
            })
            .await;
        match answer {
            Answer::Done(204, _) => return Some((instance, 204, "cancelled".into())),
            Answer::Done(status, body) if status < 500 => {
                cluster
                    .history
                    .violation(format!("cancel of {id}: {status} {body}"));
                return None;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    None
}

/// Biz failing now and then: 5xx bursts, hangs and slow answers on a random route.
async fn biz_chaos(cluster: Arc<Cluster>, biz: FakeBiz, mut rng: StdRng) {
    let faults = &cluster.history.faults;
    while cluster.running() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2000))).await;
        let route = ROUTES[rng.random_range(0..ROUTES.len())];
        match rng.random_range(0..3) {
            0 => {
                let failure = if rng.random_bool(0.5) {
                    Failure::ServerError
                } else {
                    Failure::Unavailable
                };
                biz.fail_next(route, rng.random_range(1..4), failure);
                faults.biz_errors.fetch_add(1, Ordering::Relaxed);
            }
            1 => {
                biz.fail_next(route, rng.random_range(1..3), Failure::Hang);
                faults.biz_hangs.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                // Slower than the service's Biz timeout: a timeout for every call meanwhile.
                biz.set_delay(route, Duration::from_millis(1500));
                tokio::time::sleep(Duration::from_millis(rng.random_range(300..1000))).await;
                biz.set_delay(route, Duration::ZERO);
                faults.biz_slow.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// SIGKILLs an instance (halfway through a short run; every 150 s of a long one) and starts
/// it again on the same database.
async fn killer(
    cluster: Arc<Cluster>,
    mut instances: Vec<ServeProcess>,
    start: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ServeProcess> + Send>>,
    mut rng: StdRng,
) -> Vec<ServeProcess> {
    let run = cluster.deadline - cluster.epoch;
    let every = (run / 2).min(Duration::from_secs(150));
    let mut next = cluster.epoch + every;
    while next + Duration::from_secs(3) < cluster.deadline {
        tokio::time::sleep_until(next.into()).await;
        let victim = rng.random_range(0..INSTANCES);
        cluster.down.store(victim, Ordering::Release);
        instances[victim].child.kill().unwrap();
        instances[victim].child.wait().unwrap();
        cluster.history.faults.kills.fetch_add(1, Ordering::Relaxed);
        instances[victim] = start().await;
        cluster.bases.write().unwrap()[victim] = instances[victim].base.clone();
        cluster.pids.write().unwrap()[victim] = instances[victim].child.id();
        cluster.down.store(NONE, Ordering::Release);
        next += every;
    }
    instances
}

/// How the checker cuts the database off.
enum Database {
    /// Another connection holds the SQLite file's write lock.
    SqliteFile(std::path::PathBuf),
    /// The TDS server is behind a `gate`, which refuses and cuts connections while closed.
    Gate(watch::Sender<bool>),
}

/// A database outage of 1.5 s (a third of the way into a short run; every 100 s of a long one).
async fn db_outages(cluster: Arc<Cluster>, db: Database) {
    let run = cluster.deadline - cluster.epoch;
    let every = (run / 3).min(Duration::from_secs(100));
    let mut next = cluster.epoch + every;
    while next + Duration::from_secs(3) < cluster.deadline {
        tokio::time::sleep_until(next.into()).await;
        match &db {
            Database::SqliteFile(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let lock = rusqlite::Connection::open(&path).unwrap();
                    lock.busy_timeout(Duration::from_secs(10)).unwrap();
                    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
                    std::thread::sleep(OUTAGE);
                    lock.execute_batch("ROLLBACK").unwrap();
                })
                .await
                .unwrap();
            }
            Database::Gate(open) => {
                open.send_replace(false);
                tokio::time::sleep(OUTAGE).await;
                open.send_replace(true);
            }
        }
        cluster
            .history
            .faults
            .db_outages
            .fetch_add(1, Ordering::Relaxed);
        next += every;
    }
}

/// The resident set of every instance, twice a second.
async fn memory_sampler(cluster: Arc<Cluster>) {
    while cluster.running() {
        let pids = cluster.pids.read().unwrap().clone();
        {
            let mut max = cluster.history.max_rss_kib.lock().unwrap();
            for (i, pid) in pids.iter().enumerate() {
                if let Some(kib) = rss_kib(*pid) {
                    max[i] = max[i].max(kib);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_faults_no_read_anywhere_is_older_than_an_answered_webhook_and_each_draft_books_once()
{
    let run_for = Duration::from_secs(
        std::env::var("MANGO_CHECKER_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    let rss_limit_mib: u64 = std::env::var("MANGO_CHECKER_RSS_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    let seed: u64 = std::env::var("MANGO_CHECKER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    // Unique per run: a TDS database is shared with other suites.
    let run_id = format!("{:08x}", seed as u32);
    let (store, business) = (format!("chk-{run_id}"), format!("biz_chk_{run_id}"));
    let biz = FakeBiz::new(BIZ_KEY);
    let (_, catalog) = BizCatalog::load_dir(&fixtures_dir()).unwrap();
    biz.add_business(&business, catalog);
    let biz_url = biz.spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("checker.db");
    // On SQL Server the instances reach the server through a gate the checker can close.
    let (database_url, database) = match mssql_url() {
        Some(url) => {
            let (mut url, open) = gate::behind_gate(&url);
            // Small pools, as for a database server sharing two cores with three instances and
            // the checker: on Babelfish each connection is a PostgreSQL backend whose T-SQL
            // parser warms up on its own (three quarters of the run's CPU under `perf`), and
            // every outage makes every instance open its pool again. README, "SQL Server".
            url.query_pairs_mut().append_pair("pool_size", "2");
            (url.to_string(), Database::Gate(open))
        }
        None => (
            format!("sqlite://{}", db.display()),
            Database::SqliteFile(db.clone()),
        ),
    };
    let ttl = DRAFT_TTL_SECS.to_string();
    let env: Vec<(&str, String)> = vec![
        (
            "MANGO_LOG",
            std::env::var("MANGO_CHECKER_LOG").unwrap_or("warn".into()),
        ),
        ("MANGO_DATABASE_URL", database_url.clone()),
        ("MANGO_BIZ_TIMEOUT_MS", BIZ_TIMEOUT_MS.into()),
        ("MANGO_DRAFT_TTL_SECS", ttl),
        // The booking clients stand for many customers behind one address.
        ("MANGO_RATE_LIMIT_PER_CLIENT", "1000000".into()),
        ("MANGO_RATE_LIMIT_PER_STORE", "1000000".into()),
    ];
    let start = {
        let (db, biz_url, env) = (db.clone(), biz_url.clone(), env.clone());
        move || {
            let (db, biz_url, env) = (db.clone(), biz_url.clone(), env.clone());
            Box::pin(async move {
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                // As a supervisor would: `serve` exits when the database is down at start-up
                // (a restart can fall in an outage), so it is started again a moment later.
                for _ in 0..10 {
                    if let Some(process) = ServeProcess::try_start(&db, &biz_url, &env).await {
                        return process;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                panic!("the server starts")
            })
                as std::pin::Pin<Box<dyn std::future::Future<Output = ServeProcess> + Send>>
        }
    };
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        instances.push(start().await);
    }
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap();
    let first = instances[0].base.clone();
    let created = client
        .post(format!("{first}/admin/v1/stores"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"slug": store, "name": "Checker", "biz_business_id": business}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let items: Vec<Value> = client
        .get(format!("{first}/api/v1/services"))
        .header("X-Store-Id", &store)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["data"]
        .as_array()
        .unwrap()
        .clone();

    let slots_from = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .replace_time(time::Time::MIDNIGHT);
    let epoch = Instant::now();
    let cluster = Arc::new(Cluster {
        epoch,
        deadline: epoch + run_for,
        bases: RwLock::new(instances.iter().map(|p| p.base.clone()).collect()),
        pids: RwLock::new(instances.iter().map(|p| p.child.id()).collect()),
        down: AtomicUsize::new(NONE),
        client,
        store,
        business,
        slots_from,
        next_slot: AtomicUsize::new(0),
        history: History {
            max_rss_kib: std::sync::Mutex::new(vec![0; INSTANCES]),
            ..History::default()
        },
    });
    let mut tasks = Vec::new();
    for instance in 0..INSTANCES {
        for _ in 0..READERS_PER_INSTANCE {
            let rng = StdRng::seed_from_u64(rng.random());
            tasks.push(tokio::spawn(reader(cluster.clone(), instance, rng)));
        }
    }
    for _ in 0..BOOKERS {
        let rng = StdRng::seed_from_u64(rng.random());
        tasks.push(tokio::spawn(booker(cluster.clone(), rng)));
    }
    let seeded = StdRng::seed_from_u64(rng.random());
    tasks.push(tokio::spawn(biz_chaos(
        cluster.clone(),
        biz.clone(),
        seeded,
    )));
    tasks.push(tokio::spawn(memory_sampler(cluster.clone())));
    let backend_name = match database {
        Database::SqliteFile(_) => "sqlite",
        Database::Gate(_) => "mssql",
    };
    tasks.push(tokio::spawn(db_outages(cluster.clone(), database)));
    let seeded = StdRng::seed_from_u64(rng.random());
    let killing = tokio::spawn(killer(cluster.clone(), instances, start, seeded));
    let seeded = StdRng::seed_from_u64(rng.random());
    let writing = tokio::spawn(writer(cluster.clone(), biz.clone(), items, seeded));
    let versions = writing.await.unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let _instances = killing.await.unwrap();

    // Faults over: everything acknowledged must be visible everywhere, every draft resolved.
    for route in ROUTES {
        biz.fail_next(route, 0, Failure::None);
        biz.set_delay(route, Duration::ZERO);
    }
    finish_drafts(&cluster, &mut rng).await;
    for instance in 0..INSTANCES {
        for (k, key) in KEYS.iter().enumerate() {
            let acked = cluster
                .history
                .acks
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.key == *key)
                .map(|a| a.version)
                .max()
                .unwrap_or(0);
            let mut seen = None;
            for _ in 0..20 {
                let url = format!("/api/v1/services/{key}");
                if let Answer::Done(200, body) = cluster
                    .send(instance, "final read", |c, base| {
                        c.get(format!("{base}{url}"))
                    })
                    .await
                {
                    seen = Some(version_of(&body["data"]));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if seen.is_none_or(|v| v < acked) {
                cluster.history.violation(format!(
                    "not visible: instance {instance} serves {key} at {seen:?}, v{acked} was \
                     acknowledged (Biz has v{})",
                    versions[k]
                ));
            }
        }
    }
    cluster.history.check_reads();
    let created: Vec<Value> = biz
        .created_bookings()
        .into_iter()
        .filter(|b| b["business_id"] == *cluster.business)
        .collect();
    cluster.history.check_bookings(&created);
    let max_rss = cluster.history.max_rss_kib.lock().unwrap().clone();
    if max_rss.iter().any(|kib| kib / 1024 > rss_limit_mib) {
        cluster.history.violation(format!(
            "memory: resident sets {max_rss:?} KiB, above {rss_limit_mib} MiB"
        ));
    }
    let report = cluster.history.report(
        &format!("seed {seed}, {run_for:?}, {backend_name}, {INSTANCES} instances"),
        &format!(", {} Biz bookings", created.len()),
    );
    println!("{report}");
    let h = &cluster.history;
    assert!(h.reads.lock().unwrap().len() > 100, "the readers read");
    assert!(h.acks.lock().unwrap().len() > 20, "the writer wrote");
    assert!(h.drafts.lock().unwrap().len() > 5, "the bookers booked");
    assert!(
        h.violations.lock().unwrap().is_empty(),
        "the checker found violations (see the summary above)"
    );
}

/// Reads every draft back; a draft still unresolved (its confirms never got a definite
/// answer) is confirmed once more now that Biz is healthy.
async fn finish_drafts(cluster: &Cluster, rng: &mut StdRng) {
    let drafts = cluster.history.drafts.lock().unwrap().clone();
    let mut finished = Vec::new();
    for mut draft in drafts {
        if draft.plan == Plan::Confirm && draft.answers.is_empty() {
            draft
                .answers
                .extend(confirm_until_definite(cluster, rng, &draft.id).await);
        }
        for _ in 0..20 {
            let instance = cluster.pick(rng);
            let id = draft.id.clone();
            if let Answer::Done(200, body) = cluster
                .send(instance, "draft read", |c, base| {
                    c.get(format!("{base}/api/v1/booking/draft/{id}"))
                })
                .await
            {
                draft.final_status = body["data"]["status"].as_str().unwrap_or_default().into();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        finished.push(draft);
    }
    *cluster.history.drafts.lock().unwrap() = finished;
}

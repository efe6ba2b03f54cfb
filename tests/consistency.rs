//! Issue 16, the consistency checker (the short CI run): three `serve` processes on one SQLite
//! file in front of a fake Biz whose items carry a `version` that grows on every update.
//! Readers on every instance read items and the list; a writer updates Biz, then sends the
//! signed webhook to a random instance (now and then repeating an earlier delivery to another
//! one, which must answer `duplicate`), while Biz fails now and then and one instance is
//! killed with SIGKILL halfway and started again. Afterwards the history is
//! checked: no read that began after a webhook's 2xx, on the instance that answered it, saw an
//! older version; on the other instances, none that began a second after it; and no 5xx but
//! the documented 503. `MANGO_CHECKER_SECS` makes the run longer (a soak).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::*;
use mango_store::fakebiz::{Failure, FakeBiz, Route};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const KEYS: [&str; 3] = ["svc_haircut_women", "svc_blowdry", "svc_haircut_men"];
const INSTANCES: usize = 3;
const READERS_PER_INSTANCE: usize = 3;
const NONE: usize = usize::MAX;
/// How soon an instance must see a webhook another instance answered (the invalidation feed).
const ELSEWHERE_WITHIN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Read {
    start: Duration,
    end: Duration,
    instance: usize,
    path: &'static str,
    key: &'static str,
    version: u64,
}

#[derive(Debug, Clone)]
struct Ack {
    at: Duration,
    instance: usize,
    key: &'static str,
    version: u64,
    event_id: String,
}

fn version_of(item: &Value) -> u64 {
    item["version"].as_u64().unwrap_or(0)
}

fn signed_webhook(
    client: &reqwest::Client,
    base: &str,
    event_id: &str,
    key: &str,
) -> reqwest::RequestBuilder {
    signed_services_webhook(client, base, event_id, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_after_a_webhook_answer_sees_an_older_version_on_any_instance() {
    if skip_on_mssql("the checker runs its processes on one SQLite file") {
        return;
    }
    let run_for = Duration::from_secs(
        std::env::var("MANGO_CHECKER_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(8),
    );
    let seed: u64 = rand::random();
    let biz = FakeBiz::new(BIZ_KEY);
    biz.load_fixtures(&fixtures_dir()).unwrap();
    let biz_url = biz.spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("checker.db");
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        instances.push(ServeProcess::start(&db, &biz_url, &[("MANGO_LOG", "warn")]).await);
    }
    let bases: Arc<RwLock<Vec<String>>> = Arc::new(RwLock::new(
        instances.iter().map(|p| p.base.clone()).collect(),
    ));
    let first = bases.read().unwrap()[0].clone();
    // The instance killed and not yet restarted (`NONE`: none).
    let down = Arc::new(AtomicUsize::new(NONE));
    let refused = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{first}/admin/v1/stores"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"slug": STORE, "name": "Salon", "biz_business_id": BUSINESS}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let items: Vec<Value> = client
        .get(format!("{first}/api/v1/services"))
        .header("X-Store-Id", STORE)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["data"]
        .as_array()
        .unwrap()
        .clone();

    let epoch = Instant::now();
    let deadline = epoch + run_for;
    let reads = Arc::new(Mutex::new(Vec::<Read>::new()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let unavailable = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut readers = Vec::new();
    for instance in 0..INSTANCES {
        for r in 0..READERS_PER_INSTANCE {
            let (bases, reads, errors, unavailable, down, refused) = (
                bases.clone(),
                reads.clone(),
                errors.clone(),
                unavailable.clone(),
                down.clone(),
                refused.clone(),
            );
            let client = client.clone();
            let mut rng = StdRng::seed_from_u64(seed ^ ((instance * 16 + r) as u64 + 1));
            readers.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    if down.load(Ordering::Acquire) == instance {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    let base = bases.read().unwrap()[instance].clone();
                    let key = KEYS[rng.random_range(0..KEYS.len())];
                    let (path, url) = if rng.random_bool(0.7) {
                        ("item", format!("{base}/api/v1/services/{key}"))
                    } else {
                        ("list", format!("{base}/api/v1/services"))
                    };
                    let start = epoch.elapsed();
                    let response = match client.get(&url).header("X-Store-Id", STORE).send().await {
                        Ok(response) => response,
                        Err(err) => {
                            // The instance was killed under this request.
                            if down.load(Ordering::Acquire) == instance
                                || bases.read().unwrap()[instance] != base
                            {
                                refused.fetch_add(1, Ordering::Relaxed);
                            } else {
                                errors.lock().unwrap().push(format!("{url}: {err}"));
                            }
                            continue;
                        }
                    };
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or_default();
                    let end = epoch.elapsed();
                    match status {
                        200 => {}
                        503 if body["code"] == "upstream_unavailable" => {
                            unavailable.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        other => {
                            errors
                                .lock()
                                .unwrap()
                                .push(format!("{url}: {other} {body}"));
                            continue;
                        }
                    }
                    let mut seen = Vec::new();
                    if path == "item" {
                        seen.push((key, version_of(&body["data"])));
                    } else {
                        for item in body["data"].as_array().into_iter().flatten() {
                            if let Some(k) = KEYS.iter().find(|k| item["id"] == **k) {
                                seen.push((*k, version_of(item)));
                            }
                        }
                    }
                    let mut reads = reads.lock().unwrap();
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
            }));
        }
    }

    // The writer.
    let mut rng = StdRng::seed_from_u64(seed);
    let mut acks: Vec<Ack> = Vec::new();
    let mut versions = [0u64; KEYS.len()];
    let (mut duplicates, mut biz_faults, mut n) = (0, 0, 0);
    let mut killed_for = None;
    while Instant::now() < deadline {
        if killed_for.is_none() && epoch.elapsed() > run_for / 2 {
            // SIGKILL one instance mid-run and start it again on the same database.
            let victim = rng.random_range(0..INSTANCES);
            let killed = Instant::now();
            down.store(victim, Ordering::Release);
            instances[victim].child.kill().unwrap();
            instances[victim].child.wait().unwrap();
            instances[victim] = ServeProcess::start(&db, &biz_url, &[("MANGO_LOG", "warn")]).await;
            bases.write().unwrap()[victim] = instances[victim].base.clone();
            down.store(NONE, Ordering::Release);
            killed_for = Some((victim, killed.elapsed()));
        }
        n += 1;
        let k = rng.random_range(0..KEYS.len());
        versions[k] += 1;
        let mut item = items.iter().find(|i| i["id"] == KEYS[k]).unwrap().clone();
        item["version"] = json!(versions[k]);
        biz.upsert_item(BUSINESS, "services", item);
        if rng.random_bool(0.05) {
            biz.fail_next(Route::Item, 2, Failure::Unavailable);
            biz_faults += 1;
        }
        let instance = rng.random_range(0..INSTANCES);
        let event_id = format!("evt_checker_{n}");
        let base = bases.read().unwrap()[instance].clone();
        let response = signed_webhook(&client, &base, &event_id, KEYS[k])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_default();
        assert_eq!(
            (status, body["data"]["status"].as_str()),
            (200, Some("processed")),
            "{event_id}"
        );
        acks.push(Ack {
            at: epoch.elapsed(),
            instance,
            key: KEYS[k],
            version: versions[k],
            event_id,
        });
        if rng.random_bool(0.2) {
            // An earlier delivery again, to another instance, out of order.
            let earlier = &acks[rng.random_range(0..acks.len())];
            let other = (earlier.instance + 1 + rng.random_range(0..2)) % INSTANCES;
            let base = bases.read().unwrap()[other].clone();
            let (status, _, body) = parts(
                signed_webhook(&client, &base, &earlier.event_id, earlier.key)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(
                (status, body["data"]["status"].as_str()),
                (200, Some("duplicate"))
            );
            duplicates += 1;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..40))).await;
    }
    for reader in readers {
        reader.await.unwrap();
    }

    let reads = reads.lock().unwrap();
    let mut violations = Vec::new();
    for read in reads.iter() {
        // The newest acknowledged version of the key whose 2xx came before the read began:
        // on the same instance at once, elsewhere within the feed's second.
        let required = acks
            .iter()
            .filter(|a| a.key == read.key)
            .filter(|a| {
                (a.instance == read.instance && a.at < read.start)
                    || a.at + ELSEWHERE_WITHIN < read.start
            })
            .map(|a| a.version)
            .max()
            .unwrap_or(0);
        if read.version < required {
            let history: Vec<_> = acks
                .iter()
                .filter(|a| a.key == read.key && a.version > read.version)
                .take(3)
                .collect();
            violations.push(format!(
                "{read:?} saw v{} < v{required}; acks {history:?}",
                read.version
            ));
        }
    }
    // How long after another instance's 2xx an instance still served the older version
    // (what the one-second allowance covers: the invalidation feed's tailing).
    let mut lag = Duration::ZERO;
    for read in reads.iter() {
        for a in acks.iter() {
            if a.key == read.key && a.version > read.version && a.at < read.start {
                lag = lag.max(read.start - a.at);
            }
        }
    }
    let errors = errors.lock().unwrap();
    let list_reads = reads.iter().filter(|r| r.path == "list").count();
    let slowest = reads
        .iter()
        .map(|r| r.end - r.start)
        .max()
        .unwrap_or_default();
    println!(
        "checker: {list_reads} of the observations from lists; slowest read {slowest:?}; \
         an instance served a version older than another instance's answered webhook for at \
         most {lag:?} after that 2xx"
    );
    println!(
        "checker (seed {seed}, {run_for:?}): {} reads checked on {} instances, {} webhooks \
         acknowledged, {duplicates} duplicate deliveries, {biz_faults} Biz fault bursts, {} \
         503s, {} other errors, {} violations",
        reads.len(),
        INSTANCES,
        acks.len(),
        unavailable.load(Ordering::Relaxed),
        errors.len(),
        violations.len(),
    );
    let (victim, restart) = killed_for.expect("an instance was killed");
    println!(
        "checker: instance {victim} killed with SIGKILL and serving again after {restart:?}; \
         {} requests to it failed meanwhile",
        refused.load(Ordering::Relaxed)
    );
    for v in violations.iter().take(10) {
        println!("violation: {v}");
    }
    for e in errors.iter().take(10) {
        println!("error: {e}");
    }
    assert!(reads.len() > 100, "the readers read");
    assert!(acks.len() > 20, "the writer wrote");
    assert!(
        errors.is_empty(),
        "no answer but 200 and the documented 503"
    );
    assert!(
        violations.is_empty(),
        "no read saw an acknowledged update undone"
    );
}

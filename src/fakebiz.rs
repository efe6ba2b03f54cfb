//! An in-process fake of the Mango Biz API (CONTRACT §7), served by the `demo` command from
//! `fixtures/` and by integration tests as the upstream they break on purpose.
//!
//! It is faithful where a careless client would get away with things against a lenient stub:
//! every request needs the bearer key; lists are paged with opaque cursors that contain `+`,
//! `/` and `=` (a client that does not URL-encode them gets 400); unknown ids are 404; bookings
//! are validated (422), checked for overlap (409) and idempotent per `Idempotency-Key` (the
//! first answer, whatever it was, is replayed). Knobs make routes slow or broken, and every
//! request is counted so tests can assert how often the store went upstream.
//!
//! A booking that "hangs" is created before the fake goes silent, as when a real server's
//! answer is lost on the way back: only then does a retry with the same key prove it is safe.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::Rng as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const FIXTURE_BUSINESS_FILE: &str = "business.json";
/// A fixture set's declaration of its extra resources (CONTRACT §12), `[[resources]]` entries.
pub const FIXTURE_RESOURCES_FILE: &str = "resources.toml";

/// Served (empty when a business has none) at every business: what the store always declares.
const DEFAULT_RESOURCES: [&str; 3] = ["services", "products", "staff"];
const DEFAULT_PAGE_SIZE: usize = 8;
/// Long enough that any sane client timeout fires first.
const HANG: Duration = Duration::from_secs(3600);
/// Encodes to "+/+/" in base64, so every cursor needs URL-encoding: an unencoded `+` arrives
/// as a space and the cursor no longer decodes.
const CURSOR_MAGIC: [u8; 3] = [0xFB, 0xFF, 0xBF];

/// One business's catalog: items per Biz path (a resource's `biz_path`, e.g. `services` or
/// `working-hours`) in Biz's order, and the business as `business.json` describes it.
#[derive(Clone, Debug, Default)]
pub struct BizCatalog {
    lists: BTreeMap<String, Vec<Value>>,
    /// `business.json`: name, `utc_offset`, `dst`, `opening_hours`, `slot_minutes`.
    pub profile: Value,
}

impl BizCatalog {
    /// A catalog with these items at `path` (builder for tests).
    pub fn with(mut self, path: &str, items: Vec<Value>) -> Self {
        self.lists.insert(path.to_owned(), items);
        self
    }

    /// Loads a fixture set: `business.json`, the optional `resources.toml` (which maps a
    /// resource to its `biz_path`), and every other `NAME.json` as the items of resource NAME.
    /// Returns (business_id, catalog). Errors are one line naming the file and the problem.
    pub fn load_dir(dir: &FsPath) -> anyhow::Result<(String, BizCatalog)> {
        let (business_path, business) = read_json(dir, FIXTURE_BUSINESS_FILE)?;
        let Some(business_id) = business["business_id"].as_str().filter(|b| !b.is_empty()) else {
            bail!("{business_path}: expected an object with a string \"business_id\"");
        };
        let business_id = business_id.to_owned();
        let paths = biz_paths(dir)?;
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| anyhow!("{}: cannot list: {e}", dir.display()))?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".json")?;
                (name != FIXTURE_BUSINESS_FILE).then(|| stem.to_owned())
            })
            .collect();
        names.sort();
        let mut catalog = BizCatalog {
            lists: BTreeMap::new(),
            profile: business,
        };
        for name in names {
            let (shown, items) = read_items(dir, &format!("{name}.json"))?;
            if name == "services" {
                for service in &items {
                    if let Some(problem) = service_problem(service) {
                        bail!("{shown}: service {}: {problem}", service["id"]);
                    }
                }
            }
            let path = paths.get(&name).cloned().unwrap_or(name);
            catalog.lists.insert(path, items);
        }
        let service_ids: HashSet<&str> = catalog
            .items("services")
            .iter()
            .filter_map(item_id)
            .collect();
        for member in catalog.items("staff") {
            let staff_path = dir.join("staff.json").display().to_string();
            let known = |id: &Value| id.as_str().is_some_and(|id| service_ids.contains(id));
            let Some(offered) = member["service_ids"].as_array() else {
                bail!(
                    "{staff_path}: staff {}: \"service_ids\" is not an array",
                    member["id"]
                );
            };
            if let Some(unknown) = offered.iter().find(|id| !known(id)) {
                let who = format!("{staff_path}: staff {}", member["id"]);
                bail!("{who}: \"service_ids\" names unknown service {unknown}");
            }
        }
        Ok((business_id, catalog))
    }

    /// The items at `path`; empty for a default resource the business has none of.
    pub fn items(&self, path: &str) -> &[Value] {
        self.lists.get(path).map(Vec::as_slice).unwrap_or_default()
    }

    fn serves(&self, path: &str) -> bool {
        self.lists.contains_key(path) || DEFAULT_RESOURCES.contains(&path)
    }

    fn items_mut(&mut self, path: &str) -> &mut Vec<Value> {
        self.lists.entry(path.to_owned()).or_default()
    }
}

/// `resources.toml`'s `name → biz_path` (only entries that give one).
fn biz_paths(dir: &FsPath) -> anyhow::Result<HashMap<String, String>> {
    let file = dir.join(FIXTURE_RESOURCES_FILE);
    let shown = file.display().to_string();
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => bail!("{shown}: cannot read: {e}"),
    };
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        anyhow!(
            "{shown}: invalid TOML: {}",
            e.to_string().replace('\n', " ")
        )
    })?;
    let entries = table.get("resources").and_then(toml::Value::as_array);
    Ok(entries
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.get("name")?.as_str()?;
            let path = e.get("biz_path")?.as_str()?;
            Some((name.to_owned(), path.to_owned()))
        })
        .collect())
}

fn service_problem(service: &Value) -> Option<&'static str> {
    let price = &service["price"];
    if !matches!(service["duration_minutes"].as_u64(), Some(1..)) {
        Some("\"duration_minutes\" must be a positive integer")
    } else if !(price["amount"].is_string() && price["currency"].is_string()) {
        Some("\"price\" must be an object with string \"amount\" and \"currency\"")
    } else if !service["is_active"].is_boolean() {
        Some("\"is_active\" must be true or false")
    } else {
        None
    }
}

fn read_json(dir: &FsPath, name: &str) -> anyhow::Result<(String, Value)> {
    let shown = dir.join(name).display().to_string();
    let text = std::fs::read_to_string(dir.join(name));
    let text = text.map_err(|e| anyhow!("{shown}: cannot read: {e}"))?;
    let value = serde_json::from_str(&text).map_err(|e| anyhow!("{shown}: invalid JSON: {e}"))?;
    Ok((shown, value))
}

fn read_items(dir: &FsPath, name: &str) -> anyhow::Result<(String, Vec<Value>)> {
    let (shown, value) = read_json(dir, name)?;
    let Value::Array(items) = value else {
        bail!("{shown}: expected a JSON array of objects");
    };
    let mut seen = HashMap::new();
    for (n, item) in (1..).zip(&items) {
        let id = item_id(item).ok_or_else(|| anyhow!("{shown}: item #{n} has no string \"id\""))?;
        if let Some(first) = seen.insert(id, n) {
            bail!("{shown}: duplicate id \"{id}\" (items #{first} and #{n})");
        }
    }
    Ok((shown, items))
}

fn item_id(item: &Value) -> Option<&str> {
    item["id"].as_str()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    None,
    /// answer 500
    ServerError,
    /// answer 503
    Unavailable,
    /// never answer (sleep for an hour) — the client's timeout must fire
    Hang,
    /// answer 200 with a body that is not JSON
    Garbage,
    /// answer 401
    Unauthorized,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    List,
    Item,
    Bookings,
    Availability,
}

#[derive(Clone, Debug)]
pub struct RecordedBooking {
    pub idempotency_key: Option<String>,
    /// The request body; a body that is not JSON is kept as a JSON string.
    pub body: Value,
    pub status: u16,
}

#[derive(Clone)]
pub struct FakeBiz {
    state: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    api_key: String,
    page_size: usize,
    businesses: HashMap<String, BizCatalog>,
    delays: HashMap<Route, Duration>,
    failures: HashMap<Route, Failure>,
    fail_next: HashMap<Route, (usize, Failure)>,
    calls: HashMap<Route, usize>,
    calls_for: HashMap<(String, Option<String>), usize>,
    log: Vec<RecordedBooking>,
    /// The first answer per idempotency key, replayed verbatim.
    replies: HashMap<String, (StatusCode, Value)>,
    confirmed: Vec<Confirmed>,
    /// Catalog reads (lists and items) being answered now, and the most there ever were.
    reads_in_flight: usize,
    max_reads_in_flight: usize,
    /// Per route, how many reads until the held one, and the signal that releases it.
    holds: HashMap<Route, (usize, tokio::sync::watch::Receiver<bool>)>,
}

/// Releases the read held by [`FakeBiz::hold_nth`] when dropped.
pub struct Held(tokio::sync::watch::Sender<bool>);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

/// Counts a catalog read in flight until the handler is done with it (or dropped).
struct ReadInFlight(FakeBiz);

impl ReadInFlight {
    fn new(fake: &FakeBiz) -> Self {
        let mut state = fake.state();
        state.reads_in_flight += 1;
        state.max_reads_in_flight = state.max_reads_in_flight.max(state.reads_in_flight);
        drop(state);
        Self(fake.clone())
    }
}

impl Drop for ReadInFlight {
    fn drop(&mut self) {
        self.0.state().reads_in_flight -= 1;
    }
}

struct Confirmed {
    business_id: String,
    service_id: String,
    staff_id: Option<String>,
    start: OffsetDateTime,
    end: OffsetDateTime,
    data: Value,
}

impl FakeBiz {
    pub fn new(api_key: impl Into<String>) -> Self {
        let (api_key, page_size) = (api_key.into(), DEFAULT_PAGE_SIZE);
        let state = FakeState {
            api_key,
            page_size,
            ..FakeState::default()
        };
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Items per list page (default 8; at least 1).
    pub fn with_page_size(self, n: usize) -> Self {
        self.state().page_size = n.max(1);
        self
    }

    /// Loads `dir` with [`BizCatalog::load_dir`] and serves it; returns the business id.
    pub fn load_fixtures(&self, dir: &FsPath) -> anyhow::Result<String> {
        let (business_id, catalog) = BizCatalog::load_dir(dir)?;
        self.add_business(&business_id, catalog);
        Ok(business_id)
    }

    pub fn add_business(&self, business_id: &str, catalog: BizCatalog) {
        self.state()
            .businesses
            .insert(business_id.to_owned(), catalog);
    }

    /// Replaces the item with the same id at Biz path `resource` or appends it; creates the
    /// business and the list if needed. Panics on an item without a string "id" (a test's own
    /// mistake).
    pub fn upsert_item(&self, business_id: &str, resource: &str, item: Value) {
        let id = item_id(&item)
            .expect("item needs a string \"id\"")
            .to_owned();
        let mut state = self.state();
        let catalog = state.businesses.entry(business_id.to_owned()).or_default();
        let items = catalog.items_mut(resource);
        match items.iter_mut().find(|old| item_id(old) == Some(&id)) {
            Some(old) => *old = item,
            None => items.push(item),
        }
    }

    pub fn remove_item(&self, business_id: &str, resource: &str, id: &str) -> bool {
        let mut state = self.state();
        let Some(items) = state
            .businesses
            .get_mut(business_id)
            .and_then(|c| c.lists.get_mut(resource))
        else {
            return false;
        };
        let before = items.len();
        items.retain(|item| item_id(item) != Some(id));
        items.len() != before
    }

    /// For List and Item the answer is read, then delivered after the delay (a failure waits
    /// the delay first); for Bookings the delay comes after the
    /// booking is processed, so a client that gives up early still leaves a booking behind.
    pub fn set_delay(&self, route: Route, delay: Duration) {
        self.state().delays.insert(route, delay);
    }

    /// Holds the `nth` catalog read (List or Item; 1 is the next one) on `route` after its
    /// answer is read and its delay slept, until the returned guard is dropped: a fill stuck
    /// mid-flight for exactly as long as a test needs, whatever the machine's speed. Other
    /// reads pass.
    pub fn hold_nth(&self, route: Route, nth: usize) -> Held {
        let (release, held) = tokio::sync::watch::channel(false);
        self.state().holds.insert(route, (nth.max(1), held));
        Held(release)
    }

    /// A failing booking request books nothing, except `Hang`, which books and goes silent.
    pub fn set_failure(&self, route: Route, failure: Failure) {
        self.state().failures.insert(route, failure);
    }

    /// Fail the next `n` requests of `route` with `failure`, then go back to the route's
    /// normal behaviour.
    pub fn fail_next(&self, route: Route, n: usize, failure: Failure) {
        self.state().fail_next.insert(route, (n, failure));
    }

    /// Number of requests received per route (every request counts, including failed and
    /// unauthorized ones).
    pub fn calls(&self, route: Route) -> usize {
        self.state().calls.get(&route).copied().unwrap_or(0)
    }

    /// List-page requests for `resource` (every page counts) with `id: None`, item requests
    /// for that id with `Some(id)`; `("bookings", None)` counts booking requests.
    pub fn calls_for(&self, resource: &str, id: Option<&str>) -> usize {
        let key = (resource.to_owned(), id.map(str::to_owned));
        self.state().calls_for.get(&key).copied().unwrap_or(0)
    }

    /// The most catalog reads (lists and items) Biz was answering at once since the start or
    /// the last `reset_counts`.
    pub fn max_reads_in_flight(&self) -> usize {
        self.state().max_reads_in_flight
    }

    pub fn reset_counts(&self) {
        let mut state = self.state();
        state.calls.clear();
        state.calls_for.clear();
        state.max_reads_in_flight = state.reads_in_flight;
    }

    /// Every POST /bookings received, in order, with the status it got (a hung request is
    /// recorded with the status it would have had).
    pub fn bookings(&self) -> Vec<RecordedBooking> {
        self.state().log.clone()
    }

    /// The `data` of every booking actually created, in order (replays create nothing).
    pub fn created_bookings(&self) -> Vec<Value> {
        let state = self.state();
        state.confirmed.iter().map(|b| b.data.clone()).collect()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/biz-api/v1/bookings", post(create_booking))
            .route("/biz-api/v1/availability", get(availability))
            .route("/biz-api/v1/{*path}", get(read))
            .fallback(|| async { error(404, "not_found", "no such route") })
            .with_state(self.clone())
    }

    /// Binds 127.0.0.1:0, serves in a spawned tokio task, returns the base URL like
    /// "http://127.0.0.1:PORT".
    pub async fn spawn(&self) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await;
        let listener = listener.context("fake Biz: cannot bind 127.0.0.1:0")?;
        let addr = listener
            .local_addr()
            .context("fake Biz: no local address")?;
        let app = self.router();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "fake Biz stopped serving");
            }
        });
        Ok(format!("http://{addr}"))
    }

    // A panic while locked (only from a test's own assertion) must not wedge the other tests.
    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Splits a request path `/biz-api/v1/P…` into the Biz path of a list the business has
    /// (the longest that matches; a path may have several segments) and the item id after
    /// it, each segment percent-decoded. An unknown path comes back whole, as a list.
    fn split_path(&self, business_id: &str, path: &str) -> (String, Option<String>) {
        let rest = path.strip_prefix("/biz-api/v1/").unwrap_or_default();
        let segments: Vec<String> = rest
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let state = self.state();
        let catalog = state.businesses.get(business_id);
        for n in (1..=segments.len()).rev() {
            let list = segments[..n].join("/");
            let known = match catalog {
                Some(c) => c.serves(&list),
                None => DEFAULT_RESOURCES.contains(&list.as_str()),
            };
            if known && segments.len() - n <= 1 {
                return (list, segments.get(n).cloned());
            }
        }
        (segments.join("/"), None)
    }

    /// Counts the request and picks how it fails, if it does.
    fn begin(&self, route: Route, target: (&str, Option<&str>), headers: &HeaderMap) -> Plan {
        let mut state = self.state();
        *state.calls.entry(route).or_default() += 1;
        let key = (target.0.to_owned(), target.1.map(str::to_owned));
        *state.calls_for.entry(key).or_default() += 1;
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let authorized = authorization
            .and_then(|v| v.split_once(' '))
            .is_some_and(|(s, key)| s.eq_ignore_ascii_case("bearer") && key == state.api_key);
        // An unauthorized request does not use up a scheduled failure.
        let failure = if authorized {
            state.take_failure(route)
        } else {
            Failure::Unauthorized
        };
        (failure, state.delays.get(&route).copied())
    }

    /// The release signal if this read is the one [`FakeBiz::hold_nth`] holds.
    fn take_hold(&self, route: Route) -> Option<tokio::sync::watch::Receiver<bool>> {
        let mut state = self.state();
        let (left, _) = state.holds.get_mut(&route)?;
        *left -= 1;
        if *left > 0 {
            return None;
        }
        state.holds.remove(&route).map(|(_, released)| released)
    }
}

/// How a request will fail (`Failure::None` if it won't) and how long to stall it.
type Plan = (Failure, Option<Duration>);

impl FakeState {
    fn take_failure(&mut self, route: Route) -> Failure {
        if let Some((left, failure)) = self.fail_next.get_mut(&route)
            && *left > 0
        {
            *left -= 1;
            return *failure;
        }
        self.failures.get(&route).copied().unwrap_or(Failure::None)
    }

    /// The replay check and the insert happen under one lock, so two concurrent requests with
    /// the same key (or for the same slot) cannot both create a booking.
    fn book(&mut self, key: Option<&str>, body: &[u8]) -> ((StatusCode, Value), bool) {
        if let Some(first) = key.and_then(|k| self.replies.get(k)) {
            return (first.clone(), true);
        }
        let reply = match self.validate_booking(body) {
            Ok(booking) => self.confirm(booking),
            Err((code, detail)) => {
                let body = json!({"error": code, "detail": detail});
                (StatusCode::UNPROCESSABLE_ENTITY, body)
            }
        };
        if let Some(key) = key {
            self.replies.insert(key.to_owned(), reply.clone());
        }
        (reply, false)
    }

    fn validate_booking(&self, body: &[u8]) -> Result<Confirmed, (&'static str, String)> {
        let request: Value =
            serde_json::from_slice(body).map_err(|e| ("invalid_json", e.to_string()))?;
        let text = |name: &str| request[name].as_str();
        let required = |name| text(name).ok_or(("invalid_request", format!("{name} is required")));
        let find = |items: &[Value], id| items.iter().find(|i| item_id(i) == Some(id)).cloned();
        let business_id = required("business_id")?;
        let catalog = self.businesses.get(business_id);
        let catalog = catalog.ok_or(("unknown_business", format!("no business {business_id}")))?;
        let service_id = required("service_id")?;
        let service = find(catalog.items("services"), service_id);
        let service = service.ok_or(("unknown_service", format!("no service {service_id}")))?;
        if service["is_active"] == false {
            return Err(("service_inactive", format!("{service_id} is not bookable")));
        }
        let staff_id = match &request["staff_id"] {
            Value::Null => None,
            Value::String(id) => Some(id.clone()),
            _ => return Err(("invalid_request", "staff_id must be a string".into())),
        };
        if let Some(staff_id) = &staff_id {
            let member = find(catalog.items("staff"), staff_id);
            let member = member.ok_or(("unknown_staff", format!("no staff {staff_id}")))?;
            let offered = member["service_ids"].as_array();
            if !offered.is_some_and(|ids| ids.contains(&json!(service_id))) {
                let detail = format!("{staff_id} does not do {service_id}");
                return Err(("staff_does_not_offer_service", detail));
            }
        }
        let instant = |name| {
            let raw = text(name).unwrap_or_default();
            let parsed = OffsetDateTime::parse(raw, &Rfc3339);
            parsed.map_err(|e| ("invalid_time", format!("{name} {raw:?}: {e}")))
        };
        let (start, end) = (instant("start_at")?, instant("end_at")?);
        if end <= start {
            return Err(("invalid_time_range", "end_at must be after start_at".into()));
        }
        let data = json!({
            "id": format!("bkg_{}", random_code(16).to_lowercase()),
            "status": "confirmed",
            "confirmation_code": random_code(6),
            "business_id": business_id,
            "service_id": service_id,
            "staff_id": staff_id,
            "start_at": text("start_at"),
            "end_at": text("end_at"),
            "external_ref": request["external_ref"],
        });
        let (business_id, service_id) = (business_id.to_owned(), service_id.to_owned());
        Ok(Confirmed {
            business_id,
            service_id,
            staff_id,
            start,
            end,
            data,
        })
    }

    fn confirm(&mut self, new: Confirmed) -> (StatusCode, Value) {
        let taken = self.confirmed.iter().any(|old| {
            let same_resource = match &new.staff_id {
                Some(staff) => old.staff_id.as_ref() == Some(staff),
                None => old.service_id == new.service_id,
            };
            let overlaps = old.start < new.end && new.start < old.end;
            old.business_id == new.business_id && same_resource && overlaps
        });
        if taken {
            return (StatusCode::CONFLICT, json!({"error": "slot_unavailable"}));
        }
        let body = json!({"data": new.data});
        self.confirmed.push(new);
        (StatusCode::CREATED, body)
    }
}

fn random_code(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    let mut pick = || ALPHABET[rng.random_range(0..ALPHABET.len())] as char;
    (0..len).map(|_| pick()).collect()
}

fn error(status: u16, code: &str, detail: &str) -> Response {
    let status = StatusCode::from_u16(status).expect("a valid status code");
    (status, axum::Json(json!({"error": code, "detail": detail}))).into_response()
}

/// The answer for an injected failure; the caller does the sleeping for `Hang`.
fn failure_response(failure: Failure) -> Option<Response> {
    let unauthorized = || {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "unauthorized"})),
        )
    };
    Some(match failure {
        Failure::None => return None,
        Failure::Hang => error(504, "timeout", "hung on purpose"),
        Failure::ServerError => error(500, "internal_error", "injected failure"),
        Failure::Unavailable => error(503, "unavailable", "injected failure"),
        Failure::Unauthorized => unauthorized().into_response(),
        // Labelled JSON so that the client's body decoding, not a content-type check, trips.
        Failure::Garbage => {
            ([(header::CONTENT_TYPE, "application/json")], "<html>oops").into_response()
        }
    })
}

fn query_param(query: &Option<String>, name: &str) -> Option<String> {
    let mut pairs = url::form_urlencoded::parse(query.as_deref()?.as_bytes());
    pairs
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn encode_cursor(offset: usize, resource: &str, business_id: &str) -> String {
    let mut raw = CURSOR_MAGIC.to_vec();
    raw.extend_from_slice(format!("{offset}:{resource}:{business_id}").as_bytes());
    BASE64.encode(raw)
}

/// A cursor is only valid for the list it came from.
fn decode_cursor(cursor: &str, resource: &str, business_id: &str) -> Option<usize> {
    let raw = BASE64.decode(cursor).ok()?;
    let text = String::from_utf8(raw.strip_prefix(&CURSOR_MAGIC)?.to_vec()).ok()?;
    let mut parts = text.splitn(3, ':');
    let offset = parts.next()?.parse().ok()?;
    (parts.next()? == resource && parts.next()? == business_id).then_some(offset)
}

/// GET of a list page (`/{resource}`) or of one item (`/{resource}/{id}`).
async fn read(
    State(fake): State<FakeBiz>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let business_id = query_param(&query, "business_id").unwrap_or_default();
    let (resource, id) = fake.split_path(&business_id, uri.path());
    let (resource, id) = (resource.as_str(), id.as_deref());
    let route = if id.is_some() {
        Route::Item
    } else {
        Route::List
    };
    let _in_flight = ReadInFlight::new(&fake);
    let (failure, delay) = fake.begin(route, (resource, id), &headers);
    if failure != Failure::None {
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if failure == Failure::Hang {
            tokio::time::sleep(HANG).await;
        }
        if let Some(response) = failure_response(failure) {
            return response;
        }
    }
    // The answer is read now and delivered after the delay, like a slow network: a slow
    // answer can carry data older than a change made while it travels.
    let response = read_answer(&fake, resource, id, query.as_deref());
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(mut released) = fake.take_hold(route) {
        // A dropped guard (sender gone) releases as well.
        let _ = released.wait_for(|released| *released).await;
    }
    response
}

/// `GET /availability`: slots from the business's opening hours (in its own offset, with EU
/// summer time when `dst` is `"eu"`), every `slot_minutes`, per staff member who performs the
/// service, minus what is booked. Knobs as for the other routes.
async fn availability(
    State(fake): State<FakeBiz>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (failure, delay) = fake.begin(Route::Availability, ("availability", None), &headers);
    if failure != Failure::None {
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if failure == Failure::Hang {
            tokio::time::sleep(HANG).await;
        }
        if let Some(response) = failure_response(failure) {
            return response;
        }
    }
    let response = availability_answer(&fake, &query);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    response
}

fn availability_answer(fake: &FakeBiz, query: &Option<String>) -> Response {
    let param = |name| query_param(query, name).unwrap_or_default();
    let (business_id, service_id) = (param("business_id"), param("service_id"));
    let staff_id = query_param(query, "staff_id");
    let Ok(date) = time::Date::parse(
        &param("date"),
        time::macros::format_description!("[year]-[month]-[day]"),
    ) else {
        return error(400, "invalid_date", "date must be YYYY-MM-DD");
    };
    let days: i64 = param("days").parse().unwrap_or(1).clamp(1, 31);
    let state = fake.state();
    let Some(catalog) = state.businesses.get(&business_id) else {
        return error(404, "not_found", "unknown business_id");
    };
    let find = |path: &str, id: &str| catalog.items(path).iter().find(|i| item_id(i) == Some(id));
    let Some(service) = find("services", &service_id) else {
        return error(404, "not_found", "no such service");
    };
    let duration = time::Duration::minutes(service["duration_minutes"].as_i64().unwrap_or(60));
    let performs = |m: &&Value| {
        m["service_ids"]
            .as_array()
            .is_some_and(|ids| ids.contains(&json!(service_id)))
    };
    let mut performers: Vec<Option<String>> = catalog
        .items("staff")
        .iter()
        .filter(performs)
        .filter(|m| staff_id.is_none() || item_id(m) == staff_id.as_deref())
        .map(|m| item_id(m).map(str::to_owned))
        .collect();
    if catalog.items("staff").is_empty() && staff_id.is_none() {
        performers.push(None);
    }
    let hours = BusinessHours::of(&catalog.profile);
    let mut slots = Vec::new();
    for day in 0..days {
        let date = date + time::Duration::days(day);
        for (start, end) in hours.slots(date, duration) {
            for who in &performers {
                let taken = state.confirmed.iter().any(|b| {
                    let same = match who {
                        Some(staff) => b.staff_id.as_ref() == Some(staff),
                        None => b.service_id == service_id,
                    };
                    b.business_id == business_id && same && b.start < end && start < b.end
                });
                if !taken {
                    slots.push(json!({
                        "start_at": start.format(&Rfc3339).unwrap_or_default(),
                        "end_at": end.format(&Rfc3339).unwrap_or_default(),
                        "staff_id": who,
                    }));
                }
            }
        }
    }
    axum::Json(json!({"data": {"slots": slots}})).into_response()
}

/// A business's week as `business.json` gives it.
struct BusinessHours {
    offset: time::UtcOffset,
    eu_summer_time: bool,
    /// Monday first: `(open, close)` minutes after midnight, `None` when closed.
    week: [Option<(i64, i64)>; 7],
    step: i64,
}

impl BusinessHours {
    fn of(profile: &Value) -> Self {
        let offset = profile["utc_offset"]
            .as_str()
            .and_then(|o| {
                time::UtcOffset::parse(
                    o,
                    time::macros::format_description!(
                        "[offset_hour sign:mandatory]:[offset_minute]"
                    ),
                )
                .ok()
            })
            .unwrap_or(time::UtcOffset::UTC);
        let minutes = |t: &Value| {
            let (h, m) = t.as_str()?.split_once(':')?;
            Some(h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?)
        };
        let hours = &profile["opening_hours"];
        let default = [Some((9 * 60, 18 * 60)); 7];
        let week = if hours.is_object() {
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].map(|d| {
                let day = &hours[d];
                Some((minutes(&day[0])?, minutes(&day[1])?))
            })
        } else {
            default
        };
        BusinessHours {
            offset,
            eu_summer_time: profile["dst"] == "eu",
            week,
            step: profile["slot_minutes"]
                .as_i64()
                .filter(|s| *s > 0)
                .unwrap_or(30),
        }
    }

    /// The offset in force at a local wall-clock time on `date`.
    fn offset_at(&self, local: time::PrimitiveDateTime) -> time::UtcOffset {
        if !self.eu_summer_time {
            return self.offset;
        }
        let summer = time::UtcOffset::from_whole_seconds(self.offset.whole_seconds() + 3600)
            .unwrap_or(self.offset);
        let year = local.year();
        // EU rule: from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last
        // Sunday of October.
        let last_sunday = |month: time::Month| {
            let mut d = time::Date::from_calendar_date(year, month, month.length(year))
                .expect("a valid last day");
            while d.weekday() != time::Weekday::Sunday {
                d = d.previous_day().expect("not the first day ever");
            }
            d.with_hms(1, 0, 0).expect("01:00").assume_utc()
        };
        let candidate = local.assume_offset(summer);
        if last_sunday(time::Month::March) <= candidate
            && candidate < last_sunday(time::Month::October)
        {
            summer
        } else {
            self.offset
        }
    }

    fn slots(
        &self,
        date: time::Date,
        duration: time::Duration,
    ) -> Vec<(OffsetDateTime, OffsetDateTime)> {
        let Some((open, close)) = self.week[date.weekday().number_days_from_monday() as usize]
        else {
            return Vec::new();
        };
        let midnight = date.midnight();
        let mut out = Vec::new();
        let mut at = open;
        while at * 60 + duration.whole_seconds() <= close * 60 {
            let local = midnight + time::Duration::minutes(at);
            let start = local.assume_offset(self.offset_at(local));
            out.push((start, start + duration));
            at += self.step;
        }
        out
    }
}

fn read_answer(fake: &FakeBiz, resource: &str, id: Option<&str>, query: Option<&str>) -> Response {
    let query = query.map(str::to_string);
    let business_id = query_param(&query, "business_id").unwrap_or_default();
    let state = fake.state();
    if business_id.is_empty() {
        return error(400, "missing_business_id", "business_id is required");
    }
    let Some(catalog) = state.businesses.get(&business_id) else {
        return error(404, "not_found", "unknown business_id");
    };
    if !catalog.serves(resource) {
        return error(404, "not_found", "unknown resource");
    }
    let items = catalog.items(resource);
    if let Some(id) = id {
        return match items.iter().find(|item| item_id(item) == Some(id)) {
            Some(item) => axum::Json(json!({"data": item})).into_response(),
            None => error(404, "not_found", "no such item"),
        };
    }
    let offset = match query_param(&query, "cursor") {
        None => Some(0),
        Some(cursor) => decode_cursor(&cursor, resource, &business_id),
    };
    let Some(offset) = offset else {
        return error(400, "invalid_cursor", "cursor is not one this API issued");
    };
    // Items removed between pages can leave a cursor past the end: that is an empty last page.
    let start = offset.min(items.len());
    let end = start.saturating_add(state.page_size).min(items.len());
    let next_cursor = (end < items.len()).then(|| encode_cursor(end, resource, &business_id));
    axum::Json(json!({"data": &items[start..end], "next_cursor": next_cursor})).into_response()
}

async fn create_booking(State(fake): State<FakeBiz>, headers: HeaderMap, body: Bytes) -> Response {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let key = key.map(str::to_owned);
    let (failure, delay) = fake.begin(Route::Bookings, ("bookings", None), &headers);
    let lossy = || Value::String(String::from_utf8_lossy(&body).into_owned());
    let recorded = serde_json::from_slice(&body).unwrap_or_else(|_| lossy());
    let response = {
        let mut state = fake.state();
        // A hang still books before going silent: the answer is lost, not the booking.
        let response = match failure {
            Failure::None | Failure::Hang => {
                let ((status, body), replayed) = state.book(key.as_deref(), &body);
                let replayed = [(
                    "idempotent-replayed",
                    if replayed { "true" } else { "false" },
                )];
                (status, replayed, axum::Json(body)).into_response()
            }
            other => failure_response(other).expect("a failure has an answer"),
        };
        let status = response.status().as_u16();
        state.log.push(RecordedBooking {
            idempotency_key: key,
            body: recorded,
            status,
        });
        response
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if failure == Failure::Hang {
        tokio::time::sleep(HANG).await;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk_test_fake";
    const BIZ: [(&str, &str); 1] = [("business_id", "biz_t")];

    fn catalog(services: usize) -> BizCatalog {
        let price = json!({"amount": "5000.00", "currency": "KZT"});
        let service = |i: usize| {
            let id = format!("svc_{i:02}");
            json!({"id": id, "duration_minutes": 60, "is_active": i != 1, "price": price})
        };
        let services = (0..services).map(service).collect();
        let products = vec![json!({"id": "prd_a"})];
        let staff = vec![json!({"id": "stf_a", "service_ids": ["svc_00", "svc_02"]})];
        BizCatalog::default()
            .with("services", services)
            .with("products", products)
            .with("staff", staff)
    }

    struct Harness {
        fake: FakeBiz,
        base: String,
        http: reqwest::Client,
    }

    impl Harness {
        async fn start(page_size: usize) -> Self {
            let fake = FakeBiz::new(KEY).with_page_size(page_size);
            fake.add_business("biz_t", catalog(20));
            let (base, http) = (fake.spawn().await.unwrap(), reqwest::Client::new());
            Harness { fake, base, http }
        }

        fn url(&self, path: &str, query: &[(&str, &str)]) -> url::Url {
            let url = format!("{}/biz-api/v1/{path}", self.base);
            url::Url::parse_with_params(&url, query).unwrap()
        }

        async fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
            answer(self.http.get(self.url(path, query)).bearer_auth(KEY)).await
        }

        fn post(&self, key: &str, body: &Value) -> reqwest::RequestBuilder {
            let request = self.http.post(self.url("bookings", &[])).bearer_auth(KEY);
            request.header("Idempotency-Key", key).json(body)
        }

        async fn book(&self, key: &str, body: &Value) -> (u16, Value) {
            answer(self.post(key, body)).await
        }
    }

    async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The status and the `error` code of an answer.
    fn code((status, body): (u16, Value)) -> (u16, Value) {
        (status, body["error"].clone())
    }

    fn booking(service: &str, staff: Option<&str>, start: &str, end: &str) -> Value {
        let at = |hh_mm: &str| format!("2030-05-01T{hh_mm}:00+05:00");
        let client = json!({"name": "Aru", "phone": "+77010000000", "email": "aru@example.com"});
        json!({"business_id": "biz_t", "service_id": service, "staff_id": staff,
               "start_at": at(start), "end_at": at(end), "client": client,
               "notes": null, "external_ref": "drf_1"})
    }

    #[tokio::test]
    async fn pages_join_in_order_and_cursors_need_url_encoding() {
        let h = Harness::start(7).await;
        let (mut ids, mut cursors) = (Vec::new(), Vec::<String>::new());
        loop {
            let mut query = BIZ.to_vec();
            query.extend(cursors.last().map(|c| ("cursor", c.as_str())));
            let (status, body) = h.get("services", &query).await;
            assert_eq!(status, 200, "{body}");
            ids.extend(body["data"].as_array().unwrap().clone());
            match body["next_cursor"].as_str() {
                Some(next) => cursors.push(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(ids, catalog(20).items("services"));
        assert_eq!(cursors.len(), 2);
        assert!(cursors.iter().all(|c| c.contains('+') && c.contains('/')));
        assert_eq!(h.fake.calls_for("services", None), 3);
        assert_eq!(h.fake.calls(Route::List), 3);

        // Pasted into the URL unencoded, the cursor's '+' arrives as a space.
        let raw = format!("{}&cursor={}", h.url("services", &BIZ), cursors[0]);
        let unencoded = answer(h.http.get(raw).bearer_auth(KEY)).await;
        assert_eq!(code(unencoded), (400, json!("invalid_cursor")));
        let foreign = [BIZ[0], ("cursor", cursors[0].as_str())];
        assert_eq!(h.get("products", &foreign).await.0, 400);
        let missing = h.get("services", &[]).await;
        assert_eq!(code(missing), (400, json!("missing_business_id")));
        assert_eq!(h.get("services", &[("business_id", "nope")]).await.0, 404);
        assert_eq!(h.get("clients", &BIZ).await.0, 404);
    }

    #[tokio::test]
    async fn items_are_found_replaced_and_missing() {
        let h = Harness::start(8).await;
        let (status, body) = h.get("services/svc_03", &BIZ).await;
        assert_eq!(
            (status, &body["data"]),
            (200, &catalog(20).items("services")[3])
        );
        let missing = h.get("services/svc_nope", &BIZ).await;
        assert_eq!(code(missing), (404, json!("not_found")));
        assert_eq!(h.fake.calls_for("services", Some("svc_nope")), 1);

        let restocked = json!({"id": "prd_a", "stock": 3});
        h.fake.upsert_item("biz_t", "products", restocked.clone());
        assert_eq!(h.get("products/prd_a", &BIZ).await.1["data"], restocked);
        assert!(h.fake.remove_item("biz_t", "services", "svc_03"));
        assert_eq!(h.get("services/svc_03", &BIZ).await.0, 404);
        assert_eq!(h.fake.calls(Route::Item), 4);
    }

    #[tokio::test]
    async fn requests_without_the_key_are_401_and_still_counted() {
        let h = Harness::start(8).await;
        let list = h.url("services", &BIZ);
        let anonymous = answer(h.http.get(list.clone())).await;
        assert_eq!(anonymous, (401, json!({"error": "unauthorized"})));
        let wrong_key = answer(h.http.get(list).bearer_auth("sk_wrong")).await;
        assert_eq!(wrong_key.0, 401);
        let body = booking("svc_00", None, "10:00", "11:00");
        let post = h.http.post(h.url("bookings", &[])).json(&body);
        assert_eq!(answer(post).await.0, 401);
        assert_eq!(h.fake.calls(Route::List), 2);
        assert_eq!(h.fake.calls(Route::Bookings), 1);
        assert_eq!(h.fake.bookings()[0].status, 401);
        assert!(h.fake.created_bookings().is_empty());
    }

    #[tokio::test]
    async fn the_same_idempotency_key_replays_the_first_answer() {
        let h = Harness::start(8).await;
        let body = booking("svc_00", Some("stf_a"), "10:00", "11:00");
        let first = h.book("drf_1", &body).await;
        assert_eq!(first.0, 201, "{}", first.1);
        let confirmation = first.1["data"]["confirmation_code"].as_str().unwrap();
        let is_code_char = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit();
        assert_eq!(confirmation.len(), 6);
        assert!(confirmation.chars().all(is_code_char));
        assert_eq!(h.book("drf_1", &body).await, first);
        assert_eq!(h.fake.created_bookings().len(), 1);
        let log = h.fake.bookings();
        assert_eq!(log.len(), 2);
        assert_eq!(log[1].idempotency_key.as_deref(), Some("drf_1"));

        let unknown = booking("svc_99", None, "12:00", "13:00");
        let rejected = h.book("drf_2", &unknown).await;
        assert_eq!(rejected.0, 422);
        let fixed = booking("svc_02", None, "12:00", "13:00");
        assert_eq!(h.book("drf_2", &fixed).await, rejected);
    }

    #[tokio::test]
    async fn overlapping_slots_are_409() {
        let h = Harness::start(8).await;
        #[rustfmt::skip]
        let cases = [
            (booking("svc_00", Some("stf_a"), "10:00", "11:00"), 201),
            (booking("svc_02", Some("stf_a"), "10:30", "11:30"), 409),
            (booking("svc_02", Some("stf_a"), "11:00", "12:00"), 201),
            (booking("svc_00", None, "09:30", "10:30"), 409),
            (booking("svc_03", None, "09:30", "10:30"), 201),
        ];
        for (n, (body, expected)) in cases.iter().enumerate() {
            let (status, answer) = h.book(&format!("k{n}"), body).await;
            assert_eq!(status, *expected, "case {n}: {answer}");
            if status == 409 {
                assert_eq!(answer, json!({"error": "slot_unavailable"}));
            }
        }
        assert_eq!(h.fake.created_bookings().len(), 3);
    }

    #[tokio::test]
    async fn invalid_bookings_are_422_with_a_reason() {
        let h = Harness::start(8).await;
        let mut foreign = booking("svc_00", None, "10:00", "11:00");
        foreign["business_id"] = json!("biz_other");
        #[rustfmt::skip]
        let cases = [
            (booking("svc_99", None, "10:00", "11:00"), "unknown_service"),
            (booking("svc_00", Some("stf_x"), "10:00", "11:00"), "unknown_staff"),
            (booking("svc_03", Some("stf_a"), "10:00", "11:00"), "staff_does_not_offer_service"),
            (booking("svc_01", None, "10:00", "11:00"), "service_inactive"),
            (booking("svc_00", None, "11:00", "11:00"), "invalid_time_range"),
            (booking("svc_00", None, "10:00", "25:00"), "invalid_time"),
            (foreign, "unknown_business"),
        ];
        for (n, (body, reason)) in cases.iter().enumerate() {
            let answer = h.book(&format!("k{n}"), body).await;
            assert_eq!(code(answer), (422, json!(reason)));
        }
        let request = h.http.post(h.url("bookings", &[])).bearer_auth(KEY);
        let malformed = answer(request.body("{\"biz")).await;
        assert_eq!(code(malformed), (422, json!("invalid_json")));
        assert_eq!(h.fake.bookings()[7].body, json!("{\"biz"));
        assert!(h.fake.created_bookings().is_empty());
    }

    #[tokio::test]
    async fn failures_and_delays_are_injected_then_recover() {
        let h = Harness::start(8).await;
        h.fake.fail_next(Route::List, 2, Failure::ServerError);
        for expected in [500, 500, 200] {
            assert_eq!(h.get("services", &BIZ).await.0, expected);
        }
        assert_eq!(h.fake.calls(Route::List), 3);

        h.fake.set_failure(Route::Item, Failure::Garbage);
        let item = h.url("services/svc_00", &BIZ);
        let garbage = h.http.get(item).bearer_auth(KEY).send().await.unwrap();
        assert_eq!(garbage.status(), 200);
        assert!(garbage.json::<Value>().await.is_err());
        h.fake.set_failure(Route::Item, Failure::Unavailable);
        assert_eq!(h.get("services/svc_00", &BIZ).await.0, 503);

        h.fake.set_delay(Route::List, Duration::from_millis(400));
        let slow = h.http.get(h.url("services", &BIZ)).bearer_auth(KEY);
        let slow = slow.timeout(Duration::from_millis(100)).send().await;
        assert!(slow.unwrap_err().is_timeout());
        h.fake.reset_counts();
        assert_eq!(h.fake.calls(Route::List), 0);
        assert_eq!(h.fake.calls_for("services", None), 0);
    }

    #[tokio::test]
    async fn a_hung_booking_is_still_created_and_a_retry_gets_it() {
        let h = Harness::start(8).await;
        h.fake.fail_next(Route::Bookings, 1, Failure::Hang);
        let body = booking("svc_00", Some("stf_a"), "10:00", "11:00");
        let post = h.post("drf_h", &body).timeout(Duration::from_millis(300));
        assert!(post.send().await.unwrap_err().is_timeout());
        assert_eq!(h.fake.bookings()[0].status, 201);
        assert_eq!(h.fake.created_bookings().len(), 1);

        let (status, retried) = h.book("drf_h", &body).await;
        assert_eq!(status, 201);
        assert_eq!(retried["data"], h.fake.created_bookings()[0]);
        assert_eq!(h.fake.created_bookings().len(), 1);
    }

    #[test]
    fn load_dir_reads_the_real_fixtures() {
        let dir = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/salon");
        let (business_id, catalog) = BizCatalog::load_dir(&dir).unwrap();
        assert_eq!(business_id, "biz_demo");
        assert!(catalog.items("services").len() >= 20);
        let counts = (
            catalog.items("staff").len(),
            catalog.items("products").len(),
        );
        assert_eq!(counts, (6, 10));
        assert!(
            catalog
                .items("services")
                .iter()
                .any(|s| s["is_active"] == false)
        );
        assert!(catalog.items("categories").len() >= 5);
        // Every fixture set loads; the event business has no services and needs none.
        for set in ["wellness", "local-business", "events"] {
            let dir = FsPath::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures")
                .join(set);
            let (_, catalog) = BizCatalog::load_dir(&dir).unwrap();
            assert!(
                catalog.lists.values().all(|items| !items.is_empty()),
                "{set}"
            );
        }
        let dir = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/local-business");
        let (_, catalog) = BizCatalog::load_dir(&dir).unwrap();
        assert_eq!(catalog.items("working-hours").len(), 7);
    }

    #[test]
    fn load_dir_names_the_file_and_the_problem() {
        let price = r#""price": {"amount": "1.00", "currency": "KZT"}"#;
        let service = r#""id": "svc_a", "duration_minutes": 30, "is_active": true"#;
        let services = format!("[{{{service}, {price}}}]");
        #[rustfmt::skip]
        let cases = [
            ("business.json", None, "cannot read"),
            ("services.json", Some("[{\"id\": \n"), "invalid JSON: EOF while parsing a value at line 2"),
            ("products.json", Some("{}"), "expected a JSON array"),
            ("products.json", Some(r#"[{"id": "p"}, {"name": "x"}]"#), "item #2 has no string \"id\""),
            ("products.json", Some(r#"[{"id": "p"}, {"id": "p"}]"#), "duplicate id \"p\""),
            ("staff.json", Some(r#"[{"id": "s", "service_ids": ["x"]}]"#), "unknown service \"x\""),
            ("services.json", Some(r#"[{"id": "a", "duration_minutes": 30}]"#), "\"price\""),
        ];
        for (file, contents, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text);
            write(FIXTURE_BUSINESS_FILE, r#"{"business_id": "biz_t"}"#).unwrap();
            write(FIXTURE_RESOURCES_FILE, "[[resources]]\nname = \"x\"\n").unwrap();
            write("services.json", &services).unwrap();
            write("products.json", "[]").unwrap();
            write("staff.json", r#"[{"id": "s", "service_ids": ["svc_a"]}]"#).unwrap();
            match contents {
                Some(text) => write(file, text).unwrap(),
                None => std::fs::remove_file(dir.path().join(file)).unwrap(),
            }
            let message = BizCatalog::load_dir(dir.path()).unwrap_err().to_string();
            assert!(message.contains(file), "{message}");
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }
}

//! End to end in a real headless Chromium (CONTRACT §14, §15): the reference storefront, the
//! merchant console and CORS, driven through chromedriver's WebDriver HTTP API with plain JSON
//! requests, against the real server and the fake Biz. Screenshots at 390×844 and 1366×900 go
//! to `<target>/screenshots/`.
//!
//! Skipped, with a notice, when `/usr/bin/chromium` or `chromedriver` is missing (`.ci/run`
//! installs Debian's `chromium` and `chromium-driver`). The scenarios run one at a time: each
//! starts its own browser, and two at once on a small machine only make both slower.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const NARROW: (u32, u32) = (390, 844);
const WIDE: (u32, u32) = (1366, 900);

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn chromedriver() -> Option<PathBuf> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    dir
}

/// One chromedriver with one headless Chromium session.
struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` (after printing why) when there is no Chromium to drive.
    async fn start() -> Option<Browser> {
        let Some(driver_path) = chromedriver().filter(|_| Path::new(CHROMIUM).exists()) else {
            eprintln!("browser tests skipped: {CHROMIUM} or chromedriver is not installed");
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let ready = eventually(Duration::from_secs(15), || async {
            match http.get(format!("{base}/status")).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            }
        })
        .await;
        assert!(ready, "chromedriver did not become ready");
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("session request")
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        Some(Browser {
            http,
            base,
            session,
            driver,
            _profile: profile,
        })
    }

    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    async fn try_cmd(&self, method: Method, path: &str, body: Value) -> Result<Value, Value> {
        let value = self.cmd(method, path, Some(body)).await;
        if value.get("error").is_some() {
            Err(value)
        } else {
            Ok(value)
        }
    }

    async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn window(&self, (width, height): (u32, u32)) {
        self.cmd(
            Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(
            Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .try_cmd(
                    Method::POST,
                    "/element",
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            if let Ok(found) = &found
                && let Some(id) = found[ELEMENT].as_str()
            {
                return id.to_string();
            }
            if Instant::now() > deadline {
                let url = self.js("return location.href").await;
                panic!("no element {css} on {url}: {found:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn count(&self, css: &str) -> usize {
        self.cmd(
            Method::POST,
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .await
        .as_array()
        .map_or(0, Vec::len)
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(
            Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Focuses the element and presses Enter on it, as a keyboard user would.
    async fn press_enter(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(
            Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": "\u{E007}" })),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(
            Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.cmd(
            Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.cmd(Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits up to 10 s for `css`'s text to satisfy `check`; answers the text.
    async fn wait_text(&self, css: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text(css).await;
            if check(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "{css} still reads {text:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        // Let fonts and layout settle.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let png = self.cmd(Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("screenshot data"))
            .expect("base64 PNG");
        std::fs::write(screenshots_dir().join(format!("{name}.png")), bytes).unwrap();
    }

    async fn quit(mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn storefront_app() -> TestApp {
    spawn_with(
        Options::default()
            .set("MANGO_STOREFRONT", "true")
            .set("MANGO_STOREFRONT_STORE", STORE),
    )
    .await
}

#[tokio::test]
async fn a_customer_browses_a_category_opens_a_service_and_books_it() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = storefront_app().await;
    browser.window(NARROW).await;
    browser.goto(&app.url("/")).await;
    browser.find("a.chip[href='#/category/cat_hair']").await;
    browser.screenshot("storefront-home-390").await;

    // By keyboard: links and buttons, no click handlers on plain elements.
    browser
        .press_enter("a.chip[href='#/category/cat_hair']")
        .await;
    browser.wait_text("main h1", |t| t == "Hair").await;
    let shown = browser.count(".grid .card").await;
    let tags = browser
        .js("return [...document.querySelectorAll('.grid .card .tag')].map(t => t.textContent)")
        .await;
    assert!(shown > 1, "the hair category lists services");
    assert!(
        tags.as_array().unwrap().iter().all(|t| t == "Hair"),
        "{tags}"
    );
    browser.screenshot("storefront-category-390").await;

    browser.click(".grid .card h3 a").await;
    browser.find("#book").await;
    let service = browser.text("#service-name").await;
    assert!(!service.is_empty());
    // The staff who perform it are listed (staff?service_ids=…).
    assert!(browser.count(".staff-list .person").await >= 1);
    browser
        .press_enter("button.day[data-date]:nth-child(2)")
        .await;
    browser.press_enter("button.time").await;
    browser
        .wait_text("button.time[aria-pressed='true']", |t| !t.is_empty())
        .await;
    browser.type_into("#customer-name", "Aliya Customer").await;
    browser
        .type_into("#customer-phone", "+7 701 000 0000")
        .await;
    browser.screenshot("storefront-service-390").await;
    browser.click("#reserve").await;
    browser.click("#confirm").await;
    let code = browser
        .wait_text("#confirmation-code", |t| !t.is_empty())
        .await;
    browser.screenshot("storefront-confirmed-390").await;

    let created = app.biz.created_bookings();
    assert_eq!(created.len(), 1, "exactly one booking reached Biz");
    assert_eq!(created[0]["confirmation_code"], code.as_str());
    assert_eq!(app.biz.bookings().len(), 1, "and one request");

    // The wide layout, for the record.
    browser.window(WIDE).await;
    browser.goto(&app.url("/#/")).await;
    browser.find(".grid .card").await;
    browser.screenshot("storefront-home-1366").await;
    browser.click(".grid .card h3 a").await;
    browser.find("#book").await;
    browser.screenshot("storefront-service-1366").await;
    browser.quit().await;
}

/// A theme page on another origin, reading the catalog with `fetch` through CORS.
async fn theme_site() -> String {
    let page = r#"<!doctype html><html><body><p id="out">waiting</p><script>
      const api = new URLSearchParams(location.search).get("api");
      fetch(api + "/api/v1/services", {headers: {"X-Store-Id": "salon"}})
        .then(r => r.json().then(b => document.getElementById("out").textContent =
            "services:" + b.data.length + " cache:" + r.headers.get("x-cache")))
        .catch(e => document.getElementById("out").textContent = "blocked: " + e);
    </script></body></html>"#;
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(page) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    // Another origin than the API's 127.0.0.1: same machine, other host name and port.
    format!("http://localhost:{port}")
}

#[tokio::test]
async fn a_page_on_another_origin_reads_the_catalog_through_cors() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = storefront_app().await;
    let site = theme_site().await;
    let page = format!("{site}/?api={}", app.base);

    // Not allowed yet: the browser withholds the answer.
    browser.goto(&page).await;
    browser
        .wait_text("#out", |t| t.starts_with("blocked"))
        .await;

    let response = app
        .admin(
            Method::PATCH,
            &format!("/admin/v1/stores/{STORE}"),
            ADMIN_TOKEN,
            Some(&json!({ "allowed_origins": [site] })),
        )
        .await;
    assert_eq!(response.status(), 200);
    browser.goto(&page).await;
    let text = browser
        .wait_text("#out", |t| t.starts_with("services:"))
        .await;
    assert!(text.starts_with("services:25 cache:"), "{text}");
    browser.quit().await;
}

#[tokio::test]
async fn a_merchant_changes_the_name_and_colour_and_sees_the_page_views() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = storefront_app().await;
    browser.window(WIDE).await;

    // A few storefront visits, whose beacons the console must count.
    browser.goto(&app.url("/")).await;
    browser.find(".grid .card").await;
    browser.click("a[data-nav='team']").await;
    browser.find(".person").await;
    browser.click("a[data-nav='services']").await;
    browser.click(".grid .card h3 a").await;
    browser.find("#book").await;
    let recorded = eventually(Duration::from_secs(20), || async {
        app.sql_i64("SELECT COUNT(*) FROM store_analytics_page_views", &[]) >= 4
    })
    .await;
    assert!(recorded, "the storefront's beacons were recorded");
    let page_views = app.sql_i64("SELECT COUNT(*) FROM store_analytics_page_views", &[]);

    let delivered = app
        .webhook(
            "services",
            "updated",
            "evt_console_1",
            BUSINESS,
            "svc_haircut_women",
        )
        .await;
    assert_eq!(delivered.status(), 200);

    // Sign in with the store key; the store's slug is filled in already.
    browser.goto(&app.url("/console/")).await;
    assert_eq!(
        browser
            .js("return document.getElementById('slug').value")
            .await,
        STORE
    );
    browser.type_into("#token", &app.store_key).await;
    browser.click("#sign-in-form button[type=submit]").await;
    browser
        .wait_text("#total-page-views", |t| !t.is_empty())
        .await;
    assert_eq!(
        browser.text("#total-page-views").await,
        page_views.to_string(),
        "the console shows the page views the beacons sent"
    );
    let today_bar = browser
        .js("const bars = [...document.querySelectorAll('#daily-chart rect')];
             return bars.length + ':' + Number(bars[bars.length - 1].getAttribute('height')).toFixed(0)")
        .await;
    let (days, height) = today_bar.as_str().unwrap().split_once(':').unwrap();
    assert_eq!(days, "14", "one bar per day of the default fortnight");
    assert!(height.parse::<f64>().unwrap() > 0.0, "today's bar is drawn");
    assert_eq!(
        browser
            .js("return sessionStorage.getItem('mango.console') !== null && document.cookie === ''")
            .await,
        true,
        "the token is in sessionStorage, not in a cookie"
    );
    browser.screenshot("console-1366").await;
    browser
        .js("document.getElementById('settings').scrollIntoView()")
        .await;
    browser.screenshot("console-settings-1366").await;

    // Cache statistics, purge, and the webhook just delivered.
    assert!(browser.count("#cache-table tbody tr").await >= 3);
    browser.click("#purge").await;
    browser
        .wait_text("#cache-status", |t| t == "Purged everything.")
        .await;
    let webhooks = browser.text("#webhooks-table tbody").await;
    assert!(
        webhooks.contains("services.updated") && webhooks.contains("evt_console_1"),
        "{webhooks}"
    );
    browser
        .js("document.getElementById('cache').scrollIntoView()")
        .await;
    browser.screenshot("console-cache-webhooks-1366").await;

    // Key rotation: confirmed in a dialog, the new key shown once, the old one dead at once,
    // and the console goes on with the new one.
    browser.click("#rotate").await;
    browser
        .cmd(Method::POST, "/alert/accept", Some(json!({})))
        .await;
    let new_key = browser
        .wait_text("#new-key-value", |t| t.starts_with("msk_"))
        .await;
    let path = format!("/admin/v1/stores/{STORE}");
    let old = app.admin(Method::GET, &path, &app.store_key, None).await;
    assert_eq!(old.status(), 401, "the old key stops working");
    let new = app.admin(Method::GET, &path, &new_key, None).await;
    assert_eq!(new.status(), 200, "the new key works");

    // A bad custom domain is shown next to its field.
    browser.type_into("#f-domain", "not a domain").await;
    browser.click("#save").await;
    let error = browser
        .wait_text("#e-custom_domain", |t| !t.is_empty())
        .await;
    assert!(error.contains("custom_domain"), "{error}");
    browser.type_into("#f-domain", "").await;

    browser.type_into("#f-name", "Lotus Day Spa").await;
    browser.type_into("#f-primary", "#0f766e").await;
    browser.click("#save").await;
    browser
        .wait_text("#settings-status", |t| t == "Saved.")
        .await;

    browser.window(NARROW).await;
    browser.js("window.scrollTo(0, 0)").await;
    browser.screenshot("console-390").await;

    browser.goto(&app.url("/")).await;
    browser
        .wait_text("#store-name", |t| t == "Lotus Day Spa")
        .await;
    let colour = browser
        .js("return getComputedStyle(document.querySelector('.brand-mark')).backgroundColor")
        .await;
    assert_eq!(colour, "rgb(15, 118, 110)");
    browser.find(".grid .card").await;
    browser.screenshot("storefront-themed-390").await;
    browser.quit().await;
}

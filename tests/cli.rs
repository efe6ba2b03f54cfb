//! CONTRACT §2–§3: the command line, start-up errors, and the demo as a new user runs it —
//! the real binary in its own process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mango-store");

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (key, _) in std::env::vars() {
        if key.starts_with("MANGO_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = command(args, env).output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn valid_env(db: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MANGO_DATABASE_URL", format!("sqlite://{db}")),
        ("MANGO_BIZ_API_URL", "http://127.0.0.1:9".into()),
        ("MANGO_BIZ_API_KEY", "biz-key".into()),
        ("MANGO_WEBHOOK_SECRETS", SECRET.into()),
        ("MANGO_ADMIN_TOKEN", "admin-token".into()),
    ]
}

#[test]
fn help_names_every_subcommand_and_version_prints() {
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for sub in ["serve", "migrate", "demo"] {
        assert!(out.contains(sub), "{sub} in {out}");
    }
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_resource_declarations_stop_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db").display().to_string();
    let base = valid_env(&db);
    for raw in ["events,,venues", "events,events", "Events", "availability"] {
        let mut env: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.push(("MANGO_RESOURCES", raw));
        let (code, _, err) = run(&["serve", "--check"], &env);
        assert_ne!(code, 0, "{raw}");
        assert!(err.contains("MANGO_RESOURCES"), "{raw}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    for toml in [
        "[[resources]]\nttl_secs = 5\n",
        "[[resources]]\nname = \"events\"\nttl_secs = -1\n",
        "[[resources]]\nname = \"events\"\nbiz_path = \"a//b\"\n",
        "[[resources]]\nname = \"events\"\n[[resources]]\nname = \"events\"\n",
        "[[resources]]\nname = \"store\"\n",
    ] {
        let file = dir.path().join("mango.toml");
        std::fs::write(&file, toml).unwrap();
        let env: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, _, err) = run(
            &["--config", file.to_str().unwrap(), "serve", "--check"],
            &env,
        );
        assert_ne!(code, 0, "{toml}");
        assert!(err.contains("resources"), "{toml}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let file = dir.path().join("ok.toml");
    std::fs::write(&file, "[[resources]]\nname = \"events\"\nttl_secs = 60\n").unwrap();
    let mut env: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("MANGO_RESOURCES", "events,venues"));
    let (code, _, err) = run(
        &["--config", file.to_str().unwrap(), "serve", "--check"],
        &env,
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn start_up_errors_name_the_variable_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db").display().to_string();
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("MANGO_BIZ_API_URL", None),
        ("MANGO_BIZ_API_KEY", None),
        ("MANGO_WEBHOOK_SECRETS", None),
        ("MANGO_ADMIN_TOKEN", None),
        ("MANGO_CACHE_TTL_SECS", Some("-5")),
        ("MANGO_BIZ_TIMEOUT_MS", Some("soon")),
        ("MANGO_WEBHOOK_SECRETS", Some("whsec_%%%notbase64")),
        ("MANGO_DATABASE_URL", Some("postgres://localhost/db")),
        ("MANGO_BIND", Some("not-an-address")),
    ];
    for (var, value) in cases {
        let mut env = valid_env(&db);
        env.retain(|(k, _)| *k != var);
        if let Some(v) = value {
            env.push((var, v.to_string()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, _, err) = run(&["serve"], &env);
        assert_ne!(code, 0, "{var}={value:?} must stop start-up");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(var), "{var} named in: {err}");
        assert!(
            !err.contains("biz-key") && !err.contains("admin-token") && !err.contains("MfKQ9r8G"),
            "no secret in: {err}"
        );
    }
}

#[test]
fn serve_check_validates_and_migrate_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sub/dir/store.db").display().to_string();
    let env = valid_env(&db);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, out, err) = run(&["serve", "--check"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"));
    for _ in 0..2 {
        let (code, out, err) = run(
            &["migrate"],
            &[("MANGO_DATABASE_URL", &format!("sqlite://{db}"))],
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("migrations applied"));
    }
    assert!(std::path::Path::new(&db).exists());
}

#[test]
fn a_config_file_adds_keys_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mango.toml");
    std::fs::write(
        &file,
        format!(
            "biz_api_url = \"http://127.0.0.1:9\"\nbiz_api_key = \"k\"\nwebhook_secrets = [\"{SECRET}\"]\nadmin_token = \"t\"\ncache_ttl_secs = 60\n"
        ),
    )
    .unwrap();
    let file = file.display().to_string();
    let (code, _, err) = run(&["--config", &file, "serve", "--check"], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(
        &["--config", &file, "serve", "--check"],
        &[("MANGO_CACHE_TTL_SECS", "-1")],
    );
    assert_ne!(code, 0);
    assert!(err.contains("MANGO_CACHE_TTL_SECS"), "{err}");
    let (code, _, err) = run(&["--config", "/nonexistent.toml", "serve", "--check"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("--config"), "{err}");
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the demo with `args`, reads its banner up to "Stop with", answers (process,
/// base URL, what it printed).
fn start_demo(args: &[&str], env: &[(&str, &str)]) -> (Running, String, String) {
    let child = command(&[&["demo"], args].concat(), env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut demo = Running(child);
    let mut lines = BufReader::new(demo.0.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut base = None;
    let mut printed = String::new();
    while base.is_none() && started.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.split("running on ").nth(1) {
            base = rest.split_whitespace().next().map(str::to_string);
        }
    }
    let base = base.unwrap_or_else(|| panic!("the demo announced its address: {printed}"));
    for _ in 0..60 {
        let Some(Ok(line)) = lines.next() else { break };
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("Stop with") {
            break;
        }
    }
    // Keep reading: a closed pipe would fail the demo's next log line.
    std::thread::spawn(move || lines.for_each(drop));
    (demo, base, printed)
}

async fn get_json(base: &str, path: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("X-Store-Id", "demo")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// The README's first command, as a new user runs it: it prints where it listens and curl
/// lines, the catalog answers, and SIGTERM stops it cleanly.
#[test]
fn the_demo_serves_the_fixtures_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db").display().to_string();
    let (mut demo, base, printed) = start_demo(
        &["--bind", "127.0.0.1:0", "--database", &db],
        &[("MANGO_LOG", "warn")],
    );
    assert!(printed.contains("curl"), "{printed}");
    assert!(
        printed.contains("webhook-signature"),
        "a signed webhook example: {printed}"
    );
    assert!(printed.contains("/api/v1/categories"), "{printed}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let response = client
            .get(format!("{base}/api/v1/services"))
            .header("X-Store-Id", "demo")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["data"].as_array().unwrap().len() >= 20);
        let response = client
            .get(format!("{base}/api/v1/staff"))
            .header("Host", "demo.mango.localhost")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    });

    let pid = demo.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = demo.0.try_wait().unwrap() {
            assert!(status.success(), "exit 0 on SIGTERM, got {status}");
            break;
        }
        assert!(Instant::now() < deadline, "the demo stops after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// CONTRACT §3 and §12: every fixture set runs as a demo and answers the extra resources its
/// `resources.toml` declares (the event business has no services and needs none).
#[test]
fn the_demo_answers_every_fixture_sets_declared_resources() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (set, extra) in [
        ("salon", &["categories", "packages", "addons"][..]),
        ("wellness", &["events", "categories"][..]),
        ("local-business", &["hours"][..]),
        ("events", &["events", "venues", "schedules"][..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("demo.db").display().to_string();
        let fixtures = format!("fixtures/{set}");
        let (_demo, base, printed) = start_demo(
            &[
                "--bind",
                "127.0.0.1:0",
                "--fixtures",
                &fixtures,
                "--database",
                &db,
            ],
            &[("MANGO_LOG", "warn")],
        );
        runtime.block_on(async {
            for resource in extra {
                assert!(
                    printed.contains(&format!("/api/v1/{resource} ")),
                    "{set}: {printed}"
                );
                let (status, body) = get_json(&base, &format!("/api/v1/{resource}")).await;
                assert_eq!(status, 200, "{set}/{resource}: {body}");
                let items = body["data"].as_array().unwrap();
                assert!(!items.is_empty(), "{set}/{resource}");
                let id = items[0]["id"].as_str().unwrap();
                let (status, item) = get_json(&base, &format!("/api/v1/{resource}/{id}")).await;
                assert_eq!(
                    (status, &item["data"]),
                    (200, &items[0]),
                    "{set}/{resource}/{id}"
                );
            }
            let (status, services) = get_json(&base, "/api/v1/services").await;
            assert_eq!(status, 200, "{set}");
            if set == "events" {
                assert_eq!(
                    services["data"],
                    serde_json::json!([]),
                    "no services, no error"
                );
            }
            let (status, _) = get_json(&base, "/api/v1/undeclared").await;
            assert_eq!(status, 404, "{set}");
        });
    }
}

/// `MANGO_BIND` is honoured by the demo as by `serve`; `--bind` wins over it.
#[test]
fn the_demo_honours_mango_bind() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db").display().to_string();
    let bind = format!("127.0.0.1:{port}");
    let (_demo, base, _) = start_demo(
        &["--database", &db],
        &[("MANGO_BIND", &bind), ("MANGO_LOG", "warn")],
    );
    assert_eq!(base, format!("http://{bind}"));
    drop(_demo);
    let (_demo, base, _) = start_demo(
        &["--bind", "127.0.0.1:0", "--database", &db],
        &[("MANGO_BIND", &bind), ("MANGO_LOG", "warn")],
    );
    assert_ne!(base, format!("http://{bind}"));
}

#[test]
fn the_demo_reports_broken_fixtures_clearly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("business.json"), "{\"business_id\": \"b\"}").unwrap();
    std::fs::write(dir.path().join("services.json"), "[{\"id\": ").unwrap();
    let fixtures = dir.path().display().to_string();
    let db = dir.path().join("d.db").display().to_string();
    let (code, _, err) = run(
        &[
            "demo",
            "--bind",
            "127.0.0.1:0",
            "--fixtures",
            &fixtures,
            "--database",
            &db,
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("services.json"), "{err}");
}

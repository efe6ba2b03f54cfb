//! Issue 16, the keep-alive bug: after `POST /admin/v1/stores/{slug}/api-keys` the next request
//! on the same keep-alive connection sometimes got no answer (the connection was closed).
//!
//! One raw HTTP/1.1 connection, requests written by hand, every response read in full by its
//! `Content-Length` or chunks: every route kind, with bodies sent the way a pooled client does
//! (the head, then the body a moment later), bodies the handler never reads included. Any
//! request left unanswered, any `Connection: close`, any closed connection fails the test.

mod common;

use std::time::Duration;

use common::*;
use mango_store::webhooks::signature::WebhookSecret;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A keep-alive connection that writes requests by hand and reads whole responses.
struct RawConnection {
    stream: TcpStream,
    buffered: Vec<u8>,
    sent: usize,
}

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

enum Body<'a> {
    None,
    /// `Content-Length` and the bytes, written after the head in a separate packet.
    Sized(&'a [u8]),
    /// `Transfer-Encoding: chunked`, two chunks, each written on its own.
    Chunked(&'a [u8]),
}

impl RawConnection {
    async fn open(base: &str) -> Self {
        let stream = TcpStream::connect(base.trim_start_matches("http://"))
            .await
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buffered: Vec::new(),
            sent: 0,
        }
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> RawResponse {
        self.sent += 1;
        let what = format!("request #{} {method} {path}", self.sent);
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        match body {
            Body::None => {}
            Body::Sized(bytes) => head.push_str(&format!("Content-Length: {}\r\n", bytes.len())),
            Body::Chunked(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        head.push_str("\r\n");
        self.write(&what, head.as_bytes()).await;
        // What a pooled client does with a body it writes after the head: the server has the
        // head (and may have answered) before the body arrives.
        match body {
            Body::None => {}
            Body::Sized(bytes) => {
                tokio::time::sleep(Duration::from_millis(15)).await;
                self.write(&what, bytes).await;
            }
            Body::Chunked(bytes) => {
                let (a, b) = bytes.split_at(bytes.len() / 2);
                for chunk in [a, b] {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                    framed.extend_from_slice(chunk);
                    framed.extend_from_slice(b"\r\n");
                    self.write(&what, &framed).await;
                }
                self.write(&what, b"0\r\n\r\n").await;
            }
        }
        let response = self.read_response(&what, method == "HEAD").await;
        assert_ne!(
            response
                .header("connection")
                .map(|v| v.to_ascii_lowercase()),
            Some("close".to_string()),
            "{what}: the server closes the connection after answering {}",
            response.status
        );
        response
    }

    async fn write(&mut self, what: &str, bytes: &[u8]) {
        if let Err(err) = self.stream.write_all(bytes).await {
            panic!("{what}: the connection was closed before the request was sent: {err}");
        }
    }

    /// Reads more bytes into the buffer; fails on a closed connection or 5 s of silence.
    async fn fill(&mut self, what: &str) {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk)).await {
            Err(_) => panic!("{what}: no answer within 5 s"),
            Ok(Err(err)) => panic!("{what}: the connection failed: {err}"),
            Ok(Ok(0)) => panic!(
                "{what}: the connection was closed with the request unanswered ({} bytes of an answer)",
                self.buffered.len()
            ),
            Ok(Ok(n)) => self.buffered.extend_from_slice(&chunk[..n]),
        }
    }

    async fn take(&mut self, what: &str, n: usize) -> Vec<u8> {
        while self.buffered.len() < n {
            self.fill(what).await;
        }
        self.buffered.drain(..n).collect()
    }

    async fn take_line(&mut self, what: &str) -> String {
        loop {
            if let Some(at) = self.buffered.windows(2).position(|w| w == b"\r\n") {
                let line = self.buffered.drain(..at + 2).collect::<Vec<_>>();
                return String::from_utf8_lossy(&line[..at]).into_owned();
            }
            self.fill(what).await;
        }
    }

    async fn read_response(&mut self, what: &str, head_only: bool) -> RawResponse {
        let status_line = self.take_line(what).await;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{what}: bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.take_line(what).await;
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').expect("a header line");
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let mut response = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if head_only || status == 304 || status == 204 || status < 200 {
            return response;
        }
        if let Some(length) = response.header("content-length") {
            let length: usize = length.parse().unwrap();
            response.body = self.take(what, length).await;
        } else if response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let size = self.take_line(what).await;
                let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16)
                    .expect("a chunk size");
                if size == 0 {
                    while !self.take_line(what).await.is_empty() {}
                    break;
                }
                let chunk = self.take(what, size).await;
                response.body.extend_from_slice(&chunk);
                self.take(what, 2).await;
            }
        } else {
            panic!("{what}: a {status} answer with neither Content-Length nor chunks");
        }
        response
    }
}

fn signed(event_id: &str, body: &str, secret: &str) -> Vec<(String, String)> {
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = WebhookSecret::parse(secret)
        .unwrap()
        .sign(event_id, ts, body.as_bytes());
    vec![
        ("content-type".into(), "application/json".into()),
        ("webhook-id".into(), event_id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), signature),
    ]
}

fn refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[tokio::test]
async fn one_keep_alive_connection_is_answered_across_every_route_kind() {
    let app = spawn_app().await;
    let mut conn = RawConnection::open(&app.base).await;
    let store = [("X-Store-Id", STORE)];
    let operator = format!("Bearer {ADMIN_TOKEN}");
    let json_ct = ("Content-Type", "application/json");

    for round in 0..3 {
        // Storefront reads: a MISS, a HIT, a 304, 404s, a 405, a list query, the store.
        let list = conn
            .send("GET", "/api/v1/services", &store, Body::None)
            .await;
        assert_eq!(list.status, 200);
        let etag = list.header("etag").unwrap().to_string();
        let not_modified = conn
            .send(
                "GET",
                "/api/v1/services",
                &[("X-Store-Id", STORE), ("If-None-Match", &etag)],
                Body::None,
            )
            .await;
        assert_eq!(not_modified.status, 304);
        let item = conn
            .send("GET", "/api/v1/services/svc_keratin", &store, Body::None)
            .await;
        assert_eq!(item.status, 200);
        let filtered = conn
            .send(
                "GET",
                "/api/v1/staff?service_ids=svc_keratin",
                &store,
                Body::None,
            )
            .await;
        assert_eq!(filtered.status, 200);
        for (path, status) in [
            ("/api/v1/services/svc_nope", 404),
            ("/api/v1/nope", 404),
            ("/no/such/route", 404),
            ("/api/v1/store", 200),
            ("/api/v1/services?limit=0", 400),
        ] {
            let r = conn.send("GET", path, &store, Body::None).await;
            assert_eq!(r.status, status, "{path}");
        }
        // Bodies the handler never reads: a wrong method with a body, an unknown route with
        // one, an OPTIONS that is no preflight.
        let r = conn
            .send(
                "POST",
                "/api/v1/services",
                &[json_ct],
                Body::Sized(b"{\"a\":1}"),
            )
            .await;
        assert_eq!(r.status, 405);
        let r = conn
            .send("PUT", "/no/such/route", &[json_ct], Body::Sized(b"{}"))
            .await;
        assert_eq!(r.status, 404);
        let r = conn
            .send("OPTIONS", "/admin/v1/stores", &[], Body::None)
            .await;
        assert_eq!(r.status, 405);

        // The rotation, with a body (what a client sending `json={}` does), chunked, and
        // without one; the next request on the connection must be answered each time.
        let rotate = format!("/admin/v1/stores/{STORE}/api-keys");
        let auth = [("Authorization", operator.as_str()), json_ct];
        let r = conn.send("POST", &rotate, &auth, Body::Sized(b"{}")).await;
        assert_eq!(
            r.status,
            201,
            "round {round}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let key = r.json()["api_key"].as_str().unwrap().to_string();
        let r = conn.send("GET", "/healthz", &[], Body::None).await;
        assert_eq!(r.status, 200);
        let r = conn
            .send(
                "POST",
                &rotate,
                &auth,
                Body::Chunked(b"{\"why\":\"scheduled\"}"),
            )
            .await;
        assert_eq!(r.status, 201);
        let r = conn
            .send(
                "POST",
                &rotate,
                &[("Authorization", &operator)],
                Body::Sized(b""),
            )
            .await;
        assert_eq!(r.status, 201);
        // Refused before the body is read: a dead key, no token.
        let dead = format!("Bearer {key}");
        let r = conn
            .send(
                "POST",
                &rotate,
                &[("Authorization", &dead), json_ct],
                Body::Sized(b"{}"),
            )
            .await;
        assert_eq!(r.status, 401);
        let r = conn
            .send("POST", &rotate, &[json_ct], Body::Sized(b"{}"))
            .await;
        assert_eq!(r.status, 401);

        // Admin reads and writes.
        let admin_store = format!("/admin/v1/stores/{STORE}");
        let r = conn
            .send(
                "PATCH",
                &admin_store,
                &auth,
                Body::Sized(format!("{{\"name\":\"Round {round}\"}}").as_bytes()),
            )
            .await;
        assert_eq!(r.status, 200);
        let r = conn
            .send("PATCH", &admin_store, &auth, Body::Sized(b"{\"name\":"))
            .await;
        assert_eq!(r.status, 400);
        let r = conn
            .send(
                "PATCH",
                &admin_store,
                &auth,
                Body::Sized(b"{\"slug\":\"other\"}"),
            )
            .await;
        assert_eq!(r.status, 400);
        for path in ["", "/cache", "/webhooks", "/analytics"] {
            let r = conn
                .send("GET", &format!("{admin_store}{path}"), &auth, Body::None)
                .await;
            assert_eq!(r.status, 200, "{admin_store}{path}");
        }
        let r = conn
            .send(
                "POST",
                &format!("{admin_store}/cache/purge"),
                &auth,
                Body::Sized(b"{\"resource\":\"services\"}"),
            )
            .await;
        assert_eq!(r.status, 200);

        // Webhooks: processed, duplicate, a bad signature, a stale one for the path.
        let event_id = format!("evt_keepalive_{round}");
        let body = json!({
            "id": event_id, "type": "services.updated", "business_id": app.business,
            "occurred_at": "2026-11-21T10:00:00Z", "data": {"id": "svc_keratin"},
        })
        .to_string();
        let headers = signed(&event_id, &body, WEBHOOK_SECRET);
        for expected in ["processed", "duplicate"] {
            let r = conn
                .send(
                    "POST",
                    "/webhooks/services/updated",
                    &refs(&headers),
                    Body::Sized(body.as_bytes()),
                )
                .await;
            assert_eq!(r.status, 200);
            assert_eq!(r.json()["data"]["status"], expected);
        }
        let forged = signed(&event_id, &body, WEBHOOK_SECRET_2);
        let r = conn
            .send(
                "POST",
                "/webhooks/services/updated",
                &refs(&forged),
                Body::Sized(body.as_bytes()),
            )
            .await;
        assert_eq!(r.status, 401);
        let r = conn
            .send(
                "POST",
                "/webhooks/services/renamed",
                &refs(&headers),
                Body::Sized(body.as_bytes()),
            )
            .await;
        assert!(r.status == 400 || r.status == 401, "{}", r.status);

        // A booking: draft, read, confirm with and without a body, repeat.
        let draft = json!({
            "service_id": "svc_haircut_women", "staff_id": "stf_aigerim",
            "start_at": format!("2030-05-0{}T10:00:00Z", round + 1),
            "customer": {"name": "Aru", "phone": "+77010000000"},
        })
        .to_string();
        let r = conn
            .send(
                "POST",
                "/api/v1/booking/draft",
                &[("X-Store-Id", STORE), json_ct],
                Body::Sized(draft.as_bytes()),
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let id = r.json()["data"]["id"].as_str().unwrap().to_string();
        let r = conn
            .send(
                "GET",
                &format!("/api/v1/booking/draft/{id}"),
                &store,
                Body::None,
            )
            .await;
        assert_eq!(r.status, 200);
        let confirm = format!("/api/v1/booking/draft/{id}/confirm");
        let r = conn
            .send(
                "POST",
                &confirm,
                &[("X-Store-Id", STORE), json_ct],
                Body::Sized(b"{}"),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let r = conn.send("POST", &confirm, &store, Body::None).await;
        assert_eq!(r.status, 200);
        let r = conn
            .send(
                "DELETE",
                &format!("/api/v1/booking/draft/{id}"),
                &store,
                Body::None,
            )
            .await;
        assert_eq!(r.status, 409);

        // Analytics: a batch, a beacon, a refused batch, and a body past the 256 KiB limit.
        let r = conn
            .send(
                "POST",
                "/api/v1/analytics/events",
                &[("X-Store-Id", STORE), json_ct],
                Body::Sized(b"[{\"name\":\"page_view\",\"url\":\"/\"},{\"name\":\"x\"}]"),
            )
            .await;
        assert_eq!(r.status, 202);
        let r = conn
            .send(
                "POST",
                &format!("/api/v1/analytics/events?store={STORE}"),
                &[("Content-Type", "text/plain;charset=UTF-8")],
                Body::Sized(b"{\"name\":\"page_view\"}"),
            )
            .await;
        assert_eq!(r.status, 202);
        let r = conn
            .send(
                "POST",
                "/api/v1/analytics/events",
                &[("X-Store-Id", STORE), json_ct],
                Body::Sized(b"{\"name\":\"booking_confirmed\"}"),
            )
            .await;
        assert_eq!(r.status, 422);
        let big = vec![b' '; 300 * 1024];
        let r = conn
            .send(
                "POST",
                "/api/v1/analytics/events",
                &[("X-Store-Id", STORE), json_ct],
                Body::Sized(&big),
            )
            .await;
        assert_eq!(r.status, 413);

        // Operations.
        for path in ["/readyz", "/metrics", "/openapi.json"] {
            let r = conn.send("GET", path, &[], Body::None).await;
            assert_eq!(r.status, 200, "{path}");
        }
    }
    // And the connection is still good for one more.
    let r = conn.send("GET", "/healthz", &[], Body::None).await;
    assert_eq!(r.status, 200);
}

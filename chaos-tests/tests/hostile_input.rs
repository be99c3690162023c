//! Hostile input against a real `raftgate serve` process: oversize and too many headers,
//! slowloris, bodies over the limit, deeply nested JSON, connection floods from one IP,
//! and unauthenticated floods next to authenticated traffic. Raw TCP sockets where the
//! point is a misbehaving client; 127.0.0.2 and 127.0.0.3 are two client IPs (bound
//! source addresses on loopback). See docs/data-plane.md, "Limits on hostile input".
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use raftgate_chaos::{AdminClient, ClusterBuilder, LocalCluster, TestUpstream, UpstreamOptions};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::const_new(());

/// One gateway at a time: timings stay meaningful on a small machine.
async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

struct Gateway {
    cluster: LocalCluster,
    admin: AdminClient,
    http_addr: SocketAddr,
    admin_addr: SocketAddr,
}

/// One initialised node with `env` on top of the defaults.
async fn gateway(env: &[(&str, &str)]) -> Gateway {
    let mut b = ClusterBuilder::new(1);
    for (k, v) in env {
        b = b.env(k, v);
    }
    let mut cluster = b.start().await.expect("the node starts");
    cluster.init().await.expect("cluster init");
    cluster.wait_leader().await.expect("a leader");
    let admin = cluster.client(0).expect("admin client");
    let info = cluster.info(0).expect("node info");
    let http_addr = info.http_addr.parse().expect("http_addr");
    let admin_addr = info.admin_addr.parse().expect("admin_addr");
    Gateway {
        cluster,
        admin,
        http_addr,
        admin_addr,
    }
}

impl Gateway {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.admin
            .json(method.clone(), path, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    async fn create(&self, collection: &str, body: Value) {
        let (s, v) = self
            .call(Method::POST, &format!("/admin/v1/{collection}"), Some(body))
            .await;
        assert!(s.is_success(), "creating {collection}: {s} {v}");
    }

    /// Upstream `u`, tenant `t1`, consumer `c1` with a key, and route `/p` (key auth)
    /// plus `/open` (no auth) to it: the key's plaintext.
    async fn setup(&self, upstream: &TestUpstream) -> String {
        let addr = upstream.addr().to_string();
        self.create(
            "upstreams",
            json!({"id": "u", "targets": [{"address": addr, "weight": 1}]}),
        )
        .await;
        self.create("tenants", json!({"id": "t1"})).await;
        self.create("consumers", json!({"id": "c1", "tenant": "t1"}))
            .await;
        let (s, v) = self
            .call(Method::POST, "/admin/v1/consumers/c1/keys", Some(json!({})))
            .await;
        assert!(s.is_success(), "key: {s} {v}");
        self.create(
            "routes",
            json!({"id": "p", "path": "/p", "target": {"upstream": "u"}, "policies": [{"key_auth": {}}]}),
        )
        .await;
        self.create(
            "routes",
            json!({"id": "open", "path": "/open", "target": {"upstream": "u"}}),
        )
        .await;
        v["key"].as_str().expect("key plaintext").to_string()
    }

    async fn metrics(&self) -> String {
        self.admin
            .raw(Method::GET, "/metrics", None)
            .await
            .expect("metrics")
            .body
    }
}

async fn upstream() -> TestUpstream {
    TestUpstream::start(UpstreamOptions::named("hostile"))
        .await
        .expect("test upstream")
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().expect("socket");
    s.bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind the client address");
    tokio::time::timeout(Duration::from_secs(5), s.connect(to))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Writes `req` and reads until the server closes or 10 s pass: what came back.
async fn exchange(stream: &mut TcpStream, req: &[u8]) -> String {
    let _ = stream.write_all(req).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if head_and_body_done(&out) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// True once a whole response with a `content-length` body was read.
fn head_and_body_done(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= len
}

fn status_of(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Whether the server closed `stream` within `within` (EOF or reset), and when.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return t.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: gw\r\n{extra}\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_headers_and_too_many_headers_get_431_on_every_port() {
    let _s = serial().await;
    let gw = gateway(&[]).await;
    let up = upstream().await;
    gw.setup(&up).await;

    // Within the limits: served (a 20 KiB header, 90 fields).
    let ok_headers: String = (0..90).map(|i| format!("x-h{i}: v\r\n")).collect();
    let mut s = connect_from("127.0.0.1", gw.http_addr).await;
    let big = format!("x-big: {}\r\n", "a".repeat(20 * 1024));
    let r = exchange(&mut s, &get("/open", &format!("{big}{ok_headers}"))).await;
    assert_eq!(status_of(&r), 200, "within the limits: {r:.300}");

    for (what, port) in [("data", gw.http_addr), ("admin", gw.admin_addr)] {
        let path = if what == "data" { "/open" } else { "/healthz" };
        let mut s = connect_from("127.0.0.1", port).await;
        let huge = format!("x-big: {}\r\n", "a".repeat(40 * 1024));
        let r = exchange(&mut s, &get(path, &huge)).await;
        assert_eq!(status_of(&r), 431, "{what}: a 40 KiB header: {r:.300}");

        let many: String = (0..101).map(|i| format!("x-h{i}: v\r\n")).collect();
        let mut s = connect_from("127.0.0.1", port).await;
        let r = exchange(&mut s, &get(path, &many)).await;
        assert_eq!(status_of(&r), 431, "{what}: 101 header fields: {r:.300}");
    }
    assert_eq!(
        up.requests(),
        1,
        "only the request within the limits went upstream"
    );

    // HTTP/2 has no parser limit on the count: the gateway answers 431 JSON itself.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("h2 client");
    let mut req = h2.get(format!("http://{}/open", gw.http_addr));
    for i in 0..150 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let resp = req.send().await.expect("h2 answer");
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let v: Value = resp.json().await.expect("JSON body");
    assert_eq!(v["error"]["code"], "too_many_headers", "{v}");
    let ok = h2
        .get(format!("http://{}/open", gw.http_addr))
        .send()
        .await
        .expect("h2 answer");
    assert_eq!(ok.status(), StatusCode::OK, "h2 within the limits");
    let m = gw.metrics().await;
    assert!(
        m.contains("raftgate_limit_rejections_total{limit=\"header_count\",port=\"data\"} 1"),
        "{}",
        m.lines()
            .filter(|l| l.contains("limit_rejections"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_silent_connections_are_cut_after_the_header_timeout() {
    let _s = serial().await;
    let gw = gateway(&[("RAFTGATE_HEADER_READ_TIMEOUT_SECS", "2")]).await;
    let up = upstream().await;
    gw.setup(&up).await;

    for (what, port) in [("data", gw.http_addr), ("admin", gw.admin_addr)] {
        // Headers one byte a second: cut off long before the 40 bytes are out.
        let mut s = connect_from("127.0.0.1", port).await;
        let (mut rd, mut wr) = s.split();
        let started = Instant::now();
        let trickle = async {
            for b in b"GET /open HTTP/1.1\r\nHost: gw\r\nX-Slow: abcdefgh\r\n\r\n" {
                if wr.write_all(&[*b]).await.is_err() {
                    return false;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            true
        };
        let closed = async {
            let mut buf = [0u8; 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return started.elapsed(),
                    Ok(_) => {}
                }
            }
        };
        let took = tokio::select! {
            t = closed => t,
            finished = trickle => panic!("{what}: the slow client sent its whole request (finished: {finished})"),
        };
        eprintln!("{what}: slowloris cut after {took:?}");
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
            "{what}: slowloris cut after {took:?}"
        );

        // A connection that never sends a byte is closed too.
        let mut silent = connect_from("127.0.0.1", port).await;
        let took = closed_within(&mut silent, Duration::from_secs(8))
            .await
            .unwrap_or_else(|| panic!("{what}: a silent connection stays open"));
        assert!(
            took < Duration::from_secs(6),
            "{what}: silent cut after {took:?}"
        );
    }

    // An idle keep-alive connection is closed after a request, not kept forever.
    let mut s = connect_from("127.0.0.1", gw.http_addr).await;
    let r = exchange(&mut s, &get("/open", "")).await;
    assert_eq!(status_of(&r), 200, "{r:.300}");
    let took = closed_within(&mut s, Duration::from_secs(8))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(took < Duration::from_secs(6), "idle cut after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_node_limit_get_413_json_and_never_reach_the_upstream() {
    let _s = serial().await;
    let gw = gateway(&[("RAFTGATE_MAX_REQUEST_BODY_BYTES", "1024")]).await;
    let up = upstream().await;
    gw.setup(&up).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let url = format!("http://{}/open", gw.http_addr);

    let ok = http
        .post(&url)
        .body(vec![b'x'; 1000])
        .send()
        .await
        .expect("answer");
    assert_eq!(ok.status(), StatusCode::OK, "under the limit");
    let before = up.requests();
    let big = http
        .post(&url)
        .body(vec![b'x'; 4096])
        .send()
        .await
        .expect("answer");
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = big.json().await.expect("JSON");
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");
    assert_eq!(
        up.requests(),
        before,
        "a declared length over the limit never goes upstream"
    );

    // A chunked body is counted as it streams and cut when it passes the limit.
    let chunks = (0..16).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 1024]));
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let r = http.post(&url).body(body).send().await.expect("answer");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "chunked");
    let v: Value = r.json().await.expect("JSON");
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");

    // A route's own body_limit wins over the node default.
    gw.create(
        "routes",
        json!({"id": "up", "path": "/upload", "target": {"upstream": "u"}, "policies": [{"body_limit": {"max_bytes": 65536}}]}),
    )
    .await;
    let r = http
        .post(format!("http://{}/upload", gw.http_addr))
        .body(vec![b'z'; 8192])
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), StatusCode::OK, "the route allows 64 KiB");
}

/// `depth` nested arrays.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_gets_400_json_too_deep_and_no_crash() {
    let _s = serial().await;
    let gw = gateway(&[]).await;
    let up = upstream().await;
    let key = gw.setup(&up).await;

    // Admin API: a resource body nested 10 000 deep.
    let deep = format!(r#"{{"id": "r", "path": "/r", "x": {}}}"#, nested(10_000));
    let raw = gw
        .admin
        .raw(
            Method::POST,
            "/admin/v1/routes",
            Some(("application/json", deep.into_bytes())),
        )
        .await
        .expect("admin answer");
    assert_eq!(raw.status, StatusCode::BAD_REQUEST, "{}", raw.body);
    let v: Value = serde_json::from_str(&raw.body).expect("JSON error");
    assert_eq!(v["error"]["code"], "json_too_deep", "{v}");
    // 64 levels are still JSON the API reads (and then judges on its merits).
    let ok_depth = format!(r#"{{"id": "r", "path": "/r", "x": {}}}"#, nested(60));
    let raw = gw
        .admin
        .raw(
            Method::POST,
            "/admin/v1/routes",
            Some(("application/json", ok_depth.into_bytes())),
        )
        .await
        .expect("admin answer");
    let v: Value = serde_json::from_str(&raw.body).expect("JSON error");
    assert_ne!(v["error"]["code"], "json_too_deep", "{v}");

    // LLM API, with a valid key so the body is read.
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    for path in ["/v1/chat/completions", "/v1/messages", "/v1/embeddings"] {
        let body = format!(r#"{{"model": "m", "messages": {}}}"#, nested(10_000));
        let r = http
            .post(format!("http://{}{path}", gw.http_addr))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        let v: Value = r.json().await.expect("a JSON error");
        // Each API answers in its own error shape; Anthropic's has no `code`.
        let named = v["error"]["code"] == "json_too_deep"
            || (path == "/v1/messages"
                && v["error"]["type"] == "invalid_request_error"
                && v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("deeper than 64")));
        assert!(named, "{path}: {v}");
    }
    let (s, _) = gw.call(Method::GET, "/healthz", None).await;
    assert_eq!(s, StatusCode::OK, "the node is still up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_ip_cap_are_closed_while_other_ips_are_served() {
    let _s = serial().await;
    let gw = gateway(&[("RAFTGATE_MAX_CONNECTIONS_PER_IP", "4")]).await;
    let up = upstream().await;
    gw.setup(&up).await;

    for (what, port, path) in [
        ("data", gw.http_addr, "/open"),
        ("admin", gw.admin_addr, "/healthz"),
    ] {
        // Four open (served, kept alive) connections from 127.0.0.2 fill its share.
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut s = connect_from("127.0.0.2", port).await;
            let r = exchange(&mut s, &get(path, "")).await;
            assert_eq!(status_of(&r), 200, "{what}: within the cap: {r:.200}");
            held.push(s);
        }
        // The fifth is closed right after accept, without an answer.
        let mut fifth = connect_from("127.0.0.2", port).await;
        let r = exchange(&mut fifth, &get(path, "")).await;
        assert_eq!(r, "", "{what}: the fifth connection got an answer");
        // Another client IP is served meanwhile.
        let mut other = connect_from("127.0.0.3", port).await;
        let r = exchange(&mut other, &get(path, "")).await;
        assert_eq!(status_of(&r), 200, "{what}: another IP: {r:.200}");
        // Closing one frees its slot.
        drop(held.pop());
        let mut again = None;
        for _ in 0..50 {
            let mut s = connect_from("127.0.0.2", port).await;
            let r = exchange(&mut s, &get(path, "")).await;
            if status_of(&r) == 200 {
                again = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(again.is_some(), "{what}: a freed slot is usable again");
    }
    let m = gw.metrics().await;
    for port in ["data", "admin"] {
        let line = format!(
            "raftgate_limit_rejections_total{{limit=\"connections_per_ip\",port=\"{port}\"}}"
        );
        let n: f64 = m
            .lines()
            .find_map(|l| l.strip_prefix(&line)?.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(n >= 1.0, "{port}: rejected connections are counted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_flood_gets_429_while_valid_keys_keep_working() {
    let _s = serial().await;
    let gw = gateway(&[
        ("RAFTGATE_UNAUTHENTICATED_PER_SEC", "1"),
        ("RAFTGATE_UNAUTHENTICATED_BURST", "5"),
    ])
    .await;
    let up = upstream().await;
    let key = gw.setup(&up).await;
    let from = |ip: &str| {
        reqwest::Client::builder()
            .no_proxy()
            .local_address(Some(ip.parse().expect("ip")))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    };
    let (flooder, other) = (from("127.0.0.2"), from("127.0.0.3"));
    let url = |p: &str| format!("http://{}{p}", gw.http_addr);

    // The burst of failures is answered 401, then 429 with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = flooder.get(url("/p")).send().await.expect("answer");
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().contains_key("retry-after"));
            let v: Value = r.json().await.expect("JSON");
            assert_eq!(v["error"]["code"], "too_many_unauthenticated", "{v}");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    // A token may come back during the loop (1 a second); the rest are refused.
    let refused = statuses[6..].iter().filter(|&&s| s == 429).count();
    assert!(refused >= 5, "{statuses:?}");

    // A flood from 127.0.0.2 (no key, a wrong key) runs while valid keys are used.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = Vec::new();
    for i in 0..4 {
        let (c, u, stop) = (flooder.clone(), url("/p"), stop.clone());
        flood.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let req = if i % 2 == 0 {
                    c.get(&u)
                } else {
                    c.get(&u).bearer_auth("wrong")
                };
                if let Ok(r) = req.send().await {
                    assert_ne!(r.status(), StatusCode::OK, "the flood is never served");
                }
                n += 1;
            }
            n
        }));
    }
    let started = Instant::now();
    for i in 0..40 {
        let c = if i % 2 == 0 { &other } else { &flooder };
        let r = c
            .get(url("/p"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("answer");
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "authenticated request {i} (from the flooding IP: {})",
            i % 2 == 1
        );
    }
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut flooded = 0;
    for f in flood {
        flooded += f.await.expect("flood task");
    }
    eprintln!("40 authenticated calls took {took:?} next to {flooded} flood requests");
    assert!(flooded > 40, "the flood ran alongside ({flooded} requests)");
    assert!(
        took < Duration::from_secs(10),
        "40 authenticated calls took {took:?}"
    );

    // Another IP has its own budget: its failure is a plain 401.
    let r = other.get(url("/p")).send().await.expect("answer");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The LLM API and the admin API share the budget of the flooding IP.
    let r = flooder
        .post(url("/v1/chat/completions"))
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "LLM without a key"
    );
    let r = flooder
        .post(url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "none", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answer");
    assert!(
        r.status() != StatusCode::TOO_MANY_REQUESTS && r.status() != StatusCode::UNAUTHORIZED,
        "LLM with a valid key: {}",
        r.status()
    );
    let admin_url = |p: &str| format!("http://{}{p}", gw.admin_addr);
    let mut last = 0;
    for _ in 0..10 {
        last = flooder
            .get(admin_url("/admin/v1/routes"))
            .send()
            .await
            .expect("answer")
            .status()
            .as_u16();
    }
    assert_eq!(last, 429, "admin API without a token from the flooding IP");
    let token = gw.cluster.token().expect("admin token").to_string();
    let r = flooder
        .get(admin_url("/admin/v1/routes"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), StatusCode::OK, "admin with a valid token");
    let r = flooder
        .get(admin_url("/healthz"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), StatusCode::OK, "health stays reachable");
    let m = gw.metrics().await;
    assert!(
        m.contains("raftgate_limit_rejections_total{limit=\"unauthenticated_rate\",port=\"data\"}"),
        "the 429s are counted"
    );
}

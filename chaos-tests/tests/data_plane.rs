//! Data-plane integration tests: a real `raftgate serve` process (one node, or three for
//! propagation) proxies to in-process [`TestUpstream`]s. Routing, balancing, health and
//! retries, authentication, tenancy, policies, protocols, TLS. Needs the binary
//! (`cargo build -p raftgate-node`).
//!
//! Tests in this file run one at a time (a shared lock), so that a 2-core machine runs one
//! gateway at a time and timings stay meaningful; every wait has a deadline.
#![forbid(unsafe_code)]

#[path = "data_plane/auth.rs"]
mod auth;
#[path = "data_plane/balancing.rs"]
mod balancing;
#[path = "data_plane/cluster.rs"]
mod cluster;
#[path = "data_plane/health.rs"]
mod health;
#[path = "data_plane/policies.rs"]
mod policies;
#[path = "data_plane/protocols.rs"]
mod protocols;
#[path = "data_plane/retries.rs"]
mod retries;
#[path = "data_plane/routing.rs"]
mod routing;
#[path = "data_plane/tenancy.rs"]
mod tenancy;
#[path = "data_plane/tls.rs"]
mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use raftgate_chaos::{
    wait, AdminClient, ClusterBuilder, LocalCluster, TestUpstream, UpstreamOptions,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Held for the whole test: one gateway at a time.
pub async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Bound for a data-plane request in these tests (large transfers use their own client).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A one-node (or more) cluster, initialised, with clients for its admin API and its data
/// plane (node 0's `http_addr`).
pub struct Gateway {
    pub cluster: LocalCluster,
    pub admin: AdminClient,
    pub http: reqwest::Client,
    base: String,
}

/// A data-plane client: loopback, no proxies, bounded requests, no redirects.
pub fn data_client() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(2))
        .timeout(REQUEST_TIMEOUT)
}

impl Gateway {
    /// One node, started and initialised.
    pub async fn start() -> Gateway {
        Gateway::start_with(ClusterBuilder::new(1)).await
    }

    /// Starts `builder`'s nodes, initialises node 0 and waits for a leader.
    pub async fn start_with(builder: ClusterBuilder) -> Gateway {
        let mut cluster = builder.start().await.expect("the gateway node starts");
        cluster.init().await.expect("cluster init");
        cluster.wait_leader().await.expect("a leader is elected");
        let admin = cluster.client(0).expect("admin client");
        let base = format!("http://{}", cluster.info(0).expect("node info").http_addr);
        let http = data_client().build().expect("reqwest client");
        Gateway {
            cluster,
            admin,
            http,
            base,
        }
    }

    /// `http://HTTP_ADDR` of node 0.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.cluster
            .info(0)
            .expect("node info")
            .http_addr
            .parse()
            .expect("http_addr is host:port")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.req(Method::GET, path)
    }

    /// `POST /admin/v1/{collection}`; panics naming the resource on refusal.
    pub async fn create(&self, collection: &str, body: Value) -> Value {
        self.admin
            .create(collection, &body)
            .await
            .unwrap_or_else(|e| panic!("creating {collection} {body}: {e}"))
    }

    /// `PUT /admin/v1/{collection}/{id}`; panics on refusal.
    pub async fn update(&self, collection: &str, id: &str, body: Value) -> Value {
        self.admin
            .update(collection, id, &body)
            .await
            .unwrap_or_else(|e| panic!("updating {collection}/{id} to {body}: {e}"))
    }

    pub async fn delete(&self, collection: &str, id: &str) {
        self.admin
            .delete(collection, id)
            .await
            .unwrap_or_else(|e| panic!("deleting {collection}/{id}: {e}"));
    }

    /// Any admin call: the status and the JSON answer (`Null` when not JSON).
    pub async fn admin_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.admin
            .json(method.clone(), path, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub async fn tenant(&self, id: &str) {
        self.create("tenants", json!({"id": id})).await;
    }

    /// A consumer of `tenant` and a fresh API key for it: the key's plaintext.
    pub async fn consumer_with_key(&self, id: &str, tenant: &str) -> String {
        self.create("consumers", json!({"id": id, "tenant": tenant}))
            .await;
        self.new_key(id, json!({})).await
    }

    /// `POST /admin/v1/consumers/{id}/keys` with `body` (`name`, `expires_at_ms`): the
    /// plaintext key.
    pub async fn new_key(&self, consumer: &str, body: Value) -> String {
        let (status, answer) = self
            .admin_call(
                Method::POST,
                &format!("/admin/v1/consumers/{consumer}/keys"),
                Some(body),
            )
            .await;
        assert!(
            status.is_success(),
            "creating a key for {consumer}: {status} {answer}"
        );
        answer
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("the key answer has no plaintext 'key': {answer}"))
            .to_string()
    }

    /// The admin port's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let raw = self
            .admin
            .raw(Method::GET, "/metrics", None)
            .await
            .expect("GET /metrics");
        assert!(raw.status.is_success(), "GET /metrics: {}", raw.status);
        raw.body
    }

    /// Node 0's `node.json` as written by the node.
    pub fn node_json(&self) -> Value {
        let path = self
            .cluster
            .data_dir(0)
            .expect("data dir")
            .join("node.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
    }

    /// The gateway's process id (from `node.json`).
    pub fn pid(&self) -> u32 {
        self.cluster
            .info(0)
            .expect("node info")
            .pid
            .or_else(|| {
                self.node_json()
                    .get("pid")
                    .and_then(Value::as_u64)
                    .map(|p| p as u32)
            })
            .expect("node.json names the pid")
    }
}

/// An upstream server named `name` on `127.0.0.1:0`.
pub async fn upstream(name: &str) -> TestUpstream {
    TestUpstream::start(UpstreamOptions::named(name))
        .await
        .unwrap_or_else(|e| panic!("starting test upstream {name}: {e:#}"))
}

/// `{"id", "targets": [...]}` with weight 1 for every server.
pub fn upstream_body(id: &str, servers: &[&TestUpstream]) -> Value {
    let targets: Vec<Value> = servers
        .iter()
        .map(|s| json!({"address": s.addr().to_string(), "weight": 1}))
        .collect();
    json!({"id": id, "targets": targets})
}

/// Sets `key` of a JSON object (a fixture tweak).
pub fn with(mut v: Value, key: &str, value: Value) -> Value {
    v.as_object_mut()
        .expect("fixture bodies are objects")
        .insert(key.to_string(), value);
    v
}

/// Sends, panicking with `what` when no answer came.
pub async fn send(what: &str, req: RequestBuilder) -> Response {
    req.send()
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer from the gateway: {e:?}"))
}

/// Expects 200 and the test upstream's JSON echo.
pub async fn echo(what: &str, resp: Response) -> Value {
    let status = resp.status();
    let body = resp
        .text()
        .await
        .unwrap_or_else(|e| panic!("{what}: body: {e}"));
    assert_eq!(status, StatusCode::OK, "{what}: body {body}");
    let v: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
    assert!(
        v.get("server").is_some(),
        "{what}: not an upstream echo: {body}"
    );
    v
}

/// Expects the gateway's JSON error `{"error": {"code", "message"}}` with this status and
/// code; returns the message.
pub async fn expect_error(what: &str, resp: Response, status: u16, code: &str) -> String {
    let got = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let got_code = v.pointer("/error/code").and_then(Value::as_str);
    assert_eq!(
        (got, got_code),
        (status, Some(code)),
        "{what}: expected {status} {code}, got body {body}"
    );
    v.pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The `server` field of an echo, or `"STATUS code"` for anything else.
pub async fn served_by(resp: Response) -> String {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    match (status, v.get("server").and_then(Value::as_str)) {
        (StatusCode::OK, Some(s)) => s.to_string(),
        _ => format!(
            "{} {}",
            status.as_u16(),
            v.pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or(&body)
        ),
    }
}

/// A header the upstream received, from an echo.
pub fn seen<'a>(echo: &'a Value, header: &str) -> Option<&'a str> {
    echo.pointer(&format!("/headers/{header}"))
        .and_then(Value::as_str)
}

/// The sum of every sample of `name` whose labels include all `labels` (`k="v"` pairs).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Whether `/metrics` has any sample of `name`.
pub fn has_metric(text: &str, name: &str) -> bool {
    text.lines().any(|l| {
        !l.starts_with('#')
            && (l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
    })
}

/// Waits (bounded) until `probe` holds, panicking with the last observation.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    wait::until(what, timeout, probe)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

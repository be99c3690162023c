//! LLM gateway end-to-end tests: a real `raftgate serve` process (one node, with a secret
//! key so that provider keys can be stored) in front of the in-process mock providers of
//! `raftgate_chaos::llm_mock` (OpenAI, Azure OpenAI, Anthropic, Gemini) and the gateway's
//! built-in `mock` provider. Every call goes over real sockets; what the gateway sent
//! upstream is read back from the mocks' recordings. The Python SDK checks run the
//! official `openai` and `anthropic` clients (`chaos-tests/sdk/`) against the gateway.
//!
//! Needs the binary (`RAFTGATE_BIN`, or the workspace's `target/debug/raftgate`) and, for
//! the SDK checks, a Python with `openai` and `anthropic` (`RAFTGATE_PYTHON`).
//!
//! Tests run one at a time (a shared lock) so that one gateway runs at a time; every wait
//! has a deadline.
#![forbid(unsafe_code)]

#[path = "llm/embeddings.rs"]
mod embeddings;
#[path = "llm/errors.rs"]
mod errors;
#[path = "llm/fallback.rs"]
mod fallback;
#[path = "llm/features.rs"]
mod features;
#[path = "llm/messages.rs"]
mod messages;
#[path = "llm/models.rs"]
mod models;
#[path = "llm/providers.rs"]
mod providers;
#[path = "llm/sdk.rs"]
mod sdk;
#[path = "llm/tools.rs"]
mod tools;
#[path = "llm/usage.rs"]
mod usage;

use std::time::Duration;

use raftgate_chaos::llm_mock::{Flavor, RecordedRequest};
use raftgate_chaos::{wait, AdminClient, ClusterBuilder, LocalCluster, MockOptions, MockProvider};
use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Held for the whole test: one gateway at a time.
pub async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// The node's secret key (provider API keys are encrypted under it).
pub const SECRET_KEY: &str = "4f1c2d3e4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The tenant every test consumer belongs to.
pub const TENANT: &str = "acme";

/// Bound for one data-plane request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A one-node cluster, initialised, with clients for its admin API and its data plane.
pub struct Gateway {
    pub cluster: LocalCluster,
    pub admin: AdminClient,
    pub http: reqwest::Client,
    base: String,
    /// The node's JSON-lines access log (one line per call, LLM attempts included).
    pub access_log: std::path::PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.access_log);
    }
}

/// A data-plane client: loopback, no proxies, bounded requests.
pub fn data_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("reqwest client")
}

impl Gateway {
    /// One node with [`SECRET_KEY`], initialised, with the tenant [`TENANT`].
    pub async fn start() -> Gateway {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let access_log = std::env::temp_dir().join(format!(
            "raftgate-llm-test-{}-{}.log",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let builder = ClusterBuilder::new(1)
            .env("RAFTGATE_SECRET_KEY", SECRET_KEY)
            .env("RAFTGATE_ACCESS_LOG", &access_log.display().to_string());
        let mut cluster = builder.start().await.expect("the gateway node starts");
        cluster.init().await.expect("cluster init");
        cluster.wait_leader().await.expect("a leader is elected");
        let admin = cluster.client(0).expect("admin client");
        let base = format!("http://{}", cluster.info(0).expect("node info").http_addr);
        let gw = Gateway {
            cluster,
            admin,
            http: data_client(),
            base,
            access_log,
        };
        gw.create("tenants", json!({"id": TENANT})).await;
        gw
    }

    /// `http://HTTP_ADDR` of the node (the data plane).
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /admin/v1/{collection}`; panics naming the resource on refusal.
    pub async fn create(&self, collection: &str, body: Value) -> Value {
        self.admin
            .create(collection, &body)
            .await
            .unwrap_or_else(|e| panic!("creating {collection} {body}: {e}"))
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

    /// A consumer of [`TENANT`] and a fresh API key for it: the key's plaintext.
    pub async fn consumer_with_key(&self, id: &str) -> String {
        self.consumer_in(id, TENANT).await
    }

    /// A consumer of `tenant` (which must exist) and a fresh API key for it.
    pub async fn consumer_in(&self, id: &str, tenant: &str) -> String {
        self.create("consumers", json!({"id": id, "tenant": tenant}))
            .await;
        let (status, answer) = self
            .admin_call(
                Method::POST,
                &format!("/admin/v1/consumers/{id}/keys"),
                Some(json!({})),
            )
            .await;
        assert!(
            status.is_success(),
            "creating a key for {id}: {status} {answer}"
        );
        answer
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("the key answer has no plaintext 'key': {answer}"))
            .to_string()
    }

    /// A provider `id` pointing at `mock` with the mock's expected key.
    pub async fn provider_for(&self, id: &str, mock: &MockProvider, api_key: &str) {
        let mut body = json!({"id": id, "type": provider_type(mock.flavor()),
            "base_url": mock.base_url(), "api_key": api_key});
        if mock.flavor() == Flavor::Azure {
            body["api_version"] = json!(AZURE_API_VERSION);
        }
        self.create("providers", body).await;
    }

    /// A model `id` with one deployment (`provider`, upstream `model`), permitted to
    /// `consumers`.
    pub async fn simple_model(&self, id: &str, provider: &str, upstream: &str, consumers: &[&str]) {
        self.create(
            "models",
            json!({"id": id, "deployments": [{"provider": provider, "model": upstream}]}),
        )
        .await;
        for c in consumers {
            self.permit(c, id).await;
        }
    }

    /// A Permission for `consumer` on the model `model`.
    pub async fn permit(&self, consumer: &str, model: &str) {
        self.create(
            "permissions",
            json!({"id": format!("{consumer}-{model}"), "consumer": consumer,
                "target": {"model": model}}),
        )
        .await;
    }

    /// `POST path` on the data plane with `Authorization: Bearer key` and a JSON body.
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} {body}: no answer from the gateway: {e:?}"))
    }

    /// A whole (non-stream) call: status, headers and JSON body.
    pub async fn call(&self, path: &str, key: &str, body: &Value) -> Answer {
        Answer::read(
            self.post(path, key, body).await,
            &format!("POST {path} {body}"),
        )
        .await
    }

    /// A streamed call read to its end: status, headers and SSE events.
    pub async fn stream(&self, path: &str, key: &str, body: &Value) -> Streamed {
        let resp = self.post(path, key, body).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("POST {path} {body}: reading the stream: {e:?}"));
        let events = if status == StatusCode::OK {
            sse(&text)
        } else {
            Vec::new()
        };
        Streamed {
            status,
            headers,
            text,
            events,
        }
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

    /// `GET /admin/v1/usage?{query}`: the sum of `used` over every counter listed (all
    /// windows, so that a call straddling a window boundary still counts), and the items.
    pub async fn used(&self, query: &str) -> (u64, Value) {
        let (status, v) = self
            .admin_call(Method::GET, &format!("/admin/v1/usage?{query}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "GET /admin/v1/usage?{query}: {v}");
        let items = v.get("items").cloned().unwrap_or(Value::Null);
        let sum = items
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i.get("used").and_then(Value::as_u64))
                    .sum()
            })
            .unwrap_or(0);
        (sum, items)
    }

    /// Waits until the reported usage for `query` equals `expected`, then checks it stays
    /// there for a reporting period (no late over-charge).
    pub async fn expect_used(&self, what: &str, query: &str, expected: u64) {
        let last = std::sync::Mutex::new(Value::Null);
        let got = wait::until(what, Duration::from_secs(8), || async {
            let (used, items) = self.used(query).await;
            *last.lock().unwrap() = items;
            if used == expected {
                Ok(used)
            } else {
                Err(format!("used {used}, expected {expected}"))
            }
        })
        .await;
        if let Err(e) = got {
            panic!("{e}; usage items: {}", last.lock().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let (used, items) = self.used(query).await;
        assert_eq!(
            used, expected,
            "{what}: usage moved after settling: {items}"
        );
    }
}

/// The Azure `api-version` configured on Azure providers.
pub const AZURE_API_VERSION: &str = "2024-10-21";

/// The provider `type` for a mock flavor.
pub fn provider_type(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::OpenAi => "openai",
        Flavor::Azure => "azure_openai",
        Flavor::Anthropic => "anthropic",
        Flavor::Gemini => "gemini",
    }
}

/// A mock of `flavor` named `name`, expecting `key`.
pub async fn mock(flavor: Flavor, name: &str, key: &str) -> MockProvider {
    mock_with(MockOptions::new(flavor).name(name).api_key(key)).await
}

pub async fn mock_with(opts: MockOptions) -> MockProvider {
    let what = format!("{opts:?}");
    MockProvider::start(opts)
        .await
        .unwrap_or_else(|e| panic!("starting the LLM mock {what}: {e:#}"))
}

/// A non-stream answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Answer {
    pub async fn read(resp: Response, what: &str) -> Answer {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("{what}: reading the body: {e:?}"));
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Panics unless the status is 200 with a JSON body.
    pub fn ok(&self, what: &str) -> &Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{what}: expected 200, got body {}",
            self.text
        );
        assert!(
            self.body.is_object(),
            "{what}: not a JSON object: {}",
            self.text
        );
        &self.body
    }

    /// `choices[0].message.content` of a chat completion.
    pub fn content(&self) -> &str {
        self.body
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no choices[0].message.content in {}", self.text))
    }

    /// Expects OpenAI's error shape `{"error": {"message", "type", "code"}}` with this
    /// status; returns the error object.
    pub fn openai_error(&self, what: &str, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{what}: expected {status}, got body {}",
            self.text
        );
        let e = self
            .body
            .get("error")
            .unwrap_or_else(|| panic!("{what}: no `error` object: {}", self.text));
        for field in ["message", "type"] {
            assert!(
                e.get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty()),
                "{what}: error.{field} is not a non-empty string: {}",
                self.text
            );
        }
        assert!(
            e.get("code").is_some(),
            "{what}: error.code is missing: {}",
            self.text
        );
        e
    }

    /// Expects Anthropic's error shape `{"type": "error", "error": {"type", "message"}}`
    /// with this status and error type.
    pub fn anthropic_error(&self, what: &str, status: u16, kind: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{what}: expected {status}, got body {}",
            self.text
        );
        assert_eq!(
            self.body.get("type").and_then(Value::as_str),
            Some("error"),
            "{what}: not an Anthropic error: {}",
            self.text
        );
        assert_eq!(
            self.body.pointer("/error/type").and_then(Value::as_str),
            Some(kind),
            "{what}: error type: {}",
            self.text
        );
        assert!(
            self.body
                .pointer("/error/message")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty()),
            "{what}: no error.message: {}",
            self.text
        );
    }
}

/// A streamed answer read to its end.
#[derive(Debug)]
pub struct Streamed {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub events: Vec<Sse>,
}

impl Streamed {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Panics unless the status is 200 and the body is SSE.
    pub fn ok(&self, what: &str) -> &Self {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{what}: expected 200, got body {}",
            self.text
        );
        let ct = self.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("text/event-stream"),
            "{what}: content-type {ct:?}"
        );
        self
    }

    /// The OpenAI chunks (`data:` JSON) before `[DONE]`; panics unless the stream ends
    /// with `data: [DONE]` and nothing follows it.
    pub fn openai_chunks(&self, what: &str) -> Vec<Value> {
        let last = self.events.last().map(|e| e.data.as_str());
        assert_eq!(
            last,
            Some("[DONE]"),
            "{what}: the stream does not end with data: [DONE]: {}",
            self.text
        );
        let n = self.events.len();
        self.events[..n - 1]
            .iter()
            .map(|e| {
                assert!(
                    e.event.is_none() || e.event.as_deref() == Some("message"),
                    "{what}: named event in an OpenAI stream: {e:?}"
                );
                let v: Value = serde_json::from_str(&e.data).unwrap_or_else(|err| {
                    panic!("{what}: a data line is not JSON ({err}): {:?}", e.data)
                });
                assert!(
                    v.get("error").is_none(),
                    "{what}: error event in the stream: {}",
                    e.data
                );
                v
            })
            .collect()
    }
}

/// Concatenated `delta.content` of OpenAI chunks.
pub fn delta_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect()
}

/// The chunks carrying a non-null `usage`.
pub fn usage_chunks(chunks: &[Value]) -> Vec<&Value> {
    chunks
        .iter()
        .filter(|c| c.get("usage").is_some_and(|u| !u.is_null()))
        .collect()
}

/// The last `finish_reason` of OpenAI chunks.
pub fn finish_reason(chunks: &[Value]) -> Option<String> {
    chunks.iter().rev().find_map(|c| {
        c.pointer("/choices/0/finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string)
    })
}

/// One SSE event: its `event:` name (if any) and its `data:` lines joined.
#[derive(Debug, Clone)]
pub struct Sse {
    pub event: Option<String>,
    pub data: String,
}

/// Parses a whole SSE body (LF or CRLF framing; comments and events without data
/// skipped).
pub fn sse(body: &str) -> Vec<Sse> {
    let body = body.replace("\r\n", "\n");
    body.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            (!data.is_empty()).then(|| Sse {
                event,
                data: data.join("\n"),
            })
        })
        .collect()
}

/// Whitespace words: the mocks' token count.
pub fn words(s: &str) -> u64 {
    raftgate_chaos::llm_mock::words(s)
}

/// The chat requests a mock received (path ends in a chat or generate operation).
pub fn chat_requests(mock: &MockProvider) -> Vec<RecordedRequest> {
    mock.requests()
        .into_iter()
        .filter(|r| {
            r.path.ends_with("/chat/completions")
                || r.path.ends_with("/v1/messages")
                || r.path.contains(":generateContent")
                || r.path.contains(":streamGenerateContent")
        })
        .collect()
}

/// The last request a mock received; panics when there was none.
pub fn last_request(mock: &MockProvider) -> RecordedRequest {
    mock.requests()
        .pop()
        .unwrap_or_else(|| panic!("the mock {} received no request", mock.name()))
}

/// The sum of every sample of `name` whose labels include all `labels`.
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

/// A chat request body: `user` as the only user message, after a system prompt.
pub fn chat_body(model: &str, system: &str, user: &str) -> Value {
    json!({"model": model, "messages": [
        {"role": "system", "content": system},
        {"role": "user", "content": user}]})
}

/// `body` with `stream: true` (and `stream_options.include_usage` when `usage`).
pub fn streaming(mut body: Value, usage: bool) -> Value {
    body["stream"] = json!(true);
    if usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

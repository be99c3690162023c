//! Payload capture and call-log facts for LLM calls, against a real `raftgate serve`
//! process in front of the mock OpenAI provider of `raftgate_chaos::llm_mock`: a route
//! to a model with a `capture` policy keeps the client's JSON (redacted) and the answer;
//! the built-in `/v1` API follows that route's policy for the same model; a model with
//! no such route keeps nothing; streamed answers keep the start of the SSE stream;
//! embeddings calls record model, provider and tokens; viewers never see bodies.
//! Needs the binary (env RAFTGATE_BIN or the workspace build).
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use raftgate_chaos::llm_mock::Flavor;
use raftgate_chaos::{ClusterBuilder, LocalCluster, MockOptions, MockProvider};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const REPLY: &str = "the pelican answers";
const SECRET: &str = "sk-live-do-not-log";

/// `GET path` on the node's admin API with `token`: status and JSON body.
async fn admin_get(cluster: &LocalCluster, token: &str, path: &str) -> (StatusCode, Value) {
    let client = cluster.client(0).expect("admin client").with_token(token);
    client
        .get_json(path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `POST` an admin JSON body; the JSON answer (panics on refusal).
async fn admin_post(cluster: &LocalCluster, path: &str, body: Value) -> Value {
    let raw = cluster
        .client(0)
        .expect("admin client")
        .raw(
            Method::POST,
            path,
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    assert!(
        raw.status.is_success(),
        "{path}: {} {}",
        raw.status,
        raw.body
    );
    serde_json::from_str(&raw.body).unwrap_or(Value::Null)
}

fn find<'a>(items: &'a [Value], id: &str) -> Option<&'a Value> {
    items.iter().find(|i| i["request_id"] == json!(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_calls_capture_opt_in_bodies_and_embeddings_record_usage() {
    let cluster = ClusterBuilder::new(1)
        .env(
            "RAFTGATE_SECRET_KEY",
            "4f1c2d3e4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
        )
        .form()
        .await
        .expect("one node");
    let token = cluster.token().expect("admin token").to_string();
    let admin = cluster.client(0).expect("admin client");
    let mock = MockProvider::start(
        MockOptions::new(Flavor::OpenAi)
            .name("one")
            .api_key("k1")
            .reply(REPLY),
    )
    .await
    .expect("mock provider");
    let capture =
        json!({"capture": {"request_bytes": 2048, "response_bytes": 2048, "redact": ["api_key"]}});
    let deployments = json!([{"provider": "p1", "model": "up-1"}]);
    for (c, body) in [
        ("tenants", json!({"id": "acme"})),
        ("consumers", json!({"id": "app", "tenant": "acme"})),
        (
            "providers",
            json!({"id": "p1", "type": "openai", "base_url": mock.base_url(), "api_key": "k1"}),
        ),
        (
            "models",
            json!({"id": "m", "deployments": deployments, "pricing": {"input": 2.0, "output": 3.0}}),
        ),
        (
            "models",
            json!({"id": "plain", "deployments": deployments, "pricing": {"input": 2.0, "output": 3.0}}),
        ),
        (
            "routes",
            json!({"id": "cap", "tenant": "acme", "path": "/chat", "target": {"model": "m"},
                   "policies": [capture]}),
        ),
        (
            "permissions",
            json!({"id": "app-m", "consumer": "app", "target": {"model": "m"}}),
        ),
        (
            "permissions",
            json!({"id": "app-plain", "consumer": "app", "target": {"model": "plain"}}),
        ),
    ] {
        admin
            .create(c, &body)
            .await
            .unwrap_or_else(|e| panic!("create {c} {body}: {e}"));
    }
    let key = admin_post(&cluster, "/admin/v1/consumers/app/keys", json!({})).await;
    let key = key["key"].as_str().expect("plaintext key").to_string();
    let base = format!("http://{}", cluster.info(0).expect("info").http_addr);
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let chat = |model: &str, stream: bool| {
        json!({"model": model, "stream": stream, "metadata": {"api_key": SECRET},
               "messages": [{"role": "user", "content": "say something"}]})
    };
    // (name, path, body, with the API key)
    let calls = [
        ("route", "/chat", chat("m", false), false),
        ("route-stream", "/chat", chat("m", true), false),
        ("builtin", "/v1/chat/completions", chat("m", false), true),
        ("plain", "/v1/chat/completions", chat("plain", false), true),
        (
            "embed",
            "/v1/embeddings",
            json!({"model": "plain", "input": "four words of input"}),
            true,
        ),
    ];
    let mut ids = Vec::new();
    for (name, path, body, keyed) in &calls {
        // The route appears once the node has compiled it.
        let deadline = Instant::now() + Duration::from_secs(5);
        let resp = loop {
            let mut req = http.post(format!("{base}{path}")).json(body);
            if *keyed {
                req = req.bearer_auth(&key);
            }
            let r = req.send().await.expect("answer");
            if r.status() == StatusCode::OK || Instant::now() > deadline {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let id = resp.headers()["x-request-id"].to_str().expect("id");
        ids.push((*name, id.to_string()));
        let text = resp.text().await.expect("body");
        if !name.starts_with("embed") {
            assert!(text.contains("pelican"), "{name}: {text}");
        }
    }

    let deadline = Instant::now() + Duration::from_secs(15);
    let all = loop {
        let (status, v) = admin_get(&cluster, &token, "/admin/v1/logs?limit=100").await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if ids.iter().all(|(_, id)| find(&items, id).is_some()) || Instant::now() > deadline {
            break items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rec = |name: &str| {
        let id = &ids.iter().find(|(n, _)| *n == name).expect("call").1;
        find(&all, id)
            .unwrap_or_else(|| panic!("{name} not logged: {all:?}"))
            .clone()
    };

    // Whole answers: the request as the client sent it, redacted; the answer as JSON.
    for name in ["route", "builtin"] {
        let r = rec(name);
        assert!(!r.to_string().contains(SECRET), "{name}: {r}");
        let req: Value =
            serde_json::from_str(r["request_body"].as_str().expect("request captured"))
                .expect("a whole JSON body is stored as JSON");
        assert_eq!(req["metadata"]["api_key"], json!("[REDACTED]"), "{name}");
        assert_eq!(req["model"], json!("m"), "{name}");
        assert_eq!(r["request_truncated"], json!(false), "{name}");
        let resp: Value =
            serde_json::from_str(r["response_body"].as_str().expect("response captured"))
                .expect("the answer is JSON");
        assert_eq!(
            resp["choices"][0]["message"]["content"],
            json!(REPLY),
            "{name}"
        );
        assert_eq!(r["response_truncated"], json!(false), "{name}");
        assert_eq!(r["model"], json!("m"), "{name}");
        assert_eq!(r["provider"], json!("p1"), "{name}");
    }

    // A streamed answer: the start of the SSE stream as it passed.
    let r = rec("route-stream");
    let sse = r["response_body"].as_str().expect("stream captured");
    assert!(sse.starts_with("data: "), "{sse}");
    assert!(sse.contains("pelican"), "{sse}");
    assert!(r["request_body"]
        .as_str()
        .is_some_and(|b| b.contains("[REDACTED]") && !b.contains(SECRET)));

    // No capture policy for the model: no bodies.
    let r = rec("plain");
    for k in ["request_body", "response_body"] {
        assert_eq!(r[k], Value::Null, "no policy, no capture: {r}");
    }
    assert_eq!(r["model"], json!("plain"));

    // Embeddings: model, provider and usage.
    let r = rec("embed");
    assert_eq!(r["model"], json!("plain"), "{r}");
    assert_eq!(r["provider"], json!("p1"), "{r}");
    assert_eq!(r["deployment"], json!("up-1"), "{r}");
    assert!(r["tokens_in"].as_u64().unwrap_or(0) > 0, "{r}");
    assert!(r["cost_micros"].as_u64().unwrap_or(0) > 0, "{r}");
    assert_eq!(r["request_body"], Value::Null, "{r}");

    // Viewers see the calls but no bodies.
    let viewer = admin_post(
        &cluster,
        "/admin/v1/tokens",
        json!({"role": "viewer", "subject": "viewer-llm-capture"}),
    )
    .await;
    let viewer = viewer["token"].as_str().expect("token");
    let (status, v) = admin_get(&cluster, viewer, "/admin/v1/logs?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let items = v["items"].as_array().cloned().unwrap_or_default();
    let route_id = &ids[0].1;
    assert!(find(&items, route_id).is_some(), "the viewer sees the call");
    assert!(
        items
            .iter()
            .all(|i| i["request_body"].is_null() && i["response_body"].is_null()),
        "no body reaches a viewer: {v}"
    );
}

//! Call logs across a real 3-node cluster: calls served by every node's data plane are
//! found by `GET /admin/v1/logs` on one node, merged newest first with the right
//! per-node counts; cursor paging returns every record once; filters and tenant scoping
//! hold; a stopped node is named in `missing_nodes` with `partial: true`.
//! Needs the binary (env RAFTGATE_BIN or the workspace build).
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use raftgate_chaos::{ClusterBuilder, LocalCluster, TestUpstream, UpstreamOptions};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// `GET path` on node `i`'s admin API with `token`: status and JSON body.
async fn admin_get(
    cluster: &LocalCluster,
    i: usize,
    token: &str,
    path: &str,
) -> (StatusCode, Value) {
    let client = cluster.client(i).expect("admin client").with_token(token);
    client
        .get_json(path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

async fn mint(cluster: &LocalCluster, role: &str, tenant: Option<&str>) -> String {
    let client = cluster.client(0).expect("admin client");
    let token = client
        .mint_token(role, tenant, &format!("{role}-logs-test"))
        .await
        .unwrap_or_else(|e| panic!("minting {role}: {e}"));
    assert!(!token.is_empty(), "no token minted for {role}");
    token
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {v}"))
}

/// (time_us, node_id, seq): the cluster-wide order key of an item.
fn pos(item: &Value) -> (u64, u64, u64) {
    let n = |k: &str| item[k].as_u64().unwrap_or_else(|| panic!("{k} in {item}"));
    (n("time_us"), n("node_id"), n("seq"))
}

/// Every page of `query` (without `limit`/`cursor`), `limit` at a time.
async fn all_pages(cluster: &LocalCluster, token: &str, query: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let mut path = format!("/admin/v1/logs?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, v) = admin_get(cluster, 0, token, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["partial"], json!(false), "{v}");
        assert!(items(&v).len() <= limit as usize);
        out.extend(items(&v).iter().cloned());
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("paging never ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_merged_across_nodes_paged_filtered_scoped_and_partial() {
    let mut cluster = ClusterBuilder::new(3).form().await.expect("3-node cluster");
    let token = cluster.token().expect("admin token").to_string();
    let upstream = TestUpstream::start(UpstreamOptions::named("logs"))
        .await
        .expect("test upstream");
    let admin = cluster.client(0).expect("admin client");
    for (c, body) in [
        ("tenants", json!({"id": "ta"})),
        ("tenants", json!({"id": "tb"})),
        (
            "upstreams",
            json!({"id": "u", "targets": [{"address": upstream.addr().to_string(), "weight": 1}]}),
        ),
        (
            "routes",
            json!({"id": "ra", "tenant": "ta", "path": "/ra", "target": {"upstream": "u"}}),
        ),
        (
            "routes",
            json!({"id": "rb", "tenant": "tb", "path": "/status", "target": {"upstream": "u"}}),
        ),
    ] {
        admin
            .create(c, &body)
            .await
            .unwrap_or_else(|e| panic!("create {c} {body}: {e}"));
    }

    // 20 calls per node: 10 to ta's route (200), 6 to tb's (503), 4 without a route (404).
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut per_node: BTreeMap<String, u64> = BTreeMap::new();
    let mut request_ids = HashSet::new();
    let kinds = [("/ra/x", 200u16); 10]
        .into_iter()
        .chain([("/status/503", 503); 6])
        .chain([("/nope", 404); 4]);
    let kinds: Vec<(&str, u16)> = kinds.collect();
    for round in 0..kinds.len() {
        for i in 0..3 {
            let (path, want) = kinds[(round + i) % kinds.len()];
            let base = &cluster.info(i).expect("info").http_addr;
            let url = format!("http://{base}{path}");
            // Each node's data plane must have the routes before we count on them.
            let deadline = Instant::now() + Duration::from_secs(5);
            let resp = loop {
                let r = http.get(&url).send().await.expect("data-plane answer");
                if r.status().as_u16() == want || Instant::now() > deadline {
                    break r;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert_eq!(resp.status().as_u16(), want, "{url}");
            let id = resp.headers()["x-request-id"]
                .to_str()
                .expect("id")
                .to_string();
            request_ids.insert(id);
            let _ = resp.bytes().await;
            *per_node.entry(cluster.node_id(i).to_string()).or_default() += 1;
        }
    }
    // Retries above (route not yet compiled) also made calls; count what was logged.
    let total = 60usize;
    assert_eq!(request_ids.len(), total);

    // The writer batches every ~20 ms: wait until every node's records are there.
    let deadline = Instant::now() + Duration::from_secs(15);
    let all = loop {
        let (status, v) = admin_get(&cluster, 0, &token, "/admin/v1/logs?limit=1000").await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let found: HashSet<&str> = items(&v)
            .iter()
            .filter_map(|i| i["request_id"].as_str())
            .collect();
        if request_ids.iter().all(|id| found.contains(id.as_str())) || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(all["partial"], json!(false), "{all}");
    assert_eq!(all["missing_nodes"], json!([]));
    assert_eq!(all["next_cursor"], Value::Null);
    let list = items(&all);
    // Only the calls this test made (plus any early 404s while routes compiled).
    let ours: Vec<&Value> = list
        .iter()
        .filter(|i| request_ids.contains(i["request_id"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(ours.len(), total, "every call logged exactly once");
    assert!(
        list.windows(2).all(|w| pos(&w[0]) > pos(&w[1])),
        "sorted newest first by (time, node, seq)"
    );
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for i in &ours {
        *counted.entry(i["node_id"].to_string()).or_default() += 1;
    }
    assert_eq!(counted, per_node, "records per serving node");
    for (node, n) in all["nodes"].as_object().expect("nodes") {
        let id: u64 = node.parse().expect("node ids are numbers");
        let listed = list.iter().filter(|i| i["node_id"] == json!(id)).count();
        assert_eq!(n.as_u64(), Some(listed as u64), "nodes count of {node}");
    }
    let ra = ours
        .iter()
        .find(|i| i["route"] == json!("ra"))
        .expect("an ra call");
    assert_eq!(ra["tenant"], json!("ta"));
    assert_eq!(ra["status"], json!(200));
    assert_eq!(ra["method"], json!("GET"));
    assert!(ra["latency_us"].as_u64().unwrap_or(0) > 0);

    // Paging: every record exactly once, in the same order, for several page sizes.
    for limit in [1u32, 7, 25] {
        let paged = all_pages(&cluster, &token, "", limit).await;
        let a: Vec<_> = paged.iter().map(pos).collect();
        let b: Vec<_> = list.iter().map(pos).collect();
        assert_eq!(a, b, "paging with limit {limit}");
    }

    // Filters.
    let count = |q: &'static str| {
        let (cluster, token) = (&cluster, &token);
        async move {
            let (status, v) =
                admin_get(cluster, 0, token, &format!("/admin/v1/logs?limit=1000&{q}")).await;
            assert_eq!(status, StatusCode::OK, "{q}: {v}");
            items(&v).to_vec()
        }
    };
    let ta = count("tenant=ta").await;
    assert_eq!(ta.len(), 30);
    assert!(ta
        .iter()
        .all(|i| i["tenant"] == json!("ta") && i["route"] == json!("ra")));
    let fives = count("status_class=5xx").await;
    assert_eq!(fives.len(), 18);
    assert!(fives
        .iter()
        .all(|i| i["status"] == json!(503) && i["route"] == json!("rb")));
    assert_eq!(count("route=rb&status_class=5xx").await.len(), 18);
    assert_eq!(count("tenant=ta&status_class=5xx").await.len(), 0);
    let fours = count("status_class=4xx").await;
    assert!(fours.len() >= 12 && fours.iter().all(|i| i["status"] == json!(404)));
    assert_eq!(count("min_latency_ms=600000").await.len(), 0);
    let later = "from_ms=99999999999999";
    assert_eq!(count(later).await.len(), 0);
    assert_eq!(count("to_ms=1").await.len(), 0);

    // Bad parameters: 400 with a JSON error.
    for bad in [
        "limit=0",
        "limit=5000",
        "status_class=7xx",
        "cursor=garbage",
        "bogus=1",
    ] {
        let (status, v) = admin_get(&cluster, 0, &token, &format!("/admin/v1/logs?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(v["error"]["code"].is_string(), "{bad}: {v}");
    }

    // A tenant admin sees only its tenant, whatever it asks for; a viewer sees all.
    let ta_token = mint(&cluster, "tenant-admin", Some("ta")).await;
    let (status, v) = admin_get(&cluster, 1, &ta_token, "/admin/v1/logs?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(items(&v).len(), 30);
    assert!(items(&v).iter().all(|i| i["tenant"] == json!("ta")));
    let (status, v) = admin_get(&cluster, 1, &ta_token, "/admin/v1/logs?tenant=tb").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let viewer = mint(&cluster, "viewer", None).await;
    let (status, v) = admin_get(&cluster, 2, &viewer, "/admin/v1/logs?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(items(&v).len(), list.len());
    let (status, _) = admin_get(&cluster, 0, "not-a-token", "/admin/v1/logs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The CLI: a table by default, the API's JSON with --json.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(cluster.binary())
            .arg("logs")
            .args([
                "--server",
                &cluster.admin_url(0).expect("url"),
                "--token",
                &token,
            ])
            .args(args)
            .output()
            .expect("run raftgate logs");
        assert!(out.status.success(), "raftgate logs {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let table = cli(&["--route", "rb", "--status", "5xx", "--since", "1h"]);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 18, "{table}");
    assert!(table.lines().next().unwrap_or("").starts_with("TIME (UTC)"));
    assert!(
        rows.iter()
            .all(|r| r.contains(" 503 ") && r.contains("/status/503")),
        "{table}"
    );
    let v: Value = serde_json::from_str(&cli(&["--tenant", "ta", "--limit", "5", "--json"]))
        .expect("--json prints JSON");
    assert_eq!(items(&v).len(), 5);
    assert!(v["next_cursor"].is_string());

    // The writer's counters are on /metrics.
    let metrics = cluster
        .client(0)
        .expect("client")
        .raw(Method::GET, "/metrics", None)
        .await
        .expect("GET /metrics")
        .body;
    assert!(
        metrics.contains("raftgate_call_log_dropped_total 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("raftgate_call_log_written_total"),
        "{metrics}"
    );

    // One node down: its records are missing, and the answer says so.
    let gone = cluster.node_id(2);
    cluster.kill9(2).expect("kill node 3");
    let (status, v) = admin_get(&cluster, 0, &token, "/admin/v1/logs?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["partial"], json!(true), "{v}");
    assert_eq!(v["missing_nodes"], json!([gone]), "{v}");
    assert!(v["nodes"].get(gone.to_string()).is_none(), "{v}");
    let left = list.iter().filter(|i| i["node_id"] != json!(gone)).count();
    assert_eq!(items(&v).len(), left);
    assert!(items(&v).iter().all(|i| i["node_id"] != json!(gone)));
    drop(upstream);
}

/// LLM calls: the record names the model, the provider and deployment that answered and
/// the providers that failed before it, tokens, cost, time to first token (streams),
/// cache hits and guardrail categories (never the matched values).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_calls_are_logged_with_usage_fallbacks_cache_and_guardrails() {
    use raftgate_chaos::llm_mock::{Fault, Flavor};
    use raftgate_chaos::{MockOptions, MockProvider};

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
    let primary = MockProvider::start(MockOptions::new(Flavor::OpenAi).name("one").api_key("k1"))
        .await
        .expect("mock one");
    let secondary = MockProvider::start(MockOptions::new(Flavor::OpenAi).name("two").api_key("k2"))
        .await
        .expect("mock two");
    primary.set_fault(Fault::Status {
        status: 429,
        retry_after_secs: None,
        times: Some(1),
    });
    for (c, body) in [
        (
            "tenants",
            json!({"id": "acme", "guardrails": {"pii": {"categories": ["email"], "action": "redact"}}}),
        ),
        ("consumers", json!({"id": "app", "tenant": "acme"})),
        (
            "providers",
            json!({"id": "p1", "type": "openai", "base_url": primary.base_url(), "api_key": "k1"}),
        ),
        (
            "providers",
            json!({"id": "p2", "type": "openai", "base_url": secondary.base_url(), "api_key": "k2"}),
        ),
        (
            "models",
            json!({"id": "m", "cache": {"ttl_secs": 60}, "pricing": {"input": 2.0, "output": 3.0},
                   "deployments": [{"provider": "p1", "model": "up-1", "priority": 0},
                                   {"provider": "p2", "model": "up-2", "priority": 1}]}),
        ),
        (
            "permissions",
            json!({"id": "app-m", "consumer": "app", "target": {"model": "m"}}),
        ),
    ] {
        admin
            .create(c, &body)
            .await
            .unwrap_or_else(|e| panic!("create {c} {body}: {e}"));
    }
    let raw = admin
        .raw(
            Method::POST,
            "/admin/v1/consumers/app/keys",
            Some(("application/json", b"{}".to_vec())),
        )
        .await
        .expect("key");
    let key: Value = serde_json::from_str(&raw.body).expect("key JSON");
    let key = key["key"].as_str().expect("plaintext key").to_string();
    let url = format!(
        "http://{}/v1/chat/completions",
        cluster.info(0).expect("info").http_addr
    );
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let chat = |text: &str, stream: bool| {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": text}]});
        if stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    };
    let mut ids = Vec::new();
    for body in [
        chat("mail jane.doe@example.com please", false), // 429 on p1, then p2
        chat("mail jane.doe@example.com please", false), // the same: a cache hit
        chat("a stream please", true),
    ] {
        let resp = http
            .post(&url)
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), StatusCode::OK, "{body}");
        ids.push(
            resp.headers()["x-request-id"]
                .to_str()
                .expect("id")
                .to_string(),
        );
        let _ = resp.text().await;
    }

    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let (status, v) = admin_get(&cluster, 0, &token, "/admin/v1/logs?model=m").await;
        assert_eq!(status, StatusCode::OK, "{v}");
        if items(&v).len() >= 3 || Instant::now() > deadline {
            break items(&v).clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(got.len(), 3, "{got:?}");
    let by_id = |id: &str| {
        got.iter()
            .find(|i| i["request_id"] == json!(id))
            .unwrap_or_else(|| panic!("no record for {id}: {got:?}"))
    };
    let first = by_id(&ids[0]);
    assert_eq!(first["tenant"], json!("acme"), "{first}");
    assert_eq!(first["consumer"], json!("app"));
    assert_eq!(first["provider"], json!("p2"), "{first}");
    assert_eq!(first["deployment"], json!("up-2"));
    assert_eq!(first["fallbacks"], json!(["p1"]));
    assert_eq!(first["attempts"], json!(2));
    assert_eq!(first["cache_hit"], json!(false));
    assert_eq!(first["guardrails"], json!(["email"]));
    assert!(first["tokens_in"].as_u64().unwrap_or(0) > 0, "{first}");
    assert!(first["tokens_out"].as_u64().unwrap_or(0) > 0, "{first}");
    assert!(first["cost_micros"].as_u64().unwrap_or(0) > 0, "{first}");
    assert!(!first.to_string().contains("jane.doe"), "no matched values");
    let cached = by_id(&ids[1]);
    assert_eq!(cached["cache_hit"], json!(true), "{cached}");
    assert_eq!(cached["model"], json!("m"));
    let streamed = by_id(&ids[2]);
    assert!(streamed["ttft_us"].as_u64().is_some(), "{streamed}");
    assert!(
        streamed["tokens_out"].as_u64().unwrap_or(0) > 0,
        "{streamed}"
    );
    // p1 cools down after its 429, so the stream goes straight to p2: no fallback.
    assert_eq!(streamed["provider"], json!("p2"), "{streamed}");
    assert_eq!(streamed["attempts"], json!(1));
    assert_eq!(streamed["fallbacks"], json!([]));
}

/// Payload capture: a route with a `capture` policy keeps the first 64 bytes of each
/// body, redacted, with truncation flags; the upstream still gets the original bytes
/// (small bodies read whole and chunked ones streamed); routes without the policy keep
/// nothing; viewer tokens never see captured bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_capture_is_opt_in_capped_redacted_and_hidden_from_viewers() {
    use sha2::{Digest, Sha256};

    let cluster = ClusterBuilder::new(1).form().await.expect("one node");
    let token = cluster.token().expect("admin token").to_string();
    let upstream = TestUpstream::start(UpstreamOptions::named("cap"))
        .await
        .expect("test upstream");
    let admin = cluster.client(0).expect("admin client");
    let capture =
        json!({"capture": {"request_bytes": 64, "response_bytes": 64, "redact": ["password"]}});
    for (c, body) in [
        ("tenants", json!({"id": "tc"})),
        (
            "upstreams",
            json!({"id": "u", "targets": [{"address": upstream.addr().to_string(), "weight": 1}]}),
        ),
        (
            "routes",
            json!({"id": "cap", "tenant": "tc", "path": "/upload", "target": {"upstream": "u"},
                   "policies": [capture]}),
        ),
        (
            "routes",
            json!({"id": "plain", "tenant": "tc", "path": "/echo", "target": {"upstream": "u"}}),
        ),
    ] {
        admin
            .create(c, &body)
            .await
            .unwrap_or_else(|e| panic!("create {c} {body}: {e}"));
    }
    let base = format!("http://{}", cluster.info(0).expect("info").http_addr);
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let long = "x".repeat(200);
    // Written out so the key order is known: the password falls inside the first 64 bytes.
    let big = format!(r#"{{"user":"ann","password":"hunter2","note":"{long}"}}"#);
    let small = r#"{"Password":"s3cret","a":1}"#;
    // Chunked (streamed through the wrapper), and far over the cap.
    let chunks: Vec<Result<String, std::io::Error>> = vec![
        Ok(r#"{"password": "chunky", "pad": ""#.to_string()),
        Ok("y".repeat(100_000)),
        Ok(r#""}"#.to_string()),
    ];
    let streamed: String = chunks.iter().flatten().map(String::as_str).collect();
    let mut ids = BTreeMap::new();
    for (name, body) in [
        ("big", reqwest::Body::from(big.clone())),
        ("small", reqwest::Body::from(small.to_string())),
        (
            "stream",
            reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
        ),
    ] {
        let sent = match name {
            "big" => big.as_str(),
            "small" => small,
            _ => streamed.as_str(),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut body = Some(body);
        let resp = loop {
            let b = body
                .take()
                .unwrap_or_else(|| reqwest::Body::from(sent.to_string()));
            let r = http
                .post(format!("{base}/upload"))
                .body(b)
                .send()
                .await
                .expect("answer");
            if r.status() == StatusCode::OK || Instant::now() > deadline {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let id = resp.headers()["x-request-id"]
            .to_str()
            .expect("id")
            .to_string();
        let got: Value = resp.json().await.expect("upload JSON");
        // The upstream received exactly what the client sent.
        assert_eq!(got["bytes"], json!(sent.len()), "{name}");
        assert_eq!(
            got["sha256"],
            json!(hex::encode(Sha256::digest(sent.as_bytes()))),
            "{name}"
        );
        ids.insert(name, id);
    }
    let resp = http
        .post(format!("{base}/echo"))
        .body(big.clone())
        .send()
        .await
        .expect("plain answer");
    assert_eq!(resp.status(), StatusCode::OK);
    ids.insert(
        "plain",
        resp.headers()["x-request-id"]
            .to_str()
            .expect("id")
            .to_string(),
    );
    let _ = resp.bytes().await;

    let find = |v: &Value, id: &str| -> Option<Value> {
        items(v)
            .iter()
            .find(|i| i["request_id"] == json!(id))
            .cloned()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let all = loop {
        let (status, v) = admin_get(&cluster, 0, &token, "/admin/v1/logs?limit=100").await;
        assert_eq!(status, StatusCode::OK, "{v}");
        if ids.values().all(|id| find(&v, id).is_some()) || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rec =
        |name: &str| find(&all, &ids[name]).unwrap_or_else(|| panic!("{name} not logged: {all}"));

    let r = rec("big");
    let req = r["request_body"].as_str().expect("request captured");
    assert!(
        req.starts_with(r#"{"user":"ann","password":"[REDACTED]","note":"xxx"#),
        "{req}"
    );
    assert!(!req.contains("hunter2"), "{req}");
    assert_eq!(r["request_truncated"], json!(true));
    let resp_body = r["response_body"].as_str().expect("response captured");
    assert_eq!(resp_body.len(), 64, "the response prefix: {resp_body}");
    assert!(resp_body.starts_with(r#"{"bytes":"#) || resp_body.starts_with(r#"{"sha256":"#));
    assert_eq!(
        r["response_truncated"],
        json!(true),
        "the upload answer is over 64 bytes"
    );

    let r = rec("small");
    let req: Value = serde_json::from_str(r["request_body"].as_str().expect("small captured"))
        .expect("a whole JSON body is stored as JSON");
    assert_eq!(
        req,
        json!({"Password": "[REDACTED]", "a": 1}),
        "case-insensitive"
    );
    assert_eq!(r["request_truncated"], json!(false));

    let r = rec("stream");
    let req = r["request_body"].as_str().expect("stream captured");
    assert!(
        req.starts_with(r#"{"password": "[REDACTED]", "pad": "yyy"#),
        "{req}"
    );
    assert!(!req.contains("chunky"));
    assert_eq!(r["request_truncated"], json!(true));

    let r = rec("plain");
    for k in ["request_body", "response_body"] {
        assert_eq!(r[k], Value::Null, "no policy, no capture: {r}");
    }
    assert_eq!(r["request_truncated"], json!(false));

    // Viewers see the calls but not the bodies; the tenant's admin sees them.
    let viewer = mint(&cluster, "viewer", None).await;
    let (status, v) = admin_get(&cluster, 0, &viewer, "/admin/v1/logs?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let seen = find(&v, &ids["big"]).expect("viewer sees the call");
    assert_eq!(seen["request_body"], Value::Null, "{seen}");
    assert_eq!(seen["response_body"], Value::Null, "{seen}");
    assert_eq!(seen["request_truncated"], json!(false));
    assert!(
        items(&v)
            .iter()
            .all(|i| i["request_body"].is_null() && i["response_body"].is_null()),
        "no body reaches a viewer"
    );
    let tadmin = mint(&cluster, "tenant-admin", Some("tc")).await;
    let (status, v) = admin_get(&cluster, 0, &tadmin, "/admin/v1/logs?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let seen = find(&v, &ids["big"]).expect("tenant admin sees its tenant's call");
    assert!(seen["request_body"]
        .as_str()
        .is_some_and(|b| b.contains("[REDACTED]")));
}

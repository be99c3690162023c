//! Analytics across a real 3-node cluster: calls with known upstream delays served by
//! every node are counted exactly by `GET /admin/v1/analytics/timeseries` and `/top` on
//! one node; merged percentiles are within the sketch's 1% of the exact ones (taken from
//! the call logs' latencies); tenant admins see only their tenant; bad parameters are
//! 400s; `raftgate top --once` prints the routes; a stopped node makes the answer partial.
//! Needs the binary (env RAFTGATE_BIN or the workspace build).
#![forbid(unsafe_code)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use raftgate_chaos::{ClusterBuilder, LocalCluster, TestUpstream, UpstreamOptions};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Upstream delays (ms) of the `slow` route's calls, sent to every node.
const DELAYS: [u64; 10] = [20, 40, 60, 80, 100, 120, 140, 160, 180, 200];

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
        .mint_token(role, tenant, &format!("{role}-analytics"))
        .await
        .unwrap_or_else(|e| panic!("minting {role}: {e}"));
    assert!(!token.is_empty(), "no token minted for {role}");
    token
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {v}"))
}

/// The top list as (key, requests).
fn counts(v: &Value) -> Vec<(String, u64)> {
    items(v)
        .iter()
        .map(|i| {
            (
                i["key"].as_str().unwrap_or("?").to_string(),
                i["requests"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Sum of `field` over a time series' points.
fn total(v: &Value, field: &str) -> u64 {
    v["points"]
        .as_array()
        .unwrap_or_else(|| panic!("no points in {v}"))
        .iter()
        .map(|p| p[field].as_u64().unwrap_or(0))
        .sum()
}

/// The exact quantile as the sketch defines it: the sample of rank max(1, ceil(q·n)).
fn exact(sorted: &[u64], q: f64) -> f64 {
    let n = sorted.len() as u64;
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
    sorted[(rank - 1) as usize] as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_merge_across_nodes_with_bounded_percentiles_scoping_and_partial_answers() {
    let mut cluster = ClusterBuilder::new(3).form().await.expect("3-node cluster");
    let token = cluster.token().expect("admin token").to_string();
    let upstream = TestUpstream::start(UpstreamOptions::named("analytics"))
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
            json!({"id": "slow", "tenant": "ta", "path": "/delay", "target": {"upstream": "u"}}),
        ),
        (
            "routes",
            json!({"id": "fail", "tenant": "tb", "path": "/status", "target": {"upstream": "u"}}),
        ),
        // Created last: once a node serves it, it has the other routes too.
        (
            "routes",
            json!({"id": "warm", "path": "/warm", "target": {"upstream": "u"}}),
        ),
    ] {
        admin
            .create(c, &body)
            .await
            .unwrap_or_else(|e| panic!("create {c} {body}: {e}"));
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let started = now_ms();
    for i in 0..3 {
        let base = &cluster.info(i).expect("info").http_addr;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = http.get(format!("http://{base}/warm")).send().await;
            if r.is_ok_and(|r| r.status() == StatusCode::OK) {
                break;
            }
            assert!(Instant::now() < deadline, "node {i} never served /warm");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Per node: 10 slow calls (ta), 5 × 503 and 3 × 404 on `fail` (tb).
    for i in 0..3 {
        let base = cluster.info(i).expect("info").http_addr.clone();
        let mut calls: Vec<(String, u16)> = DELAYS
            .iter()
            .map(|d| (format!("/delay/{d}"), 200))
            .collect();
        calls.extend(std::iter::repeat_n(("/status/503".to_string(), 503), 5));
        calls.extend(std::iter::repeat_n(("/status/404".to_string(), 404), 3));
        for (path, want) in calls {
            let resp = http
                .get(format!("http://{base}{path}"))
                .send()
                .await
                .expect("data-plane answer");
            assert_eq!(resp.status().as_u16(), want, "{path} on node {i}");
            let _ = resp.bytes().await;
        }
    }
    let range = format!("from_ms={}&to_ms={}", started, now_ms() + 60_000);

    // Rollups are written about once a second: wait until every call is counted.
    let top_path = format!("/admin/v1/analytics/top?dimension=route&{range}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let by_requests = loop {
        let (status, v) = admin_get(&cluster, 0, &token, &top_path).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let c = counts(&v);
        if c.starts_with(&[("slow".into(), 30), ("fail".into(), 24)]) || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(by_requests["partial"], json!(false), "{by_requests}");
    assert_eq!(by_requests["missing_nodes"], json!([]));
    let c = counts(&by_requests);
    assert_eq!(
        c[..2],
        [("slow".into(), 30), ("fail".into(), 24)],
        "{by_requests}"
    );
    assert_eq!(c.len(), 3, "slow, fail and warm: {by_requests}");
    let fail = &items(&by_requests)[1];
    assert_eq!(fail["errors_5xx"], json!(15), "{fail}");
    assert_eq!(fail["errors_4xx"], json!(9), "{fail}");
    assert_eq!(fail["error_rate"], json!(1.0), "{fail}");
    let slow = items(&by_requests)[0].clone();
    assert_eq!(slow["errors_4xx"], json!(0));
    assert_eq!(slow["errors_5xx"], json!(0));

    // Percentiles: within 1% of the exact ones over the gateway's own measurements.
    let (status, logs) = admin_get(
        &cluster,
        0,
        &token,
        &format!("/admin/v1/logs?route=slow&limit=1000&from_ms={started}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    let mut lat: Vec<u64> = items(&logs)
        .iter()
        .map(|i| i["latency_us"].as_u64().expect("latency_us"))
        .collect();
    lat.sort_unstable();
    assert_eq!(lat.len(), 30);
    assert!(
        lat[29] >= 200_000,
        "the slowest call waited 200 ms upstream"
    );
    for (field, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
        let got = slow[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} in {slow}"));
        let want = exact(&lat, q);
        assert!(
            (got - want).abs() <= want * 0.01 + 0.001,
            "{field}: merged {got} ms, exact {want} ms"
        );
    }
    let (status, v) = admin_get(
        &cluster,
        1,
        &token,
        &format!("/admin/v1/analytics/top?dimension=route&by=p99&limit=1&{range}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(counts(&v), [("slow".to_string(), 30)], "slowest route: {v}");
    let (_, v) = admin_get(
        &cluster,
        2,
        &token,
        &format!("/admin/v1/analytics/top?dimension=route&by=errors&limit=1&{range}"),
    )
    .await;
    assert_eq!(counts(&v), [("fail".to_string(), 24)], "{v}");

    // Time series: points per minute, summing to the calls sent.
    let (status, v) = admin_get(
        &cluster,
        2,
        &token,
        &format!("/admin/v1/analytics/timeseries?dimension=route&key=fail&{range}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (
            total(&v, "requests"),
            total(&v, "errors_5xx"),
            total(&v, "errors_4xx")
        ),
        (24, 15, 9),
        "{v}"
    );
    let points = v["points"].as_array().expect("points");
    assert!(points.len() >= 2, "one point per minute: {v}");
    assert!(points
        .windows(2)
        .all(|w| w[1]["minute_ms"].as_u64() == w[0]["minute_ms"].as_u64().map(|m| m + 60_000)));
    let (_, v) = admin_get(
        &cluster,
        0,
        &token,
        &format!("/admin/v1/analytics/timeseries?dimension=all&tenant=ta&{range}"),
    )
    .await;
    assert_eq!(total(&v, "requests"), 30, "every call of tenant ta: {v}");

    // Tenant admins see their own tenant only; others' are refused.
    let ta = mint(&cluster, "tenant-admin", Some("ta")).await;
    let (status, v) = admin_get(&cluster, 1, &ta, &top_path).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(counts(&v), [("slow".to_string(), 30)], "{v}");
    let (_, v) = admin_get(
        &cluster,
        1,
        &ta,
        &format!("/admin/v1/analytics/timeseries?{range}"),
    )
    .await;
    assert_eq!(total(&v, "requests"), 30, "{v}");
    let (status, v) = admin_get(&cluster, 1, &ta, &format!("{top_path}&tenant=tb")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let viewer = mint(&cluster, "viewer", None).await;
    let (status, v) = admin_get(&cluster, 2, &viewer, &top_path).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(counts(&v)[..2], counts(&by_requests)[..2]);

    // Bad parameters: 400 with a JSON error.
    for bad in [
        "/admin/v1/analytics/top?dimension=all",
        "/admin/v1/analytics/top?dimension=route&by=latency",
        "/admin/v1/analytics/top?dimension=route&limit=0",
        "/admin/v1/analytics/timeseries?dimension=planet",
        "/admin/v1/analytics/timeseries?from_ms=10&to_ms=5",
        "/admin/v1/analytics/timeseries?from_ms=abc",
    ] {
        let (status, v) = admin_get(&cluster, 0, &token, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(v["error"]["code"], json!("invalid_query"), "{bad}: {v}");
    }

    // The live view, one frame.
    let out = std::process::Command::new(cluster.binary())
        .args([
            "top",
            "--once",
            "--by",
            "route",
            "--server",
            &cluster.admin_url(0).expect("url"),
            "--token",
            &token,
        ])
        .output()
        .expect("run raftgate top");
    assert!(out.status.success(), "raftgate top: {out:?}");
    let frame = String::from_utf8_lossy(&out.stdout).to_string();
    let row = |name: &str| -> Vec<String> {
        frame
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} row in\n{frame}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(row("slow")[2], "30", "{frame}");
    assert_eq!(row("fail")[2..5], ["24", "9", "15"], "{frame}");
    assert!(frame.contains("(all calls)"), "{frame}");

    // One node down: the answer is partial and lacks that node's calls.
    let gone = cluster.node_id(2);
    cluster.kill9(2).expect("kill node 3");
    let (status, v) = admin_get(&cluster, 0, &token, &top_path).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["partial"], json!(true), "{v}");
    assert_eq!(v["missing_nodes"], json!([gone]), "{v}");
    assert!(v["errors"][gone.to_string()].is_string(), "{v}");
    assert_eq!(
        counts(&v)[..2],
        [("slow".to_string(), 20), ("fail".to_string(), 16)],
        "{v}"
    );
    drop(upstream);
}

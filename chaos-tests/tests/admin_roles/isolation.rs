//! A tenant admin of tenant-a reads nothing of tenant-b through any endpoint: lists,
//! single reads, search filters, usage, logs and analytics; and writes nothing of it.
//! Each check has its control: the admin does see tenant-b's part.

use std::time::Duration;

use raftgate_chaos::{wait, LocalCluster};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{admin_get, call};

/// Ids that only tenant-b's resources and traffic carry.
const B_IDS: [&str; 9] = [
    "tenant-b", "cons-b1", "key-b1", "prompt-b", "sub-b1", "svc-b", "model-b", "route-b", "quota-b",
];

fn leaks(v: &Value) -> Vec<&'static str> {
    let text = v.to_string();
    B_IDS.into_iter().filter(|id| text.contains(id)).collect()
}

/// Waits until the admin's view of `path` mentions `id` (logs, usage and rollups lag).
async fn admin_sees(c: &LocalCluster, path: &str, id: &str) {
    wait::until(
        &format!("{id} in {path}"),
        Duration::from_secs(60),
        || async {
            let v = admin_get(c, path).await;
            if v.to_string().contains(id) {
                Ok(())
            } else {
                Err(v.to_string())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("admin never saw {id} in {path}: {e}"));
}

pub async fn check(c: &LocalCluster, ta: &str) {
    let get = |path: String| async move { call(c, Some(ta), Method::GET, &path, None).await };

    // Resources: lists hide tenant-b, single reads answer 404 (no existence leak).
    for (coll, b_id, a_id) in [
        ("tenants", "tenant-b", "tenant-a"),
        ("consumers", "cons-b1", "cons-a1"),
        ("api_keys", "key-b1", "key-a1"),
        ("models", "model-b", "model-a"),
        ("prompt_templates", "prompt-b", "prompt-a"),
        ("services", "svc-b", "svc-a"),
        ("subscriptions", "sub-b1", "sub-a1"),
        ("routes", "route-b", "route-a"),
        ("quota_policies", "quota-b", "quota-a"),
    ] {
        let all = admin_get(c, &format!("/admin/v1/{coll}")).await;
        assert!(
            all.to_string().contains(b_id),
            "control: admin lists {b_id}"
        );
        let (s, v) = get(format!("/admin/v1/{coll}")).await;
        assert_eq!(s, StatusCode::OK, "{coll}: {v}");
        assert!(
            v.to_string().contains(a_id),
            "tenant-a's {a_id} listed: {v}"
        );
        assert_eq!(leaks(&v), Vec::<&str>::new(), "{coll} list leaks: {v}");
        for q in ["?consistent=true", ""] {
            let (s, v) = get(format!("/admin/v1/{coll}/{b_id}{q}")).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{coll}/{b_id}: {v}");
        }
    }

    // Call logs: forced to the caller's tenant; asking for another is refused.
    admin_sees(c, "/admin/v1/logs", "cons-b1").await;
    admin_sees(c, "/admin/v1/logs", "cons-a1").await;
    let (s, v) = get("/admin/v1/logs".into()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v.to_string().contains("cons-a1"), "own calls listed: {v}");
    assert_eq!(leaks(&v), Vec::<&str>::new(), "logs leak: {v}");
    for q in ["consumer=cons-b1", "route=route-b"] {
        let (s, v) = get(format!("/admin/v1/logs?{q}")).await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
        assert_eq!(v["items"], json!([]), "logs?{q}: {v}");
    }
    let (s, v) = get("/admin/v1/logs?tenant=tenant-b".into()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // Quota usage: only counters of tenant-a's policies.
    admin_sees(c, "/admin/v1/usage", "quota-b").await;
    admin_sees(c, "/admin/v1/usage", "quota-a").await;
    let (s, v) = get("/admin/v1/usage".into()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v.to_string().contains("quota-a"), "own usage listed: {v}");
    assert_eq!(leaks(&v), Vec::<&str>::new(), "usage leaks: {v}");
    for q in [
        "tenant=tenant-b",
        "consumer=cons-b1",
        "policy=quota-b",
        "route=route-b",
    ] {
        let (s, v) = get(format!("/admin/v1/usage?{q}")).await;
        assert!(
            s == StatusCode::FORBIDDEN || v["items"] == json!([]),
            "usage?{q}: {s} {v}"
        );
        assert_eq!(leaks(&v), Vec::<&str>::new(), "usage?{q} leaks: {v}");
    }

    // Analytics: forced to the caller's tenant.
    let top = "/admin/v1/analytics/top?dimension=consumer";
    admin_sees(c, top, "cons-b1").await;
    for path in [
        top.to_string(),
        "/admin/v1/analytics/top?dimension=tenant".into(),
        "/admin/v1/analytics/top?dimension=route".into(),
        "/admin/v1/analytics/timeseries".into(),
    ] {
        let (s, v) = get(path.clone()).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        assert_eq!(leaks(&v), Vec::<&str>::new(), "{path} leaks: {v}");
    }
    let (s, v) = get(top.to_string()).await;
    assert!(
        v.to_string().contains("cons-a1"),
        "own analytics listed: {s} {v}"
    );
    // Naming another tenant's consumer gets its key echoed back, and nothing counted.
    let series = "/admin/v1/analytics/timeseries?dimension=consumer&key=cons-b1";
    let requests = |v: &Value| -> u64 {
        let points = v["points"].as_array().cloned().unwrap_or_default();
        points.iter().filter_map(|p| p["requests"].as_u64()).sum()
    };
    assert!(
        requests(&admin_get(c, series).await) > 0,
        "control: admin counts cons-b1"
    );
    let (s, v) = get(series.to_string()).await;
    assert_eq!((s, requests(&v)), (StatusCode::OK, 0), "{v}");
    for path in [
        "/admin/v1/analytics/top?dimension=consumer&tenant=tenant-b",
        "/admin/v1/analytics/timeseries?tenant=tenant-b",
    ] {
        let (s, v) = get(path.into()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
    }

    // Writes on tenant-b's resources are refused and change nothing.
    let before = admin_get(c, "/admin/v1/consumers/cons-b1").await;
    for (method, path, body) in [
        (
            Method::PUT,
            "/admin/v1/consumers/cons-b1",
            Some(json!({"tenant": "tenant-b", "name": "x"})),
        ),
        (
            Method::PUT,
            "/admin/v1/consumers/cons-b1",
            Some(json!({"tenant": "tenant-a", "name": "x"})),
        ),
        (Method::DELETE, "/admin/v1/consumers/cons-b1", None),
        (
            Method::POST,
            "/admin/v1/consumers/cons-b1/keys",
            Some(json!({})),
        ),
        (
            Method::POST,
            "/admin/v1/consumers",
            Some(json!({"id": "c-x", "tenant": "tenant-b"})),
        ),
        (
            Method::PUT,
            "/admin/v1/prompt_templates/prompt-b",
            Some(json!({"tenant": "tenant-a",
            "versions": [{"version": 1, "model": "model-a", "messages": [{"role": "user", "content": "x"}]}]})),
        ),
        (
            Method::POST,
            "/admin/v1/subscriptions/sub-b1/approve",
            Some(json!({})),
        ),
        (Method::DELETE, "/admin/v1/subscriptions/sub-b1", None),
        (
            Method::POST,
            "/admin/v1/api_keys",
            Some(json!({"id": "k-x", "consumer": "cons-b1"})),
        ),
    ] {
        let (s, v) = call(c, Some(ta), method.clone(), path, body.as_ref()).await;
        assert!(
            [
                StatusCode::FORBIDDEN,
                StatusCode::NOT_FOUND,
                StatusCode::BAD_REQUEST
            ]
            .contains(&s),
            "{method} {path} as tenant-a: {s} {v}"
        );
    }
    assert_eq!(admin_get(c, "/admin/v1/consumers/cons-b1").await, before);
}

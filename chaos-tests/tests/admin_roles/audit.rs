//! The audit trail as the role table left it: who did what where and with what outcome,
//! writes the state machine refused included, no secrets, filters, and tenant scoping.

use raftgate_chaos::LocalCluster;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{admin_get, call, Who, PROVIDER_SECRET};

fn items(v: &Value) -> &Vec<Value> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {v}"))
}

pub async fn check(c: &LocalCluster, ta: &str, viewer: &Who, key_a: &str) {
    // A write the state machine refuses (duplicate id) is recorded with its error code.
    let (s, v) = call(
        c,
        c.token(),
        Method::POST,
        "/admin/v1/consumers",
        Some(&json!({"id": "cons-b1", "tenant": "tenant-b"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    let all = admin_get(c, "/admin/v1/audit?limit=1000").await;
    let list = items(&all);
    let seqs: Vec<u64> = list
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );

    let node = c.node_id(0);
    let find = |op: &str, id: &str, outcome: &str| {
        list.iter()
            .find(|r| {
                r["op"] == json!(op) && r["id"] == json!(id) && r["outcome"] == json!(outcome)
            })
            .unwrap_or_else(|| panic!("no {op} {id} {outcome} record in {all}"))
            .clone()
    };
    let created = find("create", "c-admin", "ok");
    assert_eq!(created["kind"], json!("consumer"));
    assert_eq!(created["tenant"], json!("tenant-a"));
    assert_eq!(created["role"], json!("admin"));
    assert_eq!(created["method"], json!("POST"));
    assert_eq!(created["path"], json!("/admin/v1/consumers"));
    assert_eq!(created["node"], json!(node));
    assert!(
        created["at_ms"].as_u64().unwrap_or(0) > 1_600_000_000_000,
        "{created}"
    );
    let by_ta = find("create", "c-tenant-admin", "ok");
    assert_eq!(
        (&by_ta["role"], &by_ta["actor_tenant"], &by_ta["actor"]),
        (
            &json!("tenant-admin"),
            &json!("tenant-a"),
            &json!("tenant-admin-roles")
        )
    );
    let init = list.last().expect("records");
    assert_eq!(
        (&init["op"], &init["role"], &init["actor"]),
        (
            &json!("init_cluster"),
            &json!("system"),
            &json!("cluster-init")
        ),
        "the oldest record is the cluster's creation"
    );
    find("create", "cons-b1", "already_exists");
    find("delete", "tenant-b", "in_use");
    find("revoke_token", "other-admin", "ok");
    let approve = find("update", "sub-a1", "ok");
    assert!(approve["path"]
        .as_str()
        .unwrap_or("")
        .starts_with("/admin/v1/subscriptions/sub-a1/"));

    // Only kinds and ids: no provider key, API key plaintext or token.
    let text = all.to_string();
    for secret in [PROVIDER_SECRET, key_a, c.token().unwrap_or("-"), ta] {
        assert!(!text.contains(secret), "audit holds a secret");
    }

    // Filters.
    let v = admin_get(c, "/admin/v1/audit?kind=consumers&limit=1000").await;
    assert!(!items(&v).is_empty() && items(&v).iter().all(|r| r["kind"] == json!("consumer")));
    let v = admin_get(c, "/admin/v1/audit?actor=tenant-admin-roles").await;
    assert!(
        !items(&v).is_empty()
            && items(&v)
                .iter()
                .all(|r| r["actor"] == json!("tenant-admin-roles"))
    );
    let v = admin_get(c, "/admin/v1/audit?limit=1").await;
    assert_eq!((items(&v).len(), &v["more"]), (1, &json!(true)), "{v}");
    assert_eq!(items(&v)[0]["seq"], json!(seqs[0]));
    let mid = list[list.len() / 2]["at_ms"].as_u64().expect("at_ms");
    let v = admin_get(c, &format!("/admin/v1/audit?until={mid}&limit=1000")).await;
    assert!(
        items(&v).iter().all(|r| r["at_ms"].as_u64() < Some(mid)),
        "{v}"
    );
    let v = admin_get(c, &format!("/admin/v1/audit?since={mid}&limit=1000")).await;
    assert!(
        items(&v).iter().all(|r| r["at_ms"].as_u64() >= Some(mid)),
        "{v}"
    );
    for bad in [
        "limit=0",
        "limit=5000",
        "kind=widgets",
        "since=9&until=3",
        "nope=1",
    ] {
        let (s, v) = call(
            c,
            c.token(),
            Method::GET,
            &format!("/admin/v1/audit?{bad}"),
            None,
        )
        .await;
        assert_eq!(
            (s, &v["error"]["code"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_query")),
            "{bad}"
        );
    }

    // Viewers see everything, tenant admins only tenant-a's records.
    let (s, v) = call(
        c,
        viewer.token.as_deref(),
        Method::GET,
        "/admin/v1/audit?limit=1000",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(items(&v).len() >= list.len(), "viewer sees all records");
    let (s, v) = call(c, Some(ta), Method::GET, "/admin/v1/audit?limit=1000", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        items(&v).iter().any(|r| r["id"] == json!("c-tenant-admin")),
        "{v}"
    );
    for r in items(&v) {
        assert!(
            r["tenant"] == json!("tenant-a") || r["actor_tenant"] == json!("tenant-a"),
            "tenant admin sees another tenant's record: {r}"
        );
    }
    assert!(
        !v.to_string().contains("cons-b1"),
        "tenant-b's writes hidden: {v}"
    );
}

//! The quota tests' fixture: a formed cluster with an upstream, a tenant, a consumer, keys,
//! a quota policy and a route.

use super::*;

/// A formed cluster with upstream `u`, tenant `t1`, consumer `c1`, API key `k1`, quota
/// policy `q1` and route `r` (`/q`: `key_auth` + `quota q1`).
pub(crate) struct Fixture {
    pub(crate) cluster: LocalCluster,
    pub(crate) upstream: TestUpstream,
    /// The plaintext of key `k1`.
    pub(crate) key: String,
    pub(crate) token: String,
    /// `http://HTTP_ADDR` of every node.
    pub(crate) bases: Vec<String>,
    pub(crate) limit: u64,
}

pub(crate) fn quota_policy(window: &str, limit: u64) -> Value {
    json!({"id": "q1", "scope": ["api_key"], "metric": "requests", "window": window,
           "limit": limit, "mode": "strict", "fail_open": false})
}

pub(crate) async fn fixture(builder: ClusterBuilder, policy: Value) -> Fixture {
    let cluster = builder.form().await.expect("a 3-node cluster forms");
    let upstream = TestUpstream::start(UpstreamOptions::named("quota"))
        .await
        .expect("the test upstream starts");
    let admin = cluster.client(0).expect("admin client");
    let create = |collection: &'static str, body: Value| {
        let admin = admin.clone();
        async move {
            admin
                .create(collection, &body)
                .await
                .unwrap_or_else(|e| panic!("creating {collection} {body}: {e}"))
        }
    };
    create(
        "upstreams",
        json!({"id": "u", "targets": [{"address": upstream.addr().to_string(), "weight": 1}]}),
    )
    .await;
    create("tenants", json!({"id": "t1"})).await;
    create("consumers", json!({"id": "c1", "tenant": "t1"})).await;
    let raw = admin
        .raw(
            Method::POST,
            "/admin/v1/consumers/c1/keys",
            Some(("application/json", br#"{"id":"k1"}"#.to_vec())),
        )
        .await
        .expect("POST /admin/v1/consumers/c1/keys");
    assert!(
        raw.status.is_success(),
        "creating key k1: {} {}",
        raw.status,
        raw.body
    );
    let answer: Value = serde_json::from_str(&raw.body).expect("the key answer is JSON");
    assert_eq!(
        answer["id"], "k1",
        "the key keeps the id asked for: {answer}"
    );
    let key = answer["key"]
        .as_str()
        .unwrap_or_else(|| panic!("the key answer has no plaintext 'key': {answer}"))
        .to_string();
    let limit = policy["limit"].as_u64().expect("the policy has a limit");
    create("quota_policies", policy).await;
    create(
        "routes",
        json!({"id": "r", "path": "/q", "target": {"upstream": "u"},
               "policies": [{"key_auth": {}}, {"quota": "q1"}]}),
    )
    .await;
    cluster
        .wait_converged(
            &["api_keys", "quota_policies", "routes", "upstreams"],
            Duration::from_secs(20),
        )
        .await
        .expect("every node holds the quota configuration");
    let bases = (0..cluster.len())
        .map(|i| format!("http://{}", cluster.info(i).expect("node info").http_addr))
        .collect();
    let token = cluster
        .token()
        .expect("the cluster has a token")
        .to_string();
    Fixture {
        cluster,
        upstream,
        key,
        token,
        bases,
        limit,
    }
}

/// Keys `k2..=kN` of consumer `c1` (plaintexts).
pub(crate) async fn more_keys(fx: &Fixture, n: usize) -> Vec<String> {
    let admin = fx.cluster.client(0).expect("admin client");
    let mut keys = Vec::new();
    for i in 2..=n {
        let body = format!(r#"{{"id":"k{i}"}}"#).into_bytes();
        let raw = admin
            .raw(
                Method::POST,
                "/admin/v1/consumers/c1/keys",
                Some(("application/json", body)),
            )
            .await
            .expect("POST /admin/v1/consumers/c1/keys");
        assert!(
            raw.status.is_success(),
            "key k{i}: {} {}",
            raw.status,
            raw.body
        );
        let v: Value = serde_json::from_str(&raw.body).expect("JSON");
        keys.push(v["key"].as_str().expect("plaintext key").to_string());
    }
    fx.cluster
        .wait_converged(&["api_keys"], Duration::from_secs(20))
        .await
        .expect("every node holds the keys");
    keys
}

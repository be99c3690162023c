//! Admin roles against a real one-node `raftgate serve`: every route of the admin router
//! (node/src/admin/mod.rs) called as admin, tenant admin of tenant-a, viewer, a revoked
//! token, an expired token and no token, with the status each must get; then tenant
//! isolation (isolation.rs) and the audit trail (audit.rs). See docs/admin-api.md.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use raftgate_chaos::UpstreamOptions;
use raftgate_chaos::{wait, ClusterBuilder, LocalCluster, TestUpstream};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[path = "admin_roles/audit.rs"]
mod audit;
#[path = "admin_roles/cli.rs"]
mod cli;
#[path = "admin_roles/isolation.rs"]
mod isolation;
#[path = "admin_roles/replicated.rs"]
mod replicated;

/// Encrypts the provider key the setup stores.
const SECRET_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
pub const PROVIDER_SECRET: &str = "sk-admin-roles-provider-secret";
const WAIT: Duration = Duration::from_secs(60);

/// Who calls: a name used in resource ids, and the bearer token (none for `none`).
pub struct Who {
    pub name: &'static str,
    pub token: Option<String>,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// No token needed (health, metrics, console, the OpenAPI document, bootstrap).
    Public,
    /// Any valid token (tenant admins see only their tenant's part).
    Read,
    /// Admin only.
    Admin,
    /// Admins, and tenant admins for their own tenant's resources.
    TenantWrite,
}

struct Case {
    method: Method,
    /// `{who}` is replaced by the caller's name, so each caller writes its own ids.
    path: String,
    body: Option<Value>,
    access: Access,
}

fn case(method: Method, path: impl Into<String>, body: Option<Value>, access: Access) -> Case {
    Case {
        method,
        path: path.into(),
        body,
        access,
    }
}

/// Sends one request as `token`: status and body (JSON, or `Null`).
pub async fn call(
    c: &LocalCluster,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut client = c.anon_client(0).expect("client");
    if let Some(t) = token {
        client = client.with_token(t);
    }
    client
        .json(method.clone(), path, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// `GET path` as admin, insisting on success.
pub async fn admin_get(c: &LocalCluster, path: &str) -> Value {
    let (s, v) = call(c, c.token(), Method::GET, path, None).await;
    assert!(s.is_success(), "GET {path}: {s} {v}");
    v
}

/// As admin, insisting on success.
pub async fn admin(c: &LocalCluster, method: Method, path: &str, body: Value) -> Value {
    let (s, v) = call(c, c.token(), method.clone(), path, Some(&body)).await;
    assert!(s.is_success(), "{method} {path} {body}: {s} {v}");
    v
}

pub async fn mint(c: &LocalCluster, role: &str, tenant: Option<&str>, ttl: u64) -> String {
    let body = json!({"role": role, "tenant": tenant, "subject": format!("{role}-roles"), "ttl_secs": ttl});
    let v = admin(c, Method::POST, "/admin/v1/tokens", body).await;
    v["token"].as_str().expect("token").to_string()
}

/// Two tenants with consumers, keys, models, prompts, services, subscriptions, quota
/// policies and key-authenticated routes; returns the plaintext API keys (a, b).
async fn populate(c: &LocalCluster, upstream: &TestUpstream, callers: &[&str]) -> (String, String) {
    let post = |coll: &str, body: Value| {
        let path = format!("/admin/v1/{coll}");
        async move { admin(c, Method::POST, &path, body).await }
    };
    post(
        "upstreams",
        json!({"id": "up", "targets": [{"address": upstream.addr().to_string(), "weight": 1}]}),
    )
    .await;
    post("providers", json!({"id": "prov-1", "type": "openai", "base_url": "http://127.0.0.1:9", "api_key": PROVIDER_SECRET})).await;
    let mut keys = Vec::new();
    for t in ["a", "b"] {
        let tenant = format!("tenant-{t}");
        post("tenants", json!({"id": tenant})).await;
        post(
            "consumers",
            json!({"id": format!("cons-{t}1"), "tenant": tenant}),
        )
        .await;
        let k = admin(
            c,
            Method::POST,
            &format!("/admin/v1/consumers/cons-{t}1/keys"),
            json!({"id": format!("key-{t}1")}),
        )
        .await;
        keys.push(k["key"].as_str().expect("plaintext key").to_string());
        post(
            "models",
            json!({"id": format!("model-{t}"), "tenant": tenant,
            "deployments": [{"provider": "prov-1", "model": "gpt-x"}]}),
        )
        .await;
        post(
            "prompt_templates",
            json!({"id": format!("prompt-{t}"), "tenant": tenant,
            "versions": [{"version": 1, "model": format!("model-{t}"),
                          "messages": [{"role": "user", "content": "hello"}]}]}),
        )
        .await;
        post(
            "services",
            json!({"id": format!("svc-{t}"), "tenant": tenant, "approval_required": true}),
        )
        .await;
        post(
            "subscriptions",
            json!({"id": format!("sub-{t}1"), "consumer": format!("cons-{t}1"),
            "service": format!("svc-{t}")}),
        )
        .await;
        post(
            "quota_policies",
            json!({"id": format!("quota-{t}"), "tenant": tenant,
            "scope": ["consumer"], "metric": "requests", "window": "minute",
            "limit": 100000, "mode": "strict", "fail_open": false}),
        )
        .await;
        post(
            "routes",
            json!({"id": format!("route-{t}"), "tenant": tenant, "path": format!("/r{t}"),
            "target": {"upstream": "up"},
            "policies": [{"key_auth": {}}, {"quota": format!("quota-{t}")}]}),
        )
        .await;
    }
    for who in callers {
        post(
            "consumers",
            json!({"id": format!("del-{who}"), "tenant": "tenant-a"}),
        )
        .await;
    }
    (keys.remove(0), keys.remove(0))
}

/// Calls route `/r{t}` with `key` until it answers 200 `n` times.
async fn traffic(c: &LocalCluster, t: &str, key: &str, n: usize) {
    let url = format!("http://{}/r{t}", c.info(0).expect("info").http_addr);
    let http = reqwest::Client::new();
    let mut ok = 0;
    let deadline = Instant::now() + WAIT;
    while ok < n {
        assert!(Instant::now() < deadline, "route /r{t} never answered 200");
        let s = http
            .get(&url)
            .header("x-api-key", key)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map(|r| r.status());
        if matches!(s, Ok(StatusCode::OK)) {
            ok += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Every route of the admin router, with arguments that are harmless when allowed.
fn cases() -> Vec<Case> {
    use Access::*;
    let mut v = vec![
        case(Method::POST, "/admin/v1/cluster/init", None, Public),
        case(Method::GET, "/admin/v1/openapi.json", None, Public),
        case(Method::GET, "/healthz", None, Public),
        case(Method::GET, "/readyz", None, Public),
        case(Method::GET, "/readyz/data-plane", None, Public),
        case(Method::GET, "/metrics", None, Public),
        case(Method::GET, "/ui/", None, Public),
        case(Method::GET, "/admin/v1/cluster", None, Read),
        case(Method::GET, "/admin/v1/usage", None, Read),
        case(Method::GET, "/admin/v1/logs", None, Read),
        case(Method::GET, "/admin/v1/analytics/timeseries", None, Read),
        case(Method::GET, "/admin/v1/analytics/top", None, Read),
        case(Method::GET, "/admin/v1/whoami", None, Read),
        case(Method::GET, "/admin/v1/audit", None, Read),
        case(
            Method::POST,
            "/admin/v1/cluster/join",
            Some(json!({"via": "http://127.0.0.1:9"})),
            Admin,
        ),
        case(
            Method::POST,
            "/admin/v1/cluster/members",
            Some(json!({"node_id": 0, "raft_addr": "", "admin_url": "x"})),
            Admin,
        ),
        case(Method::DELETE, "/admin/v1/cluster/members/999", None, Admin),
        case(
            Method::POST,
            "/admin/v1/tokens",
            Some(json!({"role": "viewer", "subject": "by-{who}"})),
            Admin,
        ),
        case(
            Method::POST,
            "/admin/v1/tokens/revoke",
            Some(json!({"jti": "other-{who}"})),
            Admin,
        ),
        case(Method::GET, "/admin/v1/tokens/revoked", None, Admin),
        case(Method::GET, "/admin/v1/backup", None, Admin),
        case(
            Method::POST,
            "/admin/v1/restore",
            Some(json!("not a backup")),
            Admin,
        ),
        case(
            Method::POST,
            "/admin/v1/tenants",
            Some(json!({"id": "t-{who}"})),
            Admin,
        ),
        case(
            Method::PUT,
            "/admin/v1/tenants/tenant-a",
            Some(json!({"name": "A {who}"})),
            Admin,
        ),
        case(Method::DELETE, "/admin/v1/tenants/tenant-b", None, Admin),
        case(
            Method::POST,
            "/admin/v1/providers",
            Some(json!({"id": "p-{who}", "type": "openai", "base_url": "http://127.0.0.1:9"})),
            Admin,
        ),
        case(
            Method::POST,
            "/admin/v1/consumers",
            Some(json!({"id": "c-{who}", "tenant": "tenant-a"})),
            TenantWrite,
        ),
        case(
            Method::PUT,
            "/admin/v1/consumers/cons-a1",
            Some(json!({"tenant": "tenant-a", "name": "{who}"})),
            TenantWrite,
        ),
        case(
            Method::DELETE,
            "/admin/v1/consumers/del-{who}",
            None,
            TenantWrite,
        ),
        case(
            Method::POST,
            "/admin/v1/consumers/cons-a1/keys",
            Some(json!({"name": "{who}"})),
            TenantWrite,
        ),
        case(
            Method::POST,
            "/admin/v1/services",
            Some(json!({"id": "s-{who}", "tenant": "tenant-a"})),
            TenantWrite,
        ),
        case(
            Method::POST,
            "/admin/v1/subscriptions/sub-a1/approve",
            Some(json!({})),
            TenantWrite,
        ),
        case(
            Method::POST,
            "/admin/v1/subscriptions/sub-a1/revoke",
            Some(json!({})),
            TenantWrite,
        ),
        case(
            Method::POST,
            "/admin/v1/subscriptions/sub-a1/reject",
            Some(json!({})),
            TenantWrite,
        ),
    ];
    for (coll, id) in [
        ("tenants", "tenant-a"),
        ("consumers", "cons-a1"),
        ("api_keys", "key-a1"),
        ("upstreams", "up"),
        ("routes", "route-a"),
        ("providers", "prov-1"),
        ("models", "model-a"),
        ("prompt_templates", "prompt-a"),
        ("quota_policies", "quota-a"),
        ("permissions", "none"),
        ("services", "svc-a"),
        ("subscriptions", "sub-a1"),
        ("certificates", "none"),
    ] {
        v.push(case(Method::GET, format!("/admin/v1/{coll}"), None, Read));
        v.push(case(
            Method::GET,
            format!("/admin/v1/{coll}/{id}"),
            None,
            Read,
        ));
    }
    v
}

/// The statuses `who` may get for a route needing `access`.
fn expected(who: &str, access: Access) -> &'static [u16] {
    const ALLOWED: &[u16] = &[];
    match (who, access) {
        (_, Access::Public) => ALLOWED,
        ("revoked" | "expired" | "none", _) => &[401],
        ("admin", _) | (_, Access::Read) => ALLOWED,
        ("tenant-admin", Access::TenantWrite) => ALLOWED,
        _ => &[403],
    }
}

async fn check(c: &LocalCluster, who: &Who, cases: &[Case]) {
    for k in cases {
        let path = k.path.replace("{who}", who.name);
        let body = k.body.as_ref().map(|b| {
            serde_json::from_str(&b.to_string().replace("{who}", who.name)).expect("json")
        });
        let (status, v) = call(
            c,
            who.token.as_deref(),
            k.method.clone(),
            &path,
            body.as_ref(),
        )
        .await;
        let want = expected(who.name, k.access);
        let what = format!("{} {} {path}: got {status} {v}", who.name, k.method);
        if want.is_empty() {
            assert!(
                ![401, 403].contains(&status.as_u16()),
                "{what}: expected to be allowed"
            );
        } else {
            assert!(want.contains(&status.as_u16()), "{what}: expected {want:?}");
            assert!(v["error"]["code"].is_string(), "{what}: JSON error body");
            if who.name == "revoked" {
                assert_eq!(v["error"]["code"], json!("token_revoked"), "{what}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_checks_roles_revocation_expiry_and_tenants() {
    let c = ClusterBuilder::new(1)
        .env("RAFTGATE_SECRET_KEY", SECRET_KEY)
        // The table makes hundreds of refused calls from one address on purpose.
        .env("RAFTGATE_UNAUTHENTICATED_PER_SEC", "0")
        .form()
        .await
        .expect("one-node cluster");
    let upstream = TestUpstream::start(UpstreamOptions::named("roles"))
        .await
        .expect("upstream");
    // Minted first: the shortest lifetime is 60 s (plus 5 s leeway) and it must lapse.
    let expiring = mint(&c, "admin", None, 60).await;
    let minted_at = Instant::now();
    let names = [
        "admin",
        "tenant-admin",
        "viewer",
        "revoked",
        "expired",
        "none",
    ];
    let (key_a, key_b) = populate(&c, &upstream, &names).await;
    traffic(&c, "a", &key_a, 3).await;
    traffic(&c, "b", &key_b, 3).await;

    let revoked = mint(&c, "admin", None, 3600).await;
    let (s, v) = call(&c, Some(&revoked), Method::GET, "/admin/v1/whoami", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = admin(
        &c,
        Method::POST,
        "/admin/v1/tokens/revoke",
        json!({"token": revoked}),
    )
    .await;
    let jti = r["revoked"]["jti"].as_str().expect("jti").to_string();
    // Refused at once: the revoke answers after this node applied it.
    let (s, v) = call(&c, Some(&revoked), Method::GET, "/admin/v1/whoami", None).await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::UNAUTHORIZED, &json!("token_revoked")),
        "{v}"
    );
    let listed = admin_get(&c, "/admin/v1/tokens/revoked").await;
    assert!(
        listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["jti"] == json!(jti)),
        "{listed}"
    );

    let callers = vec![
        Who {
            name: "admin",
            token: c.token().map(str::to_string),
        },
        Who {
            name: "tenant-admin",
            token: Some(mint(&c, "tenant-admin", Some("tenant-a"), 3600).await),
        },
        Who {
            name: "viewer",
            token: Some(mint(&c, "viewer", None, 3600).await),
        },
        Who {
            name: "revoked",
            token: Some(revoked.clone()),
        },
        Who {
            name: "none",
            token: None,
        },
    ];
    let table = cases();
    for who in &callers {
        check(&c, who, &table).await;
    }
    isolation::check(&c, callers[1].token.as_deref().expect("tenant token")).await;
    audit::check(
        &c,
        callers[1].token.as_deref().expect("tenant token"),
        &callers[2],
        &key_a,
    )
    .await;
    self_revocation(&c).await;
    cli::check(&c).await;

    let left = Duration::from_secs(67).saturating_sub(minted_at.elapsed());
    tokio::time::sleep(left).await;
    let expired = Who {
        name: "expired",
        token: Some(expiring),
    };
    check(&c, &expired, &table).await;

    // Last, since it takes the node out of its own cluster: leaving is admin-only.
    for who in &callers[1..] {
        let (s, v) = call(
            &c,
            who.token.as_deref(),
            Method::POST,
            "/admin/v1/cluster/leave",
            None,
        )
        .await;
        assert_eq!(
            s.as_u16(),
            expected(who.name, Access::Admin)[0],
            "{} leave: {v}",
            who.name
        );
    }
    let (s, v) = call(&c, c.token(), Method::POST, "/admin/v1/cluster/leave", None).await;
    assert!(![401, 403].contains(&s.as_u16()), "admin leave: {s} {v}");
}

/// Any token may revoke itself, not another; a token without a `jti` cannot be named.
async fn self_revocation(c: &LocalCluster) {
    let viewer = mint(c, "viewer", None, 3600).await;
    let other = mint(c, "viewer", None, 3600).await;
    let path = "/admin/v1/tokens/revoke";
    let (s, v) = call(
        c,
        Some(&viewer),
        Method::POST,
        path,
        Some(&json!({"token": other})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = call(
        c,
        Some(&viewer),
        Method::POST,
        path,
        Some(&json!({"token": viewer})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(c, Some(&viewer), Method::GET, "/admin/v1/whoami", None).await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::UNAUTHORIZED, &json!("token_revoked"))
    );
    let (s, _) = call(c, Some(&other), Method::GET, "/admin/v1/whoami", None).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "revoking one token leaves the others alone"
    );
    for bad in [
        json!({}),
        json!({"jti": "a b"}),
        json!({"jti": "x", "token": other}),
        json!({"token": "garbage"}),
    ] {
        let (s, v) = call(c, c.token(), Method::POST, path, Some(&bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    wait::until("revocation listed", WAIT, || async {
        let v = admin_get(c, "/admin/v1/tokens/revoked").await;
        match v["items"].as_array().map(Vec::len) {
            Some(n) if n >= 3 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .expect("revocations listed");
}

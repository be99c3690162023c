//! Services, subscriptions and tenants: the approval flow, the service lifecycle, and
//! isolation between tenants (routes, services, admin-side refusals).

use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::{echo, expect_error, now_ms, seen, send, serial, upstream, upstream_body, Gateway};

/// GET `path` with the API key `key`.
async fn call(gw: &Gateway, path: &str, key: &str) -> Response {
    send(
        path,
        gw.get(path).header(AUTHORIZATION, format!("Bearer {key}")),
    )
    .await
}

/// `POST /admin/v1/subscriptions/{id}/{action}`; panics unless 2xx.
async fn decide(gw: &Gateway, id: &str, action: &str) {
    let (status, body) = gw
        .admin_call(
            Method::POST,
            &format!("/admin/v1/subscriptions/{id}/{action}"),
            None,
        )
        .await;
    assert!(
        status.is_success(),
        "{action} subscription {id}: {status} {body}"
    );
}

async fn subscription_state(gw: &Gateway, id: &str) -> String {
    let (status, body) = gw
        .admin_call(Method::GET, &format!("/admin/v1/subscriptions/{id}"), None)
        .await;
    assert!(
        status.is_success(),
        "GET subscription {id}: {status} {body}"
    );
    body["state"].as_str().unwrap_or_default().to_string()
}

/// A service of `tenant` and a key-authenticated route `/{id}` of that service.
async fn service_with_route(gw: &Gateway, id: &str, tenant: &str, service: Value) {
    let mut service = service;
    service["id"] = json!(id);
    service["tenant"] = json!(tenant);
    gw.create("services", service).await;
    gw.create(
        "routes",
        json!({"id": id, "tenant": tenant, "service": id, "path": format!("/{id}"),
               "target": {"upstream": "u"}, "policies": [{"key_auth": {}}]}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_approval_flow() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let server = upstream("svc").await;
    gw.create("upstreams", upstream_body("u", &[&server])).await;
    gw.tenant("ta").await;
    service_with_route(
        &gw,
        "s1",
        "ta",
        json!({"state": "published", "approval_required": true}),
    )
    .await;
    let k1 = gw.consumer_with_key("ca1", "ta").await;
    let k2 = gw.consumer_with_key("ca2", "ta").await;
    let k3 = gw.consumer_with_key("ca3", "ta").await;

    expect_error(
        "no subscription",
        call(&gw, "/s1", &k1).await,
        403,
        "not_subscribed",
    )
    .await;

    gw.create(
        "subscriptions",
        json!({"id": "sub1", "consumer": "ca1", "service": "s1"}),
    )
    .await;
    assert_eq!(subscription_state(&gw, "sub1").await, "pending");
    let m = expect_error(
        "pending",
        call(&gw, "/s1", &k1).await,
        403,
        "not_subscribed",
    )
    .await;
    assert!(m.contains("pending"), "the message should say pending: {m}");

    decide(&gw, "sub1", "approve").await;
    assert_eq!(subscription_state(&gw, "sub1").await, "approved");
    let e = echo("approved", call(&gw, "/s1", &k1).await).await;
    assert_eq!(seen(&e, "x-consumer-id"), Some("ca1"), "{e}");

    gw.create(
        "subscriptions",
        json!({"id": "sub2", "consumer": "ca2", "service": "s1"}),
    )
    .await;
    decide(&gw, "sub2", "approve").await;
    echo("ca2 approved", call(&gw, "/s1", &k2).await).await;

    decide(&gw, "sub1", "revoke").await;
    let m = expect_error(
        "revoked",
        call(&gw, "/s1", &k1).await,
        403,
        "not_subscribed",
    )
    .await;
    assert!(m.contains("revoked"), "the message should say revoked: {m}");
    echo("ca2 after ca1's revocation", call(&gw, "/s1", &k2).await).await;

    gw.create(
        "subscriptions",
        json!({"id": "sub3", "consumer": "ca3", "service": "s1"}),
    )
    .await;
    decide(&gw, "sub3", "reject").await;
    let m = expect_error(
        "rejected",
        call(&gw, "/s1", &k3).await,
        403,
        "not_subscribed",
    )
    .await;
    assert!(
        m.contains("rejected"),
        "the message should say rejected: {m}"
    );

    // Without approval_required a subscription is approved at once.
    service_with_route(&gw, "s2", "ta", json!({"state": "published"})).await;
    gw.create(
        "subscriptions",
        json!({"id": "sub4", "consumer": "ca3", "service": "s2"}),
    )
    .await;
    assert_eq!(subscription_state(&gw, "sub4").await, "approved");
    echo("auto-approved", call(&gw, "/s2", &k3).await).await;
    // A subscription to s2 opens s2 only.
    expect_error(
        "ca3 still rejected on s1",
        call(&gw, "/s1", &k3).await,
        403,
        "not_subscribed",
    )
    .await;
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_lifecycle_draft_published_deprecated_retired() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let server = upstream("svc").await;
    gw.create("upstreams", upstream_body("u", &[&server])).await;
    gw.tenant("ta").await;
    let key = gw.consumer_with_key("cl", "ta").await;
    let service = |state: &str, sunset: Option<u64>| json!({"id": "life", "tenant": "ta", "state": state, "sunset_at_ms": sunset});
    service_with_route(&gw, "life", "ta", json!({"state": "draft"})).await;

    expect_error("draft", call(&gw, "/life", &key).await, 404, "no_route").await;
    assert_eq!(server.requests(), 0);

    gw.update("services", "life", service("published", None))
        .await;
    gw.create(
        "subscriptions",
        json!({"id": "sl", "consumer": "cl", "service": "life"}),
    )
    .await;
    let resp = call(&gw, "/life", &key).await;
    assert_eq!(
        header(resp.headers(), "deprecation"),
        None,
        "published is not deprecated"
    );
    assert_eq!(header(resp.headers(), "sunset"), None);
    echo("published", resp).await;

    let before = now_ms() / 1000;
    gw.update(
        "services",
        "life",
        service("deprecated", Some(1_900_000_000_000)),
    )
    .await;
    let after = now_ms() / 1000;
    let resp = call(&gw, "/life", &key).await;
    let deprecation = header(resp.headers(), "deprecation");
    let sunset = header(resp.headers(), "sunset");
    echo("deprecated", resp).await;
    let secs: Option<u64> = deprecation
        .as_deref()
        .and_then(|d| d.strip_prefix('@'))
        .and_then(|s| s.parse().ok());
    assert!(
        secs.is_some_and(|s| s + 5 >= before && s <= after + 5),
        "Deprecation should be @<unix secs of the deprecation> ({before}..={after}): {deprecation:?}"
    );
    assert_eq!(sunset.as_deref(), Some("Sun, 17 Mar 2030 17:46:40 GMT"));

    gw.update("services", "life", service("retired", None))
        .await;
    let before = server.requests();
    expect_error("retired", call(&gw, "/life", &key).await, 404, "no_route").await;
    assert_eq!(server.requests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let shared = upstream("shared").await;
    let theirs = upstream("theirs").await;
    gw.create("upstreams", upstream_body("u", &[&shared])).await;
    gw.tenant("ta").await;
    gw.tenant("tb").await;
    let mut tb_upstream = upstream_body("ub", &[&theirs]);
    tb_upstream["tenant"] = json!("tb");
    gw.create("upstreams", tb_upstream).await;
    let ka = gw.consumer_with_key("ca", "ta").await;
    let kb = gw.consumer_with_key("cb", "tb").await;
    let key_auth = json!([{"key_auth": {}}]);
    gw.create(
        "routes",
        json!({"id": "rb", "tenant": "tb", "path": "/rb", "target": {"upstream": "ub"}, "policies": key_auth}),
    )
    .await;
    gw.create(
        "routes",
        json!({"id": "ra", "tenant": "ta", "path": "/ra", "target": {"upstream": "u"}, "policies": key_auth}),
    )
    .await;
    gw.create(
        "routes",
        json!({"id": "open", "path": "/open", "target": {"upstream": "u"}, "policies": key_auth}),
    )
    .await;

    // Routes of a tenant.
    let e = echo("tb's key on tb's route", call(&gw, "/rb", &kb).await).await;
    assert_eq!(seen(&e, "x-tenant-id"), Some("tb"), "{e}");
    let reached = theirs.requests();
    expect_error(
        "ta's key on tb's route",
        call(&gw, "/rb", &ka).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        theirs.requests(),
        reached,
        "a foreign key reached tb's upstream"
    );
    echo("ta's key on ta's route", call(&gw, "/ra", &ka).await).await;
    expect_error(
        "tb's key on ta's route",
        call(&gw, "/ra", &kb).await,
        403,
        "forbidden",
    )
    .await;
    for (who, key) in [("ta", &ka), ("tb", &kb)] {
        let e = echo(
            &format!("{who} on a cluster-wide route"),
            call(&gw, "/open", key).await,
        )
        .await;
        assert_eq!(seen(&e, "x-tenant-id"), Some(who), "{e}");
    }

    // A permission cannot grant a consumer another tenant's route.
    let permission = json!({"id": "p", "consumer": "ca", "target": {"route": "rb"}});
    let refused = gw.admin.create("permissions", &permission).await;
    assert!(
        refused
            .as_ref()
            .err()
            .and_then(|e| e.status())
            .is_some_and(|s| s.is_client_error()),
        "a cross-tenant permission was accepted: {refused:?}"
    );

    // Services: tenant-visible ones refuse foreign subscriptions; public ones take them.
    gw.create(
        "services",
        json!({"id": "sb", "tenant": "tb", "state": "published"}),
    )
    .await;
    gw.create(
        "routes",
        json!({"id": "sb", "tenant": "tb", "service": "sb", "path": "/sb", "target": {"upstream": "ub"}, "policies": key_auth}),
    )
    .await;
    let sub = json!({"id": "x", "consumer": "ca", "service": "sb"});
    let refused = gw.admin.create("subscriptions", &sub).await;
    assert!(
        refused
            .as_ref()
            .err()
            .and_then(|e| e.status())
            .is_some_and(|s| s.is_client_error()),
        "a cross-tenant subscription to a tenant-visible service was accepted: {refused:?}"
    );
    expect_error(
        "ta's key on tb's service",
        call(&gw, "/sb", &ka).await,
        403,
        "not_subscribed",
    )
    .await;
    gw.create(
        "subscriptions",
        json!({"id": "own", "consumer": "cb", "service": "sb"}),
    )
    .await;
    echo(
        "tb's subscribed key on tb's service",
        call(&gw, "/sb", &kb).await,
    )
    .await;

    gw.create(
        "services",
        json!({"id": "pub", "tenant": "tb", "state": "published", "visibility": "public"}),
    )
    .await;
    gw.create(
        "routes",
        json!({"id": "pub", "tenant": "tb", "service": "pub", "path": "/pub", "target": {"upstream": "ub"}, "policies": key_auth}),
    )
    .await;
    expect_error(
        "unsubscribed on a public service",
        call(&gw, "/pub", &ka).await,
        403,
        "not_subscribed",
    )
    .await;
    gw.create(
        "subscriptions",
        json!({"id": "cross", "consumer": "ca", "service": "pub"}),
    )
    .await;
    let e = echo(
        "ta's key on tb's public service",
        call(&gw, "/pub", &ka).await,
    )
    .await;
    assert_eq!(seen(&e, "x-consumer-id"), Some("ca"), "{e}");
    assert_eq!(seen(&e, "x-tenant-id"), Some("ta"), "{e}");
    // The public service's subscription opens nothing else of tb.
    expect_error(
        "still forbidden on rb",
        call(&gw, "/rb", &ka).await,
        403,
        "forbidden",
    )
    .await;
    expect_error(
        "still not on sb",
        call(&gw, "/sb", &ka).await,
        403,
        "not_subscribed",
    )
    .await;
}

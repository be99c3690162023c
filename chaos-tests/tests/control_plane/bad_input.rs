//! (e) Bad input gets a clear error and changes nothing: malformed JSON, unknown
//! collections and fields, invalid regexes, dangling references, deleting what is in use,
//! oversized bodies; and junk on the Raft port leaves the cluster healthy and writable.

use raftgate_chaos::client::ResourceList;
use raftgate_chaos::cluster::COLLECTIONS;
use raftgate_chaos::garbage;
use raftgate_chaos::{AdminClient, ClusterBuilder, Read};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{resource_chain, serial, CATCH_UP};

/// Every collection (consistent read): items with their revisions, and the list revision.
async fn state_of(client: &AdminClient) -> Vec<(&'static str, ResourceList)> {
    let mut state = Vec::new();
    for c in COLLECTIONS {
        let list = client
            .list(c, Read::Consistent)
            .await
            .unwrap_or_else(|e| panic!("consistent GET /admin/v1/{c}: {e}"));
        state.push((c, list));
    }
    state
}

/// Sends `body` and checks the status, the error code and that nothing changed.
async fn expect_rejected(
    client: &AdminClient,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    status: StatusCode,
    code: Option<&str>,
) -> String {
    let before = state_of(client).await;
    let sent = body.as_ref().map_or(0, Vec::len);
    let resp = client
        .raw(method.clone(), path, body.map(|b| ("application/json", b)))
        .await
        .unwrap_or_else(|e| panic!("{method} {path} ({sent} bytes): no answer: {e}"));
    let shown: String = resp.body.chars().take(300).collect();
    assert_eq!(
        resp.status, status,
        "{method} {path} ({sent} bytes): expected {status}, got {} with {shown}",
        resp.status
    );
    if let Some(code) = code {
        assert_eq!(
            resp.error_code().as_deref(),
            Some(code),
            "{method} {path}: expected error code {code} in {shown}"
        );
    } else {
        assert!(
            resp.error_code().is_some(),
            "{method} {path}: expected a JSON error body, got {shown}"
        );
    }
    let after = state_of(client).await;
    for ((c, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(
            b.items, a.items,
            "{method} {path} was rejected with {status} but changed {c}"
        );
        assert_eq!(
            b.revision, a.revision,
            "{method} {path} was rejected with {status} but the revision of {c} moved"
        );
    }
    resp.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_clearly_and_changes_nothing() {
    let _serial = serial().await;
    let cluster = ClusterBuilder::new(3)
        .form()
        .await
        .expect("a 3-node cluster forms");
    let leader = cluster.wait_leader().await.expect("a leader");
    // Through a follower, so rejections also cross the forwarding path.
    let client = cluster
        .client(cluster.followers(leader)[0])
        .expect("client");
    for (collection, body) in resource_chain("e") {
        client
            .create(collection, &body)
            .await
            .unwrap_or_else(|e| panic!("create {collection}: {e}"));
    }
    cluster
        .wait_converged(&COLLECTIONS, CATCH_UP)
        .await
        .expect("replicas converge before the bad input");
    let json_bytes = |v: serde_json::Value| Some(v.to_string().into_bytes());

    let post = Method::POST;
    expect_rejected(
        &client,
        post.clone(),
        "/admin/v1/tenants",
        Some(b"{\"id\": \"e-bad\",".to_vec()),
        StatusCode::BAD_REQUEST,
        Some("invalid_json"),
    )
    .await;
    expect_rejected(
        &client,
        Method::GET,
        "/admin/v1/widgets",
        None,
        StatusCode::NOT_FOUND,
        Some("not_found"),
    )
    .await;
    expect_rejected(
        &client,
        post.clone(),
        "/admin/v1/widgets",
        json_bytes(json!({"id": "w"})),
        StatusCode::NOT_FOUND,
        Some("not_found"),
    )
    .await;
    // Extractor rejections answer JSON too (they were plain text; found by schemathesis).
    for (method, path, code) in [
        (Method::GET, "/admin/v1/tenants/%FF", "invalid_request"),
        (Method::DELETE, "/admin/v1/tenants/%FF", "invalid_request"),
        (
            Method::GET,
            "/admin/v1/tenants?consistent=maybe",
            "invalid_query",
        ),
        (Method::GET, "/admin/v1/%FF", "invalid_request"),
    ] {
        expect_rejected(
            &client,
            method,
            path,
            None,
            StatusCode::BAD_REQUEST,
            Some(code),
        )
        .await;
    }
    expect_rejected(
        &client,
        post.clone(),
        "/admin/v1/tenants",
        json_bytes(json!({"id": "e-x", "colour": "red"})),
        StatusCode::BAD_REQUEST,
        None,
    )
    .await;
    let bad_regex = json!({"id": "e-regex", "path": "/r", "headers": [{"name": "x-a", "regex": "("}], "target": {"upstream": "e-upstream"}});
    expect_rejected(
        &client,
        post.clone(),
        "/admin/v1/routes",
        json_bytes(bad_regex),
        StatusCode::BAD_REQUEST,
        Some("invalid_resource"),
    )
    .await;
    let dangling = json!({"id": "e-dangling", "path": "/d", "target": {"upstream": "e-missing"}});
    expect_rejected(
        &client,
        post.clone(),
        "/admin/v1/routes",
        json_bytes(dangling),
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("invalid_reference"),
    )
    .await;
    let body = expect_rejected(
        &client,
        Method::DELETE,
        "/admin/v1/upstreams/e-upstream",
        None,
        StatusCode::CONFLICT,
        Some("in_use"),
    )
    .await;
    assert!(
        body.contains("e-route"),
        "409 in_use should name the referring route e-route: {body}"
    );
    let huge = json!({"id": "e-huge", "name": "x".repeat(1_100_000)});
    expect_rejected(
        &client,
        post,
        "/admin/v1/tenants",
        json_bytes(huge),
        StatusCode::PAYLOAD_TOO_LARGE,
        Some("payload_too_large"),
    )
    .await;

    for i in 0..cluster.len() {
        let raft_addr = cluster.info(i).expect("info").raft_addr.clone();
        let report = garbage::barrage(&raft_addr, 0x5eed + i as u64)
            .await
            .unwrap_or_else(|e| panic!("junk to node {}'s raft port: {e}", cluster.node_id(i)));
        eprintln!(
            "node {} raft port {raft_addr}:\n  {}",
            cluster.node_id(i),
            report.outcomes.join("\n  ")
        );
        assert!(
            report.hangs.is_empty(),
            "node {}'s raft port hung on junk: {:?}",
            cluster.node_id(i),
            report.hangs
        );
    }
    for i in 0..cluster.len() {
        let health = cluster.client(i).expect("client").healthz().await;
        assert!(
            matches!(health, Ok(s) if s.is_success()),
            "node {} unhealthy after junk on the raft ports: {health:?}",
            cluster.node_id(i)
        );
    }
    cluster
        .wait_for_voters(3)
        .await
        .expect("3 reachable voters after junk on the raft ports");
    for i in 0..cluster.len() {
        let body = json!({"id": format!("e-after-junk-{i}")});
        cluster
            .client(i)
            .expect("client")
            .create("tenants", &body)
            .await
            .unwrap_or_else(|e| {
                panic!("write through node {} after junk: {e}", cluster.node_id(i))
            });
    }
    cluster
        .wait_converged(&COLLECTIONS, CATCH_UP)
        .await
        .expect("replicas converge after the junk");
}

//! Three nodes: a revocation sent to a follower is refused by every node, and the audit
//! trail names the node that received each write and reads the same on every node.

use std::time::Duration;

use raftgate_chaos::{wait, ClusterBuilder};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{admin, mint};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_and_audit_records_reach_every_node() {
    let c = ClusterBuilder::new(3)
        .form()
        .await
        .expect("three-node cluster");
    let leader = c.wait_leader().await.expect("leader");
    let follower = c.followers(leader)[0];
    let victim = mint(&c, "viewer", None, 3600).await;
    for i in 0..3 {
        let client = c.client(i).expect("client").with_token(&victim);
        let (s, v) = client.get_json("/admin/v1/whoami").await.expect("whoami");
        assert_eq!(s, StatusCode::OK, "node {i}: {v}");
    }

    // Through the follower's admin API: forwarded to the leader, applied everywhere.
    let url = c.admin_url(follower).expect("url");
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{url}/admin/v1/tokens/revoke"))
        .bearer_auth(c.token().expect("token"))
        .json(&json!({"token": victim}))
        .send()
        .await
        .expect("revoke");
    assert_eq!(resp.status(), StatusCode::OK);
    let answer: Value = resp.json().await.expect("JSON");
    let jti = answer["revoked"]["jti"].as_str().expect("jti").to_string();
    // The receiving node refuses at once; the others within their replication lag.
    let client = c.client(follower).expect("client").with_token(&victim);
    let (s, v) = client.get_json("/admin/v1/whoami").await.expect("whoami");
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::UNAUTHORIZED, &json!("token_revoked"))
    );
    let (c, victim) = (&c, victim.as_str());
    for i in 0..3 {
        wait::until(
            &format!("node {i} refuses"),
            Duration::from_secs(5),
            || async move {
                let client = c.client(i).expect("client").with_token(victim);
                match client.get_json("/admin/v1/whoami").await {
                    Ok((StatusCode::UNAUTHORIZED, v))
                        if v["error"]["code"] == json!("token_revoked") =>
                    {
                        Ok(())
                    }
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
        .expect("revoked everywhere");
    }

    admin(
        c,
        Method::POST,
        "/admin/v1/tenants",
        json!({"id": "t-leader-side"}),
    )
    .await;
    let want = c.node_id(follower);
    for i in 0..3 {
        wait::until(
            &format!("audit on node {i}"),
            Duration::from_secs(5),
            || {
                let jti = jti.clone();
                async move {
                    let path = "/admin/v1/audit?limit=1000";
                    let (s, v) = call_on(c, i, path).await;
                    let items = v["items"].as_array().cloned().unwrap_or_default();
                    let revoke = items.iter().find(|r| r["id"] == json!(jti));
                    let created = items.iter().find(|r| r["id"] == json!("t-leader-side"));
                    match (s, revoke, created) {
                        (StatusCode::OK, Some(r), Some(t))
                            if r["node"] == json!(want) && t["node"] == json!(c.node_id(0)) =>
                        {
                            Ok(())
                        }
                        other => Err(format!("{other:?}")),
                    }
                }
            },
        )
        .await
        .expect("the same audit trail on every node");
    }
}

async fn call_on(c: &raftgate_chaos::LocalCluster, i: usize, path: &str) -> (StatusCode, Value) {
    let client = c.client(i).expect("client");
    client.get_json(path).await.expect("answer")
}

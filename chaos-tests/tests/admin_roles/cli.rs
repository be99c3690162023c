//! `raftgate audit` and `raftgate token revoke|revoked` against the running node.

use raftgate_chaos::cli::{run, CLI_TIMEOUT};
use raftgate_chaos::LocalCluster;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{call, mint};

async fn cli(c: &LocalCluster, token: &str, args: &[&str]) -> raftgate_chaos::cli::CliOutput {
    let url = c.admin_url(0).expect("admin url");
    let mut all = args.to_vec();
    all.extend_from_slice(&["--server", url.as_str(), "--token", token]);
    run(c.binary(), &all, &[], CLI_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("raftgate {}: {e}", args.join(" ")))
}

pub async fn check(c: &LocalCluster) {
    let admin = c.token().expect("admin token").to_string();
    let out = cli(c, &admin, &["audit", "--kind", "consumers", "--limit", "3"]).await;
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(out.stdout.starts_with("TIME (UTC)"), "{}", out.describe());
    assert_eq!(
        out.stdout.lines().count(),
        4,
        "header and 3 rows: {}",
        out.describe()
    );
    assert!(out.stdout.contains("consumer/"), "{}", out.describe());
    assert!(out.stderr.contains("more records"), "{}", out.describe());
    let out = cli(c, &admin, &["audit", "--since", "2x"]).await;
    assert_eq!(out.code, Some(64), "{}", out.describe());

    let viewer = mint(c, "viewer", None, 3600).await;
    let out = cli(c, &viewer, &["token", "revoke", "--self"]).await;
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let revoked: Value = serde_json::from_str(&out.stdout).expect("JSON answer");
    let jti = revoked["revoked"]["jti"].as_str().expect("jti").to_string();
    let (s, _) = call(c, Some(&viewer), Method::GET, "/admin/v1/whoami", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Refused server-side: exit status 1 with the JSON error on stderr.
    let out = cli(c, &viewer, &["token", "revoked"]).await;
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stderr.contains("token_revoked"), "{}", out.describe());

    let out = cli(
        c,
        &admin,
        &["token", "revoke", "--jti", "cli-jti", "--exp", "4000000000"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let out = cli(c, &admin, &["token", "revoked", "--json"]).await;
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let listed: Value = serde_json::from_str(&out.stdout).expect("JSON list");
    let items = listed["items"].as_array().expect("items");
    for want in [jti.as_str(), "cli-jti"] {
        assert!(
            items.iter().any(|i| i["jti"] == json!(want)),
            "{want}: {listed}"
        );
    }
    let out = cli(c, &admin, &["token", "revoke"]).await;
    assert_eq!(out.code, Some(64), "{}", out.describe());
}

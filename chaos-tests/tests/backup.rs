//! `raftgate backup` / `raftgate restore` against real 3-node clusters (docs/backup.md):
//! a backup through a follower, changes, a restore through another node, and then every
//! node's linearizable reads equal the backed-up state and a restored API key works on
//! every node's data plane; damaged, truncated and oversized files change nothing; the
//! same file restores into a brand-new cluster, whose admin tokens become the backup's.
//! Needs the binary (`RAFTGATE_BIN`, or the workspace's debug build).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use raftgate_chaos::cli::{run, CliOutput, CLI_TIMEOUT};
use raftgate_chaos::{wait, ClusterBuilder, LocalCluster, Read, TestUpstream, UpstreamOptions};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Every admin collection (all resource kinds of the state machine).
const ALL: [&str; 13] = [
    "tenants",
    "consumers",
    "api_keys",
    "upstreams",
    "routes",
    "providers",
    "models",
    "prompt_templates",
    "quota_policies",
    "permissions",
    "services",
    "subscriptions",
    "certificates",
];

const KEY_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const KEY_B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
const SETTLE: Duration = Duration::from_secs(20);

fn cluster(secret_key: &str, nodes: usize) -> ClusterBuilder {
    ClusterBuilder::new(nodes).env("RAFTGATE_SECRET_KEY", secret_key)
}

async fn cli(c: &LocalCluster, args: &[&str]) -> CliOutput {
    run(c.binary(), args, &[], CLI_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("raftgate {}: {e}", args.join(" ")))
}

async fn create(c: &LocalCluster, collection: &str, body: Value) {
    c.client(0)
        .expect("client")
        .create(collection, &body)
        .await
        .unwrap_or_else(|e| panic!("creating {collection} {body}: {e}"));
}

/// `POST /admin/v1/consumers/{consumer}/keys` with key id `id`: the plaintext key.
async fn new_key(c: &LocalCluster, consumer: &str, id: &str) -> String {
    let raw = c
        .client(0)
        .expect("client")
        .raw(
            Method::POST,
            &format!("/admin/v1/consumers/{consumer}/keys"),
            Some((
                "application/json",
                json!({"id": id}).to_string().into_bytes(),
            )),
        )
        .await
        .expect("create key");
    assert!(
        raw.status.is_success(),
        "key {id}: {} {}",
        raw.status,
        raw.body
    );
    let v: Value = serde_json::from_str(&raw.body).expect("JSON");
    v["key"].as_str().expect("plaintext key").to_string()
}

/// Every collection as node `i` reads it linearizably, without the per-resource
/// `revision` (a restore stamps every resource with its own index; docs/backup.md).
async fn everything(c: &LocalCluster, i: usize) -> BTreeMap<&'static str, Vec<Value>> {
    let client = c.client(i).expect("client");
    let mut out = BTreeMap::new();
    for coll in ALL {
        let list = client
            .list(coll, Read::Consistent)
            .await
            .unwrap_or_else(|e| panic!("node {}: list {coll}: {e}", c.node_id(i)));
        let items = list
            .items
            .into_iter()
            .map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("revision");
                }
                v
            })
            .collect();
        out.insert(coll, items);
    }
    out
}

/// The data-plane status of `GET /bk` with `key` on node `i`.
async fn call_route(c: &LocalCluster, i: usize, key: &str) -> StatusCode {
    let url = format!("http://{}/bk", c.info(i).expect("node info").http_addr);
    reqwest::Client::new()
        .get(&url)
        .header("x-api-key", key)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .status()
}

/// Waits until `key` gets `want` on every node's data plane.
async fn expect_key_everywhere(c: &LocalCluster, key: &str, want: StatusCode, what: &str) {
    for i in 0..c.len() {
        let label = format!("{what} on node {}", c.node_id(i));
        wait::until(&label, SETTLE, || async {
            match call_route(c, i, key).await {
                s if s == want => Ok(()),
                s => Err(format!("status {s}, want {want}")),
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The restore endpoint called directly with `bytes`: status and error code.
async fn post_restore(c: &LocalCluster, i: usize, bytes: Vec<u8>) -> (StatusCode, Value) {
    let raw = c
        .client(i)
        .expect("client")
        .raw(
            Method::POST,
            "/admin/v1/restore",
            Some(("application/octet-stream", bytes)),
        )
        .await
        .expect("POST /admin/v1/restore answers");
    let v = serde_json::from_str(&raw.body).unwrap_or(Value::Null);
    (raw.status, v)
}

fn token_of(c: &LocalCluster) -> String {
    c.token().expect("the cluster has a token").to_string()
}

/// A tenant, consumer, two keys, upstream, provider (encrypted key), quota policy and a
/// key-authenticated, quota-limited route; then some traffic, so the ledger has counters.
async fn populate(c: &LocalCluster, upstream: &TestUpstream) -> String {
    create(c, "tenants", json!({"id": "t1", "name": "Acme"})).await;
    create(c, "consumers", json!({"id": "c1", "tenant": "t1"})).await;
    let key = new_key(c, "c1", "k1").await;
    create(
        c,
        "upstreams",
        json!({"id": "u1", "targets": [{"address": upstream.addr().to_string(), "weight": 1}]}),
    )
    .await;
    create(
        c,
        "providers",
        json!({"id": "p1", "type": "openai", "base_url": "http://127.0.0.1:9", "api_key": "sk-backup-test"}),
    )
    .await;
    create(
        c,
        "quota_policies",
        json!({"id": "q1", "scope": ["api_key"], "metric": "requests", "window": "minute",
               "limit": 1000, "mode": "strict", "fail_open": false}),
    )
    .await;
    create(
        c,
        "routes",
        json!({"id": "r1", "path": "/bk", "target": {"upstream": "u1"},
               "policies": [{"key_auth": {}}, {"quota": "q1"}]}),
    )
    .await;
    expect_key_everywhere(c, &key, StatusCode::OK, "k1 before the backup").await;
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_online_refuse_damage_and_restore_into_a_new_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cluster.backup");
    let upstream = TestUpstream::start(UpstreamOptions::named("backup"))
        .await
        .expect("test upstream");

    let a = cluster(KEY_A, 3).form().await.expect("cluster A forms");
    let key = populate(&a, &upstream).await;
    let leader = a.wait_leader().await.expect("leader");
    let followers = a.followers(leader);
    let (via_backup, via_restore) = (followers[0], followers[1]);
    let expected = everything(&a, leader).await;
    assert_eq!(expected["api_keys"].len(), 1, "{expected:?}");

    // Backup through a follower, with the CLI, as an operator would.
    let url = |c: &LocalCluster, i| c.admin_url(i).expect("admin url");
    let token_a = token_of(&a);
    let path = file.to_str().expect("utf-8 path");
    let out = cli(
        &a,
        &[
            "backup",
            "--server",
            &url(&a, via_backup),
            "--token",
            &token_a,
            "--out",
            path,
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "backup: {}", out.describe());
    assert!(
        out.stdout.contains("index") && out.stdout.contains("sha256"),
        "backup prints index and checksum: {}",
        out.describe()
    );
    let bytes = std::fs::read(&file).expect("the backup file exists");
    assert_eq!(&bytes[..8], b"RGBACKUP");

    // A viewer may not take backups (they hold the token secret).
    let viewer = a
        .client(leader)
        .expect("client")
        .raw(
            Method::POST,
            "/admin/v1/tokens",
            Some(("application/json", br#"{"role":"viewer"}"#.to_vec())),
        )
        .await
        .expect("mint a viewer token");
    let viewer: Value = serde_json::from_str(&viewer.body).expect("token JSON");
    let out = cli(
        &a,
        &[
            "backup",
            "--server",
            &url(&a, leader),
            "--token",
            viewer["token"].as_str().unwrap_or(""),
            "--out",
            &format!("{path}.viewer"),
        ],
    )
    .await;
    assert_eq!(out.code, Some(1), "a viewer's backup: {}", out.describe());
    assert!(out.stderr.contains("forbidden"), "{}", out.describe());
    assert!(!Path::new(&format!("{path}.viewer")).exists());

    // Change things after the backup: delete the key, add another, edit and add resources.
    let admin = a.client(leader).expect("client");
    admin.delete("api_keys", "k1").await.expect("delete k1");
    let key2 = new_key(&a, "c1", "k2").await;
    admin
        .update("tenants", "t1", &json!({"id": "t1", "name": "Renamed"}))
        .await
        .expect("rename t1");
    create(&a, "tenants", json!({"id": "t2"})).await;
    expect_key_everywhere(&a, &key, StatusCode::UNAUTHORIZED, "deleted k1").await;
    assert_ne!(everything(&a, leader).await, expected);

    // Damaged files are refused by the CLI and by the server, and change nothing.
    let before = everything(&a, via_restore).await;
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let truncated = bytes[..bytes.len() - 7].to_vec();
    for (name, damaged, words) in [
        ("flipped", flipped, "checksum mismatch"),
        ("truncated", truncated, "truncated"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, &damaged).expect("write damaged copy");
        let out = cli(
            &a,
            &[
                "restore",
                "--server",
                &url(&a, via_restore),
                "--token",
                &token_a,
                "--from",
                p.to_str().expect("utf-8"),
            ],
        )
        .await;
        assert_eq!(out.code, Some(64), "{name}: {}", out.describe());
        assert!(out.stderr.contains(words), "{name}: {}", out.describe());
        let (status, body) = post_restore(&a, via_restore, damaged).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(body["error"]["code"], "invalid_backup", "{name}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(words),
            "{name}: {body}"
        );
    }
    let (status, body) = post_restore(&a, via_restore, b"not a backup".to_vec()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_backup")),
        "{body}"
    );
    // Larger than one Raft entry may be: 413 naming the limit.
    let (status, body) = post_restore(&a, via_restore, vec![0u8; 17 * 1024 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "backup_too_large", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("Raft message limit"),
        "{body}"
    );
    assert_eq!(
        everything(&a, via_restore).await,
        before,
        "a refused restore changed state"
    );

    // Restore through another node: every node reads exactly the backed-up state.
    let out = cli(
        &a,
        &[
            "restore",
            "--server",
            &url(&a, via_restore),
            "--token",
            &token_a,
            "--from",
            path,
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "restore: {}", out.describe());
    assert!(out.stdout.contains("restored"), "{}", out.describe());
    for i in 0..a.len() {
        assert_eq!(
            everything(&a, i).await,
            expected,
            "node {} after the restore",
            a.node_id(i)
        );
    }
    expect_key_everywhere(&a, &key, StatusCode::OK, "restored k1").await;
    expect_key_everywhere(
        &a,
        &key2,
        StatusCode::UNAUTHORIZED,
        "k2 (not in the backup)",
    )
    .await;
    let status_a = a
        .client(leader)
        .expect("client")
        .cluster_status()
        .await
        .expect("status");
    drop(a);

    // A brand-new cluster under another secret key refuses (its node cannot decrypt p1).
    let c = cluster(KEY_B, 1).form().await.expect("cluster C forms");
    let (status, body) = post_restore(&c, 0, bytes.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "secret_key_mismatch", "{body}");
    assert!(everything(&c, 0).await.values().all(Vec::is_empty));
    drop(c);

    // A brand-new 3-node cluster with the same secret key takes the backup whole.
    let mut b = cluster(KEY_A, 3).form().await.expect("cluster B forms");
    let token_b = token_of(&b);
    let status_b = b
        .client(0)
        .expect("client")
        .cluster_status()
        .await
        .expect("status");
    assert_ne!(status_b.cluster_id, status_a.cluster_id);
    let out = cli(
        &b,
        &[
            "restore",
            "--server",
            &url(&b, 2),
            "--token",
            &token_b,
            "--from",
            path,
        ],
    )
    .await;
    assert_eq!(out.code, Some(0), "restore into B: {}", out.describe());
    assert!(
        out.stderr.contains("admin tokens"),
        "the token note: {}",
        out.describe()
    );
    // The token secret came with the backup: A's token works on B, B's own no longer does.
    let stale = b.client(0).expect("client").cluster_status().await;
    assert_eq!(
        stale.as_ref().err().and_then(|e| e.status()),
        Some(StatusCode::UNAUTHORIZED),
        "B's old token after the restore: {stale:?}"
    );
    b.set_token(&token_a);
    let after = b
        .client(0)
        .expect("client")
        .cluster_status()
        .await
        .expect("A's token on B");
    assert_eq!(
        after.cluster_id, status_b.cluster_id,
        "the cluster keeps its identity"
    );
    assert_eq!(after.nodes.len(), 3, "membership is B's: {after:?}");
    for i in 0..b.len() {
        assert_eq!(everything(&b, i).await, expected, "B node {}", b.node_id(i));
    }
    expect_key_everywhere(&b, &key, StatusCode::OK, "restored k1 on B").await;
    // B still takes writes after the restore.
    create(&b, "tenants", json!({"id": "after-restore"})).await;
}

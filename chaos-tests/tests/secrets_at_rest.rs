//! Secrets at rest against a real 3-node cluster (docs/security.md, "Secrets at rest"):
//! provider API keys, a certificate's private key, consumer API keys and an HS256 jwt
//! secret are created and used (LLM, key-auth, JWT and TLS calls on every node), a backup
//! is taken, the key ring is rolled and `raftgate secrets rotate` re-encrypts everything.
//! Then every byte under each node's directory (RocksDB SSTs, WAL, MANIFEST, snapshots,
//! call logs, the node's stdout/stderr), the backup file and every node's `/metrics`
//! are scanned for each plaintext secret and its base64 forms: none may appear, while a
//! plaintext marker stored in the same state is found (the scan sees the data). Finally
//! the nodes restart with the new key alone and everything still works.
//! Needs the binary (`RAFTGATE_BIN`, or the workspace's debug build).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use raftgate_chaos::cli::{run, CLI_TIMEOUT};
use raftgate_chaos::llm_mock::Flavor;
use raftgate_chaos::upstream::self_signed;
use raftgate_chaos::{wait, ClusterBuilder, LocalCluster, MockOptions, MockProvider};
use raftgate_chaos::{TestUpstream, UpstreamOptions};
use reqwest::{Method, StatusCode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use serde_json::{json, Value};

#[path = "secrets_at_rest/scan.rs"]
mod scan;

use scan::{contains, files_under, read_all, scan, tls_ok};

const KEY_A: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const KEY_B: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const SETTLE: Duration = Duration::from_secs(30);
const SNI: &str = "secure.test";

/// Random enough that a hit can only be the value itself.
fn unique(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 16]>()))
}

struct Fixture {
    provider_key: String,
    jwt_secret: String,
    cert_pem: String,
    key_pem: String,
    api_key: String,
    marker: String,
    _upstream: TestUpstream,
    _mock: MockProvider,
}

async fn admin(
    c: &LocalCluster,
    i: usize,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
    let raw = c
        .client(i)
        .expect("client")
        .raw(method.clone(), path, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    assert!(
        raw.status.is_success(),
        "{method} {path}: {} {}",
        raw.status,
        raw.body
    );
    serde_json::from_str(&raw.body).unwrap_or(Value::Null)
}

async fn create(c: &LocalCluster, collection: &str, body: Value) {
    admin(
        c,
        0,
        Method::POST,
        &format!("/admin/v1/{collection}"),
        Some(body),
    )
    .await;
}

async fn setup(c: &LocalCluster) -> Fixture {
    let provider_key = unique("sk-provider-");
    let jwt_secret = unique("jwt-hs256-secret-");
    let marker = unique("plaintext-marker-");
    let (cert_pem, key_pem) = self_signed(&[SNI]);
    let upstream = TestUpstream::start(UpstreamOptions::named("secrets"))
        .await
        .expect("upstream");
    let mock = MockProvider::start(
        MockOptions::new(Flavor::OpenAi)
            .name("secrets-mock")
            .api_key(&provider_key),
    )
    .await
    .expect("mock provider");
    create(c, "tenants", json!({"id": "acme", "description": marker})).await;
    create(c, "consumers", json!({"id": "c1", "tenant": "acme"})).await;
    let key = admin(
        c,
        0,
        Method::POST,
        "/admin/v1/consumers/c1/keys",
        Some(json!({})),
    )
    .await;
    let api_key = key["key"].as_str().expect("plaintext key").to_string();
    let target = upstream.addr().to_string();
    create(
        c,
        "upstreams",
        json!({"id": "u", "targets": [{"address": target, "weight": 1}]}),
    )
    .await;
    create(
        c,
        "routes",
        json!({"id": "k", "path": "/k", "target": {"upstream": "u"},
        "policies": [{"key_auth": {}}]}),
    )
    .await;
    create(
        c,
        "routes",
        json!({"id": "j", "path": "/j", "target": {"upstream": "u"},
        "policies": [{"jwt_auth": {"algorithm": "HS256", "secret": jwt_secret}}]}),
    )
    .await;
    create(
        c,
        "certificates",
        json!({"id": "cert", "snis": [SNI], "cert_pem": cert_pem,
        "key_pem": key_pem}),
    )
    .await;
    create(
        c,
        "providers",
        json!({"id": "p", "type": "openai", "base_url": mock.base_url(),
        "api_key": provider_key}),
    )
    .await;
    create(
        c,
        "models",
        json!({"id": "gpt-test",
        "deployments": [{"provider": "p", "model": "gpt-4o-mini"}]}),
    )
    .await;
    create(
        c,
        "permissions",
        json!({"id": "c1-gpt", "consumer": "c1",
        "target": {"model": "gpt-test"}}),
    )
    .await;
    Fixture {
        provider_key,
        jwt_secret,
        cert_pem,
        key_pem,
        api_key,
        marker,
        _upstream: upstream,
        _mock: mock,
    }
}

fn jwt(f: &Fixture) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "c1", "exp": exp}),
        &EncodingKey::from_secret(f.jwt_secret.as_bytes()),
    )
    .expect("JWT")
}

fn https_addr(c: &LocalCluster, i: usize) -> Result<SocketAddr, String> {
    let path = c.data_dir(i).map_err(|e| e.to_string())?.join("node.json");
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    v["https_addr"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("node.json has no https_addr: {v}"))
}

/// Every secret in use on node `i`: key auth, JWT, an LLM call (the mock checks the
/// provider key) and a TLS handshake.
async fn exercise(c: &LocalCluster, i: usize, f: &Fixture) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let base = format!("http://{}", c.info(i).map_err(|e| e.to_string())?.http_addr);
    let checks = [
        (
            "key_auth",
            http.get(format!("{base}/k"))
                .header("x-api-key", &f.api_key),
        ),
        (
            "jwt_auth",
            http.get(format!("{base}/j")).bearer_auth(jwt(f)),
        ),
        (
            "llm",
            http.post(format!("{base}/v1/chat/completions"))
                .bearer_auth(&f.api_key)
                .json(&json!({"model": "gpt-test",
                    "messages": [{"role": "user", "content": "hello"}]})),
        ),
    ];
    for (what, req) in checks {
        let resp = req.send().await.map_err(|e| format!("{what}: {e}"))?;
        let status = resp.status();
        if status != StatusCode::OK {
            let body = resp.text().await.unwrap_or_default();
            return Err(format!("node {i} {what}: {status} {body}"));
        }
    }
    tls_ok(https_addr(c, i)?, &f.cert_pem)
        .await
        .map_err(|e| format!("node {i} tls: {e}"))
}

async fn exercise_all(c: &LocalCluster, f: &Fixture, when: &str) {
    for i in 0..c.len() {
        wait::until(&format!("{when}: secrets work on node {i}"), SETTLE, || {
            exercise(c, i, f)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(i, 40)));
    }
}

async fn cli(c: &LocalCluster, i: usize, args: &[&str]) -> String {
    let server = c.admin_url(i).expect("admin url");
    let token = c.token().expect("token").to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--server", &server, "--token", &token]);
    let out = run(c.binary(), &all, &[], CLI_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("raftgate {}: {e}", args.join(" ")));
    assert_eq!(
        out.code,
        Some(0),
        "raftgate {}: {}",
        args.join(" "),
        out.stderr
    );
    out.stdout
}

/// The needles: each secret as text, base64 and URL-safe base64 (and the key's DER).
fn needles(f: &Fixture, token: &str) -> Vec<(String, Vec<u8>)> {
    let der = PrivateKeyDer::from_pem_slice(f.key_pem.as_bytes())
        .expect("key PEM")
        .secret_der()
        .to_vec();
    let pem_body: String = f
        .key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let mut out = vec![
        ("private key DER".to_string(), der),
        ("private key base64 body".to_string(), pem_body.into_bytes()),
        (
            "private key PEM line".to_string(),
            f.key_pem
                .lines()
                .nth(1)
                .expect("a PEM line")
                .as_bytes()
                .to_vec(),
        ),
    ];
    for (name, s) in [
        ("provider api key", f.provider_key.as_str()),
        ("jwt secret", f.jwt_secret.as_str()),
        ("consumer api key", f.api_key.as_str()),
        ("admin token", token),
        ("key-encryption key A", KEY_A),
        ("key-encryption key B", KEY_B),
    ] {
        out.push((name.to_string(), s.as_bytes().to_vec()));
        out.push((format!("{name} (base64)"), STANDARD.encode(s).into_bytes()));
        out.push((
            format!("{name} (base64url)"),
            URL_SAFE_NO_PAD.encode(s).into_bytes(),
        ));
    }
    out
}

async fn status(c: &LocalCluster, i: usize) -> Value {
    admin(c, i, Method::GET, "/admin/v1/secrets/status", None).await
}

fn kid(hex_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let key = hex::decode(hex_key).expect("hex key");
    let d = Sha256::new()
        .chain_update(b"raftgate secret key id\0")
        .chain_update(&key)
        .finalize();
    hex::encode(d)[..8].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_encrypted_at_rest_rotate_and_survive_the_old_key_removal() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (a, b) = (keys.path().join("a.key"), keys.path().join("b.key"));
    std::fs::write(&a, KEY_A).expect("key a");
    std::fs::write(&b, KEY_B).expect("key b");
    let (a, b) = (a.display().to_string(), b.display().to_string());
    let mut c = ClusterBuilder::new(3)
        .env("RAFTGATE_SECRET_KEY_FILE", &a)
        .env("RAFTGATE_ACCESS_LOG", "-")
        .arg("--https-addr")
        .arg("127.0.0.1:0")
        .snapshot_logs(10)
        .form()
        .await
        .expect("cluster forms");
    let f = setup(&c).await;
    exercise_all(&c, &f, "under key A").await;
    let s = status(&c, 1).await;
    assert_eq!(s["current_key_id"], json!(kid(KEY_A)), "{s}");
    assert_eq!(s["secrets"]["by_key"], json!({kid(KEY_A): 4}), "{s}");
    assert_eq!(s["secrets"]["plaintext"], json!(0), "{s}");

    let backup = keys.path().join("cluster.backup");
    cli(&c, 1, &["backup", "--out", &backup.display().to_string()]).await;

    // Roll the ring (new key current, old key previous) to every node, one at a time.
    for i in 0..c.len() {
        c.kill9(i).expect("stop");
        c.set_env(i, "RAFTGATE_SECRET_KEY_FILE", Some(&b))
            .expect("env");
        c.set_env(i, "RAFTGATE_SECRET_KEY_PREVIOUS_FILES", Some(&a))
            .expect("env");
        c.restart(i).await.expect("restart");
        c.wait_for_voters(3).await.expect("voters");
    }
    let s = status(&c, 2).await;
    assert_eq!(s["previous_keys_in_use"], json!([kid(KEY_A)]), "{s}");
    assert_eq!(s["rotation_needed"], json!(true), "{s}");
    exercise_all(&c, &f, "ring rolled").await;

    let out = cli(&c, 2, &["secrets", "rotate", "--json"]).await;
    let r: Value = serde_json::from_str(&out).expect("rotate JSON");
    assert_eq!(r["key_id"], json!(kid(KEY_B)), "{r}");
    assert_eq!(
        (r["total"].as_u64(), r["reencrypted"].as_u64()),
        (Some(4), Some(4)),
        "{r}"
    );
    let kinds = json!({"certificate_keys": 1, "jwt_secrets": 1, "provider_api_keys": 1,
        "token_secret": 1});
    assert_eq!(r["by_kind"], kinds, "{r}");
    let again = cli(&c, 0, &["secrets", "rotate", "--json"]).await;
    let again: Value = serde_json::from_str(&again).expect("rotate JSON");
    assert_eq!(again["reencrypted"], json!(0), "{again}");
    let cr = &c;
    for i in 0..c.len() {
        wait::until(
            &format!("node {i} sees the rotation"),
            SETTLE,
            || async move {
                let s = status(cr, i).await;
                let ok = s["previous_keys_in_use"] == json!([])
                    && s["secrets"]["by_key"] == json!({kid(KEY_B): 4})
                    && s["secrets"]["unreadable"] == json!(0);
                if ok {
                    Ok(())
                } else {
                    Err(s.to_string())
                }
            },
        )
        .await
        .expect("rotated everywhere");
    }
    exercise_all(&c, &f, "rotated").await;
    let human = cli(&c, 0, &["secrets", "status"]).await;
    assert!(human.contains("previous keys can be removed"), "{human}");

    let mut metrics = Vec::new();
    for i in 0..c.len() {
        let raw = c
            .client(i)
            .expect("client")
            .raw(Method::GET, "/metrics", None)
            .await
            .expect("metrics");
        metrics.push((format!("node {i} /metrics"), raw.body.into_bytes()));
    }

    // Everything on disk, with the nodes stopped.
    for i in 0..c.len() {
        c.kill9(i).expect("stop");
    }
    let token = c.token().expect("token").to_string();
    let needles = needles(&f, &token);
    let mut total = 0;
    for i in 0..c.len() {
        let mut files = Vec::new();
        files_under(c.data_dir(i).expect("data dir"), &mut files);
        files.push(c.log_path(i).expect("log").to_path_buf());
        let blobs = read_all(&files);
        let joined: Vec<u8> = blobs.iter().flat_map(|(_, b)| b.clone()).collect();
        assert!(
            contains(&joined, f.marker.as_bytes()),
            "node {i}: the plaintext marker is not in its files: the scan does not see the data"
        );
        assert!(
            files
                .iter()
                .any(|p| p.extension().is_some_and(|e| e == "sst")),
            "node {i}: no SST file"
        );
        // The secrets are there, as ciphertext under the new key.
        let sealed = format!("enc:v2:{}:", kid(KEY_B));
        assert!(
            contains(&joined, sealed.as_bytes()),
            "node {i}: no {sealed} value"
        );
        total += scan(&format!("node {i}"), &blobs, &needles);
        let names: Vec<String> = files
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        eprintln!("node {i}: {} files scanned: {names:?}", files.len());
    }
    let backup_bytes = std::fs::read(&backup).expect("backup");
    assert!(
        contains(&backup_bytes, f.marker.as_bytes()),
        "marker in the backup"
    );
    total += scan("backup", &[("backup".into(), backup_bytes)], &needles);
    total += scan("metrics", &metrics, &needles);
    eprintln!("{total} bytes scanned, {} needles", needles.len());

    // The old key goes: the new key alone reads everything.
    for i in 0..c.len() {
        c.set_env(i, "RAFTGATE_SECRET_KEY_FILE", None).expect("env");
        c.set_env(i, "RAFTGATE_SECRET_KEY_PREVIOUS_FILES", None)
            .expect("env");
        c.set_env(i, "RAFTGATE_SECRET_KEY", Some(KEY_B))
            .expect("env");
        c.restart(i).await.expect("restart");
    }
    c.wait_for_voters(3).await.expect("voters");
    exercise_all(&c, &f, "new key only").await;
    let s = status(&c, 0).await;
    assert_eq!(s["previous_key_ids"], json!([]), "{s}");
    assert_eq!(
        (&s["secrets"]["unreadable"], &s["rotation_needed"]),
        (&json!(0), &json!(false)),
        "{s}"
    );
}

/// A cluster made without a key (insecure test mode) stores its signing secret in the
/// clear and refuses other secrets; once its node has a key, a rotation encrypts the
/// signing secret and the admin tokens minted before stay valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_a_key_is_encrypted_by_its_first_rotation() {
    let mut c = ClusterBuilder::new(1).form().await.expect("cluster forms");
    let s = status(&c, 0).await;
    assert_eq!(s["current_key_id"], Value::Null, "{s}");
    assert_eq!(s["secrets"]["plaintext"], json!(1), "{s}");
    assert_eq!(s["secrets"]["by_kind"], json!({"token_secret": 1}), "{s}");
    let client = c.client(0).expect("client");
    for (path, body) in [
        ("/admin/v1/secrets/rotate", json!({})),
        (
            "/admin/v1/providers",
            json!({"id": "p", "type": "openai", "api_key": "sk-no-key-to-encrypt-me"}),
        ),
    ] {
        let raw = client
            .raw(
                Method::POST,
                path,
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await
            .expect("answer");
        assert_eq!(raw.status, StatusCode::BAD_REQUEST, "{path}: {}", raw.body);
        assert!(
            raw.body.contains("secret_key_missing"),
            "{path}: {}",
            raw.body
        );
    }

    c.kill9(0).expect("stop");
    c.set_env(0, "RAFTGATE_SECRET_KEY", Some(KEY_A))
        .expect("env");
    c.restart(0).await.expect("restart");
    c.wait_leader().await.expect("leader");
    let s = status(&c, 0).await;
    assert_eq!(s["rotation_needed"], json!(true), "{s}");
    let dry = admin(
        &c,
        0,
        Method::POST,
        "/admin/v1/secrets/rotate",
        Some(json!({"dry_run": true})),
    )
    .await;
    assert_eq!(
        (dry["reencrypted"].as_u64(), &dry["revision"]),
        (Some(1), &Value::Null),
        "{dry}"
    );
    assert_eq!(status(&c, 0).await["secrets"]["plaintext"], json!(1));
    let r = admin(&c, 0, Method::POST, "/admin/v1/secrets/rotate", None).await;
    assert_eq!(r["by_kind"], json!({"token_secret": 1}), "{r}");
    // The token minted at init (before the rotation) still authenticates.
    let s = status(&c, 0).await;
    assert_eq!(s["secrets"]["plaintext"], json!(0), "{s}");
    assert_eq!(s["secrets"]["by_key"], json!({kid(KEY_A): 1}), "{s}");
    let bad = client
        .raw(
            Method::POST,
            "/admin/v1/secrets/rotate",
            Some(("application/json", b"{\"dry_run\": 3}".to_vec())),
        )
        .await
        .expect("answer");
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
}

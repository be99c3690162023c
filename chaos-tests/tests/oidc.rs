//! OIDC admin tokens against real `raftgate serve` processes: the provider's keys from
//! a JWKS file (rotated in place) and from a JWKS URL served by this test (rotated, then
//! taken down). Keys are generated here with rcgen. See docs/admin-api.md, "OIDC".
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use raftgate_chaos::process::{binary_path, NodeProcess, NodeSpec};
use raftgate_chaos::{wait, AdminClient};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ISS: &str = "https://idp.example.test/realms/ops";
const AUD: &str = "raftgate";
const WAIT: Duration = Duration::from_secs(60);

struct Key {
    kid: String,
    enc: EncodingKey,
    jwk: Jwk,
}

fn key(kid: &str) -> Key {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key");
    let enc = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).expect("PEM");
    let mut jwk = Jwk::from_encoding_key(&enc, Algorithm::ES256).expect("JWK");
    jwk.common.key_id = Some(kid.into());
    Key {
        kid: kid.into(),
        enc,
        jwk,
    }
}

fn jwks(keys: &[&Key]) -> String {
    serde_json::to_string(&JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    })
    .expect("JWKS")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A provider token signed by `k` (ES256): Keycloak-like claims plus `extra`.
fn token(k: &Key, extra: Value) -> String {
    let mut claims = json!({"iss": ISS, "aud": [AUD, "account"], "sub": "3f1c-uuid",
        "preferred_username": "alice", "iat": now(), "exp": now() + 600,
        "raftgate_role": "admin"});
    for (name, v) in extra.as_object().expect("object") {
        claims[name] = v.clone();
    }
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(k.kid.clone());
    jsonwebtoken::encode(&h, &claims, &k.enc).expect("sign")
}

fn spec(root: &Path, env: Vec<(&str, String)>) -> NodeSpec {
    let mut env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.into(), v)).collect();
    env.push(("RAFTGATE_BOOTSTRAP".into(), "true".into()));
    env.push(("RAFTGATE_OIDC_ISSUER".into(), ISS.into()));
    env.push(("RAFTGATE_OIDC_AUDIENCE".into(), AUD.into()));
    NodeSpec {
        node_id: 1,
        data_dir: root.join("data"),
        log_path: root.join("node.log"),
        addrs: None,
        args: Vec::new(),
        env,
        gid: None,
        faketime_file: None,
    }
}

/// `method path` with `token`: (status, JSON body or Null).
async fn call(
    url: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    AdminClient::new(url)
        .with_token(token)
        .json(method, path, body.as_ref())
        .await
        .expect("node answers")
}

async fn whoami(url: &str, token: &str) -> (StatusCode, Value) {
    call(url, token, Method::GET, "/admin/v1/whoami", None).await
}

/// Waits until the bootstrapped node serves its cluster to its own admin token.
async fn ready(url: &str, data_dir: &Path) -> String {
    let path = data_dir.join("admin-token");
    wait::until("bootstrap and the admin token", WAIT, || {
        let (path, url) = (path.clone(), url.to_string());
        async move {
            let t = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let (s, _) = whoami(&url, t.trim()).await;
            (s == StatusCode::OK)
                .then(|| t.trim().to_string())
                .ok_or(format!("whoami {s}"))
        }
    })
    .await
    .expect("node ready")
}

fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    assert!(got.1["error"]["message"].is_string(), "{}", got.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_file_tokens_act_per_role_and_bad_ones_are_refused() {
    let bin = binary_path().expect("raftgate binary");
    let root = tempfile::tempdir().expect("tempdir");
    let (a, b) = (key("a"), key("b"));
    let file = root.path().join("jwks.json");
    std::fs::write(&file, jwks(&[&a])).expect("write JWKS");
    let spec = spec(
        root.path(),
        vec![
            ("RAFTGATE_OIDC_JWKS_FILE", file.display().to_string()),
            ("RAFTGATE_OIDC_SUBJECT_CLAIM", "preferred_username".into()),
        ],
    );
    let node = NodeProcess::start(&bin, &spec).await.expect("node");
    let url = node.info().admin_url.clone();
    let cluster = ready(&url, &spec.data_dir).await;

    // Admin: writes; whoami shows the mapped claims.
    let admin = token(&a, json!({}));
    let who = whoami(&url, &admin).await;
    assert_eq!(who.0, StatusCode::OK);
    assert_eq!(
        (&who.1["subject"], &who.1["role"]),
        (&json!("alice"), &json!("admin"))
    );
    for t in ["acme", "globex"] {
        let r = call(
            &url,
            &admin,
            Method::POST,
            "/admin/v1/tenants",
            Some(json!({"id": t})),
        )
        .await;
        assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    }
    // Viewer: reads, may not write.
    let viewer = token(&a, json!({"raftgate_role": "viewer"}));
    let r = call(&url, &viewer, Method::GET, "/admin/v1/tenants", None).await;
    assert_eq!(
        (r.0, r.1["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(2))
    );
    let r = call(
        &url,
        &viewer,
        Method::POST,
        "/admin/v1/tenants",
        Some(json!({"id": "v"})),
    )
    .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    // Tenant admin (Keycloak-style role list): its own tenant only.
    let ta = token(
        &a,
        json!({"raftgate_role": ["offline_access", "tenant-admin"], "raftgate_tenant": "acme"}),
    );
    let mine = json!({"id": "c-acme", "tenant": "acme"});
    let r = call(&url, &ta, Method::POST, "/admin/v1/consumers", Some(mine)).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let theirs = json!({"id": "c-globex", "tenant": "globex"});
    let r = call(&url, &ta, Method::POST, "/admin/v1/consumers", Some(theirs)).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    // The cluster's own HS256 token still works next to OIDC.
    assert_eq!(whoami(&url, &cluster).await.0, StatusCode::OK);

    // Refusals: 401 for tokens that are not genuine or current, 403 for unusable roles.
    let x = serde_json::to_value(&a.jwk).expect("jwk")["x"]
        .as_str()
        .expect("x")
        .to_string();
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("a".into());
    let confused = jsonwebtoken::encode(
        &hs,
        &json!({"iss": ISS, "aud": AUD, "sub": "m",
        "exp": now() + 600, "raftgate_role": "admin", "role": "admin"}),
        &EncodingKey::from_secret(x.as_bytes()),
    )
    .expect("HS256");
    let cases = [
        (
            token(&a, json!({"iss": "https://evil.example.test"})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            token(&a, json!({"aud": "another-app"})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            token(&a, json!({"exp": now() - 300})),
            StatusCode::UNAUTHORIZED,
        ),
        (token(&key("a"), json!({})), StatusCode::UNAUTHORIZED),
        (token(&b, json!({})), StatusCode::UNAUTHORIZED),
        (confused, StatusCode::UNAUTHORIZED),
        (
            token(&a, json!({"raftgate_role": "tenant-admin"})),
            StatusCode::FORBIDDEN,
        ),
        (
            token(&a, json!({"raftgate_role": "root"})),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (t, status) in &cases {
        let code = if *status == StatusCode::FORBIDDEN {
            "forbidden"
        } else {
            "unauthorized"
        };
        let r = call(
            &url,
            t,
            Method::POST,
            "/admin/v1/tenants",
            Some(json!({"id": "nope"})),
        )
        .await;
        assert_error(&r, *status, code);
    }
    let r = call(&url, &admin, Method::GET, "/admin/v1/tenants/nope", None).await;
    assert_eq!(r.0, StatusCode::NOT_FOUND, "refused writes changed nothing");

    // Rotation: the file now holds b only (replaced atomically, as operators should).
    let tmp = root.path().join("jwks.json.tmp");
    std::fs::write(&tmp, jwks(&[&b])).expect("write");
    std::fs::rename(&tmp, &file).expect("rename");
    let tb = token(&b, json!({"raftgate_role": "viewer"}));
    wait::until("the rotated JWKS file to be used", WAIT, || {
        let (url, tb) = (url.clone(), tb.clone());
        async move {
            let s = whoami(&url, &tb).await.0;
            (s == StatusCode::OK).then_some(()).ok_or(format!("{s}"))
        }
    })
    .await
    .expect("rotation");
    assert_error(
        &whoami(&url, &admin).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let log = std::fs::read_to_string(&spec.log_path).expect("log");
    assert!(
        !log.contains(&admin) && !log.contains(&tb),
        "tokens never logged"
    );
    drop(node);
}

/// Serves the current JWKS on every request; `None` answers 503. Counts requests.
async fn jwks_server(
    body: Arc<Mutex<Option<String>>>,
    hits: Arc<AtomicUsize>,
) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/certs", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            hits.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; 8192];
            let _ = s.read(&mut buf).await;
            let current = body.lock().expect("lock").clone();
            let resp = match current {
                Some(text) => format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}", text.len()),
                None => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
            };
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_url_rotation_is_picked_up_and_an_outage_keeps_the_cache() {
    let bin = binary_path().expect("raftgate binary");
    let root = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (key("a"), key("b"), key("c"));
    let body = Arc::new(Mutex::new(Some(jwks(&[&a]))));
    let hits = Arc::new(AtomicUsize::new(0));
    let (jwks_url, server) = jwks_server(body.clone(), hits.clone()).await;
    let spec = spec(
        root.path(),
        vec![
            ("RAFTGATE_OIDC_JWKS_URL", jwks_url),
            ("RAFTGATE_OIDC_JWKS_MIN_REFETCH_SECS", "1".into()),
        ],
    );
    let node = NodeProcess::start(&bin, &spec).await.expect("node");
    let url = node.info().admin_url.clone();
    ready(&url, &spec.data_dir).await;
    let (ta, tb, tc) = (
        token(&a, json!({})),
        token(&b, json!({})),
        token(&c, json!({})),
    );
    assert_eq!(whoami(&url, &ta).await.0, StatusCode::OK);
    let fetched = hits.load(Ordering::SeqCst);
    for _ in 0..10 {
        assert_eq!(whoami(&url, &ta).await.0, StatusCode::OK);
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        fetched,
        "known keys come from the cache"
    );

    // The provider rotates to a and b: a token with the new kid triggers a refetch.
    *body.lock().expect("lock") = Some(jwks(&[&a, &b]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(whoami(&url, &tb).await.0, StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), fetched + 1);
    // Unknown kids cannot make the node hammer the provider (one fetch per second here).
    let (before, started) = (hits.load(Ordering::SeqCst), std::time::Instant::now());
    for _ in 0..20 {
        assert_error(
            &whoami(&url, &tc).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    let fetches = hits.load(Ordering::SeqCst) - before;
    let allowed = started.elapsed().as_secs() as usize + 1;
    assert!(
        fetches <= allowed,
        "rate limited: {fetches} fetches, {allowed} allowed"
    );

    // The provider fails, then disappears: the cached keys keep verifying.
    *body.lock().expect("lock") = None;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_error(
        &whoami(&url, &tc).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(whoami(&url, &tb).await.0, StatusCode::OK);
    server.abort();
    let _ = server.await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_error(
        &whoami(&url, &tc).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(whoami(&url, &ta).await.0, StatusCode::OK);
    assert_eq!(whoami(&url, &tb).await.0, StatusCode::OK);
    let log = std::fs::read_to_string(&spec.log_path).expect("log");
    assert!(
        log.contains("OIDC JWKS fetch failed"),
        "the outage is logged"
    );
    drop(node);
}

#[test]
fn bad_oidc_config_exits_64_naming_the_key() {
    let bin = binary_path().expect("raftgate binary");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RAFTGATE_") {
                cmd.env_remove(k);
            }
        }
        let o = cmd
            .args(["serve", "--insecure", "--data-dir"])
            .arg(dir.path())
            .args([
                "--admin-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--raft-addr",
                "127.0.0.1:0",
            ])
            .args(args)
            .output()
            .expect("run serve");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let missing = dir.path().join("none.json");
    let missing = missing.to_str().expect("utf-8");
    for (args, key) in [
        (vec!["--oidc-issuer", ISS], "oidc_jwks_url"),
        (
            vec![
                "--oidc-issuer",
                ISS,
                "--oidc-jwks-url",
                "http://idp.example.test/certs",
            ],
            "oidc_jwks_url",
        ),
        (
            vec![
                "--oidc-issuer",
                ISS,
                "--oidc-jwks-url",
                "https://x.test/c",
                "--oidc-jwks-file",
                missing,
            ],
            "oidc_jwks_file",
        ),
        (vec!["--oidc-audience", AUD], "oidc_audience"),
        (
            vec!["--oidc-issuer", ISS, "--oidc-jwks-file", missing],
            "oidc_jwks_file",
        ),
    ] {
        let (code, err) = run(&args);
        assert_eq!(code, Some(64), "{args:?}: {err}");
        assert!(err.contains(key), "{args:?}: {err}");
    }
}

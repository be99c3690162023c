//! OIDC verification against keys generated here: EC keys with rcgen, RSA with `rsa`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::jwks::{self, Source};
use super::*;
use crate::admin::auth::Role;

const ISS: &str = "https://idp.example.test/realms/raftgate";
const AUD: &str = "raftgate-admin";

struct TestKey {
    alg: Algorithm,
    kid: Option<String>,
    enc: EncodingKey,
    jwk: Jwk,
}

fn ec_key(kid: &str) -> TestKey {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key");
    let enc = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).expect("PEM");
    let mut jwk = Jwk::from_encoding_key(&enc, Algorithm::ES256).expect("JWK");
    jwk.common.key_id = Some(kid.into());
    TestKey {
        alg: Algorithm::ES256,
        kid: Some(kid.into()),
        enc,
        jwk,
    }
}

/// One RSA key for every test (generating one is slow in a debug build).
fn rsa_key(alg: Algorithm) -> TestKey {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    let der = DER.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rand08::thread_rng(), 2048).expect("RSA key");
        key.to_pkcs1_der().expect("DER").as_bytes().to_vec()
    });
    let enc = EncodingKey::from_rsa_der(der);
    let mut jwk = Jwk::from_encoding_key(&enc, Algorithm::RS256).expect("JWK");
    jwk.common.key_algorithm = None;
    jwk.common.key_id = Some("rsa-1".into());
    TestKey {
        alg,
        kid: Some("rsa-1".into()),
        enc,
        jwk,
    }
}

fn jwks_json(keys: &[&TestKey]) -> String {
    serde_json::to_string(&JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    })
    .expect("JWKS")
}

fn claims(extra: Value) -> Value {
    let now = auth::now_secs();
    let mut c = json!({"iss": ISS, "aud": AUD, "sub": "alice", "iat": now, "exp": now + 300,
                       "raftgate_role": "admin"});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

fn sign(key: &TestKey, claims: &Value) -> String {
    let mut h = Header::new(key.alg);
    h.kid = key.kid.clone();
    jsonwebtoken::encode(&h, claims, &key.enc).expect("sign")
}

fn settings(source: Source) -> OidcSettings {
    OidcSettings {
        issuer: ISS.into(),
        audience: Some(AUD.into()),
        source,
        role_claim: "raftgate_role".into(),
        tenant_claim: "raftgate_tenant".into(),
        subject_claim: "sub".into(),
        min_refetch: Duration::from_secs(30),
    }
}

/// A verifier reading `keys` from a JWKS file in `dir`.
fn file_verifier(dir: &Path, keys: &[&TestKey]) -> OidcVerifier {
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks_json(keys)).expect("write JWKS");
    OidcVerifier::new(settings(Source::File(path))).expect("verifier")
}

fn status(r: Result<Claims, ApiError>) -> u16 {
    r.map(|_| 200).unwrap_or_else(|e| e.status.as_u16())
}

#[test]
fn good_tokens_map_to_claims() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ec, rs, ps) = (
        ec_key("ec-1"),
        rsa_key(Algorithm::RS256),
        rsa_key(Algorithm::PS256),
    );
    let v = file_verifier(dir.path(), &[&ec, &rs]);
    let c = v.verify(&sign(&ec, &claims(json!({})))).expect("ES256");
    assert_eq!(
        (c.sub.as_str(), c.role, c.tenant),
        ("alice", Role::Admin, None)
    );
    let ta = claims(json!({"raftgate_role": "tenant-admin", "raftgate_tenant": "acme"}));
    for key in [&rs, &ps] {
        let c = v.verify(&sign(key, &ta)).expect("RSA");
        assert_eq!(
            (c.role, c.tenant.as_deref()),
            (Role::TenantAdmin, Some("acme"))
        );
    }
    // Without `kid` the key is picked by algorithm; `aud` may be a list.
    let mut no_kid = ec_key("x");
    no_kid.kid = None;
    no_kid.jwk = ec.jwk.clone();
    no_kid.enc = ec.enc.clone();
    let list_aud = claims(json!({"aud": ["other", AUD], "raftgate_role": "viewer"}));
    assert_eq!(
        v.verify(&sign(&no_kid, &list_aud)).expect("no kid").role,
        Role::Viewer
    );
}

#[test]
fn wrong_issuer_audience_and_times_are_401() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = ec_key("k1");
    let v = file_verifier(dir.path(), &[&k]);
    let now = auth::now_secs();
    for (what, extra) in [
        ("issuer", json!({"iss": "https://evil.example.test"})),
        (
            "issuer list",
            json!({"iss": ["https://evil.example.test", ISS]}),
        ),
        ("audience", json!({"aud": "some-other-client"})),
        ("expired", json!({"exp": now - 120})),
        ("not yet valid", json!({"nbf": now + 600})),
    ] {
        let e = v.verify(&sign(&k, &claims(extra))).expect_err(what);
        assert_eq!((e.status.as_u16(), e.code), (401, "unauthorized"), "{what}");
    }
    let mut no_aud = claims(json!({}));
    no_aud.as_object_mut().expect("object").remove("aud");
    assert_eq!(status(v.verify(&sign(&k, &no_aud))), 401);
    // Within the leeway an expired token still passes (clock skew).
    assert_eq!(
        status(v.verify(&sign(&k, &claims(json!({"exp": now - 5}))))),
        200
    );
}

#[test]
fn unknown_kid_and_foreign_signatures_are_401() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = ec_key("k1");
    let v = file_verifier(dir.path(), &[&k]);
    let e = v
        .verify(&sign(&ec_key("k2"), &claims(json!({}))))
        .expect_err("kid");
    assert_eq!(e.status.as_u16(), 401);
    assert!(e.message.contains("k2"), "{}", e.message);
    // Same kid, another private key: the signature does not verify.
    assert_eq!(
        status(v.verify(&sign(&ec_key("k1"), &claims(json!({}))))),
        401
    );
    let mut t = sign(&k, &claims(json!({})));
    t.replace_range(t.len() - 4.., "AAAA");
    assert_eq!(status(v.verify(&t)), 401);
}

#[test]
fn alg_none_and_hmac_with_the_public_key_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = ec_key("k1");
    let v = file_verifier(dir.path(), &[&k]);
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "k1"})),
        b64(&claims(json!({})))
    );
    assert_eq!(status(v.verify(&none)), 401);
    assert!(
        !is_external(&none),
        "an unparsable header goes to the cluster verifier"
    );
    // The classic confusion attack: HS256 keyed with the provider's public key.
    let jwk = serde_json::to_value(&k.jwk).expect("jwk");
    let x = jwk["x"].as_str().expect("x").to_string();
    for secret in [x.as_bytes().to_vec(), jwks_json(&[&k]).into_bytes()] {
        let hs = TestKey {
            alg: Algorithm::HS256,
            kid: Some("k1".into()),
            enc: EncodingKey::from_secret(&secret),
            jwk: k.jwk.clone(),
        };
        let t = sign(&hs, &claims(json!({})));
        assert!(!is_external(&t), "HS256 is the cluster's");
        let e = v.verify(&t).expect_err("HS256 refused");
        assert_eq!(e.status.as_u16(), 401);
        assert!(e.message.contains("HS256"), "{}", e.message);
    }
    assert!(is_external(&sign(&k, &claims(json!({})))));
}

#[test]
fn roles_and_tenants_map_or_403() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = ec_key("k1");
    let v = file_verifier(dir.path(), &[&k]);
    for (extra, want) in [
        (json!({"raftgate_role": "tenant-admin"}), 403),
        (
            json!({"raftgate_role": "tenant-admin", "raftgate_tenant": ""}),
            403,
        ),
        (json!({"raftgate_role": "superuser"}), 403),
        (json!({"raftgate_role": null}), 403),
        (json!({"raftgate_role": ["admin", "viewer"]}), 403),
        (json!({"raftgate_role": ["offline_access", "viewer"]}), 200),
        (json!({"raftgate_role": 7}), 403),
        (json!({"sub": null}), 401),
        (json!({"sub": "x".repeat(MAX_CLAIM_LEN + 1)}), 401),
    ] {
        assert_eq!(
            status(v.verify(&sign(&k, &claims(extra.clone())))),
            want,
            "{extra}"
        );
    }
    // Keycloak style: roles nested in `realm_access.roles`, subject from another claim.
    let path = dir.path().join("jwks.json");
    let kc = OidcVerifier::new(OidcSettings {
        role_claim: "realm_access.roles".into(),
        subject_claim: "preferred_username".into(),
        ..settings(Source::File(path))
    })
    .expect("verifier");
    let t = sign(
        &k,
        &claims(
            json!({"realm_access": {"roles": ["uma_authorization", "tenant-admin"]},
                        "preferred_username": "bob", "raftgate_tenant": "acme"}),
        ),
    );
    let c = kc.verify(&t).expect("keycloak claims");
    assert_eq!(
        (c.sub.as_str(), c.role, c.tenant.as_deref()),
        ("bob", Role::TenantAdmin, Some("acme"))
    );
}

/// Rewrites the JWKS file with a later mtime, so the change is seen even when the
/// file system's clock granularity is coarse.
fn rewrite(path: &Path, text: &str, bump_secs: u64) {
    std::fs::write(path, text).expect("write");
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    f.set_modified(SystemTime::now() + Duration::from_secs(bump_secs))
        .expect("mtime");
}

#[test]
fn jwks_file_rotation_is_picked_up_and_bad_files_keep_the_last_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (ec_key("a"), ec_key("b"));
    let v = file_verifier(dir.path(), &[&a]);
    let (ta, tb) = (sign(&a, &claims(json!({}))), sign(&b, &claims(json!({}))));
    assert_eq!((status(v.verify(&ta)), status(v.verify(&tb))), (200, 401));
    let path = dir.path().join("jwks.json");
    rewrite(&path, &jwks_json(&[&b]), 10);
    assert_eq!((status(v.verify(&ta)), status(v.verify(&tb))), (401, 200));
    rewrite(
        &path,
        "{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}",
        20,
    );
    assert_eq!(status(v.verify(&tb)), 200, "an HMAC-only set is refused");
    rewrite(&path, "not json", 30);
    assert_eq!(status(v.verify(&tb)), 200, "garbage keeps the last set");
    std::fs::remove_file(&path).expect("rm");
    assert_eq!(
        status(v.verify(&tb)),
        200,
        "a vanished file keeps the last set"
    );
}

#[test]
fn jwks_parsing_skips_unusable_keys() {
    let ec = ec_key("sig");
    let mut enc_use = serde_json::to_value(&ec_key("enc").jwk).expect("jwk");
    enc_use["use"] = json!("enc");
    let mut doc = serde_json::to_value(JwkSet {
        keys: vec![ec.jwk.clone()],
    })
    .expect("set");
    let keys = doc["keys"].as_array_mut().expect("keys");
    keys.push(enc_use);
    keys.push(json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}));
    keys.push(json!({"kty": "weird"}));
    let parsed = jwks::parse(doc.to_string().as_bytes()).expect("parse");
    let ids: Vec<_> = parsed
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert_eq!(ids, vec!["sig".to_string()]);
    assert!(jwks::parse(b"{\"keys\": []}").is_err());
    assert!(jwks::parse(&vec![b' '; jwks::MAX_JWKS_BYTES + 1]).is_err());
    assert_eq!(jwks::ttl_from(None), jwks::DEFAULT_TTL);
    assert_eq!(
        jwks::ttl_from(Some("public, max-age=900")),
        Duration::from_secs(900)
    );
    assert_eq!(jwks::ttl_from(Some("max-age=1")), jwks::MIN_TTL);
    assert_eq!(jwks::ttl_from(Some("max-age=99999999")), jwks::MAX_TTL);
    assert_eq!(jwks::ttl_from(Some("no-store")), jwks::MIN_TTL);
}

/// A one-route HTTP server answering every request with the current body (or closing
/// the connection when the body is `None`); counts requests.
struct JwksServer {
    url: String,
    body: Arc<Mutex<Option<String>>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

async fn jwks_server(body: String) -> JwksServer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
    let body = Arc::new(Mutex::new(Some(body)));
    let hits = Arc::new(AtomicUsize::new(0));
    let (b, h) = (body.clone(), hits.clone());
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let current = b.lock().expect("lock").clone();
            if let Some(text) = current {
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=3600\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        }
    });
    JwksServer {
        url,
        body,
        hits,
        task,
    }
}

#[tokio::test]
async fn jwks_url_is_cached_refetched_for_new_kids_and_survives_an_outage() {
    let (a, b, c) = (ec_key("a"), ec_key("b"), ec_key("c"));
    let server = jwks_server(jwks_json(&[&a])).await;
    let v = OidcVerifier::new(OidcSettings {
        min_refetch: Duration::from_secs(1),
        ..settings(Source::Url(server.url.clone()))
    })
    .expect("verifier");
    let check = |t: &str| status(v.verify(t));
    let (ta, tb, tc) = (
        sign(&a, &claims(json!({}))),
        sign(&b, &claims(json!({}))),
        sign(&c, &claims(json!({}))),
    );
    assert_eq!(check(&ta), 401, "nothing fetched before prepare");
    v.prepare(&ta).await;
    assert_eq!(check(&ta), 200);
    for _ in 0..5 {
        v.prepare(&ta).await;
    }
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        1,
        "cached (max-age 3600)"
    );
    // Rotation: the server now publishes b. Within min_refetch an unknown kid waits.
    *server.body.lock().expect("lock") = Some(jwks_json(&[&b]));
    v.prepare(&tb).await;
    assert_eq!(check(&tb), 401);
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "rate limited");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    v.prepare(&tb).await;
    assert_eq!((check(&tb), check(&ta)), (200, 401));
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    // The server fails: the cached set keeps working, a new kid stays unknown.
    *server.body.lock().expect("lock") = None;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    v.prepare(&tc).await;
    assert_eq!(server.hits.load(Ordering::SeqCst), 3);
    assert_eq!((check(&tb), check(&tc)), (200, 401));
    server.task.abort();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    v.prepare(&tc).await;
    assert_eq!(
        check(&tb),
        200,
        "server gone: the cached set still verifies"
    );
}

#[test]
fn settings_are_validated_naming_the_key() {
    let base = NodeConfig {
        oidc_issuer: Some(ISS.into()),
        oidc_jwks_url: Some("https://idp.example.test/certs".into()),
        ..NodeConfig::default()
    };
    let s = OidcSettings::from_config(&base).expect("ok").expect("on");
    assert_eq!(
        (
            s.role_claim.as_str(),
            s.tenant_claim.as_str(),
            s.subject_claim.as_str()
        ),
        ("raftgate_role", "raftgate_tenant", "sub")
    );
    assert_eq!(
        OidcSettings::from_config(&NodeConfig::default()).expect("off"),
        None
    );
    let cases = [
        (
            "oidc_audience",
            NodeConfig {
                oidc_issuer: None,
                oidc_jwks_url: None,
                oidc_audience: Some("a".into()),
                ..base.clone()
            },
        ),
        (
            "oidc_jwks_file",
            NodeConfig {
                oidc_jwks_file: Some("/k.json".into()),
                ..base.clone()
            },
        ),
        (
            "oidc_jwks_url",
            NodeConfig {
                oidc_jwks_url: None,
                ..base.clone()
            },
        ),
        (
            "oidc_jwks_url",
            NodeConfig {
                oidc_jwks_url: Some("http://idp.example.test/certs".into()),
                ..base.clone()
            },
        ),
        (
            "oidc_issuer",
            NodeConfig {
                oidc_issuer: Some(" ".into()),
                ..base.clone()
            },
        ),
        (
            "oidc_role_claim",
            NodeConfig {
                oidc_role_claim: "".into(),
                ..base.clone()
            },
        ),
        (
            "oidc_jwks_min_refetch_secs",
            NodeConfig {
                oidc_jwks_min_refetch_secs: 0,
                ..base.clone()
            },
        ),
    ];
    for (key, c) in cases {
        assert_eq!(c.validate().expect_err(key).key, key);
    }
    let local = NodeConfig {
        oidc_jwks_url: Some("http://127.0.0.1:8000/certs".into()),
        ..base.clone()
    };
    local.validate().expect("http on loopback is fine");
    let missing = NodeConfig {
        oidc_jwks_url: None,
        oidc_jwks_file: Some("/nonexistent/jwks.json".into()),
        ..base
    };
    missing.validate().expect("existence is checked at start");
    let e = OidcVerifier::from_config(&missing)
        .err()
        .expect("unreadable file");
    assert_eq!(e.key, "oidc_jwks_file");
}

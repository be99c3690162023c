//! Authentication: API keys from every place a key may come from (and never passed on),
//! every key failure, and JWTs (HS256, RS256, ES256) with every validation failure.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::AUTHORIZATION;
use serde_json::{json, Value};

use crate::{echo, expect_error, now_ms, seen, send, serial, upstream, upstream_body, Gateway};

/// Test vector: a 2048-bit RSA key pair (generated once with `openssl genrsa`).
const RSA_PRIVATE_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAq87FG+vIidCwn7fOVXVvXa9GI2SOIloDBOco5bbAl87tGaJy
8VealFSS6swUisX5nUmdxbTNvS/YewiI1tIzBIaF3+zjs+Nmpeqxjs7jlApCs+Ju
73/y4A0cl3wUrC8SHznfJVxEpBtPbLuyNLHA1q/tVD/kvGL2VYbURxuJEpc/9rHj
sPB1KMPfYys8PV9CzKoixjhJ3/+oggYwhqKYQvdlEmlQrNvFANaq94qb3TgZMiR/
YuaoKEGMsApoe/Ic3Ccje1G7hxdKn2P3dS4sgjicObptLDNodKCxFWXoFQIxZmHq
XE/VF7JiimeLUjAkfKod9c/TBQ0QqwdWIra7iwIDAQABAoIBABJLXbTH6h42sSAI
v/lcnGOy7rqFEhd5Uzn57WJsj9x6ZcflguzNAcJKsSw8V/Gg/B/x/1FWm9PJ3PjY
401Qq6sPMgEypdp5W+xN7eNBh30zjH/AHET3cGLIMqO0zDS7fGgDzw2Y4hxBZjcz
U1oGFX0m1ZQzi4U92nIn/cGmnnVypY+QMcvDirh1XjQojHL8xYkK2Tl6NRx2+KO/
sm6uAQdYnnrIt3EVUXVvlR53No3gkewKi3wwKJERptjhf1GSm2PftdNQpPHA4uF0
UT1V7MprS276v0sX+nLB0YDdovTR56iB85BTvlu3fsESEJdQ7EuozQezajKNRv61
elOj5BkCgYEA7jzU3TyRNQ9RSVYtiAZW/jIssYsq8NwN5RMcnsa59GozF0+i31Xr
meidM3whTMS5iBlAyjpCefvpvFudvDDoVeUuNOZQ3U3yCcQ6ldDyqful/gqJ0QGd
d7izR8I+FQ8s6EhgjCLBTDqOpwB0vk49qNJfQO1brjWtHJtgjZOaWLkCgYEAuJ4C
wo3IIXyL5GgyYN4MAkkS65Qa9Er66Yo6zLScxQhzYpB0qmQGXFVuLgU4qkVMqlmj
XN6zAn4RMzE2pfsbNBnDedV+wiUyEcvWuZq5qW9UiRS3Nlr/rkWvS7IWwR9e0KsN
O5W23KuMTTo0Ly+6qgM2DnuuMzpmz8NCAsprzGMCgYEAnSIuXEXImLCjsrVOjrtv
wXWimO/rwLXDzGXQqMD2gclSLXvvN1NadEdC+GRVKmdO3/+YBkpq8j4/qmbbIPc5
Jv5kfauzhmQU0nBFG++XPpqmn2qf/+UK0Z5XUWtCu20o94RVediqmfa9hFT+q067
yJAJF6/2mm744Tdyda73TLECgYEAns4c5an8OwHde+49V6HphpXBFq/ht74/s2Ba
T/gU2k/4oRJNqLw91HMQQbnwEldmKSrOIXbXWQ+EUBrHPWOQ9PIsecKyNOK1/STw
Ydu8VQkVGI2fQ7xnL0t2DJD2jc0kTC63RUf1ckCGgW/Nr8FIujHk7/Rn1l0oTxNQ
1wG0VK0CgYBAsCbnIsE7Q/i0FUXdNtbII4AafOIjoS2eWS5Vem++Kcn8m8azekLX
2P/OPbif67smqArL/Q+OMcACguZLsaIiR7LGe5DSOUZ+BXliMdc8SKPKE8PQ7I0I
eZ85qDxmqWEzc+btWDx+5VVHDWEqz7TJd1bD3hDey0Ig0kpgcg0gVg==
-----END RSA PRIVATE KEY-----
";

const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAq87FG+vIidCwn7fOVXVv
Xa9GI2SOIloDBOco5bbAl87tGaJy8VealFSS6swUisX5nUmdxbTNvS/YewiI1tIz
BIaF3+zjs+Nmpeqxjs7jlApCs+Ju73/y4A0cl3wUrC8SHznfJVxEpBtPbLuyNLHA
1q/tVD/kvGL2VYbURxuJEpc/9rHjsPB1KMPfYys8PV9CzKoixjhJ3/+oggYwhqKY
QvdlEmlQrNvFANaq94qb3TgZMiR/YuaoKEGMsApoe/Ic3Ccje1G7hxdKn2P3dS4s
gjicObptLDNodKCxFWXoFQIxZmHqXE/VF7JiimeLUjAkfKod9c/TBQ0QqwdWIra7
iwIDAQAB
-----END PUBLIC KEY-----
";

/// Tenant `t1`, consumer `c1` with a key, upstream `u` and a route `id` at `path`.
async fn setup(
    gw: &Gateway,
    routes: &[(&str, &str, Value)],
) -> (raftgate_chaos::TestUpstream, String) {
    let server = upstream("auth").await;
    gw.create("upstreams", upstream_body("u", &[&server])).await;
    gw.tenant("t1").await;
    let key = gw.consumer_with_key("c1", "t1").await;
    for (id, path, policy) in routes {
        gw.create(
            "routes",
            json!({"id": id, "path": path, "target": {"upstream": "u"}, "policies": [policy]}),
        )
        .await;
    }
    (server, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_from_bearer_header_custom_header_and_query_never_reach_the_upstream() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let key_auth = json!({"key_auth": {"header": "x-key", "query": "apikey"}});
    let (_server, key) = setup(&gw, &[("k", "/k", key_auth)]).await;

    let cases = [
        (
            "Authorization: Bearer",
            gw.get("/k").header(AUTHORIZATION, format!("Bearer {key}")),
        ),
        ("x-api-key", gw.get("/k").header("x-api-key", &key)),
        ("custom header x-key", gw.get("/k").header("x-key", &key)),
        (
            "query apikey",
            gw.get(&format!("/k?keep=1&apikey={key}&also=2")),
        ),
    ];
    for (how, req) in cases {
        // Client-sent identity headers must be replaced, not trusted.
        let req = req
            .header("x-consumer-id", "forged")
            .header("x-tenant-id", "forged");
        let e = echo(how, send(how, req).await).await;
        assert!(
            !e.to_string().contains(&key),
            "{how}: the key reached the upstream: {e}"
        );
        for h in ["authorization", "x-api-key", "x-key"] {
            assert_eq!(seen(&e, h), None, "{how}: the upstream saw {h}: {e}");
        }
        assert_eq!(seen(&e, "x-consumer-id"), Some("c1"), "{how}: {e}");
        assert_eq!(seen(&e, "x-tenant-id"), Some("t1"), "{how}: {e}");
        if how.starts_with("query") {
            assert_eq!(
                e["query"], "keep=1&also=2",
                "{how}: other parameters must stay: {e}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_failures_missing_unknown_expired_deleted_and_disabled_consumer() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let (_server, key) = setup(&gw, &[("k", "/k", json!({"key_auth": {}}))]).await;
    let with_key = |k: &str| gw.get("/k").header("x-api-key", k);

    expect_error(
        "no key",
        send("no key", gw.get("/k")).await,
        401,
        "unauthorized",
    )
    .await;
    let unknown = "rg_000000000000000000000000000000000000000000000000";
    expect_error(
        "unknown key",
        send("unknown", with_key(unknown)).await,
        401,
        "unauthorized",
    )
    .await;
    let bearer = gw.get("/k").header(AUTHORIZATION, "Bearer not-a-key");
    expect_error(
        "unknown bearer",
        send("bearer", bearer).await,
        401,
        "unauthorized",
    )
    .await;

    let expired = gw
        .new_key("c1", json!({"expires_at_ms": now_ms() - 1000}))
        .await;
    expect_error(
        "expired key",
        send("expired", with_key(&expired)).await,
        401,
        "unauthorized",
    )
    .await;
    let later = gw
        .new_key(
            "c1",
            json!({"id": "later", "expires_at_ms": now_ms() + 3_600_000}),
        )
        .await;
    echo(
        "key expiring in an hour",
        send("later", with_key(&later)).await,
    )
    .await;
    gw.delete("api_keys", "later").await;
    expect_error(
        "deleted key",
        send("deleted", with_key(&later)).await,
        401,
        "unauthorized",
    )
    .await;

    echo("valid key", send("valid", with_key(&key)).await).await;
    gw.update(
        "consumers",
        "c1",
        json!({"id": "c1", "tenant": "t1", "enabled": false}),
    )
    .await;
    expect_error(
        "disabled consumer",
        send("disabled", with_key(&key)).await,
        403,
        "consumer_disabled",
    )
    .await;
    gw.create(
        "consumers",
        json!({"id": "c2", "tenant": "t1", "enabled": false}),
    )
    .await;
    let k2 = gw.new_key("c2", json!({})).await;
    expect_error(
        "consumer created disabled",
        send("c2", with_key(&k2)).await,
        403,
        "consumer_disabled",
    )
    .await;
    gw.update(
        "consumers",
        "c1",
        json!({"id": "c1", "tenant": "t1", "enabled": true}),
    )
    .await;
    echo(
        "re-enabled consumer",
        send("re-enabled", with_key(&key)).await,
    )
    .await;
}

fn token(alg: Algorithm, key: &EncodingKey, claims: Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), &claims, key).expect("signing a test JWT")
}

fn claims(sub: Option<&str>, iss: &str, aud: &str, exp_offset_s: i64) -> Value {
    let now = (now_ms() / 1000) as i64;
    let mut c = json!({"iss": iss, "aud": aud, "iat": now, "exp": now + exp_offset_s});
    if let Some(sub) = sub {
        c["sub"] = json!(sub);
    }
    c
}

/// The same token with the first character of its signature changed (all six bits of
/// that character are signature bits, unlike the last one's).
fn tamper(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').expect("a JWT has three parts");
    let first = if sig.starts_with('A') { 'B' } else { 'A' };
    format!("{head}.{first}{}", &sig[1..])
}

/// GET `path` with `Authorization: Bearer token`.
async fn call(gw: &Gateway, path: &str, token: &str) -> reqwest::Response {
    send(
        path,
        gw.get(path)
            .header(AUTHORIZATION, format!("Bearer {token}")),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_hs256_accepts_a_valid_token_and_refuses_every_bad_one() {
    let _serial = serial().await;
    // HS256 secrets are stored encrypted: the node needs a secret key (docs/security.md).
    let gw = Gateway::start_with(raftgate_chaos::ClusterBuilder::new(1).env(
        "RAFTGATE_SECRET_KEY",
        "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2",
    ))
    .await;
    let secret = "hs256-test-secret-of-a-decent-length";
    let jwt = json!({"jwt_auth": {"algorithm": "HS256", "secret": secret, "issuer": "https://idp.test",
        "audience": "gateway", "consumer_claim": "sub", "leeway_s": 0}});
    let (_server, _key) = setup(&gw, &[("j", "/j", jwt)]).await;
    let good_key = EncodingKey::from_secret(secret.as_bytes());
    let hs = |c: Value| token(Algorithm::HS256, &good_key, c);

    let ok = hs(claims(Some("c1"), "https://idp.test", "gateway", 600));
    let e = echo("valid HS256 token", call(&gw, "/j", &ok).await).await;
    assert_eq!(seen(&e, "x-consumer-id"), Some("c1"), "{e}");
    assert_eq!(seen(&e, "x-tenant-id"), Some("t1"), "{e}");

    let other_key = EncodingKey::from_secret(b"another-secret-entirely-different");
    let tampered = tamper(&ok);
    for (what, t) in [
        (
            "expired",
            hs(claims(Some("c1"), "https://idp.test", "gateway", -60)),
        ),
        (
            "wrong issuer",
            hs(claims(Some("c1"), "https://evil.test", "gateway", 600)),
        ),
        (
            "wrong audience",
            hs(claims(Some("c1"), "https://idp.test", "other", 600)),
        ),
        (
            "signed with another secret",
            token(
                Algorithm::HS256,
                &other_key,
                claims(Some("c1"), "https://idp.test", "gateway", 600),
            ),
        ),
        ("tampered signature", tampered),
        (
            "unknown consumer",
            hs(claims(Some("ghost"), "https://idp.test", "gateway", 600)),
        ),
        (
            "no consumer claim",
            hs(claims(None, "https://idp.test", "gateway", 600)),
        ),
        ("not a JWT", "garbage".to_string()),
    ] {
        expect_error(what, call(&gw, "/j", &t).await, 401, "unauthorized").await;
    }
    expect_error(
        "no token",
        send("no token", gw.get("/j")).await,
        401,
        "unauthorized",
    )
    .await;

    // A disabled consumer named by a valid token is refused as such.
    gw.update(
        "consumers",
        "c1",
        json!({"id": "c1", "tenant": "t1", "enabled": false}),
    )
    .await;
    expect_error(
        "disabled consumer",
        call(&gw, "/j", &ok).await,
        403,
        "consumer_disabled",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_rs256_and_es256_with_public_keys() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let ec = rcgen::KeyPair::generate().expect("P-256 key pair");
    let ec_other = rcgen::KeyPair::generate().expect("P-256 key pair");
    let rs = json!({"jwt_auth": {"algorithm": "RS256", "public_key_pem": RSA_PUBLIC_PEM, "leeway_s": 0}});
    let es = json!({"jwt_auth": {"algorithm": "ES256", "public_key_pem": ec.public_key_pem(),
        "consumer_claim": "client_id", "issuer": "es-issuer", "leeway_s": 0}});
    let (_server, _key) = setup(&gw, &[("rs", "/rs", rs), ("es", "/es", es)]).await;

    let rsa_key = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).expect("RSA test key");
    let now = (now_ms() / 1000) as i64;
    let rs_ok = token(
        Algorithm::RS256,
        &rsa_key,
        json!({"sub": "c1", "exp": now + 600}),
    );
    let e = echo("valid RS256 token", call(&gw, "/rs", &rs_ok).await).await;
    assert_eq!(seen(&e, "x-consumer-id"), Some("c1"), "{e}");
    let rs_expired = token(
        Algorithm::RS256,
        &rsa_key,
        json!({"sub": "c1", "exp": now - 60}),
    );
    expect_error(
        "expired RS256",
        call(&gw, "/rs", &rs_expired).await,
        401,
        "unauthorized",
    )
    .await;
    expect_error(
        "tampered RS256",
        call(&gw, "/rs", &tamper(&rs_ok)).await,
        401,
        "unauthorized",
    )
    .await;
    // An HS256 token "signed" with the public key (algorithm confusion) must not pass.
    let confused = token(
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes()),
        json!({"sub": "c1", "exp": now + 600}),
    );
    expect_error(
        "HS256 on an RS256 route",
        call(&gw, "/rs", &confused).await,
        401,
        "unauthorized",
    )
    .await;

    let ec_key = EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).expect("EC key");
    let ec_other_key =
        EncodingKey::from_ec_pem(ec_other.serialize_pem().as_bytes()).expect("EC key");
    let es_claims = json!({"client_id": "c1", "iss": "es-issuer", "exp": now + 600});
    let e = echo(
        "valid ES256 token",
        call(
            &gw,
            "/es",
            &token(Algorithm::ES256, &ec_key, es_claims.clone()),
        )
        .await,
    )
    .await;
    assert_eq!(seen(&e, "x-consumer-id"), Some("c1"), "{e}");
    for (what, t) in [
        (
            "ES256 signed by another key",
            token(Algorithm::ES256, &ec_other_key, es_claims.clone()),
        ),
        (
            "ES256 wrong issuer",
            token(
                Algorithm::ES256,
                &ec_key,
                json!({"client_id": "c1", "iss": "x", "exp": now + 600}),
            ),
        ),
        (
            "ES256 without client_id",
            token(
                Algorithm::ES256,
                &ec_key,
                json!({"sub": "c1", "iss": "es-issuer", "exp": now + 600}),
            ),
        ),
        (
            "ES256 unknown consumer",
            token(
                Algorithm::ES256,
                &ec_key,
                json!({"client_id": "nobody", "iss": "es-issuer", "exp": now + 600}),
            ),
        ),
    ] {
        expect_error(what, call(&gw, "/es", &t).await, 401, "unauthorized").await;
    }
}

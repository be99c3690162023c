//! TLS: the data-plane listener picks certificates by SNI and reloads them on a config
//! change without a restart; TLS to upstreams is verified against a configured CA.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Version;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use raftgate_chaos::upstream::{ca_and_leaf, self_signed};
use raftgate_chaos::{ClusterBuilder, TestUpstream, UpstreamOptions};

use crate::{data_client, echo, eventually, send, serial, upstream, upstream_body, Gateway};

/// A data-encryption key for certificate private keys (any 32 bytes, hex).
const SECRET_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

async fn tls_gateway() -> Gateway {
    Gateway::start_with(
        ClusterBuilder::new(1)
            .arg("--https-addr")
            .arg("127.0.0.1:0")
            .env("RAFTGATE_SECRET_KEY", SECRET_KEY),
    )
    .await
}

/// The TLS listener's address from `node.json` (`https_addr`).
async fn https_addr(gw: &Gateway) -> SocketAddr {
    eventually(
        "node.json to name https_addr",
        Duration::from_secs(10),
        || async {
            let v = gw.node_json();
            v.get("https_addr")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("node.json: {v}"))
        },
    )
    .await
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("a PEM certificate")
        .to_vec()
}

/// A TLS handshake to `addr` with `sni`, trusting only `roots`: the leaf certificate the
/// server presented (DER) and the negotiated ALPN protocol.
async fn handshake(
    addr: SocketAddr,
    sni: &str,
    roots: &[&str],
) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
    let mut store = rustls::RootCertStore::empty();
    for pem in roots {
        store
            .add(CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let tls = tokio::time::timeout(
        Duration::from_secs(5),
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| format!("handshake: {e}"))?;
    let conn = tls.get_ref().1;
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or("no peer certificate")?;
    Ok((leaf, conn.alpn_protocol().map(<[u8]>::to_vec)))
}

/// Waits until `sni` is served `want_pem`.
async fn served(addr: SocketAddr, sni: &str, want_pem: &str, within: Duration) -> Duration {
    let want = der(want_pem);
    let t0 = Instant::now();
    eventually(
        &format!("{sni} to be served its certificate"),
        within,
        || async {
            match handshake(addr, sni, &[want_pem]).await {
                Ok((leaf, _)) if leaf == want => Ok(()),
                Ok(_) => Err("another certificate".to_string()),
                Err(e) => Err(e),
            }
        },
    )
    .await;
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_updates_reload_without_restart() {
    let _serial = serial().await;
    let gw = tls_gateway().await;
    let addr = https_addr(&gw).await;
    let server = upstream("tls").await;
    gw.create("upstreams", upstream_body("u", &[&server])).await;
    gw.create(
        "routes",
        json!({"id": "all", "path": "/", "target": {"upstream": "u"}}),
    )
    .await;
    let (a_cert, a_key) = self_signed(&["a.test"]);
    let (b_cert, b_key) = self_signed(&["b.test"]);
    let (w_cert, w_key) = self_signed(&["*.w.test"]);
    for (id, sni, cert, key) in [
        ("ca", "a.test", &a_cert, &a_key),
        ("cb", "b.test", &b_cert, &b_key),
        ("cw", "*.w.test", &w_cert, &w_key),
    ] {
        gw.create(
            "certificates",
            json!({"id": id, "snis": [sni], "cert_pem": cert, "key_pem": key}),
        )
        .await;
    }

    // Written and acknowledged: served at once (the bound only absorbs scheduling).
    served(addr, "a.test", &a_cert, Duration::from_secs(2)).await;
    let all = [a_cert.as_str(), b_cert.as_str(), w_cert.as_str()];
    for (sni, want) in [
        ("a.test", &a_cert),
        ("b.test", &b_cert),
        ("x.w.test", &w_cert),
    ] {
        let (leaf, alpn) = handshake(addr, sni, &all)
            .await
            .unwrap_or_else(|e| panic!("SNI {sni}: {e}"));
        assert!(
            leaf == der(want),
            "SNI {sni}: the wrong certificate was served"
        );
        assert_eq!(
            alpn.as_deref(),
            Some(&b"h2"[..]),
            "SNI {sni}: ALPN should pick h2"
        );
    }
    assert!(
        handshake(addr, "b.test", &[&a_cert]).await.is_err(),
        "a client trusting only a.test's certificate must refuse b.test's"
    );

    // Requests over TLS: HTTP/2 by ALPN, and HTTP/1.1.
    for (what, builder) in [
        ("h2", data_client()),
        ("http/1.1", data_client().http1_only()),
    ] {
        let client = builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(a_cert.as_bytes()).expect("cert"))
            .resolve("a.test", addr)
            .build()
            .expect("client");
        let resp = send(
            what,
            client.get(format!("https://a.test:{}/tls-echo", addr.port())),
        )
        .await;
        let want = if what == "h2" {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        assert_eq!(resp.version(), want, "{what}");
        let e = echo(what, resp).await;
        assert_eq!(e["headers"]["x-forwarded-proto"], "https", "{what}: {e}");
    }

    // Hot reload: a new certificate for a.test, same process, same port.
    let pid = gw.pid();
    let (a2_cert, a2_key) = self_signed(&["a.test"]);
    gw.update(
        "certificates",
        "ca",
        json!({"id": "ca", "snis": ["a.test"], "cert_pem": a2_cert, "key_pem": a2_key}),
    )
    .await;
    let took = served(addr, "a.test", &a2_cert, Duration::from_secs(2)).await;
    eprintln!("certificate reload served after {took:?}");
    assert_eq!(gw.pid(), pid, "the node restarted");
    assert_eq!(https_addr(&gw).await, addr);
    let (leaf, _) = handshake(addr, "b.test", &all)
        .await
        .expect("b.test still served");
    assert!(
        leaf == der(&b_cert),
        "b.test's certificate changed with a.test's update"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_is_verified_against_the_configured_ca() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let pki = ca_and_leaf(&["upstream.test", "127.0.0.1"]);
    let server =
        TestUpstream::start(UpstreamOptions::named("tls-up").tls(&pki.cert_pem, &pki.key_pem))
            .await
            .expect("TLS test upstream");
    let (other_ca, _) = self_signed(&["someone-else.test"]);
    let cases: [(&str, Value, Option<&str>); 6] = [
        ("ok", json!({"ca_pem": pki.ca_cert_pem}), Some("HTTP/1.1")),
        (
            "named",
            json!({"ca_pem": pki.ca_cert_pem, "server_name": "upstream.test"}),
            Some("HTTP/1.1"),
        ),
        ("noverify", json!({"verify": false}), Some("HTTP/1.1")),
        ("noca", json!({"verify": true}), None),
        ("wrongca", json!({"ca_pem": other_ca}), None),
        (
            "wrongname",
            json!({"ca_pem": pki.ca_cert_pem, "server_name": "wrong.test"}),
            None,
        ),
    ];
    for (id, tls, _) in &cases {
        let mut u = upstream_body(id, &[&server]);
        u["scheme"] = json!("https");
        u["tls"] = tls.clone();
        u["retries"] = json!({"attempts": 0});
        gw.create("upstreams", u).await;
        gw.create(
            "routes",
            json!({"id": id, "path": format!("/{id}"), "target": {"upstream": id}}),
        )
        .await;
    }
    let mut h2 = upstream_body("h2", &[&server]);
    h2["scheme"] = json!("https");
    h2["protocol"] = json!("http2");
    h2["tls"] = json!({"ca_pem": pki.ca_cert_pem});
    gw.create("upstreams", h2).await;
    gw.create(
        "routes",
        json!({"id": "h2", "path": "/h2", "target": {"upstream": "h2"}}),
    )
    .await;

    let mut reached = 0;
    for (id, _, version) in cases
        .iter()
        .chain([("h2", json!(null), Some("HTTP/2.0"))].iter())
    {
        let path = format!("/{id}");
        let resp = send(&path, gw.get(&path)).await;
        match version {
            Some(v) => {
                let e = echo(&path, resp).await;
                assert_eq!(e["version"], *v, "{path}: {e}");
                reached += 1;
            }
            None => {
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                let code = body
                    .pointer("/error/code")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                assert!(
                    status == 502 && matches!(code, "upstream_unavailable" | "upstream_error"),
                    "{path}: verification must fail with 502: {status} {body}"
                );
            }
        }
    }
    assert_eq!(
        server.requests(),
        reached,
        "a request crossed a TLS session that should have failed"
    );
}

//! TLS 1.2+ with safe cipher suites only, on the Raft and admin ports, checked with an
//! independent client (`openssl s_client`): old protocol versions and non-AEAD or
//! non-forward-secret TLS 1.2 suites are refused, TLS 1.3 and ECDHE-GCM TLS 1.2 succeed.
//! Also: a fresh node with a join token initializes only for a caller presenting it.

use super::*;

/// Runs `openssl s_client` against `addr` with our node certificate and `extra` options;
/// true when the handshake completed.
fn handshake(addr: &str, pki: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-brief"])
        .arg("-CAfile")
        .arg(pki.join("ca.pem"))
        .arg("-cert")
        .arg(pki.join("n1.pem"))
        .arg("-key")
        .arg(pki.join("n1-key.pem"))
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text.contains("CONNECTION ESTABLISHED"), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tls12_and_13_with_aead_forward_secret_suites() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("openssl is not installed: protocol checks skipped");
        return;
    }
    let _guard = serial().await;
    let bin = binary_path().expect("raftgate binary");
    let root = tempfile::tempdir().expect("tempdir");
    let pki = root.path().join("pki");
    certs(&bin, &pki, &["n1=127.0.0.1"]);
    let mut env = tls_env(&pki, &pki, "n1");
    env.push(("RAFTGATE_JOIN_TOKEN".into(), JOIN_TOKEN.into()));
    env.push(("RAFTGATE_INSECURE".into(), "false".into()));
    let node = NodeProcess::start(&bin, &spec(root.path(), 1, env))
        .await
        .expect("node");

    // A fresh node with a join token initializes only for a caller presenting it.
    let http = https_client(&pki.join("ca.pem"));
    let init = format!("{}/admin/v1/cluster/init", node.info().admin_url);
    for (token, status, code) in [
        (None, StatusCode::UNAUTHORIZED, "join_token_required"),
        (
            Some("not-the-join-token-0000"),
            StatusCode::FORBIDDEN,
            "invalid_join_token",
        ),
    ] {
        let mut req = http.post(&init);
        if let Some(t) = token {
            req = req.header("x-raftgate-join-token", t);
        }
        let resp = req.send().await.expect("POST init");
        assert_eq!(resp.status(), status);
        let body: Value = resp.json().await.expect("JSON error");
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    let out = Command::new(&bin)
        .args(["cluster", "init", "--server", &node.info().admin_url])
        .arg("--ca-cert")
        .arg(pki.join("ca.pem"))
        .env("RAFTGATE_JOIN_TOKEN", JOIN_TOKEN)
        .output()
        .expect("raftgate cluster init");
    assert!(
        out.status.success(),
        "cluster init with the join token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let admin = AdminClient::with_http(&node.info().admin_url, http).with_token(&token);
    wait_voters(&admin, 1).await;
    let raft = node.info().raft_addr.clone();
    let admin = node
        .info()
        .admin_url
        .trim_start_matches("https://")
        .to_string();
    for addr in [&raft, &admin] {
        for (what, extra) in [
            ("TLS 1.3", vec!["-tls1_3"]),
            (
                "TLS 1.2 ECDHE-ECDSA-AES128-GCM",
                vec!["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
            ),
        ] {
            let (ok, text) = handshake(addr, &pki, &extra);
            assert!(ok, "{what} to {addr} must succeed: {text}");
        }
        for (what, extra) in [
            ("TLS 1.1", vec!["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
            ("TLS 1.0", vec!["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
            (
                "TLS 1.2 CBC",
                vec![
                    "-tls1_2",
                    "-cipher",
                    "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA",
                ],
            ),
            (
                "TLS 1.2 static RSA",
                vec!["-tls1_2", "-cipher", "AES128-GCM-SHA256:AES256-GCM-SHA384"],
            ),
        ] {
            let (ok, text) = handshake(addr, &pki, &extra);
            // By the server (an alert it sent), not by openssl declining to try.
            assert!(
                !ok && text.contains("alert"),
                "{what} to {addr} must be refused by the server: {text}"
            );
        }
    }
    drop(node);
}

//! Security defaults against real `raftgate serve` processes on loopback: mutual TLS on
//! the Raft port (certificates from `raftgate certs`), HTTPS admin, join tokens,
//! `bootstrap`, and the configuration errors around them. See docs/security.md.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use raftgate_chaos::process::{binary_path, NodeProcess, NodeSpec};
use raftgate_chaos::{wait, AdminClient, ClusterStatus, Read};
use reqwest::StatusCode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, MutexGuard};

#[path = "security/protocols.rs"]
mod protocols;
#[path = "security/rotation.rs"]
mod rotation;

const JOIN_TOKEN: &str = "test-join-token-0123456789abcdef";
/// The key-encryption key every secure-mode node of these tests shares.
const SECRET_KEY: &str = "6b1f0c3a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
const WAIT: Duration = Duration::from_secs(60);
/// The HTTP/2 client preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

static SERIAL: Mutex<()> = Mutex::const_new(());

/// One multi-process test at a time.
async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Runs `raftgate certs --out DIR --node ...` and insists it succeeds.
fn certs(bin: &Path, out: &Path, nodes: &[&str]) {
    let mut cmd = Command::new(bin);
    cmd.arg("certs").arg("--out").arg(out);
    for n in nodes {
        cmd.args(["--node", n]);
    }
    let o = cmd.output().expect("run raftgate certs");
    assert!(
        o.status.success(),
        "raftgate certs failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `RAFTGATE_TLS_*` for node `name` with the CA of `ca_dir` and the files of `dir`.
fn tls_env(ca_dir: &Path, dir: &Path, name: &str) -> Vec<(String, String)> {
    let p = |d: &Path, f: String| d.join(f).display().to_string();
    vec![
        ("RAFTGATE_TLS_CA".into(), p(ca_dir, "ca.pem".into())),
        ("RAFTGATE_TLS_CERT".into(), p(dir, format!("{name}.pem"))),
        ("RAFTGATE_TLS_KEY".into(), p(dir, format!("{name}-key.pem"))),
        ("RAFTGATE_SECRET_KEY".into(), SECRET_KEY.into()),
    ]
}

fn spec(root: &Path, id: u64, env: Vec<(String, String)>) -> NodeSpec {
    let dir = root.join(format!("node-{id}"));
    NodeSpec {
        node_id: id,
        data_dir: dir.join("data"),
        log_path: dir.join("node.log"),
        addrs: None,
        args: Vec::new(),
        env,
        gid: None,
        faketime_file: None,
    }
}

fn https_client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("read CA");
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"))
        .build()
        .expect("client")
}

async fn membership(client: &AdminClient) -> ClusterStatus {
    client.cluster_status().await.expect("cluster status")
}

async fn wait_voters(client: &AdminClient, n: usize) {
    wait::until(&format!("{n} voters"), WAIT, || {
        let c = client.clone();
        async move {
            let s = c.cluster_status().await.map_err(|e| e.to_string())?;
            let voters = s.nodes.iter().filter(|m| m.voter).count();
            // `reachable` comes from a NodeStatus RPC to each member: mTLS works both ways.
            let reachable = s.nodes.iter().all(|m| m.reachable);
            if voters == n && reachable && s.leader_id.is_some() {
                Ok(())
            } else {
                Err(format!("{voters} voters: {s:?}"))
            }
        }
    })
    .await
    .expect("voters");
}

/// Reads `DATA_DIR/admin-token`, waiting for bootstrap to write it.
async fn admin_token(data_dir: &Path) -> String {
    let path = data_dir.join("admin-token");
    wait::until("admin-token", WAIT, || {
        let text = std::fs::read_to_string(&path);
        async move {
            match text {
                Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
                Ok(_) => Err("empty".to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await
    .expect("bootstrap writes admin-token")
}

/// Three TLS nodes from `pki` (`n1`..`n3`): node 1 bootstraps, nodes 2 and 3 join it with
/// the join token alone. Returns the processes and the first admin token, once all
/// three are voters.
async fn tls_cluster(bin: &Path, root: &Path, pki: &Path) -> (Vec<NodeProcess>, String) {
    let token_env = ("RAFTGATE_JOIN_TOKEN".to_string(), JOIN_TOKEN.to_string());
    let mut env1 = tls_env(pki, pki, "n1");
    env1.push(token_env.clone());
    env1.push(("RAFTGATE_BOOTSTRAP".into(), "true".into()));
    let spec1 = spec(root, 1, env1);
    let n1 = NodeProcess::start(bin, &spec1).await.expect("node 1");
    let url1 = n1.info().admin_url.clone();
    let token = admin_token(&spec1.data_dir).await;
    let mut procs = vec![n1];
    for (id, name) in [(2, "n2"), (3, "n3")] {
        let mut env = tls_env(pki, pki, name);
        env.push(token_env.clone());
        env.push(("RAFTGATE_JOIN".into(), url1.clone()));
        procs.push(
            NodeProcess::start(bin, &spec(root, id, env))
                .await
                .expect("node"),
        );
    }
    let admin1 =
        AdminClient::with_http(&url1, https_client(&pki.join("ca.pem"))).with_token(&token);
    wait_voters(&admin1, 3).await;
    (procs, token)
}

/// Runs `raftgate serve` for `spec` (ports 0 on loopback), which must exit with a
/// refused join (not 0, not a config error) within [`WAIT`]; returns its output.
async fn expect_exit_failure(bin: &Path, spec: &NodeSpec) -> String {
    let (code, text) = run_to_exit(bin, spec).await;
    assert!(
        code.is_some_and(|c| c != 0 && c != 64),
        "exit {code:?}: {text}"
    );
    text
}

/// Runs `raftgate serve` for `spec`, which must exit within [`WAIT`]: (exit code, output).
async fn run_to_exit(bin: &Path, spec: &NodeSpec) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RAFTGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("serve")
        .args([
            "--node-id",
            &spec.node_id.to_string(),
            "--advertise-host",
            "127.0.0.1",
        ])
        .args(["--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .args(["--raft-addr", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&spec.data_dir)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spawn serve");
    let out = tokio::time::timeout(
        WAIT,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("the node exits instead of retrying forever")
    .expect("join")
    .expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.code(), text)
}

fn tls_client_config(ca: &Path, identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("CA") {
        roots.add(c.expect("CA cert")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut cfg = match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .expect("cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("cert PEM");
            let key = PrivateKeyDer::from_pem_file(key).expect("key");
            builder.with_client_auth_cert(chain, key).expect("identity")
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(cfg)
}

/// Opens TLS to `addr`, sends the HTTP/2 preface, and returns the first bytes the
/// server answers, or the error that ended the exchange.
async fn tls_exchange(addr: &str, cfg: Arc<rustls::ClientConfig>) -> Result<Vec<u8>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let connector = tokio_rustls::TlsConnector::from(cfg);
    let io = async {
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(H2_PREFACE).await?;
        tls.flush().await?;
        let mut buf = vec![0u8; 64];
        let n = tls.read(&mut buf).await?;
        buf.truncate(n);
        Ok::<_, std::io::Error>(buf)
    };
    match tokio::time::timeout(Duration::from_secs(10), io).await {
        Ok(Ok(bytes)) if bytes.is_empty() => Err("closed without an answer".into()),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// True when the server's TLS alert is one of `alerts` — or, if the server's close
/// raced ahead of its alert, the connection was reset.
fn refused(err: &str, alerts: &[&str]) -> bool {
    alerts
        .iter()
        .any(|a| err.contains(&format!("received fatal alert: {a}")))
        || err.contains("reset by peer")
}

/// True when `bytes` start with an HTTP/2 SETTINGS frame (type 4).
fn is_h2_settings(bytes: &[u8]) -> bool {
    bytes.len() >= 9 && bytes[3] == 4
}

async fn post_member(
    http: &reqwest::Client,
    admin_url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (StatusCode, Value) {
    let mut req = http
        .post(format!("{admin_url}/admin/v1/cluster/members"))
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("POST members");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_cluster_forms_with_join_token_and_refuses_outsiders() {
    let _guard = serial().await;
    let bin = binary_path().expect("raftgate binary");
    let root = tempfile::tempdir().expect("tempdir");
    let pki = root.path().join("pki");
    let rogue_pki = root.path().join("rogue-pki");
    certs(
        &bin,
        &pki,
        &["n1=127.0.0.1", "n2=127.0.0.1", "n3=127.0.0.1"],
    );
    certs(&bin, &rogue_pki, &["rogue=127.0.0.1"]);
    let ca = pki.join("ca.pem");
    let http = https_client(&ca);
    let token_env = ("RAFTGATE_JOIN_TOKEN".to_string(), JOIN_TOKEN.to_string());

    // (a) node 1 bootstraps; nodes 2 and 3 join with the join token alone.
    let (procs, token) = tls_cluster(&bin, root.path(), &pki).await;
    let url1 = procs[0].info().admin_url.clone();
    assert!(url1.starts_with("https://"), "{url1}");
    let admin1 = AdminClient::with_http(&url1, http.clone()).with_token(&token);

    // An admin write on a follower replicates to the others.
    let url2 = procs[1].info().admin_url.clone();
    let url3 = procs[2].info().admin_url.clone();
    AdminClient::with_http(&url2, http.clone())
        .with_token(&token)
        .create("tenants", &json!({"id": "sec-tenant", "name": "Sec"}))
        .await
        .expect("write through node 2");
    let admin3 = AdminClient::with_http(&url3, http.clone()).with_token(&token);
    wait::until("the write on node 3", WAIT, || {
        let c = admin3.clone();
        async move {
            c.get("tenants", "sec-tenant", Read::Local)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
    .expect("replicated");

    // The Raft port refuses h2c, TLS without a client certificate, and a foreign CA's.
    let raft1 = procs[0].info().raft_addr.clone();
    let h2c = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("h2c client");
    let plain = h2c
        .post(format!("http://{raft1}/raftgate.ClusterService/NodeStatus"))
        .header("content-type", "application/grpc")
        .body(vec![0u8; 5])
        .send()
        .await;
    assert!(plain.is_err(), "h2c got an answer: {plain:?}");
    let mut tcp = TcpStream::connect(&raft1).await.expect("tcp");
    tcp.write_all(H2_PREFACE).await.expect("write");
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("answer or close in time")
        .unwrap_or(0);
    assert!(
        !is_h2_settings(&buf[..n]),
        "plain TCP got HTTP/2: {:?}",
        &buf[..n]
    );

    let good = tls_client_config(&ca, Some((&pki.join("n2.pem"), &pki.join("n2-key.pem"))));
    let answer = tls_exchange(&raft1, good)
        .await
        .expect("a member's cert is accepted");
    assert!(is_h2_settings(&answer), "{answer:?}");
    let anonymous = tls_exchange(&raft1, tls_client_config(&ca, None)).await;
    let err = anonymous.expect_err("TLS without a client certificate is refused");
    assert!(refused(&err, &["CertificateRequired"]), "{err}");
    let foreign = tls_client_config(
        &ca,
        Some((
            &rogue_pki.join("rogue.pem"),
            &rogue_pki.join("rogue-key.pem"),
        )),
    );
    let err = tls_exchange(&raft1, foreign)
        .await
        .expect_err("foreign CA refused");
    assert!(refused(&err, &["UnknownCA", "BadCertificate"]), "{err}");

    // (c) adding a member needs the join token: missing, admin-token-only and wrong are refused.
    let member =
        json!({"node_id": 9, "raft_addr": "127.0.0.1:1", "admin_url": "https://127.0.0.1:1"});
    let bearer = format!("Bearer {token}");
    for (headers, want, code) in [
        (vec![], StatusCode::UNAUTHORIZED, "join_token_required"),
        (
            vec![("authorization", bearer.as_str())],
            StatusCode::UNAUTHORIZED,
            "join_token_required",
        ),
        (
            vec![("x-raftgate-join-token", "wrong-token-0123456789")],
            StatusCode::FORBIDDEN,
            "invalid_join_token",
        ),
    ] {
        let (status, body) = post_member(&http, &url1, &headers, &member).await;
        assert_eq!(status, want, "{headers:?}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    }

    // (b) a node with the right token but a certificate from another CA cannot join.
    let rogue_env = tls_env(&rogue_pki, &rogue_pki, "rogue");
    let rogue = NodeProcess::start(&bin, &spec(root.path(), 4, rogue_env.clone()))
        .await
        .expect("rogue node (not joining)");
    let rogue_member = json!({
        "node_id": 4, "raft_addr": rogue.info().raft_addr, "admin_url": rogue.info().admin_url,
    });
    let (status, body) = post_member(
        &http,
        &url1,
        &[("x-raftgate-join-token", JOIN_TOKEN)],
        &rogue_member,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "untrusted_peer", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("TLS") && message.contains("CA"),
        "{message}"
    );
    drop(rogue);

    let mut join_env = rogue_env;
    join_env.push(token_env.clone());
    join_env.push(("RAFTGATE_JOIN".into(), url1.clone()));
    let log = expect_exit_failure(&bin, &spec(root.path(), 5, join_env)).await;
    assert!(
        log.contains("TLS") && log.contains("UnknownIssuer"),
        "{log}"
    );
    // Trusting the right CA does not help a certificate the cluster did not issue.
    let mut misissued = tls_env(&pki, &rogue_pki, "rogue");
    misissued.push(token_env.clone());
    misissued.push(("RAFTGATE_JOIN".into(), url1.clone()));
    let (code, log) = run_to_exit(&bin, &spec(root.path(), 7, misissued)).await;
    assert_eq!(code, Some(64), "{log}");
    assert!(log.contains("tls_cert") && log.contains("tls_ca"), "{log}");

    // A node with a good certificate (issued later from the same CA) but a wrong token.
    certs(&bin, &pki, &["n6=127.0.0.1"]);
    let mut env6 = tls_env(&pki, &pki, "n6");
    env6.push((
        "RAFTGATE_JOIN_TOKEN".into(),
        "not-the-cluster-token-42".into(),
    ));
    env6.push(("RAFTGATE_JOIN".into(), url1.clone()));
    let log = expect_exit_failure(&bin, &spec(root.path(), 6, env6)).await;
    assert!(log.contains("invalid_join_token"), "{log}");

    let s = membership(&admin1).await;
    let ids: Vec<u64> = s.nodes.iter().map(|n| n.id).collect();
    assert_eq!(ids, vec![1, 2, 3], "membership changed: {s:?}");
    drop(procs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_writes_a_private_admin_token_once() {
    use std::os::unix::fs::PermissionsExt;
    let _guard = serial().await;
    let bin = binary_path().expect("raftgate binary");
    let root = tempfile::tempdir().expect("tempdir");
    let mut spec1 = spec(
        root.path(),
        1,
        vec![("RAFTGATE_BOOTSTRAP".into(), "true".into())],
    );
    let node = NodeProcess::start(&bin, &spec1).await.expect("node");
    let token = admin_token(&spec1.data_dir).await;
    let path = spec1.data_dir.join("admin-token");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let client = AdminClient::new(&node.info().admin_url).with_token(&token);
    let before = membership(&client).await;
    assert!(!before.cluster_id.is_empty());
    let log = std::fs::read_to_string(&spec1.log_path).expect("log");
    assert!(
        log.contains("admin-token") && !log.contains(&token),
        "{log}"
    );

    // Restart on the same ports and data dir: no second init, the token still works.
    spec1.addrs = Some(node.info().clone());
    drop(node);
    let node = NodeProcess::start(&bin, &spec1).await.expect("restart");
    let client = AdminClient::new(&node.info().admin_url).with_token(&token);
    wait::until("the restarted node to serve its cluster", WAIT, || {
        let c = client.clone();
        async move { c.cluster_status().await.map_err(|e| e.to_string()) }
    })
    .await
    .expect("status after restart");
    assert_eq!(membership(&client).await.cluster_id, before.cluster_id);
    assert_eq!(std::fs::read_to_string(&path).expect("token").trim(), token);
    wait::until("the bootstrap note", WAIT, || {
        let log = std::fs::read_to_string(&spec1.log_path).unwrap_or_default();
        async move {
            if log.contains("nothing to do") {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        }
    })
    .await
    .expect("restart says bootstrap has nothing to do");
}

/// `raftgate serve ARGS` with a clean environment; (exit code, stderr).
fn serve_once(bin: &Path, data_dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RAFTGATE_") {
            cmd.env_remove(key);
        }
    }
    let o = cmd
        .env("RAFTGATE_SECRET_KEY", SECRET_KEY)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("run serve");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn partial_tls_and_bootstrap_with_join_are_config_errors() {
    let bin = binary_path().expect("raftgate binary");
    let dir = tempfile::tempdir().expect("tempdir");
    let data: PathBuf = dir.path().join("data");
    let (code, err) = serve_once(
        &bin,
        &data,
        &["--tls-ca", "/nope/ca.pem", "--tls-cert", "/nope/n.pem"],
    );
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("tls_key") && err.contains("together"), "{err}");
    let (code, err) = serve_once(
        &bin,
        &data,
        &["--bootstrap", "--join", "http://127.0.0.1:9080"],
    );
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("bootstrap"), "{err}");
    let (code, err) = serve_once(
        &bin,
        &data,
        &[
            "--tls-ca",
            "/nope/ca.pem",
            "--tls-cert",
            "/nope/n.pem",
            "--tls-key",
            "/nope/k.pem",
            "--join-token",
            JOIN_TOKEN,
        ],
    );
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("tls_ca") && err.contains("cannot read"),
        "{err}"
    );

    // Secure by default: serve without TLS, or with TLS but no join token, refuses to
    // start and says how to fix it; --insecure waives both.
    let (code, err) = serve_once(&bin, &data, &["--node-id", "1"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("tls_ca") && err.contains("raftgate certs") && err.contains("insecure"),
        "{err}"
    );
    let pki = dir.path().join("pki");
    certs(&bin, &pki, &["n1=127.0.0.1"]);
    let mut tls_args: Vec<String> = Vec::new();
    for (k, v) in tls_env(&pki, &pki, "n1") {
        if k == "RAFTGATE_SECRET_KEY" {
            continue;
        }
        let flag = k
            .trim_start_matches("RAFTGATE_")
            .to_ascii_lowercase()
            .replace('_', "-");
        tls_args.extend([format!("--{flag}"), v]);
    }
    let args: Vec<&str> = tls_args.iter().map(String::as_str).collect();
    let (code, err) = serve_once(&bin, &data, &args);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("join_token"), "{err}");
}

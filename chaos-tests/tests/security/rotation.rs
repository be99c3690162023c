//! Certificate rotation without downtime: a node's certificate and key are replaced on
//! disk while a client keeps writing through that node; the node serves the new
//! certificate on its Raft and admin ports within a poll, no write fails, and a broken
//! replacement is refused while the node keeps the certificate it has.

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// The leaf certificate `addr` presents in a TLS handshake (with our client identity).
async fn presented_leaf(addr: &str, cfg: Arc<rustls::ClientConfig>) -> Result<Vec<u8>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let connector = tokio_rustls::TlsConnector::from(cfg);
    let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no server certificate")?;
    Ok(leaf.as_ref().to_vec())
}

/// The first certificate of a PEM file, as DER.
fn leaf_on_disk(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path)
        .expect("cert file")
        .next()
        .expect("a certificate")
        .expect("PEM")
        .as_ref()
        .to_vec()
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("https://").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_without_downtime() {
    let _guard = serial().await;
    let bin = binary_path().expect("raftgate binary");
    let root = tempfile::tempdir().expect("tempdir");
    let pki = root.path().join("pki");
    certs(
        &bin,
        &pki,
        &["n1=127.0.0.1", "n2=127.0.0.1", "n3=127.0.0.1"],
    );
    let ca = pki.join("ca.pem");
    let http = https_client(&ca);
    let (procs, token) = tls_cluster(&bin, root.path(), &pki).await;
    let url2 = procs[1].info().admin_url.clone();
    let raft2 = procs[1].info().raft_addr.clone();
    let admin2 = AdminClient::with_http(&url2, http.clone()).with_token(&token);

    // Writes through node 2 (forwarded to the leader over node 2's mutual TLS) all along.
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let writer = {
        let (client, ok, failed) = (admin2.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let mut errors = Vec::new();
            for i in 0u64.. {
                if *stopped.borrow() {
                    break;
                }
                let body = json!({"id": format!("rot-{i}"), "name": "rotation"});
                match client.create("tenants", &body).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        errors.push(e.to_string());
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                let _ = tokio::time::timeout(Duration::from_millis(50), stopped.changed()).await;
            }
            errors
        })
    };

    let client_cfg = tls_client_config(&ca, Some((&pki.join("n1.pem"), &pki.join("n1-key.pem"))));
    let before = leaf_on_disk(&pki.join("n2.pem"));
    assert_eq!(
        presented_leaf(&raft2, client_cfg.clone())
            .await
            .expect("handshake"),
        before
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Re-issue node 2's certificate and key from the same CA (what an operator or
    // cert-manager does before expiry).
    let status = Command::new(&bin)
        .args(["certs", "--force", "--out"])
        .arg(&pki)
        .args(["--node", "n2=127.0.0.1"])
        .status()
        .expect("certs --force");
    assert!(status.success());
    let after = leaf_on_disk(&pki.join("n2.pem"));
    assert_ne!(before, after, "certs --force issues a new certificate");
    for (what, addr) in [("raft", raft2.clone()), ("admin", host_port(&url2))] {
        let cfg = client_cfg.clone();
        let want = after.clone();
        wait::until(
            &format!("node 2's {what} port to present the new certificate"),
            WAIT,
            || {
                let (addr, cfg, want) = (addr.clone(), cfg.clone(), want.clone());
                async move {
                    match presented_leaf(&addr, cfg).await {
                        Ok(leaf) if leaf == want => Ok(()),
                        Ok(_) => Err("still the old certificate".to_string()),
                        Err(e) => Err(e),
                    }
                }
            },
        )
        .await
        .expect("rotated");
    }
    let rotated_at = ok.load(Ordering::Relaxed);

    // A broken replacement (a key that is not a key) is refused; the node keeps serving
    // the certificate it has, and says why in its log.
    let key2 = pki.join("n2-key.pem");
    let good_key = std::fs::read(&key2).expect("key");
    std::fs::write(
        &key2,
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .expect("break the key");
    let log2 = root.path().join("node-2").join("node.log");
    wait::until("node 2 to refuse the broken key", WAIT, || {
        let log2 = log2.clone();
        async move {
            let log = std::fs::read_to_string(&log2).unwrap_or_default();
            if log.contains("not usable") && log.contains("tls_key") {
                Ok(())
            } else {
                Err("no refusal logged yet".to_string())
            }
        }
    })
    .await
    .expect("refusal logged");
    assert_eq!(
        presented_leaf(&raft2, client_cfg.clone())
            .await
            .expect("still serving"),
        after
    );
    std::fs::write(&key2, good_key).expect("restore the key");

    // Writes kept going through the rotation and afterwards.
    wait::until("more writes after the rotation", WAIT, || {
        let n = ok.load(Ordering::Relaxed);
        async move {
            if n >= rotated_at + 20 {
                Ok(())
            } else {
                Err(format!("{n} writes"))
            }
        }
    })
    .await
    .expect("writes continue");
    let _ = stop.send(true);
    let errors = writer.await.expect("writer");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "writes failed during the rotation: {errors:?}"
    );
    // And they reached the other members over fresh mutual-TLS connections.
    let last = ok.load(Ordering::Relaxed) - 1;
    let url3 = procs[2].info().admin_url.clone();
    let admin3 = AdminClient::with_http(&url3, http.clone()).with_token(&token);
    wait::until("the last write on node 3", WAIT, || {
        let c = admin3.clone();
        async move {
            c.get("tenants", &format!("rot-{last}"), Read::Local)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
    .expect("replicated");
    drop(procs);
}

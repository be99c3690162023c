//! The byte scan of `secrets_at_rest` and its TLS probe.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use super::SNI;

/// A TLS handshake with SNI [`SNI`] trusting only the certificate: proves the node
/// decrypted the private key (the handshake signs with it).
pub async fn tls_ok(addr: SocketAddr, cert_pem: &str) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| e.to_string())?;
    roots.add(der.clone()).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(SNI).map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| format!("handshake: {e}"))?;
    match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        Some(leaf) if leaf.as_ref() == der.as_ref() => Ok(()),
        _ => Err("another certificate".into()),
    }
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let mut from = 0;
    while let Some(p) = hay[from..].iter().position(|&b| b == first) {
        let at = from + p;
        if hay[at + 1..].starts_with(rest) {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Bytes scanned; panics naming every secret found and where.
pub fn scan(what: &str, blobs: &[(String, Vec<u8>)], needles: &[(String, Vec<u8>)]) -> usize {
    let mut found = Vec::new();
    for (name, bytes) in blobs {
        for (secret, needle) in needles {
            if contains(bytes, needle) {
                found.push(format!("{secret} in {name}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "{what}: plaintext secrets found: {found:#?}"
    );
    blobs.iter().map(|(_, b)| b.len()).sum()
}

/// Each file's name and bytes.
pub fn read_all(files: &[PathBuf]) -> Vec<(String, Vec<u8>)> {
    files
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.display().to_string(), bytes)
        })
        .collect()
}

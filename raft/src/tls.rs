//! Mutual TLS between nodes on the Raft port: the node's PEM material, the tonic server
//! and client configurations built from it, and telling a TLS failure (certificate
//! refused by either side) apart from a peer that is merely unreachable.

use std::error::Error as StdError;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::NodeId;

/// Time a peer has to finish a TLS handshake with us, either way.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// PEM material for mutual TLS between nodes: the cluster CA (what peers must chain to),
/// this node's certificate chain, and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerTls {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for PeerTls {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerTls")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field("cert_pem_bytes", &self.cert_pem.len())
            .finish_non_exhaustive()
    }
}

/// A TLS file that cannot be used, naming the config key it came from.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TlsFileError {
    /// `tls_ca`, `tls_cert` or `tls_key`.
    pub key: &'static str,
    pub message: String,
}

fn file_error(key: &'static str, message: impl Into<String>) -> TlsFileError {
    TlsFileError {
        key,
        message: message.into(),
    }
}

impl PeerTls {
    /// Reads and checks the three PEM files: the CA must parse as trust anchors, the
    /// certificate chain and key must load into a rustls server and client config. So a
    /// wrong file fails at start, naming its key, not at the first handshake.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<PeerTls, TlsFileError> {
        let read = |k: &'static str, p: &Path| {
            std::fs::read(p).map_err(|e| file_error(k, format!("cannot read {}: {e}", p.display())))
        };
        let tls = PeerTls {
            ca_pem: read("tls_ca", ca)?,
            cert_pem: read("tls_cert", cert)?,
            key_pem: read("tls_key", key)?,
        };
        tls.check()?;
        Ok(tls)
    }

    /// Builds the rustls configurations once to prove the material is usable.
    pub fn check(&self) -> Result<(), TlsFileError> {
        self.server_config().map(|_| ())
    }

    /// Raft port server side: our certificate, TLS 1.2+ with rustls' safe cipher suites,
    /// ALPN `h2`, and a client certificate chaining to the CA required. Fails, naming the
    /// key, when the material is unusable — including a certificate of our own that does
    /// not verify against the CA (peers would refuse it at every handshake).
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsFileError> {
        let roots = self.roots()?;
        let certs = parse_certs(&self.cert_pem).map_err(|m| file_error("tls_cert", m))?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| file_error("tls_key", format!("no PEM private key: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| file_error("tls_ca", e.to_string()))?;
        // Peers check our certificate against the same CA: catch a certificate from
        // another CA (or an expired one) here, with a clear message, not at every handshake.
        let (leaf, intermediates) = certs
            .split_first()
            .ok_or_else(|| file_error("tls_cert", "no PEM certificate in the file"))?;
        verifier
            .verify_client_cert(leaf, intermediates, rustls::pki_types::UnixTime::now())
            .map_err(|e| {
                file_error(
                    "tls_cert",
                    format!("does not verify against tls_ca ({e}); node certificates must be issued by the cluster CA and be valid now"),
                )
            })?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| file_error("tls_cert", e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| {
                file_error(
                    "tls_key",
                    format!("certificate and key do not form a usable pair: {e}"),
                )
            })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// The CA certificates as a rustls root store (also used by the node's admin TLS).
    pub fn roots(&self) -> Result<Arc<rustls::RootCertStore>, TlsFileError> {
        let cas = parse_certs(&self.ca_pem).map_err(|m| file_error("tls_ca", m))?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in cas {
            roots
                .add(ca)
                .map_err(|e| file_error("tls_ca", format!("not a usable CA certificate: {e}")))?;
        }
        Ok(Arc::new(roots))
    }

    /// Outgoing RPCs: the peer must chain to the CA and match the dialled host; we
    /// present our certificate.
    pub(crate) fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .timeout(HANDSHAKE_TIMEOUT)
    }
}

fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate in the file".into());
    }
    Ok(certs)
}

/// Why [`crate::RaftNode::probe_peer`] could not confirm a peer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The handshake failed: the peer's certificate does not chain to our CA or does not
    /// name the dialled host, or it refused ours. Retrying will not help.
    #[error("mutual TLS with {addr} failed ({reason}); its certificate must chain to this cluster's CA (tls_ca) and carry a SAN for the host in its raft address")]
    Tls { addr: String, reason: String },
    /// Nobody answered (yet), or the call broke: may succeed later.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("invalid raft address '{addr}': {reason}")]
    Invalid { addr: String, reason: String },
}

/// What a probed peer says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbedPeer {
    pub id: NodeId,
    /// `None` until the peer applied a cluster's InitCluster command.
    pub cluster_id: Option<String>,
}

/// True when `err` or any of its causes is a TLS failure: a handshake error, a
/// certificate refused by us or an alert from the peer refusing ours.
pub fn is_tls_failure(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<rustls::Error>() {
            return true;
        }
        // io::Error::source() skips the error it wraps, so look inside explicitly.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            let inner: &(dyn StdError + 'static) = inner;
            if is_tls_failure(inner) {
                return true;
            }
        }
        // Some layers (hyper's TLS reads) keep only the rustls error's text.
        let text = e.to_string().to_ascii_lowercase();
        if ["certificate", "tls handshake", "fatal alert"]
            .iter()
            .any(|m| text.contains(m))
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// `err` and its causes joined with `: `, skipping repeats, for error messages.
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            let text = inner.to_string();
            if !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
        }
        cur = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_wrapped_rustls_errors_are_tls_failures() {
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, alert);
        assert!(is_tls_failure(&io));
        assert!(
            error_chain(&io).contains("UnknownCA"),
            "{}",
            error_chain(&io)
        );
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(!is_tls_failure(&refused));
        let text_only = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "received fatal alert: UnknownCA",
        );
        assert!(is_tls_failure(&text_only));
    }

    #[test]
    fn garbage_files_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let err = PeerTls::load(&junk, &junk, &junk).unwrap_err();
        assert_eq!(err.key, "tls_ca", "{err}");
        let missing = dir.path().join("missing.pem");
        let err = PeerTls::load(&missing, &junk, &junk).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }
}

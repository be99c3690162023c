//! Data-plane TLS: certificates from the replicated config, chosen by SNI, swapped in
//! when the config changes (no restart), and offered with ALPN h2 and http/1.1.

use std::collections::HashMap;
use std::sync::Arc;

use raftgate_store::model::{Kind, Resource};
use raftgate_store::state::State;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;

use crate::proxy::DataPlane;
use crate::secrets::SecretBox;

/// Certificates by server name: exact names, and `*.suffix` for one leading label.
#[derive(Debug, Default)]
pub struct CertIndex {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl CertIndex {
    pub fn lookup(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        let sni = sni.to_ascii_lowercase();
        if let Some(c) = self.exact.get(&sni) {
            return Some(c.clone());
        }
        let (_, parent) = sni.split_once('.')?;
        self.wildcard.get(parent).cloned()
    }
}

fn load(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert_pem: {e}"))?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("key_pem: {e}"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("key_pem: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

/// Builds the index from the config, decrypting private keys with this node's key.
/// A certificate that cannot be decrypted or parsed is skipped with a warning (the
/// admin API checks both before accepting one).
pub fn build_index(state: &State, secrets: Option<&SecretBox>) -> CertIndex {
    let mut idx = CertIndex::default();
    for s in state.list(Kind::Certificate) {
        let Resource::Certificate(c) = &s.resource else {
            continue;
        };
        let key = if SecretBox::is_encrypted(&c.key_pem) {
            match secrets.map(|sb| sb.decrypt(&c.key_pem)) {
                Some(Ok(k)) => k,
                Some(Err(e)) => {
                    tracing::warn!(certificate = %c.id, error = %e, "cannot decrypt the private key: wrong secret key on this node?");
                    continue;
                }
                None => {
                    tracing::warn!(certificate = %c.id, "this node has no secret key to decrypt TLS private keys");
                    continue;
                }
            }
        } else {
            c.key_pem.clone()
        };
        match load(&c.cert_pem, &key) {
            Ok(ck) => {
                for sni in &c.snis {
                    let sni = sni.to_ascii_lowercase();
                    match sni.strip_prefix("*.") {
                        Some(parent) => idx.wildcard.insert(parent.to_string(), ck.clone()),
                        None => idx.exact.insert(sni, ck.clone()),
                    };
                }
            }
            Err(e) => tracing::warn!(certificate = %c.id, error = %e, "certificate skipped"),
        }
    }
    idx
}

/// rustls resolver reading the index of the current config revision. It goes through
/// [`DataPlane::current`], so a certificate written and acknowledged by this node is
/// served by the very next handshake.
pub struct SniResolver(pub Arc<DataPlane>);

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.current().certs.lookup(hello.server_name()?)
    }
}

pub fn server_config(dp: Arc<DataPlane>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"))
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver(dp)));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

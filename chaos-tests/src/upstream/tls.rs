//! Certificates for tests (rcgen) and the upstream's rustls server configuration.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A self-signed certificate for `sans` (DNS names, or IP addresses such as `127.0.0.1`),
/// as `(cert_pem, key_pem)`. A client trusts it by adding `cert_pem` as a root.
///
/// Panics if rcgen refuses a name (a test's mistake, not a runtime condition).
pub fn self_signed(sans: &[&str]) -> (String, String) {
    let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(names)
        .unwrap_or_else(|e| panic!("self-signed certificate for {sans:?}: {e}"));
    (certified.cert.pem(), certified.key_pair.serialize_pem())
}

/// A private CA and a server certificate it signed, all PEM.
#[derive(Debug, Clone)]
pub struct CaAndLeaf {
    /// The CA certificate: what a client adds as its trusted root.
    pub ca_cert_pem: String,
    /// The leaf (server) certificate for the requested names.
    pub cert_pem: String,
    /// The leaf's private key.
    pub key_pem: String,
}

/// A CA (`CN=raftgate test CA`) and a leaf for `sans` signed by it, for tests of upstream
/// TLS verified against a custom CA. Serve with `cert_pem`/`key_pem`; trust `ca_cert_pem`.
///
/// Panics if rcgen refuses a name.
pub fn ca_and_leaf(sans: &[&str]) -> CaAndLeaf {
    let fail = |what: &str, e: rcgen::Error| -> ! { panic!("{what} for {sans:?}: {e}") };
    let ca_key = KeyPair::generate().unwrap_or_else(|e| fail("CA key", e));
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| fail("CA", e));
    ca.distinguished_name = name("raftgate test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca
        .self_signed(&ca_key)
        .unwrap_or_else(|e| fail("CA certificate", e));

    let leaf_key = KeyPair::generate().unwrap_or_else(|e| fail("leaf key", e));
    let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut leaf = CertificateParams::new(names).unwrap_or_else(|e| fail("leaf", e));
    leaf.distinguished_name = name(sans.first().copied().unwrap_or("raftgate test upstream"));
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .unwrap_or_else(|e| fail("leaf certificate", e));
    CaAndLeaf {
        ca_cert_pem: ca_cert.pem(),
        cert_pem: leaf_cert.pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// rustls (ring) server configuration with ALPN `h2`, `http/1.1`.
pub(super) fn server_config(cert_pem: &str, key_pem: &str) -> anyhow::Result<ServerConfig> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("parsing the TLS certificate PEM")?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no certificate in the TLS certificate PEM"
    );
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("parsing the TLS key PEM")?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

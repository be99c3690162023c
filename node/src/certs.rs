//! Certificates for mutual TLS between nodes: `raftgate certs` issues a cluster CA and
//! node certificates (rcgen, ECDSA P-256), and [`NodeTls`] loads a node's files at start
//! for the Raft port, the admin port (HTTPS) and node-to-node admin calls.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use raftgate_raft::PeerTls;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::cli::CertsArgs;
use crate::client::{CliError, EXIT_REFUSED, EXIT_USAGE};
use crate::config::{ConfigError, NodeConfig};

pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The CA's subject starts with this; a fingerprint of its public key follows, so every
/// cluster's CA has its own name (verifiers look issuers up by name), and a CA re-created
/// from `ca-key.pem` gets the same name and signs certificates that chain to `ca.pem`.
const CA_COMMON_NAME: &str = "Raftgate cluster CA";
const CA_DAYS: i64 = 3650;

fn fail(code: i32, message: impl Into<String>) -> CliError {
    CliError {
        code,
        message: message.into(),
    }
}

/// `raftgate certs`: reuses `OUT/ca.pem` + `OUT/ca-key.pem` when present (else creates
/// them), then writes `NAME.pem` / `NAME-key.pem` per `--node`. Refuses to overwrite a
/// node's files without `--force`; checks every target before writing anything.
pub fn run(args: &CertsArgs) -> Result<(), CliError> {
    let nodes = args
        .nodes
        .iter()
        .map(|n| parse_node(n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| fail(EXIT_USAGE, m))?;
    if args.days == 0 {
        return Err(fail(EXIT_USAGE, "--days must be positive"));
    }
    let out = &args.out;
    for (name, _) in &nodes {
        for path in node_files(out, name) {
            if path.exists() && !args.force {
                return Err(fail(
                    EXIT_REFUSED,
                    format!("{} exists; pass --force to overwrite it", path.display()),
                ));
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|e| {
        fail(
            EXIT_REFUSED,
            format!("cannot create {}: {e}", out.display()),
        )
    })?;
    let (ca, created) = load_or_create_ca(out).map_err(|m| fail(EXIT_REFUSED, m))?;
    eprintln!(
        "{} CA {}",
        if created { "created" } else { "reusing" },
        out.join(CA_CERT_FILE).display()
    );
    for (name, hosts) in &nodes {
        let (cert, key) =
            issue_node(&ca, name, hosts, args.days).map_err(|m| fail(EXIT_REFUSED, m))?;
        verify_node_cert(ca.pem.as_bytes(), cert.as_bytes(), &hosts[0]).map_err(|m| {
            fail(
                EXIT_REFUSED,
                format!("{}: the issued certificate does not verify against it ({m}); was it made by `raftgate certs`?", out.join(CA_CERT_FILE).display()),
            )
        })?;
        let [cert_path, key_path] = node_files(out, name);
        write_file(&cert_path, &cert, 0o644, true).map_err(|m| fail(EXIT_REFUSED, m))?;
        write_file(&key_path, &key, 0o600, true).map_err(|m| fail(EXIT_REFUSED, m))?;
        println!("{} (SANs: {})", cert_path.display(), hosts.join(", "));
    }
    Ok(())
}

fn node_files(out: &Path, name: &str) -> [PathBuf; 2] {
    [
        out.join(format!("{name}.pem")),
        out.join(format!("{name}-key.pem")),
    ]
}

/// `NAME=HOST[,HOST...]` → (name, hosts).
fn parse_node(spec: &str) -> Result<(String, Vec<String>), String> {
    let (name, hosts) = spec
        .split_once('=')
        .ok_or_else(|| format!("--node '{spec}': expected NAME=HOST[,HOST...]"))?;
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
        && name != "ca";
    if !name_ok {
        return Err(format!(
            "--node '{spec}': NAME must be letters, digits, '-', '_' or '.', and not 'ca'"
        ));
    }
    let hosts: Vec<String> = hosts
        .split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        return Err(format!("--node '{spec}': give at least one host or IP"));
    }
    for h in &hosts {
        let dns_ok = h
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*'));
        if h.parse::<std::net::IpAddr>().is_err() && !dns_ok {
            return Err(format!(
                "--node '{spec}': '{h}' is neither an IP nor a DNS name"
            ));
        }
    }
    Ok((name.to_string(), hosts))
}

/// A CA able to sign: its certificate as rcgen needs it, its key, and the PEM that nodes
/// trust (the file on disk when reused).
struct Ca {
    cert: Certificate,
    key: KeyPair,
    pem: String,
}

fn ca_params(key: &KeyPair) -> Result<CertificateParams, String> {
    use sha2::{Digest, Sha256};
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    let fingerprint = hex::encode(&Sha256::digest(key.public_key_der())[..8]);
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("{CA_COMMON_NAME} {fingerprint}"),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = now();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(CA_DAYS);
    params.serial_number = Some(random_serial());
    Ok(params)
}

fn load_or_create_ca(dir: &Path) -> Result<(Ca, bool), String> {
    let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let read = |p: &Path| {
                std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            };
            let pem = read(&cert_path)?;
            let key = KeyPair::from_pem(&read(&key_path)?)
                .map_err(|e| format!("{}: {e}", key_path.display()))?;
            let cert = ca_params(&key)?
                .self_signed(&key)
                .map_err(|e| format!("re-creating the CA from {}: {e}", key_path.display()))?;
            Ok((Ca { cert, key, pem }, false))
        }
        (false, false) => {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
            let cert = ca_params(&key)?
                .self_signed(&key)
                .map_err(|e| e.to_string())?;
            let pem = cert.pem();
            write_file(&key_path, &key.serialize_pem(), 0o600, false)?;
            write_file(&cert_path, &pem, 0o644, false)?;
            Ok((Ca { cert, key, pem }, true))
        }
        _ => Err(format!(
            "{} has only one of {CA_CERT_FILE} and {CA_KEY_FILE}; both are needed to sign",
            dir.display()
        )),
    }
}

/// A node certificate and key (PEM) for `hosts` (DNS SANs, or IP SANs for addresses),
/// for TLS server and client authentication both.
fn issue_node(
    ca: &Ca,
    name: &str,
    hosts: &[String],
    days: u32,
) -> Result<(String, String), String> {
    let mut params =
        CertificateParams::new(hosts.to_vec()).map_err(|e| format!("node {name}: {e}"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = now();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
    params.serial_number = Some(random_serial());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let cert = params
        .signed_by(&key, &ca.cert, &ca.key)
        .map_err(|e| format!("signing node {name}: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn now() -> time::OffsetDateTime {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// 16 random bytes, top bit clear so the DER integer stays positive.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

/// Writes `contents` with `mode` via a temporary file and rename; `replace = false`
/// refuses an existing file.
fn write_file(path: &Path, contents: &str, mode: u32, replace: bool) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    if !replace && path.exists() {
        return Err(format!("{} exists", path.display()));
    }
    let tmp = path.with_extension("pem.tmp");
    let _ = std::fs::remove_file(&tmp);
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(contents.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Checks that `cert_pem` chains to `ca_pem`, is valid now for TLS server and client
/// authentication, and names `host` (a DNS name or IP).
pub fn verify_node_cert(ca_pem: &[u8], cert_pem: &[u8], host: &str) -> Result<(), String> {
    use rustls::client::danger::ServerCertVerifier;
    let tls = PeerTls {
        ca_pem: ca_pem.to_vec(),
        cert_pem: Vec::new(),
        key_pem: Vec::new(),
    };
    let roots = tls.roots().map_err(|e| e.to_string())?;
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad certificate PEM: {e}"))?;
    let (leaf, intermediates) = chain.split_first().ok_or("no certificate in the PEM")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("'{host}': {e}"))?;
    rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| e.to_string())?
        .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
        .map_err(|e| format!("as a server for '{host}': {e}"))?;
    rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| e.to_string())?
        .verify_client_cert(leaf, intermediates, UnixTime::now())
        .map_err(|e| format!("as a client: {e}"))?;
    Ok(())
}

/// A node's TLS material at run time: mutual TLS for the Raft port, and the admin
/// port's HTTPS configuration (client certificates verified when presented, never
/// required, so operators' CLIs and load balancers connect without one).
pub struct NodeTls {
    pub peer: PeerTls,
    pub admin: Arc<rustls::ServerConfig>,
}

impl NodeTls {
    /// `None` when the config has no `tls_*` keys (validation made them all-or-none).
    pub fn load(cfg: &NodeConfig) -> Result<Option<NodeTls>, ConfigError> {
        let (Some(ca), Some(cert), Some(key)) = (&cfg.tls_ca, &cfg.tls_cert, &cfg.tls_key) else {
            return Ok(None);
        };
        let bad = |key: &str, message: String| ConfigError {
            key: key.to_string(),
            message,
        };
        let peer = PeerTls::load(ca, cert, key).map_err(|e| bad(e.key, e.message))?;
        let roots = peer.roots().map_err(|e| bad(e.key, e.message))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| bad("tls_ca", e.to_string()))?;
        let certs = CertificateDer::pem_slice_iter(&peer.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("tls_cert", e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(&peer.key_pem)
            .map_err(|e| bad("tls_key", e.to_string()))?;
        let mut admin = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("tls_cert", e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| bad("tls_key", e.to_string()))?;
        admin.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(NodeTls {
            peer,
            admin: Arc::new(admin),
        }))
    }

    /// Node-to-node admin calls (join): trust only the cluster CA, present our cert.
    pub fn admin_client(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, ConfigError> {
        let bad = |key: &str, e: reqwest::Error| ConfigError {
            key: key.to_string(),
            message: e.to_string(),
        };
        let mut builder = builder.tls_built_in_root_certs(false);
        for ca in reqwest::Certificate::from_pem_bundle(&self.peer.ca_pem)
            .map_err(|e| bad("tls_ca", e))?
        {
            builder = builder.add_root_certificate(ca);
        }
        let identity = [
            self.peer.cert_pem.as_slice(),
            b"\n",
            self.peer.key_pem.as_slice(),
        ]
        .concat();
        let identity = reqwest::Identity::from_pem(&identity).map_err(|e| bad("tls_key", e))?;
        Ok(builder.identity(identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(out: &Path, nodes: &[&str]) -> CertsArgs {
        CertsArgs {
            out: out.to_path_buf(),
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            days: 30,
            force: false,
        }
    }

    #[test]
    fn node_certs_verify_against_the_ca_for_their_sans_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        run(&args(
            dir.path(),
            &["n1=node1.example,10.0.0.1", "n2=127.0.0.1"],
        ))
        .expect("certs");
        let read = |f: &str| std::fs::read(dir.path().join(f)).expect(f);
        let ca = read(CA_CERT_FILE);
        for host in ["node1.example", "10.0.0.1"] {
            verify_node_cert(&ca, &read("n1.pem"), host).expect(host);
        }
        verify_node_cert(&ca, &read("n2.pem"), "127.0.0.1").expect("n2");
        let err = verify_node_cert(&ca, &read("n1.pem"), "other.example").expect_err("no SAN");
        assert!(err.contains("not valid for name"), "{err}");
        let err = verify_node_cert(&ca, &read("n2.pem"), "10.0.0.1").expect_err("no IP SAN");
        assert!(err.contains("not valid for name"), "{err}");

        use std::os::unix::fs::PermissionsExt;
        for key in [CA_KEY_FILE, "n1-key.pem", "n2-key.pem"] {
            let mode = std::fs::metadata(dir.path().join(key))
                .expect(key)
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        // The files load as a node's TLS config.
        let cfg = NodeConfig {
            tls_ca: Some(dir.path().join(CA_CERT_FILE)),
            tls_cert: Some(dir.path().join("n1.pem")),
            tls_key: Some(dir.path().join("n1-key.pem")),
            ..NodeConfig::default()
        };
        assert!(NodeTls::load(&cfg).expect("load").is_some());
    }

    #[test]
    fn an_existing_ca_is_reused_and_files_are_not_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        run(&args(dir.path(), &["n1=10.0.0.1"])).expect("first");
        let ca_before = std::fs::read(dir.path().join(CA_CERT_FILE)).expect("ca");
        let err = run(&args(dir.path(), &["n1=10.0.0.1"])).expect_err("exists");
        assert!(err.message.contains("--force"), "{}", err.message);
        run(&args(dir.path(), &["n4=10.0.0.4"])).expect("add a node later");
        assert_eq!(
            std::fs::read(dir.path().join(CA_CERT_FILE)).expect("ca"),
            ca_before
        );
        let n4 = std::fs::read(dir.path().join("n4.pem")).expect("n4");
        verify_node_cert(&ca_before, &n4, "10.0.0.4").expect("n4 chains to the old CA");
        let forced = CertsArgs {
            force: true,
            ..args(dir.path(), &["n1=10.0.0.1,n1.example"])
        };
        run(&forced).expect("re-issue with --force");
        let n1 = std::fs::read(dir.path().join("n1.pem")).expect("n1");
        verify_node_cert(&ca_before, &n1, "n1.example").expect("re-issued n1");

        // A certificate from another CA does not verify against this one.
        let other = tempfile::tempdir().expect("tempdir");
        run(&args(other.path(), &["x=10.0.0.1"])).expect("other CA");
        let x = std::fs::read(other.path().join("x.pem")).expect("x");
        let err = verify_node_cert(&ca_before, &x, "10.0.0.1").expect_err("foreign");
        assert!(err.contains("UnknownIssuer"), "{err}");
        // ... and a node configured with it refuses to start, naming tls_cert.
        let cfg = NodeConfig {
            tls_ca: Some(dir.path().join(CA_CERT_FILE)),
            tls_cert: Some(other.path().join("x.pem")),
            tls_key: Some(other.path().join("x-key.pem")),
            ..NodeConfig::default()
        };
        let err = NodeTls::load(&cfg).err().expect("foreign cert refused");
        assert_eq!(err.key, "tls_cert", "{err}");
        assert!(err.message.contains("tls_ca"), "{err}");
    }

    #[test]
    fn bad_node_specs_are_usage_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        for spec in [
            "n1",
            "=10.0.0.1",
            "n1=",
            "ca=10.0.0.1",
            "n/1=h",
            "n1=bad host",
        ] {
            let err = run(&args(dir.path(), &[spec])).expect_err(spec);
            assert_eq!(err.code, EXIT_USAGE, "{spec}: {}", err.message);
        }
    }
}

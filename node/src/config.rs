//! Node configuration: TOML file → `RAFTGATE_*` environment → command-line flags, then
//! `validate()`. A configuration error names the key and exits with status 64.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything `raftgate serve` needs to run a node. `Debug` redacts the join token.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// This node's id; unique in the cluster and fixed for the life of the data dir.
    pub node_id: u64,
    pub data_dir: PathBuf,
    /// Data-plane listener (REST and LLM traffic).
    pub http_addr: String,
    /// Data-plane TLS listener (h2 and HTTP/1.1 by ALPN, certificates by SNI from the
    /// replicated config); off when unset.
    pub https_addr: Option<String>,
    /// Data-plane access log: `-` for standard output or a file path; off when unset.
    pub access_log: Option<String>,
    /// A file access log is rotated (renamed to `.1`) before it would pass this size.
    pub access_log_max_bytes: u64,
    /// Rotated access log files kept (`.1` … `.N`, the oldest deleted); 0 keeps none.
    pub access_log_keep: u32,
    /// OTLP/HTTP collector base URL (`http://collector:4318`); trace export is off when unset.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of exported spans.
    pub otlp_service_name: String,
    /// Share of new traces exported, 0.0..=1.0 (a caller's `traceparent` flag wins).
    pub otlp_sample_ratio: f64,
    /// Admin API, health and metrics listener.
    pub admin_addr: String,
    /// Raft and node-to-node gRPC listener.
    pub raft_addr: String,
    /// Host name or IP other nodes and clients use to reach this node. Defaults to the
    /// listen IP when it is specific, else the machine's host name.
    pub advertise_host: Option<String>,
    /// Admin URL of a cluster member to join on first start.
    pub join: Option<String>,
    /// Take a snapshot (and purge the log behind it) after this many applied entries.
    pub snapshot_logs: u64,
    /// `tracing` filter, e.g. `info` or `raftgate=debug,openraft=info`.
    pub log_level: String,
    /// File holding the 32-byte key that encrypts secrets (certificate keys) before they
    /// enter the Raft log: 64 hex characters, base64, or raw. Every node of a cluster needs
    /// the same key. `RAFTGATE_SECRET_KEY` may give the key itself instead.
    pub secret_key_file: Option<PathBuf>,
    /// Keys that secrets were encrypted with before `secret_key_file` (one key per file),
    /// kept to decrypt them until `raftgate secrets rotate` re-encrypted everything under
    /// the current key. `RAFTGATE_SECRET_KEY_PREVIOUS` may give the keys themselves.
    pub secret_key_previous_files: Vec<PathBuf>,
    /// Cluster CA (PEM). With `tls_cert` and `tls_key` (all three or none): the Raft port
    /// speaks mutual TLS only, the admin port HTTPS, and node-to-node admin calls trust
    /// only this CA. See docs/security.md.
    pub tls_ca: Option<PathBuf>,
    /// This node's certificate chain (PEM), signed by `tls_ca`, with SANs for its
    /// advertised host.
    pub tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Shared cluster secret. When set, this node adds members only for callers that
    /// present it (an admin token alone is not enough), and `--join` presents it.
    pub join_token: Option<String>,
    /// On start, make a data dir without a cluster a one-node cluster and write the first
    /// admin token to `DATA_DIR/admin-token` (0600). Does nothing once a cluster exists.
    pub bootstrap: bool,
    /// Allow `serve` without mutual TLS and a join token (plain-text Raft and admin
    /// ports, members added with an admin token). Off: `serve` refuses to start without
    /// them. Meant for a private test network; `raftgate dev` runs this way.
    pub insecure: bool,
    /// Keep one record per data-plane call in the node-local call log (docs/observability.md).
    pub call_log: bool,
    /// Call log records older than this are deleted.
    pub call_log_max_age_secs: u64,
    /// Call log size bound (records' bytes before compression); the oldest go first.
    pub call_log_max_bytes: u64,
    /// `[limits]`: hostile-input limits on every port (docs/data-plane.md).
    pub limits: crate::shield::Limits,
    /// OIDC: the identity provider's issuer (`iss`). When set, admin bearer tokens it
    /// signed are accepted next to the cluster's own (docs/admin-api.md, "OIDC").
    pub oidc_issuer: Option<String>,
    /// OIDC: required `aud` of provider tokens (its client id for raftgate).
    pub oidc_audience: Option<String>,
    /// OIDC: the provider's JWKS URL (https; cached), or `oidc_jwks_file` instead.
    pub oidc_jwks_url: Option<String>,
    /// OIDC: a JWKS file (offline setups; re-read when it changes).
    pub oidc_jwks_file: Option<PathBuf>,
    /// OIDC: claim holding the raftgate role (a string, or a list holding one role).
    pub oidc_role_claim: String,
    /// OIDC: claim holding a tenant-admin's tenant.
    pub oidc_tenant_claim: String,
    /// OIDC: claim used as the caller's subject.
    pub oidc_subject_claim: String,
    /// OIDC: least seconds between two JWKS fetches (an unknown `kid` triggers one).
    pub oidc_jwks_min_refetch_secs: u64,
}

impl std::fmt::Debug for NodeConfig {
    /// Every field but the join token's value, so logging a config never leaks it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("node_id", &self.node_id)
            .field("data_dir", &self.data_dir)
            .field("http_addr", &self.http_addr)
            .field("https_addr", &self.https_addr)
            .field("access_log", &self.access_log)
            .field("access_log_max_bytes", &self.access_log_max_bytes)
            .field("access_log_keep", &self.access_log_keep)
            .field("otlp_endpoint", &self.otlp_endpoint)
            .field("otlp_service_name", &self.otlp_service_name)
            .field("otlp_sample_ratio", &self.otlp_sample_ratio)
            .field("admin_addr", &self.admin_addr)
            .field("raft_addr", &self.raft_addr)
            .field("advertise_host", &self.advertise_host)
            .field("join", &self.join)
            .field("snapshot_logs", &self.snapshot_logs)
            .field("log_level", &self.log_level)
            .field("secret_key_file", &self.secret_key_file)
            .field("secret_key_previous_files", &self.secret_key_previous_files)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field(
                "join_token",
                &self.join_token.as_ref().map(|_| "<redacted>"),
            )
            .field("bootstrap", &self.bootstrap)
            .field("insecure", &self.insecure)
            .field("call_log", &self.call_log)
            .field("call_log_max_age_secs", &self.call_log_max_age_secs)
            .field("call_log_max_bytes", &self.call_log_max_bytes)
            .field("limits", &self.limits)
            .field("oidc_issuer", &self.oidc_issuer)
            .field("oidc_audience", &self.oidc_audience)
            .field("oidc_jwks_url", &self.oidc_jwks_url)
            .field("oidc_jwks_file", &self.oidc_jwks_file)
            .field("oidc_role_claim", &self.oidc_role_claim)
            .field("oidc_tenant_claim", &self.oidc_tenant_claim)
            .field("oidc_subject_claim", &self.oidc_subject_claim)
            .field(
                "oidc_jwks_min_refetch_secs",
                &self.oidc_jwks_min_refetch_secs,
            )
            .finish()
    }
}

/// Smallest accepted `call_log_max_bytes`.
pub const MIN_CALL_LOG_BYTES: u64 = 1 << 20;

/// Smallest accepted `access_log_max_bytes` (a few lines).
pub const MIN_ACCESS_LOG_BYTES: u64 = 1024;
/// Most rotated access log files kept.
pub const MAX_ACCESS_LOG_KEEP: u32 = 1000;

/// Shortest accepted join token: it guards membership, so it must not be guessable.
pub const MIN_JOIN_TOKEN_LEN: usize = 16;

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            node_id: 1,
            data_dir: PathBuf::from("/var/lib/raftgate"),
            http_addr: "0.0.0.0:8080".into(),
            https_addr: None,
            access_log: None,
            access_log_max_bytes: 100 << 20,
            access_log_keep: 5,
            otlp_endpoint: None,
            otlp_service_name: "raftgate".into(),
            otlp_sample_ratio: 1.0,
            admin_addr: "0.0.0.0:9080".into(),
            raft_addr: "0.0.0.0:7080".into(),
            advertise_host: None,
            join: None,
            snapshot_logs: 5000,
            log_level: "info".into(),
            secret_key_file: None,
            secret_key_previous_files: Vec::new(),
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            join_token: None,
            bootstrap: false,
            insecure: false,
            call_log: true,
            call_log_max_age_secs: 7 * 24 * 3600,
            call_log_max_bytes: 1 << 30,
            limits: crate::shield::Limits::default(),
            oidc_issuer: None,
            oidc_audience: None,
            oidc_jwks_url: None,
            oidc_jwks_file: None,
            oidc_role_claim: "raftgate_role".into(),
            oidc_tenant_claim: "raftgate_tenant".into(),
            oidc_subject_claim: "sub".into(),
            oidc_jwks_min_refetch_secs: 30,
        }
    }
}

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("config error: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn bad(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

impl NodeConfig {
    /// Reads a TOML file; unknown keys are errors, so typos do not silently fall back.
    pub fn from_file(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad("--config", format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text)
            .map_err(|e| bad(&format!("{}", path.display()), e.message().to_string()))
    }

    /// Checks every field; called after all overrides are applied.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(bad("node_id", "must be a positive integer"));
        }
        for (key, addr) in [
            ("http_addr", &self.http_addr),
            ("admin_addr", &self.admin_addr),
            ("raft_addr", &self.raft_addr),
        ] {
            addr.parse::<SocketAddr>()
                .map_err(|_| bad(key, format!("'{addr}' is not IP:PORT")))?;
        }
        if let Some(a) = &self.https_addr {
            a.parse::<SocketAddr>()
                .map_err(|_| bad("https_addr", format!("'{a}' is not IP:PORT")))?;
        }
        if self.access_log.as_ref().is_some_and(|p| p.is_empty()) {
            return Err(bad("access_log", "must be '-' or a file path when set"));
        }
        self.validate_exporters()?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(bad("data_dir", "must not be empty"));
        }
        if let Some(h) = &self.advertise_host {
            if h.is_empty() || h.contains(['/', ' ']) {
                return Err(bad(
                    "advertise_host",
                    format!("'{h}' is not a host name or IP"),
                ));
            }
        }
        if let Some(j) = &self.join {
            if !(j.starts_with("http://") || j.starts_with("https://")) {
                return Err(bad(
                    "join",
                    format!("'{j}' must be an http(s) URL of a member's admin API"),
                ));
            }
        }
        if self.snapshot_logs == 0 {
            return Err(bad("snapshot_logs", "must be positive"));
        }
        if self.call_log_max_age_secs == 0 || self.call_log_max_age_secs > u64::MAX / 1_000_000 {
            return Err(bad(
                "call_log_max_age_secs",
                "must be a positive number of seconds",
            ));
        }
        if self.call_log_max_bytes < MIN_CALL_LOG_BYTES {
            return Err(bad(
                "call_log_max_bytes",
                format!("must be at least {MIN_CALL_LOG_BYTES} (1 MiB)"),
            ));
        }
        if self
            .secret_key_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(bad("secret_key_file", "must not be empty when set"));
        }
        self.limits.validate()?;
        self.validate_security()?;
        crate::admin::oidc::OidcSettings::from_config(self).map(|_| ())
    }

    /// Access log rotation and OTLP export settings.
    fn validate_exporters(&self) -> Result<(), ConfigError> {
        if self.access_log_max_bytes < MIN_ACCESS_LOG_BYTES {
            return Err(bad(
                "access_log_max_bytes",
                format!("must be at least {MIN_ACCESS_LOG_BYTES}"),
            ));
        }
        if self.access_log_keep > MAX_ACCESS_LOG_KEEP {
            return Err(bad(
                "access_log_keep",
                format!("must be at most {MAX_ACCESS_LOG_KEEP}"),
            ));
        }
        if let Some(e) = &self.otlp_endpoint {
            let ok = (e.starts_with("http://") || e.starts_with("https://"))
                && e.parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
            if !ok {
                return Err(bad(
                    "otlp_endpoint",
                    format!("'{e}' is not an http(s) URL such as http://collector:4318"),
                ));
            }
        }
        if self.otlp_service_name.is_empty() {
            return Err(bad("otlp_service_name", "must not be empty"));
        }
        if !(0.0..=1.0).contains(&self.otlp_sample_ratio) {
            return Err(bad("otlp_sample_ratio", "must be between 0.0 and 1.0"));
        }
        Ok(())
    }

    /// TLS files all-or-none, join token strength, bootstrap xor join.
    fn validate_security(&self) -> Result<(), ConfigError> {
        let tls = [
            ("tls_ca", &self.tls_ca),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
        ];
        let set: Vec<&str> = tls
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| *k)
            .collect();
        if !set.is_empty() && set.len() < tls.len() {
            let missing: Vec<&str> = tls
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| *k)
                .collect();
            return Err(bad(
                missing[0],
                format!(
                    "tls_ca, tls_cert and tls_key must be set together: {} set, {} missing",
                    set.join(", "),
                    missing.join(", ")
                ),
            ));
        }
        if let Some((key, _)) = tls
            .iter()
            .find(|(_, v)| v.as_ref().is_some_and(|p| p.as_os_str().is_empty()))
        {
            return Err(bad(key, "must not be empty when set"));
        }
        if let Some(t) = &self.join_token {
            if t.trim().len() < MIN_JOIN_TOKEN_LEN {
                return Err(bad(
                    "join_token",
                    format!("must be at least {MIN_JOIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)"),
                ));
            }
        }
        if self.bootstrap && self.join.is_some() {
            return Err(bad(
                "bootstrap",
                "bootstrap (start a new cluster) and join (enter an existing one) exclude each other; set one",
            ));
        }
        if let (Some(_), Some(j)) = (&self.tls_ca, &self.join) {
            if j.starts_with("http://") {
                return Err(bad(
                    "join",
                    format!(
                        "'{j}': with TLS configured, admin ports serve HTTPS; use an https:// URL"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// What `serve` demands beyond a consistent config: mutual TLS and a join token,
    /// unless `insecure` waives them. Separate from [`NodeConfig::validate`] because
    /// `raftgate dev` and embedded test nodes run on loopback without them.
    pub fn check_transport_policy(&self) -> Result<(), ConfigError> {
        if self.insecure {
            return Ok(());
        }
        if !self.tls_enabled() {
            return Err(bad(
                "tls_ca",
                "serve needs mutual TLS between nodes: set tls_ca, tls_cert and tls_key \
                 (`raftgate certs` makes them; docs/security.md), or set insecure = true \
                 (--insecure, RAFTGATE_INSECURE=true) to run plain text on a private network",
            ));
        }
        if self.join_token.is_none() {
            return Err(bad(
                "join_token",
                "serve needs a join token guarding membership: set join_token \
                 (RAFTGATE_JOIN_TOKEN, e.g. `openssl rand -hex 32`, the same on every node), \
                 or set insecure = true to add members with an admin token instead",
            ));
        }
        Ok(())
    }

    /// True when inter-node traffic uses mutual TLS (all three `tls_*` keys set).
    pub fn tls_enabled(&self) -> bool {
        self.tls_ca.is_some() && self.tls_cert.is_some() && self.tls_key.is_some()
    }

    /// The host peers should dial for a listener bound to `bound`.
    pub fn advertised_host(&self, bound: &SocketAddr) -> String {
        if let Some(h) = &self.advertise_host {
            return h.clone();
        }
        if !bound.ip().is_unspecified() {
            return bound.ip().to_string();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "127.0.0.1".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_contract() {
        let c = NodeConfig::default();
        c.validate().expect("defaults valid");
        assert_eq!(
            (
                c.http_addr.as_str(),
                c.admin_addr.as_str(),
                c.raft_addr.as_str()
            ),
            ("0.0.0.0:8080", "0.0.0.0:9080", "0.0.0.0:7080")
        );
    }

    #[test]
    fn toml_unknown_key_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "node_id = 2\nhttp_adr = \"1.2.3.4:1\"\n").expect("write");
        let err = NodeConfig::from_file(&path).expect_err("unknown key");
        assert!(err.to_string().contains("http_adr"), "{err}");
        std::fs::write(&path, "node_id = 2\nraft_addr = \"10.0.0.1:7080\"\n").expect("write");
        let c = NodeConfig::from_file(&path).expect("valid");
        assert_eq!(c.node_id, 2);
        assert_eq!(c.admin_addr, "0.0.0.0:9080");
    }

    #[test]
    fn shipped_examples_are_valid() {
        for (n, text) in [
            (1, include_str!("../../deploy/config/node1.toml")),
            (2, include_str!("../../deploy/config/node2.toml")),
            (3, include_str!("../../deploy/config/node3.toml")),
        ] {
            let c: NodeConfig = toml::from_str(text).expect("example parses");
            c.validate().expect("example valid");
            assert_eq!(c.node_id, n);
            assert_eq!(c.join.is_some(), n != 1);
        }
    }

    #[test]
    fn validation_names_the_key() {
        let c = NodeConfig {
            raft_addr: "nope".into(),
            ..NodeConfig::default()
        };
        assert_eq!(c.validate().expect_err("bad").key, "raft_addr");
        let c = NodeConfig {
            node_id: 0,
            ..NodeConfig::default()
        };
        assert_eq!(c.validate().expect_err("bad").key, "node_id");
        for c in [
            NodeConfig {
                call_log_max_age_secs: 0,
                ..NodeConfig::default()
            },
            NodeConfig {
                call_log_max_bytes: 1000,
                ..NodeConfig::default()
            },
        ] {
            assert!(c
                .validate()
                .expect_err("bad")
                .key
                .starts_with("call_log_max_"));
        }
    }

    #[test]
    fn security_settings_are_checked() {
        let partial = NodeConfig {
            tls_ca: Some("/etc/raftgate/ca.pem".into()),
            tls_cert: Some("/etc/raftgate/node.pem".into()),
            ..NodeConfig::default()
        };
        let err = partial.validate().expect_err("partial TLS");
        assert_eq!(err.key, "tls_key", "{err}");
        assert!(err.message.contains("together"), "{err}");
        let both = NodeConfig {
            bootstrap: true,
            join: Some("https://10.0.0.1:9080".into()),
            ..NodeConfig::default()
        };
        assert_eq!(
            both.validate().expect_err("bootstrap+join").key,
            "bootstrap"
        );
        let short = NodeConfig {
            join_token: Some("short".into()),
            ..NodeConfig::default()
        };
        assert_eq!(short.validate().expect_err("short token").key, "join_token");
        let plain_join = NodeConfig {
            tls_ca: Some("ca.pem".into()),
            tls_cert: Some("n.pem".into()),
            tls_key: Some("n-key.pem".into()),
            join: Some("http://10.0.0.1:9080".into()),
            ..NodeConfig::default()
        };
        assert_eq!(plain_join.validate().expect_err("http join").key, "join");
        let ok = NodeConfig {
            join: Some("https://10.0.0.1:9080".into()),
            join_token: Some("0123456789abcdef0123".into()),
            ..plain_join
        };
        ok.validate().expect("full TLS with https join");
        assert!(ok.tls_enabled());
    }

    #[test]
    fn debug_output_never_shows_the_join_token() {
        let c = NodeConfig {
            join_token: Some("0123456789abcdef-xyzzy".into()),
            ..NodeConfig::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("xyzzy"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn exporter_keys_have_defaults_and_are_checked() {
        let c: NodeConfig = toml::from_str(
            "access_log = \"/tmp/a.log\"\naccess_log_max_bytes = 4096\naccess_log_keep = 2\notlp_endpoint = \"http://collector:4318\"\notlp_sample_ratio = 0.25\n",
        )
        .expect("parses");
        c.validate().expect("valid");
        assert_eq!((c.access_log_max_bytes, c.access_log_keep), (4096, 2));
        assert_eq!(c.otlp_service_name, "raftgate");
        let d = NodeConfig::default();
        assert_eq!((d.access_log_max_bytes, d.access_log_keep), (100 << 20, 5));
        assert_eq!(d.otlp_endpoint, None);
        assert_eq!(d.otlp_sample_ratio, 1.0);
        let mut cases = vec![d.clone(); 4];
        cases[0].access_log_max_bytes = 10;
        cases[1].otlp_endpoint = Some("collector:4318".into());
        cases[2].otlp_sample_ratio = 1.5;
        cases[3].otlp_service_name = String::new();
        let keys = [
            "access_log_max_bytes",
            "otlp_endpoint",
            "otlp_sample_ratio",
            "otlp_service_name",
        ];
        for (key, c) in keys.iter().zip(cases) {
            let e = c.validate().expect_err(key);
            assert_eq!(e.key, *key);
        }
    }
}

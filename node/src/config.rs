//! Node configuration: TOML file → `RAFTGATE_*` environment → command-line flags, then
//! `validate()`. A configuration error names the key and exits with status 64.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything `raftgate serve` needs to run a node.
#[derive(Debug, Clone, Deserialize, PartialEq)]
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
}

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            node_id: 1,
            data_dir: PathBuf::from("/var/lib/raftgate"),
            http_addr: "0.0.0.0:8080".into(),
            https_addr: None,
            access_log: None,
            admin_addr: "0.0.0.0:9080".into(),
            raft_addr: "0.0.0.0:7080".into(),
            advertise_host: None,
            join: None,
            snapshot_logs: 5000,
            log_level: "info".into(),
            secret_key_file: None,
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
        if self
            .secret_key_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(bad("secret_key_file", "must not be empty when set"));
        }
        Ok(())
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
            (1, include_str!("../../deploy/examples/node1.toml")),
            (2, include_str!("../../deploy/examples/node2.toml")),
            (3, include_str!("../../deploy/examples/node3.toml")),
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
    }
}

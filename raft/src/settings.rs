//! Raft tuning knobs: serde defaults, validation, and the openraft `Config` built from them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::tls::PeerTls;

/// Raft timing, snapshot and timeout settings of one node (the `[raft]` config section).
///
/// Durations are milliseconds so they read naturally in TOML. Call
/// [`RaftSettings::validate`] before use; [`crate::RaftNode::start`] does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSettings {
    /// Name shown in openraft's logs.
    pub cluster_name: String,
    /// Leader heartbeat period; also the AppendEntries RPC timeout.
    pub heartbeat_ms: u64,
    /// A follower that hears nothing for a random time in [min, max) starts an election.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and purge the log before it) every this many applied entries.
    pub snapshot_logs_since_last: u64,
    /// Entries kept in the log behind the last snapshot, so briefly lagging followers can
    /// catch up from the log instead of receiving a whole snapshot.
    pub max_in_snapshot_log_to_keep: u64,
    /// Timeout of each InstallSnapshot chunk RPC.
    pub snapshot_chunk_timeout_ms: u64,
    /// TCP connect timeout to a peer.
    pub connect_timeout_ms: u64,
    /// Deadline of a client write or read barrier, forwarding and retries included.
    pub write_timeout_ms: u64,
    /// Deadline of adding or removing a member, a new learner's catch-up included.
    pub membership_timeout_ms: u64,
    /// Deadline of each per-member status RPC in [`crate::RaftNode::status`].
    pub status_timeout_ms: u64,
    /// A learner this many entries or fewer behind the leader is promoted to voter.
    pub catch_up_lag: u64,
    /// Mutual TLS on the Raft port, in and out; plain h2c when `None`. Not part of the
    /// `[raft]` TOML section: the node loads it from its `tls_*` keys.
    #[serde(skip)]
    pub tls: Option<PeerTls>,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            cluster_name: "raftgate".to_string(),
            heartbeat_ms: 150,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            snapshot_logs_since_last: 5000,
            max_in_snapshot_log_to_keep: 200,
            snapshot_chunk_timeout_ms: 3000,
            connect_timeout_ms: 1000,
            write_timeout_ms: 5000,
            membership_timeout_ms: 60_000,
            status_timeout_ms: 500,
            catch_up_lag: 100,
            tls: None,
        }
    }
}

impl RaftSettings {
    /// Checks the settings, naming the first offending key.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("heartbeat_ms", self.heartbeat_ms),
            ("election_timeout_min_ms", self.election_timeout_min_ms),
            ("snapshot_logs_since_last", self.snapshot_logs_since_last),
            ("snapshot_chunk_timeout_ms", self.snapshot_chunk_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("write_timeout_ms", self.write_timeout_ms),
            ("membership_timeout_ms", self.membership_timeout_ms),
            ("status_timeout_ms", self.status_timeout_ms),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("raft.{key} must be greater than 0"));
        }
        if self.election_timeout_min_ms <= self.heartbeat_ms {
            return Err(
                "raft.election_timeout_min_ms must be greater than raft.heartbeat_ms".into(),
            );
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return Err(
                "raft.election_timeout_max_ms must be greater than raft.election_timeout_min_ms"
                    .into(),
            );
        }
        self.openraft_config().map(|_| ())
    }

    /// The openraft configuration these settings describe, validated by openraft too.
    pub fn openraft_config(&self) -> Result<openraft::Config, String> {
        let config = openraft::Config {
            cluster_name: self.cluster_name.clone(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            install_snapshot_timeout: self.snapshot_chunk_timeout_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: self.max_in_snapshot_log_to_keep,
            replication_lag_threshold: self.catch_up_lag.max(1),
            ..Default::default()
        };
        config.validate().map_err(|e| format!("raft: {e}"))
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub(crate) fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
    pub(crate) fn membership_timeout(&self) -> Duration {
        Duration::from_millis(self.membership_timeout_ms)
    }
    pub(crate) fn status_timeout(&self) -> Duration {
        Duration::from_millis(self.status_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert_eq!(RaftSettings::default().validate(), Ok(()));
        let zero = RaftSettings {
            write_timeout_ms: 0,
            ..Default::default()
        };
        assert!(zero
            .validate()
            .unwrap_err()
            .contains("raft.write_timeout_ms"));
        let inverted = RaftSettings {
            election_timeout_max_ms: 400,
            ..Default::default()
        };
        assert!(inverted
            .validate()
            .unwrap_err()
            .contains("election_timeout_max_ms"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let parsed: Result<RaftSettings, _> =
            serde_json::from_str(r#"{"heartbeat_ms": 100, "typo": 1}"#);
        assert!(parsed.is_err());
        let partial: RaftSettings = serde_json::from_str(r#"{"heartbeat_ms": 100}"#).unwrap();
        assert_eq!(partial.election_timeout_min_ms, 500);
    }
}

//! The harness's error type: every failure names what was being done or awaited.

use std::time::Duration;

use crate::client::AdminError;

/// Why a harness operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// The `raftgate` binary is not where we looked.
    #[error("raftgate binary not found at {path}: {hint}")]
    BinaryMissing { path: String, hint: String },
    /// A local I/O operation (spawning, files, sockets) failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A node process exited while we expected it to run.
    #[error("node {node_id} exited {during} with {status}; last log lines:\n{log_tail}")]
    NodeExited {
        node_id: u64,
        during: String,
        status: String,
        log_tail: String,
    },
    /// A bounded wait ran out.
    #[error("timed out after {after:?} waiting for {what}; last observation: {last}")]
    Timeout {
        what: String,
        after: Duration,
        last: String,
    },
    /// The admin API answered with an error or could not be reached (boxed: it is large).
    #[error(transparent)]
    Admin(Box<AdminError>),
    /// An operation was asked of a node that is not running (or is running when it must not be).
    #[error("node index {index}: {problem}")]
    NodeState { index: usize, problem: String },
    /// A fault cannot be injected on this machine (not root, no `iptables`, ...): tests
    /// that need it should report a skip with `reason` rather than fail.
    #[error("cannot inject {fault} here: {reason}")]
    FaultUnavailable { fault: String, reason: String },
    /// An invariant (acknowledged writes present, replicas equal, ...) does not hold.
    #[error("invariant violated: {0}")]
    Invariant(String),
}

impl From<AdminError> for ChaosError {
    fn from(e: AdminError) -> ChaosError {
        ChaosError::Admin(Box::new(e))
    }
}

impl ChaosError {
    /// Wraps an I/O error with a description of what was attempted.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> ChaosError {
        ChaosError::Io {
            what: what.into(),
            source,
        }
    }
}

/// The harness's result type.
pub type Result<T, E = ChaosError> = std::result::Result<T, E>;

//! The typed errors of Raft operations and how openraft's errors map onto them.

use openraft::error::{
    ChangeMembershipError, CheckIsLeaderError, ClientWriteError, Fatal, InitializeError, RaftError,
};
use serde::{Deserialize, Serialize};

use crate::{Node, NodeId};

/// Why a Raft operation (write, read barrier, membership change, init) failed.
///
/// It travels between nodes inside `WireError`, so a forwarded call fails on the follower
/// with the same variant the leader produced. [`RaftGateError::is_retryable`] says whether
/// the caller may try again later; [`RaftGateError::code`] is a stable machine-readable name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RaftGateError {
    /// No leader is known: an election is running or a quorum is lost. Nothing was written.
    #[error("no Raft leader is available (election in progress or quorum lost)")]
    NoLeader,
    /// The operation did not finish in time. A write that timed out may still be applied.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A peer needed for the operation (usually the leader) could not be reached.
    #[error("node {node} is unreachable: {reason}")]
    Unreachable { node: NodeId, reason: String },
    /// This node has no cluster membership yet: initialize it or join it to a cluster.
    #[error("the Raft cluster is not initialized on this node")]
    NotInitialized,
    /// `initialize` on a node that already has a membership (possibly from another cluster).
    #[error("this node is already initialized")]
    AlreadyInitialized,
    /// Another membership change is still in progress; retry shortly.
    #[error("busy: {0}")]
    Busy(String),
    /// The request contradicts the current membership (e.g. same id, different address).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request itself is malformed or not allowed (e.g. removing the last voter).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The local log or state machine failed to read or write.
    #[error("storage error: {0}")]
    Storage(String),
    /// Raft on this node has stopped (shut down, or halted after a storage error).
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// A bug or an unexpected answer from a peer.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RaftGateError {
    /// True when the same request may succeed later without any change by the caller.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RaftGateError::NoLeader
                | RaftGateError::Timeout(_)
                | RaftGateError::Unreachable { .. }
                | RaftGateError::Busy(_)
        )
    }

    /// Stable machine-readable name, for API error bodies and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            RaftGateError::NoLeader => "no_leader",
            RaftGateError::Timeout(_) => "timeout",
            RaftGateError::Unreachable { .. } => "unreachable",
            RaftGateError::NotInitialized => "not_initialized",
            RaftGateError::AlreadyInitialized => "already_initialized",
            RaftGateError::Busy(_) => "busy",
            RaftGateError::Conflict(_) => "conflict",
            RaftGateError::Invalid(_) => "invalid",
            RaftGateError::Storage(_) => "storage",
            RaftGateError::Fatal(_) => "fatal",
            RaftGateError::Internal(_) => "internal",
        }
    }
}

/// Why [`crate::RaftNode::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid raft setting: {0}")]
    Settings(String),
    #[error(transparent)]
    Open(#[from] raftgate_store::OpenError),
    #[error("raft failed to start: {0}")]
    Raft(String),
}

/// The error half of a ClusterService reply, as encoded in its `error` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum WireError {
    /// The receiver is not the leader; nothing was proposed. The caller retries at `leader`.
    NotLeader {
        leader_id: Option<NodeId>,
        leader_node: Option<Node>,
    },
    Failed(RaftGateError),
}

/// The outcome of one attempt at a leader-only operation, local or remote.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Not the leader; nothing was done. Retry at the named leader.
    NotLeader {
        leader_id: Option<NodeId>,
        leader_node: Option<Node>,
    },
    /// The request never left this node (no connection): safe to retry any operation.
    NotSent(RaftGateError),
    /// Failed after the request may have reached the leader.
    Failed(RaftGateError),
}

impl From<WireError> for CallError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NotLeader {
                leader_id,
                leader_node,
            } => CallError::NotLeader {
                leader_id,
                leader_node,
            },
            WireError::Failed(e) => CallError::Failed(e),
        }
    }
}

impl From<CallError> for WireError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::NotLeader {
                leader_id,
                leader_node,
            } => WireError::NotLeader {
                leader_id,
                leader_node,
            },
            CallError::NotSent(e) | CallError::Failed(e) => WireError::Failed(e),
        }
    }
}

impl From<RaftGateError> for CallError {
    fn from(e: RaftGateError) -> Self {
        CallError::Failed(e)
    }
}

pub(crate) fn from_fatal(f: Fatal<NodeId>) -> RaftGateError {
    match f {
        Fatal::StorageError(e) => RaftGateError::Storage(e.to_string()),
        other => RaftGateError::Fatal(other.to_string()),
    }
}

/// Maps a `client_write` / `add_learner` / `change_membership` failure.
pub(crate) fn from_write_error(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> CallError {
    match e {
        RaftError::Fatal(f) => CallError::Failed(from_fatal(f)),
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => CallError::NotLeader {
            leader_id: f.leader_id,
            leader_node: f.leader_node,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            CallError::Failed(match c {
                ChangeMembershipError::InProgress(p) => RaftGateError::Busy(p.to_string()),
                ChangeMembershipError::EmptyMembership(e) => RaftGateError::Invalid(e.to_string()),
                ChangeMembershipError::LearnerNotFound(e) => RaftGateError::Conflict(e.to_string()),
            })
        }
    }
}

/// Maps an `ensure_linearizable` / `get_read_log_id` failure.
pub(crate) fn from_read_error(e: RaftError<NodeId, CheckIsLeaderError<NodeId, Node>>) -> CallError {
    match e {
        RaftError::Fatal(f) => CallError::Failed(from_fatal(f)),
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => CallError::NotLeader {
            leader_id: f.leader_id,
            leader_node: f.leader_node,
        },
        // Leadership could not be confirmed: a new election is likely under way.
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)) => {
            CallError::Failed(RaftGateError::NoLeader)
        }
    }
}

pub(crate) fn from_init_error(
    e: RaftError<NodeId, InitializeError<NodeId, Node>>,
) -> RaftGateError {
    match e {
        RaftError::Fatal(f) => from_fatal(f),
        RaftError::APIError(InitializeError::NotAllowed(_)) => RaftGateError::AlreadyInitialized,
        RaftError::APIError(InitializeError::NotInMembers(e)) => {
            RaftGateError::Internal(e.to_string())
        }
    }
}

//! The openraft type configuration shared by the store, the network and the node.
//!
//! It lives in the store (not in `raft/`) because the storage traits are parameterised by
//! it and dependencies point `raft → store`; `raftgate-raft` re-exports it.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::command::{Command, Response};

/// Node ids are small integers chosen by the operator (`--node-id`).
pub type NodeId = u64;

/// What the cluster knows about a member: where to reach its three ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// `host:port` of the gRPC (Raft) listener, as peers should dial it.
    pub raft_addr: String,
    /// Base URL of the admin API, e.g. `http://10.0.0.1:9080`.
    pub admin_url: String,
    /// `host:port` of the data-plane listener (informational, for status and load balancers).
    pub http_addr: String,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft={} admin={}", self.raft_addr, self.admin_url)
    }
}

openraft::declare_raft_types!(
    /// Raftgate's Raft types: replicated [`Command`]s answered by [`Response`]s.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;

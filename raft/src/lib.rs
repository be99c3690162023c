//! Raft for Raftgate: openraft over the RocksDB store, a tonic transport, membership
//! changes, leader forwarding and linearizable reads.
#![forbid(unsafe_code)]

mod analytics;
mod calllog;
mod client;
mod error;
mod fanout;
mod leader;
mod membership;
mod network;
mod node;
mod peers;
mod server;
mod settings;
mod status;
pub mod tls;
mod tls_live;

pub use analytics::RollupAnswer;
pub use calllog::CallLogSearch;
pub use error::{RaftGateError, StartError};
pub use node::RaftNode;
pub use raftgate_store::{Node, NodeId, TypeConfig};
pub use settings::RaftSettings;
pub use status::{ClusterStatus, MemberStatus};
pub use tls::{PeerTls, ProbeError, ProbedPeer};

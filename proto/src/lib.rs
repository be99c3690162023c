//! Generated protobuf messages and gRPC stubs for node-to-node traffic (see `proto/raftgate.proto`).
#![forbid(unsafe_code)]

/// Package `raftgate.v1`: `RaftService` (consensus) and `ClusterService` (forwarding,
/// read barriers, membership, status).
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("raftgate.v1");
}

pub use v1::*;

/// Largest message a node decodes or encodes: bounds memory a peer can make us allocate,
/// while leaving room for large AppendEntries batches and snapshot chunks.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

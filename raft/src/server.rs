//! The gRPC server side: RaftService into openraft, ClusterService into [`RaftNode`].

use std::sync::Mutex;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{RaftLogId, SnapshotId};
use raftgate_proto::cluster_service_server::{ClusterService, ClusterServiceServer};
use raftgate_proto::raft_reply::Result as ReplyResult;
use raftgate_proto::raft_service_server::{RaftService, RaftServiceServer};
use raftgate_proto::{
    AddMemberRequest, ForwardReply, ForwardRequest, MembershipReply, NodeStatusReply,
    NodeStatusRequest, QueryCallLogsReply, QueryCallLogsRequest, QueryRollupsReply,
    QueryRollupsRequest, RaftReply, RaftRequest, ReadIndexReply, ReadIndexRequest,
    RemoveMemberRequest, SnapshotChunk, MAX_MESSAGE_BYTES,
};
use raftgate_store::codec;
use raftgate_store::types::{SnapshotMeta, Vote};
use raftgate_store::Command;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use crate::error::{CallError, WireError};
use crate::membership;
use crate::node::RaftNode;
use crate::{NodeId, TypeConfig};

/// Both services with our message size limits.
pub(crate) fn routes(node: RaftNode) -> Routes {
    let raft = RaftServiceServer::new(RaftSvc {
        node: node.clone(),
        snapshot_progress: Mutex::new(None),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let cluster = ClusterServiceServer::new(ClusterSvc { node })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    Routes::new(raft).add_service(cluster)
}

/// The tonic server settings used by [`RaftNode::serve`].
pub(crate) fn builder() -> Server {
    Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(5)))
}

/// Decodes a request field; anything a peer sends that does not decode is its mistake.
fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Status> {
    codec::decode(bytes).map_err(|e| Status::invalid_argument(format!("undecodable {what}: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Status> {
    codec::encode(value).map_err(|e| Status::internal(format!("encode reply: {e}")))
}

fn raft_reply<T: Serialize, E: Serialize>(
    res: Result<T, E>,
) -> Result<Response<RaftReply>, Status> {
    let result = match res {
        Ok(v) => ReplyResult::Ok(encode(&v)?),
        Err(e) => ReplyResult::Error(encode(&e)?),
    };
    Ok(Response::new(RaftReply {
        result: Some(result),
    }))
}

struct RaftSvc {
    node: RaftNode,
    /// The snapshot being received and the offset its next chunk may start at. Guards
    /// the in-memory snapshot buffer against a chunk claiming a huge offset.
    snapshot_progress: Mutex<Option<(SnapshotId, u64)>>,
}

impl RaftSvc {
    fn check_chunk(&self, meta: &SnapshotMeta, offset: u64, len: usize) -> Result<(), Status> {
        let mut progress = self
            .snapshot_progress
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let expected = match &*progress {
            Some((id, next)) if *id == meta.snapshot_id => *next,
            _ => 0,
        };
        if offset > expected {
            return Err(Status::invalid_argument(format!(
                "snapshot chunk at offset {offset}, expected <= {expected}"
            )));
        }
        let next = offset.saturating_add(len as u64).max(expected);
        *progress = Some((meta.snapshot_id.clone(), next));
        Ok(())
    }
}

#[tonic::async_trait]
impl RaftService for RaftSvc {
    async fn append_entries(
        &self,
        req: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> =
            decode(&req.get_ref().data, "AppendEntriesRequest")?;
        // openraft assumes entries follow prev_log_id without gaps; refuse anything else.
        let mut next = rpc.prev_log_id.map_or(0, |l| l.index.saturating_add(1));
        for entry in &rpc.entries {
            if entry.get_log_id().index != next {
                return Err(Status::invalid_argument(
                    "AppendEntries entries are not consecutive",
                ));
            }
            next = next.saturating_add(1);
        }
        raft_reply(self.node.raft().append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc: VoteRequest<NodeId> = decode(&req.get_ref().data, "VoteRequest")?;
        raft_reply(self.node.raft().vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<SnapshotChunk>,
    ) -> Result<Response<RaftReply>, Status> {
        let chunk = req.into_inner();
        let vote: Vote = decode(&chunk.vote, "snapshot vote")?;
        let meta: SnapshotMeta = decode(&chunk.meta, "snapshot meta")?;
        self.check_chunk(&meta, chunk.offset, chunk.data.len())?;
        let rpc = InstallSnapshotRequest {
            vote,
            meta,
            offset: chunk.offset,
            data: chunk.data,
            done: chunk.done,
        };
        raft_reply(self.node.raft().install_snapshot(rpc).await)
    }
}

struct ClusterSvc {
    node: RaftNode,
}

/// The `error` field of a ClusterService reply.
fn wire_error(e: CallError) -> Result<Vec<u8>, Status> {
    encode(&WireError::from(e))
}

#[tonic::async_trait]
impl ClusterService for ClusterSvc {
    async fn forward(
        &self,
        req: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        let cmd: Command = decode(&req.get_ref().command, "Command")?;
        let deadline = Instant::now() + self.node.settings().write_timeout();
        let reply = match self.node.propose_local(cmd, deadline).await {
            Ok(resp) => ForwardReply {
                response: encode(&resp)?,
                error: Vec::new(),
            },
            Err(e) => ForwardReply {
                response: Vec::new(),
                error: wire_error(e)?,
            },
        };
        Ok(Response::new(reply))
    }

    async fn read_index(
        &self,
        _req: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexReply>, Status> {
        let deadline = Instant::now() + self.node.settings().write_timeout();
        let reply = match self.node.read_index_local(deadline).await {
            Ok(index) => ReadIndexReply {
                index,
                error: Vec::new(),
            },
            Err(e) => ReadIndexReply {
                index: None,
                error: wire_error(e)?,
            },
        };
        Ok(Response::new(reply))
    }

    async fn add_member(
        &self,
        req: Request<AddMemberRequest>,
    ) -> Result<Response<MembershipReply>, Status> {
        let req = req.into_inner();
        let new = decode(&req.node, "Node")?;
        let deadline = Instant::now() + self.node.settings().membership_timeout();
        let res = membership::add_local(&self.node, req.id, new, req.voter, deadline).await;
        self.membership_reply(res)
    }

    async fn remove_member(
        &self,
        req: Request<RemoveMemberRequest>,
    ) -> Result<Response<MembershipReply>, Status> {
        let deadline = Instant::now() + self.node.settings().membership_timeout();
        let res = membership::remove_local(&self.node, req.get_ref().id, deadline).await;
        self.membership_reply(res)
    }

    async fn node_status(
        &self,
        _req: Request<NodeStatusRequest>,
    ) -> Result<Response<NodeStatusReply>, Status> {
        Ok(Response::new(self.node.local_status()))
    }

    async fn query_call_logs(
        &self,
        req: Request<QueryCallLogsRequest>,
    ) -> Result<Response<QueryCallLogsReply>, Status> {
        let q = decode(&req.get_ref().query, "CallQuery")?;
        let reply = match self.node.query_call_logs_local(q).await {
            Ok(page) => QueryCallLogsReply {
                page: encode(&page)?,
                error: Vec::new(),
            },
            Err(e) => QueryCallLogsReply {
                page: Vec::new(),
                error: wire_error(CallError::Failed(e))?,
            },
        };
        Ok(Response::new(reply))
    }

    async fn query_rollups(
        &self,
        req: Request<QueryRollupsRequest>,
    ) -> Result<Response<QueryRollupsReply>, Status> {
        let q = decode(&req.get_ref().query, "RollupQuery")?;
        let reply = match self.node.query_rollups_local(q).await {
            Ok(page) => QueryRollupsReply {
                page: encode(&page)?,
                error: Vec::new(),
            },
            Err(e) => QueryRollupsReply {
                page: Vec::new(),
                error: wire_error(CallError::Failed(e))?,
            },
        };
        Ok(Response::new(reply))
    }
}

impl ClusterSvc {
    fn membership_reply(
        &self,
        res: Result<(), CallError>,
    ) -> Result<Response<MembershipReply>, Status> {
        let reply = match res {
            Ok(()) => {
                let metrics = self.node.raft().metrics().borrow().clone();
                MembershipReply {
                    membership: encode(metrics.membership_config.membership())?,
                    error: Vec::new(),
                }
            }
            Err(e) => MembershipReply {
                membership: Vec::new(),
                error: wire_error(e)?,
            },
        };
        Ok(Response::new(reply))
    }
}

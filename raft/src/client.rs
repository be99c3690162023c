//! Calls to another node's ClusterService: forwarding to the leader and status fan-out.

use std::future::Future;
use std::time::Duration;

use raftgate_proto::{
    AddMemberRequest, ForwardRequest, NodeStatusReply, NodeStatusRequest, ReadIndexRequest,
    RemoveMemberRequest,
};
use raftgate_store::codec;
use raftgate_store::{Command, Response};

use crate::error::{CallError, RaftGateError, WireError};
use crate::peers::{call_error, Peers};
use crate::{Node, NodeId};

/// Asks the leader `id` at `node` to propose `cmd`; returns the state machine's answer.
pub(crate) async fn forward(
    peers: &Peers,
    id: NodeId,
    node: &Node,
    cmd: &Command,
    ttl: Duration,
) -> Result<Response, CallError> {
    let command =
        codec::encode(cmd).map_err(|e| RaftGateError::Internal(format!("encode command: {e}")))?;
    let mut client = peers
        .cluster_client(&node.raft_addr)
        .map_err(CallError::NotSent)?;
    let reply = call(
        id,
        ttl,
        client.forward(request(ForwardRequest { command }, ttl)),
    )
    .await?;
    check(id, &reply.error)?;
    decode(id, &reply.response, "Response")
}

/// Asks the leader for the log index a linearizable reader must have applied.
pub(crate) async fn read_index(
    peers: &Peers,
    id: NodeId,
    node: &Node,
    ttl: Duration,
) -> Result<Option<u64>, CallError> {
    let mut client = peers
        .cluster_client(&node.raft_addr)
        .map_err(CallError::NotSent)?;
    let reply = call(
        id,
        ttl,
        client.read_index(request(ReadIndexRequest {}, ttl)),
    )
    .await?;
    check(id, &reply.error)?;
    Ok(reply.index)
}

/// Asks the leader to add `member` (as voter or learner).
pub(crate) async fn add_member(
    peers: &Peers,
    id: NodeId,
    node: &Node,
    member: NodeId,
    member_node: &Node,
    voter: bool,
    ttl: Duration,
) -> Result<(), CallError> {
    let encoded = codec::encode(member_node)
        .map_err(|e| RaftGateError::Internal(format!("encode node: {e}")))?;
    let mut client = peers
        .cluster_client(&node.raft_addr)
        .map_err(CallError::NotSent)?;
    let req = AddMemberRequest {
        id: member,
        node: encoded,
        voter,
    };
    let reply = call(id, ttl, client.add_member(request(req, ttl))).await?;
    check(id, &reply.error)
}

/// Asks the leader to remove `member`.
pub(crate) async fn remove_member(
    peers: &Peers,
    id: NodeId,
    node: &Node,
    member: NodeId,
    ttl: Duration,
) -> Result<(), CallError> {
    let mut client = peers
        .cluster_client(&node.raft_addr)
        .map_err(CallError::NotSent)?;
    let reply = call(
        id,
        ttl,
        client.remove_member(request(RemoveMemberRequest { id: member }, ttl)),
    )
    .await?;
    check(id, &reply.error)
}

/// Node `id`'s own view of itself, or why it could not be fetched within `ttl`.
pub(crate) async fn node_status(
    peers: &Peers,
    id: NodeId,
    node: &Node,
    ttl: Duration,
) -> Result<NodeStatusReply, RaftGateError> {
    let call = async {
        let mut client = peers.cluster_client(&node.raft_addr)?;
        let reply = client.node_status(request(NodeStatusRequest {}, ttl)).await;
        reply
            .map(|r| r.into_inner())
            .map_err(|s| RaftGateError::Unreachable {
                node: id,
                reason: format!("{}: {}", s.code(), s.message()),
            })
    };
    match tokio::time::timeout(ttl, call).await {
        Ok(res) => res,
        Err(_) => Err(RaftGateError::Timeout(format!("status of node {id}"))),
    }
}

/// Awaits one RPC to node `id`, giving up after `ttl` even if the peer never answers.
async fn call<T>(
    id: NodeId,
    ttl: Duration,
    rpc: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(ttl, rpc).await {
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(status)) => Err(call_error(id, &status)),
        Err(_) => Err(CallError::Failed(RaftGateError::Timeout(format!(
            "no answer from node {id} in {ttl:?}"
        )))),
    }
}

/// A request carrying `ttl` as its gRPC deadline, so the server abandons it when we do.
fn request<T>(msg: T, ttl: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(ttl.max(Duration::from_millis(1)));
    req
}

/// Turns a non-empty `error` field into the `WireError` it holds.
fn check(id: NodeId, error: &[u8]) -> Result<(), CallError> {
    if error.is_empty() {
        return Ok(());
    }
    let wire: WireError = decode(id, error, "WireError")?;
    Err(wire.into())
}

fn decode<T: serde::de::DeserializeOwned>(
    id: NodeId,
    bytes: &[u8],
    what: &str,
) -> Result<T, CallError> {
    codec::decode(bytes).map_err(|e| {
        CallError::Failed(RaftGateError::Internal(format!(
            "node {id} sent an undecodable {what}: {e}"
        )))
    })
}

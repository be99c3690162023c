//! openraft's outgoing network: Raft RPCs to peers over tonic, with typed error mapping.

use std::error::Error;
use std::future::Future;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use raftgate_proto::raft_reply::Result as ReplyResult;
use raftgate_proto::raft_service_client::RaftServiceClient;
use raftgate_proto::{RaftReply, RaftRequest, SnapshotChunk};
use raftgate_store::codec::{self, CodecError};
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use crate::peers::{is_unreachable, Peers};
use crate::{Node, NodeId, TypeConfig};

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

/// Hands openraft one [`PeerClient`] per replication target, all sharing [`Peers`]' channels.
pub(crate) struct NetworkFactory {
    pub(crate) peers: Peers,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        let client = self
            .peers
            .raft_client(&node.raft_addr)
            .map_err(|e| e.to_string());
        PeerClient {
            target,
            node: node.clone(),
            client,
        }
    }
}

/// The Raft RPC client of one peer. An unusable address is kept as an error and reported
/// as `Unreachable` on every call, so openraft backs off instead of spinning.
pub(crate) struct PeerClient {
    target: NodeId,
    node: Node,
    client: Result<RaftServiceClient<Channel>, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

impl PeerClient {
    /// Runs one unary RPC with openraft's hard deadline, mapping transport failures.
    async fn call<Req, F, Fut, T, E>(&self, ttl: Duration, req: Req, rpc: F) -> RpcResult<T, E>
    where
        F: FnOnce(RaftServiceClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftReply>, tonic::Status>>,
        T: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&Message(e.clone())))),
        };
        let mut request = tonic::Request::new(req);
        request.set_timeout(ttl);
        let reply = match tokio::time::timeout(ttl, rpc(client, request)).await {
            Err(elapsed) => return Err(RPCError::Unreachable(Unreachable::new(&elapsed))),
            Ok(Err(status)) if is_unreachable(&status) => {
                return Err(RPCError::Unreachable(Unreachable::new(&status)))
            }
            Ok(Err(status)) => return Err(RPCError::Network(NetworkError::new(&status))),
            Ok(Ok(reply)) => reply.into_inner(),
        };
        self.decode_reply(reply)
    }

    /// Turns a reply into the response or the peer's own `RaftError` (a `RemoteError`).
    // The error type is dictated by openraft's `RaftNetwork` trait.
    #[allow(clippy::result_large_err)]
    fn decode_reply<T, E>(&self, reply: RaftReply) -> RpcResult<T, E>
    where
        T: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        let network = |e: CodecError| RPCError::Network(NetworkError::new(&e));
        match reply.result {
            Some(ReplyResult::Ok(bytes)) => codec::decode(&bytes).map_err(network),
            Some(ReplyResult::Error(bytes)) => {
                let err: RaftError<NodeId, E> = codec::decode(&bytes).map_err(network)?;
                Err(RPCError::RemoteError(RemoteError::new_with_node(
                    self.target,
                    self.node.clone(),
                    err,
                )))
            }
            None => Err(RPCError::Network(NetworkError::new(&Message(
                "empty Raft reply".into(),
            )))),
        }
    }
}

fn encode_err<E: Error>(e: CodecError) -> RPCError<NodeId, Node, E> {
    RPCError::Network(NetworkError::new(&e))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let data = codec::encode(&rpc).map_err(encode_err)?;
        self.call(
            option.hard_ttl(),
            RaftRequest { data },
            |mut c, r| async move { c.append_entries(r).await },
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let chunk = SnapshotChunk {
            vote: codec::encode(&rpc.vote).map_err(encode_err)?,
            meta: codec::encode(&rpc.meta).map_err(encode_err)?,
            offset: rpc.offset,
            data: rpc.data,
            done: rpc.done,
        };
        self.call(option.hard_ttl(), chunk, |mut c, r| async move {
            c.install_snapshot(r).await
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let data = codec::encode(&rpc).map_err(encode_err)?;
        self.call(
            option.hard_ttl(),
            RaftRequest { data },
            |mut c, r| async move { c.vote(r).await },
        )
        .await
    }

    /// After `Unreachable`, wait 200ms, 400ms, 800ms, 1.6s, then 2s between attempts until
    /// an RPC succeeds again (openraft then drops this iterator).
    fn backoff(&self) -> Backoff {
        Backoff::new(backoff_delays())
    }
}

fn backoff_delays() -> impl Iterator<Item = Duration> + Send + 'static {
    (0u32..).map(|n| {
        Duration::from_millis(200u64.saturating_mul(1 << n.min(4))).min(Duration::from_secs(2))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap() {
        let ms: Vec<u128> = backoff_delays().take(7).map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![200, 400, 800, 1600, 2000, 2000, 2000]);
    }

    #[test]
    fn remote_errors_and_garbage_replies_are_typed() {
        let peer = PeerClient {
            target: 2,
            node: Node::default(),
            client: Err("unused".into()),
        };
        let fatal: RaftError<NodeId> = RaftError::Fatal(openraft::error::Fatal::Stopped);
        let reply = RaftReply {
            result: Some(ReplyResult::Error(codec::encode(&fatal).unwrap())),
        };
        let res: RpcResult<VoteResponse<NodeId>> = peer.decode_reply(reply);
        assert!(matches!(
            res,
            Err(RPCError::RemoteError(RemoteError { target: 2, .. }))
        ));

        let garbage = RaftReply {
            result: Some(ReplyResult::Ok(vec![1, 0xff, 0xff, 0xff])),
        };
        let res: RpcResult<VoteResponse<NodeId>> = peer.decode_reply(garbage);
        assert!(matches!(res, Err(RPCError::Network(_))));
        let res: RpcResult<VoteResponse<NodeId>> = peer.decode_reply(RaftReply { result: None });
        assert!(matches!(res, Err(RPCError::Network(_))));
    }
}

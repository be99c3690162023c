//! openraft's outgoing network: Raft RPCs to peers over tonic, with typed error mapping.

use std::error::Error;
use std::future::Future;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
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

use crate::peers::{is_deadline, is_unreachable, Peers};
use crate::{Node, NodeId, TypeConfig};

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

/// Hands openraft one [`PeerClient`] per replication target, all sharing [`Peers`]' channels.
pub(crate) struct NetworkFactory {
    pub(crate) peers: Peers,
    /// This node's id (named in `Timeout` errors).
    pub(crate) id: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        let client = self
            .peers
            .raft_client(&node.raft_addr)
            .map_err(|e| e.to_string());
        PeerClient {
            id: self.id,
            target,
            node: node.clone(),
            client,
        }
    }
}

/// The Raft RPC client of one peer. An unusable address is kept as an error and reported
/// as `Unreachable` on every call, so openraft backs off instead of spinning.
pub(crate) struct PeerClient {
    id: NodeId,
    target: NodeId,
    node: Node,
    client: Result<RaftServiceClient<Channel>, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

impl PeerClient {
    /// Runs one unary RPC with openraft's hard deadline, mapping transport failures.
    ///
    /// A missed deadline is a `Timeout`, not `Unreachable`: openraft backs off (200 ms,
    /// then doubling) after `Unreachable` and stops replicating to that peer meanwhile,
    /// so one slow fsync on a live follower would stall commits for a second or more
    /// whenever that follower is needed for the quorum. `Unreachable` is kept for a peer
    /// that cannot be connected to.
    async fn call<Req, F, Fut, T, E>(
        &self,
        action: RPCTypes,
        ttl: Duration,
        req: Req,
        rpc: F,
    ) -> RpcResult<T, E>
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
        let timeout = || {
            RPCError::Timeout(Timeout {
                action,
                id: self.id,
                target: self.target,
                timeout: ttl,
            })
        };
        let reply = match tokio::time::timeout(ttl, rpc(client, request)).await {
            Err(_) => return Err(timeout()),
            Ok(Err(status)) if is_deadline(&status) => return Err(timeout()),
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
            RPCTypes::AppendEntries,
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
        self.call(
            RPCTypes::InstallSnapshot,
            option.hard_ttl(),
            chunk,
            |mut c, r| async move { c.install_snapshot(r).await },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let data = codec::encode(&rpc).map_err(encode_err)?;
        self.call(
            RPCTypes::Vote,
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

    /// A peer that accepts connections and never answers is slow, not gone: a `Timeout`
    /// (openraft retries at the next heartbeat), while a closed port is `Unreachable`
    /// (openraft backs off).
    #[tokio::test]
    async fn a_silent_peer_times_out_and_a_closed_port_is_unreachable() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap().to_string();
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = silent.accept().await {
                held.push(sock);
            }
        });
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let peers = Peers::new(Duration::from_millis(500));
        let vote = VoteRequest::new(openraft::Vote::new(1, 1), None);
        for (addr, want_timeout) in [(silent_addr, true), (closed, false)] {
            let mut peer = PeerClient {
                id: 1,
                target: 2,
                node: Node::default(),
                client: peers.raft_client(&addr).map_err(|e| e.to_string()),
            };
            let option = RPCOption::new(Duration::from_millis(300));
            let res = peer.vote(vote.clone(), option).await;
            match res {
                Err(RPCError::Timeout(t)) => {
                    assert!(want_timeout, "{addr}: closed port reported as a timeout");
                    assert_eq!((t.id, t.target, t.action), (1, 2, RPCTypes::Vote));
                }
                Err(RPCError::Unreachable(_)) => {
                    assert!(!want_timeout, "{addr}: a silent peer must be a Timeout")
                }
                other => panic!("{addr}: unexpected {other:?}"),
            }
        }
        holder.abort();
    }

    #[test]
    fn remote_errors_and_garbage_replies_are_typed() {
        let peer = PeerClient {
            id: 1,
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

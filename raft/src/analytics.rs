//! Cluster-wide analytics: every member's node-local rollups, asked concurrently over the
//! peer channels with a per-node deadline, merged by (minute, key). Counts add exactly
//! and latency sketches merge without losing their error bound, so the merged answer is
//! the cluster's — minus the members named in `missing`.

use std::collections::BTreeMap;
use std::time::Duration;

use raftgate_proto::QueryRollupsRequest;
use raftgate_store::codec;
use raftgate_store::rollup::{merge_pages, RollupPage, RollupQuery, Stats};

use crate::fanout::{decode_reply, rpc_failed};
use crate::node::RaftNode;
use crate::{Node, NodeId, RaftGateError};

/// A merged analytics answer.
#[derive(Debug, Clone, Default)]
pub struct RollupAnswer {
    /// Merged stats per (minute, key): minute is 0 when grouped by key, key is empty when
    /// grouped by minute.
    pub groups: BTreeMap<(u64, String), Stats>,
    /// Members that did not answer in time (or failed), with the reason.
    pub missing: BTreeMap<NodeId, String>,
    /// Some member hit its scan or group limit: its part is incomplete.
    pub truncated: bool,
}

impl RollupAnswer {
    /// True when some member's data may be missing from the answer.
    pub fn partial(&self) -> bool {
        !self.missing.is_empty() || self.truncated
    }
}

impl RaftNode {
    /// This node's rollup store, for the node's call log writer.
    pub fn rollups(&self) -> &raftgate_store::RollupStore {
        &self.inner.rollup
    }

    /// Asks every member of the current membership (and this node), each within
    /// `per_node`, for its rollups matching `q`, and merges the answers.
    pub async fn query_rollups(&self, q: RollupQuery, per_node: Duration) -> RollupAnswer {
        let (answers, missing) = self
            .fan_out(per_node, "analytics query", |id, node| {
                let q = &q;
                async move {
                    match node {
                        None => self.query_rollups_local(q.clone()).await,
                        Some(node) => self.query_rollups_peer(id, &node, q, per_node).await,
                    }
                }
            })
            .await;
        let (groups, truncated) = merge_pages(answers.into_iter().map(|(_, p)| p).collect());
        RollupAnswer {
            groups,
            missing,
            truncated,
        }
    }

    /// This node's own rollups (RocksDB reads run on the blocking pool).
    pub(crate) async fn query_rollups_local(
        &self,
        q: RollupQuery,
    ) -> Result<RollupPage, RaftGateError> {
        let store = self.inner.rollup.clone();
        tokio::task::spawn_blocking(move || store.query(&q))
            .await
            .map_err(|e| RaftGateError::Internal(format!("rollup query task: {e}")))?
            .map_err(|e| RaftGateError::Storage(e.to_string()))
    }

    async fn query_rollups_peer(
        &self,
        id: NodeId,
        node: &Node,
        q: &RollupQuery,
        ttl: Duration,
    ) -> Result<RollupPage, RaftGateError> {
        let query =
            codec::encode(q).map_err(|e| RaftGateError::Internal(format!("encode query: {e}")))?;
        let mut client = self.inner.peers.cluster_client(&node.raft_addr)?;
        let mut req = tonic::Request::new(QueryRollupsRequest { query });
        req.set_timeout(ttl.max(Duration::from_millis(1)));
        let reply = client
            .query_rollups(req)
            .await
            .map_err(|s| rpc_failed(id, s))?
            .into_inner();
        decode_reply(id, &reply.page, &reply.error, "rollup page")
    }
}

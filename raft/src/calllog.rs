//! Cluster-wide call log search: every member's node-local call log, asked concurrently
//! over the peer channels with a per-node deadline, merged into one page.

use std::collections::BTreeMap;
use std::time::Duration;

use raftgate_proto::QueryCallLogsRequest;
use raftgate_store::calllog::{merge_pages, CallPage, CallQuery, CallRecord, Pos, MAX_SCAN};
use raftgate_store::{codec, CallLogStore};

use crate::fanout::{decode_reply, rpc_failed};
use crate::node::RaftNode;
use crate::{Node, NodeId, RaftGateError};

/// Most records one node returns per query, whatever a caller asks for.
pub const MAX_PAGE: u32 = 1000;

/// A merged search over every member.
#[derive(Debug, Clone, Default)]
pub struct CallLogSearch {
    /// Newest first, at most the asked limit.
    pub items: Vec<CallRecord>,
    /// Cursor for the next page; `None` when every answering node is exhausted.
    pub next: Option<Pos>,
    /// Members that did not answer in time (or failed), with the reason.
    pub missing: BTreeMap<NodeId, String>,
    /// Items of this page per answering member (0 included).
    pub counts: BTreeMap<NodeId, usize>,
}

impl CallLogSearch {
    /// True when some member's records may be missing from the answer.
    pub fn partial(&self) -> bool {
        !self.missing.is_empty()
    }
}

impl RaftNode {
    /// This node's call log, for the node's writer task.
    pub fn call_logs(&self) -> &CallLogStore {
        &self.inner.calllog
    }

    /// Searches every member of the current membership (and this node), each within
    /// `per_node`, and merges the answers in (time, node, seq) descending order.
    pub async fn search_call_logs(&self, q: CallQuery, per_node: Duration) -> CallLogSearch {
        let limit = q.limit.min(MAX_PAGE);
        let q = CallQuery { limit, ..q };
        let (answers, missing) = self
            .fan_out(per_node, "call log query", |id, node| {
                let q = &q;
                async move {
                    match node {
                        None => self.query_call_logs_local(q.clone()).await,
                        Some(node) => self.query_peer(id, &node, q, per_node).await,
                    }
                }
            })
            .await;
        let mut out = CallLogSearch {
            missing,
            ..CallLogSearch::default()
        };
        let mut pages = Vec::new();
        for (id, page) in answers {
            out.counts.insert(id, 0);
            pages.push(page);
        }
        let merged = merge_pages(pages, limit as usize);
        for r in &merged.items {
            *out.counts.entry(r.node_id).or_default() += 1;
        }
        out.items = merged.items;
        out.next = merged.next;
        out
    }

    /// This node's own answer (RocksDB reads run on the blocking pool).
    pub(crate) async fn query_call_logs_local(
        &self,
        q: CallQuery,
    ) -> Result<CallPage, RaftGateError> {
        let store = self.inner.calllog.clone();
        let id = self.inner.id;
        let q = CallQuery {
            limit: q.limit.min(MAX_PAGE),
            ..q
        };
        tokio::task::spawn_blocking(move || store.query(id, &q, MAX_SCAN))
            .await
            .map_err(|e| RaftGateError::Internal(format!("call log query task: {e}")))?
            .map_err(|e| RaftGateError::Storage(e.to_string()))
    }

    async fn query_peer(
        &self,
        id: NodeId,
        node: &Node,
        q: &CallQuery,
        ttl: Duration,
    ) -> Result<CallPage, RaftGateError> {
        let query =
            codec::encode(q).map_err(|e| RaftGateError::Internal(format!("encode query: {e}")))?;
        let mut client = self.inner.peers.cluster_client(&node.raft_addr)?;
        let mut req = tonic::Request::new(QueryCallLogsRequest { query });
        req.set_timeout(ttl.max(Duration::from_millis(1)));
        let reply = client
            .query_call_logs(req)
            .await
            .map_err(|s| rpc_failed(id, s))?
            .into_inner();
        let page: CallPage = decode_reply(id, &reply.page, &reply.error, "call log page")?;
        // A page that breaks the order or names another node would corrupt the merge.
        let ordered = page.items.windows(2).all(|w| w[0].pos() > w[1].pos());
        let foreign = page
            .items
            .iter()
            .map(|r| r.node_id)
            .chain(page.resume.map(|p| p.node));
        if !ordered || foreign.into_iter().any(|n| n != id) {
            return Err(RaftGateError::Internal(format!(
                "node {id} sent call log records out of order or of another node"
            )));
        }
        Ok(page)
    }
}

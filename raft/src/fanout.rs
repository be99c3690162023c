//! Asking every member at once, for the cluster-wide queries (call logs, analytics): one
//! request per member with a per-node deadline; the members that did not answer are
//! named with the reason, never silently left out.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures::future::join_all;
use raftgate_store::codec;
use serde::de::DeserializeOwned;

use crate::node::RaftNode;
use crate::{Node, NodeId, RaftGateError};

/// The answers of the members that answered, and why each other member did not.
pub(crate) type FanOut<T> = (Vec<(NodeId, T)>, BTreeMap<NodeId, String>);

impl RaftNode {
    /// Runs `ask` for every member of the current membership and for this node (`None`:
    /// answer locally; `Some`: the member to call), each bounded by `per_node`.
    pub(crate) async fn fan_out<T, F, Fut>(
        &self,
        per_node: Duration,
        what: &str,
        ask: F,
    ) -> FanOut<T>
    where
        F: Fn(NodeId, Option<Node>) -> Fut,
        Fut: Future<Output = Result<T, RaftGateError>>,
    {
        let mut members: BTreeMap<NodeId, Option<Node>> = self
            .inner
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, Some(n.clone())))
            .collect();
        members.insert(self.inner.id, None);
        let asks = members.into_iter().map(|(id, node)| {
            let answer = ask(id, node);
            async move {
                let res = match tokio::time::timeout(per_node, answer).await {
                    Ok(r) => r,
                    Err(_) => Err(RaftGateError::Timeout(format!(
                        "node {id} did not answer the {what} within {per_node:?}"
                    ))),
                };
                (id, res)
            }
        });
        let mut answers = Vec::new();
        let mut missing = BTreeMap::new();
        for (id, res) in join_all(asks).await {
            match res {
                Ok(v) => answers.push((id, v)),
                Err(e) => {
                    missing.insert(id, e.to_string());
                }
            }
        }
        (answers, missing)
    }
}

/// A failed query RPC to member `id`.
pub(crate) fn rpc_failed(id: NodeId, s: tonic::Status) -> RaftGateError {
    RaftGateError::Unreachable {
        node: id,
        reason: format!("{}: {}", s.code(), s.message()),
    }
}

/// Decodes member `id`'s `(page, error)` reply to a query RPC: its error when it sent
/// one, else its page, which must decode.
pub(crate) fn decode_reply<T: DeserializeOwned>(
    id: NodeId,
    page: &[u8],
    error: &[u8],
    what: &str,
) -> Result<T, RaftGateError> {
    if !error.is_empty() {
        let reason = match codec::decode::<crate::error::WireError>(error) {
            Ok(crate::error::WireError::Failed(e)) => e.to_string(),
            Ok(other) => format!("{other:?}"),
            Err(e) => format!("undecodable error: {e}"),
        };
        return Err(RaftGateError::Unreachable { node: id, reason });
    }
    codec::decode(page)
        .map_err(|e| RaftGateError::Internal(format!("node {id} sent an undecodable {what}: {e}")))
}

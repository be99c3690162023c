//! Cluster status for operators: membership from this node, live progress from each member.

use futures::future::join_all;
use raftgate_proto::NodeStatusReply;
use raftgate_store::codec;
use serde::{Deserialize, Serialize};

use crate::node::RaftNode;
use crate::{client, Node, NodeId};

/// The cluster as seen from the node that answered (`cluster status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The node that built this report.
    pub node_id: NodeId,
    /// Set once the cluster's `InitCluster` command is applied.
    pub cluster_id: Option<String>,
    pub leader: Option<NodeId>,
    pub term: u64,
    /// Every voter and learner of the current membership, by id.
    pub members: Vec<MemberStatus>,
}

/// One member: its configured addresses, and its live state if it answered in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: NodeId,
    pub raft_addr: String,
    pub admin_url: String,
    pub http_addr: String,
    /// False for learners (replicate and serve, never vote).
    pub voter: bool,
    /// Whether the member answered the status call within the status timeout.
    pub reachable: bool,
    /// "Leader", "Follower", "Candidate", "Learner" or "Shutdown", as the member reports it.
    pub role: Option<String>,
    pub term: Option<u64>,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// Why the member is unreachable, when it is.
    pub error: Option<String>,
}

impl RaftNode {
    /// Membership from this node's view; per-member progress fetched concurrently with the
    /// status timeout, so a dead member costs at most that long.
    pub async fn status(&self) -> ClusterStatus {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let ttl = self.inner.settings.status_timeout();
        let probes = membership.nodes().map(|(&id, node)| {
            let node = node.clone();
            let voter = voters.contains(&id);
            async move {
                let live = if id == self.inner.id {
                    Ok(self.local_status())
                } else {
                    client::node_status(&self.inner.peers, id, &node, ttl).await
                };
                member(id, node, voter, live)
            }
        });
        let members = join_all(probes).await;
        ClusterStatus {
            node_id: self.inner.id,
            cluster_id: self.cluster_id(),
            leader: metrics.current_leader,
            term: metrics.current_term,
            members,
        }
    }

    /// This node's own view, as served by the NodeStatus RPC.
    pub(crate) fn local_status(&self) -> NodeStatusReply {
        let m = self.inner.raft.metrics().borrow().clone();
        NodeStatusReply {
            id: self.inner.id,
            state: format!("{:?}", m.state),
            current_term: m.current_term,
            // Encoding plain openraft structs cannot fail; an empty field just reads as unknown.
            vote: codec::encode(&m.vote).unwrap_or_default(),
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            leader_id: m.current_leader,
            membership: codec::encode(m.membership_config.as_ref()).unwrap_or_default(),
            cluster_id: self.cluster_id(),
            snapshot_index: m.snapshot.map(|l| l.index),
        }
    }

    fn cluster_id(&self) -> Option<String> {
        self.inner
            .config
            .load()
            .state
            .cluster()
            .map(|c| c.cluster_id.clone())
    }
}

fn member(
    id: NodeId,
    node: Node,
    voter: bool,
    live: Result<NodeStatusReply, crate::RaftGateError>,
) -> MemberStatus {
    let mut status = MemberStatus {
        id,
        raft_addr: node.raft_addr,
        admin_url: node.admin_url,
        http_addr: node.http_addr,
        voter,
        reachable: false,
        role: None,
        term: None,
        last_log_index: None,
        applied_index: None,
        error: None,
    };
    match live {
        Ok(r) if r.id == id => {
            status.reachable = true;
            status.role = Some(r.state);
            status.term = Some(r.current_term);
            status.last_log_index = r.last_log_index;
            status.applied_index = r.applied_index;
        }
        Ok(r) => status.error = Some(format!("address answered as node {}, not {id}", r.id)),
        Err(e) => status.error = Some(e.to_string()),
    }
    status
}

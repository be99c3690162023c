//! Leader-side membership changes: idempotent add (learner → caught up → voter) and remove.

use std::collections::BTreeSet;

use openraft::ChangeMembers;
use tokio::time::{timeout_at, Instant};

use crate::error::{from_write_error, CallError, RaftGateError};
use crate::node::RaftNode;
use crate::{Node, NodeId};

/// Adds `id` at `new` as a learner, waits for it to catch up, and promotes it if `voter`.
/// Re-running it after a partial failure continues where it stopped.
pub(crate) async fn add_local(
    node: &RaftNode,
    id: NodeId,
    new: Node,
    voter: bool,
    deadline: Instant,
) -> Result<(), CallError> {
    if new.raft_addr.trim().is_empty() {
        return Err(RaftGateError::Invalid(format!("node {id} has no raft address")).into());
    }
    let membership = ensure_leader(node)?;
    let is_voter = membership.voter_ids().any(|v| v == id);
    match membership.get_node(&id) {
        Some(existing) if existing != &new => {
            return Err(RaftGateError::Conflict(format!(
                "node {id} is already a member with different addresses ({existing}); remove it first"
            ))
            .into());
        }
        Some(_) if is_voter && !voter => {
            return Err(
                RaftGateError::Conflict(format!("node {id} is a voter, not a learner")).into(),
            );
        }
        Some(_) if is_voter || !voter => return Ok(()),
        Some(_) => {} // A learner to promote: an earlier attempt stopped half-way.
        None => {
            if let Some((other, _)) = membership
                .nodes()
                .find(|(_, n)| n.raft_addr == new.raft_addr)
            {
                return Err(RaftGateError::Conflict(format!(
                    "raft address {} is already used by node {other}",
                    new.raft_addr
                ))
                .into());
            }
            let added = timeout_at(deadline, node.inner.raft.add_learner(id, new, false)).await;
            added
                .map_err(|_| timeout(format!("adding node {id} as a learner")))?
                .map_err(from_write_error)?;
        }
    }
    if !voter {
        return Ok(());
    }
    wait_caught_up(node, id, deadline).await?;
    let promote = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
    let promoted = timeout_at(deadline, node.inner.raft.change_membership(promote, true)).await;
    promoted
        .map_err(|_| timeout(format!("promoting node {id} to voter")))?
        .map_err(from_write_error)?;
    Ok(())
}

/// Removes `id` (voter or learner) from the membership; absent is already done.
pub(crate) async fn remove_local(
    node: &RaftNode,
    id: NodeId,
    deadline: Instant,
) -> Result<(), CallError> {
    let membership = ensure_leader(node)?;
    if membership.get_node(&id).is_none() {
        return Ok(());
    }
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let change = if voters.contains(&id) {
        if voters.len() == 1 {
            return Err(RaftGateError::Invalid(format!(
                "node {id} is the last voter; it cannot be removed"
            ))
            .into());
        }
        ChangeMembers::RemoveVoters(BTreeSet::from([id]))
    } else {
        ChangeMembers::RemoveNodes(BTreeSet::from([id]))
    };
    let removed = timeout_at(deadline, node.inner.raft.change_membership(change, false)).await;
    removed
        .map_err(|_| timeout(format!("removing node {id}")))?
        .map_err(from_write_error)?;
    Ok(())
}

/// The current membership if this node leads, else where the leader is.
fn ensure_leader(node: &RaftNode) -> Result<openraft::Membership<NodeId, Node>, CallError> {
    let metrics = node.inner.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership().clone();
    if metrics.current_leader == Some(node.inner.id) && metrics.state.is_leader() {
        return Ok(membership);
    }
    let leader_node = metrics
        .current_leader
        .and_then(|l| membership.get_node(&l).cloned());
    Err(CallError::NotLeader {
        leader_id: metrics.current_leader,
        leader_node,
    })
}

/// Waits until the leader has replicated to `id` within `catch_up_lag` entries of its log.
async fn wait_caught_up(node: &RaftNode, id: NodeId, deadline: Instant) -> Result<(), CallError> {
    let lag = node.inner.settings.catch_up_lag;
    let wait = node.inner.raft.wait(Some(RaftNode::remaining(deadline)));
    let caught_up = wait
        .metrics(
            |m| match &m.replication {
                // No longer leader: stop waiting, reported below.
                None => true,
                Some(repl) => {
                    let matched = repl.get(&id).and_then(|l| l.as_ref()).map(|l| l.index);
                    matched.is_some_and(|i| i.saturating_add(lag) >= m.last_log_index.unwrap_or(0))
                }
            },
            format!("learner {id} catching up"),
        )
        .await
        .map_err(|e| timeout(format!("waiting for learner {id} to catch up: {e}")))?;
    if caught_up.replication.is_none() {
        ensure_leader(node)?;
    }
    Ok(())
}

fn timeout(what: String) -> CallError {
    CallError::Failed(RaftGateError::Timeout(what))
}

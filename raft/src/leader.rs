//! Leader-only operations from any node: run locally when leading, else forwarded once to
//! the leader over ClusterService, retried while the leader is unknown or changing.

use std::future::Future;
use std::time::Duration;

use raftgate_store::{Command, Response};
use tokio::time::Instant;

use crate::error::{from_write_error, CallError, RaftGateError};
use crate::node::RaftNode;
use crate::{client, membership, Node, NodeId};

/// Attempts per operation; with the doubling pause this spans a few elections.
const MAX_ATTEMPTS: u32 = 10;
const FIRST_PAUSE: Duration = Duration::from_millis(25);
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// Whether an operation may be repeated after an attempt whose outcome is unknown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Reads and membership changes: a repeat has the same effect.
    Safe,
    /// Writes: repeat only when the previous attempt certainly did not reach a leader.
    OnlyIfNotSent,
}

impl RaftNode {
    /// Replicates `cmd` and returns the state machine's answer for it.
    ///
    /// Runs `client_write` here when this node leads; otherwise forwards the command to the
    /// leader (one round trip). A rejected command is `Ok` with the `ApplyError` inside the
    /// [`Response`]. Errors: [`RaftGateError::NoLeader`] when no leader emerged within the
    /// write timeout, [`RaftGateError::Timeout`] when the outcome is unknown (the command
    /// may still be applied later).
    pub async fn write(&self, cmd: Command) -> Result<Response, RaftGateError> {
        let deadline = Instant::now() + self.inner.settings.write_timeout();
        let local = || self.propose_local(cmd.clone(), deadline);
        let remote = |id, node: Node, ttl| {
            let cmd = cmd.clone();
            async move { client::forward(&self.inner.peers, id, &node, &cmd, ttl).await }
        };
        self.with_leader("write", deadline, Repeat::OnlyIfNotSent, local, remote)
            .await
    }

    /// Returns once this node's state machine reflects every write acknowledged before the
    /// call: a read of [`RaftNode::config`] afterwards is linearizable.
    ///
    /// The leader confirms its leadership with a quorum; a follower asks the leader for its
    /// read index (ReadIndex RPC) and waits until it has applied that far.
    pub async fn linearizable_barrier(&self) -> Result<(), RaftGateError> {
        let deadline = Instant::now() + self.inner.settings.write_timeout();
        let local = || self.read_index_local(deadline);
        let remote = |id, node: Node, ttl| async move {
            client::read_index(&self.inner.peers, id, &node, ttl).await
        };
        let index = self
            .with_leader("read barrier", deadline, Repeat::Safe, local, remote)
            .await?;
        let wait = self.inner.raft.wait(Some(RaftNode::remaining(deadline)));
        wait.applied_index_at_least(index, "linearizable barrier")
            .await
            .map(|_| ())
            .map_err(|e| match e {
                openraft::metrics::WaitError::Timeout(..) => {
                    RaftGateError::Timeout(format!("applying up to the read index {index:?}"))
                }
                openraft::metrics::WaitError::ShuttingDown => {
                    RaftGateError::Fatal("shutting down".into())
                }
            })
    }

    /// Adds node `id` as a voter: learner first, promoted once it has caught up.
    ///
    /// Idempotent: a voter with the same addresses is `Ok`. The same id with different
    /// addresses is [`RaftGateError::Conflict`]. Blocks up to the membership timeout.
    pub async fn add_member(&self, id: NodeId, node: Node) -> Result<(), RaftGateError> {
        self.change_member(id, Some((node, true))).await
    }

    /// Adds node `id` as a non-voting learner (replicates and serves, never votes).
    pub async fn add_learner(&self, id: NodeId, node: Node) -> Result<(), RaftGateError> {
        self.change_member(id, Some((node, false))).await
    }

    /// Removes node `id` from the cluster. Removing an absent node is `Ok`; removing the
    /// last voter is refused with [`RaftGateError::Invalid`].
    pub async fn remove_member(&self, id: NodeId) -> Result<(), RaftGateError> {
        self.change_member(id, None).await
    }

    async fn change_member(
        &self,
        id: NodeId,
        add: Option<(Node, bool)>,
    ) -> Result<(), RaftGateError> {
        let deadline = Instant::now() + self.inner.settings.membership_timeout();
        let local = || {
            let add = add.clone();
            async move {
                match add {
                    Some((node, voter)) => {
                        membership::add_local(self, id, node, voter, deadline).await
                    }
                    None => membership::remove_local(self, id, deadline).await,
                }
            }
        };
        let remote = |leader, leader_node: Node, ttl| {
            let add = add.clone();
            let peers = &self.inner.peers;
            async move {
                match add {
                    Some((node, voter)) => {
                        client::add_member(peers, leader, &leader_node, id, &node, voter, ttl).await
                    }
                    None => client::remove_member(peers, leader, &leader_node, id, ttl).await,
                }
            }
        };
        self.with_leader("membership change", deadline, Repeat::Safe, local, remote)
            .await
            .map(|_| ())
    }

    /// Leader side of a write: `client_write`, given up (outcome unknown) at `deadline`.
    pub(crate) async fn propose_local(
        &self,
        cmd: Command,
        deadline: Instant,
    ) -> Result<Response, CallError> {
        match tokio::time::timeout_at(deadline, self.inner.raft.client_write(cmd)).await {
            Err(_) => Err(CallError::Failed(RaftGateError::Timeout(
                "the write was not committed in time; it may still be applied".into(),
            ))),
            Ok(Ok(resp)) => Ok(resp.data),
            Ok(Err(e)) => Err(from_write_error(e)),
        }
    }

    /// Leader side of a read barrier: confirms leadership, returns the index to wait for.
    pub(crate) async fn read_index_local(
        &self,
        deadline: Instant,
    ) -> Result<Option<u64>, CallError> {
        match tokio::time::timeout_at(deadline, self.inner.raft.get_read_log_id()).await {
            Err(_) => Err(CallError::Failed(RaftGateError::Timeout(
                "confirming leadership with a quorum".into(),
            ))),
            Ok(Ok((read_log_id, _applied))) => Ok(read_log_id.map(|l| l.index)),
            Ok(Err(e)) => Err(crate::error::from_read_error(e)),
        }
    }

    /// Runs `local` here; when another node leads, `remote` there; retries bounded by
    /// [`MAX_ATTEMPTS`] and `deadline` while no leader is known or the leader moves.
    async fn with_leader<T, L, LF, R, RF>(
        &self,
        what: &str,
        deadline: Instant,
        repeat: Repeat,
        local: L,
        remote: R,
    ) -> Result<T, RaftGateError>
    where
        L: Fn() -> LF,
        LF: Future<Output = Result<T, CallError>>,
        R: Fn(NodeId, Node, Duration) -> RF,
        RF: Future<Output = Result<T, CallError>>,
    {
        let mut pause = FIRST_PAUSE;
        let mut last = RaftGateError::NoLeader;
        for attempt in 1..=MAX_ATTEMPTS {
            let tried = self.current_leader();
            let outcome = match local().await {
                Err(CallError::NotLeader {
                    leader_id: Some(id),
                    leader_node: Some(node),
                }) if id != self.inner.id => remote(id, node, RaftNode::remaining(deadline)).await,
                other => other,
            };
            last = match outcome {
                Ok(v) => return Ok(v),
                Err(CallError::NotLeader { .. }) if !self.is_initialized() => {
                    return Err(RaftGateError::NotInitialized)
                }
                Err(CallError::NotLeader { .. }) => RaftGateError::NoLeader,
                Err(CallError::NotSent(e)) => e,
                Err(CallError::Failed(e)) if repeat == Repeat::Safe && e.is_retryable() => e,
                Err(CallError::Failed(e)) => return Err(e),
            };
            let left = RaftNode::remaining(deadline);
            if left.is_zero() || attempt == MAX_ATTEMPTS {
                break;
            }
            tracing::debug!(what, attempt, error = %last, "leader not reachable yet; retrying");
            // A leader other than the one just tried ends the pause at once: after a
            // failover the backoff has grown to hundreds of milliseconds, which every
            // waiting write would otherwise add to the outage.
            tokio::select! {
                () = tokio::time::sleep(pause.min(left)) => {}
                () = self.leader_changed_from(tried) => {}
            }
            pause = (pause * 2).min(MAX_PAUSE);
        }
        Err(last)
    }
}

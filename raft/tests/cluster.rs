//! Three real nodes: bootstrap, joins, writes through followers, read barriers, failover, removal.

mod support;

use raftgate_raft::{Node, RaftGateError, RaftSettings};
use raftgate_store::ApplyError;
use support::{eventually, tenant, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_replicate_forward_and_fail_over() {
    let mut cluster = Cluster::form(3, RaftSettings::default()).await;
    let n1 = cluster.node(1).raft.clone();
    assert_eq!(
        n1.initialize().await,
        Err(RaftGateError::AlreadyInitialized)
    );

    // Joins are idempotent from any node; a different address for a known id is refused.
    let me3 = cluster.node(3).me.clone();
    cluster
        .node(2)
        .raft
        .add_member(3, me3.clone())
        .await
        .expect("re-adding node 3 via a follower");
    let moved = Node {
        raft_addr: "127.0.0.1:1".into(),
        ..me3
    };
    assert!(matches!(
        n1.add_member(3, moved).await,
        Err(RaftGateError::Conflict(_))
    ));

    let status = n1.status().await;
    assert_eq!(status.leader, Some(1));
    assert_eq!(status.cluster_id.as_deref(), Some("test-cluster"));
    assert_eq!(status.members.len(), 3);
    assert!(
        status.members.iter().all(|m| m.voter && m.reachable),
        "{status:?}"
    );

    // A write through a follower is forwarded to the leader and applied everywhere.
    let resp = cluster
        .node(3)
        .raft
        .write(tenant("t1"))
        .await
        .expect("write via follower");
    assert!(resp.result.is_ok(), "{resp:?}");
    for id in 1..=3 {
        eventually("t1 applied on every node", || async {
            cluster.node(id).has_tenant("t1").then_some(())
        })
        .await;
    }
    // A rejected command is an answer, not an error.
    let again = cluster
        .node(2)
        .raft
        .write(tenant("t1"))
        .await
        .expect("duplicate write");
    assert!(
        matches!(again.result, Err(ApplyError::AlreadyExists { .. })),
        "{again:?}"
    );

    // After a barrier, a follower's local state includes every acknowledged write.
    n1.write(tenant("t2")).await.expect("write on leader");
    cluster
        .node(2)
        .raft
        .linearizable_barrier()
        .await
        .expect("barrier on follower");
    assert!(cluster.node(2).has_tenant("t2"));
    n1.linearizable_barrier().await.expect("barrier on leader");

    // Leader failover: a write sent right after the leader dies waits out the election
    // (retrying at the new leader), and the survivors keep accepting writes.
    let old = cluster.leader().await;
    let watchers: Vec<_> = cluster
        .nodes
        .iter()
        .filter(|(id, _)| **id != old)
        .map(|(_, n)| {
            let raft = n.raft.clone();
            tokio::spawn(async move {
                raft.leader_changed_from(Some(old)).await;
                raft.current_leader()
            })
        })
        .collect();
    let (_dir, _addr) = cluster.nodes.remove(&old).expect("leader").stop().await;
    let survivor = *cluster.nodes.keys().next().expect("a survivor");
    // Waiters on the old leader (a quota sync, a paused retry) are released when the
    // survivors stop following it, whatever they follow next.
    for w in watchers {
        let now = tokio::time::timeout(std::time::Duration::from_secs(30), w)
            .await
            .expect("survivors notice the leader is gone")
            .expect("watcher task");
        assert_ne!(now, Some(old));
    }
    // A forward that was already on the wire to the dying leader has an unknown outcome
    // and is answered as an error (never retried blindly: it may have been applied), so
    // the client retries, as a real one would. A forward never sent is retried inside.
    let mut resp = None;
    for _ in 0..20 {
        match cluster.node(survivor).raft.write(tenant("t3")).await {
            Ok(r) => {
                resp = Some(r);
                break;
            }
            Err(RaftGateError::Unreachable { .. } | RaftGateError::Timeout(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Err(e) => panic!("write during failover: {e:?}"),
        }
    }
    let resp = resp.expect("a write during failover succeeds within 5 s");
    // A retried write of an already applied create answers "exists": both mean applied.
    assert!(
        resp.result.is_ok() || matches!(resp.result, Err(ApplyError::AlreadyExists { .. })),
        "{resp:?}"
    );
    let new = cluster.leader().await;
    assert_ne!(new, old);
    let follower = *cluster
        .nodes
        .keys()
        .find(|id| **id != new)
        .expect("a follower");
    for id in [new, follower] {
        eventually("t3 applied on survivors", || async {
            cluster.node(id).has_tenant("t3").then_some(())
        })
        .await;
    }
    let status = cluster.node(follower).raft.status().await;
    let dead = status
        .members
        .iter()
        .find(|m| m.id == old)
        .expect("old leader still a member");
    assert!(!dead.reachable && dead.error.is_some(), "{dead:?}");

    // Shrink to one voter; the last voter cannot be removed.
    cluster
        .node(follower)
        .raft
        .remove_member(old)
        .await
        .expect("remove dead node");
    cluster
        .node(new)
        .raft
        .remove_member(old)
        .await
        .expect("removing an absent node is ok");
    cluster
        .node(new)
        .raft
        .remove_member(follower)
        .await
        .expect("remove follower");
    let last = cluster.node(new).raft.remove_member(new).await;
    assert!(matches!(last, Err(RaftGateError::Invalid(_))), "{last:?}");
    let voters: Vec<u64> = cluster
        .node(new)
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    assert_eq!(voters, vec![new]);

    for (_, node) in std::mem::take(&mut cluster.nodes) {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninitialized_node_reports_not_initialized() {
    let cluster = Cluster::start(
        1,
        RaftSettings {
            write_timeout_ms: 1000,
            ..Default::default()
        },
    )
    .await;
    let node = &cluster.node(1).raft;
    assert!(!node.is_initialized());
    assert_eq!(
        node.write(tenant("t")).await,
        Err(RaftGateError::NotInitialized)
    );
    assert_eq!(
        node.linearizable_barrier().await,
        Err(RaftGateError::NotInitialized)
    );
    let status = node.status().await;
    assert!(status.members.is_empty() && status.leader.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learners_join_without_voting_and_can_be_promoted() {
    let mut cluster = Cluster::form(1, RaftSettings::default()).await;
    let leader = cluster.node(1).raft.clone();
    let tmp = tempfile::tempdir().expect("tempdir");
    let learner =
        support::TestNode::start(2, tmp.path(), "127.0.0.1:0", RaftSettings::default()).await;
    leader
        .add_learner(2, learner.me.clone())
        .await
        .expect("add learner");
    leader
        .add_learner(2, learner.me.clone())
        .await
        .expect("add learner again");
    leader
        .write(tenant("seen-by-learner"))
        .await
        .expect("write");
    eventually("learner applies", || async {
        learner.has_tenant("seen-by-learner").then_some(())
    })
    .await;
    let status = learner.raft.status().await;
    let member = status
        .members
        .iter()
        .find(|m| m.id == 2)
        .expect("learner listed");
    assert!(!member.voter && member.reachable, "{member:?}");
    assert_eq!(member.role.as_deref(), Some("Learner"));

    // Promotion, asked through the learner itself (forwarded to the leader).
    learner
        .raft
        .add_member(2, learner.me.clone())
        .await
        .expect("promote");
    let voters: Vec<u64> = leader
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    assert_eq!(voters, vec![1, 2]);
    learner.stop().await;
    for (_, node) in std::mem::take(&mut cluster.nodes) {
        node.stop().await;
    }
}

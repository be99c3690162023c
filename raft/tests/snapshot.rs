//! A node that was down while the leader compacted its log catches up by snapshot.

mod support;

use raftgate_raft::RaftSettings;
use support::{eventually, tenant, Cluster, TestNode};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lagging_node_catches_up_via_snapshot() {
    let settings = RaftSettings {
        snapshot_logs_since_last: 50,
        max_in_snapshot_log_to_keep: 0,
        ..Default::default()
    };
    let mut cluster = Cluster::form(3, settings.clone()).await;
    let leader = cluster.leader().await;
    let lagger = *cluster
        .nodes
        .keys()
        .find(|id| **id != leader)
        .expect("a follower");
    let applied_before = cluster
        .node(lagger)
        .raft
        .metrics()
        .borrow()
        .last_applied
        .map(|l| l.index);
    let (dir, addr) = cluster.nodes.remove(&lagger).expect("lagger").stop().await;

    let writer = cluster.node(leader).raft.clone();
    for i in 0..150 {
        let resp = writer
            .write(tenant(&format!("t{i}")))
            .await
            .expect("write while one node is down");
        assert!(resp.result.is_ok(), "{resp:?}");
    }
    // The leader has purged the entries the lagger needs: only a snapshot can catch it up.
    eventually("leader log purged past the lagger", || async {
        let purged = writer.metrics().borrow().purged.map(|l| l.index);
        (purged > applied_before).then_some(())
    })
    .await;

    let back = TestNode::start(lagger, &dir, &addr, settings).await;
    eventually("restarted node has the last write", || async {
        back.has_tenant("t149").then_some(())
    })
    .await;
    let metrics = back.raft.metrics().borrow().clone();
    let snapshot = metrics.snapshot.expect("restarted node holds a snapshot");
    assert!(
        Some(snapshot.index) > applied_before,
        "snapshot {snapshot} should come from the leader"
    );
    cluster.nodes.insert(lagger, back);

    // And it keeps following normal replication afterwards.
    writer
        .write(tenant("after"))
        .await
        .expect("write after catch-up");
    eventually("lagger applies new writes", || async {
        cluster.node(lagger).has_tenant("after").then_some(())
    })
    .await;
    for (_, node) in std::mem::take(&mut cluster.nodes) {
        node.stop().await;
    }
}

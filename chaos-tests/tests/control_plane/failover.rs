//! (b) kill -9 of the leader, with and without a snapshot while it is down; (c) wiping a
//! node, removing it and rejoining it fresh; (d) every acknowledged write survives both.

use std::time::Duration;

use raftgate_chaos::ledger::AckedWrite;
use raftgate_chaos::{
    wait, AckLedger, AdminClient, ClusterBuilder, LocalCluster, Read, Writer, WriterStats,
};

use crate::{serial, CATCH_UP};

/// Writes that must succeed after a fault: more than `RAFTGATE_SNAPSHOT_LOGS` (50) twice
/// over in the snapshot variants, so the survivors snapshot and purge their logs.
const WRITES_AFTER_FAULT_SNAPSHOT: usize = 150;
const WRITES_AFTER_FAULT: usize = 20;
const WRITES_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill9_failover_and_catch_up_from_the_log() {
    leader_failover(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill9_failover_and_catch_up_from_a_snapshot() {
    leader_failover(true).await;
}

async fn leader_failover(snapshot: bool) {
    let _serial = serial().await;
    let builder = if snapshot {
        ClusterBuilder::new(3).snapshot_logs(50)
    } else {
        ClusterBuilder::new(3)
    };
    let mut cluster = builder.form().await.expect("a 3-node cluster forms");
    let ledger = AckLedger::new();
    let prefix = if snapshot { "b-snap" } else { "b-log" };
    let writer = Writer::spawn(&ledger, cluster.clients().expect("clients"), prefix, 2);
    ledger
        .wait_len(10, WRITES_TIMEOUT)
        .await
        .expect("writes are acknowledged before the crash");

    let old = cluster
        .wait_leader()
        .await
        .expect("a leader before the crash");
    cluster.kill9(old).expect("kill -9 the leader");
    let acked_at_crash = ledger.len();
    let new = cluster
        .wait_leader()
        .await
        .expect("a new leader among the survivors after kill -9 of the leader");
    assert_ne!(new, old, "the killed node cannot be the leader");
    let more = if snapshot {
        WRITES_AFTER_FAULT_SNAPSHOT
    } else {
        WRITES_AFTER_FAULT
    };
    ledger
        .wait_len(acked_at_crash + more, WRITES_TIMEOUT)
        .await
        .unwrap_or_else(|e| {
            panic!("writes continue through the survivors after the leader crashed: {e}")
        });

    cluster
        .restart(old)
        .await
        .expect("the old leader restarts on its data dir");
    let newest = ledger.last().expect("some writes were acknowledged");
    let restarted = cluster.client(old).expect("client");
    wait_readable(&restarted, &newest).await;

    let stats = writer.stop().await;
    eprintln!("writer '{prefix}': {stats:?}");
    finish(&cluster, &ledger).await;
    assert_clear_unavailability(&stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_node_removed_and_rejoined_catches_up_by_snapshot() {
    let _serial = serial().await;
    let mut cluster = ClusterBuilder::new(3)
        .snapshot_logs(50)
        .form()
        .await
        .expect("a 3-node cluster forms");
    let ledger = AckLedger::new();
    let writer = Writer::spawn(&ledger, cluster.clients().expect("clients"), "c-wipe", 2);
    ledger
        .wait_len(10, WRITES_TIMEOUT)
        .await
        .expect("writes are acknowledged before the wipe");

    let leader = cluster.wait_leader().await.expect("a leader");
    let victim = cluster.followers(leader)[0];
    let victim_id = cluster.node_id(victim);
    cluster.kill9(victim).expect("kill -9 the follower");
    cluster.wipe(victim).expect("wipe the follower's data dir");
    cluster
        .client(leader)
        .expect("client")
        .remove_member(victim_id)
        .await
        .unwrap_or_else(|e| {
            panic!("DELETE /admin/v1/cluster/members/{victim_id} on the leader: {e}")
        });
    cluster
        .wait_for_voters(2)
        .await
        .expect("2 voters after the removal");
    let acked = ledger.len();
    ledger
        .wait_len(acked + WRITES_AFTER_FAULT_SNAPSHOT, WRITES_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("writes continue on 2 nodes while the wiped one is out: {e}"));

    cluster
        .restart(victim)
        .await
        .expect("the wiped node starts with an empty data dir");
    cluster
        .join(victim)
        .await
        .unwrap_or_else(|e| panic!("the wiped node {victim_id} rejoins: {e}"));
    cluster
        .wait_for_voters(3)
        .await
        .expect("3 voters after the rejoin");
    let newest = ledger.last().expect("some writes were acknowledged");
    wait_readable(&cluster.client(victim).expect("client"), &newest).await;

    let stats = writer.stop().await;
    eprintln!("writer 'c-wipe': {stats:?}");
    finish(&cluster, &ledger).await;
    assert_clear_unavailability(&stats);
    let snapshot_lines = cluster
        .log_tail(victim, 100_000)
        .lines()
        .filter(|l| l.to_lowercase().contains("snapshot"))
        .count();
    eprintln!("node {victim_id}'s log mentions 'snapshot' on {snapshot_lines} line(s)");
}

/// Waits until `client`'s local replica has `write` (the newest acknowledged one).
async fn wait_readable(client: &AdminClient, write: &AckedWrite) {
    let what = format!(
        "{}/{} (newest acknowledged write) in the local replica of restarted {}",
        write.collection,
        write.id,
        client.base_url()
    );
    wait::until(&what, CATCH_UP, || async {
        client
            .get(&write.collection, &write.id, Read::Local)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// (d): every acknowledged write is on every node, and the replicas are identical.
async fn finish(cluster: &LocalCluster, ledger: &AckLedger) {
    assert_eq!(
        cluster.running().len(),
        cluster.len(),
        "all nodes run at the end"
    );
    ledger
        .verify(&cluster.clients().expect("clients"), CATCH_UP)
        .await
        .unwrap_or_else(|e| panic!("{} acknowledged writes checked: {e}", ledger.len()));
    cluster
        .wait_converged(&["tenants"], CATCH_UP)
        .await
        .expect("replicas converge");
}

/// DESIGN.md: while a quorum or the leader is missing, admin writes fail with a clear 503.
/// Dead nodes give transport errors; any other answer (a 500, a 4xx) is a node bug.
fn assert_clear_unavailability(stats: &WriterStats) {
    let unclear: Vec<_> = stats
        .samples
        .iter()
        .filter(|(kind, _)| *kind != "transport" && !kind.starts_with("503"))
        .collect();
    assert!(
        unclear.is_empty(),
        "writes failed during the fault with other than 503: {:?}; first of each: {unclear:?}",
        stats.errors
    );
}

/// A node that lost its quorum is not `/readyz` (no leader) but still
/// `/readyz/data-plane` (it routes from its replica), so an operator can choose which
/// one the load balancer checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_quorum_is_not_ready_but_still_data_plane_ready() {
    let _serial = serial().await;
    let mut cluster = ClusterBuilder::new(3)
        .form()
        .await
        .expect("a 3-node cluster forms");
    let survivor = cluster.client(2).expect("client");
    let ready = |path: &'static str| {
        let c = survivor.clone();
        async move {
            c.raw(reqwest::Method::GET, path, None)
                .await
                .map(|r| (r.status.as_u16(), r.body))
                .map_err(|e| e.to_string())
        }
    };
    assert_eq!(ready("/readyz").await.expect("readyz").0, 200);
    assert_eq!(ready("/readyz/data-plane").await.expect("dp").0, 200);
    cluster.kill9(0).expect("kill node 1");
    cluster.kill9(1).expect("kill node 2");
    // Once it gives up on the dead leader, /readyz fails...
    let reason = wait::until("the survivor's /readyz to fail", CATCH_UP, || async {
        match ready("/readyz").await? {
            (503, body) => Ok(body),
            (s, body) => Err(format!("{s}: {body}")),
        }
    })
    .await
    .expect("/readyz turns 503 without a quorum");
    assert!(reason.contains("no Raft leader"), "{reason}");
    // ...while the data plane stays ready.
    let (status, body) = ready("/readyz/data-plane").await.expect("dp");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["scope"], "data-plane");
    assert!(v["leader"].is_null(), "{v}");
}

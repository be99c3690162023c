//! The RocksDB store across restarts and snapshot transfer: what a crash or a lagging
//! follower relies on.

use std::io::Cursor;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, LogId, RaftLogReader};
use raftgate_store::model::{
    Kind, QuotaMetric, QuotaMode, QuotaPolicy, QuotaScope, QuotaWindow, Resource, Tenant,
};
use raftgate_store::quota::{CounterId, QuotaSync, Units};
use raftgate_store::types::Entry;
use raftgate_store::{Command, Op};

fn tenant_entry(index: u64, id: &str) -> Entry {
    let op = Op::Create(Resource::Tenant(Tenant {
        id: id.into(),
        name: String::new(),
        description: String::new(),
        labels: Default::default(),
        guardrails: None,
    }));
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Command {
            at_ms: 5,
            actor: "t".into(),
            op,
            origin: None,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_reopen_and_is_published() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut s = raftgate_store::open(dir.path()).expect("open");
        let replies =
            s.sm.apply((1..=3).map(|i| tenant_entry(i, &format!("t{i}"))))
                .await
                .expect("apply");
        assert!(replies.iter().all(|r| r.result.is_ok()));
        let dup = s.sm.apply([tenant_entry(4, "t1")]).await.expect("apply");
        assert!(
            dup[0].result.is_err(),
            "duplicate create must be rejected by apply"
        );
        let cfg = s.config.load();
        assert_eq!(cfg.applied_index(), 4);
        assert_eq!(
            cfg.state.revision(),
            3,
            "a rejected command does not move the revision"
        );
        assert_eq!(cfg.state.count(Kind::Tenant), 3);
    }
    let mut s = raftgate_store::open(dir.path()).expect("reopen");
    let (applied, _) = s.sm.applied_state().await.expect("applied");
    assert_eq!(applied.map(|l| l.index), Some(4));
    assert_eq!(s.config.load().state.count(Kind::Tenant), 3);
    assert_eq!(s.config.load().state.revision(), 3);
    assert!(s.config.load().state.get(Kind::Tenant, "t2").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_entries_survive_reopen_and_purge() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut s = raftgate_store::open(dir.path()).expect("open");
        s.log
            .blocking_append((1..=10).map(|i| tenant_entry(i, "x")))
            .await
            .expect("append");
        s.log
            .purge(LogId::new(CommittedLeaderId::new(1, 1), 4))
            .await
            .expect("purge");
    }
    let mut s = raftgate_store::open(dir.path()).expect("reopen");
    let state = s.log.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(4));
    assert_eq!(state.last_log_id.map(|l| l.index), Some(10));
    let entries = s.log.try_get_log_entries(0..100).await.expect("read");
    assert_eq!(entries.first().map(|e| e.log_id.index), Some(5));
    assert_eq!(entries.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_installs_on_another_node() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let mut src = raftgate_store::open(a.path()).expect("open a");
    src.sm
        .apply((1..=5).map(|i| tenant_entry(i, &format!("t{i}"))))
        .await
        .expect("apply");
    let snap = src
        .sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");
    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(5));

    let mut dst = raftgate_store::open(b.path()).expect("open b");
    dst.sm
        .apply([tenant_entry(1, "stale")])
        .await
        .expect("apply");
    let data = snap.snapshot.into_inner();
    dst.sm
        .install_snapshot(&snap.meta, Box::new(Cursor::new(data.clone())))
        .await
        .expect("install");
    let cfg = dst.config.load();
    assert_eq!(cfg.state.count(Kind::Tenant), 5);
    assert!(
        cfg.state.get(Kind::Tenant, "stale").is_none(),
        "install replaces, not merges"
    );
    drop(dst);

    // After a restart the installed state and the snapshot are both still there.
    let mut dst = raftgate_store::open(b.path()).expect("reopen b");
    assert_eq!(dst.config.load().state.count(Kind::Tenant), 5);
    let current = dst
        .sm
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("some snapshot");
    assert_eq!(current.meta.last_log_id.map(|l| l.index), Some(5));

    // Corrupt snapshot data is an error, not a panic, and changes nothing.
    let mut garbage = data;
    garbage.truncate(garbage.len() / 2);
    let err = dst
        .sm
        .install_snapshot(&snap.meta, Box::new(Cursor::new(garbage)))
        .await;
    assert!(err.is_err());
    assert_eq!(dst.config.load().state.count(Kind::Tenant), 5);
}

fn entry(index: u64, op: Op) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Command {
            at_ms: 1_000,
            actor: "t".into(),
            op,
            origin: None,
        }),
    }
}

fn quota_sync(serial: u64, counter: &CounterId, units: u64) -> Op {
    Op::QuotaSync(QuotaSync {
        node: 2,
        epoch: 1,
        serial,
        voters: 3,
        asks: vec![Units {
            counter: counter.clone(),
            units,
        }],
        returns: Vec::new(),
        usage: vec![Units {
            counter: counter.clone(),
            units: 1,
        }],
    })
}

/// Quota grants and the dedup table are durable and travel in snapshots: a retry that
/// reaches a restarted or snapshot-restored node is still answered, not granted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_ledger_survives_reopen_and_snapshots() {
    let policy = Op::Create(Resource::QuotaPolicy(QuotaPolicy {
        id: "q".into(),
        tenant: None,
        scope: vec![QuotaScope::ApiKey],
        metric: QuotaMetric::Requests,
        window: QuotaWindow::Minute,
        limit: 90,
        mode: QuotaMode::Strict,
        fail_open: false,
        hard: false,
    }));
    let c = CounterId {
        policy: "q".into(),
        key: "api_key=k".into(),
        window_start_ms: 0,
        window_end_ms: 60_000,
    };
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let first;
    {
        let mut s = raftgate_store::open(a.path()).expect("open");
        let replies =
            s.sm.apply([entry(1, policy), entry(2, quota_sync(1, &c, 50))])
                .await
                .expect("apply");
        let applied = replies[1].result.clone().expect("sync applied");
        first = applied.quota.expect("a quota reply");
        assert_eq!(first.grants[0].units, 30, "a third of 90 for 3 voters");
        assert_eq!(
            s.config.load().state.revision(),
            1,
            "quota bookkeeping is not a configuration change"
        );
    }
    let mut s = raftgate_store::open(a.path()).expect("reopen");
    let ledger = s.config.load().state.ledger().clone();
    let counter = ledger.counter(&c).expect("counter persisted");
    assert_eq!((counter.total_granted(), counter.used), (30, 1));
    let retry =
        s.sm.apply([entry(3, quota_sync(1, &c, 50))])
            .await
            .expect("apply");
    assert_eq!(
        retry[0].result.clone().expect("ok").quota,
        Some(first.clone())
    );
    assert_eq!(
        s.config
            .load()
            .state
            .ledger()
            .counter(&c)
            .unwrap()
            .total_granted(),
        30
    );

    let snap =
        s.sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build");
    let mut other = raftgate_store::open(b.path()).expect("open b");
    other
        .sm
        .install_snapshot(
            &snap.meta,
            Box::new(Cursor::new(snap.snapshot.into_inner())),
        )
        .await
        .expect("install");
    drop(other);
    let mut other = raftgate_store::open(b.path()).expect("reopen b");
    assert_eq!(
        other.config.load().state.ledger(),
        s.config.load().state.ledger()
    );
    let retry = other
        .sm
        .apply([entry(4, quota_sync(1, &c, 50))])
        .await
        .expect("apply");
    assert_eq!(retry[0].result.clone().expect("ok").quota, Some(first));
    let next = other
        .sm
        .apply([entry(5, quota_sync(2, &c, 50))])
        .await
        .expect("apply");
    assert_eq!(
        next[0].result.clone().expect("ok").quota.unwrap().grants[0].units,
        20,
        "a third of the 60 left"
    );

    // Deleting the policy drops its counters, on disk too.
    let del = other
        .sm
        .apply([entry(
            6,
            Op::Delete {
                kind: Kind::QuotaPolicy,
                id: "q".into(),
            },
        )])
        .await
        .expect("apply");
    assert!(del[0].result.is_ok());
    drop(other);
    let other = raftgate_store::open(b.path()).expect("reopen b");
    assert!(other.config.load().state.ledger().is_empty());
}

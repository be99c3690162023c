//! `Op::Restore` through the RocksDB state machine: the replaced state is published at
//! once, survives a reopen (every old key gone), and entries after it in the same apply
//! call are kept.

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, LogId};
use raftgate_store::model::{Kind, Resource, Tenant};
use raftgate_store::types::Entry;
use raftgate_store::{Command, Op};

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

fn tenant(id: &str) -> Op {
    Op::Create(Resource::Tenant(Tenant {
        id: id.into(),
        name: String::new(),
        description: String::new(),
        labels: Default::default(),
        guardrails: None,
    }))
}

fn tenants(s: &raftgate_store::Storage) -> Vec<String> {
    s.config
        .load()
        .state
        .list(Kind::Tenant)
        .map(|t| t.resource.id().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_replaces_the_stored_state_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut s = raftgate_store::open(dir.path()).expect("open");
        let init = Op::InitCluster {
            cluster_id: "c".into(),
            token_secret: vec![1; 32],
        };
        let first = [
            entry(1, init),
            entry(2, tenant("t1")),
            entry(3, tenant("t2")),
        ];
        s.sm.apply(first).await.expect("apply");
        let image = s.config.load().state.to_image();
        let delete = Op::Delete {
            kind: Kind::Tenant,
            id: "t1".into(),
        };
        s.sm.apply([entry(4, delete), entry(5, tenant("t3"))])
            .await
            .expect("apply");
        assert_eq!(tenants(&s), ["t2", "t3"]);

        let replies =
            s.sm.apply([entry(6, Op::Restore(image)), entry(7, tenant("t4"))])
                .await
                .expect("apply");
        assert!(replies.iter().all(|r| r.result.is_ok()), "{replies:?}");
        assert_eq!(tenants(&s), ["t1", "t2", "t4"], "published at once");
        assert_eq!(s.config.load().state.revision(), 7);
    }
    let s = raftgate_store::open(dir.path()).expect("reopen");
    assert_eq!(tenants(&s), ["t1", "t2", "t4"], "the restore was persisted");
    let cfg = s.config.load();
    assert_eq!(cfg.applied_index(), 7);
    let t1 = cfg.state.get(Kind::Tenant, "t1").expect("t1");
    assert_eq!(
        t1.revision, 6,
        "restored resources carry the restore's index"
    );
    assert_eq!(
        cfg.state.cluster().map(|c| c.cluster_id.as_str()),
        Some("c")
    );
}

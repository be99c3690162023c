//! `Op::Restore`: what a restore replaces, what it keeps, and what it refuses.

use super::*;
use crate::quota::{CounterId, QuotaSync, Units};

/// [`base`] with a cluster identity: a restore needs an initialized cluster.
fn initialized() -> State {
    let mut s = base();
    let init = Op::InitCluster {
        cluster_id: "live-cluster".into(),
        token_secret: b"secret-of-the-live-cluster".to_vec(),
    };
    ok(&mut s, 6, init);
    s
}

fn policy(id: &str, window: QuotaWindow) -> Resource {
    Resource::QuotaPolicy(QuotaPolicy {
        id: id.into(),
        tenant: None,
        scope: vec![QuotaScope::ApiKey],
        metric: QuotaMetric::Requests,
        window,
        limit: 100,
        mode: QuotaMode::Strict,
        fail_open: false,
        hard: false,
    })
}

fn counter(policy: &str, start: u64) -> CounterId {
    CounterId {
        policy: policy.into(),
        key: "api_key=k".into(),
        window_start_ms: start,
        window_end_ms: start + 60_000,
    }
}

fn sync(node: u64, serial: u64, ids: &[CounterId]) -> Op {
    Op::QuotaSync(QuotaSync {
        node,
        epoch: 7,
        serial,
        voters: 1,
        asks: ids
            .iter()
            .map(|c| Units {
                counter: c.clone(),
                units: 10,
            })
            .collect(),
        returns: Vec::new(),
        usage: Vec::new(),
    })
}

fn restore(s: &mut State, index: u64, image: StateImage) -> Result<Applied, ApplyError> {
    s.apply(index, &cmd(Op::Restore(image)), &mut Vec::new())
}

#[test]
fn restore_replaces_resources_keeps_identity_and_takes_the_token_secret() {
    let mut src = initialized();
    ok(&mut src, 10, Op::Create(tenant("t1")));
    ok(&mut src, 11, Op::Create(consumer("c1", "t1")));
    let mut image = src.to_image();
    if let Some(c) = image.cluster.as_mut() {
        c.cluster_id = "other-cluster".into();
        c.token_secret = b"secret-of-the-backup".to_vec();
    }

    let mut live = initialized();
    ok(&mut live, 7, Op::Create(tenant("gone")));
    let identity = live.cluster().cloned().expect("initialized");
    let mut changes = Vec::new();
    let applied = live
        .apply(40, &cmd(Op::Restore(image)), &mut changes)
        .expect("restore applies");
    assert_eq!(applied.revision, 40);
    assert_eq!(changes, vec![Change::All]);
    assert_eq!(live.revision(), 40);
    assert!(live.get(Kind::Tenant, "gone").is_none());
    let c1 = live.get(Kind::Consumer, "c1").expect("restored consumer");
    assert_eq!(
        c1.revision, 40,
        "restored resources carry the restore's index"
    );
    assert_eq!(
        c1.created_at_ms,
        src.get(Kind::Consumer, "c1").expect("source").created_at_ms
    );
    let meta = live.cluster().expect("still initialized");
    assert_eq!(meta.cluster_id, identity.cluster_id);
    assert_eq!(meta.created_at_ms, identity.created_at_ms);
    assert_eq!(meta.token_secret, b"secret-of-the-backup".to_vec());
}

#[test]
fn invalid_images_change_nothing() {
    let mut live = initialized();
    ok(&mut live, 7, Op::Create(tenant("keep")));
    let before = live.clone();

    let mut dangling = initialized();
    ok(&mut dangling, 10, Op::Create(tenant("t1")));
    ok(&mut dangling, 11, Op::Create(consumer("c1", "t1")));
    let mut image = dangling.to_image();
    image
        .resources
        .retain(|s| s.resource.kind() != Kind::Tenant);
    let e = restore(&mut live, 20, image).expect_err("a dangling consumer");
    assert!(matches!(e, ApplyError::Dangling { .. }), "{e:?}");

    let mut twice = dangling.to_image();
    let dup = twice.resources[0].clone();
    twice.resources.push(dup);
    let e = restore(&mut live, 21, twice).expect_err("a duplicate");
    assert!(matches!(e, ApplyError::Restore(_)), "{e:?}");

    let batch = Op::Batch(vec![Op::Restore(dangling.to_image())]);
    let e = live
        .apply(22, &cmd(batch), &mut Vec::new())
        .expect_err("no restore inside a batch");
    assert!(matches!(e, ApplyError::Restore(_)), "{e:?}");
    assert_eq!(live, before);

    let mut fresh = State::default();
    let e = restore(&mut fresh, 1, dangling.to_image()).expect_err("uninitialized");
    assert_eq!(e, ApplyError::NotInitialized);
}

#[test]
fn quota_counters_merge_live_first_and_drop_what_the_backup_counts_differently() {
    let t0 = 1_699_999_980_000;
    // The backup: policies same/changed/old, each with a counter of an old window and
    // `same` also with the window the live cluster is counting now.
    let mut src = initialized();
    ok(
        &mut src,
        10,
        Op::Create(policy("same", QuotaWindow::Minute)),
    );
    ok(
        &mut src,
        11,
        Op::Create(policy("changed", QuotaWindow::Minute)),
    );
    ok(&mut src, 12, Op::Create(policy("old", QuotaWindow::Minute)));
    let old_ids = [
        counter("same", t0 - 60_000),
        counter("changed", t0 - 60_000),
        counter("old", t0 - 60_000),
    ];
    ok(&mut src, 13, sync(9, 1, &old_ids));
    ok(&mut src, 14, sync(9, 2, &[counter("same", t0)]));
    let image = src.to_image();

    // The live cluster: `same` unchanged and counting the current window further,
    // `changed` now counted per hour, `old` deleted, `new` not in the backup.
    let mut live = initialized();
    ok(
        &mut live,
        10,
        Op::Create(policy("same", QuotaWindow::Minute)),
    );
    ok(
        &mut live,
        11,
        Op::Create(policy("changed", QuotaWindow::Hour)),
    );
    ok(
        &mut live,
        12,
        Op::Create(policy("new", QuotaWindow::Minute)),
    );
    let live_ids = [
        counter("same", t0),
        counter("changed", t0),
        counter("new", t0),
    ];
    ok(&mut live, 13, sync(1, 1, &live_ids));
    ok(&mut live, 14, sync(1, 2, &[counter("same", t0)]));

    restore(&mut live, 30, image).expect("restore applies");
    let l = live.ledger();
    let granted = |id: &CounterId| l.counter(id).map(|c| c.granted.clone());
    // Live counters of an unchanged policy win over the backup's: nodes hold those units.
    let same_now = granted(&counter("same", t0)).expect("live counter kept");
    assert_eq!(same_now.get(&1), Some(&20));
    assert_eq!(same_now.get(&9), None);
    // Counters only the backup has come back (grants to absent nodes stay stranded).
    assert_eq!(
        granted(&counter("same", t0 - 60_000)).and_then(|g| g.get(&9).copied()),
        Some(10)
    );
    assert!(granted(&counter("changed", t0 - 60_000)).is_some());
    assert!(granted(&counter("old", t0 - 60_000)).is_some());
    // Live counters of a policy counted differently, or gone, are dropped.
    assert!(granted(&counter("changed", t0)).is_none());
    assert!(granted(&counter("new", t0)).is_none());
    // Dedup records are the running nodes', not the backup's.
    assert_eq!(l.last_sync(1).map(|r| r.serial), Some(2));
    assert!(l.last_sync(9).is_none());
}

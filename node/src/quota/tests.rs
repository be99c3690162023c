use std::sync::Arc;

use raftgate_store::model::{QuotaMetric, QuotaMode, QuotaPolicy, QuotaScope, QuotaWindow};

use super::*;

fn policy(id: &str, limit: u64, mode: QuotaMode, fail_open: bool) -> Arc<QuotaPolicy> {
    Arc::new(QuotaPolicy {
        id: id.into(),
        tenant: None,
        scope: vec![QuotaScope::ApiKey],
        metric: QuotaMetric::Requests,
        window: QuotaWindow::Minute,
        limit,
        mode,
        fail_open,
        hard: false,
    })
}

fn check(p: &Arc<QuotaPolicy>, key: &str, units: u64) -> Check {
    Check {
        policy: p.clone(),
        key: key.into(),
        units,
    }
}

const NOW: u64 = 1_764_222_187_123;

fn engine() -> Arc<Quotas> {
    Quotas::new(None, &prometheus::Registry::new())
}

#[tokio::test]
async fn local_mode_admits_its_share_then_rejects_with_headers() {
    let q = engine();
    // No Raft: one voter, so the whole limit is this node's share.
    let p = policy("local", 3, QuotaMode::Local, false);
    let checks = vec![check(&p, "api_key=k", 1)];
    for left in [2, 1, 0] {
        let permit = q.admit(&checks, NOW).await.expect("admitted");
        let h = permit.headers.expect("headers");
        assert_eq!((h.limit, h.remaining), (3, left));
        assert_eq!(h.reset_secs, Some(53), "the minute ends 52.877 s later");
        permit.commit();
    }
    match q.admit(&checks, NOW).await {
        Err(Rejection::Exhausted {
            policy, headers, ..
        }) => {
            assert_eq!(policy, "local");
            assert_eq!(headers.remaining, 0);
        }
        _ => panic!("the fourth call must be refused"),
    }
    // Another key has its own counter; the next window starts over.
    let other = vec![check(&p, "api_key=k2", 1)];
    assert!(q.admit(&other, NOW).await.is_ok());
    assert!(q.admit(&checks, NOW + 60_000).await.is_ok());
}

#[tokio::test]
async fn a_refusal_by_one_quota_puts_back_what_the_others_took() {
    let q = engine();
    let roomy = policy("roomy", 10, QuotaMode::Local, false);
    let tight = policy("tight", 1, QuotaMode::Local, false);
    let checks = vec![check(&roomy, "k", 1), check(&tight, "k", 1)];
    assert!(q.admit(&checks, NOW).await.is_ok());
    for _ in 0..3 {
        assert!(q.admit(&checks, NOW).await.is_err());
    }
    // Only the admitted call took a unit from the roomy quota.
    let b = q.bucket(&roomy, "k", NOW);
    assert_eq!(b.balance(), 9);
}

#[tokio::test]
async fn strict_quotas_without_a_leader_fail_closed_unless_fail_open() {
    let q = engine();
    let closed = vec![check(&policy("s", 100, QuotaMode::Strict, false), "k", 1)];
    match q.admit(&closed, NOW).await {
        Err(Rejection::Unavailable { policy }) => assert_eq!(policy, "s"),
        _ => panic!("no grant can come: the call must be refused"),
    }
    let open = vec![check(&policy("o", 100, QuotaMode::Strict, true), "k", 1)];
    let permit = q.admit(&open, NOW).await.expect("fail_open admits");
    permit.commit();
    let b = q.bucket(&open[0].policy, "k", NOW);
    assert_eq!(
        b.take_unreported(),
        1,
        "admitted without a lease, still counted as used"
    );
}

#[tokio::test]
async fn waiting_calls_take_a_grant_when_it_arrives() {
    let q = engine();
    let p = policy("s", 100, QuotaMode::Strict, false);
    let checks = vec![check(&p, "k", 1)];
    let b = q.bucket(&p, "k", NOW);
    let waiter = {
        let q = q.clone();
        let checks2 = vec![check(&p, "k", 2)];
        tokio::spawn(async move { q.admit(&checks2, NOW).await.is_ok() })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    b.grant(5, 40, NOW);
    assert!(waiter.await.unwrap());
    assert_eq!(b.balance(), 3);
    // The wait is in the metrics: one call, at least the 20 ms before the grant.
    let (waits, secs) = q.metrics.waits("s");
    assert_eq!(waits, 1);
    assert!(secs >= 0.019, "waited {secs} s");
    // A call the local balance covers does not wait.
    assert!(q.admit(&checks, NOW).await.is_ok());
    // A counter the ledger says is used up is refused at once, without waiting.
    b.take_all();
    b.grant(0, 0, crate::proxy::unix_ms());
    let started = std::time::Instant::now();
    assert!(matches!(
        q.admit(&checks, NOW).await,
        Err(Rejection::Exhausted { .. })
    ));
    assert!(started.elapsed() < GRANT_WAIT);
    assert_eq!(q.metrics.waits("s").0, 1, "neither call counts as a wait");
}

#[tokio::test]
async fn a_call_waiting_past_its_window_end_moves_to_the_next_window() {
    let q = engine();
    let p = Arc::new(QuotaPolicy {
        window: QuotaWindow::Second,
        ..(*policy("s", 100, QuotaMode::Strict, false)).clone()
    });
    let checks = vec![check(&p, "k", 1)];
    // 100 ms before the end of a second: no grant comes for this second's bucket.
    let late = NOW - NOW % 1_000 + 900;
    let waiter = {
        let (q, checks) = (q.clone(), checks.clone());
        tokio::spawn(async move { q.admit(&checks, late).await.map(|p| p.commit()) })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The call now waits on the next second's bucket; a grant there admits it.
    let next = q.bucket(&p, "k", late + 200);
    assert_eq!(next.id.window_start_ms, late - 900 + 1_000);
    next.grant(3, 50, late + 300);
    let outcome = tokio::time::timeout(GRANT_WAIT, waiter).await;
    assert!(
        matches!(outcome, Ok(Ok(Ok(())))),
        "admitted from the next window's grant, not refused as unavailable"
    );
    assert_eq!(next.balance(), 2);
}

#[tokio::test]
async fn settling_returns_the_unused_part_of_a_reservation_or_charges_the_overshoot() {
    let q = engine();
    let mut hard = (*policy("tokens", 100, QuotaMode::Local, false)).clone();
    hard.metric = QuotaMetric::TotalTokens;
    hard.hard = true;
    let p = Arc::new(hard);
    let b = q.bucket(&p, "k", NOW);
    let permit = q.admit(&[check(&p, "k", 30)], NOW).await.expect("reserved");
    assert_eq!(permit.hard_budget(), Some(30));
    assert_eq!(b.balance(), 70);
    permit.settle(|_| 10);
    assert_eq!(b.balance(), 90, "20 reserved and not used come back");
    let permit = q.admit(&[check(&p, "k", 30)], NOW).await.expect("reserved");
    permit.settle(|_| 50);
    assert_eq!(b.balance(), 40, "20 over the reservation are charged");
    assert_eq!(b.take_unreported(), 60, "usage is what was really used");
    // More than the balance holds cannot be reserved.
    assert!(q.admit(&[check(&p, "k", 41)], NOW).await.is_err());
}

fn strict_policy(id: &str, limit: u64, window: QuotaWindow) -> Arc<QuotaPolicy> {
    let mut p = (*policy(id, limit, QuotaMode::Strict, false)).clone();
    p.window = window;
    Arc::new(p)
}

/// The asks of one sync at `now_ms` (node-less: one voter), by counter window start.
fn asks_at(q: &Quotas, now_ms: u64) -> Vec<(String, u64, u64)> {
    q.collect(now_ms, 0.05, false, 1, 1, 1)
        .sync
        .asks
        .iter()
        .map(|a| (a.counter.key.clone(), a.counter.window_start_ms, a.units))
        .collect()
}

/// `key`'s bucket of `p` at `at`, granted `units` (with `remaining` left in the
/// cluster) and used once.
fn used_bucket(
    q: &Quotas,
    p: &Arc<QuotaPolicy>,
    key: &str,
    (units, remaining): (u64, u64),
    at: u64,
) -> Arc<Bucket> {
    let b = q.bucket(p, key, at);
    b.grant(units, remaining, at);
    assert!(b.try_take(1, at));
    b
}

#[tokio::test]
async fn a_bucket_in_use_asks_for_its_next_window_once_just_before_the_rollover() {
    let q = engine();
    let p = strict_policy("m", 3_200_000, QuotaWindow::Minute);
    let (_, end) = window::bounds(QuotaWindow::Minute, NOW);
    // Used 5 s before the end: no prefetch yet.
    let early = end - 5_000;
    let b = used_bucket(&q, &p, "k", (1_000, 3_199_000), early);
    assert_eq!(asks_at(&q, early), vec![]);
    // Used 1.5 s before the end: one ask for the next window, a first ask's size
    // (limit / 32 for one voter), and the next window's bucket exists.
    let late = end - 1_500;
    assert!(b.try_take(1, late));
    assert_eq!(asks_at(&q, late), vec![("k".to_string(), end, 100_000)]);
    let next = q.bucket(&p, "k", end);
    assert_eq!(next.id.window_start_ms, end);
    // Asked once: the next sync does not ask again while the grant is on its way.
    assert!(b.try_take(1, late + 50));
    assert_eq!(asks_at(&q, late + 50), vec![]);

    // Second windows (all rollover) and fixed budgets (no next window) never prefetch.
    for (id, w, at) in [
        ("s", QuotaWindow::Second, NOW - NOW % 1_000 + 500),
        ("f", QuotaWindow::Fixed, NOW),
    ] {
        let q = engine();
        let p = strict_policy(id, 3_200_000, w);
        used_bucket(&q, &p, "k", (1_000, 3_199_000), at);
        assert_eq!(asks_at(&q, at), vec![], "{id}");
    }
}

#[tokio::test]
async fn a_counter_that_keeps_idle_units_also_gets_its_next_window_before_the_rollover() {
    let q = engine();
    let p = strict_policy("m", 1_000, QuotaWindow::Minute);
    let (_, end) = window::bounds(QuotaWindow::Minute, NOW);
    // Both last used 20 s before the end; one with most of the limit left in the
    // cluster, one with little.
    let used = end - 20_000;
    for (key, remaining) in [("plenty", 990), ("scarce", 400)] {
        used_bucket(&q, &p, key, (10, remaining), used);
    }
    let asks = asks_at(&q, end - 1_500);
    assert_eq!(asks, vec![("plenty".to_string(), end, 31)]);
}

#[tokio::test]
async fn idle_units_go_back_after_3_s_unless_a_repeating_counter_has_plenty_left() {
    let q = engine();
    let minute = strict_policy("m", 1_000, QuotaWindow::Minute);
    let fixed = strict_policy("f", 1_000, QuotaWindow::Fixed);
    // (policy, key, ungranted in the cluster at the grant): a minute counter with more
    // than half left keeps its idle units; one with less, and a fixed budget, do not.
    let cases = [
        (&minute, "plenty", 990),
        (&minute, "scarce", 400),
        (&fixed, "fixed", 990),
    ];
    for (p, key, remaining) in cases {
        used_bucket(&q, p, key, (10, remaining), NOW);
    }
    let returned_at = |now_ms| -> Vec<(String, u64)> {
        let mut r: Vec<_> = q
            .collect(now_ms, 0.05, false, 1, 1, 1)
            .sync
            .returns
            .iter()
            .map(|u| (u.counter.key.clone(), u.units))
            .collect();
        r.sort();
        r
    };
    assert_eq!(returned_at(NOW + 2_000), vec![], "in use 2 s ago");
    assert_eq!(
        returned_at(NOW + 4_000),
        vec![("fixed".to_string(), 9), ("scarce".to_string(), 9)]
    );
    // The window ends 52.9 s after NOW: the plentiful counter's units stay to its end.
    assert_eq!(returned_at(NOW + 45_000), vec![]);
    let plenty = q.bucket(&minute, "plenty", NOW);
    assert_eq!(plenty.balance(), 9);
}

/// The usage items of a full pass at `now_ms`, as (key, units), sorted.
fn usage_at(q: &Quotas, now_ms: u64, serial: u64) -> Vec<(String, u64)> {
    let mut u: Vec<_> = q
        .collect(now_ms, 0.05, false, serial, 1, 1)
        .sync
        .usage
        .iter()
        .map(|u| (u.counter.key.clone(), u.units))
        .collect();
    u.sort();
    u
}

#[tokio::test]
async fn usage_of_many_counters_goes_out_a_bounded_portion_per_pass_oldest_first() {
    let q = engine();
    let p = policy("many", 1_000_000, QuotaMode::Local, false);
    let keys = 2 * sync::USAGE_PER_PASS + 100;
    let admit = |i: usize| {
        let q = q.clone();
        let p = p.clone();
        async move {
            q.admit(&[check(&p, &format!("api_key=k{i:05}"), 1)], NOW)
                .await
                .unwrap()
                .commit();
        }
    };
    for i in 0..keys {
        admit(i).await;
    }
    // Calls after their bucket was queued do not queue it again.
    admit(0).await;
    assert_eq!(q.usage.len(), keys);
    let mut reported = Vec::new();
    for (n, expect) in [sync::USAGE_PER_PASS, sync::USAGE_PER_PASS, 100, 0]
        .into_iter()
        .enumerate()
    {
        let round = usage_at(&q, NOW + 250 * n as u64, n as u64 + 1);
        assert_eq!(round.len(), expect, "pass {n}");
        if let (Some(first), Some(last)) = (round.first(), round.last()) {
            // Oldest first: each pass takes the next keys in the order they were used.
            let at = n * sync::USAGE_PER_PASS;
            assert_eq!(first.0, format!("api_key=k{at:05}"));
            assert_eq!(last.0, format!("api_key=k{:05}", at + expect - 1));
        }
        reported.extend(round);
    }
    reported.sort();
    assert_eq!(reported.len(), keys, "every counter reported once");
    assert_eq!(reported[0], ("api_key=k00000".to_string(), 2));
    assert!(reported[1..].iter().all(|(_, units)| *units == 1));
    assert_eq!(q.usage.len(), 0);
    // Used again at once: queued again, but reported no sooner than a second after its
    // last report.
    admit(7).await;
    assert_eq!(usage_at(&q, NOW + 900, 5), vec![]);
    assert_eq!(
        usage_at(&q, NOW + 1_000, 6),
        vec![("api_key=k00007".to_string(), 1)]
    );
}

#[tokio::test]
async fn usage_that_went_with_an_ask_or_a_window_end_is_not_reported_twice() {
    // With an ask: a call waits on the bucket, so its usage goes with the ask; the queue
    // then lets it go without an item.
    let q = engine();
    let s = strict_policy("s", 1_000_000, QuotaWindow::Minute);
    let b = q.bucket(&s, "api_key=b", NOW);
    q.usage.record(&b, 3);
    b.add_want(1, NOW);
    q.flag(&b);
    let quick = q.collect_flagged(NOW, 1, 1, 1);
    assert_eq!(quick.sync.asks.len(), 1);
    let with_ask: Vec<_> = quick.sync.usage.iter().map(|u| u.units).collect();
    assert_eq!(with_ask, [3]);
    assert_eq!(usage_at(&q, NOW + 250, 2), vec![]);
    assert_eq!(q.usage.len(), 0);

    // At a window's end: reported through the queue, used again, and the window ends
    // before the queue may report it again — the pass that drops it reports that use.
    let q = engine();
    let p = policy("w", 1_000_000, QuotaMode::Local, false);
    let use_once = || async {
        q.admit(&[check(&p, "api_key=a", 1)], NOW)
            .await
            .unwrap()
            .commit();
    };
    use_once().await;
    let end = q.bucket(&p, "api_key=a", NOW).id.window_end_ms;
    assert_eq!(
        usage_at(&q, end - 500, 1),
        vec![("api_key=a".to_string(), 1)]
    );
    use_once().await;
    use_once().await;
    assert_eq!(
        q.usage.len(),
        1,
        "queued, due a second after its last report"
    );
    assert_eq!(usage_at(&q, end, 2), vec![("api_key=a".to_string(), 2)]);
    assert_eq!(q.bucket_count(), 0);
    assert_eq!(usage_at(&q, end + 1_000, 3), vec![]);
    assert_eq!(q.usage.len(), 0);
}

#[tokio::test]
async fn ticks_between_full_passes_visit_only_the_buckets_calls_flagged() {
    let q = engine();
    let p = strict_policy("q", 1_000_000, QuotaWindow::Minute);
    let quick_asks = |q: &Quotas, at: u64| -> Vec<String> {
        q.collect_flagged(at, 2, 1, 1)
            .sync
            .asks
            .iter()
            .map(|a| a.counter.key.clone())
            .collect()
    };
    // Two busy buckets: 50 calls each in one 50 ms tick, measured by a full pass.
    let (a, b) = (q.bucket(&p, "a", NOW), q.bucket(&p, "b", NOW));
    for bucket in [&a, &b] {
        bucket.grant(1_000, 900_000, NOW);
    }
    for _ in 0..50 {
        for key in ["a", "b"] {
            q.admit(&[check(&p, key, 1)], NOW).await.unwrap().commit();
        }
    }
    assert!(asks_at(&q, NOW).is_empty(), "950 left each: no ask yet");
    // Rate 0.4 * 50 / 0.05 = 400/s: the low mark is 0.2 s of it, 80 units.
    assert!(!a.is_low() && !b.is_low());
    // `b` runs low outside any call (no flag); a call takes `a` below its mark.
    assert!(b.try_take(900, NOW));
    q.admit(&[check(&p, "a", 900)], NOW).await.unwrap().commit();
    assert_eq!(quick_asks(&q, NOW + 50), ["a"], "only the flagged bucket");
    assert!(
        quick_asks(&q, NOW + 100).is_empty(),
        "visited: no longer flagged"
    );
    // A full pass sees both.
    let mut full: Vec<String> = asks_at(&q, NOW + 150).into_iter().map(|a| a.0).collect();
    full.sort();
    assert_eq!(full, ["a", "b"]);
    // A call that must wait flags its bucket too (a fresh key, nothing held).
    let q2 = q.clone();
    let p2 = p.clone();
    let waiting = tokio::spawn(async move { q2.admit(&[check(&p2, "c", 1)], NOW).await.is_ok() });
    let c = q.bucket(&p, "c", NOW);
    let mut asked = Vec::new();
    for _ in 0..100 {
        asked = quick_asks(&q, NOW + 200);
        if !asked.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(asked, ["c"]);
    c.grant(10, 900_000, NOW + 200);
    assert!(waiting.await.unwrap(), "the waiting call took the grant");
}

#[tokio::test]
async fn a_policy_that_counts_differently_replaces_its_bucket_and_ended_windows_leave_the_map() {
    let q = engine();
    let old = policy("swap", 10, QuotaMode::Local, false);
    for _ in 0..3 {
        q.admit(&[check(&old, "api_key=a", 1)], NOW)
            .await
            .unwrap()
            .commit();
    }
    let first = q.bucket(&old, "api_key=a", NOW);
    assert_eq!(first.balance(), 7);
    // A limit change in local mode changes what each node may admit: a new bucket
    // under the same key, which the map now returns.
    let new = policy("swap", 20, QuotaMode::Local, false);
    let permit = q.admit(&[check(&new, "api_key=a", 1)], NOW).await.unwrap();
    assert_eq!(permit.headers.map(|h| h.remaining), Some(19));
    permit.commit();
    let second = q.bucket(&new, "api_key=a", NOW);
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(q.bucket_count(), 1);
    // The old bucket's usage is not lost with it: both go out through the usage queue.
    assert_eq!(
        usage_at(&q, NOW, 1),
        vec![("api_key=a".to_string(), 1), ("api_key=a".to_string(), 3)]
    );
    // Another key in the same window, then both windows end: the pass drops them.
    q.admit(&[check(&new, "api_key=b", 1)], NOW)
        .await
        .unwrap()
        .commit();
    assert_eq!(q.bucket_count(), 2);
    let ended = NOW + 60_000;
    assert_eq!(usage_at(&q, ended, 2), vec![("api_key=b".to_string(), 1)]);
    assert_eq!(q.bucket_count(), 0);
    // The next window's bucket starts over.
    let permit = q
        .admit(&[check(&new, "api_key=a", 1)], ended)
        .await
        .unwrap();
    assert_eq!(permit.headers.map(|h| h.remaining), Some(19));
}

#[tokio::test]
async fn a_refused_sync_gives_its_usage_and_hand_backs_back_to_their_buckets() {
    let q = engine();
    let p = strict_policy("r", 1_000, QuotaWindow::Hour);
    // Used 10 s ago, with little left in the cluster: the pass hands its units back.
    let used = NOW - 10_000;
    let b = q.bucket(&p, "k", used);
    b.grant(50, 400, used);
    q.admit(&[check(&p, "k", 3)], used).await.unwrap().commit();
    let batch = q.collect(NOW, 0.05, false, 1, 1, 1);
    let items = |u: &[raftgate_store::quota::Units]| -> Vec<(String, u64)> {
        u.iter().map(|u| (u.counter.key.clone(), u.units)).collect()
    };
    assert_eq!(items(&batch.sync.usage), [("k".to_string(), 3)]);
    assert_eq!(items(&batch.sync.returns), [("k".to_string(), 47)]);
    assert_eq!(b.balance(), 0);
    // The ledger refuses the sync whole (a stale epoch): nothing of it happened.
    q.refused(&batch);
    assert_eq!(b.balance(), 47, "the units are this node's again");
    assert_eq!(
        usage_at(&q, NOW + 1_000, 2),
        [("k".to_string(), 3)],
        "the usage goes out again"
    );
}

//! Global quotas across a 3-node cluster of real `raftgate serve` processes (see
//! `docs/quotas.md`): concurrent clients spread over every node's data plane must never
//! get more than the limit admitted in total, and should get close to it, also while the
//! leader is killed, a node is paused (SIGSTOP) or cut off from the others (iptables).
//! Plus window rollover, idle buckets handing units back and asking again, the usage API,
//! the `raftgate usage` CLI and the quota metrics.
//!
//! Admissions are counted twice: the 2xx answers the clients saw, and the requests the
//! test upstream received (a request admitted by a node the client gave up on, a paused
//! one for example, still reaches the upstream). Both must stay within the limit.
//!
//! Run one at a time (`-- --test-threads 1`; a shared lock enforces it anyway): each test
//! runs three gateways and the clients on what may be a 2-core machine. Every load run
//! has a deadline. Needs the debug binary (`cargo build --workspace`).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use raftgate_chaos::cli::{run, CLI_TIMEOUT};
use raftgate_chaos::{
    wait, ChaosError, ClusterBuilder, LocalCluster, TestUpstream, UpstreamOptions,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};
use tokio::task::JoinSet;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Held for the whole test: one cluster at a time.
async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// The fixed budget of the load tests.
const LIMIT: u64 = 600;
/// Client tasks; task `t` talks to node `t % 3` only, so a node that hangs (paused) or
/// refuses connections (killed) slows only its own tasks.
const TASKS: usize = 12;
/// A load run stops after this many answers (3x the limit)...
const DEMAND: u64 = 3 * LIMIT;
/// ...or after this long, whichever comes first.
const RUN_DEADLINE: Duration = Duration::from_secs(60);
/// Per-request bound (a grant wait is at most 1.5 s; a paused node never answers).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Admissions must reach this share of the limit when demand is 3x the limit.
const MIN_SHARE: f64 = 0.95;

#[path = "quotas/admin.rs"]
mod admin;
#[path = "quotas/fixture.rs"]
mod fixture;
#[path = "quotas/load.rs"]
mod load;

use admin::*;
use fixture::*;
use load::*;

// ------------------------------------------------------------------------- tests

/// (a) + (f): a fixed budget of 600 under 3x demand spread over three nodes; then the
/// usage API on every node, the `raftgate usage` CLI and the quota metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_budget_is_never_exceeded_across_three_nodes_and_usage_reports_it() {
    let _serial = serial().await;
    let fx = fixture(ClusterBuilder::new(3), quota_policy("fixed", LIMIT)).await;
    let (tally, elapsed) = start_load(load_spec(&fx, false)).finish().await;
    check_budget("no fault", &fx, &tally, elapsed, Some(MIN_SHARE));
    let ok = tally.ok();
    assert_eq!(
        fx.upstream.requests(),
        ok,
        "every admission reached the upstream once"
    );
    let limited = tally.sum(|n| &n.limited);

    // Usage: `used` is reported about once a second; every node answers from its replica.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..fx.cluster.len() {
        let what = format!("node {} to report used = {ok}", i + 1);
        let item = wait::until(&what, Duration::from_secs(10), || async {
            let item = usage_item(&fx.cluster, i, false).await?;
            if item["used"].as_u64() == Some(ok) {
                Ok(item)
            } else {
                Err(item.to_string())
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        println!("[usage] node {}: {item}", i + 1);
        assert_eq!(item["policy"], "q1", "{item}");
        assert_eq!(item["metric"], "requests", "{item}");
        assert_eq!(item["window"], "fixed", "{item}");
        assert_eq!(item["mode"], "strict", "{item}");
        assert_eq!(
            item["scope"],
            json!({"api_key": "k1"}),
            "the key's id, not its secret: {item}"
        );
        assert_eq!(
            item["window_end_ms"],
            Value::Null,
            "a fixed budget never ends: {item}"
        );
        assert_eq!(item["current"], true, "{item}");
        assert_eq!(item["limit"], LIMIT, "{item}");
        let granted = item["granted"].as_u64().expect("granted is a number");
        assert!(
            granted <= LIMIT && granted >= ok,
            "used {ok} <= granted {granted} <= limit: {item}"
        );
        let by_node = granted_by_node(&item);
        assert_eq!(
            by_node.values().sum::<u64>(),
            granted,
            "granted_by_node adds up: {item}"
        );
        assert_eq!(
            item["remaining"].as_u64(),
            Some(LIMIT - granted.max(ok)),
            "remaining = limit - max(granted, used): {item}"
        );
    }

    // Filters and a bad query.
    let (_, v) = admin_get(
        &fx.cluster,
        1,
        "/admin/v1/usage?policy=q1&api_key=k1&window=current",
    )
    .await;
    assert_eq!(
        v["items"].as_array().map(Vec::len),
        Some(1),
        "filter api_key=k1: {v}"
    );
    let (_, v) = admin_get(&fx.cluster, 1, "/admin/v1/usage?api_key=nobody").await;
    assert_eq!(v["items"], json!([]), "filter api_key=nobody: {v}");
    let (_, v) = admin_get(&fx.cluster, 1, "/admin/v1/usage?policy=q1&window=previous").await;
    assert_eq!(
        v["items"],
        json!([]),
        "a fixed budget has no previous window: {v}"
    );
    let (status, v) = admin_get(&fx.cluster, 2, "/admin/v1/usage?policy=q1&window=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "window=bogus: {v}");
    assert!(
        v.pointer("/error/code").and_then(Value::as_str).is_some(),
        "a JSON error: {v}"
    );
    let raw = fx
        .cluster
        .anon_client(0)
        .expect("client")
        .raw(Method::GET, "/admin/v1/usage?policy=q1", None)
        .await
        .expect("GET usage without a token");
    assert_eq!(
        raw.status,
        StatusCode::UNAUTHORIZED,
        "usage needs a token: {}",
        raw.body
    );

    // The CLI prints what the API answers (units handed back by idle nodes may move
    // `granted` between two reads, so compare with a read on either side).
    let url = fx.cluster.admin_url(0).expect("admin url");
    let args = [
        "usage", "--server", &url, "--token", &fx.token, "--policy", "q1", "--json",
    ];
    let mut matched = false;
    for _ in 0..3 {
        let before = usage_item(&fx.cluster, 0, false).await.expect("usage");
        let out = run(fx.cluster.binary(), &args, &[], CLI_TIMEOUT)
            .await
            .expect("raftgate usage runs");
        assert_eq!(
            out.code,
            Some(0),
            "raftgate usage --json: {}",
            out.describe()
        );
        let printed: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "raftgate usage --json prints JSON ({e}): {}",
                out.describe()
            )
        });
        let after = usage_item(&fx.cluster, 0, false).await.expect("usage");
        let items = printed["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1, "one item: {printed}");
        if items[0] == before || items[0] == after {
            matched = true;
            break;
        }
        println!(
            "[cli] differs from the API (moving?): {} vs {after}",
            items[0]
        );
    }
    assert!(matched, "raftgate usage --json prints the API's item");
    let out = run(
        fx.cluster.binary(),
        &[
            "usage", "--server", &url, "--token", &fx.token, "--policy", "q1",
        ],
        &[],
        CLI_TIMEOUT,
    )
    .await
    .expect("raftgate usage runs");
    assert_eq!(out.code, Some(0), "raftgate usage: {}", out.describe());
    assert!(
        out.stdout.contains("q1") && out.stdout.contains("api_key=k1"),
        "the table names the policy and scope: {}",
        out.describe()
    );

    // Metrics: admissions and exhaustion refusals add up over the nodes.
    let (mut admitted, mut exhausted, mut writes) = (0.0, 0.0, Vec::new());
    let mut waits = 0.0;
    for i in 0..fx.cluster.len() {
        let text = metrics_of(&fx.cluster, i).await;
        admitted += metric(&text, "raftgate_quota_admitted_total", &[("policy", "q1")]);
        waits += metric(
            &text,
            "raftgate_quota_wait_seconds_count",
            &[("policy", "q1")],
        );
        exhausted += metric(
            &text,
            "raftgate_quota_rejected_total",
            &[("policy", "q1"), ("reason", "exhausted")],
        );
        writes.push(metric(
            &text,
            "raftgate_quota_sync_writes_total",
            &[("result", "ok")],
        ));
        assert!(
            text.contains("raftgate_quota_buckets")
                && text.contains("raftgate_quota_granted_units_total")
                && text.contains("raftgate_quota_usage_queue"),
            "node {} exports the quota gauges",
            i + 1
        );
        // Every node's sync loop visits all its buckets every 250 ms, timed.
        assert!(
            metric(
                &text,
                "raftgate_quota_pass_seconds_count",
                &[("pass", "full")]
            ) >= 1.0,
            "node {} times its full passes",
            i + 1
        );
    }
    println!(
        "[metrics] admitted {admitted}, rejected exhausted {exhausted}, sync writes ok per node {writes:?}, \
         calls that waited for a grant {waits} (run {:.1}s)",
        elapsed.as_secs_f64()
    );
    // A node's first call on a counter finds no balance and waits for its first grant.
    assert!(
        waits >= 1.0,
        "raftgate_quota_wait_seconds counts the first grants' waits"
    );
    assert_eq!(
        admitted as u64, ok,
        "raftgate_quota_admitted_total over the nodes"
    );
    assert_eq!(
        exhausted as u64, limited,
        "raftgate_quota_rejected_total{{reason=exhausted}}"
    );
}

/// (b) `second` windows: 40 per second, 3x demand per second sent between x.150 and x.850
/// of each second for four seconds; each second's admissions stay within [0.9, 1] x 40.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_windows_roll_over_and_each_window_admits_its_limit() {
    const PER_SECOND: u64 = 40;
    let _serial = serial().await;
    let fx = fixture(ClusterBuilder::new(3), quota_policy("second", PER_SECOND)).await;
    let first = now_ms() / 1000 + 1;
    let last = first + 3;
    let spec = LoadSpec {
        demand: u64::MAX,
        fixed: false,
        pacing: Some(Pacing {
            per_second: 3 * PER_SECOND,
            first,
            last,
        }),
        ..load_spec(&fx, false)
    };
    let (tally, elapsed) = start_load(spec).finish().await;
    let by_second = tally.ok_by_second.lock().expect("lock").clone();
    let per: Vec<u64> = (first..=last)
        .map(|s| by_second.get(&s).copied().unwrap_or(0))
        .collect();
    println!(
        "[second windows] limit {PER_SECOND}/s, admitted per second {per:?} in {:.1}s; {}",
        elapsed.as_secs_f64(),
        tally.summary()
    );
    let problems = tally.problems.lock().expect("problems lock").clone();
    assert!(problems.is_empty(), "contract violations: {problems:#?}");
    assert_eq!(
        by_second
            .keys()
            .filter(|s| !(first..=last).contains(*s))
            .count(),
        0,
        "requests only in the paced seconds: {by_second:?}"
    );
    for (s, n) in (first..=last).zip(&per) {
        assert!(
            *n <= PER_SECOND,
            "second {s}: {n} admitted for a limit of {PER_SECOND}"
        );
        assert!(
            *n as f64 >= 0.9 * PER_SECOND as f64,
            "second {s}: only {n} of {PER_SECOND} admitted with 3x demand (per second: {per:?})"
        );
    }
    assert!(
        fx.upstream.requests() <= PER_SECOND * 4,
        "upstream saw {}",
        fx.upstream.requests()
    );
}

/// (c) The leader is killed (kill -9) once a third of the budget is used; load goes on
/// against all three nodes (the dead one refuses connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_run_never_exceeds_the_budget() {
    let _serial = serial().await;
    let mut fx = fixture(ClusterBuilder::new(3), quota_policy("fixed", LIMIT)).await;
    let leader = fx.cluster.wait_leader().await.expect("a leader");
    let load = start_load(load_spec(&fx, true));
    load.wait_ok(LIMIT / 3).await;
    fx.cluster.kill9(leader).expect("kill -9 the leader");
    println!(
        "[leader killed] killed node {} at {} admissions",
        leader + 1,
        load.tally.ok()
    );
    let (tally, elapsed) = load.finish().await;
    check_budget("leader killed", &fx, &tally, elapsed, Some(MIN_SHARE));
    let survivor = fx.cluster.running()[0];
    if let Ok(item) = usage_item(&fx.cluster, survivor, true).await {
        println!("[leader killed] ledger: {item}");
    }
}

/// (d) A follower paused with SIGSTOP once a third of the budget is used, resumed after
/// the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_paused_mid_run_never_exceeds_the_budget() {
    paused_mid_run(false).await;
}

/// (d') The leader paused with SIGSTOP once a third of the budget is used (the others
/// elect a new one), resumed after the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_paused_mid_run_never_exceeds_the_budget() {
    paused_mid_run(true).await;
}

async fn paused_mid_run(pause_leader: bool) {
    let what = if pause_leader {
        "leader paused"
    } else {
        "follower paused"
    };
    let _serial = serial().await;
    let mut fx = fixture(ClusterBuilder::new(3), quota_policy("fixed", LIMIT)).await;
    let leader = fx.cluster.wait_leader().await.expect("a leader");
    let victim = if pause_leader {
        leader
    } else {
        fx.cluster.followers(leader)[0]
    };
    let load = start_load(load_spec(&fx, true));
    load.wait_ok(LIMIT / 3).await;
    fx.cluster.pause(victim).expect("SIGSTOP");
    println!(
        "[{what}] paused node {} at {} admissions",
        victim + 1,
        load.tally.ok()
    );
    let (tally, elapsed) = load.finish().await;
    fx.cluster.resume(victim).expect("SIGCONT");
    // Requests the paused node had read before it stopped may be admitted now; the
    // upstream counts them. Give them time to land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    check_budget(what, &fx, &tally, elapsed, Some(MIN_SHARE));
    let leader = fx
        .cluster
        .wait_leader()
        .await
        .expect("a leader after the resume");
    if let Ok(item) = usage_item(&fx.cluster, leader, true).await {
        println!("[{what}] ledger: {item}");
    }
}

/// (e) A follower is cut off from the others' Raft traffic (iptables) once a third of the
/// budget is used; requests go on to all nodes. The cut-off node admits at most what the
/// ledger granted it, and answers `503 quota_unavailable` once its balance is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_follower_admits_only_its_grants_then_fails_closed() {
    partitioned_mid_run(false).await;
}

/// (e') The same with the leader cut off: it cannot commit grants any more, the majority
/// elects a new leader and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_leader_admits_only_its_grants_then_fails_closed() {
    partitioned_mid_run(true).await;
}

async fn partitioned_mid_run(cut_leader: bool) {
    let what = if cut_leader {
        "leader cut off"
    } else {
        "follower cut off"
    };
    let _serial = serial().await;
    let mut fx = fixture(
        ClusterBuilder::new(3).partitionable(),
        quota_policy("fixed", LIMIT),
    )
    .await;
    let leader = fx.cluster.wait_leader().await.expect("a leader");
    let cut = if cut_leader {
        leader
    } else {
        fx.cluster.followers(leader)[0]
    };
    let load = start_load(load_spec(&fx, true));
    load.wait_ok(LIMIT / 3).await;
    match fx.cluster.partition(cut) {
        Ok(()) => {}
        Err(ChaosError::FaultUnavailable { reason, .. }) => {
            load.stop.store(true, Ordering::Relaxed);
            println!("SKIP [{what}]: {reason}");
            return;
        }
        Err(e) => panic!("partitioning node {}: {e}", cut + 1),
    }
    let cut_at = now_ms();
    let ok_cut_before = load.tally.nodes[cut].ok.load(Ordering::Relaxed);
    println!(
        "[{what}] cut off node {} at {} admissions ({ok_cut_before} by that node)",
        cut + 1,
        load.tally.ok()
    );
    let (tally, elapsed) = load.finish().await;
    // The ledger, read linearizably on a node of the majority while the cut lasts.
    let majority = fx.cluster.followers(cut)[0];
    let item = wait::until("a consistent usage read", Duration::from_secs(15), || {
        usage_item(&fx.cluster, majority, true)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    fx.cluster.heal().expect("heal the partition");
    check_budget(what, &fx, &tally, elapsed, None);

    let n = &tally.nodes[cut];
    let ok_cut = n.ok.load(Ordering::Relaxed);
    let first_503 = n.first_unavailable_ms.load(Ordering::Relaxed);
    assert!(
        first_503 != 0,
        "the cut-off node never answered 503 quota_unavailable: {}",
        tally.summary()
    );
    let after = first_503.saturating_sub(cut_at);
    println!(
        "[{what}] node {} admitted {ok_cut} in total ({} after the cut); first 503 \
         quota_unavailable {after} ms after the cut",
        cut + 1,
        ok_cut - ok_cut_before
    );
    assert!(
        after <= 5_000,
        "the cut-off node took {after} ms to fail closed"
    );

    let granted = granted_by_node(&item);
    let granted_cut = granted.get(&fx.cluster.node_id(cut)).copied().unwrap_or(0);
    println!("[{what}] ledger: {item}");
    assert!(
        ok_cut <= granted_cut,
        "the cut-off node admitted {ok_cut} but was granted {granted_cut}: {item}"
    );
    assert!(
        item["granted"].as_u64().is_some_and(|g| g <= LIMIT),
        "granted within the limit: {item}"
    );
}

/// (g) Buckets left idle for more than 3 s hand their units back to the ledger (so other
/// nodes may use them); when traffic comes back they ask again and are admitted — without
/// `503 quota_unavailable` (a leader is there) and without a storm of Raft writes. Many
/// keys (one bucket each) on one node, as a real per-key quota sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_buckets_hand_back_and_resumed_traffic_is_admitted() {
    const BIG: u64 = 1_000_000;
    const KEYS: usize = 50;
    const BURST: u64 = 1_000;
    let _serial = serial().await;
    let fx = fixture(ClusterBuilder::new(3), quota_policy("fixed", BIG)).await;
    let mut keys = vec![fx.key.clone()];
    keys.extend(more_keys(&fx, KEYS).await);
    let node = 0;
    // One CPU for the node under load, as bench/quota.sh pins it: the sync loop and the
    // calls it wakes then take turns, which is where a grant can be handed back before
    // the waiting calls take it.
    match fx.cluster.pin_cpus(node, "0") {
        Ok(()) => {}
        Err(ChaosError::FaultUnavailable { reason, .. }) => println!("[idle] not pinned: {reason}"),
        Err(e) => panic!("pinning node 1: {e}"),
    }
    let spec = || LoadSpec {
        bases: vec![fx.bases[node].clone()],
        keys: keys.clone(),
        demand: BURST,
        ..load_spec(&fx, false)
    };
    let (first, _) = start_load(spec()).finish().await;
    let used = first.ok();
    assert!(
        used >= BURST && first.problem_count.load(Ordering::Relaxed) == 0,
        "first burst: {}",
        first.summary()
    );

    // Idle: after 3 s the node hands back what it holds; the ledger then shows node 1
    // granted exactly what it used, key by key.
    let id = fx.cluster.node_id(node).to_string();
    wait::until(
        "node 1's unused units to be handed back",
        Duration::from_secs(10),
        || async {
            let (_, v) = admin_get(&fx.cluster, 1, "/admin/v1/usage?policy=q1").await;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            let granted: u64 = items
                .iter()
                .filter_map(|it| it["granted_by_node"][&id].as_u64())
                .sum();
            if items.len() == KEYS && granted == used {
                Ok(())
            } else {
                Err(format!(
                    "{} counters, {granted} granted to node 1 for {used} used",
                    items.len()
                ))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Units handed back while the burst runs = units granted to node 1 (its metric)
    // minus what the ledger still counts as granted to it afterwards. Every bucket is in
    // use throughout the burst (each key comes round every ~50 requests), so none is
    // idle and nothing should go back.
    let node_granted = |item_list: &Value| -> u64 {
        item_list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|it| it["granted_by_node"][&id].as_u64())
            .sum()
    };
    let writes = |text: &str| metric(text, "raftgate_quota_sync_writes_total", &[]);
    let grants = |text: &str| metric(text, "raftgate_quota_granted_units_total", &[]) as u64;
    let text = metrics_of(&fx.cluster, node).await;
    let (w0, g0) = (writes(&text), grants(&text));
    let (_, v) = admin_get(&fx.cluster, 1, "/admin/v1/usage?policy=q1&consistent=true").await;
    let l0 = node_granted(&v);
    let (second, elapsed) = start_load(spec()).finish().await;
    // Let in-flight syncs land; idle hand-backs only start 3 s after the last use.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = metrics_of(&fx.cluster, node).await;
    let (w1, g1) = (writes(&text), grants(&text));
    let (_, v) = admin_get(&fx.cluster, 1, "/admin/v1/usage?policy=q1&consistent=true").await;
    let l1 = node_granted(&v);
    let handed_back = (g1 - g0).saturating_sub(l1.saturating_sub(l0));
    println!(
        "[idle] first burst {used}; resumed burst: {} in {:.2}s, {} quota Raft writes by \
         node 1 ({:.0}/s); units granted to node 1 {} (ledger: +{}), so {handed_back} \
         handed back during the burst (first asks alone: ~{}); {}",
        second.ok(),
        elapsed.as_secs_f64(),
        w1 - w0,
        (w1 - w0) / elapsed.as_secs_f64(),
        g1 - g0,
        l1.saturating_sub(l0),
        KEYS as u64 * (BIG / 96),
        second.summary()
    );
    let problems = second.problems.lock().expect("problems lock").clone();
    assert!(
        problems.is_empty(),
        "resumed traffic after an idle hand-back: {} violations, first ones: {problems:#?}",
        second.problem_count.load(Ordering::Relaxed)
    );
    assert_eq!(
        second.ok(),
        second.answered.load(Ordering::Relaxed),
        "resumed burst: every answer a 2xx: {}",
        second.summary()
    );
    assert_eq!(
        handed_back,
        0,
        "buckets in use handed back {handed_back} units during the resumed burst \
         (granted {} to node 1, ledger +{}), in {} Raft writes",
        g1 - g0,
        l1.saturating_sub(l0),
        w1 - w0
    );
}

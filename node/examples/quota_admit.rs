//! What one admission costs the proxy's core as the number of busy counters grows: a
//! call's quota work (the key built from the call's scope, `Quotas::admit`, the
//! `RateLimit-*` headers, `Permit::commit`) timed in a loop over 1, 100 and 10,000 keys
//! used in turn, as `bench/quota.sh`'s wrk script sends them.
//!
//! `bench/quota.sh` measures the whole proxy; this isolates the part that changes with
//! the key count. `POLLUTE_KB` (default 0, then 256) touches that much other memory
//! between calls, standing in for the rest of a call's work (connections, buffers, the
//! router) that competes with the buckets for the core's caches.
//!
//! Run: `cargo run --release -p raftgate-node --example quota_admit` (`CALLS`, `KEYS`,
//! `POLLUTE_KB` override the defaults). A local-mode policy, so a node-less engine
//! admits from its balance: the same look-up, take and usage record as a strict bucket
//! holding units. Each call goes through the runtime's `block_on`, the same in every row:
//! the figures compare key counts and builds, not the proxy's absolute cost.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use raftgate_node::quota::{CallScope, Check, Quotas};
use raftgate_store::model::{QuotaMetric, QuotaMode, QuotaPolicy, QuotaScope, QuotaWindow};

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n > 0 || name == "POLLUTE_KB")
        .collect()
}

fn policy() -> Arc<QuotaPolicy> {
    Arc::new(QuotaPolicy {
        id: "per-key".to_string(),
        tenant: None,
        scope: vec![QuotaScope::ApiKey],
        metric: QuotaMetric::Requests,
        window: QuotaWindow::Minute,
        limit: 1_000_000_000_000,
        mode: QuotaMode::Local,
        fail_open: false,
        hard: false,
    })
}

/// Nanoseconds per call of `calls` admissions over `keys` keys, and of the pollution
/// alone (the same loop with no admission).
fn run(rt: &tokio::runtime::Runtime, keys: usize, calls: usize, pollute_kb: usize) -> (f64, f64) {
    let quotas = Quotas::new(None, &prometheus::Registry::new());
    let policy = policy();
    let ids: Vec<String> = (0..keys).map(|i| format!("key-{i:05}")).collect();
    let mut junk = vec![0u64; pollute_kb * 1024 / 8];
    let mut cursor = 0usize;
    let mut pollute = |junk: &mut Vec<u64>| {
        // One write per cache line of a sliding window over `junk`.
        for _ in 0..junk.len().min(512) {
            junk[cursor] = junk[cursor].wrapping_add(1);
            cursor = (cursor + 8) % junk.len();
        }
    };
    let now_ms = raftgate_node::proxy::unix_ms();
    let mut headers = http::HeaderMap::new();
    let mut call = |i: usize| {
        let scope = CallScope {
            api_key: Some(&ids[i % keys]),
            ..CallScope::default()
        };
        let checks = [Check {
            policy: policy.clone(),
            key: scope.key(&policy.scope),
            units: 1,
        }];
        let permit = rt
            .block_on(quotas.admit(&checks, now_ms))
            .unwrap_or_else(|_| panic!("local quota refused a call"));
        if let Some(h) = &permit.headers {
            h.write(&mut headers);
        }
        permit.commit();
    };
    // Warm-up: every bucket created before the clock starts.
    for i in 0..keys.max(10_000) {
        call(i);
    }
    let started = Instant::now();
    for i in 0..calls {
        call(i);
        pollute(&mut junk);
    }
    let with = started.elapsed().as_nanos() as f64 / calls as f64;
    let started = Instant::now();
    for _ in 0..calls {
        pollute(black_box(&mut junk));
    }
    let alone = started.elapsed().as_nanos() as f64 / calls as f64;
    black_box(&junk);
    (with, alone)
}

fn main() {
    let calls = env_list("CALLS", "2000000")
        .first()
        .copied()
        .unwrap_or(2_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("calls/run\tpollute_kb\tkeys\tns/call (admission only)");
    for pollute_kb in env_list("POLLUTE_KB", "0,256") {
        for keys in env_list("KEYS", "1,100,10000") {
            let (with, alone) = run(&rt, keys, calls, pollute_kb);
            println!("{calls}\t{pollute_kb}\t{keys}\t{:.0}", with - alone);
        }
    }
}

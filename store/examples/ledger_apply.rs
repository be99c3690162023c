//! What one node spends applying quota usage rounds: the state machine's `apply` (ledger
//! updates, encoding, one RocksDB write batch) and the log codec, per counter, for
//! entries shaped like the nodes' usage rounds (docs/quotas.md, "How strict mode works").
//!
//! Every node of a cluster applies every node's rounds: with 10,000 busy counters on each
//! of three nodes (traffic spread by a load balancer), each node applies 30,000 items
//! per round. `bench/quota.sh` measures what that does to the proxy; this isolates the
//! apply and prints the cost of one node's round as one replica applies it.
//!
//! Run: `cargo run --release -p raftgate-store --example ledger_apply` (`KEYS` and `ROUNDS`
//! override the defaults). An example, not a `cargo bench` target: the bench profile
//! would compile RocksDB a second time.

use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, LogId};
use raftgate_store::model::{
    QuotaMetric, QuotaMode, QuotaPolicy, QuotaScope, QuotaWindow, Resource,
};
use raftgate_store::quota::{CounterId, QuotaSync, Units};
use raftgate_store::types::Entry;
use raftgate_store::{codec, Command, Op};

/// Items per entry, as the node's quota syncer cuts them.
const PER_ENTRY: usize = 4096;
const NODES: u64 = 3;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn entry(index: u64, op: Op) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Command {
            at_ms: 1_000,
            actor: "quota".into(),
            op,
            origin: None,
        }),
    }
}

fn counters(keys: usize) -> Vec<CounterId> {
    (0..keys)
        .map(|i| CounterId {
            policy: "bench-quota".into(),
            key: format!("api_key=bench-key-{i:05}"),
            window_start_ms: 0,
            window_end_ms: 60_000,
        })
        .collect()
}

/// One node's round: asks (the first round) or usage, cut into entries of [`PER_ENTRY`].
fn round(ids: &[CounterId], node: u64, serial: &mut u64, asks: bool) -> Vec<Op> {
    ids.chunks(PER_ENTRY)
        .map(|chunk| {
            *serial += 1;
            let units: Vec<Units> = chunk
                .iter()
                .map(|c| Units {
                    counter: c.clone(),
                    units: 7,
                })
                .collect();
            let (asks, usage) = if asks {
                (units, Vec::new())
            } else {
                (Vec::new(), units)
            };
            Op::QuotaSync(QuotaSync {
                node,
                epoch: 1,
                serial: *serial,
                voters: NODES as u32,
                asks,
                returns: Vec::new(),
                usage,
            })
        })
        .collect()
}

fn per_item(d: Duration, items: usize) -> f64 {
    d.as_secs_f64() * 1e6 / items as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let keys = env("KEYS", 10_000);
    let rounds = env("ROUNDS", 5);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = raftgate_store::open(dir.path()).expect("open store");
    let mut index = 0u64;
    let mut next = |op| {
        index += 1;
        entry(index, op)
    };
    let policy = Op::Create(Resource::QuotaPolicy(QuotaPolicy {
        id: "bench-quota".into(),
        tenant: None,
        scope: vec![QuotaScope::ApiKey],
        metric: QuotaMetric::Requests,
        window: QuotaWindow::Minute,
        limit: 1_000_000_000,
        mode: QuotaMode::Strict,
        fail_open: false,
        hard: false,
    }));
    s.sm.apply([next(policy)]).await.expect("apply policy");
    let ids = counters(keys);
    let mut serials = [0u64; NODES as usize];
    // The first grants: every node asks for every counter once.
    for node in 1..=NODES {
        for op in round(&ids, node, &mut serials[node as usize - 1], true) {
            s.sm.apply([next(op)]).await.expect("apply asks");
        }
    }

    let (mut apply, mut encode, mut decode, mut items, mut bytes) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        0usize,
        0usize,
    );
    for _ in 0..rounds {
        for node in 1..=NODES {
            for op in round(&ids, node, &mut serials[node as usize - 1], false) {
                let e = next(op);
                let t = Instant::now();
                let encoded = codec::encode(&e).expect("encode");
                encode += t.elapsed();
                bytes += encoded.len();
                let t = Instant::now();
                let e: Entry = codec::decode(&encoded).expect("decode");
                decode += t.elapsed();
                items += match &e.payload {
                    EntryPayload::Normal(Command {
                        op: Op::QuotaSync(q),
                        ..
                    }) => q.usage.len(),
                    _ => 0,
                };
                let t = Instant::now();
                let r = s.sm.apply([e]).await.expect("apply usage");
                apply += t.elapsed();
                assert!(
                    r[0].result.is_ok(),
                    "usage round refused: {:?}",
                    r[0].result
                );
            }
        }
    }
    println!(
        "ledger_apply: {keys} counters x {NODES} nodes x {rounds} rounds = {items} usage items \
         in entries of <= {PER_ENTRY}"
    );
    println!(
        "  apply  {:>8.2} us/item  ({:.0} ms per {keys}-item round of one node)",
        per_item(apply, items),
        apply.as_secs_f64() * 1e3 / rounds as f64 / NODES as f64
    );
    println!("  encode {:>8.2} us/item", per_item(encode, items));
    println!(
        "  decode {:>8.2} us/item  ({} bytes/item)",
        per_item(decode, items),
        bytes / items.max(1)
    );
}

//! Prints the benchmark table and the etcd reference figures with ratios.

use crate::load::{Outcome, Target};

/// etcd v3 published write benchmark (etcd.io, op-guide/performance): 3 members on
/// 8 vCPU / 16 GB machines, 256-byte values, writes sent to the leader.
const ETCD_1_CLIENT: f64 = 583.0;
const ETCD_1000_CLIENTS: f64 = 44_341.0;

pub fn print(results: &[Outcome], nodes: usize, secs: u64, binary: &std::path::Path) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!("Raftgate admin writes: {nodes} nodes on loopback, {cpus} CPU(s) shared by nodes and load generator, {secs}s per scenario");
    let debug = binary.components().any(|c| c.as_os_str() == "debug");
    println!(
        "binary: {}{}",
        binary.display(),
        if debug {
            "  (DEBUG build: not representative; use bench/admin-writes.sh)"
        } else {
            ""
        }
    );
    println!(
        "{:<10} {:>7} {:>9} {:>7} {:>10} {:>8} {:>8} {:>8}",
        "target", "clients", "writes", "errors", "writes/s", "p50 ms", "p99 ms", "max ms"
    );
    for r in results {
        let ms = |q: f64| r.latency_us.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{:<10} {:>7} {:>9} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>8.2}",
            format!("{:?}", r.target).to_lowercase(),
            r.clients,
            r.acked,
            r.failed,
            r.writes_per_sec(),
            ms(0.5),
            ms(0.99),
            r.latency_us.max() as f64 / 1000.0
        );
        if !r.errors.is_empty() {
            println!("{:<10} errors: {:?}", "", r.errors);
        }
    }
    println!();
    println!("Reference (NOT this machine): etcd v3 published benchmark, 3 members on 8 vCPU / 16 GB VMs,");
    println!("writes to the leader: {ETCD_1_CLIENT:.0} writes/s with 1 client, ~44k ({ETCD_1000_CLIENTS:.0}) writes/s with 1,000 clients.");
    println!("Ratios below compare different hardware and client counts; they give scale, not a verdict.");
    let best = |clients_pred: &dyn Fn(usize) -> bool| {
        results
            .iter()
            .filter(|r| clients_pred(r.clients))
            .min_by_key(|r| match r.target {
                Target::Leader => 0,
                Target::Random => 1,
                Target::Followers => 2,
            })
    };
    if let Some(r) = best(&|c| c == 1) {
        println!(
            "  1 client:  ours ({:?}) {:.0} writes/s / etcd {ETCD_1_CLIENT:.0} = {:.2}",
            r.target,
            r.writes_per_sec(),
            r.writes_per_sec() / ETCD_1_CLIENT
        );
    }
    if let Some(r) = results
        .iter()
        .filter(|r| r.clients > 1)
        .max_by_key(|r| r.clients)
        .and_then(|m| best(&|c| c == m.clients))
    {
        println!(
            "  many:      ours ({:?}, {} clients) {:.0} writes/s / etcd (1,000 clients) {ETCD_1000_CLIENTS:.0} = {:.2}",
            r.target,
            r.clients,
            r.writes_per_sec(),
            r.writes_per_sec() / ETCD_1000_CLIENTS
        );
    }
}

//! `raftgate-bench-admin`: admin-write throughput and latency of a loopback cluster.
//!
//! Starts N `raftgate serve` processes (default 3) with the chaos harness, then runs one
//! bounded scenario per (target, client count): every client creates tenants back to back
//! for `--duration-secs` or until `--max-writes`, whichever comes first. Prints a table and
//! the etcd reference figures. Loopback only; stops by itself; the nodes die with it.
#![forbid(unsafe_code)]

mod load;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use raftgate_chaos::ClusterBuilder;

use crate::load::{Scenario, Target};

#[derive(Debug, Parser)]
#[command(
    name = "raftgate-bench-admin",
    about = "Admin-write throughput and latency of a loopback Raftgate cluster"
)]
struct Args {
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Concurrent clients, one scenario per value (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<usize>,
    /// Where the writes go, one scenario per value: random (any node), leader, followers.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "random,leader,followers"
    )]
    targets: Vec<Target>,
    /// Upper bound on the writes of one scenario.
    #[arg(long, default_value_t = 1_000_000)]
    max_writes: u64,
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// The raftgate binary (default: RAFTGATE_BIN, else the debug build).
    #[arg(long)]
    bin: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.nodes >= 1 && args.nodes <= 7,
        "--nodes must be between 1 and 7"
    );
    anyhow::ensure!(
        args.duration_secs >= 1 && args.duration_secs <= 600,
        "--duration-secs must be between 1 and 600"
    );
    anyhow::ensure!(
        args.clients.iter().all(|&c| (1..=1024).contains(&c)),
        "--clients values must be between 1 and 1024"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut builder = ClusterBuilder::new(args.nodes);
    if let Some(bin) = &args.bin {
        builder = builder.binary(bin);
    }
    eprintln!("starting a {}-node cluster on loopback ...", args.nodes);
    let cluster = builder.form().await.context("forming the cluster")?;
    let token = cluster
        .token()
        .context("no admin token after init")?
        .to_string();
    eprintln!("cluster formed; binary {}", cluster.binary().display());
    let mut results = Vec::new();
    for (run_no, (&target, &clients)) in args
        .targets
        .iter()
        .flat_map(|t| args.clients.iter().map(move |c| (t, c)))
        .enumerate()
    {
        if target == Target::Followers && args.nodes < 2 {
            eprintln!("skipping 'followers': a 1-node cluster has none");
            continue;
        }
        let leader = cluster.wait_leader().await.context("finding the leader")?;
        let urls = match target {
            Target::Random => cluster
                .running()
                .iter()
                .map(|&i| cluster.admin_url(i))
                .collect::<Result<Vec<_>, _>>()?,
            Target::Leader => vec![cluster.admin_url(leader)?],
            Target::Followers => cluster
                .followers(leader)
                .iter()
                .map(|&i| cluster.admin_url(i))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let scenario = Scenario {
            target,
            clients,
            duration: Duration::from_secs(args.duration_secs),
            max_writes: args.max_writes,
            urls,
            token: token.clone(),
            id_prefix: format!("bench{run_no}"),
        };
        eprintln!(
            "running {target:?} with {clients} client(s) for {}s ...",
            args.duration_secs
        );
        results.push(load::run(scenario).await);
    }
    report::print(&results, args.nodes, args.duration_secs, cluster.binary());
    Ok(())
}

//! `raftgate-chaos`: the chaos suite (see `chaos-tests/README.md`). Runs fault scenarios
//! against a cluster of local processes, Docker containers, or the operator's own nodes,
//! prints a table, writes `report.json` and `report.md`, and exits 1 on any FAIL.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};

use raftgate_chaos::cluster::{ClusterBuilder, FAKETIME_LIB};
use raftgate_chaos::docker::{DockerCluster, DockerOptions};
use raftgate_chaos::suite::external::ExternalCluster;
use raftgate_chaos::suite::nemesis::{self, Fault};
use raftgate_chaos::suite::report::SuiteReport;
use raftgate_chaos::suite::scenario::Settings;
use raftgate_chaos::suite::{self};

#[derive(Parser)]
#[command(
    name = "raftgate-chaos",
    version,
    about = "Fault-injection suite for a Raftgate cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the scenarios and the named sets.
    List,
    /// Run scenarios and report.
    Run(Box<RunArgs>),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// `raftgate serve` processes on loopback (needs root for partitions).
    Process,
    /// One container per node on a private Docker network, from a locally built image.
    Docker,
    /// The operator's running cluster (`--nodes`, `--token`, `--fault-command`).
    External,
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, value_enum, default_value = "process")]
    backend: BackendKind,
    /// `ci` (the reduced process set), `ci-docker`, `full`, or scenario names separated by commas.
    #[arg(long, default_value = "ci")]
    scenarios: String,
    /// Replays a run's fault schedule; printed by every run.
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds each fault is held.
    #[arg(long, default_value_t = 8)]
    hold_secs: u64,
    /// Seconds of load before the fault.
    #[arg(long, default_value_t = 4)]
    warmup_secs: u64,
    /// Seconds of load after the heal.
    #[arg(long, default_value_t = 4)]
    cooldown_secs: u64,
    /// Where `report.json` and `report.md` go.
    #[arg(long, default_value = "chaos-report")]
    report: PathBuf,
    /// Nodes per cluster (process and docker backends).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// External: the nodes' admin URLs, comma-separated, as the nodes advertise them.
    #[arg(long, value_delimiter = ',')]
    admin_urls: Vec<String>,
    /// External: the nodes' data-plane URLs in the same order (default: from the cluster status).
    #[arg(long, value_delimiter = ',')]
    data_urls: Vec<String>,
    /// External: an admin token.
    #[arg(long, env = "RAFTGATE_TOKEN")]
    token: Option<String>,
    /// External: the fault command (see the README), run with `sh -c`.
    #[arg(long)]
    fault_command: Option<String>,
    /// External: the actions the fault command supports.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kill,start,pause,resume,cut,heal"
    )]
    fault_actions: Vec<String>,
    /// External: the address of this machine as the nodes reach it (the suite's upstream
    /// and mock LLM server listen there).
    #[arg(long)]
    harness_host: Option<String>,
    /// External: the local address those servers bind (default: 0.0.0.0).
    #[arg(long, default_value = "0.0.0.0")]
    harness_bind: String,
}

fn scenarios(spec: &str) -> anyhow::Result<Vec<Fault>> {
    Ok(match spec {
        "ci" => nemesis::CI.to_vec(),
        "ci-docker" => nemesis::CI_DOCKER.to_vec(),
        "full" => nemesis::ALL.to_vec(),
        names => names
            .split(',')
            .map(|n| {
                Fault::parse(n.trim())
                    .with_context(|| format!("unknown scenario {n:?} (see `raftgate-chaos list`)"))
            })
            .collect::<anyhow::Result<_>>()?,
    })
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// `2 cores, 24 GiB, <cpu model>`: what the report says the run ran on.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .unwrap_or("unknown CPU")
        .trim()
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024 / 1024);
    format!("{cores} cores, {mem_gib} GiB, {model}")
}

/// A fresh secret key for a cluster the suite starts (provider API keys are encrypted
/// under it, so every node of one cluster gets the same).
fn secret_key() -> String {
    (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn is_root() -> bool {
    command_output("id", &["-u"]) == "0"
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::List => {
            for f in nemesis::ALL {
                let tag = if nemesis::CI.contains(&f) {
                    " (ci)"
                } else {
                    ""
                };
                let dtag = if nemesis::CI_DOCKER.contains(&f) {
                    " (ci-docker)"
                } else {
                    ""
                };
                println!("{}{tag}{dtag}", f.name());
            }
            return Ok(());
        }
        Command::Run(a) => *a,
    };
    let faults = scenarios(&args.scenarios)?;
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007)
    });
    let backend_name = match args.backend {
        BackendKind::Process => "process",
        BackendKind::Docker => "docker",
        BackendKind::External => "external",
    };
    let replay = format!(
        "raftgate-chaos run --backend {backend_name} --scenarios {} --seed {seed} --hold-secs {}",
        args.scenarios, args.hold_secs
    );
    eprintln!("chaos: seed {seed} — replay with: {replay}");
    let mut settings = Settings {
        seed,
        warmup: Duration::from_secs(args.warmup_secs),
        hold: Duration::from_secs(args.hold_secs),
        cooldown: Duration::from_secs(args.cooldown_secs),
        ..Settings::default()
    };
    let started = command_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
    let nodes = args.nodes;
    let reports = match args.backend {
        BackendKind::Process => {
            let root = is_root();
            if !root {
                eprintln!("chaos: not root: partition scenarios will be skipped (they need iptables and group ids)");
            }
            let clock = std::path::Path::new(FAKETIME_LIB).is_file();
            if !clock {
                eprintln!("chaos: {FAKETIME_LIB} missing: clock-jump will be skipped (apt-get install libfaketime)");
            }
            suite::run_all(&faults, &settings, || async move {
                let mut builder = ClusterBuilder::new(nodes)
                    .snapshot_logs(500)
                    .env("RAFTGATE_SECRET_KEY", &secret_key());
                if root {
                    builder = builder.partitionable();
                }
                if clock {
                    builder = builder.clock_control();
                }
                builder.start().await
            })
            .await
        }
        BackendKind::Docker => {
            suite::run_all(&faults, &settings, || async move {
                let opts = DockerOptions::new(nodes)
                    .snapshot_logs(500)
                    .env("RAFTGATE_SECRET_KEY", &secret_key());
                DockerCluster::start(opts).await
            })
            .await
        }
        BackendKind::External => {
            let Some(token) = args.token.clone() else {
                bail!("--backend external needs --token (or RAFTGATE_TOKEN)");
            };
            let Some(host) = args.harness_host.clone() else {
                bail!("--backend external needs --harness-host: the address at which the nodes reach this machine");
            };
            if args.admin_urls.len() < 3 {
                bail!("--backend external needs --admin-urls with every node (3 or more)");
            }
            settings.preformed = true;
            let a = &args;
            suite::run_all(&faults, &settings, || {
                let (token, host) = (token.clone(), host.clone());
                async move {
                    ExternalCluster::connect(
                        &a.admin_urls,
                        &a.data_urls,
                        &token,
                        a.fault_command.clone(),
                        a.fault_actions.clone(),
                        host,
                        a.harness_bind.clone(),
                    )
                    .await
                }
            })
            .await
        }
    };
    let report = SuiteReport {
        started,
        machine: machine(),
        backend: backend_name.into(),
        seed,
        replay,
        scenarios: reports,
    };
    println!("\n{}", report.table());
    report.write(&args.report)?;
    println!(
        "seed {seed}; report written to {}/report.json and report.md",
        args.report.display()
    );
    if report.passed() {
        println!("chaos: PASS");
        Ok(())
    } else {
        println!("chaos: FAIL");
        std::process::exit(1);
    }
}

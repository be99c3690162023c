//! `raftgate-upstream`: the chaos harness's test upstream as a process, for benchmarks and
//! manual use. Serves HTTP/1.1 and HTTP/2 (h2c, or TLS with ALPN) until SIGTERM or ctrl-c;
//! endpoints as in `raftgate_chaos::upstream` (`/bench`, `/health`, echo, ...).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use raftgate_chaos::upstream::{TestUpstream, UpstreamOptions};

#[derive(Debug, Parser)]
#[command(
    name = "raftgate-upstream",
    about = "Test upstream: echo, /status, /delay, /bytes, /upload, /ws, /bench"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8091")]
    listen: SocketAddr,
    /// Reported as `server` in echo answers.
    #[arg(long, default_value = "upstream")]
    name: String,
    /// PEM certificate chain: serve TLS (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key (needs --tls-cert).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Runtime worker threads (default: the CPUs this process may run on).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        anyhow::ensure!(n >= 1, "--threads must be at least 1");
        runtime.worker_threads(n);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut options = UpstreamOptions::named(&args.name).addr(args.listen);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let cert =
            std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
        let key =
            std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?;
        options = options.tls(&cert, &key);
    }
    let mut upstream = TestUpstream::start(options).await?;
    println!("listening on {}", upstream.addr());
    wait_for_signal().await?;
    upstream.stop().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for ctrl-c"),
        _ = term.recv() => Ok(()),
    }
}

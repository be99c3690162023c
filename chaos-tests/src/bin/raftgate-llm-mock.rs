//! `raftgate-llm-mock`: a mock LLM provider (OpenAI, Azure OpenAI, Anthropic or Gemini wire
//! format; see `raftgate_chaos::llm_mock`) as a process, for benchmarks and manual use.
//! Prints `{"addr":..,"base_url":..,"flavor":..,"name":..}` as one line on stdout once
//! listening, then serves (HTTP/1.1 keep-alive or h2c, nothing logged, requests not
//! recorded) until SIGTERM or ctrl-c.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use raftgate_chaos::llm_mock::{Flavor, MockOptions, MockProvider};

#[derive(Debug, Parser)]
#[command(
    name = "raftgate-llm-mock",
    about = "Mock LLM provider: OpenAI, Azure OpenAI, Anthropic or Gemini wire format"
)]
struct Args {
    /// openai | azure | anthropic | gemini.
    #[arg(long)]
    flavor: Flavor,
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// The expected API key (default: any key is accepted, but one must be sent).
    #[arg(long)]
    api_key: Option<String>,
    /// Wait before every response head.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Wait between two stream chunks.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// A fixed reply text instead of "mock reply to: <last user message>".
    #[arg(long)]
    reply: Option<String>,
    /// Sent as the x-mock-name header (default: the flavor).
    #[arg(long)]
    name: Option<String>,
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
    let mut opts = MockOptions::new(args.flavor);
    opts.addr = args.addr;
    opts.api_key = args.api_key;
    opts.latency = Duration::from_millis(args.latency_ms);
    opts.chunk_delay = Duration::from_millis(args.chunk_delay_ms);
    opts.reply = args.reply;
    opts.record = false;
    if let Some(name) = args.name {
        opts.name = name;
    }
    let mock = MockProvider::start(opts).await?;
    let line = serde_json::json!({
        "addr": mock.addr().to_string(),
        "base_url": mock.base_url(),
        "flavor": mock.flavor().as_str(),
        "name": mock.name(),
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").context("writing the address")?;
    stdout.flush().context("flushing stdout")?;
    drop(stdout);
    wait_for_signal().await?;
    drop(mock);
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

//! `raftgate`: one binary for the gateway node, the dev playground and the admin CLI.
#![forbid(unsafe_code)]

use clap::Parser;

/// mimalloc instead of glibc malloc: the proxy allocates and frees small buffers per
/// request, and `bench/proxy.sh` measured the difference (see bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use raftgate_node::cli::{Cli, Command};
use raftgate_node::{client, dev, server};

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // The state machine's persistent maps (im) recurse with large frames in debug
        // builds; 2 MiB overflowed at ~2,300 API keys. Stacks are reserved, not touched.
        .thread_stack_size(16 * 1024 * 1024)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            std::process::exit(70);
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(args) => {
            let cfg = match args.resolve() {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(client::EXIT_USAGE);
                }
            };
            init_tracing(&cfg.log_level);
            report(runtime().block_on(server::serve(cfg, args.token)))
        }
        Command::Dev(args) => {
            init_tracing("warn,raftgate_node=info");
            report(runtime().block_on(dev::run(args)))
        }
        Command::Certs(args) => match raftgate_node::certs::run(&args) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {}", e.message);
                e.code
            }
        },
        other => match runtime().block_on(client::run(other)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {}", e.message);
                e.code
            }
        },
    };
    std::process::exit(code);
}

/// Exit status for `serve`/`dev`: 64 for configuration errors, 1 for anything else.
fn report(result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<raftgate_node::config::ConfigError>()
                .is_some()
            {
                client::EXIT_USAGE
            } else {
                1
            }
        }
    }
}

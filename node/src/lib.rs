//! The Raftgate node: configuration, CLI, admin API, data plane, metrics. `main.rs` is
//! the thin entry point; `server` is the composition root that wires the parts together.
#![forbid(unsafe_code)]

pub mod admin;
pub mod backup;
pub mod calllog;
pub mod certs;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod dataplane;
pub mod dev;
pub mod llm;
pub mod metrics;
pub mod proxy;
pub mod quota;
pub mod secrets;
pub mod server;
pub mod shield;
pub mod telemetry;
pub mod tls_reload;

//! Raftgate's chaos harness: drives real `raftgate` processes from outside, like an operator.
//!
//! The core is reusable by tests, by the operator-facing chaos suite and by benchmarks:
//! [`cluster::LocalCluster`] runs N `raftgate serve` processes on loopback and injects
//! faults (kill -9, restart, wiping a data dir, SIGSTOP pauses, iptables partitions of the
//! Raft ports); [`client::AdminClient`] talks to the admin API; [`ledger::AckLedger`]
//! remembers every acknowledged write so that "nothing acknowledged is lost" can be
//! checked at the end; [`garbage`] throws junk at the Raft port; [`cli`] runs the
//! `raftgate` CLI as a subprocess; [`upstream::TestUpstream`] is a real HTTP/1.1 + HTTP/2
//! backend for data-plane tests. The crate never links the node's crates.
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod cluster;
pub mod docker;
pub mod error;
pub mod garbage;
pub mod ledger;
pub mod llm_mock;
pub mod process;
pub mod suite;
pub mod upstream;
pub mod wait;

pub use client::{AdminClient, AdminError, ClusterStatus, NodeStatus, Read};
pub use cluster::{ClusterBuilder, LocalCluster};
pub use error::{ChaosError, Result};
pub use ledger::{AckLedger, AckedWrite, Writer, WriterStats};
pub use llm_mock::{MockOptions, MockProvider};
pub use upstream::{TestUpstream, UpstreamOptions};

//! The cluster's private bridge network and the iptables rules of a cut.
//!
//! Each cluster gets its own /24 (`172.30.X.0/24`, the first free X), gateway `.1` (the
//! host side of the bridge, where the suite's servers listen), node `i` at `.10+i`. Fixed
//! addresses let a restarted container come back on its old IP, which the other nodes
//! know it by.
//!
//! A cut between `a` and `b` is two DROP rules in each one's network namespace (entered
//! from the host with `nsenter`; the scratch image has no iptables): from the peer's IP
//! and to the peer's IP, in a chain [`CHAIN`] jumped to from `INPUT` and `OUTPUT`. The
//! host (gateway) is never matched, so admin and data-plane ports stay reachable.
//! `docker start` gives a container a fresh namespace without the rules, so the cluster
//! re-applies its cuts after a restart.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

use super::cmd::{docker, run, IPTABLES_TIMEOUT};
use super::image::LABEL;

/// The chain holding the cut rules in a container's namespace.
pub(super) const CHAIN: &str = "RAFTGATE-CUT";

/// Last octet of node 0's address.
const FIRST_HOST: u8 = 10;

/// Candidate subnets tried before giving up.
const ATTEMPTS: u32 = 64;

/// Distinguishes the networks of several clusters of one test process.
static NET_SEQ: AtomicU32 = AtomicU32::new(0);

/// A user-defined bridge network with its own /24.
#[derive(Debug)]
pub(super) struct Network {
    pub name: String,
    /// Third octet of `172.30.X.0/24`.
    octet: u8,
}

impl Network {
    /// Creates `raftgate-chaos-<pid>-<n>` on the first `172.30.X.0/24` Docker accepts
    /// (another cluster, or a host route, may hold a candidate).
    pub fn create() -> Result<Network, String> {
        let pid = std::process::id();
        // Start at a pid-dependent X so that concurrent test processes rarely collide.
        let mut octet = ((pid * 7) % 256) as u8;
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let name = format!(
                "raftgate-chaos-{pid}-{}",
                NET_SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let subnet = format!("172.30.{octet}.0/24");
            let gateway = format!("172.30.{octet}.1");
            match docker(&[
                "network",
                "create",
                "--driver",
                "bridge",
                "--subnet",
                &subnet,
                "--gateway",
                &gateway,
                "--label",
                LABEL,
                &name,
            ]) {
                Ok(_) => return Ok(Network { name, octet }),
                // A stale network of a dead process with our pid: take the next number.
                Err(e) if e.contains("already exists") => last = e,
                Err(e) if e.contains("overlap") => {
                    last = e;
                    octet = octet.wrapping_add(1);
                }
                Err(e) => return Err(e),
            }
        }
        Err(format!(
            "no free 172.30.X.0/24 subnet after {ATTEMPTS} attempts; last: {last}"
        ))
    }

    /// The host side of the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(172, 30, self.octet, 1)
    }

    /// Node `i`'s address; None past the /24.
    pub fn node_ip(&self, i: usize) -> Option<Ipv4Addr> {
        let host = u8::try_from(i)
            .ok()
            .and_then(|i| i.checked_add(FIRST_HOST))
            .filter(|&h| h < 255)?;
        Some(Ipv4Addr::new(172, 30, self.octet, host))
    }

    pub fn remove(&self) -> Result<(), String> {
        docker(&["network", "rm", &self.name]).map(|_| ())
    }
}

/// `nsenter -t PID -n iptables -w ARGS`: iptables in the namespace of process `pid`.
fn iptables(pid: u32, args: &[&str]) -> Result<(), String> {
    let mut full = vec![
        "-t".to_string(),
        pid.to_string(),
        "-n".into(),
        "iptables".into(),
        "-w".into(),
    ];
    full.extend(args.iter().map(|a| a.to_string()));
    run("nsenter", &full, IPTABLES_TIMEOUT).map(|_| ())
}

/// Creates [`CHAIN`] and its jumps from INPUT and OUTPUT in `pid`'s namespace, if missing.
fn ensure_chain(pid: u32) -> Result<(), String> {
    match iptables(pid, &["-N", CHAIN]) {
        Err(e) if !e.contains("already exists") => return Err(e),
        _ => {}
    }
    for hook in ["INPUT", "OUTPUT"] {
        if iptables(pid, &["-C", hook, "-j", CHAIN]).is_err() {
            iptables(pid, &["-I", hook, "1", "-j", CHAIN])?;
        }
    }
    Ok(())
}

/// In `pid`'s namespace, drops everything from and to `peer`.
pub(super) fn drop_peer(pid: u32, peer: Ipv4Addr) -> Result<(), String> {
    ensure_chain(pid)?;
    let peer = peer.to_string();
    iptables(pid, &["-A", CHAIN, "-s", &peer, "-j", "DROP"])?;
    iptables(pid, &["-A", CHAIN, "-d", &peer, "-j", "DROP"])
}

/// Empties [`CHAIN`] in `pid`'s namespace (fine when it was never created).
pub(super) fn flush(pid: u32) -> Result<(), String> {
    match iptables(pid, &["-F", CHAIN]) {
        Err(e) if !e.contains("No chain") && !e.contains("does not exist") => Err(e),
        _ => Ok(()),
    }
}

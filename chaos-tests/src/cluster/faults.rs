//! Faults beyond kill -9: pausing a node (SIGSTOP / SIGCONT), cutting a node off the
//! other nodes' Raft traffic with iptables on loopback, and pinning a node to CPUs.
//!
//! A partition works on ports and process groups, because every node listens on
//! 127.0.0.1: the nodes of a [`ClusterBuilder::partitionable`] cluster run with group id
//! [`PARTITION_GID_BASE`] + index, and cutting node `i` off adds, in two chains of this
//! cluster's own (jumped to from `INPUT` and `OUTPUT`):
//!
//! - `OUTPUT -p tcp --dport <raft port of every other node> -m owner --gid-owner <gid of i> -j DROP`
//!   (node `i` reaches no other node's Raft/cluster gRPC port),
//! - `INPUT -p tcp --dport <raft port of i> -j DROP` (no one reaches node `i`'s).
//!
//! Data-plane and admin ports stay reachable by the test's clients. Packets are dropped,
//! not rejected, as a real partition does. The rules match ports, so they survive a
//! restart of the node (which binds the same ports). [`LocalCluster::heal`] (also run on
//! drop) removes both chains.
//!
//! [`ClusterBuilder::partitionable`]: super::ClusterBuilder::partitionable

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::LocalCluster;
use crate::error::{ChaosError, Result};

/// Node `i` of a partitionable cluster runs with group id `PARTITION_GID_BASE + i`.
pub const PARTITION_GID_BASE: u32 = 4200;

/// Distinguishes the chains of several clusters of one test process.
static CHAIN_SEQ: AtomicU32 = AtomicU32::new(0);

/// The iptables chains of one cluster's partitions.
#[derive(Debug)]
pub(super) struct Firewall {
    input: String,
    output: String,
    /// Indexes of the nodes cut off.
    cut: Vec<usize>,
}

/// Runs `iptables -w ARGS`; Err with its stderr when it fails or cannot run.
fn iptables(args: &[&str]) -> std::result::Result<(), String> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `iptables`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`iptables -w {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn port_of(addr: &str) -> Result<String> {
    addr.rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .ok_or_else(|| ChaosError::Invariant(format!("not a host:port address: {addr}")))
}

impl Firewall {
    /// Creates this cluster's two chains and the jumps to them.
    fn create() -> std::result::Result<Firewall, String> {
        let n = CHAIN_SEQ.fetch_add(1, Ordering::Relaxed);
        let base = format!("RAFTGATE-{}-{n}", std::process::id());
        let fw = Firewall {
            input: format!("{base}-I"),
            output: format!("{base}-O"),
            cut: Vec::new(),
        };
        iptables(&["-N", &fw.input])?;
        let created = iptables(&["-N", &fw.output])
            .and_then(|()| iptables(&["-I", "INPUT", "1", "-j", &fw.input]))
            .and_then(|()| iptables(&["-I", "OUTPUT", "1", "-j", &fw.output]));
        if let Err(e) = created {
            let _ = fw.remove();
            return Err(e);
        }
        Ok(fw)
    }

    /// Removes the jumps and both chains; every step is tried, the first error returned.
    fn remove(&self) -> std::result::Result<(), String> {
        let steps: [&[&str]; 6] = [
            &["-D", "INPUT", "-j", &self.input],
            &["-D", "OUTPUT", "-j", &self.output],
            &["-F", &self.input],
            &["-F", &self.output],
            &["-X", &self.input],
            &["-X", &self.output],
        ];
        let mut first = Ok(());
        for step in steps {
            if let Err(e) = iptables(step) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

impl LocalCluster {
    /// Whether node `i` is stopped by [`LocalCluster::pause`].
    pub fn is_paused(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(|s| s.paused)
    }

    /// Stops node `i` with SIGSTOP: it keeps its sockets and memory but answers nothing
    /// (like a long GC pause or a frozen VM) until [`LocalCluster::resume`].
    pub fn pause(&mut self, i: usize) -> Result<()> {
        let slot = self.slots.get_mut(i).ok_or_else(|| ChaosError::NodeState {
            index: i,
            problem: "no such node".into(),
        })?;
        let proc = slot.proc.as_mut().ok_or_else(|| ChaosError::NodeState {
            index: i,
            problem: "pause: not running".into(),
        })?;
        proc.signal("STOP")?;
        slot.paused = true;
        Ok(())
    }

    /// Continues node `i` after [`LocalCluster::pause`] (SIGCONT).
    pub fn resume(&mut self, i: usize) -> Result<()> {
        let slot = self.slots.get_mut(i).ok_or_else(|| ChaosError::NodeState {
            index: i,
            problem: "no such node".into(),
        })?;
        let proc = slot.proc.as_mut().ok_or_else(|| ChaosError::NodeState {
            index: i,
            problem: "resume: not running".into(),
        })?;
        proc.signal("CONT")?;
        slot.paused = false;
        Ok(())
    }

    /// Restricts every thread of node `i` to the CPUs in `cpus` (a `taskset` list such as
    /// `"0"` or `"0,1"`): CPU starvation, or a benchmark's pinning, to make scheduling
    /// races likely. Lasts until the process ends. [`ChaosError::FaultUnavailable`] when
    /// `taskset` is missing or refuses.
    pub fn pin_cpus(&self, i: usize, cpus: &str) -> Result<()> {
        let slot = self.slot(i)?;
        let proc = slot.proc.as_ref().ok_or_else(|| ChaosError::NodeState {
            index: i,
            problem: "pin_cpus: not running".into(),
        })?;
        let pid = proc.pid().to_string();
        let unavailable = |reason: String| ChaosError::FaultUnavailable {
            fault: format!("pinning node index {i} to CPUs {cpus}"),
            reason,
        };
        let out = Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &pid])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| unavailable(format!("cannot run `taskset`: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(unavailable(format!(
                "`taskset -a -p -c {cpus} {pid}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Indexes of the nodes cut off by [`LocalCluster::partition`] and not healed yet.
    pub fn partitioned(&self) -> Vec<usize> {
        self.firewall
            .as_ref()
            .map_or_else(Vec::new, |f| f.cut.clone())
    }

    /// Cuts node `i` off from the other nodes' Raft traffic (both directions), leaving
    /// its data-plane and admin ports reachable; see the module docs. Several nodes may
    /// be cut off (each from all others). The cluster must have been started with
    /// [`ClusterBuilder::partitionable`](super::ClusterBuilder::partitionable).
    ///
    /// [`ChaosError::FaultUnavailable`] when iptables is missing or refuses (not root,
    /// no netfilter): callers may skip rather than fail.
    pub fn partition(&mut self, i: usize) -> Result<()> {
        let unavailable = |reason: String| ChaosError::FaultUnavailable {
            fault: format!("a partition of node index {i}"),
            reason,
        };
        let gid = self
            .slot(i)?
            .spec
            .gid
            .ok_or_else(|| ChaosError::NodeState {
                index: i,
                problem: "partition: the cluster was not started with \
                      ClusterBuilder::partitionable() (nodes need their own group id)"
                    .into(),
            })?;
        let own_port = port_of(&self.info(i)?.raft_addr)?;
        let mut other_ports = Vec::new();
        for j in (0..self.slots.len()).filter(|&j| j != i) {
            if let Some(info) = &self.slots[j].last {
                other_ports.push(port_of(&info.raft_addr)?);
            }
        }
        if self.partitioned().contains(&i) {
            return Ok(());
        }
        if self.firewall.is_none() {
            self.firewall = Some(Firewall::create().map_err(unavailable)?);
        }
        let Some(fw) = self.firewall.as_mut() else {
            return Err(unavailable("no firewall chain".into()));
        };
        let gid = gid.to_string();
        let mut rules: Vec<Vec<&str>> = other_ports
            .iter()
            .map(|p| {
                vec![
                    "-A",
                    fw.output.as_str(),
                    "-p",
                    "tcp",
                    "--dport",
                    p.as_str(),
                    "-m",
                    "owner",
                    "--gid-owner",
                    gid.as_str(),
                    "-j",
                    "DROP",
                ]
            })
            .collect();
        rules.push(vec![
            "-A",
            fw.input.as_str(),
            "-p",
            "tcp",
            "--dport",
            own_port.as_str(),
            "-j",
            "DROP",
        ]);
        for rule in &rules {
            iptables(rule).map_err(unavailable)?;
        }
        fw.cut.push(i);
        Ok(())
    }

    /// Removes every partition (no-op when there is none).
    pub fn heal(&mut self) -> Result<()> {
        match self.firewall.take() {
            None => Ok(()),
            Some(fw) => fw.remove().map_err(|reason| ChaosError::FaultUnavailable {
                fault: "healing a partition".into(),
                reason,
            }),
        }
    }
}

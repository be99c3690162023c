//! Faults beyond kill -9: pausing a node (SIGSTOP / SIGCONT), cutting a node off the
//! other nodes' Raft traffic with iptables on loopback, and pinning a node to CPUs.
//!
//! A partition works on ports and process groups, because every node listens on
//! 127.0.0.1: the nodes of a [`ClusterBuilder::partitionable`] cluster run with group id
//! [`PARTITION_GID_BASE`] + index, and cutting the link between nodes `a` and `b` adds,
//! in a chain of this cluster's own (jumped to from `OUTPUT`):
//!
//! - `-p tcp --dport <raft port of b> -m owner --gid-owner <gid of a> -j DROP`
//! - `-p tcp --dport <raft port of a> -m owner --gid-owner <gid of b> -j DROP`
//!
//! so neither reaches the other's Raft/cluster gRPC port, while both still reach the
//! rest (a bridge partition is two nodes whose link is cut, both linked to a third).
//! Isolating a node ([`LocalCluster::partition`]) cuts all its links. Data-plane and
//! admin ports stay reachable by the test's clients. Packets are dropped, not rejected,
//! as a real partition does. The rules match ports, so they survive a restart of the
//! node (which binds the same ports). [`LocalCluster::heal`] (also run on drop) removes
//! the chain.
//!
//! A clock jump uses libfaketime (Debian's `libfaketime`) preloaded into every node of
//! a [`ClusterBuilder::clock_control`] cluster: the wall clock (`CLOCK_REALTIME`) is
//! offset by what the node's `faketime` file says, re-read every second; the monotonic
//! clock (timers, Raft elections) is left alone, as an NTP step would.
//!
//! [`ClusterBuilder::partitionable`]: super::ClusterBuilder::partitionable
//! [`ClusterBuilder::clock_control`]: super::ClusterBuilder::clock_control

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::LocalCluster;
use crate::error::{ChaosError, Result};

/// Node `i` of a partitionable cluster runs with group id `PARTITION_GID_BASE + i`.
pub const PARTITION_GID_BASE: u32 = 4200;

/// Distinguishes the chains of several clusters of one test process.
static CHAIN_SEQ: AtomicU32 = AtomicU32::new(0);

/// Where libfaketime is when Debian's `libfaketime` package is installed.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The iptables chain of one cluster's cuts.
#[derive(Debug)]
pub(super) struct Firewall {
    output: String,
    /// Cut links, each as (smaller index, larger index).
    links: BTreeSet<(usize, usize)>,
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
    /// Creates this cluster's chain and the jump to it.
    fn create() -> std::result::Result<Firewall, String> {
        let n = CHAIN_SEQ.fetch_add(1, Ordering::Relaxed);
        let fw = Firewall {
            output: format!("RAFTGATE-{}-{n}", std::process::id()),
            links: BTreeSet::new(),
        };
        iptables(&["-N", &fw.output])?;
        if let Err(e) = iptables(&["-I", "OUTPUT", "1", "-j", &fw.output]) {
            let _ = fw.remove();
            return Err(e);
        }
        Ok(fw)
    }

    /// Removes the jump and the chain; every step is tried, the first error returned.
    fn remove(&self) -> std::result::Result<(), String> {
        let steps: [&[&str]; 3] = [
            &["-D", "OUTPUT", "-j", &self.output],
            &["-F", &self.output],
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

    /// Whether the nodes run with their own group ids, so links can be cut.
    pub fn is_partitionable(&self) -> bool {
        self.slots.iter().all(|s| s.spec.gid.is_some())
    }

    /// Whether the nodes run with libfaketime, so their clocks can be stepped.
    pub fn has_clock_control(&self) -> bool {
        self.slots.iter().all(|s| s.spec.faketime_file.is_some())
    }

    /// Indexes of the nodes whose links to every other node are cut.
    pub fn partitioned(&self) -> Vec<usize> {
        let Some(fw) = &self.firewall else {
            return Vec::new();
        };
        let n = self.slots.len();
        (0..n)
            .filter(|&i| {
                (0..n)
                    .filter(|&j| j != i)
                    .all(|j| fw.links.contains(&(i.min(j), i.max(j))))
            })
            .collect()
    }

    /// Cuts node `i` off from every other node's Raft traffic (both directions), leaving
    /// its data-plane and admin ports reachable; see the module docs. Several nodes may
    /// be cut off (each from all others). The cluster must have been started with
    /// [`ClusterBuilder::partitionable`](super::ClusterBuilder::partitionable).
    ///
    /// [`ChaosError::FaultUnavailable`] when iptables is missing or refuses (not root,
    /// no netfilter): callers may skip rather than fail.
    pub fn partition(&mut self, i: usize) -> Result<()> {
        for j in (0..self.slots.len()).filter(|&j| j != i) {
            self.cut_link(i, j)?;
        }
        Ok(())
    }

    /// Cuts the Raft traffic between nodes `a` and `b`, both directions (see the module
    /// docs); the other links stay. Idempotent.
    pub fn cut_link(&mut self, a: usize, b: usize) -> Result<()> {
        let unavailable = |reason: String| ChaosError::FaultUnavailable {
            fault: format!("cutting the link between node indexes {a} and {b}"),
            reason,
        };
        let link = (a.min(b), a.max(b));
        if a == b {
            return Err(ChaosError::NodeState {
                index: a,
                problem: "cut_link: a node has no link to itself".into(),
            });
        }
        if self
            .firewall
            .as_ref()
            .is_some_and(|f| f.links.contains(&link))
        {
            return Ok(());
        }
        let mut ends = Vec::new();
        for i in [a, b] {
            let gid = self
                .slot(i)?
                .spec
                .gid
                .ok_or_else(|| ChaosError::NodeState {
                    index: i,
                    problem: "cut_link: the cluster was not started with \
                      ClusterBuilder::partitionable() (nodes need their own group id)"
                        .into(),
                })?;
            ends.push((gid.to_string(), port_of(&self.info(i)?.raft_addr)?));
        }
        if self.firewall.is_none() {
            self.firewall = Some(Firewall::create().map_err(unavailable)?);
        }
        let Some(fw) = self.firewall.as_mut() else {
            return Err(unavailable("no firewall chain".into()));
        };
        for (from, to) in [(0, 1), (1, 0)] {
            let (gid, _) = &ends[from];
            let (_, port) = &ends[to];
            iptables(&[
                "-A",
                fw.output.as_str(),
                "-p",
                "tcp",
                "--dport",
                port,
                "-m",
                "owner",
                "--gid-owner",
                gid,
                "-j",
                "DROP",
            ])
            .map_err(unavailable)?;
        }
        fw.links.insert(link);
        Ok(())
    }

    /// Steps node `i`'s wall clock to `offset_secs` from the real time (0: back to real
    /// time), through its libfaketime control file; takes effect within a second. The
    /// cluster must have been started with
    /// [`ClusterBuilder::clock_control`](super::ClusterBuilder::clock_control).
    pub fn set_clock_offset(&self, i: usize, offset_secs: i64) -> Result<()> {
        let slot = self.slot(i)?;
        let Some(file) = &slot.spec.faketime_file else {
            return Err(ChaosError::FaultUnavailable {
                fault: format!("a clock jump on node index {i}"),
                reason: "the cluster was not started with ClusterBuilder::clock_control()".into(),
            });
        };
        std::fs::write(file, format!("{offset_secs:+}\n"))
            .map_err(|e| ChaosError::io(format!("writing {}", file.display()), e))
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

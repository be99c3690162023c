//! `LocalCluster`: N `raftgate serve` processes on loopback, formed into a cluster through
//! the admin API, with fault injection (kill -9, restart on the same ports, wipe, pause
//! with SIGSTOP, cut a node off the others' Raft traffic with iptables, pin it to CPUs —
//! see `faults`).
//!
//! Node index `i` (0-based) runs with `--node-id i+1` under `ROOT/node-{id}/`: `data/` is
//! its data dir, `node.log` its stdout and stderr across restarts. Every process is killed
//! when the cluster is dropped; on a panic the log tails are printed and the directory kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::client::{http_client, AdminClient};
use crate::error::{ChaosError, Result};
use crate::process::{binary_path, log_tail, NodeInfo, NodeProcess, NodeSpec};

mod faults;
mod membership;

pub use faults::{FAKETIME_LIB, PARTITION_GID_BASE};

/// Every admin collection, in dependency order.
pub const COLLECTIONS: [&str; 10] = [
    "tenants",
    "consumers",
    "api_keys",
    "upstreams",
    "providers",
    "models",
    "routes",
    "prompt_templates",
    "quota_policies",
    "permissions",
];

/// Bound for elections, membership changes and catch-up.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Options for a [`LocalCluster`]; [`ClusterBuilder::start`] or [`ClusterBuilder::form`] runs it.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    nodes: usize,
    args: Vec<String>,
    env: Vec<(String, String)>,
    data_dirs: BTreeMap<usize, PathBuf>,
    bin: Option<PathBuf>,
    partitionable: bool,
    clock_control: bool,
}

impl ClusterBuilder {
    pub fn new(nodes: usize) -> ClusterBuilder {
        ClusterBuilder {
            nodes,
            args: Vec::new(),
            env: Vec::new(),
            data_dirs: BTreeMap::new(),
            bin: None,
            partitionable: false,
            clock_control: false,
        }
    }

    /// An extra `raftgate serve` flag for every node.
    pub fn arg(mut self, arg: &str) -> ClusterBuilder {
        self.args.push(arg.to_string());
        self
    }

    /// An environment variable for every node.
    pub fn env(mut self, key: &str, value: &str) -> ClusterBuilder {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Snapshot after `n` applied entries (`RAFTGATE_SNAPSHOT_LOGS`).
    pub fn snapshot_logs(self, n: u64) -> ClusterBuilder {
        self.env("RAFTGATE_SNAPSHOT_LOGS", &n.to_string())
    }

    /// Use `dir` as node `index`'s data dir instead of one in the cluster's temp dir.
    pub fn data_dir(mut self, index: usize, dir: &Path) -> ClusterBuilder {
        self.data_dirs.insert(index, dir.to_path_buf());
        self
    }

    /// Run this binary instead of the one [`binary_path`] finds.
    pub fn binary(mut self, bin: &Path) -> ClusterBuilder {
        self.bin = Some(bin.to_path_buf());
        self
    }

    /// Run node `i` with group id [`PARTITION_GID_BASE`] + `i`, so that
    /// [`LocalCluster::partition`] can match its packets. Needs root (the processes keep
    /// root's user id, so file access is unchanged).
    pub fn partitionable(mut self) -> ClusterBuilder {
        self.partitionable = true;
        self
    }

    /// Preload libfaketime into every node so that [`LocalCluster::set_clock_offset`] can
    /// step its wall clock. [`ChaosError::FaultUnavailable`] at start when the library is
    /// not installed (`apt-get install libfaketime`).
    pub fn clock_control(mut self) -> ClusterBuilder {
        self.clock_control = true;
        self
    }

    /// Starts every node and waits for each `/healthz`; the cluster is not initialised.
    pub async fn start(self) -> Result<LocalCluster> {
        let bin = match self.bin {
            Some(b) => b,
            None => binary_path()?,
        };
        if self.clock_control && !Path::new(FAKETIME_LIB).is_file() {
            return Err(ChaosError::FaultUnavailable {
                fault: "clock control".into(),
                reason: format!("{FAKETIME_LIB} is missing (apt-get install libfaketime)"),
            });
        }
        let root = tempfile::Builder::new()
            .prefix("raftgate-chaos-")
            .tempdir()
            .map_err(|e| ChaosError::io("creating the cluster's temp dir", e))?;
        let slots = (0..self.nodes)
            .map(|i| {
                let id = i as u64 + 1;
                let dir = root.path().join(format!("node-{id}"));
                let data_dir = self
                    .data_dirs
                    .get(&i)
                    .cloned()
                    .unwrap_or_else(|| dir.join("data"));
                let spec = NodeSpec {
                    node_id: id,
                    data_dir,
                    log_path: dir.join("node.log"),
                    addrs: None,
                    args: self.args.clone(),
                    env: self.env.clone(),
                    gid: self.partitionable.then_some(PARTITION_GID_BASE + i as u32),
                    faketime_file: self.clock_control.then(|| dir.join("faketime")),
                };
                Slot {
                    spec,
                    proc: None,
                    last: None,
                    paused: false,
                }
            })
            .collect();
        let mut cluster = LocalCluster {
            root: Some(root),
            bin,
            slots,
            token: None,
            http: http_client(),
            firewall: None,
        };
        for i in 0..cluster.slots.len() {
            cluster.restart(i).await?;
        }
        Ok(cluster)
    }

    /// Starts every node, initialises node 0, joins the others and waits until all vote.
    pub async fn form(self) -> Result<LocalCluster> {
        let mut cluster = self.start().await?;
        cluster.init().await?;
        for i in 1..cluster.len() {
            cluster.join(i).await?;
        }
        cluster.wait_for_voters(cluster.len()).await?;
        Ok(cluster)
    }
}

#[derive(Debug)]
struct Slot {
    spec: NodeSpec,
    proc: Option<NodeProcess>,
    /// The listeners of the latest run; a restart binds the same ones.
    last: Option<NodeInfo>,
    /// Stopped with SIGSTOP by [`LocalCluster::pause`].
    paused: bool,
}

/// A cluster of local `raftgate serve` processes. See the module docs.
#[derive(Debug)]
pub struct LocalCluster {
    root: Option<TempDir>,
    bin: PathBuf,
    slots: Vec<Slot>,
    token: Option<String>,
    http: reqwest::Client,
    /// iptables chains of [`LocalCluster::partition`], removed by `heal` or on drop.
    firewall: Option<faults::Firewall>,
}

impl LocalCluster {
    /// `n` nodes, started but not initialised.
    pub async fn start(n: usize) -> Result<LocalCluster> {
        ClusterBuilder::new(n).start().await
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The binary the nodes run (for CLI calls against this cluster).
    pub fn binary(&self) -> &Path {
        &self.bin
    }

    pub fn node_id(&self, i: usize) -> u64 {
        i as u64 + 1
    }

    pub fn index_of(&self, node_id: u64) -> Option<usize> {
        let i = usize::try_from(node_id).ok()?.checked_sub(1)?;
        (i < self.slots.len()).then_some(i)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(|s| s.proc.is_some())
    }

    /// Indexes of the running nodes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.is_running(i))
            .collect()
    }

    /// The admin token from `init` (or [`LocalCluster::set_token`]).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn set_token(&mut self, token: &str) {
        self.token = Some(token.to_string());
    }

    fn slot(&self, i: usize) -> Result<&Slot> {
        self.slots.get(i).ok_or_else(|| ChaosError::NodeState {
            index: i,
            problem: format!("no such node (cluster of {})", self.slots.len()),
        })
    }

    /// The listeners of node `i`'s latest run (also known while it is stopped).
    pub fn info(&self, i: usize) -> Result<&NodeInfo> {
        self.slot(i)?
            .last
            .as_ref()
            .ok_or_else(|| ChaosError::NodeState {
                index: i,
                problem: "never started".into(),
            })
    }

    pub fn admin_url(&self, i: usize) -> Result<String> {
        Ok(self.info(i)?.admin_url.clone())
    }

    pub fn data_dir(&self, i: usize) -> Result<&Path> {
        Ok(&self.slot(i)?.spec.data_dir)
    }

    /// Node `i`'s stdout/stderr file (every run appended).
    pub fn log_path(&self, i: usize) -> Result<&Path> {
        Ok(&self.slot(i)?.spec.log_path)
    }

    /// Sets (`Some`) or removes (`None`) an environment variable of node `i` from its next
    /// start on, e.g. to roll a new secret key ring to a stopped node.
    pub fn set_env(&mut self, i: usize, key: &str, value: Option<&str>) -> Result<()> {
        let slot = self.slots.get_mut(i).ok_or_else(|| ChaosError::NodeState {
            index: i,
            problem: "no such node".into(),
        })?;
        slot.spec.env.retain(|(k, _)| k != key);
        if let Some(v) = value {
            slot.spec.env.push((key.to_string(), v.to_string()));
        }
        Ok(())
    }

    /// The last `lines` lines of node `i`'s stdout/stderr.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        self.slots
            .get(i)
            .map_or_else(String::new, |s| log_tail(&s.spec.log_path, lines))
    }

    /// An admin client for node `i`, with the cluster's token when there is one.
    pub fn client(&self, i: usize) -> Result<AdminClient> {
        let client = self.anon_client(i)?;
        Ok(match &self.token {
            Some(t) => client.with_token(t),
            None => client,
        })
    }

    /// An admin client for node `i` without a token.
    pub fn anon_client(&self, i: usize) -> Result<AdminClient> {
        Ok(AdminClient::with_http(
            &self.admin_url(i)?,
            self.http.clone(),
        ))
    }

    /// Clients for every node that was started, stopped ones included.
    pub fn clients(&self) -> Result<Vec<AdminClient>> {
        (0..self.slots.len()).map(|i| self.client(i)).collect()
    }

    /// SIGKILLs node `i` (no shutdown, like `kill -9`).
    pub fn kill9(&mut self, i: usize) -> Result<()> {
        let slot = self.slots.get_mut(i).ok_or_else(|| ChaosError::NodeState {
            index: i,
            problem: "no such node".into(),
        })?;
        let mut proc = slot.proc.take().ok_or_else(|| ChaosError::NodeState {
            index: i,
            problem: "kill9: not running".into(),
        })?;
        // SIGKILL ends a stopped process too.
        slot.paused = false;
        proc.kill9()
    }

    /// Starts stopped node `i` again on its previous ports, with its data dir as it is.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        let bin = self.bin.clone();
        let slot = self.slots.get_mut(i).ok_or_else(|| ChaosError::NodeState {
            index: i,
            problem: "no such node".into(),
        })?;
        if slot.proc.is_some() {
            return Err(ChaosError::NodeState {
                index: i,
                problem: "restart: still running".into(),
            });
        }
        slot.spec.addrs = slot.last.clone();
        let proc = NodeProcess::start(&bin, &slot.spec).await?;
        slot.last = Some(proc.info().clone());
        slot.proc = Some(proc);
        Ok(())
    }

    /// Deletes stopped node `i`'s data dir (the next restart starts from nothing).
    pub fn wipe(&mut self, i: usize) -> Result<()> {
        let slot = self.slot(i)?;
        if slot.proc.is_some() {
            return Err(ChaosError::NodeState {
                index: i,
                problem: "wipe: still running; kill9 it first".into(),
            });
        }
        let dir = &slot.spec.data_dir;
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(ChaosError::io(format!("wiping {}", dir.display()), e))
            }
            _ => Ok(()),
        }
    }
}

impl LocalCluster {
    /// Starts one more node, with the flags, environment and fault setup of node 0 and the
    /// next node id, in the cluster's directory; it is not joined. Returns its index.
    pub async fn add_node(&mut self) -> Result<usize> {
        let i = self.slots.len();
        let id = i as u64 + 1;
        let template = self.slot(0)?.spec.clone();
        let root = self
            .root
            .as_ref()
            .map(|r| r.path().to_path_buf())
            .ok_or_else(|| ChaosError::NodeState {
                index: i,
                problem: "add_node: the cluster's directory is gone".into(),
            })?;
        let dir = root.join(format!("node-{id}"));
        let spec = NodeSpec {
            node_id: id,
            data_dir: dir.join("data"),
            log_path: dir.join("node.log"),
            addrs: None,
            args: template.args,
            env: template.env,
            gid: template.gid.map(|_| PARTITION_GID_BASE + i as u32),
            faketime_file: template.faketime_file.map(|_| dir.join("faketime")),
        };
        self.slots.push(Slot {
            spec,
            proc: None,
            last: None,
            paused: false,
        });
        self.restart(i).await?;
        Ok(i)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if let Err(e) = self.heal() {
            eprintln!("chaos harness: removing the partition's iptables rules: {e}");
        }
        for slot in &mut self.slots {
            if let Some(mut p) = slot.proc.take() {
                if slot.paused {
                    // Resume first so the process's end is an ordinary kill.
                    let _ = p.signal("CONT");
                    slot.paused = false;
                }
                let _ = p.kill9();
            }
        }
        let keep = std::env::var_os("RAFTGATE_CHAOS_KEEP").is_some();
        if std::thread::panicking() || keep {
            for slot in &self.slots {
                eprintln!(
                    "----- node {} log ({}) -----\n{}",
                    slot.spec.node_id,
                    slot.spec.log_path.display(),
                    log_tail(&slot.spec.log_path, 80)
                );
            }
            if let Some(root) = self.root.take() {
                eprintln!("----- cluster files kept in {}", root.keep().display());
            }
        }
    }
}

//! `DockerCluster`: each node in its own container on a private bridge network, from an
//! image built locally (see `image`), with faults injected into the containers: `docker
//! kill`, `docker pause` (the cgroup freezer), wiping a bind-mounted data dir, and
//! iptables cuts in a container's network namespace (see `net`).
//!
//! Node index `i` runs with `--node-id i+1` in container `raftgate-chaos-<pid>-<n>-node<i>`
//! at a fixed IP, listening on 8080 (data plane), 9080 (admin) and 7080 (Raft); its data
//! dir is the host dir `ROOT/node-{id}/data` mounted at `/data`. The cluster is started,
//! not initialised: the suite forms it through the admin API. Containers, network and
//! temp dirs are removed on drop; with `RAFTGATE_CHAOS_KEEP` set (or on a panic) the node
//! logs are printed and the data dirs kept.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::client::http_client;
use crate::error::{ChaosError, Result};
use crate::process::binary_path;

mod backend;
mod cmd;
mod image;
mod net;
mod node;

pub use image::LABEL;

pub const HTTP_PORT: u16 = 8080;
pub const ADMIN_PORT: u16 = 9080;
pub const RAFT_PORT: u16 = 7080;

/// Options for a [`DockerCluster`]; [`DockerOptions::start`] runs it.
#[derive(Debug, Clone)]
pub struct DockerOptions {
    nodes: usize,
    env: Vec<(String, String)>,
    node_env: BTreeMap<usize, Vec<(String, String)>>,
    image_tag: Option<String>,
    bin: Option<PathBuf>,
}

impl DockerOptions {
    pub fn new(nodes: usize) -> DockerOptions {
        DockerOptions {
            nodes,
            env: Vec::new(),
            node_env: BTreeMap::new(),
            image_tag: None,
            bin: None,
        }
    }

    /// An environment variable for every node (added nodes included).
    pub fn env(mut self, key: &str, value: &str) -> DockerOptions {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// An environment variable for node `index` only (after the common ones).
    pub fn node_env(mut self, index: usize, key: &str, value: &str) -> DockerOptions {
        let vars = self.node_env.entry(index).or_default();
        vars.push((key.to_string(), value.to_string()));
        self
    }

    /// Snapshot after `n` applied entries (`RAFTGATE_SNAPSHOT_LOGS`).
    pub fn snapshot_logs(self, n: u64) -> DockerOptions {
        self.env("RAFTGATE_SNAPSHOT_LOGS", &n.to_string())
    }

    /// Run image `tag` (built from the binary when missing) instead of
    /// `raftgate-chaos:<binary hash>`.
    pub fn image_tag(mut self, tag: &str) -> DockerOptions {
        self.image_tag = Some(tag.to_string());
        self
    }

    /// Put this binary in the image instead of the one [`binary_path`] finds.
    pub fn binary(mut self, bin: &Path) -> DockerOptions {
        self.bin = Some(bin.to_path_buf());
        self
    }

    pub async fn start(self) -> Result<DockerCluster> {
        DockerCluster::start(self).await
    }
}

#[derive(Debug)]
struct Slot {
    container: String,
    ip: Ipv4Addr,
    data_dir: PathBuf,
    env: Vec<(String, String)>,
    /// `docker run` done (later starts are `docker start`).
    created: bool,
    running: bool,
    paused: bool,
}

/// A cluster of `raftgate` containers. See the module docs.
#[derive(Debug)]
pub struct DockerCluster {
    root: Option<TempDir>,
    image: String,
    /// None once removed (drop).
    network: Option<net::Network>,
    slots: Vec<Slot>,
    options: DockerOptions,
    /// Active cuts as (lower index, higher index).
    cuts: BTreeSet<(usize, usize)>,
    token: Option<String>,
    http: reqwest::Client,
}

/// Runs a blocking harness step off the async runtime's worker threads.
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ChaosError::io(what.to_string(), std::io::Error::other(e)))?
}

/// A failed docker command as a harness error.
fn docker_err(what: String) -> impl FnOnce(String) -> ChaosError {
    move |e| ChaosError::io(what, std::io::Error::other(e))
}

impl DockerCluster {
    /// Builds (or reuses) the image, creates the network, starts `opts.nodes` containers
    /// and waits for each `/healthz`. Everything made so far is removed on an error.
    pub async fn start(opts: DockerOptions) -> Result<DockerCluster> {
        let bin = match &opts.bin {
            Some(b) => b.clone(),
            None => binary_path()?,
        };
        let tag = opts.image_tag.clone();
        let image = blocking("preparing the node image", move || {
            image::prepare(&bin, tag.as_deref())
        })
        .await?;
        let root = tempfile::Builder::new()
            .prefix("raftgate-chaos-docker-")
            .tempdir()
            .map_err(|e| ChaosError::io("creating the cluster's temp dir", e))?;
        let network = blocking("creating the network", || {
            net::Network::create().map_err(docker_err("creating the network".into()))
        })
        .await?;
        let mut cluster = DockerCluster {
            root: Some(root),
            image,
            network: Some(network),
            slots: Vec::new(),
            options: opts,
            cuts: BTreeSet::new(),
            token: None,
            http: http_client(),
        };
        for _ in 0..cluster.options.nodes {
            cluster.run_new().await?;
        }
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The image tag the containers run.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The Docker network's name.
    pub fn network(&self) -> &str {
        self.network.as_ref().map_or("", |n| n.name.as_str())
    }

    /// The network's gateway: the host as the containers see it.
    pub fn gateway(&self) -> Ipv4Addr {
        self.network
            .as_ref()
            .map_or(Ipv4Addr::UNSPECIFIED, |n| n.gateway())
    }

    pub fn index_of(&self, node_id: u64) -> Option<usize> {
        let i = usize::try_from(node_id).ok()?.checked_sub(1)?;
        (i < self.slots.len()).then_some(i)
    }

    /// Node `i`'s container IP (kept across restarts).
    pub fn ip(&self, i: usize) -> Result<Ipv4Addr> {
        Ok(self.slot(i)?.ip)
    }

    /// Admin API base URL of node `i`, e.g. `http://172.30.7.10:9080`.
    pub fn admin_url(&self, i: usize) -> Result<String> {
        Ok(format!("http://{}:{ADMIN_PORT}", self.ip(i)?))
    }

    /// Data-plane base URL of node `i`.
    pub fn data_url(&self, i: usize) -> Result<String> {
        Ok(format!("http://{}:{HTTP_PORT}", self.ip(i)?))
    }

    /// Node `i`'s container name.
    pub fn container(&self, i: usize) -> Result<&str> {
        Ok(&self.slot(i)?.container)
    }

    /// Node `i`'s data dir on the host (mounted at `/data` in its container).
    pub fn data_dir(&self, i: usize) -> Result<&Path> {
        Ok(&self.slot(i)?.data_dir)
    }

    /// The active cuts, as (lower index, higher index).
    pub fn cuts(&self) -> Vec<(usize, usize)> {
        self.cuts.iter().copied().collect()
    }

    fn slot(&self, i: usize) -> Result<&Slot> {
        self.slots.get(i).ok_or_else(|| ChaosError::NodeState {
            index: i,
            problem: format!("no such node (cluster of {})", self.slots.len()),
        })
    }

    fn slot_mut(&mut self, i: usize) -> Result<&mut Slot> {
        let n = self.slots.len();
        self.slots.get_mut(i).ok_or_else(|| ChaosError::NodeState {
            index: i,
            problem: format!("no such node (cluster of {n})"),
        })
    }

    /// `docker logs --tail lines` of node `i`, stdout and stderr interleaved.
    pub fn logs(&self, i: usize, lines: usize) -> String {
        let Some(slot) = self.slots.get(i) else {
            return String::new();
        };
        let args = cmd::owned(&["logs", "--tail", &lines.to_string(), &slot.container]);
        cmd::run_merged("docker", &args, cmd::DOCKER_TIMEOUT)
            .unwrap_or_else(|e| format!("<cannot read the log of {}: {e}>", slot.container))
    }
}

impl Drop for DockerCluster {
    fn drop(&mut self) {
        let keep = std::env::var_os("RAFTGATE_CHAOS_KEEP").is_some();
        if std::thread::panicking() || keep {
            for i in 0..self.slots.len() {
                eprintln!(
                    "----- node {} log (container {}) -----\n{}",
                    i + 1,
                    self.slots[i].container,
                    self.logs(i, 80)
                );
            }
        }
        let mut names: Vec<&str> = self
            .slots
            .iter()
            .filter(|s| s.created)
            .map(|s| s.container.as_str())
            .collect();
        if !names.is_empty() {
            names.splice(0..0, ["rm", "-f", "-v"]);
            if let Err(e) = cmd::docker(&names) {
                eprintln!("chaos docker: removing the containers: {e}");
            }
        }
        if let Some(network) = self.network.take() {
            if let Err(e) = network.remove() {
                eprintln!("chaos docker: removing network {}: {e}", network.name);
            }
        }
        if std::thread::panicking() || keep {
            if let Some(root) = self.root.take() {
                eprintln!("----- data dirs kept in {}", root.keep().display());
            }
        }
    }
}

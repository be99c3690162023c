//! What the chaos suite needs from a cluster, whoever runs its nodes: addresses, and
//! the faults it can inject. [`LocalCluster`] (processes on loopback), `DockerCluster`
//! (containers on a private network) and [`ExternalCluster`](super::external) (an
//! operator's machines, faults through a command they configure) implement it.
//!
//! Nodes are addressed by index `0..len()`; indexes are stable for a run (a node added by
//! [`Backend::add_node`] takes the next one). Cluster formation, leader discovery and
//! convergence are not here: the suite does them through the admin API
//! ([`super::membership`]), the same way for every backend.

use crate::client::AdminClient;
use crate::cluster::LocalCluster;
use crate::error::{ChaosError, Result};

/// A fault a backend may or may not be able to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `kill -9` a node and start it again with its data dir.
    Kill,
    /// SIGSTOP / SIGCONT.
    Pause,
    /// Cut the Raft/cluster traffic between two nodes (both directions).
    Cut,
    /// Delete a stopped node's data dir.
    Wipe,
    /// Start a new node (for membership changes).
    AddNode,
    /// Step one node's wall clock (not its monotonic clock).
    ClockJump,
}

/// A cluster's nodes and the faults that can be done to them. Methods that take an index
/// fail with [`ChaosError::NodeState`] for an unknown index or a node in the wrong state,
/// and with [`ChaosError::FaultUnavailable`] for a fault this backend cannot inject.
// The suite drives a backend from one task, so the futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// Short name for reports: `process`, `docker`, `external`.
    fn name(&self) -> &'static str;

    /// Number of nodes known (running or not).
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Raft node id of node `i` (`i + 1` for the backends we start ourselves).
    fn node_id(&self, i: usize) -> u64;

    /// Admin API base URL of node `i`, e.g. `http://10.0.0.2:9080`.
    fn admin_url(&self, i: usize) -> Result<String>;

    /// Data-plane base URL of node `i`, e.g. `http://10.0.0.2:8080`.
    fn data_url(&self, i: usize) -> Result<String>;

    /// Host name or IP at which the nodes reach a server the suite runs (the REST
    /// upstream and the mock LLM provider), e.g. `127.0.0.1` or a Docker network gateway.
    fn harness_host(&self) -> String;

    /// The interface the suite's servers bind so that the nodes can reach them.
    fn harness_bind(&self) -> String {
        self.harness_host()
    }

    /// The admin token used by [`Backend::client`].
    fn token(&self) -> Option<String>;

    fn set_token(&mut self, token: &str);

    /// Faults this backend can inject.
    fn capabilities(&self) -> Vec<Capability>;

    /// Whether node `i`'s process runs (paused counts as running).
    fn is_running(&self, i: usize) -> bool;

    /// Whether node `i` is stopped with SIGSTOP.
    fn is_paused(&self, i: usize) -> bool;

    /// SIGKILL node `i`.
    async fn kill(&mut self, i: usize) -> Result<()>;

    /// Starts stopped node `i` with its data dir as it is, on its previous addresses, and
    /// waits until it answers `/healthz`.
    async fn start(&mut self, i: usize) -> Result<()>;

    async fn pause(&mut self, i: usize) -> Result<()>;

    async fn resume(&mut self, i: usize) -> Result<()>;

    /// Deletes stopped node `i`'s data dir.
    async fn wipe(&mut self, i: usize) -> Result<()>;

    /// Drops the Raft/cluster traffic between nodes `a` and `b`, both directions; admin
    /// and data-plane ports stay reachable from the suite. Cuts add up until `heal`.
    async fn cut(&mut self, a: usize, b: usize) -> Result<()>;

    /// Removes every cut.
    async fn heal(&mut self) -> Result<()>;

    /// Starts one more node (not joined) and returns its index.
    async fn add_node(&mut self) -> Result<usize>;

    /// Steps node `i`'s wall clock by `secs` (negative: back).
    async fn jump_clock(&mut self, i: usize, secs: i64) -> Result<()> {
        let _ = secs;
        Err(ChaosError::FaultUnavailable {
            fault: format!("a clock jump on node index {i}"),
            reason: format!("the {} backend cannot step one node's clock", self.name()),
        })
    }

    /// The last lines of node `i`'s log, for a failure report (empty when unknown).
    fn log_tail(&self, i: usize, lines: usize) -> String {
        let _ = (i, lines);
        String::new()
    }

    /// An admin client for node `i` with the token.
    fn client(&self, i: usize) -> Result<AdminClient> {
        let client = AdminClient::new(&self.admin_url(i)?);
        Ok(match self.token() {
            Some(t) => client.with_token(&t),
            None => client,
        })
    }
}

impl Backend for LocalCluster {
    fn name(&self) -> &'static str {
        "process"
    }

    fn len(&self) -> usize {
        LocalCluster::len(self)
    }

    fn node_id(&self, i: usize) -> u64 {
        LocalCluster::node_id(self, i)
    }

    fn admin_url(&self, i: usize) -> Result<String> {
        LocalCluster::admin_url(self, i)
    }

    fn data_url(&self, i: usize) -> Result<String> {
        Ok(format!("http://{}", self.info(i)?.http_addr))
    }

    fn harness_host(&self) -> String {
        "127.0.0.1".into()
    }

    fn token(&self) -> Option<String> {
        LocalCluster::token(self).map(str::to_string)
    }

    fn set_token(&mut self, token: &str) {
        LocalCluster::set_token(self, token)
    }

    fn capabilities(&self) -> Vec<Capability> {
        let mut caps = vec![
            Capability::Kill,
            Capability::Pause,
            Capability::Wipe,
            Capability::AddNode,
        ];
        if self.is_partitionable() {
            caps.push(Capability::Cut);
        }
        if self.has_clock_control() {
            caps.push(Capability::ClockJump);
        }
        caps
    }

    fn is_running(&self, i: usize) -> bool {
        LocalCluster::is_running(self, i)
    }

    fn is_paused(&self, i: usize) -> bool {
        LocalCluster::is_paused(self, i)
    }

    async fn kill(&mut self, i: usize) -> Result<()> {
        self.kill9(i)
    }

    async fn start(&mut self, i: usize) -> Result<()> {
        self.restart(i).await
    }

    async fn pause(&mut self, i: usize) -> Result<()> {
        LocalCluster::pause(self, i)
    }

    async fn resume(&mut self, i: usize) -> Result<()> {
        LocalCluster::resume(self, i)
    }

    async fn wipe(&mut self, i: usize) -> Result<()> {
        LocalCluster::wipe(self, i)
    }

    async fn cut(&mut self, a: usize, b: usize) -> Result<()> {
        self.cut_link(a, b)
    }

    async fn heal(&mut self) -> Result<()> {
        LocalCluster::heal(self)
    }

    async fn add_node(&mut self) -> Result<usize> {
        self.add_node().await
    }

    async fn jump_clock(&mut self, i: usize, secs: i64) -> Result<()> {
        self.set_clock_offset(i, secs)
    }

    fn log_tail(&self, i: usize, lines: usize) -> String {
        LocalCluster::log_tail(self, i, lines)
    }

    fn client(&self, i: usize) -> Result<AdminClient> {
        LocalCluster::client(self, i)
    }
}

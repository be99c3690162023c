//! The external backend: an operator's running cluster, given by the nodes' admin URLs
//! and an admin token, with faults injected by a command the operator configures (for
//! example `ssh` + `systemctl`). The suite runs the command through `sh -c` with:
//!
//! - `$1` / `RAFTGATE_FAULT_ACTION`: `kill`, `start`, `pause`, `resume`, `wipe`, `cut`
//!   or `heal`;
//! - `$2` / `RAFTGATE_FAULT_NODE`: the node's Raft id, and `RAFTGATE_FAULT_HOST`: the
//!   host of its admin URL;
//! - for `cut`, `$3` / `RAFTGATE_FAULT_PEER` and `RAFTGATE_FAULT_PEER_HOST`: the node
//!   whose traffic to drop (both directions).
//!
//! `heal` is run once per node. A non-zero exit fails the scenario with the command's
//! output. Which actions the command supports is stated with `--fault-actions`; the
//! scenarios needing others are skipped. See `chaos-tests/README.md` for an example.

use std::process::Stdio;
use std::time::Duration;

use super::backend::{Backend, Capability};
use crate::client::AdminClient;
use crate::error::{ChaosError, Result};
use crate::wait;

/// How long one fault command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One node of the operator's cluster.
#[derive(Debug, Clone)]
pub struct ExternalNode {
    pub id: u64,
    pub admin_url: String,
    pub data_url: String,
}

/// See the module docs.
#[derive(Debug)]
pub struct ExternalCluster {
    nodes: Vec<ExternalNode>,
    token: Option<String>,
    command: Option<String>,
    actions: Vec<String>,
    harness_host: String,
    harness_bind: String,
    running: Vec<bool>,
    paused: Vec<bool>,
}

impl ExternalCluster {
    /// Learns each node's id and data-plane address from its own `GET /admin/v1/cluster`
    /// (`data_urls` overrides the addresses, e.g. when nodes bind `0.0.0.0`).
    pub async fn connect(
        admin_urls: &[String],
        data_urls: &[String],
        token: &str,
        command: Option<String>,
        actions: Vec<String>,
        harness_host: String,
        harness_bind: String,
    ) -> Result<ExternalCluster> {
        let mut nodes = Vec::new();
        for (k, url) in admin_urls.iter().enumerate() {
            let status = AdminClient::new(url)
                .with_token(token)
                .cluster_status()
                .await?;
            let url = url.trim_end_matches('/').to_string();
            let me = status
                .nodes
                .iter()
                .find(|n| n.admin_url.trim_end_matches('/') == url)
                .ok_or_else(|| {
                    ChaosError::Invariant(format!(
                        "{url} is not among the admin URLs its cluster reports ({}); give the URLs as the nodes advertise them",
                        status.nodes.iter().map(|n| n.admin_url.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                })?;
            let data_url = match data_urls.get(k) {
                Some(d) => d.trim_end_matches('/').to_string(),
                None => format!("http://{}", me.http_addr),
            };
            nodes.push(ExternalNode {
                id: me.id,
                admin_url: url,
                data_url,
            });
        }
        let n = nodes.len();
        Ok(ExternalCluster {
            nodes,
            token: Some(token.to_string()),
            command,
            actions,
            harness_host,
            harness_bind,
            running: vec![true; n],
            paused: vec![false; n],
        })
    }

    fn node(&self, i: usize) -> Result<&ExternalNode> {
        self.nodes.get(i).ok_or_else(|| ChaosError::NodeState {
            index: i,
            problem: format!("no such node (cluster of {})", self.nodes.len()),
        })
    }

    fn host_of(url: &str) -> String {
        let rest = url.split("://").nth(1).unwrap_or(url);
        let authority = rest.split('/').next().unwrap_or(rest);
        match authority.rsplit_once(':') {
            Some((h, _)) => h.to_string(),
            None => authority.to_string(),
        }
    }

    /// Runs the operator's command for `action` on node `i` (and `peer`).
    async fn act(&self, action: &str, i: usize, peer: Option<usize>) -> Result<()> {
        let unavailable = |reason: String| ChaosError::FaultUnavailable {
            fault: format!("`{action}` on node index {i}"),
            reason,
        };
        let Some(command) = &self.command else {
            return Err(unavailable("no --fault-command was given".into()));
        };
        if !self.actions.iter().any(|a| a == action) {
            return Err(unavailable(format!("`{action}` is not in --fault-actions")));
        }
        let node = self.node(i)?;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .arg("raftgate-fault")
            .arg(action)
            .arg(node.id.to_string())
            .env("RAFTGATE_FAULT_ACTION", action)
            .env("RAFTGATE_FAULT_NODE", node.id.to_string())
            .env("RAFTGATE_FAULT_HOST", Self::host_of(&node.admin_url))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(p) = peer {
            let peer = self.node(p)?;
            cmd.arg(peer.id.to_string())
                .env("RAFTGATE_FAULT_PEER", peer.id.to_string())
                .env("RAFTGATE_FAULT_PEER_HOST", Self::host_of(&peer.admin_url));
        }
        let what = format!("fault command `{action}` for node {}", node.id);
        let child = cmd
            .spawn()
            .map_err(|e| ChaosError::io(format!("spawning the {what}"), e))?;
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| ChaosError::Timeout {
                what: what.clone(),
                after: COMMAND_TIMEOUT,
                last: "still running; killed".into(),
            })?
            .map_err(|e| ChaosError::io(what.clone(), e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ChaosError::Invariant(format!(
                "{what} exited with {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }
}

impl Backend for ExternalCluster {
    fn name(&self) -> &'static str {
        "external"
    }

    fn len(&self) -> usize {
        self.nodes.len()
    }

    fn node_id(&self, i: usize) -> u64 {
        self.nodes.get(i).map_or(0, |n| n.id)
    }

    fn admin_url(&self, i: usize) -> Result<String> {
        Ok(self.node(i)?.admin_url.clone())
    }

    fn data_url(&self, i: usize) -> Result<String> {
        Ok(self.node(i)?.data_url.clone())
    }

    fn harness_host(&self) -> String {
        self.harness_host.clone()
    }

    fn harness_bind(&self) -> String {
        self.harness_bind.clone()
    }

    fn token(&self) -> Option<String> {
        self.token.clone()
    }

    fn set_token(&mut self, token: &str) {
        self.token = Some(token.to_string());
    }

    fn capabilities(&self) -> Vec<Capability> {
        let has = |a: &str| self.command.is_some() && self.actions.iter().any(|x| x == a);
        let mut caps = Vec::new();
        if has("kill") && has("start") {
            caps.push(Capability::Kill);
        }
        if has("pause") && has("resume") {
            caps.push(Capability::Pause);
        }
        if has("cut") && has("heal") {
            caps.push(Capability::Cut);
        }
        if has("wipe") {
            caps.push(Capability::Wipe);
        }
        caps
    }

    fn is_running(&self, i: usize) -> bool {
        self.running.get(i).copied().unwrap_or(false)
    }

    fn is_paused(&self, i: usize) -> bool {
        self.paused.get(i).copied().unwrap_or(false)
    }

    async fn kill(&mut self, i: usize) -> Result<()> {
        self.act("kill", i, None).await?;
        self.running[i] = false;
        self.paused[i] = false;
        Ok(())
    }

    async fn start(&mut self, i: usize) -> Result<()> {
        self.act("start", i, None).await?;
        self.running[i] = true;
        let client = self.client(i)?.with_timeout(Duration::from_secs(2));
        wait::until(
            &format!("node {} to answer /healthz", self.node_id(i)),
            Duration::from_secs(60),
            || async {
                client
                    .healthz()
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|s| {
                        if s.is_success() {
                            Ok(())
                        } else {
                            Err(s.to_string())
                        }
                    })
            },
        )
        .await
    }

    async fn pause(&mut self, i: usize) -> Result<()> {
        self.act("pause", i, None).await?;
        self.paused[i] = true;
        Ok(())
    }

    async fn resume(&mut self, i: usize) -> Result<()> {
        self.act("resume", i, None).await?;
        self.paused[i] = false;
        Ok(())
    }

    async fn wipe(&mut self, i: usize) -> Result<()> {
        self.act("wipe", i, None).await
    }

    async fn cut(&mut self, a: usize, b: usize) -> Result<()> {
        self.act("cut", a, Some(b)).await
    }

    async fn heal(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            self.act("heal", i, None).await?;
        }
        Ok(())
    }

    async fn add_node(&mut self) -> Result<usize> {
        Err(ChaosError::FaultUnavailable {
            fault: "adding a node".into(),
            reason: "the external backend does not provision machines".into(),
        })
    }
}

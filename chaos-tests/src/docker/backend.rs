//! The suite's [`Backend`] for a [`DockerCluster`]: faults as Docker operations.

use super::{blocking, cmd, docker_err, net, DockerCluster};
use crate::client::AdminClient;
use crate::error::{ChaosError, Result};
use crate::suite::backend::{Backend, Capability};

impl DockerCluster {
    /// Err unless node `i` runs (or not) as `running` says, and is paused (or not) as
    /// `paused` says when given.
    fn expect_state(
        &self,
        i: usize,
        fault: &str,
        running: bool,
        paused: Option<bool>,
    ) -> Result<()> {
        let slot = self.slot(i)?;
        let problem = if slot.running != running {
            if running {
                "not running"
            } else {
                "still running; kill it first"
            }
        } else if paused.is_some_and(|p| p != slot.paused) {
            if slot.paused {
                "paused; resume it first"
            } else {
                "not paused"
            }
        } else {
            return Ok(());
        };
        Err(ChaosError::NodeState {
            index: i,
            problem: format!("{fault}: {problem}"),
        })
    }

    /// `docker VERB <container of i>`.
    async fn container_op(&self, i: usize, verb: &[&str]) -> Result<()> {
        let name = self.slot(i)?.container.as_str();
        let mut args = verb.to_vec();
        args.push(name);
        cmd::docker_async(&args)
            .await
            .map(|_| ())
            .map_err(docker_err(format!("docker {} {name}", verb.join(" "))))
    }
}

/// Containers share the host kernel's clock, so one node's clock cannot be stepped:
/// no [`Capability::ClockJump`] (the default `jump_clock` reports it unavailable).
impl Backend for DockerCluster {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn len(&self) -> usize {
        DockerCluster::len(self)
    }

    fn node_id(&self, i: usize) -> u64 {
        i as u64 + 1
    }

    fn admin_url(&self, i: usize) -> Result<String> {
        DockerCluster::admin_url(self, i)
    }

    fn data_url(&self, i: usize) -> Result<String> {
        DockerCluster::data_url(self, i)
    }

    fn harness_host(&self) -> String {
        self.gateway().to_string()
    }

    fn token(&self) -> Option<String> {
        self.token.clone()
    }

    fn set_token(&mut self, token: &str) {
        self.token = Some(token.to_string());
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![
            Capability::Kill,
            Capability::Pause,
            Capability::Cut,
            Capability::Wipe,
            Capability::AddNode,
        ]
    }

    fn is_running(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(|s| s.running)
    }

    fn is_paused(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(|s| s.paused)
    }

    /// `docker kill --signal KILL` (also ends a paused container).
    async fn kill(&mut self, i: usize) -> Result<()> {
        self.expect_state(i, "kill", true, None)?;
        self.container_op(i, &["kill", "--signal", "KILL"]).await?;
        let slot = self.slot_mut(i)?;
        slot.running = false;
        slot.paused = false;
        Ok(())
    }

    /// `docker start` (same IP, same bind-mounted data dir), then the node's cuts again
    /// (the container gets a fresh network namespace), then `/healthz`.
    async fn start(&mut self, i: usize) -> Result<()> {
        self.expect_state(i, "start", false, None)?;
        self.launch(i).await
    }

    /// `docker pause`: the cgroup freezer stops every thread, like SIGSTOP.
    async fn pause(&mut self, i: usize) -> Result<()> {
        self.expect_state(i, "pause", true, Some(false))?;
        self.container_op(i, &["pause"]).await?;
        self.slot_mut(i)?.paused = true;
        Ok(())
    }

    async fn resume(&mut self, i: usize) -> Result<()> {
        self.expect_state(i, "resume", true, Some(true))?;
        self.container_op(i, &["unpause"]).await?;
        self.slot_mut(i)?.paused = false;
        Ok(())
    }

    /// Empties the host dir mounted at `/data` (kept: it is the mount's source).
    async fn wipe(&mut self, i: usize) -> Result<()> {
        self.expect_state(i, "wipe", false, None)?;
        let dir = self.slot(i)?.data_dir.clone();
        blocking("wiping a data dir", move || {
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| ChaosError::io(format!("listing {}", dir.display()), e))?;
            for entry in entries {
                let path = entry
                    .map_err(|e| ChaosError::io(format!("listing {}", dir.display()), e))?
                    .path();
                let removed = if path.is_dir() && !path.is_symlink() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(|e| ChaosError::io(format!("wiping {}", path.display()), e))?;
            }
            Ok(())
        })
        .await
    }

    /// DROP rules in both nodes' namespaces (see `net`); a stopped node gets its rules
    /// when it starts.
    async fn cut(&mut self, a: usize, b: usize) -> Result<()> {
        self.slot(a)?;
        self.slot(b)?;
        if a == b {
            return Err(ChaosError::NodeState {
                index: a,
                problem: "cut: a node cannot be cut from itself".into(),
            });
        }
        let pair = (a.min(b), a.max(b));
        if self.cuts.contains(&pair) {
            return Ok(());
        }
        for (x, y) in [(a, b), (b, a)] {
            if self.is_running(x) {
                self.drop_peer(x, y).await?;
            }
        }
        self.cuts.insert(pair);
        Ok(())
    }

    /// Flushes the cut chain in every running container; every one is tried.
    async fn heal(&mut self) -> Result<()> {
        let mut first = None;
        for i in (0..self.slots.len()).filter(|&i| self.is_running(i)) {
            let flushed = match self.pid(i).await {
                Ok(pid) => {
                    blocking("an iptables call", move || {
                        net::flush(pid).map_err(|reason| ChaosError::FaultUnavailable {
                            fault: format!("healing the cuts of node index {i}"),
                            reason,
                        })
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = flushed {
                first.get_or_insert(e);
            }
        }
        self.cuts.clear();
        first.map_or(Ok(()), Err)
    }

    /// `docker run` on the next IP; not joined.
    async fn add_node(&mut self) -> Result<usize> {
        self.run_new().await
    }

    fn log_tail(&self, i: usize, lines: usize) -> String {
        self.logs(i, lines)
    }

    fn client(&self, i: usize) -> Result<AdminClient> {
        let client = AdminClient::with_http(&self.admin_url(i)?, self.http.clone());
        Ok(match &self.token {
            Some(t) => client.with_token(t),
            None => client,
        })
    }
}

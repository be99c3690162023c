//! One node's container: `docker run` / `docker start` with its fixed IP, data dir and
//! environment, its cuts re-applied (a started container has a fresh network namespace),
//! and the wait for `/healthz`.

use super::{blocking, cmd, docker_err, net, DockerCluster, Slot};
use super::{ADMIN_PORT, HTTP_PORT, LABEL, RAFT_PORT};
use crate::client::AdminClient;
use crate::error::{ChaosError, Result};
use crate::process::START_TIMEOUT;
use crate::wait;

impl DockerCluster {
    /// Adds a slot for the next index and `docker run`s its container; returns the index.
    pub(super) async fn run_new(&mut self) -> Result<usize> {
        let i = self.slots.len();
        let (Some(network), Some(root)) = (&self.network, &self.root) else {
            return Err(ChaosError::NodeState {
                index: i,
                problem: "the cluster is being torn down".into(),
            });
        };
        let ip = network.node_ip(i).ok_or_else(|| ChaosError::NodeState {
            index: i,
            problem: "no address left in the /24".into(),
        })?;
        let data_dir = root.path().join(format!("node-{}", i + 1)).join("data");
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| ChaosError::io(format!("creating {}", data_dir.display()), e))?;
        let mut env = self.options.env.clone();
        env.extend(self.options.node_env.get(&i).cloned().unwrap_or_default());
        self.slots.push(Slot {
            container: format!("{}-node{i}", network.name),
            ip,
            data_dir,
            env,
            created: false,
            running: false,
            paused: false,
        });
        self.launch(i).await?;
        Ok(i)
    }

    /// `docker run` (first time) or `docker start` node `i`, re-applies its cuts, waits
    /// for `/healthz`.
    pub(super) async fn launch(&mut self, i: usize) -> Result<()> {
        let args = self.run_args(i)?;
        let slot = self.slot_mut(i)?;
        let what = format!("starting container {}", slot.container);
        let result = if slot.created {
            cmd::docker_async(&["start", &slot.container]).await
        } else {
            cmd::run_async("docker", args, cmd::DOCKER_TIMEOUT).await
        };
        // A failed `docker run` may still have created the container: drop removes it.
        slot.created = true;
        result.map_err(docker_err(what))?;
        slot.running = true;
        slot.paused = false;
        let healthy = match self.reapply_cuts(i).await {
            Ok(()) => self.wait_healthy(i).await,
            Err(e) => Err(e),
        };
        if let Err(e) = healthy {
            let name = self.slot(i)?.container.clone();
            let _ = cmd::docker_async(&["kill", "--signal", "KILL", &name]).await;
            self.slot_mut(i)?.running = false;
            return Err(e);
        }
        Ok(())
    }

    fn run_args(&self, i: usize) -> Result<Vec<String>> {
        let slot = self.slot(i)?;
        let ip = slot.ip.to_string();
        let mut args = cmd::owned(&[
            "run",
            "-d",
            "--name",
            &slot.container,
            "--hostname",
            &format!("node{}", i + 1),
            "--network",
            self.network(),
            "--ip",
            &ip,
            "--label",
            LABEL,
            "--log-driver",
            "json-file",
            "-v",
            &format!("{}:/data", slot.data_dir.display()),
        ]);
        // Containers on the suite's private network run plain text, like the process
        // backend; a slot's own env may override it.
        args.extend(["-e".to_string(), "RAFTGATE_INSECURE=true".to_string()]);
        for (k, v) in &slot.env {
            args.extend(["-e".to_string(), format!("{k}={v}")]);
        }
        let listen = |port: u16| format!("0.0.0.0:{port}");
        args.extend(cmd::owned(&[
            &self.image,
            "serve",
            "--node-id",
            &(i + 1).to_string(),
            "--data-dir",
            "/data",
            "--http-addr",
            &listen(HTTP_PORT),
            "--admin-addr",
            &listen(ADMIN_PORT),
            "--raft-addr",
            &listen(RAFT_PORT),
            "--advertise-host",
            &ip,
        ]));
        Ok(args)
    }

    /// Waits until node `i` answers `GET /healthz` with 200; fails early (with its log)
    /// when the container exits.
    async fn wait_healthy(&self, i: usize) -> Result<()> {
        let slot = self.slot(i)?;
        let client = AdminClient::with_http(&self.admin_url(i)?, self.http.clone());
        let what = format!(
            "node {} ({}) to answer GET /healthz with 200",
            i + 1,
            client.base_url()
        );
        let container = slot.container.clone();
        let outcome = wait::until(&what, START_TIMEOUT, || {
            let (client, container) = (client.clone(), container.clone());
            async move {
                let why = match client.healthz().await {
                    Ok(s) if s.is_success() => return Ok(Ok(())),
                    Ok(s) => format!("status {s}"),
                    Err(e) => e.to_string(),
                };
                let state = cmd::docker_async(&[
                    "inspect",
                    "--format",
                    "{{.State.Status}} (exit code {{.State.ExitCode}})",
                    &container,
                ])
                .await?;
                if state.starts_with("running") {
                    Err(why)
                } else {
                    Ok(Err(state))
                }
            }
        })
        .await;
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(state)) => Err(ChaosError::NodeExited {
                node_id: i as u64 + 1,
                during: "while starting".into(),
                status: state,
                log_tail: self.logs(i, 40),
            }),
            Err(ChaosError::Timeout { what, after, last }) => Err(ChaosError::Timeout {
                what,
                after,
                last: format!(
                    "{last}\nlast log lines of node {}:\n{}",
                    i + 1,
                    self.logs(i, 40)
                ),
            }),
            Err(e) => Err(e),
        }
    }

    /// The host pid of node `i`'s container (changes with every start).
    pub(super) async fn pid(&self, i: usize) -> Result<u32> {
        let name = &self.slot(i)?.container;
        let out = cmd::docker_async(&["inspect", "--format", "{{.State.Pid}}", name])
            .await
            .map_err(docker_err(format!("inspecting {name}")))?;
        match out.parse::<u32>() {
            Ok(pid) if pid > 0 => Ok(pid),
            _ => Err(ChaosError::NodeState {
                index: i,
                problem: format!("container {name} has no process (pid {out:?})"),
            }),
        }
    }

    /// In node `i`'s namespace, drops all traffic from and to node `peer`.
    pub(super) async fn drop_peer(&self, i: usize, peer: usize) -> Result<()> {
        let (pid, peer_ip) = (self.pid(i).await?, self.ip(peer)?);
        let fault = format!("a cut between node indexes {i} and {peer}");
        blocking("an iptables call", move || {
            net::drop_peer(pid, peer_ip)
                .map_err(|reason| ChaosError::FaultUnavailable { fault, reason })
        })
        .await
    }

    /// Re-adds the rules of every cut involving `i` in its (fresh) namespace.
    async fn reapply_cuts(&self, i: usize) -> Result<()> {
        let peers: Vec<usize> = self
            .cuts
            .iter()
            .filter_map(|&(a, b)| (a == i).then_some(b).or((b == i).then_some(a)))
            .collect();
        for j in peers {
            self.drop_peer(i, j).await?;
        }
        Ok(())
    }
}

//! Cluster formation and observation on a [`LocalCluster`]: init, join, leader and voter
//! discovery, and replica convergence. Every wait is bounded by [`CLUSTER_TIMEOUT`] or the
//! caller's timeout.

use std::time::Duration;

use super::{LocalCluster, CLUSTER_TIMEOUT};
use crate::client::{ClusterStatus, Read};
use crate::error::Result;
use crate::wait;

impl LocalCluster {
    /// `POST /admin/v1/cluster/init` on node 0; keeps and returns the admin token.
    pub async fn init(&mut self) -> Result<String> {
        self.init_on(0).await
    }

    /// `POST /admin/v1/cluster/init` on node `i`; keeps and returns the admin token.
    pub async fn init_on(&mut self, i: usize) -> Result<String> {
        let resp = self.anon_client(i)?.init().await?;
        self.token = Some(resp.admin_token.clone());
        Ok(resp.admin_token)
    }

    /// Node `i` joins the cluster through the current leader's admin URL.
    pub async fn join(&self, i: usize) -> Result<()> {
        let leader = self.wait_leader().await?;
        self.join_via(i, leader).await
    }

    /// Node `i` joins the cluster of node `via` (`POST /admin/v1/cluster/join`). Retried, as an
    /// operator would, while the answer is 5xx or missing; any 4xx fails at once.
    pub async fn join_via(&self, i: usize, via: usize) -> Result<()> {
        let client = self.client(i)?.with_timeout(CLUSTER_TIMEOUT);
        let via_url = self.admin_url(via)?;
        let what = format!("node {} to join via {via_url}", self.node_id(i));
        let outcome = wait::until(&what, CLUSTER_TIMEOUT, || {
            let (client, via_url) = (client.clone(), via_url.clone());
            async move {
                match client.join(&via_url).await {
                    Ok(_) => Ok(Ok(())),
                    Err(e) if e.status().is_some_and(|s| s.is_client_error()) => Ok(Err(e)),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await?;
        Ok(outcome?)
    }

    /// One probe: the running node that is leader by its own account, agreed by whoever asked.
    async fn probe_leader(&self) -> Result<usize, String> {
        let mut seen = Vec::new();
        // A paused node answers nothing: asking it would only wait out the timeout.
        for i in self.running().into_iter().filter(|&i| !self.is_paused(i)) {
            let status = match self
                .client(i)
                .map_err(|e| e.to_string())?
                .cluster_status()
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    seen.push(format!("node {}: {e}", self.node_id(i)));
                    continue;
                }
            };
            let Some(leader) = status
                .leader_id
                .and_then(|l| self.index_of(l))
                .filter(|&l| self.is_running(l) && !self.is_paused(l))
            else {
                seen.push(format!("node {}: {}", self.node_id(i), status.summary()));
                continue;
            };
            let confirmed = match self
                .client(leader)
                .map_err(|e| e.to_string())?
                .cluster_status()
                .await
            {
                Ok(s) => s.leader_id == Some(self.node_id(leader)),
                Err(_) => false,
            };
            if confirmed {
                return Ok(leader);
            }
            seen.push(format!(
                "node {} names {} but that node disagrees",
                self.node_id(i),
                self.node_id(leader)
            ));
        }
        Err(seen.join(" | "))
    }

    /// Index of the leader among the running nodes, once one is elected.
    pub async fn wait_leader(&self) -> Result<usize> {
        wait::until("a leader among the running nodes", CLUSTER_TIMEOUT, || {
            self.probe_leader()
        })
        .await
    }

    /// The running nodes other than `leader`.
    pub fn followers(&self, leader: usize) -> Vec<usize> {
        self.running()
            .into_iter()
            .filter(|&i| i != leader)
            .collect()
    }

    /// Waits until the leader reports exactly `n` voters, all reachable.
    pub async fn wait_for_voters(&self, n: usize) -> Result<ClusterStatus> {
        wait::until(
            &format!("{n} reachable voters"),
            CLUSTER_TIMEOUT,
            || async {
                let leader = self.probe_leader().await?;
                let status = self
                    .client(leader)
                    .map_err(|e| e.to_string())?
                    .cluster_status()
                    .await
                    .map_err(|e| e.to_string())?;
                let voters = status.nodes.iter().filter(|v| v.voter).collect::<Vec<_>>();
                if voters.len() == n && voters.iter().all(|v| v.reachable) {
                    Ok(status)
                } else {
                    Err(status.summary())
                }
            },
        )
        .await
    }

    /// Waits until every running node lists the same items, at the same revision, in each of
    /// `collections` from its local replica.
    pub async fn wait_converged(&self, collections: &[&str], timeout: Duration) -> Result<()> {
        let what = format!(
            "nodes {:?} to hold identical {collections:?}",
            self.running()
                .iter()
                .map(|&i| self.node_id(i))
                .collect::<Vec<_>>()
        );
        wait::until(&what, timeout, || async {
            for c in collections {
                let mut first = None;
                for i in self.running() {
                    let list = self.client(i).map_err(|e| e.to_string())?.list(c, Read::Local).await.map_err(|e| e.to_string())?;
                    match &first {
                        None => first = Some((i, list)),
                        Some((j, l)) if *l != list => {
                            return Err(format!(
                                "{c}: node {} has {} items at revision {}, node {} has {} at revision {}",
                                self.node_id(*j),
                                l.items.len(),
                                l.revision,
                                self.node_id(i),
                                list.items.len(),
                                list.revision
                            ))
                        }
                        Some(_) => {}
                    }
                }
            }
            Ok(())
        })
        .await
    }
}

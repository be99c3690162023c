//! Cluster formation and observation on a [`LocalCluster`]: init, join, leader and voter
//! discovery (through [`crate::suite::membership`], which does the same for every
//! backend), and replica convergence. Every wait is bounded by [`CLUSTER_TIMEOUT`] or the
//! caller's timeout.

use std::time::Duration;

use super::{LocalCluster, CLUSTER_TIMEOUT};
use crate::client::{ClusterStatus, Read};
use crate::error::Result;
use crate::suite::membership as m;
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
        m::join(self, i, via).await
    }

    /// Index of the leader among the running nodes, once one is elected.
    pub async fn wait_leader(&self) -> Result<usize> {
        m::wait_leader(self, CLUSTER_TIMEOUT).await
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
        m::wait_voters(self, n, CLUSTER_TIMEOUT).await?;
        let leader = self.wait_leader().await?;
        Ok(self.client(leader)?.cluster_status().await?)
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

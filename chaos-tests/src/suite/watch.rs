//! The leader watch: samples every node's `/readyz` through the whole scenario and
//! records which node a quorum followed at each moment. The availability checker uses it
//! to excuse quota-limited calls while the cluster had no leader to grant leases —
//! including elections the fault did not cause on purpose (a bridge partition, the
//! removal of a leader), which no single timing inside the fault could capture.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::history::History;

/// How often every node is asked.
const PERIOD: Duration = Duration::from_millis(100);
/// A node that has not answered by then counts as silent for that sample.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// One sample: the node index a quorum of the watched nodes followed, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub t_us: u64,
    pub leader: Option<usize>,
}

/// A node under watch: its index in the backend, Raft id and admin URL.
#[derive(Debug, Clone)]
struct Watched {
    index: usize,
    id: u64,
    url: String,
}

#[derive(Debug, Deserialize)]
struct Ready {
    #[serde(default)]
    leader: Option<u64>,
    #[serde(default)]
    term: Option<u64>,
}

/// The running watch; [`LeaderWatch::stop`] returns its samples.
pub struct LeaderWatch {
    nodes: Arc<Mutex<Vec<Watched>>>,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LeaderWatch {
    /// Starts sampling `nodes` (index, Raft id, admin URL) on `history`'s clock.
    pub fn start(history: &History, nodes: Vec<(usize, u64, String)>) -> LeaderWatch {
        let nodes = Arc::new(Mutex::new(
            nodes
                .into_iter()
                .map(|(index, id, url)| Watched { index, id, url })
                .collect::<Vec<_>>(),
        ));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = oneshot::channel();
        let http = reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let task = tokio::spawn({
            let (nodes, samples, history) = (nodes.clone(), samples.clone(), history.clone());
            async move {
                let mut tick = tokio::time::interval(PERIOD);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tick.tick() => {}
                    }
                    let watched = lock(&nodes).clone();
                    let t_us = history.now_us();
                    let answers =
                        futures::future::join_all(watched.iter().map(|n| probe(&http, &n.url)))
                            .await;
                    let leader = agreed_leader(&watched, &answers);
                    lock(&samples).push(Sample { t_us, leader });
                }
            }
        });
        LeaderWatch {
            nodes,
            samples,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Watches a node added during the run.
    pub fn add(&self, index: usize, id: u64, url: String) {
        lock(&self.nodes).push(Watched { index, id, url });
    }

    /// Stops watching a node removed from the cluster: it no longer counts toward quorum.
    pub fn remove(&self, index: usize) {
        lock(&self.nodes).retain(|n| n.index != index);
    }

    /// Stops sampling and returns every sample, oldest first.
    pub async fn stop(mut self) -> Vec<Sample> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        std::mem::take(&mut *lock(&self.samples))
    }
}

impl Drop for LeaderWatch {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The node's view: (leader id, term), or None when it is silent or not ready.
async fn probe(http: &reqwest::Client, url: &str) -> Option<(u64, u64)> {
    let resp = http.get(format!("{url}/readyz")).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let ready: Ready = resp.json().await.ok()?;
    Some((ready.leader?, ready.term?))
}

/// The node a quorum of the watched nodes follows in one term, provided that node
/// itself answered and claims the lead: a deposed leader cut off from the others, or
/// followers still naming a dead leader, do not make a leader.
fn agreed_leader(watched: &[Watched], answers: &[Option<(u64, u64)>]) -> Option<usize> {
    let quorum = watched.len() / 2 + 1;
    watched.iter().zip(answers).find_map(|(n, answer)| {
        let (leader, term) = (*answer)?;
        if leader != n.id {
            return None;
        }
        let agree = answers
            .iter()
            .filter(|a| **a == Some((leader, term)))
            .count();
        (agree >= quorum).then_some(n.index)
    })
}

/// Runs of samples with the same leader: (from, to, leader), `to` being the next run's
/// start (or the last sample's time for the final run).
pub fn runs(samples: &[Sample]) -> Vec<(u64, u64, Option<usize>)> {
    let mut out: Vec<(u64, u64, Option<usize>)> = Vec::new();
    for s in samples {
        match out.last_mut() {
            Some(last) if last.2 == s.leader => last.1 = s.t_us,
            Some(last) => {
                last.1 = s.t_us;
                out.push((s.t_us, s.t_us, s.leader));
            }
            None => out.push((s.t_us, s.t_us, s.leader)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<Watched> {
        (0..3)
            .map(|i| Watched {
                index: i,
                id: i as u64 + 1,
                url: String::new(),
            })
            .collect()
    }

    #[test]
    fn a_quorum_naming_a_node_that_claims_the_lead_makes_it_leader() {
        let a = [Some((1, 5)), Some((1, 5)), None];
        assert_eq!(agreed_leader(&nodes(), &a), Some(0));
        // Node 2 (index 1) claims, but only its own vote is in its term.
        let a = [Some((1, 5)), Some((2, 6)), Some((1, 5))];
        assert_eq!(agreed_leader(&nodes(), &a), Some(0));
    }

    #[test]
    fn followers_naming_a_silent_or_deposed_leader_make_no_leader() {
        // The leader (id 1) is dead; the followers still name it.
        let a = [None, Some((1, 5)), Some((1, 5))];
        assert_eq!(agreed_leader(&nodes(), &a), None);
        // A deposed leader still claims term 5; the others moved to term 6 with no leader yet.
        let a = [Some((1, 5)), None, None];
        assert_eq!(agreed_leader(&nodes(), &a), None);
    }

    #[test]
    fn runs_split_where_the_leader_changes() {
        let s = |t, l| Sample { t_us: t, leader: l };
        let samples = [
            s(0, Some(0)),
            s(100, Some(0)),
            s(200, None),
            s(300, None),
            s(400, Some(1)),
            s(500, Some(1)),
        ];
        assert_eq!(
            runs(&samples),
            vec![(0, 200, Some(0)), (200, 400, None), (400, 500, Some(1))]
        );
    }
}

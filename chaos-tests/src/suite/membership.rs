//! Cluster formation and observation through the admin API, the same for every backend:
//! init, join, remove, leader discovery, voter count, convergence. Every wait is bounded.

use std::time::{Duration, Instant};

use super::backend::Backend;
use crate::client::{AdminClient, Read};
use crate::error::Result;
use crate::wait;

pub use crate::cluster::CLUSTER_TIMEOUT;

/// How long one status probe may take: a paused or cut-off node must not stall a probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

fn probe_client<B: Backend>(b: &B, i: usize) -> Result<AdminClient> {
    Ok(b.client(i)?.with_timeout(PROBE_TIMEOUT))
}

/// Nodes that can answer: running and not paused.
pub fn live<B: Backend>(b: &B) -> Vec<usize> {
    (0..b.len())
        .filter(|&i| b.is_running(i) && !b.is_paused(i))
        .collect()
}

/// Index of the node with Raft id `id`.
pub fn index_of<B: Backend>(b: &B, id: u64) -> Option<usize> {
    (0..b.len()).find(|&i| b.node_id(i) == id)
}

/// Bootstraps node `i` as a one-node cluster and keeps the admin token.
pub async fn init<B: Backend>(b: &mut B, i: usize) -> Result<String> {
    let anon = AdminClient::new(&b.admin_url(i)?);
    let resp = anon.init().await?;
    b.set_token(&resp.admin_token);
    Ok(resp.admin_token)
}

/// Node `i` joins the cluster of node `via`, retried while the answer is 5xx or missing
/// (as an operator would); a 4xx fails at once.
pub async fn join<B: Backend>(b: &B, i: usize, via: usize) -> Result<()> {
    let client = b.client(i)?.with_timeout(CLUSTER_TIMEOUT);
    let via_url = b.admin_url(via)?;
    let what = format!("node {} to join via {via_url}", b.node_id(i));
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

/// Inits node 0, joins every other node through the leader, waits until all vote.
pub async fn form<B: Backend>(b: &mut B) -> Result<()> {
    init(b, 0).await?;
    for i in 1..b.len() {
        let leader = wait_leader(b, CLUSTER_TIMEOUT).await?;
        join(b, i, leader).await?;
    }
    wait_voters(b, b.len(), CLUSTER_TIMEOUT).await?;
    Ok(())
}

/// One probe: a live node that is leader by its own account, named by another live node.
pub async fn probe_leader<B: Backend>(b: &B) -> Result<usize, String> {
    probe_leader_among(b, &live(b)).await
}

/// [`probe_leader`] asking only the nodes in `among` and accepting only one of them: a
/// deposed leader cut off from the others may still believe it leads.
async fn probe_leader_among<B: Backend>(b: &B, among: &[usize]) -> Result<usize, String> {
    let mut seen = Vec::new();
    for i in live(b).into_iter().filter(|i| among.contains(i)) {
        let status = match probe_client(b, i)
            .map_err(|e| e.to_string())?
            .cluster_status()
            .await
        {
            Ok(s) => s,
            Err(e) => {
                seen.push(format!("node {}: {e}", b.node_id(i)));
                continue;
            }
        };
        let Some(leader) = status
            .leader_id
            .and_then(|l| index_of(b, l))
            .filter(|&l| b.is_running(l) && !b.is_paused(l) && among.contains(&l))
        else {
            seen.push(format!("node {}: {}", b.node_id(i), status.summary()));
            continue;
        };
        let confirmed = match probe_client(b, leader)
            .map_err(|e| e.to_string())?
            .cluster_status()
            .await
        {
            Ok(s) => s.leader_id == Some(b.node_id(leader)),
            Err(_) => false,
        };
        if confirmed {
            return Ok(leader);
        }
        seen.push(format!(
            "node {} names {} but that node disagrees",
            b.node_id(i),
            b.node_id(leader)
        ));
    }
    Err(seen.join(" | "))
}

/// Index of the leader among the live nodes, once one is elected.
pub async fn wait_leader<B: Backend>(b: &B, timeout: Duration) -> Result<usize> {
    wait::until("a leader among the live nodes", timeout, || probe_leader(b)).await
}

/// Waits for a leader other than `old` that the live nodes in `among` agree on; returns
/// it and how long that took from `since`.
pub async fn wait_new_leader<B: Backend>(
    b: &B,
    old: usize,
    among: &[usize],
    since: Instant,
    timeout: Duration,
) -> Result<(usize, Duration)> {
    let what = format!("a new leader (not node {}) among {among:?}", b.node_id(old));
    let among: Vec<usize> = among.iter().copied().filter(|&i| i != old).collect();
    let leader = wait::until(&what, timeout, || probe_leader_among(b, &among)).await?;
    Ok((leader, since.elapsed()))
}

/// Waits until the leader reports exactly `n` voters, all reachable.
pub async fn wait_voters<B: Backend>(b: &B, n: usize, timeout: Duration) -> Result<()> {
    wait::until(&format!("{n} reachable voters"), timeout, || async {
        let leader = probe_leader(b).await?;
        let status = probe_client(b, leader)
            .map_err(|e| e.to_string())?
            .cluster_status()
            .await
            .map_err(|e| e.to_string())?;
        let voters: Vec<_> = status.nodes.iter().filter(|v| v.voter).collect();
        if voters.len() == n && voters.iter().all(|v| v.reachable) {
            Ok(())
        } else {
            Err(status.summary())
        }
    })
    .await
}

/// Node `i`'s own applied index and config revision, as it reports them.
pub async fn applied_and_revision<B: Backend>(b: &B, i: usize) -> Result<(u64, u64), String> {
    let client = probe_client(b, i).map_err(|e| e.to_string())?;
    let status = client.cluster_status().await.map_err(|e| e.to_string())?;
    let id = b.node_id(i);
    let applied = status
        .nodes
        .iter()
        .find(|n| n.id == id)
        .and_then(|n| n.applied_index)
        .ok_or_else(|| format!("node {id} does not report its applied index"))?;
    let revision = client
        .list("tenants", Read::Local)
        .await
        .map_err(|e| e.to_string())?
        .revision;
    Ok((applied, revision))
}

/// Waits until every node in `nodes` has applied at least `applied` and holds config
/// revision `revision` or newer — or, with `revision: None`, until all hold the same
/// revision (for a cluster no one writes to any more); returns how long that took.
pub async fn wait_converged<B: Backend>(
    b: &B,
    nodes: &[usize],
    applied: u64,
    revision: Option<u64>,
    timeout: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    let what = match revision {
        Some(r) => {
            format!("nodes {nodes:?} at applied index >= {applied} and config revision >= {r}")
        }
        None => format!("nodes {nodes:?} at applied index >= {applied} with one config revision"),
    };
    wait::until(&what, timeout, || async {
        let mut seen = Vec::new();
        for &i in nodes {
            seen.push((i, applied_and_revision(b, i).await?));
        }
        let behind: Vec<String> = seen
            .iter()
            .filter(|(_, (a, r))| *a < applied || revision.is_some_and(|want| *r < want))
            .map(|(i, (a, r))| format!("node {} at index {a} revision {r}", b.node_id(*i)))
            .collect();
        let revisions: std::collections::BTreeSet<u64> =
            seen.iter().map(|(_, (_, r))| *r).collect();
        if behind.is_empty() && (revision.is_some() || revisions.len() == 1) {
            Ok(())
        } else {
            Err(format!(
                "behind: {behind:?}; config revisions {revisions:?}"
            ))
        }
    })
    .await?;
    Ok(start.elapsed())
}

/// The highest applied index and config revision the live nodes report: the cluster's
/// progress at a moment.
pub async fn progress<B: Backend>(b: &B) -> (u64, u64) {
    let (mut applied, mut revision) = (0, 0);
    for i in live(b) {
        if let Ok((a, r)) = applied_and_revision(b, i).await {
            applied = applied.max(a);
            revision = revision.max(r);
        }
    }
    (applied, revision)
}

/// Waits until node `i` reports ready (`/readyz` 200: configuration applied and a leader
/// known): the moment a restarted node serves again.
pub async fn wait_ready<B: Backend>(b: &B, i: usize, timeout: Duration) -> Result<()> {
    let client = probe_client(b, i)?;
    wait::until(&format!("node {} ready", b.node_id(i)), timeout, || async {
        match client.raw(reqwest::Method::GET, "/readyz", None).await {
            Ok(r) if r.status.is_success() => Ok(()),
            Ok(r) => Err(format!("/readyz {}: {}", r.status, r.body)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

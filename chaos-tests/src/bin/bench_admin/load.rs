//! One bounded load scenario: `clients` tasks creating tenants back to back, each on its
//! own HTTP connection, latencies of acknowledged writes in an HDR histogram.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use raftgate_chaos::AdminClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::time::Instant;

/// Where a scenario sends its writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// A random node per write (what a load balancer does).
    Random,
    /// The Raft leader only.
    Leader,
    /// A random follower per write (every write is forwarded).
    Followers,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub target: Target,
    pub clients: usize,
    pub duration: Duration,
    pub max_writes: u64,
    /// Admin URLs the writes are spread over.
    pub urls: Vec<String>,
    pub token: String,
    /// Makes tenant ids unique across scenarios.
    pub id_prefix: String,
}

/// What a scenario measured.
#[derive(Debug)]
pub struct Outcome {
    pub target: Target,
    pub clients: usize,
    pub acked: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Latency of acknowledged writes, microseconds.
    pub latency_us: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
}

impl Outcome {
    pub fn writes_per_sec(&self) -> f64 {
        self.acked as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits: constant, valid bounds.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

/// Runs the scenario to its deadline or write budget.
pub async fn run(s: Scenario) -> Outcome {
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + s.duration;
    let mut tasks = Vec::new();
    for task in 0..s.clients {
        let (s, issued) = (s.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            client_loop(s, task, issued, deadline).await
        }));
    }
    let mut outcome = Outcome {
        target: s.target,
        clients: s.clients,
        acked: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latency_us: histogram(),
        errors: BTreeMap::new(),
    };
    for t in tasks {
        if let Ok((acked, failed, hist, errors)) = t.await {
            outcome.acked += acked;
            outcome.failed += failed;
            let _ = outcome.latency_us.add(&hist);
            for (k, v) in errors {
                *outcome.errors.entry(k).or_default() += v;
            }
        }
    }
    outcome.elapsed = start.elapsed();
    outcome
}

type TaskResult = (u64, u64, Histogram<u64>, BTreeMap<String, u64>);

async fn client_loop(
    s: Scenario,
    task: usize,
    issued: Arc<AtomicU64>,
    deadline: Instant,
) -> TaskResult {
    // One connection per simulated client, like separate client processes.
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let clients: Vec<AdminClient> = s
        .urls
        .iter()
        .map(|u| AdminClient::with_http(u, http.clone()).with_token(&s.token))
        .collect();
    let mut rng = StdRng::seed_from_u64(task as u64);
    let (mut acked, mut failed, mut hist, mut errors) = (0, 0, histogram(), BTreeMap::new());
    let mut n = 0u64;
    while Instant::now() < deadline
        && !clients.is_empty()
        && issued.fetch_add(1, Ordering::Relaxed) < s.max_writes
    {
        let client = &clients[rng.random_range(0..clients.len())];
        let body = json!({"id": format!("{}-{task}-{n}", s.id_prefix), "name": "bench"});
        n += 1;
        let t0 = Instant::now();
        match client.create("tenants", &body).await {
            Ok(_) => {
                acked += 1;
                hist.saturating_record(t0.elapsed().as_micros().try_into().unwrap_or(u64::MAX));
            }
            Err(e) => {
                failed += 1;
                let kind = e.status().map_or_else(
                    || "transport".to_string(),
                    |st| format!("{} {}", st.as_u16(), e.code().unwrap_or("")),
                );
                *errors.entry(kind).or_insert(0) += 1;
            }
        }
    }
    (acked, failed, hist, errors)
}

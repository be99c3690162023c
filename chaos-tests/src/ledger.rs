//! Acknowledged writes: [`AckLedger`] records every write the cluster answered 2xx, and
//! checks at the end that each one is present on every node ("nothing acknowledged is
//! lost"). [`Writer`] keeps writing in the background while faults are injected.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::client::{contains_fields, AdminClient, AdminError, Read};
use crate::error::{ChaosError, Result};
use crate::wait;

/// A write the cluster acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct AckedWrite {
    pub collection: String,
    pub id: String,
    /// The body that was sent; the stored resource must contain these fields.
    pub sent: Value,
    /// Admin URL of the node that acknowledged it.
    pub via: String,
    /// The stored resource's `revision`, when the answer had one.
    pub revision: Option<u64>,
}

/// The shared list of acknowledged writes. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct AckLedger {
    inner: Arc<Mutex<Vec<AckedWrite>>>,
}

impl AckLedger {
    pub fn new() -> AckLedger {
        AckLedger::default()
    }

    fn entries_mut(&self) -> MutexGuard<'_, Vec<AckedWrite>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn record(&self, write: AckedWrite) {
        self.entries_mut().push(write);
    }

    pub fn len(&self) -> usize {
        self.entries_mut().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn entries(&self) -> Vec<AckedWrite> {
        self.entries_mut().clone()
    }

    /// The most recently acknowledged write.
    pub fn last(&self) -> Option<AckedWrite> {
        self.entries_mut().last().cloned()
    }

    /// Creates a resource through `client` and records it when the answer is 2xx.
    pub async fn create(
        &self,
        client: &AdminClient,
        collection: &str,
        body: &Value,
    ) -> Result<Value, AdminError> {
        let stored = client.create(collection, body).await?;
        self.record(AckedWrite {
            collection: collection.to_string(),
            id: body
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            sent: body.clone(),
            via: client.base_url().to_string(),
            revision: stored.get("revision").and_then(Value::as_u64),
        });
        Ok(stored)
    }

    /// Waits until at least `n` writes were acknowledged.
    pub async fn wait_len(&self, n: usize, timeout: Duration) -> Result<()> {
        wait::until(&format!("{n} acknowledged writes"), timeout, || async {
            let have = self.len();
            if have >= n {
                Ok(())
            } else {
                Err(format!("{have} acknowledged so far"))
            }
        })
        .await
    }

    /// Checks that every acknowledged write is present, with the fields sent, in the local
    /// replica of every node behind `clients`; waits up to `timeout` for replicas to catch up.
    pub async fn verify(&self, clients: &[AdminClient], timeout: Duration) -> Result<()> {
        let entries = self.entries();
        for client in clients {
            let what = format!(
                "all {} acknowledged writes on {}",
                entries.len(),
                client.base_url()
            );
            let outcome = wait::until(&what, timeout, || async {
                missing_on(client, &entries).await
            })
            .await;
            if let Err(ChaosError::Timeout { last, .. }) = outcome {
                return Err(ChaosError::Invariant(format!(
                    "acknowledged writes lost on {}: {last}",
                    client.base_url()
                )));
            }
            outcome?;
        }
        Ok(())
    }
}

/// `Ok` when every entry is present on the node, else a description of what is missing.
async fn missing_on(client: &AdminClient, entries: &[AckedWrite]) -> Result<(), String> {
    let mut by_collection: BTreeMap<&str, Vec<&AckedWrite>> = BTreeMap::new();
    for e in entries {
        by_collection
            .entry(e.collection.as_str())
            .or_default()
            .push(e);
    }
    let mut missing = Vec::new();
    for (collection, writes) in by_collection {
        let list = client
            .list(collection, Read::Local)
            .await
            .map_err(|e| e.to_string())?;
        let stored: BTreeMap<&str, &Value> = list
            .items
            .iter()
            .filter_map(|v| Some((v.get("id")?.as_str()?, v)))
            .collect();
        for w in writes {
            match stored.get(w.id.as_str()) {
                None => missing.push(format!(
                    "{collection}/{} (acked by {}, revision {:?}) absent",
                    w.id, w.via, w.revision
                )),
                Some(v) if !contains_fields(v, &w.sent) => missing.push(format!(
                    "{collection}/{} differs: sent {} stored {v}",
                    w.id, w.sent
                )),
                Some(_) => {}
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let shown = missing
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    Err(format!(
        "{} of {} missing or different, e.g. {shown}",
        missing.len(),
        entries.len()
    ))
}

/// Counts of a [`Writer`]'s outcomes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriterStats {
    pub acked: u64,
    pub failed: u64,
    /// Failures by kind: `"503 no_leader"`, `"transport"`, ...
    pub errors: BTreeMap<String, u64>,
    /// The first error message seen of each kind.
    pub samples: BTreeMap<String, String>,
}

impl WriterStats {
    fn merge(&mut self, other: WriterStats) {
        self.acked += other.acked;
        self.failed += other.failed;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in other.samples {
            self.samples.entry(k).or_insert(v);
        }
    }
}

/// Upper bound on the writes of one [`Writer`], so it stops by itself if never stopped.
pub const WRITER_MAX_WRITES: u64 = 100_000;

/// Background tasks that create tenants `{prefix}-{n}` through `targets` round-robin and
/// record the acknowledged ones in an [`AckLedger`].
#[derive(Debug)]
pub struct Writer {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<WriterStats>>,
}

impl Writer {
    /// Starts `concurrency` writing tasks on the current Tokio runtime.
    pub fn spawn(
        ledger: &AckLedger,
        targets: Vec<AdminClient>,
        prefix: &str,
        concurrency: usize,
    ) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let seq = Arc::new(AtomicU64::new(0));
        let targets = Arc::new(targets);
        let tasks = (0..concurrency.max(1))
            .map(|_| {
                let (ledger, targets, stop, seq, prefix) = (
                    ledger.clone(),
                    targets.clone(),
                    stop.clone(),
                    seq.clone(),
                    prefix.to_string(),
                );
                tokio::spawn(async move { write_loop(ledger, targets, stop, seq, prefix).await })
            })
            .collect();
        Writer { stop, tasks }
    }

    /// Stops the tasks (in-flight writes finish) and sums their outcomes.
    pub async fn stop(self) -> WriterStats {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = WriterStats::default();
        for t in self.tasks {
            if let Ok(stats) = t.await {
                total.merge(stats);
            }
        }
        total
    }
}

async fn write_loop(
    ledger: AckLedger,
    targets: Arc<Vec<AdminClient>>,
    stop: Arc<AtomicBool>,
    seq: Arc<AtomicU64>,
    prefix: String,
) -> WriterStats {
    let mut stats = WriterStats::default();
    while !stop.load(Ordering::SeqCst) && !targets.is_empty() {
        let n = seq.fetch_add(1, Ordering::SeqCst);
        if n >= WRITER_MAX_WRITES {
            break;
        }
        let target = &targets[(n % targets.len() as u64) as usize];
        let body = json!({
            "id": format!("{prefix}-{n}"),
            "name": format!("written by the chaos writer '{prefix}'"),
            "labels": {"writer": prefix, "seq": n.to_string()},
        });
        match ledger.create(target, "tenants", &body).await {
            Ok(_) => stats.acked += 1,
            Err(e) => {
                stats.failed += 1;
                let kind = match (e.status(), e.code()) {
                    (Some(s), Some(c)) => format!("{} {c}", s.as_u16()),
                    (Some(s), None) => s.as_u16().to_string(),
                    (None, _) => "transport".to_string(),
                };
                *stats.errors.entry(kind.clone()).or_default() += 1;
                stats.samples.entry(kind).or_insert_with(|| e.to_string());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    stats
}

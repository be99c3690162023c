//! The node's call log writer: data-plane calls hand a record to a bounded channel (a
//! full channel drops and counts it, never blocks a request); one background thread
//! stores them in batches, flushes the memtable every few seconds, and sets and
//! watches retention by age and size (RocksDB's FIFO compaction deletes the files).
//! The same thread feeds the per-minute analytics rollups (`raftgate_store::rollup`),
//! so they cost the data plane nothing. The store itself is `raftgate_store::calllog`.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge, Registry};
use raftgate_store::calllog::{CallRecord, Retention};
use raftgate_store::rollup::Rollups;
use raftgate_store::{CallLogStore, RollupStore};
use tokio::sync::mpsc;

/// Records waiting for the writer; beyond this, new records are dropped and counted.
const QUEUE: usize = 16_384;
/// Records per RocksDB batch at most.
const BATCH: usize = 2_048;
/// How often the memtable is flushed when records were written: bounds what a crash
/// loses without a WAL.
const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// How often retention is checked (metrics, files from before FIFO compaction).
const TRIM_EVERY: Duration = Duration::from_secs(1);
/// How long the writer sleeps when the queue is empty (polling: a parked receiver would
/// make every request pay for waking the thread).
const IDLE: Duration = Duration::from_millis(20);

/// Handle the data plane sends records to. Cheap to clone.
#[derive(Clone)]
pub struct CallLog {
    tx: mpsc::Sender<CallRecord>,
    pub node_id: u64,
    dropped: IntCounter,
    stop: Arc<AtomicBool>,
    /// Fires when the writer thread has stored and flushed everything and ended.
    ended: Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>>,
}

struct WriterMetrics {
    written: IntCounter,
    trimmed: IntCounter,
    bytes: IntGauge,
    errors: IntCounter,
    rollup_errors: IntCounter,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|_| unreachable!("static metric names"));
    let _ = registry.register(Box::new(c.clone()));
    c
}

impl CallLog {
    /// Starts the writer thread for `store`, which also keeps `rollups` (same retention
    /// age as the call log).
    pub fn start(
        store: CallLogStore,
        rollups: RollupStore,
        node_id: u64,
        keep: Retention,
        registry: &Registry,
    ) -> std::io::Result<CallLog> {
        let dropped = counter(
            registry,
            "raftgate_call_log_dropped_total",
            "Call log records dropped because the writer queue was full",
        );
        let metrics = WriterMetrics {
            written: counter(
                registry,
                "raftgate_call_log_written_total",
                "Call log records stored",
            ),
            trimmed: counter(
                registry,
                "raftgate_call_log_trimmed_total",
                "Call log records deleted by retention (whole files)",
            ),
            errors: counter(
                registry,
                "raftgate_call_log_errors_total",
                "Call log storage errors (records lost)",
            ),
            rollup_errors: counter(
                registry,
                "raftgate_rollup_errors_total",
                "Analytics rollup storage errors (some calls not counted)",
            ),
            bytes: {
                let g = IntGauge::new(
                    "raftgate_call_log_bytes",
                    "Bytes of the call log's files on disk (compressed, memtable excluded)",
                )
                .unwrap_or_else(|_| unreachable!("static metric names"));
                let _ = registry.register(Box::new(g.clone()));
                g
            },
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let (done, ended) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("call-log".into())
            .spawn(move || {
                let rollups = Rollups::new(rollups, keep.max_age_us / 1000);
                write_loop(store, rollups, rx, keep, metrics, &stopped);
                let _ = done.send(());
            })?;
        Ok(CallLog {
            tx,
            node_id,
            dropped,
            stop,
            ended: Arc::new(std::sync::Mutex::new(Some(ended))),
        })
    }

    /// Queues `r`; drops it (and counts) when the writer is behind.
    pub fn send(&self, r: CallRecord) {
        if self.tx.try_send(r).is_err() {
            self.dropped.inc();
        }
    }

    /// When `stopped` flips: stops the writer once it stored and flushed what is
    /// queued, and returns when it has (the node's shutdown bounds the wait).
    pub async fn stop_on(self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let _ = stopped.wait_for(|s| *s).await;
        self.stop.store(true, Relaxed);
        let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(ended) = ended {
            let _ = ended.await;
        }
    }
}

fn write_loop(
    store: CallLogStore,
    mut rollups: Rollups,
    mut rx: mpsc::Receiver<CallRecord>,
    keep: Retention,
    m: WriterMetrics,
    stop: &AtomicBool,
) {
    if let Err(e) = store.set_retention(&keep) {
        tracing::warn!(error = %e, "call log retention could not be set");
    }
    let mut batch = Vec::with_capacity(BATCH);
    let mut dirty = false;
    let mut flushed = Instant::now();
    let mut trimmed = flushed.checked_sub(TRIM_EVERY).unwrap_or(flushed);
    loop {
        let closed = loop {
            match rx.try_recv() {
                Ok(r) => {
                    batch.push(r);
                    if batch.len() >= BATCH {
                        break false;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break false,
                Err(mpsc::error::TryRecvError::Disconnected) => break true,
            }
        };
        let had = batch.len();
        if had > 0 {
            let now_ms = crate::proxy::unix_ms();
            for r in &batch {
                if let Err(e) = rollups.add(r, now_ms) {
                    m.rollup_errors.inc();
                    tracing::warn!(error = %e, "analytics rollup update failed");
                }
            }
            match store.append(&mut batch) {
                Ok(()) => m.written.inc_by(had as u64),
                Err(e) => {
                    m.errors.inc_by(had as u64);
                    tracing::warn!(error = %e, records = had, "call log write failed");
                }
            }
            batch.clear();
            dirty = true;
        }
        let stopping = closed || stop.load(Relaxed);
        if dirty && (stopping || flushed.elapsed() >= FLUSH_EVERY) {
            if let Err(e) = store.flush() {
                tracing::warn!(error = %e, "call log flush failed");
            }
            (dirty, flushed) = (false, Instant::now());
        }
        if stopping || trimmed.elapsed() >= TRIM_EVERY {
            if let Err(e) = rollups.persist(crate::proxy::unix_ms(), stopping) {
                m.rollup_errors.inc();
                tracing::warn!(error = %e, "analytics rollup write failed");
            }
        }
        if trimmed.elapsed() >= TRIM_EVERY {
            match store.sweep() {
                Ok(t) => m.trimmed.inc_by(t.records),
                Err(e) => tracing::warn!(error = %e, "call log retention failed"),
            }
            m.bytes
                .set(i64::try_from(store.bytes()).unwrap_or(i64::MAX));
            trimmed = Instant::now();
        }
        if stopping && rx.is_empty() {
            return;
        }
        if had < BATCH {
            std::thread::sleep(IDLE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftgate_store::calllog::{CallFilter, CallQuery, MAX_SCAN};
    use raftgate_store::rollup::{Dimension, GroupBy, RollupQuery};

    fn keep() -> Retention {
        Retention {
            max_age_us: u64::MAX,
            max_bytes: u64::MAX,
        }
    }

    #[tokio::test]
    async fn stores_every_record_and_flushes_on_stop() {
        let dir = tempfile::tempdir().unwrap();
        let storage = raftgate_store::open(dir.path()).unwrap();
        let registry = Registry::new();
        let log = CallLog::start(
            storage.calllog.clone(),
            storage.rollup.clone(),
            7,
            keep(),
            &registry,
        )
        .unwrap();
        let now = crate::proxy::unix_ms() * 1000;
        for i in 0..500u64 {
            log.send(CallRecord {
                time_us: now + i,
                node_id: 7,
                status: 200,
                ..CallRecord::default()
            });
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let waiter = tokio::spawn(log.clone().stop_on(stopped));
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(storage.calllog.count(), 500);
        let q = CallQuery {
            filter: CallFilter::default(),
            limit: 10,
            cursor: None,
        };
        let page = storage.calllog.query(7, &q, MAX_SCAN).unwrap();
        assert_eq!(page.items[0].time_us, now + 499, "newest first");
        assert_eq!(log.dropped.get(), 0);
        // The same records were rolled up (and persisted on stop).
        let rolled = storage
            .rollup
            .query(&RollupQuery {
                from_ms: 0,
                to_ms: u64::MAX,
                dimension: Dimension::All,
                key: None,
                tenant: None,
                group: GroupBy::Key,
            })
            .unwrap();
        assert_eq!(rolled.groups.len(), 1);
        assert_eq!(rolled.groups[0].stats.requests, 500);
        let text = {
            use prometheus::Encoder;
            let mut out = Vec::new();
            prometheus::TextEncoder::new()
                .encode(&registry.gather(), &mut out)
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        assert!(
            text.contains("raftgate_call_log_written_total 500"),
            "{text}"
        );
        assert!(text.contains("raftgate_call_log_dropped_total 0"), "{text}");
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (tx, _rx) = mpsc::channel(2);
        let log = CallLog {
            tx,
            node_id: 1,
            dropped: IntCounter::new("d", "d").unwrap(),
            stop: Arc::default(),
            ended: Arc::default(),
        };
        for _ in 0..5 {
            log.send(CallRecord::default());
        }
        assert_eq!(log.dropped.get(), 3);
    }
}

//! The node's call log writer: data-plane calls encode their record into a shared
//! buffer (a full buffer drops and counts it, never blocks a request); one background
//! thread takes the buffer whole, stores the records in batches, flushes the memtable
//! every few seconds, and sets and watches retention by age and size (RocksDB's FIFO
//! compaction deletes the files). The same thread feeds the per-minute analytics
//! rollups (`raftgate_store::rollup`), so they cost the data plane nothing. The store
//! itself is `raftgate_store::calllog`.
//!
//! Why bytes and not records: a record is a dozen heap allocations made on a request's
//! worker thread. Handed over as a struct, the writer freed them all on its own thread,
//! and the allocator's cross-thread frees came back to the worker as bursts of work —
//! most of the p99 the call log added at low load. Encoded, the record's fields are
//! freed where they were made, and the two buffers the threads swap are reused.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge, Registry};
use raftgate_store::calllog::{decode_record, CallRecord, Retention};
use raftgate_store::codec;
use raftgate_store::rollup::Rollups;
use raftgate_store::{CallLogStore, RollupStore};

/// Records waiting for the writer; beyond this, new records are dropped and counted...
const QUEUE: usize = 16_384;
/// ...and beyond this many bytes of them (records with captured bodies are large).
const QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// The writer's buffer is freed rather than reused when a turn grew it beyond this
/// (a steady 35k calls/s fill ~100 KB per turn).
const KEEP_BYTES: usize = 4 * 1024 * 1024;
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

/// Records encoded by the data plane and not yet taken by the writer: each is a
/// little-endian `u32` length and [`codec::encode`]'s bytes.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    records: usize,
}

/// A worker's encoding buffer is given back when a record grew it beyond this.
const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    /// Where a worker thread encodes a record before copying it in under the lock.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Handle the data plane sends records to. Cheap to clone.
#[derive(Clone)]
pub struct CallLog {
    pending: Arc<Mutex<Pending>>,
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
        let pending = Arc::new(Mutex::new(Pending::default()));
        let taken = pending.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let (done, ended) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("call-log".into())
            .spawn(move || {
                let rollups = Rollups::new(rollups, keep.max_age_us / 1000);
                write_loop(store, rollups, &taken, keep, metrics, &stopped);
                let _ = done.send(());
            })?;
        Ok(CallLog {
            pending,
            node_id,
            dropped,
            stop,
            ended: Arc::new(std::sync::Mutex::new(Some(ended))),
        })
    }

    /// Queues `r`; drops it (and counts) when the writer is behind. `r` is encoded
    /// and freed on the calling thread.
    pub fn send(&self, r: CallRecord) {
        let queued = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let queued = self.queue(&r, &mut scratch);
            // A record with large captured bodies does not pin its size to the thread.
            if scratch.capacity() > SCRATCH_KEEP {
                *scratch = Vec::new();
            }
            queued
        });
        if !queued {
            self.dropped.inc();
        }
    }

    /// Encodes `r` in `scratch` and appends it to the pending buffer, if it has room.
    fn queue(&self, r: &CallRecord, scratch: &mut Vec<u8>) -> bool {
        scratch.clear();
        if codec::encode_into(r, scratch).is_err() {
            return false;
        }
        let Ok(len) = u32::try_from(scratch.len()) else {
            return false;
        };
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.records >= QUEUE || p.buf.len() + 4 + scratch.len() > QUEUE_BYTES {
            return false;
        }
        p.buf.extend_from_slice(&len.to_le_bytes());
        p.buf.extend_from_slice(scratch);
        p.records += 1;
        true
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

/// Splits a taken buffer back into its records' encodings.
fn frames(mut buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (len, rest) = buf.split_first_chunk::<4>()?;
        let (frame, rest) = rest.split_at_checked(u32::from_le_bytes(*len) as usize)?;
        buf = rest;
        Some(frame)
    })
}

/// Stores and rolls up the records of a buffer taken from the workers, `BATCH` per
/// RocksDB write.
fn store_taken(taken: &[u8], store: &CallLogStore, rollups: &mut Rollups, m: &WriterMetrics) {
    let now_ms = crate::proxy::unix_ms();
    let mut frames = frames(taken).peekable();
    let mut records = Vec::with_capacity(BATCH);
    while frames.peek().is_some() {
        for frame in frames.by_ref().take(BATCH) {
            match decode_record(frame) {
                Ok(r) => {
                    if let Err(e) = rollups.add(&r, now_ms) {
                        m.rollup_errors.inc();
                        tracing::warn!(error = %e, "analytics rollup update failed");
                    }
                    records.push((r.time_us, frame));
                }
                // Encoded by this process a moment ago: cannot happen.
                Err(e) => {
                    m.errors.inc();
                    tracing::warn!(error = %e, "call log record unreadable");
                }
            }
        }
        match store.append_encoded(&records) {
            Ok(()) => m.written.inc_by(records.len() as u64),
            Err(e) => {
                m.errors.inc_by(records.len() as u64);
                tracing::warn!(error = %e, records = records.len(), "call log write failed");
            }
        }
        records.clear();
    }
}

fn write_loop(
    store: CallLogStore,
    mut rollups: Rollups,
    pending: &Arc<Mutex<Pending>>,
    keep: Retention,
    m: WriterMetrics,
    stop: &AtomicBool,
) {
    if let Err(e) = store.set_retention(&keep) {
        tracing::warn!(error = %e, "call log retention could not be set");
    }
    // The buffer the workers fill and this one trade places at every turn, so neither
    // allocates once both have grown to a turn's worth of records.
    let mut taken = Vec::new();
    let mut dirty = false;
    let mut flushed = Instant::now();
    let mut trimmed = flushed.checked_sub(TRIM_EVERY).unwrap_or(flushed);
    loop {
        let stopping = stop.load(Relaxed) || Arc::strong_count(pending) == 1;
        let had = {
            let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut p.buf, &mut taken);
            std::mem::take(&mut p.records)
        };
        if had > 0 {
            store_taken(&taken, &store, &mut rollups, &m);
            taken.clear();
            // After a burst of large records (captured bodies), neither buffer keeps
            // its peak size: the workers get an empty one at the next turn.
            if taken.capacity() > KEEP_BYTES {
                taken = Vec::new();
            }
            dirty = true;
        }
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
        // Stopping was decided before the buffer was taken: what was queued by then is
        // stored. (Calls still running at shutdown may add records after; they are lost
        // as they would be in a crash.)
        if stopping {
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
        let log = CallLog {
            pending: Arc::default(),
            node_id: 1,
            dropped: IntCounter::new("d", "d").unwrap(),
            stop: Arc::default(),
            ended: Arc::default(),
        };
        for _ in 0..QUEUE + 3 {
            log.send(CallRecord::default());
        }
        assert_eq!(log.dropped.get(), 3);
        // A byte-heavy record is refused by the byte bound before the count bound.
        let big = CallRecord {
            request_body: Some("x".repeat(QUEUE_BYTES)),
            ..CallRecord::default()
        };
        let log = CallLog {
            pending: Arc::default(),
            ..log
        };
        log.send(big);
        assert_eq!(log.dropped.get(), 4);
        assert_eq!(log.pending.lock().unwrap().records, 0);
    }

    #[test]
    fn queued_records_come_back_whole_and_in_order() {
        let log = CallLog {
            pending: Arc::default(),
            node_id: 1,
            dropped: IntCounter::new("d", "d").unwrap(),
            stop: Arc::default(),
            ended: Arc::default(),
        };
        let sent: Vec<CallRecord> = (0..3u64)
            .map(|i| CallRecord {
                time_us: 1_000 + i,
                path: format!("/p{i}"),
                route: Some("r".into()),
                status: 200 + i as u16,
                ..CallRecord::default()
            })
            .collect();
        for r in &sent {
            log.send(r.clone());
        }
        let p = log.pending.lock().unwrap();
        assert_eq!(p.records, 3);
        let back: Vec<CallRecord> = frames(&p.buf).map(|f| decode_record(f).unwrap()).collect();
        assert_eq!(back, sent);
    }
}

//! RocksDB I/O for call logs: batched appends that never touch the WAL, descending scans
//! with filters, and retention by age and size.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use rocksdb::{IteratorMode, ReadOptions, WriteBatch, WriteOptions, DB};

use super::{CallPage, CallQuery, CallRecord, Pos};
use crate::codec::{self, CodecError};
use crate::db::{cf, CF_CALLLOG};

/// Records one query may examine before answering with what it found (and a resume
/// point), so a very selective filter over a full column family stays bounded.
pub const MAX_SCAN: usize = 200_000;

/// Records one [`CallLogStore::trim`] pass deletes at most, so the writer is never held
/// up for long; the next pass continues.
const TRIM_PASS_MAX: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum CallLogError {
    #[error("call log storage: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("call log record: {0}")]
    Codec(#[from] CodecError),
}

/// How much history a node keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Records older than this many µs are deleted.
    pub max_age_us: u64,
    /// Bytes of records (key + encoded value, before compression) kept at most. When
    /// exceeded, the oldest records go until 90% of it is left, so trimming is not
    /// repeated for every batch.
    pub max_bytes: u64,
}

/// What one [`CallLogStore::trim`] pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    pub records: u64,
    pub bytes: u64,
}

/// The node's call log column family. Cheap to clone; clones share the counters.
///
/// Meant for one writer (the node's call-log task) and any number of readers.
#[derive(Clone)]
pub struct CallLogStore {
    db: Arc<DB>,
    inner: Arc<Counters>,
}

struct Counters {
    /// Next sequence number; starts above the last stored key's.
    seq: AtomicU64,
    /// Bytes of live records (key + value), once measured.
    bytes: AtomicU64,
    measured: AtomicBool,
}

pub(crate) fn key(time_us: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&time_us.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn split_key(k: &[u8]) -> Option<(u64, u64)> {
    let time = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(k.get(8..16)?.try_into().ok()?);
    Some((time, seq))
}

/// Call-log writes go to the memtable only: no WAL, no fsync, so they never add to the
/// bytes a Raft append has to sync. The memtable is flushed every few seconds by the
/// writer ([`CallLogStore::flush`]); a crash loses what was not flushed yet.
fn quiet_write() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(false);
    w.disable_wal(true);
    w
}

impl CallLogStore {
    pub fn new(db: Arc<DB>) -> CallLogStore {
        let last = db
            .iterator_cf(cf(&db, CF_CALLLOG), IteratorMode::End)
            .next()
            .and_then(|r| r.ok())
            .and_then(|(k, _)| split_key(&k))
            .map_or(0, |(_, seq)| seq.wrapping_add(1));
        CallLogStore {
            db,
            inner: Arc::new(Counters {
                seq: AtomicU64::new(last),
                bytes: AtomicU64::new(0),
                measured: AtomicBool::new(false),
            }),
        }
    }

    /// Stores `records`, giving each its sequence number (their `seq` is overwritten).
    pub fn append(&self, records: &mut [CallRecord]) -> Result<(), CallLogError> {
        if records.is_empty() {
            return Ok(());
        }
        let cf = cf(&self.db, CF_CALLLOG);
        let mut batch = WriteBatch::default();
        let mut added = 0u64;
        for r in records.iter_mut() {
            r.seq = self.inner.seq.fetch_add(1, Relaxed);
            let value = codec::encode(r)?;
            added += 16 + value.len() as u64;
            batch.put_cf(cf, key(r.time_us, r.seq), value);
        }
        self.db.write_opt(batch, &quiet_write())?;
        self.inner.bytes.fetch_add(added, Relaxed);
        Ok(())
    }

    #[cfg(test)]
    pub(super) fn db_handle(&self) -> Arc<DB> {
        self.db.clone()
    }

    /// Persists the memtable to an SST file (bounds what a crash can lose).
    pub fn flush(&self) -> Result<(), CallLogError> {
        Ok(self.db.flush_cf(cf(&self.db, CF_CALLLOG))?)
    }

    /// Bytes of stored records as tracked by this store (measured on the first trim).
    pub fn bytes(&self) -> u64 {
        self.inner.bytes.load(Relaxed)
    }

    /// Records matching `q` on this node (`node` = this node's id, which places the
    /// cursor), newest first: at most `q.limit`, examining at most `max_scan` records.
    pub fn query(
        &self,
        node: u64,
        q: &CallQuery,
        max_scan: usize,
    ) -> Result<CallPage, CallLogError> {
        let f = &q.filter;
        let mut upper = f.to_us.map(|t| key(t, 0));
        if let Some(c) = q.cursor {
            // Strictly after the cursor in (time, node, seq) descending order.
            let bound = match node.cmp(&c.node) {
                std::cmp::Ordering::Less => c.time_us.checked_add(1).map(|t| key(t, 0)),
                std::cmp::Ordering::Equal => Some(key(c.time_us, c.seq)),
                std::cmp::Ordering::Greater => Some(key(c.time_us, 0)),
            };
            upper = match (upper, bound) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let mut page = CallPage::default();
        let limit = q.limit as usize;
        if limit == 0 || upper.is_some_and(|u| u <= key(f.from_us, 0)) {
            return Ok(page);
        }
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(key(f.from_us, 0).to_vec());
        if let Some(u) = upper {
            opts.set_iterate_upper_bound(u.to_vec());
        }
        opts.fill_cache(false);
        let mut it = self.db.raw_iterator_cf_opt(cf(&self.db, CF_CALLLOG), opts);
        it.seek_to_last();
        let mut scanned = 0usize;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            scanned += 1;
            let Some((time_us, seq)) = split_key(k) else {
                it.prev();
                continue;
            };
            let here = Pos { time_us, node, seq };
            // A record that does not decode (e.g. written by a newer release) is skipped.
            if let Ok(mut r) = super::decode_record(v) {
                (r.time_us, r.seq, r.node_id) = (time_us, seq, node);
                if f.matches(&r) {
                    page.items.push(r);
                    if page.items.len() >= limit {
                        page.resume = Some(here);
                        return Ok(page);
                    }
                }
            }
            if scanned >= max_scan {
                page.resume = Some(here);
                return Ok(page);
            }
            it.prev();
        }
        it.status()?;
        Ok(page)
    }

    /// Deletes records older than the age limit and, when over the size limit, the
    /// oldest ones until 90% of it is left. Measures the stored bytes on first use.
    pub fn trim(&self, now_us: u64, keep: &Retention) -> Result<Trimmed, CallLogError> {
        if !self.inner.measured.load(Relaxed) {
            self.measure()?;
        }
        let age_cut = now_us.saturating_sub(keep.max_age_us);
        let bytes = self.bytes();
        let to_free = if bytes > keep.max_bytes {
            bytes - keep.max_bytes + keep.max_bytes / 10
        } else {
            0
        };
        let cf = cf(&self.db, CF_CALLLOG);
        let mut opts = ReadOptions::default();
        opts.fill_cache(false);
        let mut it = self.db.raw_iterator_cf_opt(cf, opts);
        it.seek_to_first();
        let mut done = Trimmed::default();
        let mut last: Option<Vec<u8>> = None;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let time = split_key(k).map_or(0, |(t, _)| t);
            let wanted = time < age_cut || done.bytes < to_free;
            if !wanted || done.records >= TRIM_PASS_MAX {
                break;
            }
            done.records += 1;
            done.bytes += (k.len() + v.len()) as u64;
            last = Some(k.to_vec());
            it.next();
        }
        it.status()?;
        drop(it);
        let Some(last) = last else { return Ok(done) };
        // Whole SST files inside the range are dropped at once (cheap, frees disk now);
        // the range tombstone covers the rest, including what is still in the memtable.
        let first = [0u8; 16];
        self.db
            .delete_file_in_range_cf(cf, first.as_slice(), last.as_slice())?;
        let mut end = last;
        end.push(0); // the smallest key after `last`: the range end is exclusive
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, first.as_slice(), end.as_slice());
        self.db.write_opt(batch, &quiet_write())?;
        let _ = self
            .inner
            .bytes
            .fetch_update(Relaxed, Relaxed, |b| Some(b.saturating_sub(done.bytes)));
        Ok(done)
    }

    /// RocksDB's estimate of the column family's live data on disk (after compression).
    pub fn disk_estimate(&self) -> u64 {
        self.db
            .property_int_value_cf(cf(&self.db, CF_CALLLOG), "rocksdb.estimate-live-data-size")
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Flushes and compacts the whole column family (tests and tools; the node leaves
    /// compaction to RocksDB).
    pub fn compact(&self) -> Result<(), CallLogError> {
        self.flush()?;
        self.db
            .compact_range_cf(cf(&self.db, CF_CALLLOG), None::<&[u8]>, None::<&[u8]>);
        Ok(())
    }

    /// Counts the bytes of every stored record.
    fn measure(&self) -> Result<(), CallLogError> {
        let mut opts = ReadOptions::default();
        opts.fill_cache(false);
        let mut it = self.db.raw_iterator_cf_opt(cf(&self.db, CF_CALLLOG), opts);
        it.seek_to_first();
        let mut total = 0u64;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            total += (k.len() + v.len()) as u64;
            it.next();
        }
        it.status()?;
        self.inner.bytes.store(total, Relaxed);
        self.inner.measured.store(true, Relaxed);
        Ok(())
    }

    /// How many records are stored (a full scan: tests and tools).
    pub fn count(&self) -> usize {
        self.db
            .iterator_cf(cf(&self.db, CF_CALLLOG), IteratorMode::Start)
            .count()
    }

    /// The oldest stored record's time, if any.
    pub fn oldest_us(&self) -> Option<u64> {
        self.db
            .iterator_cf(cf(&self.db, CF_CALLLOG), IteratorMode::Start)
            .next()
            .and_then(|r| r.ok())
            .and_then(|(k, _)| split_key(&k))
            .map(|(t, _)| t)
    }
}

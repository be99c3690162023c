//! RocksDB I/O for call logs: batched appends that never touch the WAL, descending scans
//! with filters, and retention by age and size (enforced by the column family's FIFO
//! compaction, see `crate::db`; this file sets its limits and observes what it dropped).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use rocksdb::{IteratorMode, ReadOptions, WriteBatch, WriteOptions, DB};

use super::{CallPage, CallQuery, CallRecord, Pos};
use crate::codec::{self, CodecError};
use crate::db::{cf, CF_CALLLOG};

/// Records one query may examine before answering with what it found (and a resume
/// point), so a very selective filter over a full column family stays bounded.
pub const MAX_SCAN: usize = 200_000;

/// The call log's memtable is an eighth of the size limit within these bounds, so one
/// flushed file never exceeds the limit on its own (FIFO would then drop even the newest).
const MEMTABLE_MIN: u64 = 128 * 1024;
const MEMTABLE_MAX: u64 = 16 * 1024 * 1024;

/// A call-log file below this is small: FIFO joins small files while at least
/// `MERGE_ON` of them exist, until at most `MERGE_OFF` are left.
const SMALL_FILE: u64 = 1024 * 1024;
const MERGE_ON: usize = 64;
const MERGE_OFF: usize = 8;

/// The column family's FIFO options string (RocksDB's option syntax).
fn fifo_options(max_bytes: u64, merge: bool) -> String {
    format!("{{max_table_files_size={max_bytes};allow_compaction={merge}}}")
}

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
    /// Records older than this many µs are never returned by queries; a call-log file
    /// is deleted once its newest record is that old (RocksDB's FIFO TTL, whole
    /// seconds). `u64::MAX`: no age limit.
    pub max_age_us: u64,
    /// Bytes of call-log files on disk (compressed) kept at most: beyond it the oldest
    /// files are deleted whole.
    pub max_bytes: u64,
}

/// What retention removed since the previous [`CallLogStore::sweep`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    pub records: u64,
    /// On-disk (compressed) bytes.
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
    /// Bytes of the column family's files on disk, as of the last sweep.
    bytes: AtomicU64,
    /// `Retention::max_age_us`: queries skip records older than this.
    max_age_us: AtomicU64,
    /// `Retention::max_bytes`.
    max_bytes: AtomicU64,
    /// Whether FIFO's joining of small files is on.
    merging: AtomicBool,
    /// The column family's files as of the last sweep.
    files: Mutex<Vec<FileSpan>>,
}

/// One call-log SST file, as far as telling a deleted file from a merged one needs.
struct FileSpan {
    name: String,
    level: i32,
    start: Vec<u8>,
    end: Vec<u8>,
    records: u64,
    bytes: u64,
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

pub(super) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
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
                max_age_us: AtomicU64::new(u64::MAX),
                max_bytes: AtomicU64::new(u64::MAX),
                merging: AtomicBool::new(false),
                files: Mutex::new(Vec::new()),
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
        for r in records.iter_mut() {
            r.seq = self.inner.seq.fetch_add(1, Relaxed);
            let value = codec::encode(r)?;
            batch.put_cf(cf, key(r.time_us, r.seq), value);
        }
        self.db.write_opt(batch, &quiet_write())?;
        Ok(())
    }

    /// Applies `keep` to the column family's FIFO compaction (a runtime option change,
    /// no reopen) and to what queries return.
    pub fn set_retention(&self, keep: &Retention) -> Result<(), CallLogError> {
        // 0 turns RocksDB's TTL off; below one second rounds up to one.
        let ttl = match keep.max_age_us {
            u64::MAX => 0,
            us => us.div_ceil(1_000_000).max(1),
        };
        let memtable = (keep.max_bytes / 8).clamp(MEMTABLE_MIN, MEMTABLE_MAX);
        let fifo = fifo_options(keep.max_bytes, false);
        self.db.set_options_cf(
            cf(&self.db, CF_CALLLOG),
            &[
                ("ttl", ttl.to_string().as_str()),
                ("write_buffer_size", memtable.to_string().as_str()),
                ("compaction_options_fifo", fifo.as_str()),
            ],
        )?;
        self.inner.max_age_us.store(keep.max_age_us, Relaxed);
        self.inner.max_bytes.store(keep.max_bytes, Relaxed);
        self.inner.merging.store(false, Relaxed);
        Ok(())
    }

    /// The oldest record time queries return (0: no age limit).
    fn visible_from_us(&self) -> u64 {
        match self.inner.max_age_us.load(Relaxed) {
            u64::MAX => 0,
            age => now_us().saturating_sub(age),
        }
    }

    #[cfg(test)]
    pub(super) fn db_handle(&self) -> Arc<DB> {
        self.db.clone()
    }

    /// Persists the memtable to an SST file (bounds what a crash can lose).
    pub fn flush(&self) -> Result<(), CallLogError> {
        Ok(self.db.flush_cf(cf(&self.db, CF_CALLLOG))?)
    }

    /// Bytes of the call log's files on disk as of the last [`CallLogStore::sweep`]
    /// (the memtable not included).
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
        let from_us = f.from_us.max(self.visible_from_us());
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
        if limit == 0 || upper.is_some_and(|u| u <= key(from_us, 0)) {
            return Ok(page);
        }
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(key(from_us, 0).to_vec());
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

    /// Takes stock of the column family's files after RocksDB's FIFO compaction: updates
    /// [`CallLogStore::bytes`] and returns what retention deleted since the last sweep.
    /// A file that is gone while a new file overlaps its keys was merged into it (FIFO
    /// joins small files); one with no such successor was deleted. (A file flushed in
    /// the same second that holds a record as old as a deleted file's newest — a call
    /// that lasted as long as the retention window — hides that deletion from the count.)
    /// Also applies both limits to files left below level 0 by a call log written
    /// before FIFO compaction, which FIFO itself does not.
    pub fn sweep(&self) -> Result<Trimmed, CallLogError> {
        let mut now = self.files_now()?;
        if let Some(cut) = self.old_level_cut(&now) {
            self.db.delete_file_in_range_cf(
                cf(&self.db, CF_CALLLOG),
                [0u8; 16].as_slice(),
                cut.as_slice(),
            )?;
            now = self.files_now()?;
        }
        let mut files = self.inner.files.lock().unwrap_or_else(|p| p.into_inner());
        let mut done = Trimmed::default();
        for old in files
            .iter()
            .filter(|o| !now.iter().any(|n| n.name == o.name))
        {
            let merged = now.iter().any(|n| {
                !files.iter().any(|o| o.name == n.name) && n.start <= old.end && old.start <= n.end
            });
            if !merged {
                done.records += old.records;
                done.bytes += old.bytes;
            }
        }
        self.inner
            .bytes
            .store(now.iter().map(|f| f.bytes).sum(), Relaxed);
        self.merge_small_files(&now)?;
        *files = now;
        Ok(done)
    }

    /// Turns FIFO's joining of files on while many small ones have piled up (low traffic:
    /// a flush every 5 s of a few records) and off again once they are joined. Left on,
    /// it would also rewrite every normal-sized file once, a cost the levelled call log
    /// did not have (measured in `bench/README.md`); left off, a quiet week would leave
    /// a hundred thousand tiny files open.
    fn merge_small_files(&self, files: &[FileSpan]) -> Result<(), CallLogError> {
        let small = files
            .iter()
            .filter(|f| f.level == 0 && f.bytes < SMALL_FILE)
            .count();
        let merging = self.inner.merging.load(Relaxed);
        let want = if merging {
            small > MERGE_OFF
        } else {
            small >= MERGE_ON
        };
        if want != merging {
            let fifo = fifo_options(self.inner.max_bytes.load(Relaxed), want);
            self.db.set_options_cf(
                cf(&self.db, CF_CALLLOG),
                &[("compaction_options_fifo", fifo.as_str())],
            )?;
            self.inner.merging.store(want, Relaxed);
        }
        Ok(())
    }

    /// Whether FIFO may join small files now (see `merge_small_files`).
    pub fn merging(&self) -> bool {
        self.inner.merging.load(Relaxed)
    }

    fn files_now(&self) -> Result<Vec<FileSpan>, CallLogError> {
        Ok(self
            .db
            .live_files()?
            .into_iter()
            .filter(|f| f.column_family_name == CF_CALLLOG)
            .map(|f| FileSpan {
                name: f.name,
                level: f.level,
                start: f.start_key.unwrap_or_default(),
                end: f.end_key.unwrap_or_default(),
                records: f.num_entries.saturating_sub(f.num_deletions),
                bytes: f.size as u64,
            })
            .collect())
    }

    /// For files below level 0 (a call log written before FIFO compaction, which FIFO
    /// neither expires nor counts towards its size limit): the key up to which whole
    /// files should go — those older than the age limit, then the oldest until all
    /// files fit the size limit. `None` when nothing below level 0 has to go.
    fn old_level_cut(&self, files: &[FileSpan]) -> Option<Vec<u8>> {
        let mut old: Vec<&FileSpan> = files.iter().filter(|f| f.level > 0).collect();
        old.sort_by(|a, b| a.start.cmp(&b.start));
        let floor = key(self.visible_from_us(), 0);
        let mut over = files
            .iter()
            .map(|f| f.bytes)
            .sum::<u64>()
            .saturating_sub(self.inner.max_bytes.load(Relaxed));
        let mut cut = None;
        for f in old {
            if f.end.as_slice() >= floor.as_slice() && over == 0 {
                break;
            }
            over = over.saturating_sub(f.bytes);
            cut = Some(f.end.clone());
        }
        cut
    }

    /// Flushes the memtable and waits (up to 10 s) for RocksDB's background work, FIFO
    /// deletions and merges included, to finish: tests and tools.
    pub fn settle(&self) -> Result<(), CallLogError> {
        self.flush()?;
        let mut o = rocksdb::WaitForCompactOptions::default();
        o.set_timeout(10_000_000);
        Ok(self.db.wait_for_compact(&o)?)
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

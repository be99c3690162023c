//! The in-memory side of rollups: rows of the last few minutes, updated per call record
//! and written to the column family by [`Rollups::persist`] (the call log writer calls
//! it about once a second). A record for a minute no longer in memory (a long stream that
//! ended late) reloads that minute's stored row first, so nothing is counted twice or lost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{minute_of, Dimension, RollupError, RollupStore, RowKey, Stats, MINUTE_MS};
use crate::calllog::CallRecord;

/// Distinct (tenant, key) rows per dimension and minute a node keeps; calls of further
/// keys in that minute are counted under [`OTHER_KEY`]. Bounds memory and disk when a
/// dimension (consumers, say) has very many ids.
pub const MAX_KEYS_PER_MINUTE: usize = 2_000;
/// The key that collects calls beyond [`MAX_KEYS_PER_MINUTE`].
pub const OTHER_KEY: &str = "_other";
/// Minutes before the current one kept in memory after they were persisted.
const OPEN_MINUTES: u64 = 2;
/// How often written rows are flushed from the memtable (what a crash can lose).
const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// How often retention deletes old minutes.
const TRIM_EVERY: Duration = Duration::from_secs(60);

/// One open row: its totals, and whether they changed since they were last written.
struct Row {
    stats: Stats,
    dirty: bool,
}

/// A node's rollup aggregator. Owned by the call log writer thread.
pub struct Rollups {
    store: RollupStore,
    max_age_ms: u64,
    open: HashMap<RowKey, Row>,
    keys: HashMap<(Dimension, u64), usize>,
    /// Reused for look-ups: a hit costs one hash and no allocation.
    scratch: RowKey,
    unflushed: bool,
    flushed: Instant,
    trimmed: Option<Instant>,
}

impl Rollups {
    /// Rows older than `max_age_ms` (the call log's retention age) are deleted.
    pub fn new(store: RollupStore, max_age_ms: u64) -> Rollups {
        Rollups {
            store,
            max_age_ms,
            open: HashMap::new(),
            keys: HashMap::new(),
            scratch: RowKey {
                dimension: Dimension::All,
                minute_ms: 0,
                tenant: String::new(),
                key: String::new(),
            },
            unflushed: false,
            flushed: Instant::now(),
            trimmed: None,
        }
    }

    /// Counts `r` in every dimension it has an id in. `now_ms` drops records already
    /// past retention. An error (reading a late minute's row) leaves `r` uncounted.
    pub fn add(&mut self, r: &CallRecord, now_ms: u64) -> Result<(), RollupError> {
        let minute = minute_of(r.time_us / 1000);
        if minute.saturating_add(self.max_age_ms) < now_ms {
            return Ok(());
        }
        let tenant = r.tenant.as_deref().unwrap_or_default();
        for d in Dimension::EVERY {
            let Some(key) = d.key_of(r) else {
                continue;
            };
            let row = &mut self.scratch;
            (row.dimension, row.minute_ms) = (d, minute);
            row.tenant.clear();
            row.tenant.push_str(tenant);
            row.key.clear();
            row.key.push_str(key);
            if let Some(open) = self.open.get_mut(row) {
                open.stats.add_record(r);
                open.dirty = true;
                continue;
            }
            let known = self.keys.entry((d, minute)).or_default();
            if *known >= MAX_KEYS_PER_MINUTE {
                row.key.clear();
                row.key.push_str(OTHER_KEY);
            }
            if !self.open.contains_key(row) {
                let stats = self.store.get(row)?.unwrap_or_default();
                *known += 1;
                let fresh = Row {
                    stats,
                    dirty: false,
                };
                self.open.insert(row.clone(), fresh);
            }
            if let Some(open) = self.open.get_mut(row) {
                open.stats.add_record(r);
                open.dirty = true;
            }
        }
        Ok(())
    }

    /// Writes changed rows, forgets minutes older than the last few, flushes every few
    /// seconds (or when `force`), and applies retention once a minute.
    pub fn persist(&mut self, now_ms: u64, force: bool) -> Result<(), RollupError> {
        if self.open.values().any(|r| r.dirty) {
            let rows = self
                .open
                .iter()
                .filter(|(_, r)| r.dirty)
                .map(|(k, r)| (k, &r.stats));
            self.store.put(rows)?;
            self.open.values_mut().for_each(|r| r.dirty = false);
            self.unflushed = true;
        }
        let keep_from = minute_of(now_ms).saturating_sub(OPEN_MINUTES * MINUTE_MS);
        self.open.retain(|k, _| k.minute_ms >= keep_from);
        self.keys.retain(|(_, m), _| *m >= keep_from);
        if self.unflushed && (force || self.flushed.elapsed() >= FLUSH_EVERY) {
            self.store.flush()?;
            (self.unflushed, self.flushed) = (false, Instant::now());
        }
        if self.trimmed.is_none_or(|t| t.elapsed() >= TRIM_EVERY) {
            self.trimmed = Some(Instant::now());
            self.store.trim(now_ms.saturating_sub(self.max_age_ms))?;
        }
        Ok(())
    }

    /// Rows held in memory (for tests and metrics).
    pub fn open_rows(&self) -> usize {
        self.open.len()
    }
}

//! The in-memory side of rollups: rows of the last few minutes, updated per call record
//! and written to the column family by [`Rollups::persist`] (the call log writer calls
//! it about once a second). A record for a minute no longer in memory (a long stream that
//! ended late) reloads that minute's stored row first, so nothing is counted twice or lost.

use std::collections::{HashMap, HashSet};
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

/// A node's rollup aggregator. Owned by the call log writer thread.
pub struct Rollups {
    store: RollupStore,
    max_age_ms: u64,
    open: HashMap<RowKey, Stats>,
    dirty: HashSet<RowKey>,
    keys: HashMap<(Dimension, u64), usize>,
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
            dirty: HashSet::new(),
            keys: HashMap::new(),
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
        let tenant = r.tenant.clone().unwrap_or_default();
        for d in Dimension::EVERY {
            let Some(key) = d.key_of(r) else {
                continue;
            };
            let mut row = RowKey {
                dimension: d,
                minute_ms: minute,
                tenant: tenant.clone(),
                key: key.to_string(),
            };
            if !self.open.contains_key(&row) {
                let known = self.keys.entry((d, minute)).or_default();
                if *known >= MAX_KEYS_PER_MINUTE {
                    row.key = OTHER_KEY.to_string();
                }
                if !self.open.contains_key(&row) {
                    let stored = self.store.get(&row)?.unwrap_or_default();
                    *known += 1;
                    self.open.insert(row.clone(), stored);
                }
            }
            if let Some(s) = self.open.get_mut(&row) {
                s.add_record(r);
            }
            self.dirty.insert(row);
        }
        Ok(())
    }

    /// Writes changed rows, forgets minutes older than the last few, flushes every few
    /// seconds (or when `force`), and applies retention once a minute.
    pub fn persist(&mut self, now_ms: u64, force: bool) -> Result<(), RollupError> {
        if !self.dirty.is_empty() {
            let rows = self
                .dirty
                .iter()
                .filter_map(|k| Some((k, self.open.get(k)?)));
            self.store.put(rows)?;
            self.dirty.clear();
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

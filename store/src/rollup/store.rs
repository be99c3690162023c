//! RocksDB I/O for rollups: rows keyed `[dimension][minute ms, big-endian][tenant length,
//! u32 big-endian][tenant][key]`, so one dimension's time range is one contiguous scan
//! and retention deletes one range per dimension. Written without WAL, like call logs.

use std::collections::BTreeMap;
use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};

use super::{minute_of, Dimension, GroupBy, RollupGroup, RollupPage, RollupQuery, Stats};
use crate::codec::{self, CodecError};
use crate::db::{cf, CF_ROLLUP};

/// Rows one query examines at most; beyond, the answer is marked truncated.
pub const MAX_SCAN_ROWS: usize = 1_000_000;
/// Groups one node returns at most (bounds the reply size); beyond, truncated.
pub const MAX_GROUPS: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    #[error("rollup storage: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("rollup row: {0}")]
    Codec(#[from] CodecError),
}

/// Where one row lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowKey {
    pub dimension: Dimension,
    pub minute_ms: u64,
    /// The calls' tenant; empty when they had none.
    pub tenant: String,
    /// The dimension's id (route id, model name, …); empty for [`Dimension::All`].
    pub key: String,
}

impl RowKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(13 + self.tenant.len() + self.key.len());
        k.push(self.dimension.tag());
        k.extend_from_slice(&self.minute_ms.to_be_bytes());
        let tlen = u32::try_from(self.tenant.len()).unwrap_or(u32::MAX);
        k.extend_from_slice(&tlen.to_be_bytes());
        k.extend_from_slice(&self.tenant.as_bytes()[..tlen as usize]);
        k.extend_from_slice(self.key.as_bytes());
        k
    }

    pub fn decode(k: &[u8]) -> Option<RowKey> {
        let dimension = Dimension::from_tag(*k.first()?)?;
        let minute_ms = u64::from_be_bytes(k.get(1..9)?.try_into().ok()?);
        let tlen = u32::from_be_bytes(k.get(9..13)?.try_into().ok()?) as usize;
        let tenant = std::str::from_utf8(k.get(13..13 + tlen)?).ok()?.to_string();
        let key = std::str::from_utf8(k.get(13 + tlen..)?).ok()?.to_string();
        Some(RowKey {
            dimension,
            minute_ms,
            tenant,
            key,
        })
    }
}

fn prefix(d: Dimension, minute_ms: u64) -> Vec<u8> {
    let mut k = vec![d.tag()];
    k.extend_from_slice(&minute_ms.to_be_bytes());
    k
}

fn quiet_write() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(false);
    w.disable_wal(true);
    w
}

/// The node's rollup column family. One writer (the call log task), any readers.
#[derive(Clone)]
pub struct RollupStore {
    db: Arc<DB>,
}

impl RollupStore {
    pub fn new(db: Arc<DB>) -> RollupStore {
        RollupStore { db }
    }

    pub fn get(&self, k: &RowKey) -> Result<Option<Stats>, RollupError> {
        match self.db.get_cf(cf(&self.db, CF_ROLLUP), k.encode())? {
            Some(v) => Ok(Some(codec::decode_stored(&v)?)),
            None => Ok(None),
        }
    }

    /// Writes whole rows (replacing what was stored) in one batch.
    pub fn put<'a>(
        &self,
        rows: impl IntoIterator<Item = (&'a RowKey, &'a Stats)>,
    ) -> Result<(), RollupError> {
        let cf = cf(&self.db, CF_ROLLUP);
        let mut batch = WriteBatch::default();
        for (k, s) in rows {
            batch.put_cf(cf, k.encode(), codec::encode(s)?);
        }
        self.db.write_opt(batch, &quiet_write())?;
        Ok(())
    }

    pub fn flush(&self) -> Result<(), RollupError> {
        Ok(self.db.flush_cf(cf(&self.db, CF_ROLLUP))?)
    }

    /// Deletes every row of a minute that started before `before_ms`.
    pub fn trim(&self, before_ms: u64) -> Result<(), RollupError> {
        let cf = cf(&self.db, CF_ROLLUP);
        let mut batch = WriteBatch::default();
        for d in Dimension::EVERY {
            batch.delete_range_cf(cf, prefix(d, 0), prefix(d, minute_of(before_ms)));
        }
        self.db.write_opt(batch, &quiet_write())?;
        Ok(())
    }

    /// This node's rows matching `q`, grouped as `q.group` asks, in key order.
    pub fn query(&self, q: &RollupQuery) -> Result<RollupPage, RollupError> {
        let start = prefix(q.dimension, minute_of(q.from_ms));
        let iter = self.db.iterator_cf(
            cf(&self.db, CF_ROLLUP),
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut groups: BTreeMap<(u64, String), Stats> = BTreeMap::new();
        let mut truncated = false;
        for (scanned, item) in iter.enumerate() {
            let (k, v) = item?;
            let Some(row) = RowKey::decode(&k) else {
                continue;
            };
            if row.dimension != q.dimension || row.minute_ms >= q.to_ms {
                break;
            }
            if scanned >= MAX_SCAN_ROWS {
                truncated = true;
                break;
            }
            if q.key.as_ref().is_some_and(|want| *want != row.key)
                || q.tenant.as_ref().is_some_and(|want| *want != row.tenant)
            {
                continue;
            }
            let group = match q.group {
                GroupBy::Minute => (row.minute_ms, String::new()),
                GroupBy::Key => (0, row.key),
            };
            if !groups.contains_key(&group) && groups.len() >= MAX_GROUPS {
                truncated = true;
                continue;
            }
            let stats: Stats = codec::decode_stored(&v)?;
            groups.entry(group).or_default().merge(&stats);
        }
        Ok(RollupPage {
            groups: groups
                .into_iter()
                .map(|((minute_ms, key), stats)| RollupGroup {
                    minute_ms,
                    key,
                    stats,
                })
                .collect(),
            truncated,
        })
    }
}

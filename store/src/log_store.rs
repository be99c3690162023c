//! The Raft log on RocksDB: entries, vote, committed and purged pointers.
//!
//! Every write openraft relies on for safety (entries, vote, truncate, purge) is
//! fsynced before it is acknowledged; the flush callback of `append` fires only after
//! the WAL sync returns.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::db::{cf, sync_write, CF_LOG, CF_RAFT};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"last_purged";

/// The log store; cheap to clone (it is also its own log reader).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn io_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageError::IO {
        source: StorageIOError::write_logs(openraft::AnyError::new(&e)),
    }
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageError::IO {
        source: StorageIOError::read_logs(openraft::AnyError::new(&e)),
    }
}

impl LogStore {
    pub fn new(db: Arc<DB>) -> LogStore {
        LogStore { db }
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        match self
            .db
            .get_cf(cf(&self.db, CF_RAFT), key)
            .map_err(read_err)?
        {
            Some(bytes) => Ok(Some(codec::decode_stored(&bytes).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: Serialize>(
        &self,
        key: &[u8],
        value: &T,
        sync: bool,
    ) -> Result<(), StorageError> {
        let bytes = codec::encode(value).map_err(io_err)?;
        let opts = if sync {
            sync_write()
        } else {
            rocksdb::WriteOptions::default()
        };
        self.db
            .put_cf_opt(cf(&self.db, CF_RAFT), key, bytes, &opts)
            .map_err(io_err)
    }

    /// Runs blocking RocksDB work off the async runtime's worker threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&DB) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(io_err)?
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let db = &self.db;
        let mut out = Vec::new();
        for item in db.iterator_cf(
            cf(db, CF_LOG),
            IteratorMode::From(&index_key(start), Direction::Forward),
        ) {
            let (key, value) = item.map_err(read_err)?;
            let index = u64::from_be_bytes(
                key.as_ref()
                    .try_into()
                    .map_err(|_| read_err(codec::CodecError::Empty))?,
            );
            if !range.contains(&index) {
                break;
            }
            let entry = decode_entry(&value).map_err(read_err)?;
            out.push(entry);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.get_meta(KEY_PURGED)?;
        let db = &self.db;
        let last = match db.iterator_cf(cf(db, CF_LOG), IteratorMode::End).next() {
            Some(item) => {
                let (_, value) = item.map_err(read_err)?;
                let entry = decode_entry(&value).map_err(read_err)?;
                Some(entry.log_id)
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta(KEY_VOTE, vote, true)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not needed for safety (openraft re-derives it); saved so a restart re-applies quickly.
        self.put_meta(KEY_COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        {
            let log = cf(&self.db, CF_LOG);
            for entry in entries {
                batch.put_cf(
                    log,
                    index_key(entry.log_id.index),
                    codec::encode(&entry).map_err(io_err)?,
                );
            }
        }
        // fsync the WAL, then tell openraft the entries are durable.
        let result = self
            .blocking(move |db| db.write_opt(batch, &sync_write()).map_err(io_err))
            .await;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(move |db| {
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(cf(db, CF_LOG), index_key(log_id.index), index_key(u64::MAX));
            db.write_opt(batch, &sync_write()).map_err(io_err)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash in between leaves extra entries, never a gap.
        self.put_meta(KEY_PURGED, &log_id, true)?;
        self.blocking(move |db| {
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(
                cf(db, CF_LOG),
                index_key(0),
                index_key(log_id.index.saturating_add(1)),
            );
            db.write_opt(batch, &sync_write()).map_err(io_err)
        })
        .await
    }
}

/// A log entry as written by this release or the previous one (see `crate::legacy`).
fn decode_entry(bytes: &[u8]) -> Result<Entry, codec::CodecError> {
    codec::decode_upgrading::<Entry, crate::legacy::EntryV3>(bytes)
}

//! Opening the node's RocksDB and the column families each part of the store owns.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, DB};

/// Raft log entries, keyed by big-endian index.
pub const CF_LOG: &str = "log";
/// Raft metadata: vote, committed log id, last purged log id.
pub const CF_RAFT: &str = "raft";
/// State machine data: one key per resource plus applied/membership/cluster metadata.
pub const CF_SM: &str = "sm";
/// The current snapshot (metadata and data).
pub const CF_SNAPSHOT: &str = "snapshot";
/// Node-local, never replicated data (node identity).
pub const CF_LOCAL: &str = "local";
/// Node-local call logs (`crate::calllog`): written without WAL, trimmed by retention.
pub const CF_CALLLOG: &str = "calllog";
/// Node-local per-minute analytics rollups (`crate::rollup`): no WAL, trimmed by age.
pub const CF_ROLLUP: &str = "rollup";

const ALL_CFS: [&str; 7] = [
    CF_LOG,
    CF_RAFT,
    CF_SM,
    CF_SNAPSHOT,
    CF_LOCAL,
    CF_CALLLOG,
    CF_ROLLUP,
];

/// Options of one column family. The call log compresses well (repeated ids) and gets
/// a smaller memtable, since its unflushed part is what a crash can lose.
///
/// The call log uses FIFO compaction: its keys are time-ordered and retention drops the
/// oldest first, so whole files are deleted and records are not rewritten. Levelled
/// compaction rewrote the newest data after every few flushes (records finish out of
/// order, so each new file overlapped the last one): ~67 MB of background writes in a
/// 90 s saturating proxy bench, on the proxy's core, against ~0 with FIFO. FIFO also
/// never stalls writes for the call log; the write controller is DB-wide, so a stall
/// there would stall Raft appends too. The retention limits themselves are set at
/// runtime (`CallLogStore::set_retention`); an existing levelled call log is read as it
/// is and drained by the same limits (`CallLogStore::sweep`).
fn cf_options(name: &str) -> Options {
    let mut o = Options::default();
    if name == CF_CALLLOG || name == CF_ROLLUP {
        o.set_compression_type(rocksdb::DBCompressionType::Lz4);
        o.set_write_buffer_size(16 * 1024 * 1024);
    }
    if name == CF_CALLLOG {
        o.set_compaction_style(rocksdb::DBCompactionStyle::Fifo);
        let mut fifo = rocksdb::FifoCompactOptions::default();
        fifo.set_max_table_files_size(1 << 30);
        o.set_fifo_compaction_options(&fifo);
    }
    o
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data dir {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open RocksDB at {path}: {source}")]
    Open {
        path: String,
        source: rocksdb::Error,
    },
    #[error("data dir {path} is corrupt: {message}")]
    Corrupt { path: String, message: String },
}

/// Opens (creating if needed) the database under `dir/db`.
pub fn open_db(dir: &Path) -> Result<Arc<DB>, OpenError> {
    let path = dir.join("db");
    std::fs::create_dir_all(&path).map_err(|source| OpenError::CreateDir {
        path: path.display().to_string(),
        source,
    })?;
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.set_keep_log_file_num(4);
    let cfs = ALL_CFS
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, cf_options(name)));
    let db = DB::open_cf_descriptors(&opts, &path, cfs).map_err(|source| OpenError::Open {
        path: path.display().to_string(),
        source,
    })?;
    Ok(Arc::new(db))
}

/// The handle of a column family created by [`open_db`].
pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    // Every name passed here is in ALL_CFS, which open_db creates; a miss is a programming error.
    #[allow(clippy::expect_used)]
    db.cf_handle(name)
        .expect("column family created by open_db")
}

/// Write options that fsync the WAL before returning: for anything acknowledged to Raft.
pub(crate) fn sync_write() -> rocksdb::WriteOptions {
    let mut w = rocksdb::WriteOptions::default();
    w.set_sync(true);
    w
}

/// Node-local key/value access for the `local` column family (not replicated).
#[derive(Clone)]
pub struct LocalStore {
    db: Arc<DB>,
}

impl LocalStore {
    pub fn new(db: Arc<DB>) -> LocalStore {
        LocalStore { db }
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, rocksdb::Error> {
        self.db.get_cf(cf(&self.db, CF_LOCAL), key)
    }

    /// Durable put (fsynced): used for node identity, which must survive a crash.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<(), rocksdb::Error> {
        self.db
            .put_cf_opt(cf(&self.db, CF_LOCAL), key, value, &sync_write())
    }
}

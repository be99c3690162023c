//! Raftgate's replicated state: the domain model, the commands that change it, their
//! deterministic apply, and the RocksDB storage behind openraft.
#![forbid(unsafe_code)]
// openraft's storage traits fix the error type; it is large but not ours to shrink.
#![allow(clippy::result_large_err)]

pub mod audit;
pub mod backup;
pub mod calllog;
pub mod codec;
pub mod command;
pub mod config;
pub mod db;
pub mod legacy;
pub mod log_store;
pub mod model;
pub mod quota;
pub mod reencrypt;
pub mod rollup;
pub mod state;
pub mod state_machine;
pub mod types;
pub mod validate;

use std::path::Path;

pub use calllog::CallLogStore;
pub use command::{Applied, ApplyError, Command, Op, Response};
pub use config::{ConfigHandle, ConfigSnapshot};
pub use db::{LocalStore, OpenError};
pub use log_store::LogStore;
pub use rollup::RollupStore;
pub use state_machine::StateMachineStore;
pub use types::{Node, NodeId, TypeConfig};

/// A node's opened storage: the parts openraft takes, plus what the node keeps.
pub struct Storage {
    pub log: LogStore,
    pub sm: StateMachineStore,
    pub config: ConfigHandle,
    pub local: LocalStore,
    /// Node-local call logs (not replicated).
    pub calllog: CallLogStore,
    /// Node-local analytics rollups (not replicated), fed with the call log.
    pub rollup: RollupStore,
}

/// Opens (or creates) the node's RocksDB under `data_dir` and loads the state machine.
pub fn open(data_dir: &Path) -> Result<Storage, OpenError> {
    let db = db::open_db(data_dir)?;
    let sm = StateMachineStore::open(db.clone()).map_err(|e| OpenError::Corrupt {
        path: data_dir.display().to_string(),
        message: e.to_string(),
    })?;
    let config = sm.config();
    Ok(Storage {
        log: LogStore::new(db.clone()),
        sm,
        config,
        local: LocalStore::new(db.clone()),
        calllog: CallLogStore::new(db.clone()),
        rollup: RollupStore::new(db),
    })
}

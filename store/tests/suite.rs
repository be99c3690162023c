//! Runs openraft's own storage conformance suite against the RocksDB store.

use openraft::testing::{StoreBuilder, Suite};
use raftgate_store::types::StorageError;
use raftgate_store::{LogStore, StateMachineStore, TypeConfig};
use tempfile::TempDir;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = raftgate_store::open(dir.path()).expect("open store");
        Ok((dir, storage.log, storage.sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(RocksBuilder).expect("storage suite");
}

//! The state machine on RocksDB: applies committed entries to [`State`], persists what
//! changed in one write batch per apply call, builds and installs snapshots, and
//! publishes an immutable [`ConfigSnapshot`] for the data plane after every apply.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use rocksdb::{WriteBatch, DB};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditRecord, RevokedToken};
use crate::codec;
use crate::command::Response;
use crate::config::{ConfigHandle, ConfigSnapshot};
use crate::db::{cf, sync_write, CF_SM, CF_SNAPSHOT};
use crate::model::Kind;
use crate::quota::{Counter, CounterId, LedgerChange, SyncRecord};
use crate::state::{Change, ClusterMeta, State, StateImage, Stored};
use crate::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const KEY_APPLIED: &[u8] = b"m/applied";
/// Cluster identity and the state revision: `(Option<ClusterMeta>, u64)`.
const KEY_META: &[u8] = b"m/meta";
const KEY_SNAPSHOT: &[u8] = b"current";
const RESOURCE_PREFIX: &[u8] = b"r/";
/// Quota counters: `q/c/` + the encoded counter id.
const COUNTER_PREFIX: &[u8] = b"q/c/";
/// The last quota sync per node: `q/n/` + the big-endian node id.
const SYNC_PREFIX: &[u8] = b"q/n/";
const LEDGER_PREFIX: &[u8] = b"q/";
/// Revoked admin tokens: `t/` + token id.
const REVOKED_PREFIX: &[u8] = b"t/";
/// Audit records: `a/` + the big-endian log index.
const AUDIT_PREFIX: &[u8] = b"a/";

/// The snapshot as kept on disk.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageError::IO {
        source: StorageIOError::write_state_machine(openraft::AnyError::new(&e)),
    }
}

fn snap_err(meta: Option<&SnapshotMeta>, e: impl std::error::Error + 'static) -> StorageError {
    StorageError::IO {
        source: StorageIOError::read_snapshot(
            meta.map(|m| m.signature()),
            openraft::AnyError::new(&e),
        ),
    }
}

fn resource_key(kind: Kind, id: &str) -> Vec<u8> {
    let kind_byte = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u8;
    let mut key = RESOURCE_PREFIX.to_vec();
    key.push(kind_byte);
    key.push(b'/');
    key.extend_from_slice(id.as_bytes());
    key
}

fn counter_key(id: &CounterId) -> Result<Vec<u8>, StorageError> {
    let mut key = COUNTER_PREFIX.to_vec();
    key.extend_from_slice(&codec::encode(id).map_err(sm_err)?);
    Ok(key)
}

fn revoked_key(jti: &str) -> Vec<u8> {
    let mut key = REVOKED_PREFIX.to_vec();
    key.extend_from_slice(jti.as_bytes());
    key
}

fn audit_key(seq: u64) -> Vec<u8> {
    let mut key = AUDIT_PREFIX.to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn sync_key(node: u64) -> Vec<u8> {
    let mut key = SYNC_PREFIX.to_vec();
    key.extend_from_slice(&node.to_be_bytes());
    key
}

/// Reads every value under `prefix` in the state-machine column family.
fn scan<T: serde::de::DeserializeOwned>(db: &DB, prefix: &[u8]) -> Result<Vec<T>, StorageError> {
    let mut out = Vec::new();
    for item in db.prefix_iterator_cf(cf(db, CF_SM), prefix) {
        let (key, value) = item.map_err(sm_err)?;
        if !key.starts_with(prefix) {
            break;
        }
        out.push(codec::decode_stored::<T>(&value).map_err(sm_err)?);
    }
    Ok(out)
}

/// The state machine handed to openraft.
pub struct StateMachineStore {
    db: Arc<DB>,
    state: State,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    config: ConfigHandle,
    snapshot_seq: u64,
}

impl StateMachineStore {
    /// Loads the persisted state machine; if the last snapshot is newer than it (a crash
    /// lost unsynced state-machine writes after the log was purged), restores from it.
    pub(crate) fn open(db: Arc<DB>) -> Result<StateMachineStore, StorageError> {
        let mut state = State::default();
        let sm = cf(&db, CF_SM);
        for stored in scan::<Stored>(&db, RESOURCE_PREFIX)? {
            state.load(stored);
        }
        for counter in scan::<Counter>(&db, COUNTER_PREFIX)? {
            state.ledger_mut().load_counter(counter);
        }
        for record in scan::<SyncRecord>(&db, SYNC_PREFIX)? {
            state.ledger_mut().load_node(record);
        }
        for r in scan::<RevokedToken>(&db, REVOKED_PREFIX)? {
            state.load_revoked(r);
        }
        for r in scan::<AuditRecord>(&db, AUDIT_PREFIX)? {
            state.load_audit(r);
        }
        if let Some(bytes) = db.get_cf(sm, KEY_META).map_err(sm_err)? {
            state.set_meta(
                codec::decode_stored::<(Option<ClusterMeta>, u64)>(&bytes).map_err(sm_err)?,
            );
        }
        let (last_applied, membership) = match db.get_cf(sm, KEY_APPLIED).map_err(sm_err)? {
            Some(bytes) => {
                codec::decode_stored::<(Option<LogId>, StoredMembership)>(&bytes).map_err(sm_err)?
            }
            None => (None, StoredMembership::default()),
        };
        let mut store = StateMachineStore {
            db,
            state,
            last_applied,
            membership,
            config: Arc::new(arc_swap::ArcSwap::from_pointee(ConfigSnapshot::default())),
            snapshot_seq: 0,
        };
        if let Some(snap) = store.read_snapshot()? {
            if snap.meta.last_log_id > store.last_applied {
                tracing::warn!(snapshot = ?snap.meta.last_log_id, applied = ?store.last_applied, "state machine behind its snapshot; restoring");
                store.install(&snap.meta, &snap.data)?;
            }
        }
        store.publish();
        Ok(store)
    }

    /// The pointer the data plane and admin reads load the current config from.
    pub fn config(&self) -> ConfigHandle {
        self.config.clone()
    }

    fn publish(&self) {
        self.config.store(Arc::new(ConfigSnapshot::new(
            self.state.clone(),
            self.last_applied,
        )));
    }

    fn read_snapshot(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        match self
            .db
            .get_cf(cf(&self.db, CF_SNAPSHOT), KEY_SNAPSHOT)
            .map_err(|e| snap_err(None, e))?
        {
            Some(bytes) => Ok(Some(
                codec::decode_stored(&bytes).map_err(|e| snap_err(None, e))?,
            )),
            None => Ok(None),
        }
    }

    /// Replaces the whole state machine with a snapshot's content, atomically on disk.
    fn install(&mut self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        let image = crate::state::decode_image(data).map_err(|e| snap_err(Some(meta), e))?;
        let state = State::from_image(image);
        let sm = cf(&self.db, CF_SM);
        let mut batch = WriteBatch::default();
        put_all(&self.db, &mut batch, &state)?;
        let applied = (meta.last_log_id, meta.last_membership.clone());
        batch.put_cf(sm, KEY_APPLIED, codec::encode(&applied).map_err(sm_err)?);
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.to_vec(),
        };
        batch.put_cf(
            cf(&self.db, CF_SNAPSHOT),
            KEY_SNAPSHOT,
            codec::encode(&stored).map_err(sm_err)?,
        );
        self.db.write_opt(batch, &sync_write()).map_err(sm_err)?;
        self.state = state;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.publish();
        Ok(())
    }
}

impl StateMachineStore {
    /// Applies `entries` and persists what they changed in one write batch.
    fn apply_now(&mut self, entries: Vec<Entry>) -> Result<Vec<Response>, StorageError> {
        let mut replies = Vec::new();
        let mut changes = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            self.last_applied = Some(entry.log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => Response::none(index),
                EntryPayload::Normal(cmd) => match self.state.apply(index, &cmd, &mut changes) {
                    Ok(applied) => Response::ok(applied),
                    Err(e) => Response::err(e),
                },
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    Response::none(index)
                }
            };
            replies.push(reply);
        }
        if replies.is_empty() {
            return Ok(replies);
        }
        let sm = cf(&self.db, CF_SM);
        let mut batch = WriteBatch::default();
        changes.sort();
        changes.dedup();
        let mut config_changed = false;
        if changes.contains(&Change::All) {
            // A restore: rewrite everything as of the end of this batch of entries.
            put_all(&self.db, &mut batch, &self.state)?;
            changes.clear();
        }
        for change in &changes {
            match change {
                // Written below with the revision.
                Change::Cluster | Change::All => config_changed = true,
                Change::Ledger(LedgerChange::Counter(id)) => {
                    match self.state.ledger().counter(id) {
                        Some(c) => {
                            batch.put_cf(sm, counter_key(id)?, codec::encode(c).map_err(sm_err)?)
                        }
                        None => batch.delete_cf(sm, counter_key(id)?),
                    }
                }
                Change::Ledger(LedgerChange::Node(node)) => {
                    if let Some(r) = self.state.ledger().last_sync(*node) {
                        batch.put_cf(sm, sync_key(*node), codec::encode(r).map_err(sm_err)?);
                    }
                }
                Change::Revoked(jti) => match self.state.revoked_token(jti) {
                    Some(r) => {
                        batch.put_cf(sm, revoked_key(jti), codec::encode(r).map_err(sm_err)?)
                    }
                    None => batch.delete_cf(sm, revoked_key(jti)),
                },
                Change::Audit(seq) => match self.state.audit_record(*seq) {
                    Some(r) => batch.put_cf(sm, audit_key(*seq), codec::encode(r).map_err(sm_err)?),
                    None => batch.delete_cf(sm, audit_key(*seq)),
                },
                Change::Resource(kind, id) => match self.state.get(*kind, id) {
                    Some(stored) => batch.put_cf(
                        sm,
                        resource_key(*kind, id),
                        codec::encode(stored).map_err(sm_err)?,
                    ),
                    None => batch.delete_cf(sm, resource_key(*kind, id)),
                },
            }
        }
        if config_changed
            || changes
                .iter()
                .any(|c| matches!(c, Change::Resource(..) | Change::Revoked(_)))
        {
            batch.put_cf(
                sm,
                KEY_META,
                codec::encode(&self.state.meta()).map_err(sm_err)?,
            );
        }
        batch.put_cf(
            sm,
            KEY_APPLIED,
            codec::encode(&(self.last_applied, self.membership.clone())).map_err(sm_err)?,
        );
        // Not fsynced: the log is durable, and a lost suffix is re-applied from it on restart.
        self.db.write(batch).map_err(sm_err)?;
        self.publish();
        Ok(replies)
    }
}

/// Adds to `batch` the rewrite of the whole state: every resource and ledger key removed,
/// then the current ones and the meta written (snapshot install, restore).
fn put_all(db: &DB, batch: &mut WriteBatch, state: &State) -> Result<(), StorageError> {
    let sm = cf(db, CF_SM);
    for prefix in [RESOURCE_PREFIX, LEDGER_PREFIX, REVOKED_PREFIX, AUDIT_PREFIX] {
        let mut end = prefix.to_vec();
        end.push(0xff);
        batch.delete_range_cf(sm, prefix, &end);
    }
    for counter in state.ledger().counters() {
        batch.put_cf(
            sm,
            counter_key(&counter.id)?,
            codec::encode(counter).map_err(sm_err)?,
        );
    }
    for record in state.ledger().to_image().nodes {
        batch.put_cf(
            sm,
            sync_key(record.node),
            codec::encode(&record).map_err(sm_err)?,
        );
    }
    for r in state.revoked() {
        batch.put_cf(sm, revoked_key(&r.jti), codec::encode(r).map_err(sm_err)?);
    }
    for r in state.audit_records() {
        batch.put_cf(sm, audit_key(r.seq), codec::encode(r).map_err(sm_err)?);
    }
    for kind in Kind::ALL {
        for stored in state.list(kind) {
            batch.put_cf(
                sm,
                resource_key(kind, stored.resource.id()),
                codec::encode(stored).map_err(sm_err)?,
            );
        }
    }
    batch.put_cf(sm, KEY_META, codec::encode(&state.meta()).map_err(sm_err)?);
    Ok(())
}

/// Builds a snapshot from a copy of the state taken when openraft asked for a builder.
pub struct SnapshotBuilder {
    db: Arc<DB>,
    image: StateImage,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let data = codec::encode(&self.image).map_err(sm_err)?;
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.seq),
            None => format!("--{}", self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let bytes = codec::encode(&stored).map_err(sm_err)?;
        self.db
            .put_cf_opt(
                cf(&self.db, CF_SNAPSHOT),
                KEY_SNAPSHOT,
                bytes,
                &sync_write(),
            )
            .map_err(sm_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    /// Runs on a blocking thread, not on the async runtime: a batch of quota syncs with
    /// thousands of counters costs milliseconds of map updates, encoding and RocksDB
    /// writes, which would stall every request served by the same worker thread.
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut moved = StateMachineStore {
            db: self.db.clone(),
            state: std::mem::take(&mut self.state),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            config: self.config.clone(),
            snapshot_seq: self.snapshot_seq,
        };
        let (moved, result) = tokio::task::spawn_blocking(move || {
            let r = moved.apply_now(entries);
            (moved, r)
        })
        .await
        // A panic in apply: the state is gone with it, and openraft stops on this error
        // (as it would have on the panic itself).
        .map_err(sm_err)?;
        *self = moved;
        result
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        SnapshotBuilder {
            db: self.db.clone(),
            image: self.state.to_image(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            seq: self.snapshot_seq,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        self.install(meta, snapshot.get_ref())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self.read_snapshot()?.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

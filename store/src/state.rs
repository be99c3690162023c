//! The replicated state and its deterministic apply: pure logic, no I/O, so it is
//! unit-tested without a disk. The RocksDB state machine persists what apply changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use im::{HashMap as PHashMap, OrdMap, OrdSet};

use serde::{Deserialize, Serialize};

use crate::audit::{AuditRecord, RevokedToken};
use crate::command::{Applied, ApplyError, Command, Op};
use crate::model::*;
use crate::quota::{Ledger, LedgerChange, LedgerImage, SyncError};
use crate::validate::validate;

use self::integrity::{check_immutable, is_child_of, refs};

/// A resource with its bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub resource: Resource,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// Log index of the entry that last wrote it.
    pub revision: u64,
}

/// Identity and secrets of the cluster, written once by `InitCluster`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterMeta {
    pub cluster_id: String,
    /// HMAC key for admin tokens. Encrypted at rest by the security work; see docs.
    pub token_secret: Vec<u8>,
    pub created_at_ms: u64,
}

/// What one apply touched, so the storage layer writes exactly those keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Cluster,
    Resource(Kind, String),
    /// Quota bookkeeping: not configuration, so it does not move the revision.
    Ledger(LedgerChange),
    /// Everything: the state was replaced by a restore; storage rewrites all of it.
    All,
    /// A revoked admin token, by token id.
    Revoked(String),
    /// An audit record, by log index: history, so it does not move the revision.
    Audit(u64),
}

/// All replicated configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    cluster: Option<ClusterMeta>,
    /// Log index of the last command that changed something (rejected commands, blank
    /// and membership entries leave it alone), like etcd's store revision.
    revision: u64,
    /// Persistent maps (structural sharing): publishing a clone after every apply and
    /// changing one resource both cost O(log n), however large a table grows.
    tables: BTreeMap<Kind, OrdMap<String, Stored>>,
    /// Derived: API key SHA-256 → the key. Rebuilt on load, kept in step by apply. It
    /// holds the key itself: every authenticated request looks it up, and a second
    /// look-up by id in the (ordered) table cost more than the hash look-up.
    key_hashes: PHashMap<String, Arc<ApiKey>>,
    /// Global quota counters and grants.
    ledger: Ledger,
    /// Revoked admin tokens by token id, and (derived) by the time they are forgotten.
    revoked: OrdMap<String, RevokedToken>,
    revoked_expiry: OrdSet<(u64, String)>,
    /// The admin audit trail by log index, bounded at apply. Boxed: im builds tree nodes
    /// of 64 entries on the stack, too large with records inline (debug-build overflow).
    audit: OrdMap<u64, Arc<AuditRecord>>,
}

/// The serialized form of [`State`] inside snapshots (derived indexes left out).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateImage {
    pub cluster: Option<ClusterMeta>,
    pub revision: u64,
    pub resources: Vec<Stored>,
    pub ledger: LedgerImage,
    /// Added in format version 4, like `audit`.
    pub revoked: Vec<RevokedToken>,
    pub audit: Vec<AuditRecord>,
}

impl State {
    pub fn cluster(&self) -> Option<&ClusterMeta> {
        self.cluster.as_ref()
    }

    pub fn get(&self, kind: Kind, id: &str) -> Option<&Stored> {
        self.tables.get(&kind)?.get(id)
    }

    /// Resources of a kind, ordered by id.
    pub fn list(&self, kind: Kind) -> impl Iterator<Item = &Stored> {
        self.tables.get(&kind).into_iter().flat_map(|t| t.values())
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// The quota policy `id`, if it exists.
    pub fn quota_policy(&self, id: &str) -> Option<&QuotaPolicy> {
        match &self.get(Kind::QuotaPolicy, id)?.resource {
            Resource::QuotaPolicy(q) => Some(q),
            _ => None,
        }
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.tables.get(&kind).map_or(0, |t| t.len())
    }

    /// The API key whose secret hashes to `sha256_hex`.
    pub fn api_key_by_hash(&self, sha256_hex: &str) -> Option<&ApiKey> {
        self.key_hashes.get(sha256_hex).map(|k| &**k)
    }

    /// Applies one command at log index `revision`. On error the configuration did not
    /// change; either way expired revocations and audit records are dropped and, for an
    /// admin write, its audit record is added. The touched keys are appended to `changes`.
    pub fn apply(
        &mut self,
        revision: u64,
        cmd: &Command,
        changes: &mut Vec<Change>,
    ) -> Result<Applied, ApplyError> {
        let tenant = cmd.origin.as_ref().and_then(|_| self.op_tenant(&cmd.op));
        let result = self.apply_command(revision, cmd, changes);
        self.expire(cmd.at_ms, changes);
        if let Some(origin) = &cmd.origin {
            self.record(revision, cmd, origin, tenant, &result, changes);
        }
        result
    }

    fn apply_command(
        &mut self,
        revision: u64,
        cmd: &Command,
        changes: &mut Vec<Change>,
    ) -> Result<Applied, ApplyError> {
        let mut touched = Vec::new();
        if let Op::Restore(image) = &cmd.op {
            self.restore(revision, image)?;
            changes.push(Change::All);
            return Ok(Applied {
                revision,
                changed: Vec::new(),
                quota: None,
            });
        }
        if let Op::QuotaSync(sync) = &cmd.op {
            let mut ledger_changes = Vec::new();
            let tables = &self.tables;
            let lookup = |id: &str| match &tables.get(&Kind::QuotaPolicy)?.get(id)?.resource {
                Resource::QuotaPolicy(q) => Some(q),
                _ => None,
            };
            let reply = self
                .ledger
                .apply_sync(sync, cmd.at_ms, lookup, &mut ledger_changes)
                .map_err(|e| match e {
                    SyncError::Stale { last } => ApplyError::QuotaSync(format!(
                        "serial {} of node {} is older than its last applied serial {last}",
                        sync.serial, sync.node
                    )),
                    SyncError::OldEpoch { last_epoch } => ApplyError::QuotaSync(format!(
                        "epoch {} of node {} is older than its last applied epoch {last_epoch}",
                        sync.epoch, sync.node
                    )),
                    SyncError::Invalid(m) => ApplyError::QuotaSync(m),
                })?;
            changes.extend(ledger_changes.into_iter().map(Change::Ledger));
            return Ok(Applied {
                revision,
                changed: Vec::new(),
                quota: Some(reply),
            });
        }
        if let Op::Batch(_) = &cmd.op {
            // All-or-nothing on a copy; batches are rare (demo data, imports).
            let mut scratch = self.clone();
            scratch.apply_op(revision, cmd.at_ms, &cmd.op, &mut touched)?;
            *self = scratch;
        } else if let Op::Reencrypt(swaps) = &cmd.op {
            let mut scratch = self.clone();
            scratch.reencrypt(revision, cmd.at_ms, swaps, &mut touched)?;
            *self = scratch;
        } else if let Op::RevokeToken { jti, exp } = &cmd.op {
            self.revoke(jti, *exp, cmd, &mut touched)?;
        } else {
            self.apply_op(revision, cmd.at_ms, &cmd.op, &mut touched)?;
        }
        let changed = touched
            .iter()
            .filter_map(|c| match c {
                Change::Resource(k, id) => Some((*k, id.clone())),
                Change::Cluster
                | Change::Ledger(_)
                | Change::All
                | Change::Revoked(_)
                | Change::Audit(_) => None,
            })
            .collect();
        if touched
            .iter()
            .any(|c| !matches!(c, Change::Ledger(_) | Change::Audit(_)))
        {
            self.revision = revision;
        }
        changes.extend(touched);
        Ok(Applied {
            revision,
            changed,
            quota: None,
        })
    }

    fn apply_op(
        &mut self,
        revision: u64,
        at_ms: u64,
        op: &Op,
        touched: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        match op {
            Op::InitCluster {
                cluster_id,
                token_secret,
            } => {
                if self.cluster.is_some() {
                    return Err(ApplyError::AlreadyInitialized);
                }
                self.cluster = Some(ClusterMeta {
                    cluster_id: cluster_id.clone(),
                    token_secret: token_secret.clone(),
                    created_at_ms: at_ms,
                });
                touched.push(Change::Cluster);
            }
            Op::Create(res) => {
                validate(res)?;
                if self.get(res.kind(), res.id()).is_some() {
                    return Err(ApplyError::AlreadyExists {
                        kind: res.kind(),
                        id: res.id().to_string(),
                    });
                }
                self.check_new(res)?;
                self.put(res.clone(), at_ms, revision, at_ms, touched);
            }
            Op::Update(res) => {
                validate(res)?;
                let old = self
                    .get(res.kind(), res.id())
                    .ok_or_else(|| ApplyError::NotFound {
                        kind: res.kind(),
                        id: res.id().to_string(),
                    })?;
                check_immutable(&old.resource, res)?;
                let created = old.created_at_ms;
                let recount = quota_counters_change(&old.resource, res);
                self.check_new(res)?;
                if recount {
                    let mut lc = Vec::new();
                    self.ledger.purge_policy(res.id(), &mut lc);
                    touched.extend(lc.into_iter().map(Change::Ledger));
                }
                self.put(res.clone(), created, revision, at_ms, touched);
            }
            Op::Delete { kind, id } => self.delete(*kind, id, touched)?,
            Op::Batch(ops) => {
                for op in ops {
                    self.apply_op(revision, at_ms, op, touched)?;
                }
            }
            Op::QuotaSync(_) => {
                return Err(ApplyError::QuotaSync(
                    "a quota sync cannot be part of a batch".into(),
                ))
            }
            Op::Restore(_) => {
                return Err(ApplyError::Restore(
                    "a restore cannot be part of a batch".into(),
                ))
            }
            Op::RevokeToken { .. } => {
                return Err(ApplyError::Revocation(
                    "a revocation cannot be part of a batch".into(),
                ))
            }
            Op::Reencrypt(_) => {
                return Err(ApplyError::Reencrypt(
                    "a re-encryption cannot be part of a batch".into(),
                ))
            }
        }
        Ok(())
    }

    fn put(
        &mut self,
        res: Resource,
        created_at_ms: u64,
        revision: u64,
        at_ms: u64,
        touched: &mut Vec<Change>,
    ) {
        let (kind, id) = (res.kind(), res.id().to_string());
        if let Resource::ApiKey(k) = &res {
            self.key_hashes
                .insert(k.sha256.clone(), Arc::new(k.clone()));
        }
        let stored = Stored {
            resource: res,
            created_at_ms,
            updated_at_ms: at_ms,
            revision,
        };
        self.tables
            .entry(kind)
            .or_default()
            .insert(id.clone(), stored);
        touched.push(Change::Resource(kind, id));
    }

    fn delete(
        &mut self,
        kind: Kind,
        id: &str,
        touched: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        if self.get(kind, id).is_none() {
            return Err(ApplyError::NotFound {
                kind,
                id: id.to_string(),
            });
        }
        let mut children = Vec::new();
        let mut used_by = Vec::new();
        for stored in self.tables.values().flat_map(|t| t.values()) {
            let res = &stored.resource;
            if refs(res).iter().any(|r| r.kind == kind && r.id == id) {
                let who = (res.kind(), res.id().to_string());
                if is_child_of(res, kind, id) {
                    children.push(who);
                } else {
                    used_by.push(who);
                }
            }
        }
        if !used_by.is_empty() {
            return Err(ApplyError::InUse {
                kind,
                id: id.to_string(),
                used_by,
            });
        }
        for (k, child) in children.into_iter().chain([(kind, id.to_string())]) {
            self.remove(k, &child);
            if k == Kind::QuotaPolicy {
                let mut lc = Vec::new();
                self.ledger.purge_policy(&child, &mut lc);
                touched.extend(lc.into_iter().map(Change::Ledger));
            }
            touched.push(Change::Resource(k, child));
        }
        Ok(())
    }

    fn remove(&mut self, kind: Kind, id: &str) {
        let removed = self.tables.get_mut(&kind).and_then(|t| t.remove(id));
        if let Some(Stored {
            resource: Resource::ApiKey(k),
            ..
        }) = removed
        {
            self.key_hashes.remove(&k.sha256);
        }
    }

    /// Loads one stored resource or the cluster meta (used when opening the store).
    pub fn load(&mut self, stored: Stored) {
        let mut ignored = Vec::new();
        let (created, rev, at) = (stored.created_at_ms, stored.revision, stored.updated_at_ms);
        self.put(stored.resource, created, rev, at, &mut ignored);
    }

    /// Log index of the last entry that changed the state (0 for none).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The non-resource part of the state, as the storage layer persists it.
    pub fn meta(&self) -> (Option<ClusterMeta>, u64) {
        (self.cluster.clone(), self.revision)
    }

    pub fn set_meta(&mut self, (cluster, revision): (Option<ClusterMeta>, u64)) {
        self.cluster = cluster;
        self.revision = revision;
    }

    pub fn to_image(&self) -> StateImage {
        StateImage {
            cluster: self.cluster.clone(),
            revision: self.revision,
            resources: self
                .tables
                .values()
                .flat_map(|t| t.values().cloned())
                .collect(),
            ledger: self.ledger.to_image(),
            revoked: self.revoked.values().cloned().collect(),
            audit: self.audit.values().map(|r| (**r).clone()).collect(),
        }
    }

    pub fn from_image(image: StateImage) -> State {
        let mut state = State {
            cluster: image.cluster,
            revision: image.revision,
            ..State::default()
        };
        for stored in image.resources {
            state.load(stored);
        }
        state.ledger = Ledger::from_image(image.ledger);
        for r in image.revoked {
            state.load_revoked(r);
        }
        for r in image.audit {
            state.load_audit(r);
        }
        state
    }
}

/// Decodes a snapshot's or backup's state image, of this format version or the last.
pub fn decode_image(bytes: &[u8]) -> Result<StateImage, crate::codec::CodecError> {
    crate::codec::decode_upgrading::<StateImage, crate::legacy::StateImageV3>(bytes)
}

/// Whether an update of a quota policy starts its counting over: counters are kept per
/// scope and window, and a mode change moves the budget between ledger and nodes.
fn quota_counters_change(old: &Resource, new: &Resource) -> bool {
    match (old, new) {
        (Resource::QuotaPolicy(a), Resource::QuotaPolicy(b)) => {
            a.scope != b.scope || a.window != b.window || a.mode != b.mode || a.metric != b.metric
        }
        _ => false,
    }
}

mod admin_log;
mod integrity;
mod reencrypt;
mod restore;
#[cfg(test)]
mod tests;

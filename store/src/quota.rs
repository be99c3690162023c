//! The global quota ledger: per (policy, scope key, window), the units each node has been
//! granted and the units the cluster reported used.
//!
//! Safety rests on one invariant kept by [`Ledger::apply_sync`]: for every counter, the
//! sum of grants never exceeds the policy's limit. A node admits only from units granted
//! to it, so the cluster never admits more than the limit — whatever nodes crash, pause,
//! retry or lose their answers. A lost or duplicated grant can only strand units
//! (under-admission), never create them. Dedup by (node, epoch, serial) keeps retries
//! from stranding units too; epochs only grow per node, so a late sync of a process that
//! has since restarted is refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use im::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};

use crate::model::{QuotaMode, QuotaPolicy};

pub mod window;

/// Old counters dropped per sync command, so a window rollover never turns into one huge
/// apply (and a flood of deletes into one huge write batch).
const GC_PER_SYNC: usize = 256;
/// Upper bound on entries in one sync (asks + returns + usage), against a hostile peer.
pub const MAX_SYNC_ITEMS: usize = 20_000;

/// One counter: a quota policy, the scope values it is kept for, and one window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CounterId {
    pub policy: String,
    /// The scope values, canonical (`api_key=k1,model=gpt-4o`); empty for a policy-wide counter.
    pub key: String,
    pub window_start_ms: u64,
    pub window_end_ms: u64,
}

/// A counter's replicated state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counter {
    /// Shared with the ledger's map key and the change list: cloning it is a count bump,
    /// not two strings. Serialized as the plain id.
    #[serde(with = "shared_id")]
    pub id: Arc<CounterId>,
    /// Units granted to each node (by node id) and not returned.
    pub granted: BTreeMap<u64, u64>,
    /// Units the nodes reported consumed.
    pub used: u64,
    pub updated_at_ms: u64,
}

/// Serde for an `Arc<CounterId>` field, laid out exactly as a plain `CounterId`.
mod shared_id {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::CounterId;

    pub fn serialize<S: Serializer>(id: &Arc<CounterId>, s: S) -> Result<S::Ok, S::Error> {
        CounterId::serialize(id, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<CounterId>, D::Error> {
        CounterId::deserialize(d).map(Arc::new)
    }
}

impl Counter {
    pub fn total_granted(&self) -> u64 {
        self.granted
            .values()
            .fold(0u64, |a, b| a.saturating_add(*b))
    }
}

/// One node's batched quota traffic for a tick: new asks, unused units handed back, and
/// usage since its last report. One Raft entry per node per tick, whatever the key count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaSync {
    pub node: u64,
    /// Random per process start: a restarted node's serials never collide with its past.
    pub epoch: u64,
    /// Increases by one per sync the node sends; a retry repeats the same serial.
    pub serial: u64,
    /// Voters the proposer saw: the divisor of the fair share.
    pub voters: u32,
    pub asks: Vec<Units>,
    pub returns: Vec<Units>,
    pub usage: Vec<Units>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Units {
    pub counter: CounterId,
    pub units: u64,
}

/// The answer to a sync: one grant per ask, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaReply {
    pub grants: Vec<Grant>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub units: u64,
    /// The policy's limit when granted (0 when the policy is gone or not strict).
    pub limit: u64,
    /// Units left ungranted in the counter after this grant.
    pub remaining: u64,
}

/// The last sync applied per node, to answer its retries with the same reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRecord {
    pub node: u64,
    pub epoch: u64,
    pub serial: u64,
    pub reply: QuotaReply,
}

/// What a sync touched, so the storage layer writes exactly those keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LedgerChange {
    Counter(Arc<CounterId>),
    Node(u64),
}

/// Why a sync was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncError {
    /// A serial older than the node's last applied one, in the same epoch: a late retry.
    Stale {
        last: u64,
    },
    /// An epoch older than the node's last applied one: a sync of a process that has
    /// since restarted, delivered late. Its hand-backs would free units the new process
    /// may hold, so it is refused whole.
    OldEpoch {
        last_epoch: u64,
    },
    Invalid(String),
}

/// All counters and the dedup table. Persistent maps: cloned per apply at O(1).
///
/// The published snapshot shares the maps' nodes, so an apply copies every node it
/// touches; keys and values are `Arc`s so such a copy bumps counts instead of cloning
/// strings and grant tables (a usage round touches nearly every node of the map).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    counters: OrdMap<Arc<CounterId>, Arc<Counter>>,
    /// `(expires_at_ms, id)`, so expired windows are found without a scan.
    by_expiry: OrdSet<(u64, Arc<CounterId>)>,
    nodes: OrdMap<u64, SyncRecord>,
}

/// The serialized ledger inside snapshots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerImage {
    pub counters: Vec<Counter>,
    pub nodes: Vec<SyncRecord>,
}

impl Ledger {
    pub fn counter(&self, id: &CounterId) -> Option<&Counter> {
        self.counters.get(id).map(|c| &**c)
    }

    /// All counters, ordered by (policy, key, window).
    pub fn counters(&self) -> impl Iterator<Item = &Counter> {
        self.counters.values().map(|c| &**c)
    }

    pub fn len(&self) -> usize {
        self.counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    pub fn last_sync(&self, node: u64) -> Option<&SyncRecord> {
        self.nodes.get(&node)
    }

    /// Applies one node's sync. `policy` looks up the current quota policy by id.
    ///
    /// Grants `min(asked, ceil(remaining / voters))` per ask, so no counter's grants ever
    /// sum above its limit and one node cannot take a window's whole budget in one ask
    /// while others may need it. A repeat of the last applied (node, epoch, serial) gets
    /// the recorded reply and changes nothing.
    pub fn apply_sync<'p, 's>(
        &mut self,
        sync: &'s QuotaSync,
        at_ms: u64,
        policy: impl Fn(&str) -> Option<&'p QuotaPolicy>,
        changes: &mut Vec<LedgerChange>,
    ) -> Result<QuotaReply, SyncError> {
        if let Some(last) = self.nodes.get(&sync.node) {
            // Epochs only grow: each process of a node picks one above the last recorded.
            if sync.epoch < last.epoch {
                return Err(SyncError::OldEpoch {
                    last_epoch: last.epoch,
                });
            }
            if last.epoch == sync.epoch {
                if last.serial == sync.serial {
                    return Ok(last.reply.clone());
                }
                if sync.serial < last.serial {
                    return Err(SyncError::Stale { last: last.serial });
                }
            }
        }
        let items = sync.asks.len() + sync.returns.len() + sync.usage.len();
        if items > MAX_SYNC_ITEMS {
            return Err(SyncError::Invalid(format!(
                "{items} items in one sync (at most {MAX_SYNC_ITEMS})"
            )));
        }
        if let Some(bad) = sync
            .asks
            .iter()
            .chain(&sync.returns)
            .chain(&sync.usage)
            .find(|u| u.counter.window_end_ms <= u.counter.window_start_ms)
        {
            return Err(SyncError::Invalid(format!(
                "counter {:?}: window ends before it starts",
                bad.counter
            )));
        }
        let voters = u64::from(sync.voters.max(1));
        // A sync's items nearly always share one policy: look it up once per run of them.
        let mut last: Option<(&str, Option<&'p QuotaPolicy>)> = None;
        let mut policy = |id: &'s str| match last {
            Some((name, p)) if name == id => p,
            _ => {
                let p = policy(id);
                last = Some((id, p));
                p
            }
        };
        for r in &sync.returns {
            if let Some(c) = self.counters.get_mut(&r.counter) {
                if c.granted.contains_key(&sync.node) {
                    let c = Arc::make_mut(c);
                    if let Some(g) = c.granted.get_mut(&sync.node) {
                        *g = g.saturating_sub(r.units);
                        if *g == 0 {
                            c.granted.remove(&sync.node);
                        }
                    }
                    c.updated_at_ms = at_ms;
                    changes.push(LedgerChange::Counter(c.id.clone()));
                }
            }
        }
        for u in &sync.usage {
            if u.units == 0 || policy(&u.counter.policy).is_none() {
                continue;
            }
            let (id, ()) = self.update(&u.counter, at_ms, |c| {
                c.used = c.used.saturating_add(u.units);
            });
            changes.push(LedgerChange::Counter(id));
        }
        let mut reply = QuotaReply::default();
        for ask in &sync.asks {
            let limit = match policy(&ask.counter.policy) {
                Some(p) if p.mode == QuotaMode::Strict => p.limit,
                _ => {
                    reply.grants.push(Grant::default());
                    continue;
                }
            };
            let (id, grant) = self.update(&ask.counter, at_ms, |c| {
                let remaining = limit.saturating_sub(c.total_granted());
                let fair = remaining.div_ceil(voters);
                let units = ask.units.min(fair);
                if units > 0 {
                    let g = c.granted.entry(sync.node).or_insert(0);
                    *g = g.saturating_add(units);
                }
                Grant {
                    units,
                    limit,
                    remaining: remaining - units,
                }
            });
            if grant.units > 0 {
                changes.push(LedgerChange::Counter(id));
            }
            reply.grants.push(grant);
        }
        self.gc(at_ms, changes);
        self.nodes.insert(
            sync.node,
            SyncRecord {
                node: sync.node,
                epoch: sync.epoch,
                serial: sync.serial,
                reply: reply.clone(),
            },
        );
        changes.push(LedgerChange::Node(sync.node));
        Ok(reply)
    }

    /// Runs `f` on the counter `id`, created empty if new, stamped `at_ms`. One map
    /// look-up for a counter that exists (the usual case: a usage round touches every
    /// busy counter); returns the counter's shared id for the change list.
    fn update<R>(
        &mut self,
        id: &CounterId,
        at_ms: u64,
        f: impl FnOnce(&mut Counter) -> R,
    ) -> (Arc<CounterId>, R) {
        if let Some(c) = self.counters.get_mut(id) {
            let c = Arc::make_mut(c);
            c.updated_at_ms = at_ms;
            return (c.id.clone(), f(c));
        }
        let id = Arc::new(id.clone());
        let mut c = Counter {
            id: id.clone(),
            granted: BTreeMap::new(),
            used: 0,
            updated_at_ms: at_ms,
        };
        let r = f(&mut c);
        self.by_expiry.insert((expiry(&id), id.clone()));
        self.counters.insert(id.clone(), Arc::new(c));
        (id, r)
    }

    /// Drops up to [`GC_PER_SYNC`] expired counters (see [`expiry`]).
    fn gc(&mut self, at_ms: u64, changes: &mut Vec<LedgerChange>) {
        let expired: Vec<Arc<CounterId>> = self
            .by_expiry
            .iter()
            .take_while(|(expires, _)| *expires < at_ms)
            .take(GC_PER_SYNC)
            .map(|(_, id)| id.clone())
            .collect();
        for id in expired {
            self.remove(&id);
            changes.push(LedgerChange::Counter(id));
        }
    }

    fn remove(&mut self, id: &Arc<CounterId>) {
        if self.counters.remove(&**id).is_some() {
            self.by_expiry.remove(&(expiry(id), id.clone()));
        }
    }

    /// Drops every counter of a policy (deleted, or its scope or window changed).
    pub fn purge_policy(&mut self, policy: &str, changes: &mut Vec<LedgerChange>) {
        let ids: Vec<Arc<CounterId>> = self
            .counters
            .keys()
            .filter(|id| id.policy == policy)
            .cloned()
            .collect();
        for id in ids {
            self.remove(&id);
            changes.push(LedgerChange::Counter(id));
        }
    }

    /// Loads one persisted counter (opening the store).
    pub fn load_counter(&mut self, c: Counter) {
        self.by_expiry.insert((expiry(&c.id), c.id.clone()));
        self.counters.insert(c.id.clone(), Arc::new(c));
    }

    pub fn load_node(&mut self, r: SyncRecord) {
        self.nodes.insert(r.node, r);
    }

    /// The ledger after a restore of `backup` (see docs/backup.md, "Quota counters").
    ///
    /// Safety needs every unit a node holds to be counted as granted. Nodes hold units
    /// of the live ledger, so a live counter is kept whenever its policy survives the
    /// restore with the same counting (`keep_live`); otherwise it is dropped, exactly as a
    /// policy delete or re-scoping drops it, and nodes start fresh buckets. Counters only
    /// the backup has are added for policies the restored state has (`exists`): their
    /// grants are held by no process, which strands units (under-admits), never adds any.
    /// Dedup records stay the live nodes'.
    pub fn restored(
        &self,
        backup: &LedgerImage,
        keep_live: impl Fn(&str) -> bool,
        exists: impl Fn(&str) -> bool,
    ) -> Ledger {
        let mut out = Ledger {
            nodes: self.nodes.clone(),
            ..Ledger::default()
        };
        for c in self.counters.values() {
            if keep_live(&c.id.policy) {
                out.load_counter((**c).clone());
            }
        }
        for c in &backup.counters {
            if exists(&c.id.policy) && !out.counters.contains_key(&*c.id) {
                out.load_counter(c.clone());
            }
        }
        out
    }

    pub fn to_image(&self) -> LedgerImage {
        LedgerImage {
            counters: self.counters.values().map(|c| (**c).clone()).collect(),
            nodes: self.nodes.values().cloned().collect(),
        }
    }

    pub fn from_image(image: LedgerImage) -> Ledger {
        let mut l = Ledger::default();
        for c in image.counters {
            l.load_counter(c);
        }
        for r in image.nodes {
            l.load_node(r);
        }
        l
    }
}

/// How long after its window ended a counter is kept, at least. Expiry is judged by the
/// time a sync carries, which is its node's clock: a node whose clock runs ahead must not
/// make the ledger forget a window the others are still admitting in (found by the
/// chaos suite's clock jump: a node 85 s ahead dropped the current second's counters, and
/// the window was granted again). Clocks further apart than this can still over-admit.
pub const EXPIRY_GRACE_MS: u64 = 10 * 60 * 1000;

/// When a counter is dropped: one window length (and at least [`EXPIRY_GRACE_MS`]) after
/// its window ended, so the previous window stays readable for usage queries. Fixed
/// budgets never expire.
fn expiry(id: &CounterId) -> u64 {
    let len = id.window_end_ms.saturating_sub(id.window_start_ms);
    id.window_end_ms.saturating_add(len.max(EXPIRY_GRACE_MS))
}

#[cfg(test)]
mod tests;

//! The sync loop: once per tick (sooner when a call waits), one Raft entry with all of
//! this node's asks, hand-backs and usage reports; grants go into the buckets.
//!
//! Asks are sized from each bucket's recent rate so a busy bucket is topped up before it
//! runs dry. A write whose outcome is unknown (timeout, leader change) is sent again with
//! the same serial: the ledger answers a repeat with its recorded reply. A leader change
//! does not wait for the timeout: the write is resent to the new leader at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use raftgate_raft::RaftNode;
use raftgate_store::quota::{QuotaReply, QuotaSync, Units};
use raftgate_store::{Command, Op};
use tokio::sync::watch;

use super::{Bucket, Quotas};
use crate::proxy::unix_ms;

/// Sync period when nothing waits.
const TICK: Duration = Duration::from_millis(50);
/// How long one sync write may take before it is retried (same serial).
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// A busy bucket is topped up to this much traffic...
const LEAD_SECS: f64 = 0.5;
/// ...when it holds less than this much.
const LOW_SECS: f64 = 0.2;
/// A bucket unused this long hands its units back (if its window has that long left)...
const IDLE_RETURN_MS: u64 = 3_000;
/// ...or this long, when its window repeats and its counter was less than half granted
/// at the last grant: the units are no loss to other nodes then, and handing them back
/// would make this node's next call on the counter wait for a Raft round trip (many
/// keys each used every few seconds would wait on almost every call).
const IDLE_RETURN_PLENTY_MS: u64 = 60_000;
/// In the last this-many milliseconds of a window of a minute or longer, a bucket in use
/// asks for its next window's units, so the rollover makes no call wait.
const PREFETCH_MS: u64 = 2_000;
/// Usage is reported at least this often (and with every sync that goes anyway).
const USAGE_EVERY_MS: u64 = 1_000;
/// At most this many items per Raft entry; more wait for the next tick.
pub(super) const MAX_ITEMS: usize = 4_096;

pub(super) struct Batch {
    pub(super) sync: QuotaSync,
    /// [`MAX_ITEMS`] cut the pass short: buckets after the cut wait for the next tick
    /// (a usage report then goes on where this one stopped).
    pub(super) truncated: bool,
    /// The bucket of each ask, in order.
    ask_buckets: Vec<Arc<Bucket>>,
}

/// An epoch for this process's syncs above every one this node used before: the
/// ledger refuses syncs of older epochs (late deliveries from a dead process). The
/// wall clock in microseconds orders restarts; the node's last recorded epoch (from its
/// replica) covers a clock that went back, and `floor` a refusal.
fn next_epoch(raft: &RaftNode, floor: u64) -> u64 {
    let recorded = raft
        .config()
        .load()
        .state
        .ledger()
        .last_sync(raft.id())
        .map_or(0, |r| r.epoch.saturating_add(1));
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    now_us.max(recorded).max(floor)
}

impl Quotas {
    /// Runs until `stop` flips. Does nothing on a node-less engine.
    pub async fn run(self: Arc<Quotas>, mut stop: watch::Receiver<bool>) {
        let Some(raft) = self.raft.clone() else {
            return;
        };
        let mut epoch = next_epoch(&raft, 0);
        let mut serial = 0u64;
        let mut pending: Option<Batch> = None;
        let mut last_tick = Instant::now();
        let mut last_usage_ms = 0u64;
        // Usage report rounds: a round that the item cap cut short carries on at the next
        // tick with the buckets it has not reported yet.
        let mut round = 0u64;
        let mut continuing = false;
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
            let now_ms = unix_ms();
            let batch = match pending.take() {
                Some(b) => b,
                None => {
                    let dt = last_tick.elapsed().as_secs_f64();
                    last_tick = Instant::now();
                    let report =
                        continuing || now_ms.saturating_sub(last_usage_ms) >= USAGE_EVERY_MS;
                    if report && !continuing {
                        round += 1;
                    }
                    let b = self.collect(
                        now_ms,
                        dt,
                        report.then_some(round),
                        serial + 1,
                        epoch,
                        raft.id(),
                    );
                    continuing = report && b.truncated;
                    // A report with nothing to say counts too: the next is due in a
                    // second, not at every tick of an idle node.
                    if (report || !b.sync.usage.is_empty()) && !b.truncated {
                        last_usage_ms = now_ms;
                    }
                    if b.sync.asks.is_empty()
                        && b.sync.returns.is_empty()
                        && b.sync.usage.is_empty()
                    {
                        continue;
                    }
                    serial += 1;
                    b
                }
            };
            let cmd = Command::new("quota", Op::QuotaSync(batch.sync.clone()));
            // A write still waiting when leadership moves (typically forwarded to a
            // leader that died, whose address no longer answers) is abandoned and sent
            // again to the new leader at once: waiting out WRITE_TIMEOUT would leave
            // every bucket of this node dry for that long after a failover. The repeat
            // carries the same serial, so the ledger grants it once.
            let leader = raft.current_leader();
            let answer = tokio::select! {
                answer = tokio::time::timeout(WRITE_TIMEOUT, raft.write(cmd)) => answer,
                () = raft.leader_changed_from(leader) => {
                    tracing::debug!("leader changed during a quota sync; resending");
                    pending = Some(batch);
                    continue;
                }
            };
            match answer {
                Ok(Ok(resp)) => match resp.result {
                    Ok(applied) => {
                        self.metrics.sync(true);
                        let reply = applied.quota.unwrap_or_default();
                        self.apply_reply(&batch, &reply, unix_ms());
                    }
                    Err(e) => {
                        // Refused whole (stale or malformed): nothing was granted. A
                        // new epoch, in case ours is older than one the ledger recorded
                        // (a clock stepped back across a restart).
                        self.metrics.sync(false);
                        tracing::warn!(error = %e, "quota sync refused");
                        epoch = next_epoch(&raft, epoch.saturating_add(1));
                        serial = 0;
                        // Waiting calls ask again with the next sync.
                        for b in &batch.ask_buckets {
                            b.granted.notify_waiters();
                        }
                    }
                },
                Ok(Err(e)) => {
                    self.metrics.sync(false);
                    tracing::debug!(error = %e, "quota sync failed; retrying");
                    pending = Some(batch);
                    tokio::time::sleep(TICK).await;
                }
                Err(_) => {
                    self.metrics.sync(false);
                    tracing::debug!("quota sync timed out; retrying");
                    pending = Some(batch);
                }
            }
        }
    }

    /// Builds this tick's sync: asks for buckets that need units, hand-backs from idle
    /// ones, usage, and drops buckets whose window is over (after reporting them).
    pub(super) fn collect(
        &self,
        now_ms: u64,
        dt_secs: f64,
        report_round: Option<u64>,
        serial: u64,
        epoch: u64,
        node: u64,
    ) -> Batch {
        let voters = self.voters();
        let mut sync = QuotaSync {
            node,
            epoch,
            serial,
            voters,
            asks: Vec::new(),
            returns: Vec::new(),
            usage: Vec::new(),
        };
        let mut ask_buckets = Vec::new();
        let mut over = Vec::new();
        let mut items = 0usize;
        let mut balances: std::collections::BTreeMap<String, i64> = Default::default();
        let mut next_windows: Vec<(Arc<Bucket>, u64)> = Vec::new();
        let mut truncated = false;
        for entry in self.buckets.iter() {
            if items >= MAX_ITEMS {
                truncated = true;
                break;
            }
            let b = entry.value();
            let ended = b.id.window_end_ms <= now_ms;
            let want = if ended { 0 } else { b.take_want() };
            // Usage goes with every sync a bucket is in anyway, and once per report round.
            let due = report_round.is_some_and(|r| b.enter_report_round(r));
            if ended || due || want > 0 {
                let used = b.take_unreported();
                if used > 0 {
                    sync.usage.push(Units {
                        counter: b.id.clone(),
                        units: used,
                    });
                    items += 1;
                }
            }
            if ended {
                over.push(entry.key().clone());
                continue;
            }
            // The balance gauges go with the usage reports (once a second): summing
            // them is a map look-up per bucket, and this loop visits every bucket every
            // tick.
            if report_round.is_some() {
                match balances.get_mut(b.policy.id.as_str()) {
                    Some(sum) => *sum += b.balance(),
                    None => {
                        balances.insert(b.policy.id.clone(), b.balance());
                    }
                }
            }
            if !b.strict() {
                continue;
            }
            let rate = b.tick_rate(dt_secs);
            let balance = b.balance();
            let idle_ms = now_ms.saturating_sub(b.last_use_ms());
            let recently_used = idle_ms < IDLE_RETURN_MS;
            let low = (rate * LOW_SECS) as i64;
            let needs = want > 0 || (recently_used && balance <= low && rate > 0.0);
            let target = || {
                ((rate * LEAD_SECS).ceil() as u64)
                    .min(hold_cap(b, voters))
                    .max(first_ask(b, voters))
            };
            if idle_ms < prefetch_idle_ms(b) && prefetches(b, now_ms) {
                next_windows.push((b.clone(), target()));
            }
            if needs && (want > 0 || !b.exhausted(now_ms)) {
                let desired = target().max(want) as i64;
                let units = (desired - balance).max(1) as u64;
                sync.asks.push(Units {
                    counter: b.id.clone(),
                    units,
                });
                ask_buckets.push(b.clone());
                items += 1;
            } else if idle_ms >= idle_return_ms(b)
                && b.id.window_end_ms.saturating_sub(now_ms) > IDLE_RETURN_MS
                && balance > 0
            {
                let back = b.take_all();
                if back > 0 {
                    sync.returns.push(Units {
                        counter: b.id.clone(),
                        units: back,
                    });
                    items += 1;
                }
            }
        }
        for key in over {
            self.buckets.remove(&key);
        }
        // Next windows' buckets, created outside the iteration over the map. Each is
        // asked for once: when it exists already, it had its ask (or calls of its own).
        for (b, target) in next_windows {
            if items >= MAX_ITEMS {
                break;
            }
            let Some(next) = self.next_window_bucket(&b) else {
                continue;
            };
            sync.asks.push(Units {
                counter: next.id.clone(),
                units: target,
            });
            ask_buckets.push(next);
            items += 1;
        }
        for (policy, balance) in balances {
            self.metrics.balance(&policy, balance);
        }
        self.metrics.buckets(self.buckets.len());
        Batch {
            sync,
            ask_buckets,
            truncated,
        }
    }

    fn apply_reply(&self, batch: &Batch, reply: &QuotaReply, now_ms: u64) {
        for (i, b) in batch.ask_buckets.iter().enumerate() {
            let g = reply.grants.get(i).copied().unwrap_or_default();
            if g.units > 0 {
                self.metrics.granted(g.units);
            }
            b.grant(g.units, g.remaining, now_ms);
        }
    }
}

/// How long `b` may sit unused before its units go back to the ledger.
fn idle_return_ms(b: &Bucket) -> u64 {
    let periodic = b.id.window_end_ms != u64::MAX;
    if periodic && b.remaining_hint() >= b.policy.limit / 2 {
        IDLE_RETURN_PLENTY_MS
    } else {
        IDLE_RETURN_MS
    }
}

/// How recently `b` must have been used to ask for its next window before the rollover:
/// in the prefetch period itself, or — for a counter that keeps idle units for long
/// ([`idle_return_ms`]) — within that time: its key is still served by this node, and
/// otherwise each such key's first call after the rollover would wait for a grant (with
/// many keys and few connections, nearly every call of the next seconds).
fn prefetch_idle_ms(b: &Bucket) -> u64 {
    idle_return_ms(b).max(PREFETCH_MS)
}

/// Whether `b`'s counter is in the last [`PREFETCH_MS`] of a window of a minute or
/// longer (a fixed budget has no next window; a one-second window is all rollover).
fn prefetches(b: &Bucket, now_ms: u64) -> bool {
    let len = b.id.window_end_ms.saturating_sub(b.id.window_start_ms);
    b.id.window_end_ms != u64::MAX
        && len >= 60_000
        && b.id.window_end_ms > now_ms
        && b.id.window_end_ms - now_ms <= PREFETCH_MS
}

/// The most a node tops a bucket up to, whatever its rate: units a node holds are lost
/// to the cluster for the window if it crashes or is cut off, so this bounds what one
/// failure can strand to 1/20 of the limit per voter (a busy node refills more often).
fn hold_cap(b: &Bucket, voters: u32) -> u64 {
    (b.policy.limit / (u64::from(voters.max(1)) * 20)).max(1)
}

/// The ask of a bucket with no rate yet: a small slice of the limit, so the first
/// caller's node does not take a share other nodes may need.
fn first_ask(b: &Bucket, voters: u32) -> u64 {
    (b.policy.limit / (u64::from(voters.max(1)) * 32)).max(1)
}

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

use super::{Bucket, Keyed, Quotas};
use crate::proxy::unix_ms;

/// Sync period when nothing waits. A tick visits only the buckets calls flagged (see
/// [`Quotas::collect_flagged`])...
const TICK: Duration = Duration::from_millis(50);
/// ...and every this often, all of them: with 10,000 counters, visiting every bucket at
/// every tick cost 2 % of the proxy's core.
const FULL_PASS: Duration = Duration::from_millis(250);
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
/// A counter's usage goes to the ledger at most this often through the usage queue
/// (and with every ask of its bucket, and at its window's end)...
pub(super) const USAGE_EVERY_MS: u64 = 1_000;
/// ...and a full pass reports at most this many counters from the queue: 2,000 a
/// second. Every item is a Raft write on every node (apply and persist), so usage
/// reports cost the cluster a bounded rate however many counters are busy (10,000 busy
/// keys: each reported every 5 s). Small portions, not one burst: 10,000 items in one
/// go are ~20 ms of apply on every node, a stall the calls served meanwhile feel.
pub(super) const USAGE_PER_PASS: usize = 500;
/// The local balance gauges are summed every this many full passes (about a second).
const GAUGES_EVERY: u64 = 4;
/// At most this many items per Raft entry; more wait for the next tick.
pub(super) const MAX_ITEMS: usize = 4_096;

pub(super) struct Batch {
    pub(super) sync: QuotaSync,
    /// [`MAX_ITEMS`] cut the pass short: buckets after the cut wait for the next tick
    /// (a full pass too).
    pub(super) truncated: bool,
    /// The bucket of each ask, in order.
    ask_buckets: Vec<Arc<Bucket>>,
    /// The bucket of each usage report and of each hand-back, in order.
    usage_buckets: Vec<Arc<Bucket>>,
    return_buckets: Vec<Arc<Bucket>>,
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
        let mut last_full = Instant::now();
        let mut cut_short = false;
        let mut full_passes = 0u64;
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
                    // A full pass cut short by the item cap dequeued flagged buckets
                    // it may not have reached: the next tick is a full pass too.
                    let started = Instant::now();
                    let full = cut_short || last_full.elapsed() >= FULL_PASS;
                    let b = if full {
                        let dt = last_full.elapsed().as_secs_f64();
                        last_full = Instant::now();
                        full_passes += 1;
                        let gauges = full_passes.is_multiple_of(GAUGES_EVERY);
                        self.collect(now_ms, dt, gauges, serial + 1, epoch, raft.id())
                    } else {
                        self.collect_flagged(now_ms, serial + 1, epoch, raft.id())
                    };
                    self.metrics.pass(full, started.elapsed());
                    cut_short = b.truncated;
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
                        self.refused(&batch);
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

    /// Builds a full pass's sync: the usage queue's due counters (up to
    /// [`USAGE_PER_PASS`]), then a visit of every bucket — asks for buckets that need
    /// units, hand-backs from idle ones, next-window asks — and buckets whose window is
    /// over are dropped (after reporting their usage). `gauges`: also set the local
    /// balance gauges.
    pub(super) fn collect(
        &self,
        now_ms: u64,
        dt_secs: f64,
        gauges: bool,
        serial: u64,
        epoch: u64,
        node: u64,
    ) -> Batch {
        // Whatever calls flagged is covered by visiting everything.
        for b in self.take_flagged(usize::MAX) {
            b.dequeue();
        }
        let mut pass = Pass::new(self.voters(), node, epoch, serial);
        for b in self.usage.due(now_ms, USAGE_EVERY_MS, USAGE_PER_PASS) {
            pass.usage(&b);
        }
        let voters = pass.sync.voters;
        let mut over = Vec::new();
        let mut balances: std::collections::BTreeMap<String, i64> = Default::default();
        let mut next_windows: Vec<(Arc<Bucket>, u64)> = Vec::new();
        let mut truncated = false;
        for entry in self.buckets.iter() {
            if pass.items >= MAX_ITEMS {
                truncated = true;
                break;
            }
            let b = &entry.key().0;
            if b.id.window_end_ms <= now_ms {
                pass.usage(b);
                over.push(b.clone());
                continue;
            }
            // Summing the balance gauges is a map look-up per bucket: not every pass.
            if gauges {
                match balances.get_mut(b.policy.id.as_str()) {
                    Some(sum) => *sum += b.balance(),
                    None => {
                        balances.insert(b.policy.id.clone(), b.balance());
                    }
                }
            }
            let rate = if b.strict() {
                b.tick_rate(dt_secs)
            } else {
                0.0
            };
            let idle_ms = now_ms.saturating_sub(b.last_use_ms());
            if b.strict() && idle_ms < prefetch_idle_ms(b) && prefetches(b, now_ms) {
                next_windows.push((b.clone(), target(b, rate, voters)));
            }
            pass.visit(b, rate, now_ms, true);
        }
        for b in over {
            // This very bucket: not one that replaced it meanwhile under the same key.
            self.buckets
                .remove_if(&Keyed(b.clone()), |k, _| Arc::ptr_eq(&k.0, &b));
        }
        // Next windows' buckets, created outside the iteration over the map. Each is
        // asked for once: when it exists already, it had its ask (or calls of its own).
        for (b, target) in next_windows {
            if pass.items >= MAX_ITEMS {
                break;
            }
            if let Some(next) = self.next_window_bucket(&b) {
                pass.ask(&next, target);
            }
        }
        for (policy, balance) in balances {
            self.metrics.balance(&policy, balance);
        }
        self.metrics.usage_queue(self.usage.len());
        self.metrics.buckets(self.buckets.len());
        pass.into_batch(truncated)
    }

    /// Builds a quick pass's sync: only the buckets calls flagged since the last pass
    /// (a call waits for units, or a take went below the bucket's low mark), with the
    /// rates the last full pass measured. Ended windows, hand-backs and next-window asks
    /// wait for the next full pass.
    pub(super) fn collect_flagged(&self, now_ms: u64, serial: u64, epoch: u64, node: u64) -> Batch {
        // A visit adds at most two items (usage and an ask); the rest stay queued.
        let flagged = self.take_flagged(MAX_ITEMS / 2);
        let mut pass = Pass::new(self.voters(), node, epoch, serial);
        for b in &flagged {
            // Dequeued before the visit: a take after it flags the bucket again.
            b.dequeue();
            if b.id.window_end_ms > now_ms {
                pass.visit(b, b.rate(), now_ms, false);
            }
        }
        pass.into_batch(false)
    }

    /// A sync the ledger refused whole changed nothing there: its usage goes back to be
    /// reported again (else the usage API undercounts it for good) and its hand-backs
    /// to their buckets (the ledger still counts them as this node's).
    pub(super) fn refused(&self, batch: &Batch) {
        for (b, u) in batch.usage_buckets.iter().zip(&batch.sync.usage) {
            self.usage.record(b, u.units);
        }
        for (b, u) in batch.return_buckets.iter().zip(&batch.sync.returns) {
            b.put_back(u.units);
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

/// One pass's sync under construction.
struct Pass {
    sync: QuotaSync,
    /// The bucket of each ask, usage report and hand-back, in order.
    ask_buckets: Vec<Arc<Bucket>>,
    usage_buckets: Vec<Arc<Bucket>>,
    return_buckets: Vec<Arc<Bucket>>,
    items: usize,
}

impl Pass {
    fn new(voters: u32, node: u64, epoch: u64, serial: u64) -> Pass {
        Pass {
            sync: QuotaSync {
                node,
                epoch,
                serial,
                voters,
                asks: Vec::new(),
                returns: Vec::new(),
                usage: Vec::new(),
            },
            ask_buckets: Vec::new(),
            usage_buckets: Vec::new(),
            return_buckets: Vec::new(),
            items: 0,
        }
    }

    fn into_batch(self, truncated: bool) -> Batch {
        Batch {
            sync: self.sync,
            ask_buckets: self.ask_buckets,
            usage_buckets: self.usage_buckets,
            return_buckets: self.return_buckets,
            truncated,
        }
    }

    /// Asks for `units` more for `b`.
    fn ask(&mut self, b: &Arc<Bucket>, units: u64) {
        self.sync.asks.push(Units {
            counter: b.id.clone(),
            units,
        });
        self.ask_buckets.push(b.clone());
        self.items += 1;
    }

    /// Adds `b`'s unreported usage, if any.
    fn usage(&mut self, b: &Arc<Bucket>) {
        let used = b.take_unreported();
        if used > 0 {
            self.sync.usage.push(Units {
                counter: b.id.clone(),
                units: used,
            });
            self.usage_buckets.push(b.clone());
            self.items += 1;
        }
    }

    /// One bucket's part of a sync: its usage when calls wait for it (the ask goes
    /// anyway); an ask when calls wait for it or it ran low; else (`full` passes only)
    /// its units back to the ledger when it sat idle. Sets the low mark at which calls
    /// flag it next.
    fn visit(&mut self, b: &Arc<Bucket>, rate: f64, now_ms: u64, full: bool) {
        let want = b.take_want();
        if want > 0 {
            self.usage(b);
        }
        if !b.strict() {
            return;
        }
        let balance = b.balance();
        let idle_ms = now_ms.saturating_sub(b.last_use_ms());
        let recently_used = idle_ms < IDLE_RETURN_MS;
        let low = (rate * LOW_SECS) as i64;
        b.set_low_mark(low);
        let needs = want > 0 || (recently_used && balance <= low && rate > 0.0);
        if needs && (want > 0 || !b.exhausted(now_ms)) {
            let desired = target(b, rate, self.sync.voters).max(want) as i64;
            self.ask(b, (desired - balance).max(1) as u64);
        } else if full
            && idle_ms >= idle_return_ms(b)
            && b.id.window_end_ms.saturating_sub(now_ms) > IDLE_RETURN_MS
            && balance > 0
        {
            let back = b.take_all();
            if back > 0 {
                self.sync.returns.push(Units {
                    counter: b.id.clone(),
                    units: back,
                });
                self.return_buckets.push(b.clone());
                self.items += 1;
            }
        }
    }
}

/// What a bucket tops up to: [`LEAD_SECS`] of its traffic, within its hold cap, and at
/// least its first ask.
fn target(b: &Bucket, rate: f64, voters: u32) -> u64 {
    ((rate * LEAD_SECS).ceil() as u64)
        .min(hold_cap(b, voters))
        .max(first_ask(b, voters))
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

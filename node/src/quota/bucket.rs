//! One counter's local side: the units this node holds for it, taken with atomics on
//! the request path and refilled by the sync loop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::IntCounter;
use raftgate_store::model::{QuotaMode, QuotaPolicy};
use raftgate_store::quota::CounterId;
use tokio::sync::Notify;

/// How long a counter the ledger said is used up is believed so before asking again
/// (units handed back by idle nodes become grantable again).
pub const EXHAUSTED_RECHECK_MS: u64 = 1_000;

pub struct Bucket {
    pub id: CounterId,
    pub policy: Arc<QuotaPolicy>,
    /// Units this node may still admit. Negative after a settle charged more than was
    /// reserved (a debt the next grants pay first).
    balance: AtomicI64,
    /// A take that leaves the balance at or below this flags the bucket for the sync
    /// loop's next tick (set by the sync loop from the bucket's rate).
    low_mark: AtomicI64,
    /// Whether the bucket is in `Quotas::attention` (queued once until visited).
    queued: AtomicBool,
    /// Units taken since the bucket was created (the sync loop derives the rate).
    taken: AtomicU64,
    /// Units used and not yet reported to the ledger.
    unreported: AtomicU64,
    /// Whether the bucket is in the [`UsageQueue`] (queued once until reported).
    usage_queued: AtomicBool,
    /// When the usage queue last reported this bucket (sync loop only; 0: never).
    usage_reported_ms: AtomicU64,
    /// Units that waiting calls need: the next sync asks for at least this much.
    want: AtomicU64,
    /// Ungranted units left in the cluster at the last grant.
    remaining_hint: AtomicU64,
    /// When a grant came back empty because the counter was used up (0: not known so).
    exhausted_at_ms: AtomicU64,
    last_use_ms: AtomicU64,
    /// Woken after every grant for this bucket.
    pub granted: Notify,
    /// Sync-loop-only bookkeeping: `(taken at the last tick, units per second)`.
    rate: Mutex<(u64, f64)>,
    /// This policy's `raftgate_quota_admitted_total` series, resolved once: a label
    /// look-up per call costs more than the rest of the admission.
    pub admitted: IntCounter,
}

impl Bucket {
    pub fn new(
        id: CounterId,
        policy: Arc<QuotaPolicy>,
        voters: u32,
        now_ms: u64,
        admitted: IntCounter,
    ) -> Bucket {
        // Local mode: each node admits its share of the limit, with no Raft at all.
        let start = match policy.mode {
            QuotaMode::Local => policy.limit.div_ceil(u64::from(voters.max(1))),
            QuotaMode::Strict => 0,
        };
        Bucket {
            id,
            balance: AtomicI64::new(clamp_i64(start)),
            low_mark: AtomicI64::new(0),
            queued: AtomicBool::new(false),
            taken: AtomicU64::new(0),
            unreported: AtomicU64::new(0),
            usage_queued: AtomicBool::new(false),
            usage_reported_ms: AtomicU64::new(0),
            want: AtomicU64::new(0),
            remaining_hint: AtomicU64::new(policy.limit),
            exhausted_at_ms: AtomicU64::new(0),
            last_use_ms: AtomicU64::new(now_ms),
            granted: Notify::new(),
            rate: Mutex::new((0, 0.0)),
            policy,
            admitted,
        }
    }

    pub fn strict(&self) -> bool {
        self.policy.mode == QuotaMode::Strict
    }

    /// Takes `units` from the balance if it holds them. Lock-free.
    pub fn try_take(&self, units: u64, now_ms: u64) -> bool {
        let units = clamp_i64(units);
        let ok = self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b >= units).then_some(b - units)
            })
            .is_ok();
        if ok {
            self.taken.fetch_add(units as u64, Ordering::Relaxed);
            self.last_use_ms.fetch_max(now_ms, Ordering::Relaxed);
        }
        ok
    }

    /// Whether the balance is at or below the low mark: the bucket needs topping up.
    pub fn is_low(&self) -> bool {
        self.balance() <= self.low_mark.load(Ordering::Relaxed)
    }

    /// Marks the bucket queued for the sync loop; false when it already was.
    pub fn enqueue(&self) -> bool {
        !self.queued.load(Ordering::Relaxed) && !self.queued.swap(true, Ordering::AcqRel)
    }

    /// Marks the bucket visited: the next low take or waiting call queues it again.
    pub fn dequeue(&self) {
        self.queued.store(false, Ordering::Release);
    }

    /// Puts back units taken for a call that was not admitted after all.
    pub fn put_back(&self, units: u64) {
        self.balance.fetch_add(clamp_i64(units), Ordering::AcqRel);
    }

    /// Records units as used, to be reported to the ledger; true when the caller must
    /// put the bucket in the [`UsageQueue`] (it was not queued).
    #[must_use]
    fn record_use(&self, units: u64) -> bool {
        // SeqCst here and in `UsageQueue::due` (which clears the flag, then reads the
        // usage): either `due` sees these units or this call sees the flag cleared and
        // queues the bucket again — units are never left unqueued until the window ends.
        self.unreported.fetch_add(units, Ordering::SeqCst);
        !self.usage_queued.load(Ordering::SeqCst) && !self.usage_queued.swap(true, Ordering::SeqCst)
    }

    /// Settles a reservation: returns what was not used, or charges what went over
    /// (the balance may go below zero). True as for [`Bucket::record_use`].
    #[must_use]
    fn settle(&self, reserved: u64, used: u64) -> bool {
        self.balance
            .fetch_add(clamp_i64(reserved) - clamp_i64(used), Ordering::AcqRel);
        self.record_use(used)
    }

    pub fn balance(&self) -> i64 {
        self.balance.load(Ordering::Acquire)
    }

    /// What the `RateLimit-Remaining` header says: what the cluster had left at the last
    /// grant plus what this node holds. Other nodes' balances count as used.
    pub fn remaining_estimate(&self, limit: u64) -> u64 {
        let held = self.balance().max(0) as u64;
        let hint = if self.strict() {
            self.remaining_hint()
        } else {
            0
        };
        hint.saturating_add(held).min(limit)
    }

    /// Ungranted units the cluster had for this counter at the last grant.
    pub fn remaining_hint(&self) -> u64 {
        self.remaining_hint.load(Ordering::Relaxed)
    }

    pub fn exhausted(&self, now_ms: u64) -> bool {
        let at = self.exhausted_at_ms.load(Ordering::Acquire);
        at != 0 && now_ms.saturating_sub(at) < EXHAUSTED_RECHECK_MS
    }

    /// A call waits for `units`: the bucket is in use (never handed back meanwhile).
    pub fn add_want(&self, units: u64, now_ms: u64) {
        self.last_use_ms.fetch_max(now_ms, Ordering::Relaxed);
        self.want.fetch_add(units, Ordering::AcqRel);
    }

    pub fn drop_want(&self, units: u64) {
        let _ = self
            .want
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(w.saturating_sub(units))
            });
    }

    // ---- the sync loop's side ----

    pub fn take_want(&self) -> u64 {
        self.want.swap(0, Ordering::AcqRel)
    }

    pub fn take_unreported(&self) -> u64 {
        self.unreported.swap(0, Ordering::AcqRel)
    }

    /// Whether the usage queue may report this bucket at `now_ms`: its last report
    /// through the queue is at least `every_ms` old.
    fn usage_due(&self, now_ms: u64, every_ms: u64) -> bool {
        now_ms.saturating_sub(self.usage_reported_ms.load(Ordering::Relaxed)) >= every_ms
    }

    pub fn last_use_ms(&self) -> u64 {
        self.last_use_ms.load(Ordering::Relaxed)
    }

    /// Empties a positive balance (to hand it back); nothing when there is none.
    pub fn take_all(&self) -> u64 {
        match self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b > 0).then_some(0)
            }) {
            Ok(b) => b as u64,
            Err(_) => 0,
        }
    }

    /// Adds a grant and wakes the calls waiting for one.
    pub fn grant(&self, units: u64, remaining: u64, now_ms: u64) {
        // A fresh grant counts as use: it was asked for by calls about to take it, and
        // must not look idle (and be handed back) before they run.
        if units > 0 {
            self.last_use_ms.fetch_max(now_ms, Ordering::Relaxed);
        }
        self.balance.fetch_add(clamp_i64(units), Ordering::AcqRel);
        self.remaining_hint.store(remaining, Ordering::Relaxed);
        let used_up = units == 0 && remaining == 0;
        self.exhausted_at_ms
            .store(if used_up { now_ms.max(1) } else { 0 }, Ordering::Release);
        self.granted.notify_waiters();
    }

    pub fn set_low_mark(&self, units: i64) {
        self.low_mark.store(units, Ordering::Relaxed);
    }

    /// The rate [`Bucket::tick_rate`] last measured.
    pub fn rate(&self) -> f64 {
        self.rate.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// Units per second taken lately (an exponential moving average over full passes).
    pub fn tick_rate(&self, dt_secs: f64) -> f64 {
        let taken = self.taken.load(Ordering::Relaxed);
        let mut r = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        let delta = taken.saturating_sub(r.0) as f64;
        r.0 = taken;
        if dt_secs > 0.0 {
            r.1 = 0.6 * r.1 + 0.4 * (delta / dt_secs);
        }
        r.1
    }
}

/// The buckets with usage to report, in the order they were first used since their
/// last report. The sync loop reports from the front at a bounded rate, so the usage of
/// 10,000 busy counters goes to the ledger a few hundred at a time, four times a second,
/// instead of all at once in one burst of Raft entries.
#[derive(Default)]
pub(super) struct UsageQueue(Mutex<VecDeque<Arc<Bucket>>>);

impl UsageQueue {
    /// Records `units` as used by `b`'s counter.
    pub(super) fn record(&self, b: &Arc<Bucket>, units: u64) {
        if b.record_use(units) {
            self.push(b);
        }
    }

    /// [`Bucket::settle`]s a reservation of `b`.
    pub(super) fn settle(&self, b: &Arc<Bucket>, reserved: u64, used: u64) {
        if b.settle(reserved, used) {
            self.push(b);
        }
    }

    fn push(&self, b: &Arc<Bucket>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(b.clone());
    }

    /// Takes buckets from the front while the front one was last reported at least
    /// `every_ms` before `now_ms`, until `max` of them have usage to report; marks them
    /// reported at `now_ms` (the caller takes their usage). A bucket used again after
    /// this queues again. Buckets whose usage went with an ask or a window's end
    /// meanwhile leave the queue without counting.
    pub(super) fn due(&self, now_ms: u64, every_ms: u64, max: usize) -> Vec<Arc<Bucket>> {
        let mut out = Vec::new();
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        while out.len() < max {
            let Some(b) = q.front() else { break };
            if !b.usage_due(now_ms, every_ms) {
                break;
            }
            let Some(b) = q.pop_front() else { break };
            b.usage_queued.store(false, Ordering::SeqCst);
            if b.unreported.load(Ordering::SeqCst) > 0 {
                b.usage_reported_ms.store(now_ms, Ordering::Relaxed);
                out.push(b);
            }
        }
        out
    }

    pub(super) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftgate_store::model::{QuotaMetric, QuotaScope, QuotaWindow};

    fn bucket(mode: QuotaMode, limit: u64) -> Bucket {
        let policy = QuotaPolicy {
            id: "q".into(),
            tenant: None,
            scope: vec![QuotaScope::Route],
            metric: QuotaMetric::Requests,
            window: QuotaWindow::Minute,
            limit,
            mode,
            fail_open: false,
            hard: false,
        };
        let id = CounterId {
            policy: "q".into(),
            key: String::new(),
            window_start_ms: 0,
            window_end_ms: 60_000,
        };
        let admitted = IntCounter::new("admitted", "test").unwrap();
        Bucket::new(id, Arc::new(policy), 3, 0, admitted)
    }

    #[test]
    fn takes_only_what_is_held_even_concurrently() {
        let b = Arc::new(bucket(QuotaMode::Strict, 1_000));
        assert!(!b.try_take(1, 1), "a strict bucket starts empty");
        b.grant(500, 100, 1);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..1_000).filter(|_| b.try_take(1, 2)).count())
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, 500);
        assert_eq!(b.balance(), 0);
    }

    #[test]
    fn local_buckets_start_with_their_share_and_settles_can_owe() {
        let b = bucket(QuotaMode::Local, 10);
        assert_eq!(b.balance(), 4, "ceil(10 / 3)");
        let s = Arc::new(bucket(QuotaMode::Strict, 100));
        let usage = UsageQueue::default();
        s.grant(10, 50, 1);
        assert!(s.try_take(8, 2));
        usage.settle(&s, 8, 12); // 4 more than reserved
        assert_eq!(s.balance(), -2);
        assert!(!s.try_take(1, 3), "a debt blocks admission until refilled");
        assert_eq!(s.take_unreported(), 12);
        assert_eq!(s.take_all(), 0, "nothing to hand back while in debt");
    }

    #[test]
    fn an_empty_grant_of_a_used_up_counter_marks_it_exhausted_for_a_while() {
        let b = bucket(QuotaMode::Strict, 100);
        b.grant(0, 0, 5_000);
        assert!(b.exhausted(5_500));
        assert!(!b.exhausted(5_000 + EXHAUSTED_RECHECK_MS));
        b.grant(3, 0, 7_000);
        assert!(!b.exhausted(7_000));
        assert_eq!(b.remaining_estimate(100), 3);
    }
}

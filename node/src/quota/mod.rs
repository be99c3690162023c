//! Global quota enforcement on this node (see "Global quotas" in docs/architecture.md).
//!
//! A call takes units from a local [`Bucket`] with atomics; only when a bucket runs dry
//! does the call wait, for the next grant. The sync loop ([`sync`]) tops buckets up
//! before they run dry, hands back units idle buckets hold, and reports usage — all of a
//! node's quota traffic for one tick in one Raft entry. The ledger in the replicated
//! state never grants more than a limit, so the cluster never admits more than it.

pub mod bucket;
mod metrics;
pub mod scope;
mod sync;

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use raftgate_raft::RaftNode;
use raftgate_store::model::{QuotaMode, QuotaPolicy, QuotaWindow};
use raftgate_store::quota::{window, CounterId};
use tokio::sync::Notify;

pub use bucket::Bucket;
use bucket::UsageQueue;
pub use metrics::QuotaMetrics;
pub use scope::CallScope;

/// How long a call waits for a grant before it is refused (or admitted, `fail_open`).
pub const GRANT_WAIT: Duration = Duration::from_millis(1_500);

/// A bucket as its own key in [`Quotas::buckets`]: `(policy, key, window start)` read
/// from its counter id. A slot is one pointer, so 10,000 buckets' slots take 80 KB and
/// stay in the core's cache; with the key inline a slot was 64 bytes (640 KB), and the
/// look-up's slot load was the admission's costliest instruction at 10,000 keys
/// (`node/examples/quota_admit.rs`).
#[derive(Clone)]
struct Keyed(Arc<Bucket>);

/// `(policy, key, window start)` of a bucket, held ([`Keyed`]) or borrowed from the call:
/// the map hashes and compares both alike (the `Borrow` look-up idiom), so a call finds
/// its bucket without allocating the key.
trait KeyView {
    fn parts(&self) -> (&str, &str, u64);
}

impl KeyView for Keyed {
    fn parts(&self) -> (&str, &str, u64) {
        let id = &self.0.id;
        (&id.policy, &id.key, id.window_start_ms)
    }
}

impl KeyView for (&str, &str, u64) {
    fn parts(&self) -> (&str, &str, u64) {
        *self
    }
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyView + '_ {}

impl Hash for Keyed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn KeyView).hash(state);
    }
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for Keyed {}

impl<'a> Borrow<dyn KeyView + 'a> for Keyed {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

/// This node's side of every quota.
pub struct Quotas {
    raft: Option<RaftNode>,
    /// Hashed with foldhash, seeded per process (keys cannot be picked to collide):
    /// with one key, SipHash cost as much as the rest of the look-up
    /// (`node/examples/quota_admit.rs`).
    buckets: DashMap<Keyed, (), foldhash::fast::RandomState>,
    /// Wakes the sync loop early: a call is waiting for a grant.
    wake: Notify,
    /// Buckets calls flagged for the sync loop's next tick (each queued once).
    attention: Mutex<Vec<Arc<Bucket>>>,
    /// Buckets with usage not reported yet (shared with every [`Permit`]).
    usage: Arc<UsageQueue>,
    pub metrics: QuotaMetrics,
}

/// The `RateLimit-*` values of a limited call: the most constraining of its quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the window resets; none for a fixed budget.
    pub reset_secs: Option<u64>,
}

/// One quota a call must fit: the policy, the counter key (from [`CallScope::key`]) and
/// the units to take — 1 for a request, an estimate for tokens or cost.
#[derive(Debug, Clone)]
pub struct Check {
    pub policy: Arc<QuotaPolicy>,
    pub key: String,
    pub units: u64,
}

static RATELIMIT_LIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: http::HeaderName = http::HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: http::HeaderName = http::HeaderName::from_static("ratelimit-reset");

impl RateHeaders {
    /// Sets `RateLimit-Limit`, `-Remaining` and (for timed windows) `-Reset`: the REST
    /// data plane and the LLM API answer them alike.
    pub fn write(&self, out: &mut http::HeaderMap) {
        out.insert(RATELIMIT_LIMIT.clone(), http::HeaderValue::from(self.limit));
        out.insert(
            RATELIMIT_REMAINING.clone(),
            http::HeaderValue::from(self.remaining),
        );
        if let Some(reset) = self.reset_secs {
            out.insert(RATELIMIT_RESET.clone(), http::HeaderValue::from(reset));
        }
    }
}

/// Units taken for an admitted call, one entry per quota.
pub struct Permit {
    taken: Vec<(Arc<Bucket>, u64)>,
    usage: Arc<UsageQueue>,
    pub headers: Option<RateHeaders>,
}

impl Permit {
    /// Counts the units as used: a request quota is charged once the call is admitted.
    pub fn commit(self) {
        for (b, units) in &self.taken {
            self.usage.record(b, *units);
        }
    }

    /// Settles token or cost quotas against what the call really used (`used` gives the
    /// units for each policy's metric): returns what was reserved and not used, or
    /// charges what went over.
    pub fn settle(self, used: impl Fn(&QuotaPolicy) -> u64) {
        for (b, reserved) in &self.taken {
            self.usage.settle(b, *reserved, used(&b.policy));
        }
    }

    /// The smallest reservation among the quotas: a `hard` policy cuts a stream off here.
    pub fn hard_budget(&self) -> Option<u64> {
        self.taken
            .iter()
            .filter(|(b, _)| b.policy.hard)
            .map(|(_, r)| *r)
            .min()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The limit is reached for this window.
    Exhausted {
        policy: String,
        limit: u64,
        window: QuotaWindow,
        headers: RateHeaders,
    },
    /// No units held and none could be granted in time (no leader reachable).
    Unavailable { policy: String },
}

impl Quotas {
    /// `raft: None` gives a node-less engine for unit tests: strict quotas never get grants.
    pub fn new(raft: Option<RaftNode>, registry: &prometheus::Registry) -> Arc<Quotas> {
        Arc::new(Quotas {
            raft,
            buckets: DashMap::default(),
            wake: Notify::new(),
            attention: Mutex::new(Vec::new()),
            usage: Arc::default(),
            metrics: QuotaMetrics::new(registry),
        })
    }

    fn voters(&self) -> u32 {
        self.raft.as_ref().map_or(1, |r| {
            let n = r
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .count();
            n.max(1) as u32
        })
    }

    /// The bucket of `policy`'s counter `key` for the window holding `now_ms`. Allocates
    /// only to create one.
    fn bucket(&self, policy: &Arc<QuotaPolicy>, key: &str, now_ms: u64) -> Arc<Bucket> {
        let (start, end) = window::bounds(policy.window, now_ms);
        let view: (&str, &str, u64) = (&policy.id, key, start);
        if let Some(b) = self.buckets.get(&view as &dyn KeyView) {
            if same_counting(&b.key().0.policy, policy) {
                return b.key().0.clone();
            }
        }
        let id = CounterId {
            policy: policy.id.clone(),
            key: key.to_string(),
            window_start_ms: start,
            window_end_ms: end,
        };
        let admitted = self.metrics.admitted(&policy.id);
        let fresh = Arc::new(Bucket::new(
            id,
            policy.clone(),
            self.voters(),
            now_ms,
            admitted,
        ));
        match self.buckets.entry(Keyed(fresh.clone())) {
            // Another call created it meanwhile: `fresh` is dropped unused.
            Entry::Occupied(e) if same_counting(&e.key().0.policy, policy) => e.key().0.clone(),
            // Made for a policy that counted differently: replaced, key and all (the old
            // bucket's unreported usage still goes out through the usage queue).
            Entry::Occupied(e) => {
                e.replace_entry(());
                fresh
            }
            Entry::Vacant(e) => {
                e.insert(());
                fresh
            }
        }
    }

    /// The bucket of the window after `b`'s, created now for a prefetch; `None` when it
    /// exists already or `b`'s window has no successor.
    fn next_window_bucket(&self, b: &Bucket) -> Option<Arc<Bucket>> {
        let (start, end) = window::bounds(b.policy.window, b.id.window_end_ms);
        if start != b.id.window_end_ms || end <= start {
            return None;
        }
        let view: (&str, &str, u64) = (&b.policy.id, &b.id.key, start);
        if self.buckets.contains_key(&view as &dyn KeyView) {
            return None;
        }
        // Created as of its window's start: in use from its first instant, so never
        // idle (nor handed back) before it begins.
        Some(self.bucket(&b.policy, &b.id.key, start))
    }

    /// Takes each check's units from its quota, or nothing at all.
    pub async fn admit(&self, checks: &[Check], now_ms: u64) -> Result<Permit, Rejection> {
        let mut permit = Permit {
            taken: Vec::with_capacity(checks.len()),
            usage: self.usage.clone(),
            headers: None,
        };
        // Started at the call's first wait: a call its buckets admit at once reads no
        // clock beyond `now_ms`.
        let mut clock = None;
        for Check { policy, key, units } in checks {
            let units = *units;
            let mut now_ms = clock.as_ref().map_or(now_ms, CallClock::now_ms);
            let mut b = self.bucket(policy, key, now_ms);
            let mut taken = self.acquire(&b, units, now_ms, &mut clock).await;
            // A call that waited past its window's end moves to the next window (the old
            // window's bucket is gone with it, and no grant for it will come).
            while matches!(taken, Err(Taken::WindowEnded)) {
                now_ms = clock.as_ref().map_or(now_ms, CallClock::now_ms);
                b = self.bucket(policy, key, now_ms);
                taken = self.acquire(&b, units, now_ms, &mut clock).await;
            }
            match taken {
                Ok(()) => {
                    b.admitted.inc();
                    permit.taken.push((b.clone(), units));
                }
                Err(Taken::Exhausted) => {
                    self.metrics.rejected(&policy.id, "exhausted");
                    for (b, u) in permit.taken.drain(..) {
                        b.put_back(u);
                    }
                    return Err(Rejection::Exhausted {
                        policy: policy.id.clone(),
                        limit: policy.limit,
                        window: policy.window,
                        headers: headers_of(&b, policy, now_ms),
                    });
                }
                Err(Taken::Unavailable | Taken::WindowEnded) if policy.fail_open => {
                    // Admitted without a lease: counted as used, never as granted.
                    self.metrics.rejected(&policy.id, "fail_open");
                    self.usage.record(&b, units);
                }
                Err(Taken::Unavailable | Taken::WindowEnded) => {
                    self.metrics.rejected(&policy.id, "unavailable");
                    for (b, u) in permit.taken.drain(..) {
                        b.put_back(u);
                    }
                    return Err(Rejection::Unavailable {
                        policy: policy.id.clone(),
                    });
                }
            }
            let h = headers_of(&b, policy, now_ms);
            if permit.headers.is_none_or(|p| h.remaining < p.remaining) {
                permit.headers = Some(h);
            }
        }
        Ok(permit)
    }

    /// Takes `units` from `b` at `now_ms`, waiting (until the call's deadline) for a grant
    /// when it holds too few; `clock` is the call's, started here at its first wait.
    /// [`Taken::WindowEnded`] when `b`'s window ends first: the caller moves on to the
    /// next window's bucket.
    async fn acquire(
        &self,
        b: &Arc<Bucket>,
        units: u64,
        now_ms: u64,
        clock: &mut Option<CallClock>,
    ) -> Result<(), Taken> {
        if self.take(b, units, now_ms) {
            return Ok(());
        }
        if !b.strict() || units > b.policy.limit {
            return Err(Taken::Exhausted);
        }
        let clock = clock.get_or_insert_with(|| CallClock::new(now_ms));
        let mut waiting_since = None;
        let taken = self
            .wait_for_grant(b, units, clock, &mut waiting_since)
            .await;
        if let Some(since) = waiting_since {
            self.metrics.waited(&b.policy.id, since.elapsed());
        }
        taken
    }

    /// [`Self::acquire`]'s slow path: `b` held too few units for the call. Sets
    /// `waiting_since` when the call first waits for a grant (a refusal the ledger
    /// decides at once is no wait).
    async fn wait_for_grant(
        &self,
        b: &Arc<Bucket>,
        units: u64,
        clock: &CallClock,
        waiting_since: &mut Option<tokio::time::Instant>,
    ) -> Result<(), Taken> {
        let deadline = clock.deadline;
        loop {
            let now_ms = clock.now_ms();
            if now_ms >= b.id.window_end_ms {
                return Err(Taken::WindowEnded);
            }
            if b.exhausted(crate::proxy::unix_ms()) {
                return Err(Taken::Exhausted);
            }
            let window_end = tokio::time::Instant::now()
                + Duration::from_millis(b.id.window_end_ms.saturating_sub(now_ms));
            let granted = b.granted.notified();
            tokio::pin!(granted);
            granted.as_mut().enable();
            if self.take(b, units, now_ms) {
                return Ok(());
            }
            b.add_want(units, now_ms);
            self.flag(b);
            self.wake.notify_one();
            waiting_since.get_or_insert_with(tokio::time::Instant::now);
            if tokio::time::timeout_at(deadline.min(window_end), granted)
                .await
                .is_err()
            {
                b.drop_want(units);
                let now_ms = clock.now_ms();
                return if self.take(b, units, now_ms) {
                    Ok(())
                } else if now_ms >= b.id.window_end_ms && tokio::time::Instant::now() < deadline {
                    Err(Taken::WindowEnded)
                } else {
                    Err(Taken::Unavailable)
                };
            }
            if self.take(b, units, clock.now_ms()) {
                return Ok(());
            }
        }
    }

    /// [`Bucket::try_take`], flagging a strict bucket for the sync loop when the take
    /// left it at or below its low mark (it needs topping up).
    fn take(&self, b: &Arc<Bucket>, units: u64, now_ms: u64) -> bool {
        let ok = b.try_take(units, now_ms);
        if ok && b.strict() && b.is_low() {
            self.flag(b);
        }
        ok
    }

    /// Queues `b` for the sync loop's next tick, unless it is queued already.
    fn flag(&self, b: &Arc<Bucket>) {
        if b.enqueue() {
            self.attention
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(b.clone());
        }
    }

    /// Takes up to `max` flagged buckets (still marked queued: the caller dequeues).
    fn take_flagged(&self, max: usize) -> Vec<Arc<Bucket>> {
        let mut q = self.attention.lock().unwrap_or_else(|e| e.into_inner());
        let n = q.len().min(max);
        q.drain(..n).collect()
    }

    /// Buckets held now (for metrics and tests).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }
}

/// One call's view of time: the wall-clock instant it was admitted at, advanced by the
/// monotonic time it has waited since, and the end of its wait for grants.
struct CallClock {
    start_ms: u64,
    started: tokio::time::Instant,
    deadline: tokio::time::Instant,
}

impl CallClock {
    fn new(start_ms: u64) -> CallClock {
        let started = tokio::time::Instant::now();
        CallClock {
            start_ms,
            started,
            deadline: started + GRANT_WAIT,
        }
    }

    fn now_ms(&self) -> u64 {
        self.start_ms + self.started.elapsed().as_millis() as u64
    }
}

enum Taken {
    Exhausted,
    Unavailable,
    /// The bucket's window ended while the call waited.
    WindowEnded,
}

/// Header values from the current policy (its limit may be newer than the bucket's).
fn headers_of(b: &Bucket, policy: &QuotaPolicy, now_ms: u64) -> RateHeaders {
    RateHeaders {
        limit: policy.limit,
        remaining: b.remaining_estimate(policy.limit),
        reset_secs: (policy.window != QuotaWindow::Fixed)
            .then(|| b.id.window_end_ms.saturating_sub(now_ms).div_ceil(1_000)),
    }
}

/// Whether a bucket made for `old` still counts right for `new` (a limit change alone
/// keeps the bucket; the ledger applies the new limit to later grants).
fn same_counting(old: &QuotaPolicy, new: &QuotaPolicy) -> bool {
    old.scope == new.scope
        && old.window == new.window
        && old.metric == new.metric
        && old.mode == new.mode
        && (old.mode == QuotaMode::Strict || old.limit == new.limit)
        && old.hard == new.hard
}

#[cfg(test)]
mod tests;

//! Quota metrics. Labels are quota policy ids (bounded by the config), never counter
//! keys, so 10,000 API keys under one policy are one series.

use std::time::Duration;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

#[derive(Clone)]
pub struct QuotaMetrics {
    admitted: IntCounterVec,
    rejected: IntCounterVec,
    syncs: IntCounterVec,
    granted: IntCounter,
    balance: IntGaugeVec,
    buckets: IntGauge,
    usage_queue: IntGauge,
    waits: HistogramVec,
    passes: HistogramVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    r.unwrap_or_else(|e| unreachable!("static metric definitions are valid: {e}"))
}

impl QuotaMetrics {
    pub fn new(registry: &Registry) -> QuotaMetrics {
        let m = QuotaMetrics {
            admitted: must(IntCounterVec::new(
                Opts::new("raftgate_quota_admitted_total", "Calls admitted by a quota"),
                &["policy"],
            )),
            rejected: must(IntCounterVec::new(
                Opts::new(
                    "raftgate_quota_rejected_total",
                    "Calls a quota refused (exhausted, unavailable) or let through without a lease (fail_open)",
                ),
                &["policy", "reason"],
            )),
            syncs: must(IntCounterVec::new(
                Opts::new(
                    "raftgate_quota_sync_writes_total",
                    "Raft writes this node made for quotas (grants, hand-backs, usage)",
                ),
                &["result"],
            )),
            granted: must(IntCounter::new(
                "raftgate_quota_granted_units_total",
                "Units the ledger granted to this node",
            )),
            balance: must(IntGaugeVec::new(
                Opts::new(
                    "raftgate_quota_local_balance",
                    "Units this node holds per policy, over all its counters",
                ),
                &["policy"],
            )),
            buckets: must(IntGauge::new(
                "raftgate_quota_buckets",
                "Counters this node holds a local balance for",
            )),
            usage_queue: must(IntGauge::new(
                "raftgate_quota_usage_queue",
                "Counters with usage this node has not reported to the ledger yet",
            )),
            // Tells a slow quota route's cause apart: calls that waited for a grant (a
            // Raft round trip) show here; stalls elsewhere do not.
            waits: must(HistogramVec::new(
                HistogramOpts::new(
                    "raftgate_quota_wait_seconds",
                    "Time calls waited for a grant because the local balance was short",
                )
                .buckets(vec![
                    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
                &["policy"],
            )),
            // The sync loop builds each sync on the runtime thread that also serves
            // calls: a long pass (thousands of buckets) is a stall of that thread.
            passes: must(HistogramVec::new(
                HistogramOpts::new(
                    "raftgate_quota_pass_seconds",
                    "Time the sync loop took to build one sync: pass=\"full\" visits every bucket, \"flagged\" only those calls flagged",
                )
                .buckets(vec![
                    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
                    0.05,
                ]),
                &["pass"],
            )),
        };
        for c in [
            Box::new(m.admitted.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.rejected.clone()),
            Box::new(m.syncs.clone()),
            Box::new(m.granted.clone()),
            Box::new(m.balance.clone()),
            Box::new(m.buckets.clone()),
            Box::new(m.usage_queue.clone()),
            Box::new(m.waits.clone()),
            Box::new(m.passes.clone()),
        ] {
            // A second engine on the same registry (tests) keeps the first registration.
            let _ = registry.register(c);
        }
        m
    }

    /// `policy`'s admissions counter, for a bucket to keep (see `Bucket::admitted`).
    pub fn admitted(&self, policy: &str) -> IntCounter {
        self.admitted.with_label_values(&[policy])
    }

    pub fn rejected(&self, policy: &str, reason: &str) {
        self.rejected.with_label_values(&[policy, reason]).inc();
    }

    pub fn sync(&self, ok: bool) {
        self.syncs
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }

    pub fn granted(&self, units: u64) {
        self.granted.inc_by(units);
    }

    pub fn balance(&self, policy: &str, units: i64) {
        self.balance.with_label_values(&[policy]).set(units);
    }

    pub fn buckets(&self, n: usize) {
        self.buckets.set(n as i64);
    }

    pub fn usage_queue(&self, n: usize) {
        self.usage_queue.set(n as i64);
    }

    /// A call of `policy` waited `d` for a grant (whatever came of it).
    pub fn waited(&self, policy: &str, d: Duration) {
        self.waits
            .with_label_values(&[policy])
            .observe(d.as_secs_f64());
    }

    /// The sync loop took `d` to build one sync; `full` when it visited every bucket.
    pub fn pass(&self, full: bool, d: Duration) {
        self.passes
            .with_label_values(&[if full { "full" } else { "flagged" }])
            .observe(d.as_secs_f64());
    }

    /// How many of `policy`'s calls waited for a grant, and for how long in all.
    #[cfg(test)]
    pub fn waits(&self, policy: &str) -> (u64, f64) {
        let h = self.waits.with_label_values(&[policy]);
        (h.get_sample_count(), h.get_sample_sum())
    }
}

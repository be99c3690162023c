//! The latency sketch: a small DDSketch (relative accuracy α = 1%) with sparse buckets.
//!
//! A value `x > 0` goes to bucket `i = ceil(log_γ x)` with `γ = (1 + α) / (1 − α)`, so
//! `γ^(i−1) < x ≤ γ^i`; a bucket reports `2γ^i / (γ + 1)`, which is within `α·x` of every
//! value in it. A quantile `q` is the reported value of the bucket holding the sample of
//! rank `max(1, ceil(q·n))`. Error bound: for the exact quantile `x` of the recorded
//! values, the answer `y` satisfies `|y − x| ≤ 1% · x`. Merging adds bucket counts,
//! which loses nothing: the quantile of merged sketches has the same bound against the
//! union of all samples, however many nodes and minutes were merged. Zero goes to its
//! own bucket; values above [`MAX_LATENCY_US`] count as that.
//!
//! Why not HdrHistogram: at 1% over 1 µs..1 h it allocates ~27 KB per histogram, and a
//! node keeps thousands of open rows; this sketch holds only the buckets it saw
//! (typically tens).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Largest latency tracked (1 hour in µs); larger ones count as this.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Relative accuracy.
pub const ALPHA: f64 = 0.01;
const GAMMA: f64 = (1.0 + ALPHA) / (1.0 - ALPHA);

/// A mergeable latency distribution in µs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sketch {
    /// Samples equal to 0.
    zeros: u64,
    /// Bucket index → samples.
    buckets: BTreeMap<i32, u64>,
}

fn index_of(x: u64) -> i32 {
    // x >= 1 and <= MAX_LATENCY_US: the log is finite and small (< 1,200).
    ((x as f64).ln() / GAMMA.ln()).ceil() as i32
}

fn value_of(i: i32) -> f64 {
    2.0 * GAMMA.powi(i) / (GAMMA + 1.0)
}

impl Sketch {
    pub fn record(&mut self, us: u64) {
        match us.min(MAX_LATENCY_US) {
            0 => self.zeros += 1,
            x => *self.buckets.entry(index_of(x)).or_default() += 1,
        }
    }

    pub fn merge(&mut self, o: &Sketch) {
        self.zeros = self.zeros.saturating_add(o.zeros);
        for (i, n) in &o.buckets {
            let c = self.buckets.entry(*i).or_default();
            *c = c.saturating_add(*n);
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets
            .values()
            .fold(self.zeros, |a, n| a.saturating_add(*n))
    }

    /// The `q` quantile (clamped to 0..=1) in µs, within 1% (module docs); `None` when
    /// nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        if rank <= self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        for (i, c) in &self.buckets {
            seen = seen.saturating_add(*c);
            if seen >= rank {
                return Some(value_of(*i));
            }
        }
        self.buckets.keys().next_back().map(|i| value_of(*i))
    }
}

//! Choosing a target of an upstream for one try: smooth weighted round-robin, least
//! connections (weighted), or consistent hashing. Lock-free: the round-robin schedule
//! and the hash ring are built at compile time, the per-request state is one atomic.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use crate::proxy::target::{now_ms, TargetState};
use raftgate_store::model::CircuitBreaker;

/// Total points on a hash ring (a target gets its share by weight, at least
/// `RING_MIN_POINTS`), so memory stays bounded whatever the weights.
const RING_BUDGET: u64 = 65_536;
const RING_MIN_POINTS: u64 = 16;
/// Longest round-robin schedule kept; weights are scaled down past it.
const MAX_SCHEDULE: u64 = 4096;

#[derive(Debug)]
pub enum Strategy {
    RoundRobin { schedule: Vec<u16> },
    LeastConnections,
    Hash { ring: Vec<(u64, u16)> },
}

#[derive(Debug)]
pub struct Balancer {
    pub targets: Vec<(Arc<TargetState>, u32)>,
    strategy: Strategy,
    cursor: AtomicUsize,
}

impl Balancer {
    pub fn new(targets: Vec<(Arc<TargetState>, u32)>, strategy: StrategyKind) -> Balancer {
        let weights: Vec<u32> = targets.iter().map(|(_, w)| (*w).max(1)).collect();
        let strategy = match strategy {
            StrategyKind::RoundRobin => Strategy::RoundRobin {
                schedule: smooth_schedule(&weights),
            },
            StrategyKind::LeastConnections => Strategy::LeastConnections,
            StrategyKind::Hash => Strategy::Hash {
                ring: ring(&targets, &weights),
            },
        };
        Balancer {
            targets,
            strategy,
            cursor: AtomicUsize::new(0),
        }
    }

    /// Picks a healthy target not in `tried` whose breaker admits a call. `hash_key` is
    /// used by consistent hashing (round-robin when absent).
    pub fn pick(
        &self,
        hash_key: Option<&[u8]>,
        tried: &[usize],
        breaker: Option<&CircuitBreaker>,
    ) -> Option<usize> {
        let now = now_ms();
        let n = self.targets.len();
        if n == 0 {
            return None;
        }
        let usable = |i: usize| !tried.contains(&i) && self.targets[i].0.is_healthy(now);
        let admit = |i: usize| self.targets[i].0.breaker_allows(breaker, now);
        match &self.strategy {
            Strategy::Hash { ring } if hash_key.is_some() && !ring.is_empty() => {
                let h = fnv1a(hash_key.unwrap_or_default());
                let start = ring.partition_point(|(p, _)| *p < h);
                let mut seen = Vec::new();
                for k in 0..ring.len() {
                    let i = ring[(start + k) % ring.len()].1 as usize;
                    if seen.contains(&i) {
                        continue;
                    }
                    seen.push(i);
                    if usable(i) && admit(i) {
                        return Some(i);
                    }
                }
                None
            }
            Strategy::LeastConnections => {
                let offset = self.cursor.fetch_add(1, Relaxed);
                let mut order: Vec<usize> = (0..n)
                    .map(|k| (offset + k) % n)
                    .filter(|&i| usable(i))
                    .collect();
                // Weighted: fewest in-flight calls per unit of weight first; ties keep
                // the rotating order so equal targets share the load.
                order.sort_by_key(|&i| {
                    u64::from(self.targets[i].0.inflight()) * 1_000_000
                        / u64::from(self.targets[i].1.max(1))
                });
                order.into_iter().find(|&i| admit(i))
            }
            Strategy::RoundRobin { schedule } => {
                let start = self.cursor.fetch_add(1, Relaxed);
                (0..schedule.len())
                    .map(|k| schedule[(start + k) % schedule.len()] as usize)
                    .find(|&i| usable(i) && admit(i))
            }
            // Consistent hashing without a key (no such header or cookie): rotate.
            Strategy::Hash { .. } => {
                let start = self.cursor.fetch_add(1, Relaxed);
                (0..n)
                    .map(|k| (start + k) % n)
                    .find(|&i| usable(i) && admit(i))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyKind {
    RoundRobin,
    LeastConnections,
    Hash,
}

/// nginx's smooth weighted round-robin, unrolled into one period: weights 5,1,1 give
/// a a b a c a a rather than a a a a a b c.
fn smooth_schedule(weights: &[u32]) -> Vec<u16> {
    let g = weights.iter().fold(0u64, |g, &w| gcd(g, u64::from(w)));
    let mut w: Vec<u64> = weights.iter().map(|&x| u64::from(x) / g.max(1)).collect();
    let total: u64 = w.iter().sum();
    if total > MAX_SCHEDULE {
        for x in &mut w {
            *x = (*x * MAX_SCHEDULE / total).max(1);
        }
    }
    let total: i64 = w.iter().sum::<u64>() as i64;
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, &wi) in current.iter_mut().zip(&w) {
            *c += wi as i64;
        }
        let best = (0..w.len())
            .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
            .unwrap_or(0);
        current[best] -= total;
        out.push(best as u16);
    }
    out
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn ring(targets: &[(Arc<TargetState>, u32)], weights: &[u32]) -> Vec<(u64, u16)> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum::<u64>().max(1);
    let mut ring = Vec::new();
    for (i, ((t, _), &w)) in targets.iter().zip(weights).enumerate() {
        // Points in proportion to weight, the ring capped near RING_BUDGET points.
        let points = (u64::from(w) * RING_BUDGET / total).max(RING_MIN_POINTS);
        for p in 0..points {
            ring.push((fnv1a(format!("{}#{p}", t.address).as_bytes()), i as u16));
        }
    }
    ring.sort_unstable();
    ring
}

/// FNV-1a: stable across releases and platforms, so every node of a cluster maps a
/// key to the same target.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Finalizer (from SplitMix64) spreads nearby keys over the ring.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(weights: &[u32]) -> Vec<(Arc<TargetState>, u32)> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                (
                    Arc::new(TargetState::new(&format!("10.0.0.{i}:80")).unwrap()),
                    w,
                )
            })
            .collect()
    }

    fn counts(b: &Balancer, n: usize, key: impl Fn(usize) -> Option<Vec<u8>>) -> Vec<usize> {
        let mut c = vec![0; b.targets.len()];
        for k in 0..n {
            let key = key(k);
            c[b.pick(key.as_deref(), &[], None).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn smooth_weighted_round_robin_interleaves() {
        assert_eq!(smooth_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_schedule(&[2, 2]), vec![0, 1]);
        let b = Balancer::new(targets(&[3, 1]), StrategyKind::RoundRobin);
        assert_eq!(counts(&b, 400, |_| None), vec![300, 100]);
    }

    #[test]
    fn unhealthy_and_tried_targets_are_skipped() {
        let t = targets(&[1, 1, 1]);
        t[1].0.set_active_healthy(false);
        let b = Balancer::new(t, StrategyKind::RoundRobin);
        let c = counts(&b, 300, |_| None);
        assert_eq!(c[1], 0);
        assert_eq!(c[0] + c[2], 300);
        assert_eq!(b.pick(None, &[0, 2], None), None);
    }

    #[test]
    fn least_connections_prefers_idle_targets() {
        let t = targets(&[1, 1, 2]);
        for _ in 0..3 {
            t[0].0.begin();
        }
        t[2].0.begin();
        t[2].0.begin(); // 2 in flight at weight 2 scores like 1 at weight 1
        t[1].0.begin();
        t[1].0.begin();
        let b = Balancer::new(t, StrategyKind::LeastConnections);
        assert_eq!(b.pick(None, &[], None), Some(2));
        assert_eq!(b.pick(None, &[2], None), Some(1));
    }

    #[test]
    fn consistent_hash_is_sticky_spread_and_minimal_on_removal() {
        let t = targets(&[1, 1, 1, 1]);
        let b = Balancer::new(t.clone(), StrategyKind::Hash);
        let keys: Vec<Vec<u8>> = (0..4000)
            .map(|k| format!("user-{k}").into_bytes())
            .collect();
        let before: Vec<usize> = keys
            .iter()
            .map(|k| b.pick(Some(k), &[], None).unwrap())
            .collect();
        let again: Vec<usize> = keys
            .iter()
            .map(|k| b.pick(Some(k), &[], None).unwrap())
            .collect();
        assert_eq!(before, again);
        let mut c = [0usize; 4];
        before.iter().for_each(|&i| c[i] += 1);
        assert!(c.iter().all(|&n| (700..1300).contains(&n)), "{c:?}");
        // Target 3 goes unhealthy: only its keys move.
        t[3].0.set_active_healthy(false);
        let after: Vec<usize> = keys
            .iter()
            .map(|k| b.pick(Some(k), &[], None).unwrap())
            .collect();
        for (x, y) in before.iter().zip(&after) {
            if *x != 3 {
                assert_eq!(x, y);
            } else {
                assert_ne!(*y, 3);
            }
        }
    }
}

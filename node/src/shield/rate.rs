//! Failed authentications per client IP: a token bucket in GCRA form (one "theoretical
//! arrival time" per IP), in a fixed table of 64 Ki atomic slots (512 KiB), so memory is
//! bounded whatever the number of clients and no lock is taken.
//!
//! Each IP has two candidate slots (two hashes under a per-process random key) and a
//! 16-bit tag. A slot whose time is past belongs to nobody and is reused; if both are
//! held by other IPs still in debt, the newcomer takes over the less indebted one and
//! inherits its debt: under a flood from more IPs than slots, unauthenticated requests
//! from new IPs are refused too (authenticated ones never pass through here).

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::ip_key;

const SLOTS: usize = 1 << 16;
const TIME_BITS: u32 = 48;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;

pub struct RateTable {
    /// Microseconds per token; 0: no limit.
    interval_us: u64,
    /// `burst × interval`: how far ahead of now an IP's time may run.
    window_us: u64,
    hasher: RandomState,
    start: Instant,
    slots: Box<[AtomicU64]>,
}

fn pack(tag: u64, tat: u64) -> u64 {
    (tag << TIME_BITS) | (tat & TIME_MASK)
}

fn tag_of(v: u64) -> u64 {
    v >> TIME_BITS
}

fn tat_of(v: u64) -> u64 {
    v & TIME_MASK
}

impl RateTable {
    /// `per_sec` tokens a second, `burst` at most; `per_sec == 0` turns it off.
    pub fn new(per_sec: u32, burst: u32) -> RateTable {
        let interval_us = if per_sec == 0 {
            0
        } else {
            (1_000_000 / u64::from(per_sec)).max(1)
        };
        let slots = if per_sec == 0 { 0 } else { SLOTS };
        RateTable {
            interval_us,
            window_us: interval_us.saturating_mul(u64::from(burst)),
            hasher: RandomState::new(),
            start: Instant::now(),
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn now_us(&self) -> u64 {
        // +1: a fresh (zero) slot is always in the past.
        (self.start.elapsed().as_micros() as u64 & TIME_MASK) + 1
    }

    /// The two candidate slots and the tag of `ip`.
    fn locate(&self, ip: IpAddr) -> (usize, usize, u64) {
        let h = self.hasher.hash_one(ip_key(ip));
        let mask = (SLOTS - 1) as u64;
        let (a, b) = ((h & mask) as usize, ((h >> 16) & mask) as usize);
        (a, if a == b { a ^ 1 } else { b }, h >> 48)
    }

    /// The slot `ip` uses now, and its current value.
    fn pick(&self, ip: IpAddr, now: u64) -> (usize, u64, u64) {
        let (a, b, tag) = self.locate(ip);
        let (va, vb) = (
            self.slots[a].load(Ordering::Acquire),
            self.slots[b].load(Ordering::Acquire),
        );
        let (i, v) = if tag_of(va) == tag && tat_of(va) > 0 {
            (a, va)
        } else if tag_of(vb) == tag && tat_of(vb) > 0 {
            (b, vb)
        } else if tat_of(va) <= now {
            (a, va)
        } else if tat_of(vb) <= now {
            (b, vb)
        } else if tat_of(va) <= tat_of(vb) {
            (a, va)
        } else {
            (b, vb)
        };
        (i, v, tag)
    }

    /// Takes one token for `ip`; `Err(retry_after_secs)` when none is left.
    pub fn take(&self, ip: IpAddr) -> Result<(), u64> {
        if self.interval_us == 0 {
            return Ok(());
        }
        loop {
            let now = self.now_us();
            let (i, cur, tag) = self.pick(ip, now);
            let next = tat_of(cur).max(now) + self.interval_us;
            if next - now > self.window_us {
                return Err(secs(next - now - self.window_us));
            }
            if self.slots[i]
                .compare_exchange(cur, pack(tag, next), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Ok(());
            }
        }
    }

    /// True when the next `take` for `ip` would fail; writes nothing.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        self.retry_after(ip) > 0
    }

    /// Seconds until `ip` has a token again (0: it has one now).
    pub fn retry_after(&self, ip: IpAddr) -> u64 {
        if self.interval_us == 0 {
            return 0;
        }
        let now = self.now_us();
        let (_, cur, _) = self.pick(ip, now);
        let next = tat_of(cur).max(now) + self.interval_us;
        if next - now > self.window_us {
            secs(next - now - self.window_us)
        } else {
            0
        }
    }
}

/// Whole seconds, rounded up, at least 1.
fn secs(us: u64) -> u64 {
    us.div_ceil(1_000_000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_burst_then_refusals_and_other_ips_are_untouched() {
        let t = RateTable::new(1, 5);
        for n in 0..5 {
            assert!(!t.blocked(ip("10.0.0.1")), "before take {n}");
            t.take(ip("10.0.0.1")).expect("within the burst");
        }
        assert!(t.blocked(ip("10.0.0.1")));
        let retry = t.take(ip("10.0.0.1")).expect_err("over the burst");
        assert!((1..=2).contains(&retry), "retry after {retry}s");
        // Refusals write nothing: the IP is not pushed further into debt.
        assert_eq!(t.retry_after(ip("10.0.0.1")), retry);
        assert!(!t.blocked(ip("10.0.0.2")));
        t.take(ip("10.0.0.2"))
            .expect("another IP has its own bucket");
    }

    #[test]
    fn tokens_come_back_at_the_rate() {
        let t = RateTable::new(20, 2);
        t.take(ip("10.0.0.1")).expect("1");
        t.take(ip("10.0.0.1")).expect("2");
        assert!(t.take(ip("10.0.0.1")).is_err());
        std::thread::sleep(std::time::Duration::from_millis(60));
        t.take(ip("10.0.0.1")).expect("one token back after 50 ms");
        assert!(t.take(ip("10.0.0.1")).is_err());
    }

    #[test]
    fn off_means_no_table_and_no_limit() {
        let t = RateTable::new(0, 0);
        assert!(t.slots.is_empty());
        for _ in 0..10_000 {
            t.take(ip("10.0.0.1")).expect("no limit");
        }
        assert!(!t.blocked(ip("10.0.0.1")));
    }

    #[test]
    fn memory_stays_fixed_under_many_ips_and_known_ips_keep_their_debt() {
        let t = RateTable::new(1, 3);
        for _ in 0..3 {
            t.take(ip("192.0.2.1")).expect("burst");
        }
        // 200 000 distinct IPs, one failure each: the table does not grow.
        for i in 0..200_000u32 {
            let _ = t.take(IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()));
        }
        assert_eq!(t.slots.len(), SLOTS);
        // Those IPs each used one token and stay within their burst, so their slots are
        // not "in debt" beyond now + window; the flooder's slot may have been reused,
        // but it can never have gained more than a fresh burst.
        let mut granted = 0;
        while t.take(ip("192.0.2.1")).is_ok() {
            granted += 1;
            assert!(granted <= 3, "never more than one burst");
        }
    }

    #[test]
    fn concurrent_takes_grant_exactly_the_burst() {
        let t = RateTable::new(1, 100);
        let ok: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| (0..100).filter(|_| t.take(ip("10.9.9.9")).is_ok()).count()))
                .collect();
            hs.into_iter().map(|h| h.join().expect("thread")).sum()
        });
        // The burst, plus at most a token or two that came back during the test.
        assert!((100..=102).contains(&ok), "granted {ok}");
    }
}

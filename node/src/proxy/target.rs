//! One upstream target's live state on this node: in-flight calls, passive ejection,
//! the active probe's verdict and the circuit breaker. Shared by every compiled
//! config that still lists the target, so a config change does not forget health.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

use raftgate_store::model::{CircuitBreaker, PassiveHealthCheck};

/// Milliseconds on a monotonic clock that starts with the process.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

#[derive(Debug)]
pub struct TargetState {
    pub address: String,
    pub authority: http::uri::Authority,
    inflight: AtomicU32,
    consecutive_failures: AtomicU32,
    ejected_until: AtomicU64,
    active_healthy: AtomicBool,
    circuit: AtomicU8,
    opened_at: AtomicU64,
    window_start: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
    trial: AtomicBool,
}

impl TargetState {
    pub fn new(address: &str) -> Option<TargetState> {
        Some(TargetState {
            address: address.to_string(),
            authority: address.parse().ok()?,
            inflight: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            active_healthy: AtomicBool::new(true),
            circuit: AtomicU8::new(CircuitState::Closed as u8),
            opened_at: AtomicU64::new(0),
            window_start: AtomicU64::new(0),
            calls: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            trial: AtomicBool::new(false),
        })
    }

    pub fn inflight(&self) -> u32 {
        self.inflight.load(Relaxed)
    }

    pub fn begin(&self) {
        self.inflight.fetch_add(1, Relaxed);
    }

    pub fn end(&self) {
        self.inflight.fetch_sub(1, Relaxed);
    }

    /// Healthy by the active probe and not ejected by passive checks.
    pub fn is_healthy(&self, now: u64) -> bool {
        self.active_healthy.load(Relaxed) && self.ejected_until.load(Relaxed) <= now
    }

    pub fn set_active_healthy(&self, healthy: bool) -> bool {
        self.active_healthy.swap(healthy, Relaxed) != healthy
    }

    pub fn active_healthy(&self) -> bool {
        self.active_healthy.load(Relaxed)
    }

    pub fn circuit(&self) -> CircuitState {
        match self.circuit.load(Relaxed) {
            1 => CircuitState::Open,
            2 => CircuitState::HalfOpen,
            _ => CircuitState::Closed,
        }
    }

    /// Whether the breaker lets a call through now; in half-open state only one trial
    /// call passes until its outcome is recorded.
    pub fn breaker_allows(&self, cfg: Option<&CircuitBreaker>, now: u64) -> bool {
        let Some(cfg) = cfg else { return true };
        match self.circuit() {
            CircuitState::Closed => true,
            CircuitState::Open => {
                if now < self.opened_at.load(Relaxed) + cfg.open_ms {
                    return false;
                }
                let _ = self.circuit.compare_exchange(
                    CircuitState::Open as u8,
                    CircuitState::HalfOpen as u8,
                    Relaxed,
                    Relaxed,
                );
                !self.trial.swap(true, Relaxed)
            }
            CircuitState::HalfOpen => !self.trial.swap(true, Relaxed),
        }
    }

    /// Records the outcome of one call for passive health and the breaker.
    pub fn record(
        &self,
        ok: bool,
        passive: Option<&PassiveHealthCheck>,
        breaker: Option<&CircuitBreaker>,
        now: u64,
    ) {
        if ok {
            self.consecutive_failures.store(0, Relaxed);
        } else if let Some(p) = passive {
            let n = self.consecutive_failures.fetch_add(1, Relaxed) + 1;
            if n >= p.max_failures {
                self.ejected_until.store(now + p.cooldown_ms, Relaxed);
                self.consecutive_failures.store(0, Relaxed);
            }
        }
        let Some(cfg) = breaker else { return };
        match self.circuit() {
            CircuitState::HalfOpen => {
                if ok {
                    self.reset_window(now);
                    self.circuit.store(CircuitState::Closed as u8, Relaxed);
                } else {
                    self.opened_at.store(now, Relaxed);
                    self.circuit.store(CircuitState::Open as u8, Relaxed);
                }
                self.trial.store(false, Relaxed);
            }
            CircuitState::Open => {}
            CircuitState::Closed => {
                if now.saturating_sub(self.window_start.load(Relaxed)) > cfg.window_ms {
                    self.reset_window(now);
                }
                let calls = self.calls.fetch_add(1, Relaxed) + 1;
                let failures = self.failures.load(Relaxed) + u32::from(!ok);
                if !ok {
                    self.failures.fetch_add(1, Relaxed);
                }
                if calls >= cfg.min_calls
                    && f64::from(failures) >= cfg.failure_ratio * f64::from(calls)
                {
                    self.opened_at.store(now, Relaxed);
                    self.trial.store(false, Relaxed);
                    self.circuit.store(CircuitState::Open as u8, Relaxed);
                }
            }
        }
    }

    fn reset_window(&self, now: u64) {
        self.window_start.store(now, Relaxed);
        self.calls.store(0, Relaxed);
        self.failures.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_ejection_lasts_the_cooldown() {
        let t = TargetState::new("127.0.0.1:1").unwrap();
        let p = PassiveHealthCheck {
            max_failures: 3,
            cooldown_ms: 1000,
        };
        t.record(false, Some(&p), None, 10);
        t.record(false, Some(&p), None, 11);
        assert!(t.is_healthy(12));
        t.record(true, Some(&p), None, 12); // a success resets the count
        t.record(false, Some(&p), None, 13);
        t.record(false, Some(&p), None, 14);
        assert!(t.is_healthy(15));
        t.record(false, Some(&p), None, 15);
        assert!(!t.is_healthy(16));
        assert!(!t.is_healthy(1014));
        assert!(t.is_healthy(1015));
    }

    #[test]
    fn breaker_opens_then_half_opens_with_one_trial() {
        let t = TargetState::new("127.0.0.1:1").unwrap();
        let cb = CircuitBreaker {
            failure_ratio: 0.5,
            min_calls: 4,
            window_ms: 10_000,
            open_ms: 100,
        };
        for (i, ok) in [true, false, true].into_iter().enumerate() {
            t.record(ok, None, Some(&cb), 10 + i as u64);
        }
        assert_eq!(t.circuit(), CircuitState::Closed);
        t.record(false, None, Some(&cb), 20); // 2 of 4 failed
        assert_eq!(t.circuit(), CircuitState::Open);
        assert!(!t.breaker_allows(Some(&cb), 50));
        assert!(t.breaker_allows(Some(&cb), 121));
        assert_eq!(t.circuit(), CircuitState::HalfOpen);
        assert!(
            !t.breaker_allows(Some(&cb), 122),
            "only one trial at a time"
        );
        t.record(false, None, Some(&cb), 123);
        assert_eq!(t.circuit(), CircuitState::Open);
        assert!(t.breaker_allows(Some(&cb), 224));
        t.record(true, None, Some(&cb), 225);
        assert_eq!(t.circuit(), CircuitState::Closed);
        assert!(t.breaker_allows(Some(&cb), 226));
    }
}

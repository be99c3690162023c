//! Field checks of an upstream: targets, balancer, timeouts, retries, health checks,
//! circuit breaker and TLS.

use std::net::IpAddr;

use super::{header_name, host_port, is_dns_name, opt_tenant, pem_block, Ctx};
use crate::command::ApplyError;
use crate::model::*;

/// Targets per upstream; the data plane's balancers index targets with 16 bits.
const MAX_TARGETS: usize = 1024;

/// One hour: the longest timeout, interval, cooldown or window accepted.
const HOUR_MS: u64 = 3_600_000;

pub(super) fn upstream(cx: &Ctx, u: &Upstream) -> Result<(), ApplyError> {
    opt_tenant(cx, &u.tenant)?;
    if u.targets.is_empty() {
        return Err(cx.err("targets", "at least one target is required"));
    }
    if u.targets.len() > MAX_TARGETS {
        return Err(cx.err(
            "targets",
            format!("at most {MAX_TARGETS} targets per upstream"),
        ));
    }
    for t in &u.targets {
        host_port(cx, "targets.address", &t.address)?;
        if t.weight == 0 || t.weight > 10_000 {
            return Err(cx.err("targets.weight", "must be between 1 and 10000"));
        }
    }
    if let Balancer::ConsistentHash(HashKey::Header(h) | HashKey::Cookie(h)) = &u.balancer {
        header_name(cx, "balancer", h)?;
    }
    timeouts(cx, &u.timeouts)?;
    retries(cx, &u.retries)?;
    if let Some(active) = &u.health_check.active {
        active_check(cx, active)?;
    }
    if let Some(p) = &u.health_check.passive {
        if p.max_failures == 0 || p.max_failures > 1000 {
            return Err(cx.err(
                "health_check.passive.max_failures",
                "must be between 1 and 1000",
            ));
        }
        within(cx, "health_check.passive.cooldown_ms", p.cooldown_ms, 100)?;
    }
    if let Some(cb) = &u.circuit_breaker {
        circuit_breaker(cx, cb)?;
    }
    tls(cx, &u.tls)
}

/// `value` must lie in `min..=1 h` (milliseconds).
fn within(cx: &Ctx, field: &str, value: u64, min: u64) -> Result<(), ApplyError> {
    if value < min || value > HOUR_MS {
        return Err(cx.err(
            field,
            format!("must be between {min} ms and {HOUR_MS} ms (1 h)"),
        ));
    }
    Ok(())
}

fn timeouts(cx: &Ctx, t: &Timeouts) -> Result<(), ApplyError> {
    within(cx, "timeouts.connect_ms", t.connect_ms, 1)?;
    within(cx, "timeouts.per_try_ms", t.per_try_ms, 1)?;
    within(cx, "timeouts.total_ms", t.total_ms, 1)?;
    if t.connect_ms > t.total_ms {
        return Err(cx.err("timeouts.connect_ms", "must not exceed total_ms"));
    }
    if t.per_try_ms > t.total_ms {
        return Err(cx.err("timeouts.per_try_ms", "must not exceed total_ms"));
    }
    Ok(())
}

fn retries(cx: &Ctx, r: &Retries) -> Result<(), ApplyError> {
    if r.attempts > 10 {
        return Err(cx.err("retries.attempts", "at most 10 extra tries"));
    }
    statuses(cx, "retries.on_statuses", &r.on_statuses)?;
    if r.backoff_ms > 60_000 {
        return Err(cx.err("retries.backoff_ms", "at most 60000 ms"));
    }
    Ok(())
}

fn statuses(cx: &Ctx, field: &str, statuses: &[u16]) -> Result<(), ApplyError> {
    if statuses.len() > 100 {
        return Err(cx.err(field, "at most 100 statuses"));
    }
    match statuses.iter().find(|s| !(100..=599).contains(*s)) {
        Some(s) => Err(cx.err(field, format!("{s} is not an HTTP status (100-599)"))),
        None => Ok(()),
    }
}

fn active_check(cx: &Ctx, a: &ActiveHealthCheck) -> Result<(), ApplyError> {
    let path_ok = a.path.starts_with('/')
        && a.path.len() <= 2048
        && !a
            .path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '#');
    if !path_ok {
        return Err(cx.err(
            "health_check.active.path",
            "must start with '/', hold no space or '#', and be at most 2048 characters",
        ));
    }
    within(cx, "health_check.active.interval_ms", a.interval_ms, 100)?;
    // A probe must give up before the next one is due, so probes never pile up.
    if a.timeout_ms == 0 || a.timeout_ms >= a.interval_ms {
        return Err(cx.err(
            "health_check.active.timeout_ms",
            "must be at least 1 ms and less than interval_ms",
        ));
    }
    for (field, n) in [
        ("health_check.active.healthy_threshold", a.healthy_threshold),
        (
            "health_check.active.unhealthy_threshold",
            a.unhealthy_threshold,
        ),
    ] {
        if n == 0 || n > 100 {
            return Err(cx.err(field, "must be between 1 and 100"));
        }
    }
    statuses(
        cx,
        "health_check.active.expected_statuses",
        &a.expected_statuses,
    )
}

fn circuit_breaker(cx: &Ctx, cb: &CircuitBreaker) -> Result<(), ApplyError> {
    let r = cb.failure_ratio;
    if !r.is_finite() || r <= 0.0 || r > 1.0 {
        return Err(cx.err(
            "circuit_breaker.failure_ratio",
            "must be greater than 0 and at most 1",
        ));
    }
    if cb.min_calls == 0 || cb.min_calls > 1_000_000 {
        return Err(cx.err("circuit_breaker.min_calls", "must be between 1 and 1000000"));
    }
    within(cx, "circuit_breaker.window_ms", cb.window_ms, 100)?;
    within(cx, "circuit_breaker.open_ms", cb.open_ms, 100)
}

fn tls(cx: &Ctx, t: &UpstreamTls) -> Result<(), ApplyError> {
    if let Some(name) = &t.server_name {
        if !is_dns_name(name) && name.parse::<IpAddr>().is_err() {
            return Err(cx.err(
                "tls.server_name",
                format!("'{name}' is not a DNS name or IP address"),
            ));
        }
    }
    if let Some(ca) = &t.ca_pem {
        pem_block(cx, "tls.ca_pem", ca, &["CERTIFICATE"])?;
    }
    Ok(())
}

//! Quotas never over-admitted: per policy and window, the calls answered 2xx stay within
//! the limit. Windows are wall-clock (aligned on the epoch, as the nodes count them), so
//! a call is attributed by mapping its [invoke, complete] interval to wall time: inside
//! one window it counts there for sure; spanning a boundary it is ambiguous and counts
//! only in the upper bound. A node whose clock was stepped widens its calls' intervals
//! by the step. FAIL when a window's sure count exceeds the limit. Also reported: the
//! fraction of the limit admitted in windows where demand exceeded the limit.

use std::collections::BTreeMap;

use super::{Check, Verdict};
use crate::suite::history::{History, Op, OpKind};
use crate::suite::nemesis::Trace;
use crate::suite::setup::Limit;

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    sure: u64,
    ambiguous: u64,
    demand: u64,
}

/// Which policy, if any, limits `op`.
fn policy_of(op: &Op) -> Option<&'static str> {
    match &op.kind {
        OpKind::Rest { route } if route == "chaos-limited" => Some("chaos-rest"),
        OpKind::Llm { .. } => Some("chaos-llm"),
        _ => None,
    }
}

/// The quota check; also returns the worst ratio admitted/limit (over 1.0 = over-admitted).
pub fn check(ops: &[Op], history: &History, trace: &Trace, limits: &[Limit]) -> (Check, f64) {
    let offset_ms = |node: usize| -> u64 {
        trace
            .clock_offsets
            .iter()
            .filter(|(n, _)| *n == node)
            .map(|(_, s)| s.unsigned_abs() * 1000)
            .max()
            .unwrap_or(0)
    };
    let mut evidence = Vec::new();
    let mut worst = 0.0f64;
    let mut failed = false;
    let mut fractions = Vec::new();
    for limit in limits {
        let mut windows = BTreeMap::<u64, Window>::new();
        for op in ops.iter().filter(|o| policy_of(o) == Some(limit.policy)) {
            let widen = offset_ms(op.node);
            let from = history.wall_ms(op.invoke_us).saturating_sub(widen) / limit.window_ms;
            let to = (history.wall_ms(op.complete_us) + widen) / limit.window_ms;
            windows.entry(from).or_default().demand += 1;
            if !op.outcome.is_success() {
                continue;
            }
            if from == to {
                windows.entry(from).or_default().sure += 1;
            } else {
                for w in from..=to {
                    windows.entry(w).or_default().ambiguous += 1;
                }
            }
        }
        for (w, c) in &windows {
            let ratio = c.sure as f64 / limit.limit as f64;
            worst = worst.max(ratio);
            if c.sure > limit.limit {
                failed = true;
                evidence.push(format!(
                    "OVER-ADMITTED {} window starting {} ms: {} calls surely admitted > limit {} ({} more ambiguous)",
                    limit.policy,
                    w * limit.window_ms,
                    c.sure,
                    limit.limit,
                    c.ambiguous
                ));
            }
            if c.demand >= limit.limit + limit.limit / 2 {
                fractions.push((
                    limit.policy,
                    (c.sure + c.ambiguous).min(limit.limit) as f64 / limit.limit as f64,
                ));
            }
        }
        let max_sure = windows.values().map(|c| c.sure).max().unwrap_or(0);
        let max_upper = windows
            .values()
            .map(|c| c.sure + c.ambiguous)
            .max()
            .unwrap_or(0);
        evidence.push(format!(
            "{}: {} windows, most admitted in one: {max_sure} sure ({max_upper} counting calls across a boundary), limit {}",
            limit.policy,
            windows.len(),
            limit.limit
        ));
    }
    let mut summary = format!("max {:.0}% of limit", worst * 100.0);
    for policy in limits.iter().map(|l| l.policy) {
        let f: Vec<f64> = fractions
            .iter()
            .filter(|(p, _)| *p == policy)
            .map(|(_, f)| *f)
            .collect();
        if !f.is_empty() {
            let mean = f.iter().sum::<f64>() / f.len() as f64;
            evidence.push(format!(
                "{policy}: in the {} windows where demand exceeded 1.5 × limit, {:.0}% of the limit was admitted on average",
                f.len(),
                mean * 100.0
            ));
            summary.push_str(&format!("; {policy} fill {:.0}%", mean * 100.0));
        }
    }
    let verdict = if failed { Verdict::Fail } else { Verdict::Pass };
    (
        Check::new("quota", verdict, summary).with_evidence(evidence),
        worst,
    )
}

#[cfg(test)]
mod tests;

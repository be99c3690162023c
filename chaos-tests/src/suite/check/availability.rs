//! Data-plane availability: the share of requests answered successfully (2xx, or 429
//! from a quota), per traffic class and per node side. The goal: every live
//! node answers every request to a route without a quota; nodes on the majority side
//! answer every quota-limited request too, except while there is no leader to grant
//! leases (from the fault until the new leader, plus a short grace); a minority node
//! answers limited requests while its leases last (reported, not judged).

use std::collections::BTreeMap;

use super::{secs, Check, Verdict};
use crate::suite::history::{Op, OpKind};
use crate::suite::load::answered;
use crate::suite::nemesis::{Side, Trace};

/// After a new leader is elected, the majority side gets this long to hand out leases.
pub const LEASE_GRACE_US: u64 = 2_000_000;

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ok: u64,
    total: u64,
}

impl Tally {
    fn add(&mut self, ok: bool) {
        self.total += 1;
        self.ok += u64::from(ok);
    }

    fn pct(self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            self.ok as f64 * 100.0 / self.total as f64
        }
    }

    fn show(self) -> String {
        format!("{:.2}% ({}/{})", self.pct(), self.ok, self.total)
    }
}

/// The availability check; also returns the headline percentage for the report table.
pub fn check(ops: &[Op], trace: &Trace) -> (Check, f64) {
    let side = |node: usize| trace.sides.get(node).copied().unwrap_or(Side::Majority);
    // The window in which the majority side has no leader to grant leases.
    let leaderless = trace.election.map(|e| {
        (
            trace.start_us,
            trace.start_us + e.as_micros() as u64 + LEASE_GRACE_US,
        )
    });
    let mut open = BTreeMap::<&str, Tally>::new();
    let mut limited = BTreeMap::<&str, Tally>::new();
    let mut failures = Vec::new();
    for op in ops.iter().filter(|o| o.kind.is_data_plane()) {
        let s = side(op.node);
        if s == Side::Down {
            continue;
        }
        let ok = answered(&op.outcome);
        let class = match s {
            Side::Majority => "majority",
            _ => "minority",
        };
        let is_open = matches!(&op.kind, OpKind::Rest { route } if route == "chaos-open");
        if is_open {
            open.entry(class).or_default().add(ok);
        } else {
            let excused = leaderless.is_some_and(|(a, b)| op.complete_us >= a && op.invoke_us <= b);
            if excused {
                continue;
            }
            limited.entry(class).or_default().add(ok);
        }
        let judged = is_open || s == Side::Majority;
        if !ok && judged && failures.len() < 10 {
            failures.push(format!(
                "{:?} to node index {} [{}–{}]: {}",
                op.kind,
                op.node,
                secs(op.invoke_us),
                secs(op.complete_us),
                op.outcome.short()
            ));
        }
    }
    let open_all = open.values().fold(Tally::default(), |a, t| Tally {
        ok: a.ok + t.ok,
        total: a.total + t.total,
    });
    let lim_major = limited.get("majority").copied().unwrap_or_default();
    let pass = open_all.ok == open_all.total && lim_major.ok == lim_major.total;
    let mut evidence = vec![
        format!("no-quota route, every live node: {}", open_all.show()),
        format!(
            "quota-limited calls, majority side{}: {}",
            if leaderless.is_some() {
                " (leaderless window excused)"
            } else {
                ""
            },
            lim_major.show()
        ),
    ];
    if let Some(t) = limited.get("minority") {
        evidence.push(format!(
            "quota-limited calls, minority side (not judged): {}",
            t.show()
        ));
    }
    evidence.extend(failures);
    let verdict = if open_all.total == 0 {
        Verdict::Skip
    } else if pass {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let summary = format!(
        "open {:.2}%, limited (majority) {:.2}%",
        open_all.pct(),
        lim_major.pct()
    );
    (
        Check::new("availability", verdict, summary).with_evidence(evidence),
        open_all.pct().min(lim_major.pct()),
    )
}

#[cfg(test)]
mod tests;

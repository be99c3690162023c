//! Data-plane availability: the share of requests answered successfully (2xx, or 429
//! from a quota), per traffic class. The goal: every node that is up answers every
//! request to a route without a quota; every node that can reach a leader with a quorum
//! answers every quota-limited request too. Limited calls are excused (counted apart,
//! not judged) while the leader watch saw no leader, within a lease grace after any
//! leader change, while the node's link to the leader was cut (it serves from its held
//! leases), or while the leader could not reach a quorum.

use std::collections::BTreeMap;

use super::{secs, Check, Verdict};
use crate::suite::history::{Op, OpKind};
use crate::suite::load::answered;
use crate::suite::nemesis::Trace;
use crate::suite::watch;

/// After a leader change (or a healed link to the leader), a node gets this long to
/// obtain leases again.
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

/// Why a quota-limited call is not judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Excuse {
    Leaderless,
    CutFromLeader,
    LeaderWithoutQuorum,
}

impl Excuse {
    fn describe(self) -> &'static str {
        match self {
            Excuse::Leaderless => "no leader, or within the lease grace after a leader change",
            Excuse::CutFromLeader => "the node's link to the leader cut (held leases only)",
            Excuse::LeaderWithoutQuorum => "the leader cut off from a quorum",
        }
    }
}

/// Why a limited call on `op.node` over its lifetime cannot be expected to succeed, if
/// any. `nodes` is how many node indices the run used.
fn excuse(
    op: &Op,
    trace: &Trace,
    runs: &[(u64, u64, Option<usize>)],
    nodes: usize,
) -> Option<Excuse> {
    let (a, b) = (op.invoke_us, op.complete_us);
    for (k, &(from, to, leader)) in runs.iter().enumerate() {
        if from > b || to.saturating_add(LEASE_GRACE_US) < a {
            continue;
        }
        let Some(l) = leader else {
            return Some(Excuse::Leaderless);
        };
        if k > 0 && a <= from + LEASE_GRACE_US {
            return Some(Excuse::Leaderless);
        }
        if to < a {
            continue;
        }
        if op.node != l && trace.is_cut(op.node, l, a, b, LEASE_GRACE_US) {
            return Some(Excuse::CutFromLeader);
        }
        let reach = (0..nodes)
            .filter(|&j| j == l || (!trace.is_down(j, a, b) && !trace.is_cut(l, j, a, b, 0)))
            .count();
        if reach < trace.voters_at(a) / 2 + 1 {
            return Some(Excuse::LeaderWithoutQuorum);
        }
    }
    None
}

/// The availability check; also returns the headline percentage for the report table.
pub fn check(ops: &[Op], trace: &Trace) -> (Check, f64) {
    let runs = watch::runs(&trace.leaders);
    let nodes = ops
        .iter()
        .map(|o| o.node + 1)
        .chain(trace.down.iter().map(|(n, _)| n + 1))
        .chain(trace.voters.iter().map(|(_, n)| *n))
        .max()
        .unwrap_or(0);
    let mut open = Tally::default();
    let mut limited = Tally::default();
    let mut excused = BTreeMap::<Excuse, Tally>::new();
    let mut failures = Vec::new();
    for op in ops.iter().filter(|o| o.kind.is_data_plane()) {
        if trace.is_down(op.node, op.invoke_us, op.complete_us) {
            continue;
        }
        let ok = answered(&op.outcome);
        let is_open = matches!(&op.kind, OpKind::Rest { route } if route == "chaos-open");
        if is_open {
            open.add(ok);
        } else if let Some(why) = excuse(op, trace, &runs, nodes) {
            excused.entry(why).or_default().add(ok);
            continue;
        } else {
            limited.add(ok);
        }
        if !ok && failures.len() < 10 {
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
    let pass = open.ok == open.total && limited.ok == limited.total;
    let mut evidence = vec![
        format!("no-quota route, every node while up: {}", open.show()),
        format!(
            "quota-limited calls with a leader in reach: {}",
            limited.show()
        ),
    ];
    for (why, t) in &excused {
        evidence.push(format!(
            "quota-limited calls not judged, {}: {}",
            why.describe(),
            t.show()
        ));
    }
    let changes = runs.len().saturating_sub(1);
    let leaderless_ms: u64 = runs
        .iter()
        .filter(|r| r.2.is_none())
        .map(|r| (r.1 - r.0) / 1000)
        .sum();
    evidence.push(format!(
        "leader watch: {} samples, {changes} leader transitions, {leaderless_ms} ms without a leader",
        trace.leaders.len()
    ));
    evidence.extend(failures);
    let verdict = if open.total == 0 {
        Verdict::Skip
    } else if pass {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let summary = format!(
        "open {:.2}%, limited (leader in reach) {:.2}%",
        open.pct(),
        limited.pct()
    );
    (
        Check::new("availability", verdict, summary).with_evidence(evidence),
        open.pct().min(limited.pct()),
    )
}

#[cfg(test)]
mod tests;

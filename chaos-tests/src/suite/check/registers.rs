//! Linearizable admin operations: the register reads (`consistent=true`) and writes of
//! the run, handed to the checker in [`crate::suite::linear`] key by key.

use std::collections::BTreeMap;

use super::{Check, Verdict};
use crate::suite::history::{Op, OpKind};
use crate::suite::linear::{self, RegKind, RegOp};

/// Turns the history's register operations into the checker's input: writes that
/// failed with a 4xx did nothing and are dropped; writes without a definite answer may
/// have happened (no completion); reads count only when they returned a value.
pub fn reg_ops(ops: &[Op]) -> Vec<RegOp> {
    ops.iter()
        .filter_map(|op| match &op.kind {
            OpKind::RegWrite { key, value } => {
                if op.outcome.is_definite_failure() {
                    return None;
                }
                Some(RegOp {
                    client: op.client,
                    key: key.clone(),
                    invoke_us: op.invoke_us,
                    complete_us: op.outcome.is_success().then_some(op.complete_us),
                    kind: RegKind::Write(*value),
                })
            }
            OpKind::RegRead { key, value } => {
                let value = (*value).filter(|_| op.outcome.is_success())?;
                Some(RegOp {
                    client: op.client,
                    key: key.clone(),
                    invoke_us: op.invoke_us,
                    complete_us: Some(op.complete_us),
                    kind: RegKind::Read(value),
                })
            }
            _ => None,
        })
        .collect()
}

pub fn check(ops: &[Op], initial: &BTreeMap<String, u64>) -> Check {
    let history = reg_ops(ops);
    let verdicts = linear::check(&history, initial);
    let checked: usize = verdicts.iter().map(|v| v.ops).sum();
    let indeterminate: usize = verdicts.iter().map(|v| v.indeterminate).sum();
    let mut evidence: Vec<String> = verdicts
        .iter()
        .map(|v| {
            let state = if v.inconclusive {
                "inconclusive (search budget spent)"
            } else if v.linearizable {
                "linearizable"
            } else {
                "NOT linearizable"
            };
            format!(
                "{}: {} ops ({} writes without an answer): {state}",
                v.key, v.ops, v.indeterminate
            )
        })
        .collect();
    evidence.extend(
        verdicts
            .iter()
            .filter(|v| !v.linearizable && !v.inconclusive)
            .map(|v| format!("{}: {}", v.key, v.evidence)),
    );
    let failed = verdicts.iter().any(|v| !v.linearizable && !v.inconclusive);
    let inconclusive = verdicts.iter().any(|v| v.inconclusive);
    let verdict = if failed {
        Verdict::Fail
    } else if inconclusive || checked == 0 {
        Verdict::Skip
    } else {
        Verdict::Pass
    };
    let summary = format!(
        "{checked} register ops on {} keys ({indeterminate} without an answer)",
        verdicts.len()
    );
    Check::new("linearizable", verdict, summary).with_evidence(evidence)
}

//! No lost writes: after healing and convergence, every admin write acknowledged 2xx is
//! present on every member node, every acknowledged delete is absent, a write that failed
//! with a 4xx is absent, and a write whose outcome is unknown is either absent or present
//! whole. Every node holds the same items. The quota policy the writers kept changing
//! holds a value some write could have left last.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{secs, Check, Verdict};
use crate::client::{AdminClient, Read};
use crate::suite::history::{Op, OpKind};

/// The fields a created resource must hold, derived from its id (the writers build the
/// body from the same number).
fn expected(collection: &str, id: &str) -> Option<(&'static str, String)> {
    match collection {
        "routes" => Some(("path", format!("/chaos/w/{}", id.strip_prefix("chaos-w-")?))),
        "api_keys" => Some(("name", format!("key {}", id.strip_prefix("chaos-k-")?))),
        _ => None,
    }
}

/// One node's final state of the collections the writers touch.
pub type State = BTreeMap<(String, String), Value>;

async fn state_of(client: &AdminClient) -> Result<(State, Option<u64>), String> {
    let mut state = State::new();
    for c in ["routes", "api_keys"] {
        let list = client
            .list(c, Read::Local)
            .await
            .map_err(|e| e.to_string())?;
        for item in list.items {
            if let Some(id) = item.get("id").and_then(Value::as_str) {
                state.insert((c.to_string(), id.to_string()), item.clone());
            }
        }
    }
    let churn = client
        .get("quota_policies", "chaos-churn", Read::Local)
        .await
        .map_err(|e| e.to_string())?
        .get("limit")
        .and_then(Value::as_u64);
    Ok((state, churn))
}

/// One member's final state: routes and API keys by (collection, id), and the limit of
/// the churned quota policy.
pub type NodeState = (State, Option<u64>);

/// Reads every node in `nodes` (index, client) and checks `ops` against what they hold.
pub async fn check(nodes: &[(usize, AdminClient)], ops: &[Op]) -> Check {
    let mut states = Vec::new();
    for (i, client) in nodes {
        match state_of(client).await {
            Ok(s) => states.push((*i, s)),
            Err(e) => {
                return Check::new(
                    "lost-writes",
                    Verdict::Fail,
                    format!("node index {i} unreadable"),
                )
                .with_evidence(vec![format!("reading node index {i}'s final state: {e}")])
            }
        }
    }
    judge(&states, ops)
}

/// The verdict for the members' final `states` (node index, state) given the history.
pub fn judge(states: &[(usize, NodeState)], ops: &[Op]) -> Check {
    let mut problems = Vec::new();
    if let Some((first, (s0, c0))) = states.first() {
        for (i, (s, c)) in &states[1..] {
            if s.keys().collect::<Vec<_>>() != s0.keys().collect::<Vec<_>>() || c != c0 {
                let a: BTreeSet<_> = s0.keys().collect();
                let b: BTreeSet<_> = s.keys().collect();
                problems.push(format!(
                    "node index {first} and {i} differ: only on {first}: {:?}; only on {i}: {:?}; churn limit {c0:?} vs {c:?}",
                    a.difference(&b).take(5).collect::<Vec<_>>(),
                    b.difference(&a).take(5).collect::<Vec<_>>()
                ));
            }
        }
    }
    let (mut acked, mut unknown, mut failed) = (0, 0, 0);
    let deletes: BTreeMap<(String, String), &Op> = ops
        .iter()
        .filter_map(|op| match &op.kind {
            OpKind::Delete { collection, id } => Some(((collection.clone(), id.clone()), op)),
            _ => None,
        })
        .collect();
    for op in ops {
        let ok = op.outcome.is_success();
        let definite_fail = op.outcome.is_definite_failure();
        match &op.kind {
            OpKind::Create { collection, id } => {
                let key = (collection.clone(), id.clone());
                let delete = deletes.get(&key);
                let maybe_deleted = delete.is_some_and(|d| !d.outcome.is_definite_failure());
                if let Some(d) = delete {
                    if ok && d.invoke_us > op.complete_us && d.outcome.status() == Some(404) {
                        problems.push(format!(
                            "create {collection}/{id} acknowledged at {} but its delete at {} found nothing (404)",
                            secs(op.complete_us),
                            secs(d.invoke_us)
                        ));
                    }
                }
                for (i, (state, _)) in states {
                    let stored = state.get(&key);
                    if let (Some(v), Some((field, want))) = (stored, expected(collection, id)) {
                        if v.get(field).and_then(Value::as_str) != Some(want.as_str()) {
                            problems.push(format!(
                                "node index {i}: {collection}/{id} is half-applied: {v}"
                            ));
                        }
                    }
                    if ok && !maybe_deleted && stored.is_none() {
                        problems.push(format!(
                            "LOST: create {collection}/{id} acknowledged at {} by node index {} is missing on node index {i}",
                            secs(op.complete_us),
                            op.node
                        ));
                    }
                    if definite_fail && stored.is_some() {
                        problems.push(format!(
                            "node index {i}: create {collection}/{id} failed with {} but is present",
                            op.outcome.short()
                        ));
                    }
                }
            }
            OpKind::Delete { collection, id } => {
                let key = (collection.clone(), id.clone());
                for (i, (state, _)) in states {
                    if ok && state.contains_key(&key) {
                        problems.push(format!(
                            "LOST: delete {collection}/{id} acknowledged at {} but the item is on node index {i}",
                            secs(op.complete_us)
                        ));
                    }
                }
            }
            OpKind::QuotaChange { .. } => {}
            _ => continue,
        }
        if ok {
            acked += 1;
        } else if definite_fail {
            failed += 1;
        } else {
            unknown += 1;
        }
    }
    // The churned policy's final limit: the last acknowledged change's value, or that of
    // a change that may have been applied after it.
    let changes: Vec<(&Op, u64)> = ops
        .iter()
        .filter_map(|op| match &op.kind {
            OpKind::QuotaChange { limit, .. } => Some((op, *limit)),
            _ => None,
        })
        .collect();
    if let Some((last, _)) = changes
        .iter()
        .filter(|(op, _)| op.outcome.is_success())
        .max_by_key(|(op, _)| op.complete_us)
    {
        let candidates: BTreeSet<u64> = changes
            .iter()
            .filter(|(op, _)| !op.outcome.is_definite_failure() && op.complete_us >= last.invoke_us)
            .map(|(_, l)| *l)
            .collect();
        for (i, (_, churn)) in states {
            if !churn.is_some_and(|c| candidates.contains(&c)) {
                problems.push(format!(
                    "node index {i}: chaos-churn limit is {churn:?}, not one of the writes that could be last {candidates:?}"
                ));
            }
        }
    }
    let summary = format!(
        "{acked} acked, {unknown} unknown, {failed} failed writes; {} problems",
        problems.len()
    );
    let verdict = if !problems.is_empty() {
        Verdict::Fail
    } else if acked == 0 {
        Verdict::Skip
    } else {
        Verdict::Pass
    };
    problems.truncate(20);
    Check::new("lost-writes", verdict, summary).with_evidence(problems)
}

#[cfg(test)]
mod tests;

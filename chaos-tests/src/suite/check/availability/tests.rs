use std::time::Duration;

use super::*;
use crate::suite::history::Outcome;

fn trace(sides: Vec<Side>, election: Option<Duration>) -> Trace {
    Trace {
        description: String::new(),
        start_us: 1_000_000,
        healed_us: 5_000_000,
        sides,
        election,
        removed: Vec::new(),
        clock_offsets: Vec::new(),
    }
}

fn rest(route: &str, node: usize, at: u64, outcome: Outcome) -> Op {
    Op {
        client: 1,
        node,
        kind: OpKind::Rest {
            route: route.into(),
        },
        invoke_us: at,
        complete_us: at + 1_000,
        outcome,
    }
}

fn status(s: u16) -> Outcome {
    Outcome::Status {
        status: s,
        code: None,
    }
}

#[test]
fn answers_of_any_non_5xx_status_count_and_down_nodes_are_not_judged() {
    let ops = vec![
        rest("chaos-open", 0, 0, status(200)),
        rest("chaos-limited", 1, 0, status(429)),
        rest(
            "chaos-open",
            2,
            2_000_000,
            Outcome::NoAnswer {
                error: "refused".into(),
            },
        ),
    ];
    let t = trace(vec![Side::Majority, Side::Majority, Side::Down], None);
    let (c, pct) = check(&ops, &t);
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert!((pct - 100.0).abs() < 1e-9);
}

#[test]
fn a_failed_call_to_the_open_route_on_a_minority_node_fails() {
    let ops = vec![
        rest("chaos-open", 0, 0, status(200)),
        rest("chaos-open", 2, 2_000_000, status(502)),
    ];
    let t = trace(vec![Side::Majority, Side::Majority, Side::Minority], None);
    let (c, pct) = check(&ops, &t);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!((pct - 50.0).abs() < 1e-9, "{pct}");
    assert!(c.evidence.iter().any(|e| e.contains("502")), "{c:?}");
}

#[test]
fn limited_calls_fail_on_the_majority_only_outside_the_leaderless_window() {
    let unavailable = Outcome::Status {
        status: 503,
        code: Some("quota_unavailable".into()),
    };
    let t = trace(
        vec![Side::Minority, Side::Majority, Side::Majority],
        Some(Duration::from_millis(500)),
    );
    // During the election (+ grace) on the majority, and any time on the minority: excused.
    let ops = vec![
        rest("chaos-open", 1, 0, status(200)),
        rest("chaos-limited", 1, 2_000_000, unavailable.clone()),
        rest("chaos-limited", 0, 4_000_000, unavailable.clone()),
    ];
    assert_eq!(check(&ops, &t).0.verdict, Verdict::Pass);
    // After the grace on the majority: judged.
    let late = vec![
        rest("chaos-open", 1, 0, status(200)),
        rest("chaos-limited", 2, 4_000_000, unavailable),
    ];
    let (c, _) = check(&late, &t);
    assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
}

use super::*;
use crate::suite::history::Outcome;
use crate::suite::nemesis::Span;
use crate::suite::watch::Sample;

/// Three voters; node 0 leads until `change_us` (if any), node 1 after it; no leader
/// for 500 ms in between.
fn trace(change_us: Option<u64>) -> Trace {
    let mut leaders = Vec::new();
    for t in (0..10_000_000).step_by(100_000) {
        let leader = match change_us {
            Some(c) if t >= c + 500_000 => Some(1),
            Some(c) if t >= c => None,
            _ => Some(0),
        };
        leaders.push(Sample { t_us: t, leader });
    }
    Trace {
        start_us: 1_000_000,
        healed_us: 5_000_000,
        voters: vec![(0, 3)],
        leaders,
        ..Trace::default()
    }
}

fn span(from_us: u64, to_us: u64) -> Span {
    Span { from_us, to_us }
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

fn unavailable() -> Outcome {
    Outcome::Status {
        status: 503,
        code: Some("quota_unavailable".into()),
    }
}

#[test]
fn answers_of_any_non_5xx_status_count_and_calls_to_a_down_node_are_not_judged() {
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
    let mut t = trace(None);
    t.down.push((2, span(1_500_000, 3_000_000)));
    let (c, pct) = check(&ops, &t);
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert!((pct - 100.0).abs() < 1e-9);
}

#[test]
fn a_node_is_judged_again_once_its_down_span_ends() {
    let mut t = trace(None);
    t.down.push((2, span(1_500_000, 3_000_000)));
    let ops = vec![rest("chaos-open", 2, 3_500_000, status(502))];
    let (c, pct) = check(&ops, &t);
    assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
    assert!(pct < 1e-9, "{pct}");
    assert!(c.evidence.iter().any(|e| e.contains("502")), "{c:?}");
}

#[test]
fn a_failed_call_to_the_open_route_on_a_cut_off_node_fails() {
    let mut t = trace(None);
    t.cuts.push((2, 0, span(1_000_000, 5_000_000)));
    t.cuts.push((2, 1, span(1_000_000, 5_000_000)));
    let ops = vec![
        rest("chaos-open", 0, 0, status(200)),
        rest("chaos-open", 2, 2_000_000, status(502)),
    ];
    let (c, pct) = check(&ops, &t);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!((pct - 50.0).abs() < 1e-9, "{pct}");
}

#[test]
fn limited_calls_are_excused_without_a_leader_and_for_the_grace_after_a_change() {
    let t = trace(Some(3_000_000));
    let ops = vec![
        rest("chaos-open", 1, 0, status(200)),
        // No leader between 3.0 s and 3.5 s.
        rest("chaos-limited", 1, 3_200_000, unavailable()),
        // Within the grace after node 1 took over at 3.5 s.
        rest("chaos-limited", 2, 5_000_000, unavailable()),
    ];
    let (c, _) = check(&ops, &t);
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    // After the grace: judged.
    let late = vec![
        rest("chaos-open", 1, 0, status(200)),
        rest("chaos-limited", 2, 6_000_000, unavailable()),
    ];
    assert_eq!(check(&late, &t).0.verdict, Verdict::Fail);
    // And before the change, while node 0 led with a quorum: judged.
    let early = vec![
        rest("chaos-open", 1, 0, status(200)),
        rest("chaos-limited", 2, 2_000_000, unavailable()),
    ];
    assert_eq!(check(&early, &t).0.verdict, Verdict::Fail);
}

#[test]
fn a_node_cut_from_the_leader_is_excused_until_the_grace_after_the_heal() {
    // Bridge: leader 0 and node 2 cannot talk; node 1 reaches both.
    let mut t = trace(None);
    t.cuts.push((0, 2, span(1_000_000, 4_000_000)));
    let during = vec![
        rest("chaos-open", 2, 0, status(200)),
        rest("chaos-limited", 2, 2_000_000, unavailable()),
        rest("chaos-limited", 2, 5_500_000, unavailable()),
    ];
    let (c, _) = check(&during, &t);
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert!(
        c.evidence
            .iter()
            .any(|e| e.contains("link to the leader cut")),
        "{c:?}"
    );
    // Node 1 still reaches the leader, which keeps a quorum: judged.
    let bridge = vec![
        rest("chaos-open", 1, 0, status(200)),
        rest("chaos-limited", 1, 2_000_000, unavailable()),
    ];
    assert_eq!(check(&bridge, &t).0.verdict, Verdict::Fail);
    // After heal + grace, node 2 is judged again.
    let after = vec![
        rest("chaos-open", 1, 0, status(200)),
        rest("chaos-limited", 2, 6_500_000, unavailable()),
    ];
    assert_eq!(check(&after, &t).0.verdict, Verdict::Fail);
}

#[test]
fn a_leader_cut_off_from_a_quorum_excuses_every_limited_call() {
    // The leader is isolated but the watch still sees the followers naming it.
    let mut t = trace(None);
    t.cuts.push((0, 1, span(1_000_000, 4_000_000)));
    t.cuts.push((0, 2, span(1_000_000, 4_000_000)));
    let ops = vec![
        rest("chaos-open", 1, 0, status(200)),
        rest("chaos-limited", 0, 2_000_000, unavailable()),
    ];
    let (c, _) = check(&ops, &t);
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert!(
        c.evidence
            .iter()
            .any(|e| e.contains("cut off from a quorum")),
        "{c:?}"
    );
}

use super::*;
use crate::suite::history::Outcome;

fn trace() -> Trace {
    Trace {
        voters: vec![(0, 3)],
        ..Trace::default()
    }
}

fn llm(node: usize, invoke_us: u64, complete_us: u64, status: u16) -> Op {
    Op {
        client: 1,
        node,
        kind: OpKind::Llm {
            model: "chaos-model".into(),
        },
        invoke_us,
        complete_us,
        outcome: Outcome::Status { status, code: None },
    }
}

fn limit(n: u64) -> Vec<Limit> {
    vec![Limit {
        policy: "chaos-llm",
        limit: n,
        window_ms: 1_000,
    }]
}

/// `count` calls answered `status`, 1 ms long, spread over the first 500 ms of the
/// second that starts `second_us` after the run began (relative to the window grid).
fn burst(h: &History, second: u64, count: u64, status: u16) -> Vec<Op> {
    // Align on the wall-clock grid: the run started at some wall ms inside a second.
    let into = h.wall_ms(0) % 1_000;
    let base_us = ((1_000 - into) + second * 1_000) * 1_000;
    (0..count)
        .map(|k| {
            llm(
                (k % 3) as usize,
                base_us + k * 1_000,
                base_us + k * 1_000 + 500,
                status,
            )
        })
        .collect()
}

#[test]
fn within_the_limit_passes_and_reports_the_fill() {
    let h = History::new();
    let mut ops = burst(&h, 1, 10, 200);
    ops.extend(burst(&h, 1, 20, 429).into_iter().map(|mut o| {
        o.invoke_us += 100_000;
        o.complete_us += 100_000;
        o
    }));
    let (c, worst) = check(&ops, &h, &trace(), &limit(10));
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    assert!((worst - 1.0).abs() < 1e-9, "10 of 10 admitted: {worst}");
    assert!(
        c.evidence.iter().any(|e| e.contains("100% of the limit")),
        "{c:?}"
    );
}

#[test]
fn one_call_over_the_limit_in_a_window_fails() {
    let h = History::new();
    let ops = burst(&h, 2, 11, 200);
    let (c, worst) = check(&ops, &h, &trace(), &limit(10));
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(worst > 1.0);
    assert!(
        c.evidence
            .iter()
            .any(|e| e.contains("OVER-ADMITTED") && e.contains("11")),
        "{c:?}"
    );
}

#[test]
fn the_same_calls_spread_over_two_windows_pass() {
    let h = History::new();
    let mut ops = burst(&h, 1, 6, 200);
    ops.extend(burst(&h, 2, 6, 200));
    assert_eq!(
        check(&ops, &h, &trace(), &limit(10)).0.verdict,
        Verdict::Pass
    );
}

#[test]
fn calls_across_a_boundary_or_from_a_stepped_clock_are_only_ambiguous() {
    let h = History::new();
    let mut ops = burst(&h, 1, 10, 200);
    // Two more calls that straddle the end of that second: not surely in it.
    let into = h.wall_ms(0) % 1_000;
    let end_us = ((1_000 - into) + 2_000) * 1_000;
    ops.push(llm(0, end_us - 300, end_us + 300, 200));
    ops.push(llm(1, end_us - 200, end_us + 200, 200));
    assert_eq!(
        check(&ops, &h, &trace(), &limit(10)).0.verdict,
        Verdict::Pass
    );

    // Eleven calls in one second, but one from a node whose clock ran 5 s ahead.
    let mut ops = burst(&h, 1, 10, 200);
    let mut stepped = burst(&h, 1, 1, 200);
    stepped[0].node = 2;
    ops.extend(stepped);
    let mut t = trace();
    t.clock_offsets.push((2, 5));
    assert_eq!(check(&ops, &h, &t, &limit(10)).0.verdict, Verdict::Pass);
    assert_eq!(
        check(&ops, &h, &trace(), &limit(10)).0.verdict,
        Verdict::Fail
    );
}

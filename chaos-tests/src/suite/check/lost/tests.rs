use serde_json::json;

use super::*;
use crate::suite::history::Outcome;

fn op(kind: OpKind, invoke_us: u64, complete_us: u64, status: Option<u16>) -> Op {
    Op {
        client: 1,
        node: 0,
        kind,
        invoke_us,
        complete_us,
        outcome: match status {
            Some(s) => Outcome::Status {
                status: s,
                code: None,
            },
            None => Outcome::NoAnswer {
                error: "timeout".into(),
            },
        },
    }
}

fn create_route(n: u64, at: u64, status: Option<u16>) -> Op {
    let kind = OpKind::Create {
        collection: "routes".into(),
        id: format!("chaos-w-{n}"),
    };
    op(kind, at, at + 10, status)
}

fn state(routes: &[u64], churn: u64) -> NodeState {
    let mut s = State::new();
    for n in routes {
        s.insert(
            ("routes".into(), format!("chaos-w-{n}")),
            json!({"id": format!("chaos-w-{n}"), "path": format!("/chaos/w/{n}")}),
        );
    }
    (s, Some(churn))
}

fn churn(limit: u64, at: u64, status: Option<u16>) -> Op {
    let kind = OpKind::QuotaChange {
        id: "chaos-churn".into(),
        limit,
    };
    op(kind, at, at + 10, status)
}

#[test]
fn acknowledged_creates_present_everywhere_pass() {
    let ops = vec![
        create_route(1, 0, Some(201)),
        create_route(2, 100, None),
        churn(1005, 200, Some(200)),
    ];
    // The unknown create 2 may be present or not.
    let states = vec![(0, state(&[1, 2], 1005)), (1, state(&[1, 2], 1005))];
    let c = judge(&states, &ops);
    assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    let states = vec![(0, state(&[1], 1005)), (1, state(&[1], 1005))];
    assert_eq!(judge(&states, &ops).verdict, Verdict::Pass);
}

#[test]
fn an_acknowledged_create_missing_on_one_node_fails() {
    let ops = vec![
        create_route(1, 0, Some(201)),
        create_route(2, 100, Some(201)),
    ];
    let states = vec![(0, state(&[1, 2], 1000)), (1, state(&[1], 1000))];
    let c = judge(&states, &ops);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence
            .iter()
            .any(|e| e.contains("LOST") && e.contains("chaos-w-2") && e.contains("node index 1")),
        "{c:?}"
    );
}

#[test]
fn a_failed_write_present_or_a_half_applied_one_fails() {
    let ops = vec![
        create_route(1, 0, Some(201)),
        create_route(3, 50, Some(400)),
    ];
    let c = judge(&[(0, state(&[1, 3], 1000))], &ops);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence.iter().any(|e| e.contains("failed with 400")),
        "{c:?}"
    );

    let mut half = state(&[1], 1000);
    half.0.insert(
        ("routes".into(), "chaos-w-1".into()),
        json!({"id": "chaos-w-1", "path": "/elsewhere"}),
    );
    let c = judge(&[(0, half)], &[create_route(1, 0, Some(201))]);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence.iter().any(|e| e.contains("half-applied")),
        "{c:?}"
    );
}

#[test]
fn an_acknowledged_delete_still_present_fails_and_a_deleted_create_is_not_lost() {
    let delete = op(
        OpKind::Delete {
            collection: "routes".into(),
            id: "chaos-w-1".into(),
        },
        100,
        110,
        Some(200),
    );
    let ops = vec![create_route(1, 0, Some(201)), delete];
    assert_eq!(judge(&[(0, state(&[], 1000))], &ops).verdict, Verdict::Pass);
    let c = judge(&[(0, state(&[1], 1000))], &ops);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.evidence
            .iter()
            .any(|e| e.contains("delete routes/chaos-w-1 acknowledged")),
        "{c:?}"
    );
}

#[test]
fn the_churned_limit_must_be_one_a_write_could_leave_last() {
    let ops = vec![
        churn(1001, 0, Some(200)),
        churn(1002, 100, Some(200)),
        churn(1003, 200, None),
        churn(1004, 300, Some(409)),
    ];
    for ok in [1002, 1003] {
        assert_eq!(
            judge(&[(0, state(&[], ok))], &ops).verdict,
            Verdict::Pass,
            "{ok}"
        );
    }
    for bad in [1001, 1004] {
        assert_eq!(
            judge(&[(0, state(&[], bad))], &ops).verdict,
            Verdict::Fail,
            "{bad}"
        );
    }
}

#[test]
fn members_that_disagree_fail() {
    let ops = vec![create_route(1, 0, None)];
    let c = judge(&[(0, state(&[1], 1000)), (1, state(&[], 1000))], &ops);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.evidence.iter().any(|e| e.contains("differ")), "{c:?}");
}

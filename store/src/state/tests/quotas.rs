//! Quota policies in the state: the metric rule for REST routes, and what syncs and
//! policy changes do to the revision and the ledger.

use super::*;
use crate::quota::{CounterId, QuotaSync, Units};

fn quota(id: &str, metric: QuotaMetric, window: QuotaWindow) -> Resource {
    Resource::QuotaPolicy(QuotaPolicy {
        id: id.into(),
        tenant: None,
        scope: vec![QuotaScope::ApiKey],
        metric,
        window,
        limit: 100,
        mode: QuotaMode::Strict,
        fail_open: false,
        hard: false,
    })
}

fn with_quota(r: Resource, q: &str) -> Resource {
    let Resource::Route(mut rt) = r else {
        unreachable!()
    };
    rt.policies.push(Policy::Quota(q.into()));
    Resource::Route(rt)
}

fn ask(serial: u64, policy: &str) -> Op {
    Op::QuotaSync(QuotaSync {
        node: 1,
        epoch: 1,
        serial,
        voters: 1,
        asks: vec![Units {
            counter: CounterId {
                policy: policy.into(),
                key: "api_key=k".into(),
                window_start_ms: 1_699_999_980_000,
                window_end_ms: 1_700_000_040_000,
            },
            units: 10,
        }],
        returns: Vec::new(),
        usage: Vec::new(),
    })
}

#[test]
fn rest_routes_take_request_quotas_only() {
    let mut s = base();
    ok(
        &mut s,
        10,
        Op::Create(quota("tokens", QuotaMetric::TotalTokens, QuotaWindow::Day)),
    );
    ok(
        &mut s,
        11,
        Op::Create(quota("reqs", QuotaMetric::Requests, QuotaWindow::Minute)),
    );
    let e = rejected(
        &mut s,
        Op::Create(with_quota(route("r2", None, "echo"), "tokens")),
    );
    assert!(
        matches!(&e, ApplyError::Invalid { field, .. } if field == "policies.quota"),
        "{e}"
    );
    ok(
        &mut s,
        12,
        Op::Create(with_quota(route("r2", None, "echo"), "reqs")),
    );
    // Turning the route's quota into a token quota is refused from the other side.
    let e = rejected(
        &mut s,
        Op::Update(quota("reqs", QuotaMetric::CostMicros, QuotaWindow::Minute)),
    );
    assert!(
        matches!(&e, ApplyError::Invalid { field, .. } if field == "metric"),
        "{e}"
    );
}

#[test]
fn syncs_leave_the_revision_and_policy_changes_reset_counting() {
    let mut s = base();
    ok(
        &mut s,
        10,
        Op::Create(quota("q", QuotaMetric::Requests, QuotaWindow::Minute)),
    );
    let a = ok(&mut s, 11, ask(1, "q"));
    assert_eq!(a.quota.expect("a reply").grants[0].units, 10);
    assert_eq!(
        s.revision(),
        10,
        "a quota sync is not a configuration change"
    );
    assert_eq!(s.ledger().len(), 1);
    // Inside a batch a sync is refused.
    let e = rejected(&mut s, Op::Batch(vec![ask(2, "q")]));
    assert!(matches!(e, ApplyError::QuotaSync(_)));
    // A new limit keeps the counters; a new window starts counting over.
    let mut higher = quota("q", QuotaMetric::Requests, QuotaWindow::Minute);
    if let Resource::QuotaPolicy(p) = &mut higher {
        p.limit = 500;
    }
    ok(&mut s, 12, Op::Update(higher));
    assert_eq!(s.ledger().len(), 1);
    ok(
        &mut s,
        13,
        Op::Update(quota("q", QuotaMetric::Requests, QuotaWindow::Hour)),
    );
    assert!(s.ledger().is_empty());
    ok(&mut s, 14, ask(2, "q"));
    ok(
        &mut s,
        15,
        Op::Delete {
            kind: Kind::QuotaPolicy,
            id: "q".into(),
        },
    );
    assert!(s.ledger().is_empty(), "a deleted policy takes its counters");
}

//! Revoked tokens and the audit trail: recorded at apply, bounded by the command clock.

use super::*;
use crate::audit::{AuditFilter, Origin, MAX_AUDIT_AGE_MS, MAX_AUDIT_RECORDS, REVOKED_GRACE_MS};

const T0: u64 = 1_700_000_000_000;

fn origin(role: &str, tenant: Option<&str>) -> Origin {
    Origin {
        role: role.into(),
        tenant: tenant.map(Into::into),
        node: 3,
        method: "POST".into(),
        path: "/admin/v1/consumers".into(),
    }
}

fn audited(at_ms: u64, actor: &str, o: Origin, op: Op) -> Command {
    Command {
        at_ms,
        actor: actor.into(),
        op,
        origin: Some(o),
    }
}

fn apply(s: &mut State, rev: u64, c: &Command) -> (Result<Applied, ApplyError>, Vec<Change>) {
    let mut changes = Vec::new();
    let r = s.apply(rev, c, &mut changes);
    (r, changes)
}

fn revoke(jti: &str, exp_secs: u64) -> Op {
    Op::RevokeToken {
        jti: jti.into(),
        exp: exp_secs,
    }
}

#[test]
fn writes_are_audited_with_their_outcome_and_tenant() {
    let mut s = base();
    let c = audited(
        T0,
        "ops",
        origin("admin", None),
        Op::Create(consumer("c2", "acme")),
    );
    let (r, changes) = apply(&mut s, 10, &c);
    assert!(r.is_ok());
    assert!(changes.contains(&Change::Audit(10)));
    // A refused write changes no resource but is recorded, and moves no revision.
    let (r, changes) = apply(
        &mut s,
        11,
        &audited(
            T0 + 1,
            "ops",
            origin("admin", None),
            Op::Create(consumer("c2", "acme")),
        ),
    );
    assert_eq!(r.unwrap_err().code(), "already_exists");
    assert_eq!(changes, vec![Change::Audit(11)]);
    assert_eq!(s.revision(), 10);
    // A delete is attributed to the tenant of what it removed.
    let del = Op::Delete {
        kind: Kind::Consumer,
        id: "c2".into(),
    };
    apply(
        &mut s,
        12,
        &audited(T0 + 2, "ta", origin("tenant-admin", Some("acme")), del),
    )
    .0
    .expect("delete");
    let recs: Vec<_> = s.audit_records().cloned().collect();
    assert_eq!(recs.len(), 3);
    assert_eq!(
        (
            recs[0].op.as_str(),
            recs[0].kind,
            recs[0].id.as_deref(),
            recs[0].tenant.as_deref(),
            recs[0].outcome.as_str()
        ),
        (
            "create",
            Some(Kind::Consumer),
            Some("c2"),
            Some("acme"),
            "ok"
        )
    );
    assert_eq!((recs[0].node, recs[0].seq, recs[0].at_ms), (3, 10, T0));
    assert_eq!(recs[1].outcome, "already_exists");
    assert_eq!(
        (recs[2].op.as_str(), recs[2].tenant.as_deref()),
        ("delete", Some("acme"))
    );
    // Commands without an origin (quota sync, tests, old log entries) are not audited.
    ok(&mut s, 13, Op::Create(consumer("c3", "acme")));
    assert_eq!(s.audit_records().count(), 3);

    let only = |f: AuditFilter| s.audit_records().filter(|r| f.matches(r)).count();
    assert_eq!(
        only(AuditFilter {
            actor: Some("ta".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        only(AuditFilter {
            tenant: Some("other".into()),
            ..Default::default()
        }),
        0
    );
    assert_eq!(
        only(AuditFilter {
            since_ms: Some(T0 + 1),
            until_ms: Some(T0 + 2),
            ..Default::default()
        }),
        1
    );
}

#[test]
fn provider_secrets_never_reach_the_audit_trail() {
    let mut s = base();
    let c = audited(T0, "ops", origin("admin", None), Op::Create(provider("p1")));
    apply(&mut s, 10, &c).0.expect("provider");
    let text = format!("{:?}", s.audit_records().collect::<Vec<_>>());
    assert!(text.contains("p1") && !text.contains("sk-secret"), "{text}");
}

#[test]
fn the_trail_is_bounded_by_count_and_age() {
    let mut s = State::default();
    let n = MAX_AUDIT_RECORDS as u64 + 5;
    for i in 0..n {
        // Refused deletes: audited like any write, without growing a resource table.
        let gone = Op::Delete {
            kind: Kind::Tenant,
            id: format!("t{i}"),
        };
        let c = audited(T0 + i, "ops", origin("admin", None), gone);
        assert!(apply(&mut s, i + 1, &c).0.is_err());
    }
    assert_eq!(s.audit_records().count(), MAX_AUDIT_RECORDS);
    assert_eq!(s.audit_records().next().map(|r| r.seq), Some(6));
    // Much later, any command (audited or not) drops what is too old.
    let late = T0 + n + MAX_AUDIT_AGE_MS + 1;
    let (_, changes) = apply(
        &mut s,
        n + 1,
        &Command {
            at_ms: late,
            ..cmd(Op::Create(tenant("late")))
        },
    );
    assert_eq!(s.audit_records().count(), 0);
    assert_eq!(
        changes
            .iter()
            .filter(|c| matches!(c, Change::Audit(_)))
            .count(),
        MAX_AUDIT_RECORDS
    );
}

#[test]
fn revocations_are_kept_until_expiry_plus_grace() {
    let mut s = base();
    let exp = T0 / 1000 + 60;
    let (r, changes) = apply(
        &mut s,
        10,
        &Command {
            at_ms: T0,
            ..cmd(revoke("abc", exp))
        },
    );
    r.expect("revoke");
    assert!(changes.contains(&Change::Revoked("abc".into())));
    assert!(s.is_revoked("abc") && !s.is_revoked("abd"));
    assert_eq!(s.revision(), 10);
    // Idempotent; a later expiry extends it.
    apply(
        &mut s,
        11,
        &Command {
            at_ms: T0,
            ..cmd(revoke("abc", exp + 10))
        },
    )
    .0
    .expect("again");
    assert_eq!(s.revoked_token("abc").map(|r| r.exp), Some(exp + 10));
    // Still refused within the grace after expiry (lagging clocks), forgotten after.
    let forget = (exp + 10) * 1000 + REVOKED_GRACE_MS;
    ok(&mut s, 12, Op::Create(tenant("x")));
    let (_, changes) = apply(
        &mut s,
        13,
        &Command {
            at_ms: forget - 1,
            ..cmd(Op::Create(tenant("y")))
        },
    );
    assert!(s.is_revoked("abc") && !changes.contains(&Change::Revoked("abc".into())));
    let (_, changes) = apply(
        &mut s,
        14,
        &Command {
            at_ms: forget,
            ..cmd(Op::Create(tenant("z")))
        },
    );
    assert!(!s.is_revoked("abc"));
    assert!(changes.contains(&Change::Revoked("abc".into())));
    // Already past its grace: accepted, nothing kept.
    apply(
        &mut s,
        15,
        &Command {
            at_ms: forget,
            ..cmd(revoke("old", 1))
        },
    )
    .0
    .expect("old");
    assert!(!s.is_revoked("old"));
}

#[test]
fn bad_revocations_are_refused() {
    let mut s = base();
    for jti in ["", "has space", "a/b", &"x".repeat(200)] {
        let e = rejected(&mut s, revoke(jti, u64::MAX));
        assert_eq!(e.code(), "invalid_request", "{jti:?}");
    }
    let e = rejected(&mut s, Op::Batch(vec![revoke("ok", u64::MAX)]));
    assert!(matches!(e, ApplyError::Revocation(_)));
}

#[test]
fn images_carry_revocations_and_audit_and_restores_keep_them() {
    let mut s = base();
    ok(
        &mut s,
        5,
        Op::InitCluster {
            cluster_id: "c".into(),
            token_secret: vec![1; 32],
        },
    );
    apply(
        &mut s,
        6,
        &Command {
            at_ms: T0,
            ..cmd(revoke("live", u64::MAX / 2000))
        },
    )
    .0
    .expect("revoke");
    apply(
        &mut s,
        7,
        &audited(T0, "ops", origin("admin", None), Op::Create(tenant("t9"))),
    )
    .0
    .expect("t9");
    let image = s.to_image();
    let back =
        State::from_image(crate::codec::decode(&crate::codec::encode(&image).unwrap()).unwrap());
    assert_eq!(back, s);
    assert!(back.is_revoked("live") && back.audit_records().count() == 1);

    // A backup from before: no revocation, no audit record. The restore keeps both.
    let mut old = base().to_image();
    old.revoked.push(crate::audit::RevokedToken {
        jti: "from-backup".into(),
        exp: u64::MAX / 2000,
        revoked_at_ms: T0,
        revoked_by: "x".into(),
    });
    let restore = audited(T0 + 5, "ops", origin("admin", None), Op::Restore(old));
    apply(&mut s, 8, &restore).0.expect("restore");
    assert!(s.is_revoked("live") && s.is_revoked("from-backup"));
    let ops: Vec<_> = s.audit_records().map(|r| r.op.clone()).collect();
    assert_eq!(ops, ["create", "restore"]);
    assert!(
        s.get(Kind::Tenant, "t9").is_none(),
        "resources come from the backup"
    );
}

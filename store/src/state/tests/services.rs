//! Services, subscriptions and certificates: references, tenancy, uniqueness, cascades.

use super::*;

fn service(id: &str, tenant: &str, visibility: Visibility) -> Resource {
    Resource::Service(Service {
        id: id.into(),
        tenant: tenant.into(),
        name: String::new(),
        description: String::new(),
        state: Lifecycle::Published,
        approval_required: false,
        visibility,
        sunset_at_ms: None,
    })
}

fn subscription(id: &str, consumer: &str, service: &str) -> Resource {
    Resource::Subscription(Subscription {
        id: id.into(),
        consumer: consumer.into(),
        service: service.into(),
        state: SubscriptionState::Approved,
        note: String::new(),
    })
}

fn in_service(id: &str, tenant: Option<&str>, svc: &str) -> Resource {
    let mut r = route(id, tenant, "echo");
    if let Resource::Route(rt) = &mut r {
        rt.service = Some(svc.into());
    }
    r
}

fn delete(kind: Kind, id: &str) -> Op {
    Op::Delete {
        kind,
        id: id.into(),
    }
}

/// `base()` plus tenant `other` with consumer `their-app`, and service `svc` of `acme`.
fn world(visibility: Visibility) -> State {
    let mut s = base();
    ok(&mut s, 10, Op::Create(tenant("other")));
    ok(&mut s, 11, Op::Create(consumer("their-app", "other")));
    ok(&mut s, 12, Op::Create(service("svc", "acme", visibility)));
    s
}

#[test]
fn routes_reference_services_of_their_own_tenant() {
    let mut s = world(Visibility::Tenant);
    let e = rejected(&mut s, Op::Create(in_service("r2", Some("acme"), "ghost")));
    assert!(
        matches!(e, ApplyError::Dangling { target_kind: Kind::Service, ref field, .. } if field == "service"),
        "{e:?}"
    );
    // A cluster-wide route or another tenant's route cannot join acme's service.
    for tenant in [None, Some("other")] {
        let e = rejected(&mut s, Op::Create(in_service("r2", tenant, "svc")));
        match e {
            ApplyError::Invalid { field, message, .. } => {
                assert_eq!(field, "tenant");
                assert!(message.contains("'acme'"), "{message}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
    ok(
        &mut s,
        20,
        Op::Create(in_service("r2", Some("acme"), "svc")),
    );
    // Routes block the service's delete.
    assert_eq!(
        rejected(&mut s, delete(Kind::Service, "svc")),
        ApplyError::InUse {
            kind: Kind::Service,
            id: "svc".into(),
            used_by: vec![(Kind::Route, "r2".into())]
        }
    );
}

#[test]
fn subscription_references_must_exist() {
    let mut s = world(Visibility::Tenant);
    let e = rejected(&mut s, Op::Create(subscription("s1", "ghost", "svc")));
    assert!(
        matches!(
            e,
            ApplyError::Dangling {
                target_kind: Kind::Consumer,
                ..
            }
        ),
        "{e:?}"
    );
    let e = rejected(&mut s, Op::Create(subscription("s1", "app", "ghost")));
    assert!(
        matches!(
            e,
            ApplyError::Dangling {
                target_kind: Kind::Service,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn owners_of_the_new_kinds() {
    let mut s = world(Visibility::Public);
    ok(
        &mut s,
        20,
        Op::Create(subscription("s1", "their-app", "svc")),
    );
    let owner = |s: &State, kind, id| {
        let stored = s.get(kind, id).expect("stored");
        s.owner_tenant(&stored.resource)
    };
    assert_eq!(owner(&s, Kind::Service, "svc").as_deref(), Some("acme"));
    // A subscription belongs to its consumer's tenant, not the service's.
    assert_eq!(
        owner(&s, Kind::Subscription, "s1").as_deref(),
        Some("other")
    );
    let cert = Resource::Certificate(Certificate {
        id: "c".into(),
        snis: vec!["example.com".into()],
        cert_pem: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".into(),
        key_pem: "enc:v1:AAAA".into(),
    });
    assert_eq!(s.owner_tenant(&cert), None);
    ok(&mut s, 21, Op::Create(cert));
}

#[test]
fn other_tenants_subscribe_only_to_public_services() {
    let mut s = world(Visibility::Tenant);
    let e = rejected(&mut s, Op::Create(subscription("s1", "their-app", "svc")));
    assert!(
        matches!(e, ApplyError::CrossTenant { target_kind: Kind::Service, ref field, .. } if field == "service"),
        "{e:?}"
    );
    // Same tenant: fine.
    ok(&mut s, 20, Op::Create(subscription("s-own", "app", "svc")));
    ok(
        &mut s,
        21,
        Op::Update(service("svc", "acme", Visibility::Public)),
    );
    ok(
        &mut s,
        22,
        Op::Create(subscription("s1", "their-app", "svc")),
    );
    // The public exception covers subscriptions only: permissions stay within the tenant.
    ok(
        &mut s,
        23,
        Op::Create(in_service("r2", Some("acme"), "svc")),
    );
    let p = Resource::Permission(Permission {
        id: "p".into(),
        consumer: "their-app".into(),
        target: PermissionTarget::Route("r2".into()),
    });
    assert!(matches!(
        rejected(&mut s, Op::Create(p)),
        ApplyError::CrossTenant { .. }
    ));
}

#[test]
fn one_subscription_per_consumer_and_service() {
    let mut s = world(Visibility::Tenant);
    ok(&mut s, 20, Op::Create(subscription("s1", "app", "svc")));
    assert_eq!(
        rejected(&mut s, Op::Create(subscription("s2", "app", "svc"))),
        ApplyError::AlreadyExists {
            kind: Kind::Subscription,
            id: "s1".into()
        }
    );
    // Updating the one subscription is not a duplicate of itself.
    let mut again = subscription("s1", "app", "svc");
    if let Resource::Subscription(sub) = &mut again {
        sub.state = SubscriptionState::Revoked;
        sub.note = "moved to v2".into();
    }
    ok(&mut s, 21, Op::Update(again));
    // Inside a batch the second one is refused too, and nothing of the batch stays.
    ok(
        &mut s,
        22,
        Op::Create(service("svc2", "acme", Visibility::Tenant)),
    );
    let e = rejected(
        &mut s,
        Op::Batch(vec![
            Op::Create(subscription("a", "app", "svc2")),
            Op::Create(subscription("b", "app", "svc2")),
        ]),
    );
    assert!(matches!(e, ApplyError::AlreadyExists { .. }), "{e:?}");
    assert!(s.get(Kind::Subscription, "a").is_none());
}

#[test]
fn subscriptions_cannot_move() {
    let mut s = world(Visibility::Public);
    ok(&mut s, 20, Op::Create(subscription("s1", "app", "svc")));
    let e = rejected(&mut s, Op::Update(subscription("s1", "their-app", "svc")));
    assert!(
        matches!(e, ApplyError::Invalid { ref field, .. } if field == "consumer/service"),
        "{e:?}"
    );
    let e = rejected(
        &mut s,
        Op::Update(service("svc", "other", Visibility::Public)),
    );
    assert!(
        matches!(e, ApplyError::Invalid { ref field, .. } if field == "tenant"),
        "{e:?}"
    );
}

#[test]
fn deleting_a_consumer_takes_its_subscriptions() {
    let mut s = world(Visibility::Public);
    ok(
        &mut s,
        20,
        Op::Create(subscription("s1", "their-app", "svc")),
    );
    ok(&mut s, 21, Op::Create(subscription("s2", "app", "svc")));
    let applied = ok(&mut s, 22, delete(Kind::Consumer, "their-app"));
    assert!(applied
        .changed
        .contains(&(Kind::Subscription, "s1".to_string())));
    assert!(s.get(Kind::Subscription, "s1").is_none());
    assert!(s.get(Kind::Subscription, "s2").is_some());
}

#[test]
fn deleting_a_service_takes_its_subscriptions() {
    let mut s = world(Visibility::Public);
    ok(
        &mut s,
        20,
        Op::Create(subscription("s1", "their-app", "svc")),
    );
    ok(&mut s, 21, Op::Create(subscription("s2", "app", "svc")));
    let applied = ok(&mut s, 22, delete(Kind::Service, "svc"));
    assert_eq!(applied.changed.len(), 3, "{:?}", applied.changed);
    assert_eq!(s.count(Kind::Subscription), 0);
    // The consumers stay.
    assert!(s.get(Kind::Consumer, "their-app").is_some());
}

#[test]
fn a_service_with_foreign_subscribers_stays_public() {
    let mut s = world(Visibility::Public);
    ok(&mut s, 20, Op::Create(subscription("s-own", "app", "svc")));
    ok(
        &mut s,
        21,
        Op::Create(subscription("s-their", "their-app", "svc")),
    );
    let e = rejected(
        &mut s,
        Op::Update(service("svc", "acme", Visibility::Tenant)),
    );
    match e {
        ApplyError::Invalid { field, message, .. } => {
            assert_eq!(field, "visibility");
            assert!(message.contains("'s-their'"), "{message}");
            assert!(!message.contains("'s-own'"), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    ok(&mut s, 22, delete(Kind::Subscription, "s-their"));
    ok(
        &mut s,
        23,
        Op::Update(service("svc", "acme", Visibility::Tenant)),
    );
}

#[test]
fn new_kinds_survive_the_codec_and_snapshots() {
    let mut s = world(Visibility::Public);
    ok(
        &mut s,
        20,
        Op::Create(in_service("r2", Some("acme"), "svc")),
    );
    ok(
        &mut s,
        21,
        Op::Create(subscription("s1", "their-app", "svc")),
    );
    let bytes = codec::encode(&s.to_image()).expect("encode");
    let restored = State::from_image(codec::decode(&bytes).expect("decode"));
    assert_eq!(restored, s);
}

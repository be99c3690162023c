use super::*;
use crate::codec;
use crate::command::Command;

mod admin_log;
mod quotas;
mod restore;
mod services;

fn cmd(op: Op) -> Command {
    Command {
        at_ms: 1_700_000_000_000,
        actor: "test".into(),
        op,
        origin: None,
    }
}

fn tenant(id: &str) -> Resource {
    Resource::Tenant(Tenant {
        id: id.into(),
        name: id.into(),
        description: String::new(),
        labels: Default::default(),
        guardrails: None,
    })
}

fn consumer(id: &str, tenant: &str) -> Resource {
    Resource::Consumer(Consumer {
        id: id.into(),
        tenant: tenant.into(),
        name: String::new(),
        description: String::new(),
        enabled: true,
    })
}

fn upstream(id: &str, tenant: Option<&str>) -> Resource {
    Resource::Upstream(Upstream {
        id: id.into(),
        tenant: tenant.map(Into::into),
        targets: vec![Target {
            address: "127.0.0.1:8000".into(),
            weight: 1,
        }],
        scheme: Scheme::Http,
        balancer: Balancer::RoundRobin,
        protocol: UpstreamProtocol::Http1,
        preserve_host: false,
        timeouts: Timeouts::default(),
        retries: Retries::default(),
        health_check: HealthCheck::default(),
        circuit_breaker: None,
        tls: UpstreamTls::default(),
    })
}

fn route(id: &str, tenant: Option<&str>, upstream: &str) -> Resource {
    Resource::Route(Route {
        id: id.into(),
        tenant: tenant.map(Into::into),
        service: None,
        hosts: vec!["*.example.com".into()],
        path: "/users/{id}".into(),
        path_match: PathMatch::Prefix,
        methods: vec!["GET".into()],
        headers: vec![HeaderMatch {
            name: "x-env".into(),
            regex: "prod|staging".into(),
        }],
        priority: 5,
        target: RouteTarget::Upstream(upstream.into()),
        policies: vec![
            Policy::KeyAuth(KeyAuth::default()),
            Policy::IpRestriction(IpRestriction {
                allow: vec!["10.0.0.0/8".into()],
                deny: vec!["10.1.2.3".into()],
            }),
            Policy::Rewrite(Rewrite::Template("/v2/users/{id}".into())),
        ],
    })
}

fn key(id: &str, consumer: &str, secret: &str) -> Resource {
    use sha2::Digest;
    Resource::ApiKey(ApiKey {
        id: id.into(),
        consumer: consumer.into(),
        prefix: secret[..4].into(),
        sha256: hex::encode(sha2::Sha256::digest(secret.as_bytes())),
        name: String::new(),
        expires_at_ms: None,
    })
}

fn provider(id: &str) -> Resource {
    Resource::Provider(Provider {
        id: id.into(),
        provider_type: ProviderType::Mock,
        base_url: None,
        api_key: Some("sk-secret".into()),
        api_version: None,
        headers: Default::default(),
    })
}

fn model(id: &str, fallbacks: &[&str]) -> Resource {
    Resource::Model(Model {
        id: id.into(),
        tenant: None,
        deployments: vec![Deployment {
            provider: "mock".into(),
            model: "m".into(),
            weight: 1,
            priority: 0,
        }],
        fallbacks: fallbacks.iter().map(|s| s.to_string()).collect(),
        timeout_ms: None,
        quotas: Vec::new(),
        default_max_tokens: None,
        pricing: None,
        cache: None,
    })
}

/// Applies `op` and asserts it was rejected without touching the state.
fn rejected(state: &mut State, op: Op) -> ApplyError {
    let before = state.clone();
    let mut changes = Vec::new();
    let err = state
        .apply(99, &cmd(op), &mut changes)
        .expect_err("command should be rejected");
    assert_eq!(*state, before, "a rejected command changed the state");
    assert_eq!(state.revision(), before.revision());
    assert!(changes.is_empty());
    err
}

fn ok(state: &mut State, rev: u64, op: Op) -> Applied {
    let mut changes = Vec::new();
    state
        .apply(rev, &cmd(op), &mut changes)
        .expect("command should apply")
}

fn base() -> State {
    let mut s = State::default();
    ok(&mut s, 1, Op::Create(tenant("acme")));
    ok(&mut s, 2, Op::Create(consumer("app", "acme")));
    ok(&mut s, 3, Op::Create(upstream("echo", None)));
    ok(&mut s, 4, Op::Create(route("r1", None, "echo")));
    s
}

#[test]
fn create_get_update_delete() {
    let mut s = base();
    let stored = s.get(Kind::Route, "r1").expect("route stored");
    assert_eq!(stored.revision, 4);
    assert_eq!(s.revision(), 4);
    assert_eq!(stored.created_at_ms, 1_700_000_000_000);

    let mut updated = route("r1", None, "echo");
    if let Resource::Route(r) = &mut updated {
        r.priority = 9;
    }
    let applied = ok(&mut s, 5, Op::Update(updated.clone()));
    assert_eq!(applied.changed, vec![(Kind::Route, "r1".to_string())]);
    assert_eq!(
        s.get(Kind::Route, "r1").map(|st| &st.resource),
        Some(&updated)
    );
    assert_eq!(s.get(Kind::Route, "r1").map(|st| st.revision), Some(5));

    ok(
        &mut s,
        6,
        Op::Delete {
            kind: Kind::Route,
            id: "r1".into(),
        },
    );
    assert!(s.get(Kind::Route, "r1").is_none());
    assert_eq!(s.count(Kind::Route), 0);
}

#[test]
fn validation_errors_change_nothing() {
    let mut s = base();
    let bad_id = rejected(&mut s, Op::Create(tenant("no spaces")));
    assert!(
        matches!(bad_id, ApplyError::Invalid { ref field, .. } if field == "id"),
        "{bad_id:?}"
    );

    let mut r = route("r2", None, "echo");
    if let Resource::Route(rt) = &mut r {
        rt.headers[0].regex = "(unclosed".into();
    }
    let e = rejected(&mut s, Op::Create(r));
    assert!(
        matches!(e, ApplyError::Invalid { ref field, .. } if field == "headers.regex"),
        "{e:?}"
    );

    let mut r = route("r3", None, "echo");
    if let Resource::Route(rt) = &mut r {
        rt.policies = vec![Policy::IpRestriction(IpRestriction {
            allow: vec!["300.1.1.1/8".into()],
            deny: vec![],
        })];
    }
    assert!(matches!(
        rejected(&mut s, Op::Create(r)),
        ApplyError::Invalid { .. }
    ));

    let mut r = route("r4", None, "echo");
    if let Resource::Route(rt) = &mut r {
        rt.policies = vec![Policy::Rewrite(Rewrite::Template("/x/{nope}".into()))];
    }
    assert!(matches!(
        rejected(&mut s, Op::Create(r)),
        ApplyError::Invalid { .. }
    ));

    let mut r = route("r5", None, "echo");
    if let Resource::Route(rt) = &mut r {
        rt.path = "/a/{id}/{id}".into();
    }
    assert!(matches!(
        rejected(&mut s, Op::Create(r)),
        ApplyError::Invalid { .. }
    ));

    let mut u = upstream("u2", None);
    if let Resource::Upstream(up) = &mut u {
        up.targets[0].address = "nohostport".into();
    }
    assert!(matches!(
        rejected(&mut s, Op::Create(u)),
        ApplyError::Invalid { .. }
    ));

    let t = Resource::PromptTemplate(PromptTemplate {
        id: "p".into(),
        tenant: None,
        versions: vec![TemplateVersion {
            version: 1,
            model: "m".into(),
            messages: vec![TemplateMessage {
                role: "user".into(),
                content: "Hello {{name}} from {{place}}".into(),
            }],
            variables: vec!["name".into()],
            temperature: None,
            max_tokens: None,
        }],
    });
    assert!(matches!(
        rejected(&mut s, Op::Create(t)),
        ApplyError::Invalid { .. }
    ));
}

#[test]
fn duplicates_and_missing() {
    let mut s = base();
    assert_eq!(
        rejected(&mut s, Op::Create(tenant("acme"))),
        ApplyError::AlreadyExists {
            kind: Kind::Tenant,
            id: "acme".into()
        }
    );
    assert_eq!(
        rejected(&mut s, Op::Update(tenant("ghost"))),
        ApplyError::NotFound {
            kind: Kind::Tenant,
            id: "ghost".into()
        }
    );
    assert_eq!(
        rejected(
            &mut s,
            Op::Delete {
                kind: Kind::Upstream,
                id: "ghost".into()
            }
        ),
        ApplyError::NotFound {
            kind: Kind::Upstream,
            id: "ghost".into()
        }
    );
}

#[test]
fn referential_integrity() {
    let mut s = base();
    let e = rejected(&mut s, Op::Create(route("r2", None, "missing")));
    assert!(
        matches!(e, ApplyError::Dangling { target_kind: Kind::Upstream, ref target_id, .. } if target_id == "missing"),
        "{e:?}"
    );

    let e = rejected(&mut s, Op::Create(consumer("c2", "nobody")));
    assert!(matches!(
        e,
        ApplyError::Dangling {
            target_kind: Kind::Tenant,
            ..
        }
    ));

    let e = rejected(
        &mut s,
        Op::Delete {
            kind: Kind::Upstream,
            id: "echo".into(),
        },
    );
    assert_eq!(
        e,
        ApplyError::InUse {
            kind: Kind::Upstream,
            id: "echo".into(),
            used_by: vec![(Kind::Route, "r1".into())]
        }
    );

    let e = rejected(
        &mut s,
        Op::Delete {
            kind: Kind::Tenant,
            id: "acme".into(),
        },
    );
    assert!(matches!(e, ApplyError::InUse { .. }));
}

#[test]
fn tenants_cannot_reference_each_other() {
    let mut s = base();
    ok(&mut s, 10, Op::Create(tenant("other")));
    ok(&mut s, 11, Op::Create(upstream("theirs", Some("other"))));
    let e = rejected(&mut s, Op::Create(route("mine", Some("acme"), "theirs")));
    assert!(matches!(e, ApplyError::CrossTenant { .. }), "{e:?}");
    // A cluster-wide route cannot point at a tenant's upstream either.
    assert!(matches!(
        rejected(&mut s, Op::Create(route("global", None, "theirs"))),
        ApplyError::CrossTenant { .. }
    ));
    // A tenant route may use a cluster-wide upstream.
    ok(&mut s, 12, Op::Create(route("mine", Some("acme"), "echo")));
    // Permissions follow the consumer's tenant.
    ok(
        &mut s,
        13,
        Op::Create(route("theirs-r", Some("other"), "theirs")),
    );
    let p = Resource::Permission(Permission {
        id: "p".into(),
        consumer: "app".into(),
        target: PermissionTarget::Route("theirs-r".into()),
    });
    assert!(matches!(
        rejected(&mut s, Op::Create(p)),
        ApplyError::CrossTenant { .. }
    ));
    // Moving a resource to another tenant in place is refused.
    assert!(matches!(
        rejected(&mut s, Op::Update(upstream("theirs", Some("acme")))),
        ApplyError::Invalid { .. }
    ));
}

#[test]
fn deleting_a_consumer_takes_its_keys_and_permissions() {
    let mut s = base();
    ok(&mut s, 10, Op::Create(key("k1", "app", "rg_secret_one")));
    let p = Resource::Permission(Permission {
        id: "p1".into(),
        consumer: "app".into(),
        target: PermissionTarget::Route("r1".into()),
    });
    ok(&mut s, 11, Op::Create(p));
    assert!(s.api_key_by_hash(&hex_sha("rg_secret_one")).is_some());

    let applied = ok(
        &mut s,
        12,
        Op::Delete {
            kind: Kind::Consumer,
            id: "app".into(),
        },
    );
    assert_eq!(applied.changed.len(), 3, "{:?}", applied.changed);
    assert!(s.get(Kind::ApiKey, "k1").is_none());
    assert!(s.get(Kind::Permission, "p1").is_none());
    assert!(s.api_key_by_hash(&hex_sha("rg_secret_one")).is_none());
}

#[test]
fn the_key_index_follows_updates_of_a_key() {
    let mut s = base();
    ok(&mut s, 10, Op::Create(key("k1", "app", "rg_secret_one")));
    let mut updated = key("k1", "app", "rg_secret_one");
    if let Resource::ApiKey(k) = &mut updated {
        k.expires_at_ms = Some(5);
        k.name = "renamed".into();
    }
    ok(&mut s, 11, Op::Update(updated));
    let found = s.api_key_by_hash(&hex_sha("rg_secret_one")).unwrap();
    assert_eq!(found.expires_at_ms, Some(5), "auth must see the update");
    assert_eq!(found.name, "renamed");
    // The secret's hash is immutable: another secret for the same id is refused.
    assert!(matches!(
        rejected(&mut s, Op::Update(key("k1", "app", "rg_secret_two"))),
        ApplyError::Invalid { .. }
    ));
    assert!(s.api_key_by_hash(&hex_sha("rg_secret_two")).is_none());
    assert!(s.api_key_by_hash(&hex_sha("rg_secret_one")).is_some());
}

fn hex_sha(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

#[test]
fn duplicate_key_secret_is_refused() {
    let mut s = base();
    ok(&mut s, 10, Op::Create(key("k1", "app", "rg_same")));
    assert!(matches!(
        rejected(&mut s, Op::Create(key("k2", "app", "rg_same"))),
        ApplyError::Invalid { .. }
    ));
}

#[test]
fn model_fallback_cycles_are_refused() {
    let mut s = State::default();
    ok(&mut s, 1, Op::Create(provider("mock")));
    ok(&mut s, 2, Op::Create(model("a", &[])));
    ok(&mut s, 3, Op::Create(model("b", &["a"])));
    ok(&mut s, 4, Op::Create(model("c", &["b"])));
    let e = rejected(&mut s, Op::Update(model("a", &["c"])));
    assert_eq!(
        e,
        ApplyError::Cycle {
            kind: Kind::Model,
            id: "a".into(),
            path: vec!["a".into(), "c".into(), "b".into(), "a".into()]
        }
    );
    assert!(matches!(
        rejected(&mut s, Op::Update(model("a", &["a"]))),
        ApplyError::Cycle { .. }
    ));
    // Dangling fallbacks are refused too.
    assert!(matches!(
        rejected(&mut s, Op::Create(model("d", &["zzz"]))),
        ApplyError::Dangling { .. }
    ));
}

#[test]
fn batch_is_all_or_nothing() {
    let mut s = base();
    let e = rejected(
        &mut s,
        Op::Batch(vec![
            Op::Create(tenant("t2")),
            Op::Create(route("rx", None, "missing")),
        ]),
    );
    assert!(matches!(e, ApplyError::Dangling { .. }));
    assert!(s.get(Kind::Tenant, "t2").is_none());
    ok(
        &mut s,
        20,
        Op::Batch(vec![
            Op::Create(tenant("t2")),
            Op::Create(consumer("c2", "t2")),
        ]),
    );
    assert!(s.get(Kind::Consumer, "c2").is_some());
}

#[test]
fn init_cluster_once() {
    let mut s = State::default();
    ok(
        &mut s,
        1,
        Op::InitCluster {
            cluster_id: "c1".into(),
            token_secret: vec![1, 2, 3],
        },
    );
    assert_eq!(s.cluster().map(|c| c.cluster_id.as_str()), Some("c1"));
    assert_eq!(
        rejected(
            &mut s,
            Op::InitCluster {
                cluster_id: "c2".into(),
                token_secret: vec![]
            }
        ),
        ApplyError::AlreadyInitialized
    );
}

/// A log mixing successes and failures, as a follower would replay it.
fn sample_log() -> Vec<Command> {
    let mut log = vec![
        cmd(Op::InitCluster {
            cluster_id: "c".into(),
            token_secret: vec![9; 32],
        }),
        cmd(Op::Create(tenant("acme"))),
        cmd(Op::Create(consumer("app", "acme"))),
        cmd(Op::Create(upstream("echo", None))),
        cmd(Op::Create(route("r1", None, "echo"))),
        cmd(Op::Create(route("bad", None, "missing"))),
        cmd(Op::Create(key("k1", "app", "rg_abcdef"))),
        cmd(Op::Create(provider("mock"))),
        cmd(Op::Create(model("gpt-4o", &[]))),
        cmd(Op::Delete {
            kind: Kind::Upstream,
            id: "echo".into(),
        }),
    ];
    for i in 0..20 {
        log.push(cmd(Op::Create(tenant(&format!("t{i}")))));
    }
    log.push(cmd(Op::Delete {
        kind: Kind::Tenant,
        id: "t3".into(),
    }));
    log
}

fn replay(log: &[Command]) -> (State, Vec<Result<Applied, ApplyError>>) {
    let mut s = State::default();
    let mut results = Vec::new();
    let mut changes = Vec::new();
    for (i, c) in log.iter().enumerate() {
        results.push(s.apply(i as u64 + 1, c, &mut changes));
    }
    (s, results)
}

#[test]
fn apply_is_deterministic() {
    let log = sample_log();
    let (a, ra) = replay(&log);
    let (b, rb) = replay(&log);
    assert_eq!(a, b);
    assert_eq!(ra, rb);
    assert_eq!(
        codec::encode(&a.to_image()).unwrap(),
        codec::encode(&b.to_image()).unwrap()
    );
    assert!(ra[5].is_err() && ra[9].is_err() && ra[4].is_ok());
}

#[test]
fn snapshot_image_round_trips() {
    let (s, _) = replay(&sample_log());
    let bytes = codec::encode(&s.to_image()).expect("encode");
    let restored = State::from_image(codec::decode(&bytes).expect("decode"));
    assert_eq!(restored, s);
    assert!(
        restored.api_key_by_hash(&hex_sha("rg_abcdef")).is_some(),
        "derived index rebuilt"
    );
}

#[test]
fn every_command_survives_the_log_codec() {
    for c in sample_log() {
        let bytes = codec::encode(&c).expect("encode");
        assert_eq!(codec::decode::<Command>(&bytes).expect("decode"), c);
    }
}

#[test]
fn secrets_are_redacted_in_public_json() {
    let json = provider("p").to_public_json();
    assert_eq!(json["api_key"], REDACTED);
    assert!(!json.to_string().contains("sk-secret"));
}

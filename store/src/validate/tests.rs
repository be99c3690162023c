use super::*;

#[test]
fn cidrs() {
    assert_eq!(parse_cidr("10.0.0.0/8").map(|(_, l)| l), Some(8));
    assert_eq!(parse_cidr("::1").map(|(_, l)| l), Some(128));
    assert!(parse_cidr("10.0.0.0/33").is_none());
    assert!(parse_cidr("nonsense").is_none());
    assert!(parse_cidr("1.2.3.4/").is_none());
}

#[test]
fn json_with_unknown_fields_is_refused() {
    let body = serde_json::json!({"id": "t", "nmae": "typo"});
    assert!(Resource::from_json(Kind::Tenant, body).is_err());
}

#[test]
fn route_json_shape() {
    let body = serde_json::json!({
        "id": "users",
        "path": "/api/users/{id}",
        "methods": ["GET", "PUT"],
        "target": {"upstream": "echo"},
        "policies": [{"key_auth": {}}, {"rewrite": "strip_prefix"}, {"body_limit": {"max_bytes": 1024}}]
    });
    let res = Resource::from_json(Kind::Route, body).expect("valid JSON");
    validate(&res).expect("valid route");
    let bad = serde_json::json!({"id": "x", "path": "/a", "methods": ["get"], "target": {"upstream": "echo"}});
    let res = Resource::from_json(Kind::Route, bad).expect("parses");
    assert!(
        matches!(validate(&res), Err(ApplyError::Invalid { ref field, .. }) if field == "methods")
    );
}

/// The field named by an `Invalid` error, or a panic naming what came instead.
fn invalid_field(res: &Resource) -> String {
    match validate(res) {
        Err(ApplyError::Invalid { field, .. }) => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn upstream_json(extra: serde_json::Value) -> Resource {
    let mut body = serde_json::json!({"id": "u", "targets": [{"address": "10.0.0.1:80"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    Resource::from_json(Kind::Upstream, body).expect("upstream JSON")
}

#[test]
fn upstream_defaults_are_valid() {
    validate(&upstream_json(serde_json::json!({
        "health_check": {"active": {}, "passive": {}},
        "circuit_breaker": {},
        "tls": {"server_name": "api.example.com"},
        "protocol": "http2",
    })))
    .expect("defaults valid");
}

#[test]
fn upstream_field_limits() {
    use serde_json::json;
    let cases = [
        (
            json!({"timeouts": {"connect_ms": 0}}),
            "timeouts.connect_ms",
        ),
        (
            json!({"timeouts": {"total_ms": 3_600_001}}),
            "timeouts.total_ms",
        ),
        (
            json!({"timeouts": {"connect_ms": 5000, "total_ms": 4000, "per_try_ms": 4000}}),
            "timeouts.connect_ms",
        ),
        (
            json!({"timeouts": {"per_try_ms": 70000}}),
            "timeouts.per_try_ms",
        ),
        (json!({"retries": {"attempts": 11}}), "retries.attempts"),
        (
            json!({"targets": (0..1025).map(|i| json!({"address": format!("10.0.{}.{}:80", i / 250, i % 250)})).collect::<Vec<_>>()}),
            "targets",
        ),
        (
            json!({"retries": {"on_statuses": [99]}}),
            "retries.on_statuses",
        ),
        (
            json!({"retries": {"on_statuses": [600]}}),
            "retries.on_statuses",
        ),
        (
            json!({"retries": {"backoff_ms": 60001}}),
            "retries.backoff_ms",
        ),
        (
            json!({"health_check": {"active": {"path": "health"}}}),
            "health_check.active.path",
        ),
        (
            json!({"health_check": {"active": {"interval_ms": 99, "timeout_ms": 10}}}),
            "health_check.active.interval_ms",
        ),
        (
            json!({"health_check": {"active": {"interval_ms": 1000, "timeout_ms": 1000}}}),
            "health_check.active.timeout_ms",
        ),
        (
            json!({"health_check": {"active": {"timeout_ms": 0}}}),
            "health_check.active.timeout_ms",
        ),
        (
            json!({"health_check": {"active": {"healthy_threshold": 0}}}),
            "health_check.active.healthy_threshold",
        ),
        (
            json!({"health_check": {"active": {"unhealthy_threshold": 101}}}),
            "health_check.active.unhealthy_threshold",
        ),
        (
            json!({"health_check": {"active": {"expected_statuses": [200, 1000]}}}),
            "health_check.active.expected_statuses",
        ),
        (
            json!({"health_check": {"passive": {"max_failures": 0}}}),
            "health_check.passive.max_failures",
        ),
        (
            json!({"health_check": {"passive": {"cooldown_ms": 99}}}),
            "health_check.passive.cooldown_ms",
        ),
        (
            json!({"circuit_breaker": {"failure_ratio": 0.0}}),
            "circuit_breaker.failure_ratio",
        ),
        (
            json!({"circuit_breaker": {"failure_ratio": 1.5}}),
            "circuit_breaker.failure_ratio",
        ),
        (
            json!({"circuit_breaker": {"min_calls": 0}}),
            "circuit_breaker.min_calls",
        ),
        (
            json!({"circuit_breaker": {"window_ms": 50}}),
            "circuit_breaker.window_ms",
        ),
        (
            json!({"circuit_breaker": {"open_ms": 50}}),
            "circuit_breaker.open_ms",
        ),
        (
            json!({"tls": {"server_name": "bad name"}}),
            "tls.server_name",
        ),
        (
            json!({"tls": {"server_name": "-x.example.com"}}),
            "tls.server_name",
        ),
        (json!({"tls": {"ca_pem": "not a pem"}}), "tls.ca_pem"),
    ];
    for (extra, field) in cases {
        assert_eq!(
            invalid_field(&upstream_json(extra.clone())),
            field,
            "{extra}"
        );
    }
    // NaN cannot come from JSON; check the breaker's finiteness directly.
    let mut res = upstream_json(json!({"circuit_breaker": {}}));
    if let Resource::Upstream(u) = &mut res {
        if let Some(cb) = &mut u.circuit_breaker {
            cb.failure_ratio = f64::NAN;
        }
    }
    assert_eq!(invalid_field(&res), "circuit_breaker.failure_ratio");
    validate(&upstream_json(json!({
        "tls": {"server_name": "10.1.2.3", "ca_pem": "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----"},
        "circuit_breaker": {"failure_ratio": 1.0},
    })))
    .expect("IP server name, CA bundle and ratio 1 are fine");
}

fn route_with(policies: serde_json::Value) -> Resource {
    let body = serde_json::json!({"id": "r", "path": "/api", "target": {"upstream": "u"}, "policies": policies});
    Resource::from_json(Kind::Route, body).expect("route JSON")
}

const PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";
const RSA_KEY: &str = "-----BEGIN RSA PUBLIC KEY-----\nMEgC\n-----END RSA PUBLIC KEY-----\n";

#[test]
fn jwt_auth_rules() {
    use serde_json::json;
    let good = [
        json!({"algorithm": "HS256", "secret": "0123456789abcdef"}),
        json!({"algorithm": "RS256", "public_key_pem": RSA_KEY, "issuer": "https://idp"}),
        json!({"algorithm": "ES256", "public_key_pem": PUBLIC_KEY, "consumer_claim": "azp"}),
    ];
    for jwt in good {
        validate(&route_with(json!([{"jwt_auth": jwt}]))).expect("valid jwt_auth");
    }
    let bad = [
        (
            json!({"algorithm": "HS256", "secret": "short"}),
            "policies.jwt_auth.secret",
        ),
        (json!({"algorithm": "HS256"}), "policies.jwt_auth.secret"),
        (
            json!({"algorithm": "HS256", "secret": "0123456789abcdef", "public_key_pem": PUBLIC_KEY}),
            "policies.jwt_auth.public_key_pem",
        ),
        (
            json!({"algorithm": "RS256"}),
            "policies.jwt_auth.public_key_pem",
        ),
        (
            json!({"algorithm": "RS256", "public_key_pem": "garbage"}),
            "policies.jwt_auth.public_key_pem",
        ),
        (
            json!({"algorithm": "ES256", "public_key_pem": RSA_KEY}),
            "policies.jwt_auth.public_key_pem",
        ),
        (
            json!({"algorithm": "ES256", "public_key_pem": PUBLIC_KEY, "secret": "0123456789abcdef"}),
            "policies.jwt_auth.secret",
        ),
        (
            json!({"algorithm": "HS256", "secret": "0123456789abcdef", "consumer_claim": ""}),
            "policies.jwt_auth.consumer_claim",
        ),
        (
            json!({"algorithm": "HS256", "secret": "0123456789abcdef", "leeway_s": 3601}),
            "policies.jwt_auth.leeway_s",
        ),
        (
            json!({"algorithm": "HS256", "secret": "0123456789abcdef", "issuer": ""}),
            "policies.jwt_auth.issuer",
        ),
    ];
    for (jwt, field) in bad {
        assert_eq!(
            invalid_field(&route_with(json!([{"jwt_auth": jwt}]))),
            field,
            "{jwt}"
        );
    }
}

#[test]
fn cors_rules() {
    use serde_json::json;
    let good = [
        json!({"allow_origins": ["*"], "allow_headers": ["*"]}),
        json!({"allow_origins": ["https://app.example.com", "http://localhost:3000", "http://[::1]:8080", "http://127.0.0.1"],
               "allow_methods": ["GET", "POST"], "allow_headers": ["x-trace"], "allow_credentials": true, "max_age_s": 600}),
    ];
    for c in good {
        validate(&route_with(json!([{"cors": c}]))).expect("valid cors");
    }
    let bad = [
        (json!({"allow_origins": []}), "policies.cors.allow_origins"),
        (
            json!({"allow_origins": ["*", "https://a.com"]}),
            "policies.cors.allow_origins",
        ),
        (
            json!({"allow_origins": ["ftp://a.com"]}),
            "policies.cors.allow_origins",
        ),
        (
            json!({"allow_origins": ["https://a.com/"]}),
            "policies.cors.allow_origins",
        ),
        (
            json!({"allow_origins": ["https://A.com"]}),
            "policies.cors.allow_origins",
        ),
        (
            json!({"allow_origins": ["https://a.com:99999"]}),
            "policies.cors.allow_origins",
        ),
        (
            json!({"allow_origins": ["*"], "allow_credentials": true}),
            "policies.cors.allow_credentials",
        ),
        (
            json!({"allow_origins": ["https://a.com"], "allow_methods": ["get"]}),
            "policies.cors.allow_methods",
        ),
        (
            json!({"allow_origins": ["https://a.com"], "allow_headers": ["bad header"]}),
            "policies.cors.allow_headers",
        ),
        (
            json!({"allow_origins": ["https://a.com"], "expose_headers": ["*"], "allow_credentials": true}),
            "policies.cors.expose_headers",
        ),
        (
            json!({"allow_origins": ["https://a.com"], "max_age_s": 86401}),
            "policies.cors.max_age_s",
        ),
    ];
    for (c, field) in bad {
        assert_eq!(
            invalid_field(&route_with(json!([{"cors": c}]))),
            field,
            "{c}"
        );
    }
}

#[test]
fn header_renames_and_policy_combinations() {
    use serde_json::json;
    validate(&route_with(json!([{"headers": {"request_rename": {"x-old": "x-new"}, "response_rename": {"server": "x-upstream-server"}}}])))
        .expect("valid renames");
    for (rename, field) in [
        (
            json!({"request_rename": {"host": "x-host"}}),
            "policies.headers.request_rename",
        ),
        (
            json!({"request_rename": {"x-a": "Connection"}}),
            "policies.headers.request_rename",
        ),
        (
            json!({"response_rename": {"transfer-encoding": "x-te"}}),
            "policies.headers.response_rename",
        ),
        (
            json!({"response_rename": {"x-a": "bad name"}}),
            "policies.headers.response_rename",
        ),
    ] {
        assert_eq!(
            invalid_field(&route_with(json!([{"headers": rename}]))),
            field,
            "{rename}"
        );
    }
    // key_auth and jwt_auth together: either credential passes.
    let jwt = json!({"algorithm": "HS256", "secret": "0123456789abcdef"});
    validate(&route_with(json!([{"key_auth": {}}, {"jwt_auth": jwt}]))).expect("key or jwt");
    assert_eq!(
        invalid_field(&route_with(json!([{"key_auth": {}}, {"key_auth": {}}]))),
        "policies.key_auth"
    );
    assert_eq!(
        invalid_field(&route_with(json!([{"jwt_auth": jwt}, {"jwt_auth": jwt}]))),
        "policies.jwt_auth"
    );
    assert_eq!(
        invalid_field(&route_with(json!([{"quota": "q"}, {"quota": "q"}]))),
        "policies.quota"
    );
    validate(&route_with(
        json!([{"quota": "q1"}, {"quota": "q2"}, {"headers": {}}, {"headers": {}}]),
    ))
    .expect("distinct quotas and stacked header rules");
}

#[test]
fn service_subscription_certificate_fields() {
    use serde_json::json;
    let svc = |extra: serde_json::Value| {
        let mut body = json!({"id": "svc", "tenant": "acme"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        Resource::from_json(Kind::Service, body).expect("service JSON")
    };
    validate(&svc(
        json!({"state": "published", "visibility": "public", "approval_required": true}),
    ))
    .expect("valid service");
    assert_eq!(
        invalid_field(&svc(json!({"tenant": "no spaces"}))),
        "tenant"
    );
    assert_eq!(
        invalid_field(&svc(json!({"name": "n".repeat(257)}))),
        "name"
    );
    assert_eq!(
        invalid_field(&svc(json!({"description": "d".repeat(4097)}))),
        "description"
    );

    let sub = |note: String| {
        Resource::from_json(
            Kind::Subscription,
            json!({"id": "s", "consumer": "app", "service": "svc", "note": note}),
        )
        .expect("subscription JSON")
    };
    validate(&sub("n".repeat(1024))).expect("1 KiB note");
    assert_eq!(invalid_field(&sub("n".repeat(1025))), "note");
    let bad_ref = Resource::from_json(
        Kind::Subscription,
        json!({"id": "s", "consumer": "", "service": "svc"}),
    )
    .expect("JSON");
    assert_eq!(invalid_field(&bad_ref), "consumer");

    let cert = |snis: serde_json::Value, cert_pem: &str, key_pem: &str| {
        Resource::from_json(
            Kind::Certificate,
            json!({"id": "c", "snis": snis, "cert_pem": cert_pem, "key_pem": key_pem}),
        )
        .expect("certificate JSON")
    };
    let pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
    validate(&cert(json!(["example.com", "*.example.com"]), pem, "k")).expect("valid certificate");
    for snis in [
        json!([]),
        json!(["Example.com"]),
        json!(["*.*.example.com"]),
        json!(["exa mple.com"]),
        json!(["10.0.0.1"]),
        json!(["a.com", "a.com"]),
    ] {
        assert_eq!(
            invalid_field(&cert(snis.clone(), pem, "k")),
            "snis",
            "{snis}"
        );
    }
    assert_eq!(
        invalid_field(&cert(json!(["a.com"]), "nope", "k")),
        "cert_pem"
    );
    assert_eq!(invalid_field(&cert(json!(["a.com"]), pem, " ")), "key_pem");
}

#[test]
fn capture_rules() {
    use serde_json::json;
    let ok = json!([{"capture": {"request_bytes": 64, "response_bytes": 65536, "redact": ["password", "token"]}}]);
    validate(&route_with(ok)).expect("valid capture");
    validate(&route_with(json!([{"capture": {}}]))).expect("all defaults: captures nothing");
    let many: Vec<String> = (0..65).map(|i| format!("f{i}")).collect();
    for (policy, field) in [
        (
            json!({"request_bytes": 65537}),
            "policies.capture.request_bytes",
        ),
        (
            json!({"response_bytes": 1u64 << 40}),
            "policies.capture.response_bytes",
        ),
        (json!({"redact": [""]}), "policies.capture.redact"),
        (json!({"redact": ["  "]}), "policies.capture.redact"),
        (
            json!({"redact": ["Password", "password"]}),
            "policies.capture.redact",
        ),
        (json!({"redact": many}), "policies.capture.redact"),
    ] {
        let res = route_with(json!([{ "capture": policy }]));
        assert_eq!(invalid_field(&res), field, "{policy}");
    }
    let twice = json!([{"capture": {}}, {"capture": {"request_bytes": 1}}]);
    assert_eq!(invalid_field(&route_with(twice)), "policies.capture");
    let body = json!({"id": "m", "path": "/chat", "target": {"model": "gpt"},
        "policies": [{"capture": {"request_bytes": 10}}]});
    let llm = Resource::from_json(Kind::Route, body).expect("route JSON");
    validate(&llm).expect("routes to models capture too");
    let body = json!({"id": "p", "path": "/ask", "target": {"prompt": {"template": "t"}},
        "policies": [{"capture": {"response_bytes": 10}}]});
    let prompt = Resource::from_json(Kind::Route, body).expect("route JSON");
    validate(&prompt).expect("routes to prompt templates capture too");
    let unknown = json!({"id": "r", "path": "/a", "target": {"upstream": "u"},
        "policies": [{"capture": {"request_byte": 1}}]});
    assert!(
        Resource::from_json(Kind::Route, unknown).is_err(),
        "typos are refused"
    );
}

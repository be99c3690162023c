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

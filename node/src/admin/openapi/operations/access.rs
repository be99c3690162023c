//! Token revocation and the audit trail (docs/admin-api.md).

use serde_json::{json, Value};
use utoipa::openapi::HttpMethod;

use super::{json_body, json_response, object, query, responses, string, u64_schema};

pub fn operations() -> Vec<(String, HttpMethod, Value)> {
    let revoked = object(
        &["jti", "exp", "revoked_at_ms", "revoked_by"],
        json!({"jti": string(), "exp": u64_schema(), "revoked_at_ms": u64_schema(), "revoked_by": string()}),
    );
    let nullable = |t: &str| json!({"type": [t, "null"]});
    let record = object(
        &[
            "seq", "at_ms", "actor", "role", "node", "method", "path", "op", "outcome",
        ],
        json!({"seq": u64_schema(), "at_ms": u64_schema(), "actor": string(), "role": string(),
            "actor_tenant": nullable("string"), "tenant": nullable("string"), "node": u64_schema(),
            "method": string(), "path": string(),
            "op": {"type": "string", "enum": ["init_cluster", "create", "update", "delete", "batch", "restore", "revoke_token", "reencrypt_secrets"]},
            "kind": nullable("string"), "id": nullable("string"),
            "outcome": {"type": "string", "description": "`ok` or the error code"}}),
    );
    let ops = vec![
        (
            "/admin/v1/tokens/revoke",
            HttpMethod::Post,
            json!({
            "summary": "Revoke an admin token on every node (admin; any token may revoke itself)",
            "requestBody": json_body(object(&[], json!({
                "jti": string(), "token": string(),
                "exp": {"type": ["integer", "null"], "format": "int64", "minimum": 0}})), true),
            "responses": responses((200, json_response("revoked", object(&["revoked", "revision"], json!({
                "revoked": object(&["jti", "exp"], json!({"jti": string(), "exp": u64_schema()})),
                "revision": u64_schema()})))), &[400, 401, 403, 413, 503])}),
        ),
        (
            "/admin/v1/tokens/revoked",
            HttpMethod::Get,
            json!({
            "summary": "Revoked tokens (admin)",
            "responses": responses((200, json_response("the revoked set", object(&["items", "revision"], json!({
                "items": {"type": "array", "items": revoked}, "revision": u64_schema()})))), &[401, 403, 503])}),
        ),
        (
            "/admin/v1/audit",
            HttpMethod::Get,
            json!({
            "summary": "Admin writes, newest first (tenant admins: their tenant's)",
            "parameters": [
                query("since", u64_schema(), "inclusive lower bound, Unix ms"),
                query("until", u64_schema(), "exclusive upper bound, Unix ms"),
                query("actor", string(), "token subject"),
                query("kind", string(), "collection or kind"),
                query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), "default 100"),
            ],
            "responses": responses((200, json_response("audit records", object(&["items", "more", "revision"], json!({
                "items": {"type": "array", "items": record}, "more": {"type": "boolean"},
                "revision": u64_schema()})))), &[400, 401, 403, 503])}),
        ),
    ];
    ops.into_iter()
        .map(|(path, method, op)| (path.to_string(), method, op))
        .collect()
}

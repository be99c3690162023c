//! The admin API's operations besides resource CRUD (cluster, tokens, backup, usage, logs,
//! analytics) and the schemas they share, written as OpenAPI JSON. Precise enough for a
//! fuzzer (scripts/schemathesis.sh) to build valid requests and check every answer.

mod access;
pub use access::operations as access_operations;

use serde_json::{json, Value};
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{HttpMethod, Paths, RefOr};

/// `{"error": {"code", "message"}}`, the body of every error.
pub const ERROR: &str = "Error";

/// A `$ref` to a component schema.
pub fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A JSON response with `schema`.
pub fn json_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// What each error status means; every error has the [`ERROR`] body.
fn error_description(status: u16) -> &'static str {
    match status {
        400 => "invalid input",
        401 => "missing or invalid token",
        403 => "not allowed for this token",
        404 => "not found",
        409 => "conflict with the current state",
        413 => "request body too large",
        422 => "invalid reference",
        500 => "a stored secret does not decrypt with this node's key",
        502 => "another node did not answer",
        _ => "no leader, not initialized, timeout or busy",
    }
}

/// The `responses` object: `ok` is `(status, response)`, then the error statuses.
pub fn responses(ok: (u16, Value), errors: &[u16]) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(ok.0.to_string(), ok.1);
    for &status in errors {
        out.insert(
            status.to_string(),
            json_response(error_description(status), schema_ref(ERROR)),
        );
    }
    Value::Object(out)
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties, "additionalProperties": false})
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

fn json_body(schema: Value, required: bool) -> Value {
    json!({"required": required, "content": {"application/json": {"schema": schema}}})
}

fn u64_schema() -> Value {
    json!({"type": "integer", "format": "int64", "minimum": 0})
}

fn any_object() -> Value {
    json!({"type": "object"})
}

fn string() -> Value {
    json!({"type": "string"})
}

fn nullable_string() -> Value {
    json!({"type": ["string", "null"]})
}

/// Schemas shared by several operations, added to the document's components.
pub fn shared_schemas() -> Vec<(String, Value)> {
    let u64s = u64_schema();
    vec![
        (
            ERROR.into(),
            object(
                &["error"],
                json!({"error": object(&["code", "message"], json!({"code": string(), "message": string()}))}),
            ),
        ),
        (
            "Deleted".into(),
            object(
                &["deleted", "revision", "changed"],
                json!({
                    "deleted": object(&["kind", "id"], json!({"kind": schema_ref("Kind"), "id": string()})),
                    "revision": u64s,
                    "changed": {"type": "array", "items": object(&["kind", "id"], json!({"kind": schema_ref("Kind"), "id": string()}))},
                }),
            ),
        ),
        (
            "NewApiKey".into(),
            object(
                &[],
                json!({"id": string(), "name": string(), "expires_at_ms": {"type": ["integer", "null"], "format": "int64", "minimum": 0}}),
            ),
        ),
        (
            "SubscriptionAction".into(),
            object(&[], json!({"note": nullable_string()})),
        ),
        (
            "ClusterStatus".into(),
            json!({"type": "object", "required": ["cluster_id", "node_id", "nodes"], "properties": {
                "cluster_id": nullable_string(), "node_id": u64s, "leader_id": {"type": ["integer", "null"]},
                "term": {"type": ["integer", "null"]},
                "nodes": {"type": "array", "items": {"type": "object", "required": ["id", "raft_addr", "admin_url", "voter", "reachable", "role"], "properties": {
                    "id": u64s, "raft_addr": string(), "admin_url": string(), "http_addr": string(),
                    "voter": {"type": "boolean"}, "reachable": {"type": "boolean"}, "role": string(),
                    "term": {"type": ["integer", "null"]}, "last_log_index": {"type": ["integer", "null"]},
                    "applied_index": {"type": ["integer", "null"]}, "error": nullable_string()}}}}}),
        ),
    ]
}

/// Adds `(path, method, operation)`s to `paths`.
pub fn add(paths: &mut Paths, operations: Vec<(String, HttpMethod, Value)>) {
    for (path, method, operation) in operations {
        match serde_json::from_value::<Operation>(operation) {
            Ok(op) => paths.add_path_operation(path, vec![method], op),
            // Static data; the unit tests catch a malformed operation.
            Err(e) => tracing::error!(%path, error = %e, "malformed OpenAPI operation"),
        }
    }
}

/// Parameters that bound a fan-out to every node.
fn timeout_ms() -> Value {
    query(
        "timeout_ms",
        json!({"type": "integer", "minimum": 1, "maximum": 30000}),
        "per-node deadline in ms (default 2000)",
    )
}

fn range_params() -> Vec<Value> {
    vec![
        query("from_ms", u64_schema(), "inclusive lower bound, Unix ms"),
        query("to_ms", u64_schema(), "exclusive upper bound, Unix ms"),
    ]
}

fn dimension(with_all: bool) -> Value {
    let mut values = vec!["tenant", "consumer", "route", "model", "provider"];
    if with_all {
        values.insert(0, "all");
    }
    json!({"type": "string", "enum": values})
}

fn analytics_answer(list: &str) -> Value {
    json!({"type": "object", "required": [list, "partial", "missing_nodes"], "properties": {
        list: {"type": "array", "items": {"type": "object"}},
        "dimension": string(), "from_ms": u64_schema(), "to_ms": u64_schema(),
        "partial": {"type": "boolean"}, "missing_nodes": {"type": "array", "items": u64_schema()},
        "truncated": {"type": "boolean"}, "errors": {"type": "object"}}})
}

/// Cluster, tokens, backup, usage, logs, analytics and this document.
pub fn operations() -> Vec<(String, HttpMethod, Value)> {
    use HttpMethod::{Delete, Get, Post};
    let removed = object(&["removed"], json!({"removed": u64_schema()}));
    let node_id = json!({"name": "id", "in": "path", "required": true, "schema": u64_schema()});
    let no_auth: Value = json!([]);
    let mut logs_params = range_params();
    for name in ["tenant", "consumer", "route", "model", "cursor"] {
        logs_params.push(query(name, string(), ""));
    }
    logs_params.extend([
        query(
            "status_class",
            json!({"type": "string", "enum": ["1xx", "2xx", "3xx", "4xx", "5xx"]}),
            "",
        ),
        query("min_latency_ms", u64_schema(), ""),
        query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            "default 100",
        ),
        timeout_ms(),
    ]);
    let mut series_params = range_params();
    series_params.extend([
        query("dimension", dimension(true), "default all"),
        query("key", string(), "one id of the dimension"),
        query("tenant", string(), ""),
        timeout_ms(),
    ]);
    let mut top_params = range_params();
    top_params.extend([
        query("dimension", dimension(false), "required"),
        query(
            "by",
            json!({"type": "string", "enum": ["requests", "cost", "errors", "p99"]}),
            "",
        ),
        query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 100}),
            "default 10",
        ),
        query("tenant", string(), ""),
        timeout_ms(),
    ]);
    let mut usage_params: Vec<Value> = [
        "policy", "api_key", "consumer", "tenant", "route", "service", "model",
    ]
    .iter()
    .map(|n| query(n, string(), ""))
    .collect();
    usage_params.extend([
        query(
            "window",
            json!({"type": "string", "enum": ["current", "previous", "all"]}),
            "default all",
        ),
        query("consistent", json!({"type": "boolean"}), ""),
    ]);
    let ops: Vec<(&str, HttpMethod, Value)> = vec![
        (
            "/admin/v1/cluster",
            Get,
            json!({
            "summary": "Cluster status",
            "responses": responses((200, json_response("members and roles", schema_ref("ClusterStatus"))), &[401, 503])}),
        ),
        (
            "/admin/v1/cluster/init",
            Post,
            json!({
            "summary": "Bootstrap a one-node cluster on a fresh node (no token needed)",
            "security": no_auth,
            "responses": responses((200, json_response("the first admin token", object(&["cluster_id", "node_id", "admin_token"],
                json!({"cluster_id": string(), "node_id": u64_schema(), "admin_token": string()})))), &[409, 503])}),
        ),
        (
            "/admin/v1/cluster/join",
            Post,
            json!({
            "summary": "Join this node to the cluster of the node at `via`",
            "requestBody": json_body(object(&["via"], json!({"via": string(), "learner": {"type": "boolean"}})), true),
            "responses": responses((200, json_response("joined", any_object())), &[400, 401, 403, 409, 413, 502, 503])}),
        ),
        (
            "/admin/v1/cluster/leave",
            Post,
            json!({
            "summary": "Remove this node from its cluster",
            "responses": responses((200, json_response("removed", removed.clone())), &[401, 403, 503])}),
        ),
        (
            "/admin/v1/cluster/members",
            Post,
            json!({
            "summary": "Add a node (learner, caught up, then voter unless `learner`)",
            "requestBody": json_body(object(&["node_id", "raft_addr", "admin_url"], json!({
                "node_id": u64_schema(), "raft_addr": string(), "admin_url": string(),
                "http_addr": string(), "learner": {"type": "boolean"}})), true),
            "responses": responses((200, json_response("added", any_object())), &[400, 401, 403, 409, 413, 502, 503])}),
        ),
        (
            "/admin/v1/cluster/members/{id}",
            Delete,
            json!({
            "summary": "Remove a node",
            "parameters": [node_id],
            "responses": responses((200, json_response("removed", removed)), &[400, 401, 403, 409, 503])}),
        ),
        (
            "/admin/v1/tokens",
            Post,
            json!({
            "summary": "Mint a token (admin only)",
            "requestBody": json_body(object(&["role"], json!({
                "role": {"type": "string", "enum": ["admin", "tenant-admin", "viewer"]},
                "tenant": nullable_string(), "subject": nullable_string(),
                "ttl_secs": {"type": ["integer", "null"], "format": "int64", "minimum": 0}})), true),
            "responses": responses((201, json_response("the token", object(&["token", "role", "expires_in_secs"],
                json!({"token": string(), "role": string(), "expires_in_secs": u64_schema()})))), &[400, 401, 403, 413, 422, 503])}),
        ),
        (
            "/admin/v1/whoami",
            Get,
            json!({
            "summary": "What the presented token says",
            "responses": responses((200, json_response("the token's claims", object(&["subject", "role", "expires_at", "node_id"], json!({
                "subject": string(), "role": string(), "tenant": nullable_string(),
                "expires_at": u64_schema(), "node_id": u64_schema()})))), &[401, 503])}),
        ),
        (
            "/admin/v1/backup",
            Get,
            json!({
            "summary": "Consistent backup of the replicated state (admin; docs/backup.md)",
            "responses": responses((200, json!({"description": "the backup file",
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}})), &[401, 403, 503])}),
        ),
        (
            "/admin/v1/restore",
            Post,
            json!({
            "summary": "Replace the replicated state with a backup file (admin; one Raft entry)",
            "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": responses((200, json_response("restored", any_object())), &[400, 401, 403, 409, 413, 422, 500, 503])}),
        ),
        (
            "/admin/v1/secrets/rotate",
            Post,
            json!({
            "summary": "Re-encrypt every stored secret under the current key, in one Raft entry (admin; docs/security.md)",
            "requestBody": json_body(object(&[], json!({"dry_run": {"type": "boolean"}})), false),
            "responses": responses((200, json_response("counts", object(&["key_id", "total", "reencrypted"],
                json!({"key_id": string(), "dry_run": {"type": "boolean"}, "total": u64_schema(),
                    "reencrypted": u64_schema(), "already_current": u64_schema(), "by_kind": any_object(),
                    "revision": {"type": ["integer", "null"], "format": "int64", "minimum": 0}})))),
                &[400, 401, 403, 409, 413, 422, 503])}),
        ),
        (
            "/admin/v1/secrets/status",
            Get,
            json!({
            "summary": "Stored secrets counted by the key that encrypts them (admin)",
            "responses": responses((200, json_response("counts", object(&["current_key_id", "secrets"],
                json!({"node_id": u64_schema(), "applied_revision": u64_schema(),
                    "current_key_id": {"type": ["string", "null"]},
                    "previous_key_ids": {"type": "array", "items": string()},
                    "previous_keys_in_use": {"type": "array", "items": string()},
                    "rotation_needed": {"type": "boolean"}, "secrets": any_object()})))),
                &[401, 403, 503])}),
        ),
        (
            "/admin/v1/usage",
            Get,
            json!({
            "summary": "Cluster-wide quota usage",
            "parameters": usage_params,
            "responses": responses((200, json_response("counters", json!({"type": "object", "required": ["items", "applied_index"], "properties": {
                "items": {"type": "array", "items": any_object()}, "applied_index": u64_schema(), "note": string()}}))), &[400, 401, 503])}),
        ),
        (
            "/admin/v1/logs",
            Get,
            json!({
            "summary": "Call logs of every node, merged newest first (docs/observability.md)",
            "parameters": logs_params,
            "responses": responses((200, json_response("a page of call records", json!({"type": "object",
                "required": ["items", "next_cursor", "partial", "missing_nodes"], "properties": {
                "items": {"type": "array", "items": any_object()}, "next_cursor": nullable_string(),
                "partial": {"type": "boolean"}, "missing_nodes": {"type": "array", "items": u64_schema()},
                "nodes": any_object(), "errors": any_object()}}))), &[400, 401, 403, 503])}),
        ),
        (
            "/admin/v1/analytics/timeseries",
            Get,
            json!({
            "summary": "Per-minute rollups of every node, merged (docs/observability.md)",
            "parameters": series_params,
            "responses": responses((200, json_response("points", analytics_answer("points"))), &[400, 401, 403, 503])}),
        ),
        (
            "/admin/v1/analytics/top",
            Get,
            json!({
            "summary": "Top keys of a dimension over a range (docs/observability.md)",
            "parameters": top_params,
            "responses": responses((200, json_response("top keys", analytics_answer("items"))), &[400, 401, 403, 503])}),
        ),
        (
            "/admin/v1/openapi.json",
            Get,
            json!({
            "summary": "This document (no token needed)",
            "security": no_auth,
            "responses": {"200": json_response("the OpenAPI document", any_object())}}),
        ),
    ];
    ops.into_iter()
        .map(|(path, method, op)| (path.to_string(), method, op))
        .collect()
}

/// A shared schema as utoipa's type, for the components map.
pub fn to_schema(value: Value) -> Option<RefOr<Schema>> {
    match serde_json::from_value(value) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "malformed OpenAPI schema");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_and_schema_parses() {
        for (path, _, op) in operations() {
            serde_json::from_value::<Operation>(op).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        for (name, schema) in shared_schemas() {
            assert!(to_schema(schema).is_some(), "{name}");
        }
    }
}

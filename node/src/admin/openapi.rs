//! The OpenAPI document of the admin API, built from the resource schemas (utoipa).

mod operations;

use axum::Json;
use raftgate_store::model::*;
use serde_json::{json, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, Paths, RefOr,
};
use utoipa::ToSchema;

use self::operations::{json_response, responses, schema_ref};

pub async fn document() -> Json<Value> {
    Json(serde_json::to_value(build()).unwrap_or_default())
}

fn schema_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Tenant => "Tenant",
        Kind::Consumer => "Consumer",
        Kind::ApiKey => "ApiKey",
        Kind::Upstream => "Upstream",
        Kind::Route => "Route",
        Kind::Provider => "Provider",
        Kind::Model => "Model",
        Kind::PromptTemplate => "PromptTemplate",
        Kind::QuotaPolicy => "QuotaPolicy",
        Kind::Permission => "Permission",
        Kind::Service => "Service",
        Kind::Subscription => "Subscription",
        Kind::Certificate => "Certificate",
    }
}

/// Bookkeeping fields every stored resource is returned with (see `resources::item_json`).
const META_FIELDS: [&str; 3] = ["revision", "created_at_ms", "updated_at_ms"];

/// `schema` as the API answers it: with revision and timestamps, and `extra` required
/// string fields (the plaintext `key` of a new API key). The request schemas refuse
/// unknown fields, so the answers need schemas of their own.
fn stored(schema: &RefOr<Schema>, extra: &[&str]) -> Option<RefOr<Schema>> {
    let RefOr::T(Schema::Object(obj)) = schema else {
        return None;
    };
    let mut obj = obj.clone();
    let fields = META_FIELDS
        .iter()
        .map(|f| (f, json!({"type": "integer", "minimum": 0})));
    let extra = extra.iter().map(|f| (f, json!({"type": "string"})));
    for (field, schema) in fields.chain(extra) {
        obj.properties
            .insert(field.to_string(), operations::to_schema(schema)?);
        obj.required.push(field.to_string());
    }
    Some(RefOr::T(Schema::Object(obj)))
}

/// Ids are slugs (`check_id` in the store's validation; model ids may also hold `/` and
/// `:`); saying so lets a fuzzer make valid ones instead of mostly refused ones.
fn constrain_ids(schemas: &mut std::collections::BTreeMap<String, RefOr<Schema>>) {
    for kind in Kind::ALL {
        let pattern = match kind {
            Kind::Model => "^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$",
            _ => "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        };
        let id = operations::to_schema(json!({"type": "string", "pattern": pattern}));
        if let (Some(RefOr::T(Schema::Object(obj))), Some(id)) =
            (schemas.get_mut(schema_name(kind)), id)
        {
            obj.properties.insert("id".into(), id);
        }
    }
}

/// List, create, get, replace and delete of one collection, and its extra actions.
fn resource_operations(kind: Kind) -> Vec<(String, HttpMethod, Value)> {
    use HttpMethod::{Delete, Get, Post, Put};
    let (coll, name) = (kind.collection(), schema_name(kind));
    let (list, item) = (
        format!("/admin/v1/{coll}"),
        format!("/admin/v1/{coll}/{{id}}"),
    );
    let stored = schema_ref(&format!("Stored{name}"));
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
    let consistent = json!({"name": "consistent", "in": "query", "required": false,
        "schema": {"type": "boolean"}, "description": "linearizable read"});
    let body =
        json!({"required": true, "content": {"application/json": {"schema": schema_ref(name)}}});
    let items = json!({"type": "object", "required": ["items", "revision"], "properties": {
        "items": {"type": "array", "items": stored}, "revision": {"type": "integer", "minimum": 0}}});
    let mut ops = vec![
        (
            list.clone(),
            Get,
            json!({"summary": format!("List {coll}"), "parameters": [consistent],
            "responses": responses((200, json_response("items and revision", items)), &[400, 401, 503])}),
        ),
        (
            item.clone(),
            Get,
            json!({"summary": format!("Get a {kind}"), "parameters": [id, consistent],
            "responses": responses((200, json_response("the resource", stored.clone())), &[400, 401, 404, 503])}),
        ),
        (
            item.clone(),
            Put,
            json!({"summary": format!("Replace a {kind}"), "parameters": [id], "requestBody": body,
            "responses": responses((200, json_response("the resource", stored.clone())), &[400, 401, 403, 404, 409, 413, 422, 503])}),
        ),
        (
            item,
            Delete,
            json!({"summary": format!("Delete a {kind}"), "parameters": [id],
            "responses": responses((200, json_response("what was deleted", schema_ref("Deleted"))), &[401, 403, 404, 409, 503])}),
        ),
    ];
    match kind {
        // API keys are created under their consumer, so that the plaintext is returned once.
        Kind::ApiKey => ops.push(("/admin/v1/consumers/{id}/keys".into(), Post, json!({
            "summary": "Create an API key (plaintext returned once)", "parameters": [id],
            "requestBody": {"required": false, "content": {"application/json": {"schema": schema_ref("NewApiKey")}}},
            "responses": responses((201, json_response("the key with its secret", schema_ref("StoredApiKeyWithSecret"))), &[400, 401, 403, 409, 413, 422, 503])}))),
        _ => ops.push((list, Post, json!({"summary": format!("Create a {kind}"), "requestBody": body,
            "responses": responses((201, json_response("created", stored.clone())), &[400, 401, 403, 409, 413, 422, 503])}))),
    }
    if kind == Kind::Subscription {
        for (action, summary) in [
            (
                "approve",
                "Approve a subscription (admin or the service's tenant-admin)",
            ),
            (
                "reject",
                "Reject a pending subscription (admin or the service's tenant-admin)",
            ),
            (
                "revoke",
                "Revoke a subscription (admin or a tenant-admin of either side)",
            ),
        ] {
            ops.push((format!("/admin/v1/subscriptions/{{id}}/{action}"), Post, json!({
                "summary": summary, "parameters": [id],
                "requestBody": {"required": false, "content": {"application/json": {"schema": schema_ref("SubscriptionAction")}}},
                "responses": responses((200, json_response("the subscription", stored.clone())), &[400, 401, 403, 404, 409, 413, 503])})));
        }
    }
    ops
}

/// The full document; built per request (cheap, rarely fetched).
pub fn build() -> OpenApi {
    let mut components = ComponentsBuilder::new()
        .schema_from::<Tenant>()
        .schema_from::<Consumer>()
        .schema_from::<ApiKey>()
        .schema_from::<Upstream>()
        .schema_from::<Route>()
        .schema_from::<Provider>()
        .schema_from::<Model>()
        .schema_from::<PromptTemplate>()
        .schema_from::<QuotaPolicy>()
        .schema_from::<Permission>()
        .schema_from::<Service>()
        .schema_from::<Subscription>()
        .schema_from::<Certificate>()
        .schema_from::<Kind>()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .build();
    let mut extra = Vec::new();
    for_each_dependency(&mut extra);
    for (name, schema) in extra {
        components.schemas.entry(name).or_insert(schema);
    }
    for (name, schema) in operations::shared_schemas() {
        if let Some(schema) = operations::to_schema(schema) {
            components.schemas.insert(name, schema);
        }
    }
    constrain_ids(&mut components.schemas);
    let mut paths = Paths::new();
    for kind in Kind::ALL {
        let name = schema_name(kind);
        let Some(schema) = components.schemas.get(name) else {
            continue;
        };
        let mut answers = vec![(format!("Stored{name}"), stored(schema, &[]))];
        if kind == Kind::ApiKey {
            answers.push(("StoredApiKeyWithSecret".into(), stored(schema, &["key"])));
        }
        for (answer, schema) in answers {
            if let Some(schema) = schema {
                components.schemas.insert(answer, schema);
            }
        }
        operations::add(&mut paths, resource_operations(kind));
    }
    operations::add(&mut paths, operations::operations());
    operations::add(&mut paths, operations::access_operations());

    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Raftgate admin API")
                .version(env!("CARGO_PKG_VERSION"))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .security(Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]))
        .build()
}

/// Nested schemas referenced by the resources.
fn for_each_dependency(
    out: &mut Vec<(
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    )>,
) {
    Tenant::schemas(out);
    Consumer::schemas(out);
    ApiKey::schemas(out);
    Upstream::schemas(out);
    Route::schemas(out);
    Provider::schemas(out);
    Model::schemas(out);
    PromptTemplate::schemas(out);
    QuotaPolicy::schemas(out);
    Permission::schemas(out);
    Service::schemas(out);
    Subscription::schemas(out);
    Certificate::schemas(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_parses_and_documents_its_parameters_and_errors() {
        for kind in Kind::ALL {
            for (path, _, op) in resource_operations(kind) {
                let parsed = serde_json::from_value::<utoipa::openapi::path::Operation>(op);
                assert!(parsed.is_ok(), "{path}: {:?}", parsed.err());
            }
        }
        let doc = serde_json::to_value(build()).expect("serializes");
        let schema_of = |path: &str, method: &str, status: &str| {
            doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
                ["$ref"]
                .clone()
        };
        // Creates answer 201 with the stored resource; errors with the error body.
        let stored = "#/components/schemas/StoredTenant";
        assert_eq!(schema_of("/admin/v1/tenants", "post", "201"), stored);
        assert_eq!(schema_of("/admin/v1/tenants/{id}", "get", "200"), stored);
        let error = "#/components/schemas/Error";
        assert_eq!(schema_of("/admin/v1/tenants", "post", "409"), error);
        assert_eq!(schema_of("/admin/v1/tokens", "post", "403"), error);
        let secret = "#/components/schemas/StoredApiKeyWithSecret";
        assert_eq!(
            schema_of("/admin/v1/consumers/{id}/keys", "post", "201"),
            secret
        );
        let required = &doc["components"]["schemas"]["StoredApiKeyWithSecret"]["required"];
        for field in [
            "id",
            "consumer",
            "revision",
            "created_at_ms",
            "updated_at_ms",
            "key",
        ] {
            assert!(
                required.as_array().unwrap().contains(&json!(field)),
                "{field} in {required}"
            );
        }
        // Every operation has a response per status, and every parameter a schema.
        let mut count = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                count += 1;
                assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
                for p in op["parameters"].as_array().into_iter().flatten() {
                    assert!(p["schema"].is_object(), "{method} {path}: {p}");
                }
            }
        }
        assert!(count >= 13 * 5 + 15, "{count} operations");
        let id = &doc["components"]["schemas"]["StoredTenant"]["properties"]["id"];
        assert_eq!(id["pattern"], "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$");
        // The unauthenticated calls say so.
        assert_eq!(
            doc["paths"]["/admin/v1/cluster/init"]["post"]["security"],
            json!([])
        );
        assert_eq!(
            doc["paths"]["/admin/v1/whoami"]["get"]["security"],
            Value::Null
        );
    }

    #[test]
    fn new_collections_and_actions_are_documented() {
        let doc = serde_json::to_value(build()).expect("serializes");
        for path in [
            "/admin/v1/services",
            "/admin/v1/subscriptions/{id}",
            "/admin/v1/certificates",
            "/admin/v1/subscriptions/{id}/approve",
            "/admin/v1/subscriptions/{id}/revoke",
        ] {
            assert!(doc["paths"][path].is_object(), "missing {path}");
        }
        for schema in [
            "Service",
            "Subscription",
            "Certificate",
            "JwtAuth",
            "Cors",
            "Timeouts",
        ] {
            assert!(
                doc["components"]["schemas"][schema].is_object(),
                "missing schema {schema}"
            );
        }
    }
}

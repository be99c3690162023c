//! The OpenAPI document of the admin API, built from the resource schemas (utoipa).

use axum::Json;
use raftgate_store::model::*;
use serde_json::Value;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, Paths,
    Ref, Required, ResponseBuilder,
};
use utoipa::ToSchema;

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

fn json_body(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema)))
        .build()
}

fn response(desc: &str, schema: Option<&str>) -> utoipa::openapi::Response {
    let mut r = ResponseBuilder::new().description(desc);
    if let Some(s) = schema {
        r = r.content("application/json", json_body(s));
    }
    r.build()
}

fn op(summary: String, ok: utoipa::openapi::Response) -> OperationBuilder {
    OperationBuilder::new()
        .summary(Some(summary))
        .response("200", ok)
        .response("400", response("invalid input", None))
        .response("401", response("missing or invalid token", None))
        .response("403", response("not allowed for this role", None))
        .response("503", response("no leader / not initialized", None))
}

fn id_param() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .build()
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

    let mut paths = Paths::new();
    for kind in Kind::ALL {
        let (coll, schema) = (kind.collection(), schema_name(kind));
        let list = format!("/admin/v1/{coll}");
        let item = format!("/admin/v1/{coll}/{{id}}");
        paths.add_path_operation(
            &list,
            vec![HttpMethod::Get],
            op(format!("List {coll}"), response("items and revision", None)).build(),
        );
        if kind != Kind::ApiKey {
            let create = op(
                format!("Create a {kind}"),
                response("created", Some(schema)),
            )
            .request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json_body(schema))
                    .required(Some(Required::True))
                    .build(),
            ))
            .response("409", response("already exists", None))
            .response("422", response("invalid reference", None));
            paths.add_path_operation(&list, vec![HttpMethod::Post], create.build());
        }
        let get = op(
            format!("Get a {kind}"),
            response("the resource", Some(schema)),
        )
        .parameter(id_param())
        .response("404", response("not found", None));
        paths.add_path_operation(&item, vec![HttpMethod::Get], get.build());
        let put = op(
            format!("Replace a {kind}"),
            response("the resource", Some(schema)),
        )
        .parameter(id_param())
        .request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json_body(schema))
                .required(Some(Required::True))
                .build(),
        ))
        .response("404", response("not found", None))
        .response("422", response("invalid reference", None));
        paths.add_path_operation(&item, vec![HttpMethod::Put], put.build());
        let del = op(format!("Delete a {kind}"), response("deleted", None))
            .parameter(id_param())
            .response("409", response("still referenced", None));
        paths.add_path_operation(&item, vec![HttpMethod::Delete], del.build());
    }
    let key_op = op(
        "Create an API key (plaintext returned once)".into(),
        response("the key with its secret", None),
    )
    .parameter(id_param());
    paths.add_path_operation(
        "/admin/v1/consumers/{id}/keys",
        vec![HttpMethod::Post],
        key_op.build(),
    );
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
        let body = RequestBodyBuilder::new()
            .description(Some(r#"optional {"note": "..."}"#))
            .required(Some(Required::False))
            .build();
        let act = op(
            summary.into(),
            response("the subscription", Some("Subscription")),
        )
        .parameter(id_param())
        .request_body(Some(body))
        .response("404", response("not found", None))
        .response("409", response("transition not allowed", None));
        paths.add_path_operation(
            format!("/admin/v1/subscriptions/{{id}}/{action}"),
            vec![HttpMethod::Post],
            act.build(),
        );
    }
    for (path, method, summary) in [
        ("/admin/v1/cluster", HttpMethod::Get, "Cluster status"),
        (
            "/admin/v1/cluster/init",
            HttpMethod::Post,
            "Bootstrap a one-node cluster",
        ),
        (
            "/admin/v1/cluster/join",
            HttpMethod::Post,
            "Join this node to another node's cluster",
        ),
        (
            "/admin/v1/cluster/leave",
            HttpMethod::Post,
            "Remove this node from its cluster",
        ),
        ("/admin/v1/cluster/members", HttpMethod::Post, "Add a node"),
        ("/admin/v1/tokens", HttpMethod::Post, "Mint an admin token"),
        (
            "/admin/v1/backup",
            HttpMethod::Get,
            "Consistent backup of the replicated state (admin; binary file, docs/backup.md)",
        ),
        (
            "/admin/v1/restore",
            HttpMethod::Post,
            "Replace the replicated state with a backup file (admin; one Raft entry)",
        ),
        (
            "/admin/v1/usage",
            HttpMethod::Get,
            "Cluster-wide quota usage; filters: policy, api_key, consumer, tenant, route, service, model, window=current|previous|all, consistent",
        ),
        (
            "/admin/v1/logs",
            HttpMethod::Get,
            "Call logs of every node, merged newest first; filters: from_ms, to_ms, tenant, consumer, route, model, status_class=1xx..5xx, min_latency_ms, limit (1..=1000, default 100), cursor, timeout_ms; answers items, next_cursor, partial, missing_nodes, nodes (docs/observability.md)",
        ),
        (
            "/admin/v1/analytics/timeseries",
            HttpMethod::Get,
            "Per-minute rollups of every node, merged: from_ms, to_ms (default the last hour), dimension=all|tenant|consumer|route|model|provider, key, tenant, timeout_ms; answers points (minute_ms, requests, errors_4xx, errors_5xx, error_rate, p50_ms, p95_ms, p99_ms, tokens_in, tokens_out, cost), partial, missing_nodes (docs/observability.md)",
        ),
        (
            "/admin/v1/analytics/top",
            HttpMethod::Get,
            "Top keys of a dimension over a range, merged from every node: from_ms, to_ms, dimension=tenant|consumer|route|model|provider, by=requests|cost|errors|p99, limit (1..=100, default 10), tenant, timeout_ms; answers items, partial, missing_nodes (docs/observability.md)",
        ),
    ] {
        paths.add_path_operation(
            path,
            vec![method],
            op(summary.into(), response("ok", None)).build(),
        );
    }
    paths.add_path_operation(
        "/admin/v1/cluster/members/{id}",
        vec![HttpMethod::Delete],
        op("Remove a node".into(), response("ok", None))
            .parameter(id_param())
            .build(),
    );

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
    #[test]
    fn new_collections_and_actions_are_documented() {
        let doc = serde_json::to_value(super::build()).expect("serializes");
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

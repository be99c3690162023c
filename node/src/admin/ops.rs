//! Health, readiness, Prometheus metrics, and the JSON fallbacks for unknown routes.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::ApiError;
use super::AppState;

/// The process is up and serving HTTP.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready for traffic: the config has been applied and a leader is known.
pub async fn readyz(State(state): State<AppState>) -> Response {
    readiness(&state, Scope::Cluster)
}

/// Ready to serve data-plane traffic from this node's replica: a configuration of an
/// initialized cluster has been applied. Unlike [`readyz`] it needs no leader, so a load
/// balancer keeps sending traffic to nodes that lost their quorum — routes keep working
/// from the replica; only strict quotas (which need the leader's leases) fail closed.
pub async fn readyz_data_plane(State(state): State<AppState>) -> Response {
    readiness(&state, Scope::DataPlane)
}

#[derive(Clone, Copy, PartialEq)]
enum Scope {
    Cluster,
    DataPlane,
}

fn readiness(state: &AppState, scope: Scope) -> Response {
    let metrics = state.raft.metrics().borrow().clone();
    let reason = if metrics.last_applied.is_none() {
        Some("no configuration applied yet")
    } else if scope == Scope::Cluster && metrics.current_leader.is_none() {
        Some("no Raft leader known")
    } else if state.config.load().state.cluster().is_none() {
        Some("cluster not initialized")
    } else {
        None
    };
    let scope = match scope {
        Scope::Cluster => "cluster",
        Scope::DataPlane => "data-plane",
    };
    match reason {
        // Node id and term let an observer (the chaos suite) tell a stale leader from a new one.
        None => Json(json!({
            "ready": true, "scope": scope, "node_id": metrics.id, "leader": metrics.current_leader,
            "term": metrics.current_term, "applied_index": metrics.last_applied.map(|l| l.index),
        }))
        .into_response(),
        Some(r) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "scope": scope, "reason": r})),
        )
            .into_response(),
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(&state.raft.metrics().borrow());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /admin/v1/openapi.json")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

/// Counts admin requests by method and status for `/metrics`.
pub async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let response = next.run(req).await;
    state
        .metrics
        .admin_request(method.as_str(), response.status().as_u16());
    response
}

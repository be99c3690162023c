//! `GET /admin/v1/whoami`: what the presented token says about its holder, so that a
//! client (the web console) can show the role and tenant and hide what the role cannot
//! do. The server still checks every call; this only describes the token.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;

pub async fn whoami(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let claims = state.authenticate(&headers)?;
    Ok(Json(json!({
        "subject": claims.sub,
        "role": claims.role,
        "tenant": claims.tenant,
        "expires_at": claims.exp,
        "node_id": state.raft.id(),
    })))
}

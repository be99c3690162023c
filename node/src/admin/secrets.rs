//! `POST /admin/v1/secrets/rotate` re-encrypts every stored secret under this node's
//! current key in one Raft entry; `GET /admin/v1/secrets/status` counts stored secrets by
//! the key that protects them, so an operator knows when a previous key can go.
//! Procedure: `docs/security.md`, "Secrets at rest".

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use raftgate_store::{Command, Op};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{parse_json, ApiError};
use super::AppState;
use crate::secrets::{stored, SecretBox};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    /// Count what would be re-encrypted, write nothing.
    #[serde(default)]
    dry_run: bool,
}

fn key_ring(state: &AppState) -> Result<&SecretBox, ApiError> {
    state.secrets.as_deref().ok_or_else(|| {
        ApiError::bad_request(
            "secret_key_missing",
            "this node has no secret key: set secret_key_file (or RAFTGATE_SECRET_KEY) to the \
             new key on every node, and the old key in secret_key_previous_files (or \
             RAFTGATE_SECRET_KEY_PREVIOUS), then rotate",
        )
    })
}

/// Re-encrypts every secret not yet under the current key (plaintext ones included).
pub async fn rotate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let claims = state.authenticate(&headers)?;
    claims.require_admin()?;
    let body = body?;
    let req: RotateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RotateRequest::default()
    } else {
        serde_json::from_value(parse_json(&body)?)
            .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?
    };
    let sb = key_ring(&state)?;
    state.raft.linearizable_barrier().await?;
    let cfg = state.config.load_full();
    let total = stored::stored_secrets(&cfg.state).len();
    let swaps = stored::rotation(sb, &cfg.state).map_err(|bad| {
        let shown: Vec<&str> = bad.iter().take(5).map(String::as_str).collect();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "secret_key_mismatch",
            format!(
                "this node cannot decrypt {} stored secret(s), nothing was re-encrypted: {}; add \
                 the key they were written with to secret_key_previous_files (or \
                 RAFTGATE_SECRET_KEY_PREVIOUS) on this node",
                bad.len(),
                shown.join("; ")
            ),
        )
    })?;
    let mut counts = serde_json::Map::new();
    for s in &swaps {
        let n = counts
            .entry(stored::kind_name(&s.slot))
            .or_insert_with(|| json!(0));
        *n = json!(n.as_u64().unwrap_or(0) + 1);
    }
    let reencrypted = swaps.len();
    let revision = if swaps.is_empty() || req.dry_run {
        None
    } else {
        let cmd = Command::new(claims.sub.clone(), Op::Reencrypt(swaps))
            .with_origin(super::audit::origin(&state, &claims));
        let applied = state.raft.write(cmd).await?.result?;
        state.wait_applied(applied.revision).await;
        tracing::info!(
            key_id = sb.key_id(),
            reencrypted,
            revision = applied.revision,
            actor = %claims.sub,
            "stored secrets re-encrypted under the current key"
        );
        Some(applied.revision)
    };
    Ok(Json(json!({
        "key_id": sb.key_id(),
        "dry_run": req.dry_run,
        "total": total,
        "reencrypted": reencrypted,
        "already_current": total - reencrypted,
        "by_kind": counts,
        "revision": revision,
    })))
}

/// How many stored secrets each key protects, as this node sees the replicated state.
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authenticate(&headers)?.require_admin()?;
    let cfg = state.config.load_full();
    let sb = state.secrets.as_deref();
    let census = stored::census(sb, &cfg.state);
    let current = sb.map(SecretBox::key_id);
    let previous = sb.map(SecretBox::previous_key_ids).unwrap_or_default();
    // Previous keys can go once nothing needs them: every value is under the current key.
    let previous_in_use: Vec<&str> = previous
        .iter()
        .copied()
        .filter(|id| census.by_key.contains_key(*id))
        .collect();
    Ok(Json(json!({
        "node_id": state.raft.id(),
        "applied_revision": cfg.state.revision(),
        "current_key_id": current,
        "previous_key_ids": previous,
        "previous_keys_in_use": previous_in_use,
        "rotation_needed": census.not_current > 0,
        "secrets": census,
    })))
}

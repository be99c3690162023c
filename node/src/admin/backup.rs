//! `GET /admin/v1/backup` and `POST /admin/v1/restore`: a consistent snapshot of the
//! replicated state for operators, and putting one back through a single Raft entry.
//! File format, guarantees and what is kept from the running cluster: `docs/backup.md`.

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use raftgate_store::backup::{self, BackupHeader};
use raftgate_store::model::Kind;
use raftgate_store::state::{State as Replicated, StateImage};
use raftgate_store::{codec, Command, Op};
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::secrets::{stored, SecretBox};
use raftgate_store::reencrypt::SecretSlot;

/// Largest restore entry (and backup payload) a restore accepts: a quarter of the Raft
/// message limit. The entry travels whole in one AppendEntries (next to other entries of
/// the batch) and in one leader-forward message; the margin keeps both under the limit.
pub const MAX_RESTORE_BYTES: usize = raftgate_proto::MAX_MESSAGE_BYTES / 4;
/// Body limit of `POST /restore`: the payload limit plus room for the header.
pub const MAX_RESTORE_BODY: usize = MAX_RESTORE_BYTES + 4096;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn too_large(what: String) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "backup_too_large",
        format!(
            "{what}; an online restore replicates the state in one Raft entry, limited to \
             {MAX_RESTORE_BYTES} bytes (a quarter of the {} byte Raft message limit)",
            raftgate_proto::MAX_MESSAGE_BYTES
        ),
    )
}

/// Headers naming what a backup holds (the body is the file itself).
fn describe(h: &BackupHeader, size: usize) -> Vec<(&'static str, String)> {
    vec![
        ("x-raftgate-backup-cluster", h.cluster_id.clone()),
        ("x-raftgate-backup-index", h.index.to_string()),
        ("x-raftgate-backup-term", h.term.to_string()),
        ("x-raftgate-backup-sha256", h.sha256_hex()),
        ("x-raftgate-backup-size", size.to_string()),
        (
            "x-raftgate-restore-max-bytes",
            MAX_RESTORE_BYTES.to_string(),
        ),
    ]
}

/// The whole replicated state as a backup file, as of an index at least as new as every
/// write acknowledged before the call (the same barrier as `?consistent=true` reads).
pub async fn save(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    state.authenticate(&headers)?.require_admin()?;
    state.raft.linearizable_barrier().await?;
    // One published snapshot: the state and the index it was applied at belong together.
    let cfg = state.config.load_full();
    let (h, file) = backup::export(&cfg.state, cfg.applied, now_ms())
        .map_err(|e| ApiError::internal(format!("cannot write the backup: {e}")))?;
    tracing::info!(index = h.index, bytes = file.len(), sha256 = %h.sha256_hex(), "backup taken");
    let name = format!("raftgate-{}-{}.backup", h.cluster_id, h.index);
    let size = file.len();
    let mut resp = Response::new(Body::from(file));
    let out = resp.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        out.insert(header::CONTENT_DISPOSITION, v);
    }
    for (k, v) in describe(&h, size) {
        if let Ok(v) = HeaderValue::from_str(&v) {
            out.insert(k, v);
        }
    }
    Ok(resp)
}

/// Verifies a backup file (body) and replaces the replicated state with it in one entry.
pub async fn restore(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let claims = state.authenticate(&headers)?;
    claims.require_admin()?;
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(format!(
                "the backup file is larger than {MAX_RESTORE_BODY} bytes"
            ))
        } else {
            ApiError::new(r.status(), "invalid_request", r.body_text())
        }
    })?;
    let (h, payload) = backup::decode(&bytes).map_err(invalid)?;
    if payload.len() > MAX_RESTORE_BYTES {
        return Err(too_large(format!(
            "the backup's state is {} bytes",
            payload.len()
        )));
    }
    let mut image: StateImage =
        raftgate_store::state::decode_image(payload).map_err(|e| invalid(e.into()))?;
    // Secrets an older release kept in the clear enter the log encrypted.
    if let Some(sb) = state.secrets.as_deref() {
        stored::seal_image(sb, &mut image);
    }
    // The same checks apply runs, here first: a refused restore never enters the log.
    let restored = Replicated::checked_image(&image, 0)?;
    check_secrets(state.secrets.as_deref(), &restored)?;
    let secret_changed = match &image.cluster {
        Some(new) => {
            let slot = SecretSlot::TokenSecret;
            let new = stored::open(state.secrets.as_deref(), &slot, &new.token_secret).ok();
            state.token_secret().ok() != new
        }
        None => false,
    };
    let cmd = Command::new(claims.sub.clone(), Op::Restore(image))
        .with_origin(super::audit::origin(&state, &claims));
    let size = codec::encode(&cmd)
        .map_err(|e| ApiError::internal(format!("cannot encode the restore: {e}")))?
        .len();
    if size > MAX_RESTORE_BYTES {
        return Err(too_large(format!("the restore entry is {size} bytes")));
    }
    let applied = state.raft.write(cmd).await?.result?;
    state.wait_applied(applied.revision).await;
    tracing::warn!(
        revision = applied.revision,
        backup_cluster = %h.cluster_id,
        backup_index = h.index,
        actor = %claims.sub,
        "state replaced from a backup"
    );
    let counts: serde_json::Map<String, Value> = Kind::ALL
        .iter()
        .map(|k| (k.collection().to_string(), json!(restored.count(*k))))
        .collect();
    Ok(Json(json!({
        "revision": applied.revision,
        "backup": {
            "cluster_id": h.cluster_id,
            "index": h.index,
            "term": h.term,
            "created_at_ms": h.created_at_ms,
            "sha256": h.sha256_hex(),
        },
        "resources": counts,
        "token_secret_replaced": secret_changed,
    })))
}

fn invalid(e: backup::BackupError) -> ApiError {
    ApiError::bad_request("invalid_backup", e.to_string())
}

/// Refuses a backup whose encrypted secrets this node cannot decrypt: they were written
/// under a key this node does not hold, and the restored providers, certificates, routes
/// and admin tokens would fail at their first use instead of now.
fn check_secrets(secrets: Option<&SecretBox>, st: &Replicated) -> Result<(), ApiError> {
    let mut bad = Vec::new();
    for (slot, value) in stored::stored_secrets(st) {
        if let stored::Seal::Unreadable { id } = stored::seal_of(secrets, &slot, &value) {
            bad.push(match id {
                Some(id) => format!("{} (key id {id})", slot.describe()),
                None => slot.describe(),
            });
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = bad.iter().take(5).cloned().collect();
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "secret_key_mismatch",
        format!(
            "this node cannot decrypt {}{}: the backup was written under another secret key; \
             run every node with that key in its key ring (secret_key_file, or \
             secret_key_previous_files / RAFTGATE_SECRET_KEY_PREVIOUS), then restore",
            shown.join(", "),
            if bad.len() > shown.len() {
                format!(" and {} more", bad.len() - shown.len())
            } else {
                String::new()
            }
        ),
    ))
}

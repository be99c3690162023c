//! The one place admin-side failures become HTTP responses: `{"error": {"code", "message"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use raftgate_raft::RaftGateError;
use raftgate_store::ApplyError;
use serde_json::json;

/// An admin API error: a status, a stable code and a human message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body stays unread and the connection is closed after this
            // answer: say so, or a keep-alive client may send its next request on it.
            // (HTTP/2 has no such header; hyper drops it there.)
            resp.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        resp
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> ApiError {
        let status = match &e {
            ApplyError::Invalid { .. } | ApplyError::Restore(_) | ApplyError::Revocation(_) => {
                StatusCode::BAD_REQUEST
            }
            ApplyError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApplyError::AlreadyExists { .. }
            | ApplyError::InUse { .. }
            | ApplyError::AlreadyInitialized
            | ApplyError::Reencrypt(_) => StatusCode::CONFLICT,
            ApplyError::Dangling { .. }
            | ApplyError::CrossTenant { .. }
            | ApplyError::Cycle { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApplyError::NotInitialized => StatusCode::SERVICE_UNAVAILABLE,
            // Only the quota sync loop sends these; no admin call can cause one.
            ApplyError::QuotaSync(_) => StatusCode::CONFLICT,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<RaftGateError> for ApiError {
    fn from(e: RaftGateError) -> ApiError {
        let msg = e.to_string();
        match e {
            RaftGateError::NoLeader => ApiError::unavailable(
                "no_leader",
                format!("{msg}; writes resume when a quorum of nodes is reachable"),
            ),
            RaftGateError::Timeout(_) => ApiError::unavailable("timeout", msg),
            RaftGateError::NotInitialized => ApiError::unavailable("not_initialized", msg),
            RaftGateError::AlreadyInitialized => {
                ApiError::new(StatusCode::CONFLICT, "already_initialized", msg)
            }
            RaftGateError::Unreachable { .. } => ApiError::unavailable("unreachable", msg),
            RaftGateError::Busy(_) => ApiError::unavailable("busy", msg),
            RaftGateError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            RaftGateError::Invalid(_) => ApiError::bad_request("invalid_request", msg),
            _ => ApiError::internal(msg),
        }
    }
}

/// Body-extraction failures (too large, unreadable) as JSON errors.
impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> ApiError {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body exceeds 1 MiB",
            )
        } else {
            ApiError::new(r.status(), "invalid_request", r.body_text())
        }
    }
}

/// Parses a JSON body, turning syntax errors into `400 invalid_json`.
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "request body is empty; expected a JSON object",
        ));
    }
    crate::shield::check_depth(bytes, crate::shield::json_depth())
        .map_err(|e| ApiError::bad_request("json_too_deep", e.to_string()))?;
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("malformed JSON: {e}")))
}

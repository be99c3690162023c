//! Axum's extractor rejections (a path segment that is not UTF-8 or not a number, a
//! malformed query string) answer in plain text. The admin API promises
//! `{"error": {"code", "message"}}` for every error, so this middleware rewrites them;
//! handlers' own errors are JSON already and pass untouched. Found by schemathesis
//! (scripts/schemathesis.sh, the `content_type_conformance` check).

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Longest rejection text kept (axum's are one line).
const MAX_TEXT: usize = 4096;

pub async fn json_rejections(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !plain || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let text = match axum::body::to_bytes(resp.into_body(), MAX_TEXT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => "the request was rejected".to_string(),
    };
    let code = match status {
        _ if text.starts_with("Failed to deserialize query string") => "invalid_query",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "invalid_request",
    };
    ApiError::new(status, code, text).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::{Path, Query};
    use axum::routing::get;
    use axum::Router;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::admin::resources::ReadParams;

    fn app() -> Router {
        Router::new()
            .route(
                "/items/{id}",
                get(|Path(id): Path<String>| async move { id }),
            )
            .route(
                "/nodes/{id}",
                get(|Path(id): Path<u64>| async move { id.to_string() }),
            )
            .route(
                "/list",
                get(|Query(p): Query<ReadParams>| async move { format!("{:?}", p.consistent) }),
            )
            .route("/metrics", get(|| async { "plain by design" }))
            .fallback(|| async { ApiError::not_found("nothing here") })
            .layer(axum::middleware::from_fn(json_rejections))
    }

    async fn call(uri: &str) -> (StatusCode, String, Vec<u8>) {
        let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
        let resp = app().oneshot(req).await.unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, ctype, body.to_vec())
    }

    #[tokio::test]
    async fn extractor_rejections_become_json_errors() {
        for (uri, code) in [
            ("/items/%FF", "invalid_request"),
            ("/nodes/abc", "invalid_request"),
            ("/list?consistent=maybe", "invalid_query"),
            ("/list?consistent=true&consistent=false", "invalid_query"),
        ] {
            let (status, ctype, body) = call(uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(ctype, "application/json", "{uri}");
            let v: Value = serde_json::from_slice(&body).expect("JSON body");
            assert_eq!(v["error"]["code"], code, "{uri}: {v}");
            assert!(!v["error"]["message"].as_str().unwrap().is_empty(), "{uri}");
        }
    }

    #[tokio::test]
    async fn other_answers_pass_untouched() {
        assert_eq!(call("/items/a%20b").await.2, b"a b");
        assert_eq!(call("/list?consistent=true").await.2, b"Some(true)");
        // Plain text that is not an error, and JSON errors, are not rewritten.
        let (status, ctype, body) = call("/nope").await;
        assert_eq!(
            (status, ctype.as_str()),
            (StatusCode::NOT_FOUND, "application/json")
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "not_found");
        let (status, ctype, body) = call("/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ctype.starts_with("text/plain"), "{ctype}");
        assert_eq!(body, b"plain by design");
    }
}

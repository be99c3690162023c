//! The endpoints of the test upstream, dispatched on the path. `GET /health` answers
//! whatever the mode; every other request is counted and then subject to [`Mode`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::body::{self, Body, Zeros};
use super::{ws, Mode, Shared};

/// Returned by the service to close the connection without an answer (`Mode::Reset`, or
/// a request body that broke off): hyper drops an HTTP/1.1 connection and resets an
/// HTTP/2 stream when its service fails.
#[derive(Debug, thiserror::Error)]
#[error("test upstream: {0}")]
pub struct Abort(pub &'static str);

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Abort> {
    if req.uri().path() == "/health" && req.method() == Method::GET {
        shared.health_probes.fetch_add(1, Ordering::Relaxed);
        return Ok(if shared.healthy.load(Ordering::Relaxed) {
            json_response(StatusCode::OK, json!({"ok": true}))
        } else {
            json_response(StatusCode::SERVICE_UNAVAILABLE, json!({"ok": false}))
        });
    }
    shared.requests.fetch_add(1, Ordering::Relaxed);
    match shared.mode() {
        Mode::Normal => route(&shared, req).await,
        Mode::Status(code) => Ok(status_response(&shared, code)),
        Mode::Hang => std::future::pending().await,
        Mode::Reset => Err(Abort("reset mode")),
    }
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Result<Response<Body>, Abort> {
    let path = req.uri().path();
    if path == "/bench" {
        let mut res = Response::new(body::full(&b"ok"[..]));
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return Ok(res);
    }
    if path == "/ws" {
        return Ok(ws::upgrade(shared, req));
    }
    if path == "/upload" {
        if req.method() != Method::POST {
            return Ok(json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "POST /upload"}),
            ));
        }
        return upload(req).await;
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return Ok(match code.parse::<u16>() {
            Ok(code) if (200..=999).contains(&code) => status_response(shared, code),
            _ => bad_request("/status/{code}: code must be 200..=999"),
        });
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        return Ok(match n.parse::<u64>() {
            Ok(n) => {
                let mut res = Response::new(Zeros::new(n).boxed());
                res.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                res
            }
            Err(_) => bad_request("/bytes/{n}: n must be a byte count"),
        });
    }
    if let Some(ms) = path.strip_prefix("/delay/") {
        match ms.parse::<u64>() {
            Ok(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Err(_) => return Ok(bad_request("/delay/{ms}: ms must be milliseconds")),
        }
    }
    echo(shared, req).await
}

/// `{"server", "method", "path", "query", "version", "headers", "body_bytes"}`.
async fn echo(shared: &Shared, req: Request<Incoming>) -> Result<Response<Body>, Abort> {
    let (parts, mut incoming) = req.into_parts();
    let mut body_bytes = 0u64;
    while let Some(chunk) = next_chunk(&mut incoming).await? {
        body_bytes += chunk.len() as u64;
    }
    Ok(json_response(
        StatusCode::OK,
        json!({
            "server": shared.name,
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query().unwrap_or(""),
            "version": format!("{:?}", parts.version),
            "headers": headers_json(&parts.headers),
            "body_bytes": body_bytes,
        }),
    ))
}

/// Reads the body as it arrives; answers `{"bytes", "sha256"}`.
async fn upload(req: Request<Incoming>) -> Result<Response<Body>, Abort> {
    let mut incoming = req.into_body();
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = next_chunk(&mut incoming).await? {
        bytes += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok(json_response(
        StatusCode::OK,
        json!({"bytes": bytes, "sha256": hex::encode(hasher.finalize())}),
    ))
}

/// The next data chunk of a request body (trailers are skipped).
async fn next_chunk(body: &mut Incoming) -> Result<Option<hyper::body::Bytes>, Abort> {
    use http_body_util::BodyExt;
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(_)) => return Err(Abort("the request body broke off")),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Lower-case name → value; a repeated header's values joined with `", "`.
fn headers_json(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        out.insert(name.as_str().to_string(), Value::String(values.join(", ")));
    }
    Value::Object(out)
}

fn status_response(shared: &Shared, code: u16) -> Response<Body> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, json!({"server": shared.name, "status": code}))
}

fn bad_request(message: &str) -> Response<Body> {
    json_response(StatusCode::BAD_REQUEST, json!({"error": message}))
}

pub(super) fn json_response(status: StatusCode, value: Value) -> Response<Body> {
    let mut res = Response::new(body::full(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

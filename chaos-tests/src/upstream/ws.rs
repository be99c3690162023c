//! `/ws`: a WebSocket echo. The HTTP/1.1 upgrade is answered here (101 with the
//! `Sec-WebSocket-Accept` of RFC 6455); the session runs on the upgraded connection in its
//! own task until the client closes it or the upstream stops.

use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{
    HeaderMap, HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE,
};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::body::{self, Body};
use super::handlers::json_response;
use super::Shared;

/// Answers the upgrade request and spawns the echo session, or 400 when `req` is not a
/// WebSocket handshake.
pub fn upgrade(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let key = match req.headers().get(SEC_WEBSOCKET_KEY) {
        Some(key) if req.version() == Version::HTTP_11 && is_handshake(req.headers()) => {
            derive_accept_key(key.as_bytes())
        }
        _ => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": "/ws expects an HTTP/1.1 WebSocket upgrade"}),
            )
        }
    };
    let mut shutdown = shared.shutdown.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::select! {
            _ = echo(ws) => {}
            _ = shutdown.wait_for(|stopped| *stopped) => {}
        }
    });
    let mut res = Response::new(body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&key) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

fn is_handshake(headers: &HeaderMap) -> bool {
    let has = |name, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    has(UPGRADE, "websocket") && has(CONNECTION, "upgrade")
}

/// Sends every text and binary message back; pings are answered by tungstenite.
async fn echo<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            break;
        }
    }
}

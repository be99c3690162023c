//! The admin port under the same limits as the data plane: its own accept loop (plain or
//! TLS) with the per-IP connection cap, header limits and idle watcher, and a middleware
//! for the header count and the failed-authentication budget.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::serve::{builder, serve_conn, Held};
use super::{error_body, Port, Shield};

/// Time a TLS client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts admin connections until `stop` resolves; TLS when `tls` is set (the
/// certificate current at accept time: it may be rotated while the node runs). One task
/// per connection, the handshake inside it (bounded), so a slow client never holds up
/// the accept loop.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shield: Arc<Shield>,
    tls: Option<Arc<ArcSwap<rustls::ServerConfig>>>,
    stop: impl Future<Output = ()>,
) {
    let builder = Arc::new(builder(&shield.limits));
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => return,
            c = listener.accept() => match c {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "admin: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Some(slot) = shield.admit(Port::Admin, peer.ip()) else {
            drop(stream);
            continue;
        };
        let acceptor = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.load_full()));
        let (app, shield, builder) = (app.clone(), shield.clone(), builder.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let make = |activity: Arc<super::serve::Activity>| {
                hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let guard = activity.enter();
                    let app = app.clone();
                    async move {
                        let resp = app.oneshot(req.map(axum::body::Body::new)).await?;
                        Ok::<_, std::convert::Infallible>(resp.map(|b| Held::new(b, guard)))
                    }
                })
            };
            match acceptor {
                None => serve_conn(&shield, Port::Admin, &builder, stream, make).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_conn(&shield, Port::Admin, &builder, tls, make).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "admin: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "admin: TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

fn refuse(status: StatusCode, code: &str, message: &str, retry_after: Option<u64>) -> Response {
    let mut r = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        error_body(code, message),
    )
        .into_response();
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// The header count, and the failed-authentication budget of the client IP on
/// `/admin/v1`: a blocked IP's requests without `Authorization` are refused before any
/// handler runs, and a 401 over the budget becomes a 429. Health, metrics and the
/// console stay reachable.
pub async fn guard(State(shield): State<Arc<Shield>>, req: Request, next: Next) -> Response {
    if shield.too_many_headers(Port::Admin, req.headers().len()) {
        return refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too_many_headers",
            &format!(
                "the request has more than {} header fields",
                shield.limits.max_headers
            ),
            None,
        );
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (Some(ip), true) = (ip, req.uri().path().starts_with("/admin/")) else {
        return next.run(req).await;
    };
    if !req.headers().contains_key(header::AUTHORIZATION) && shield.blocked(ip) {
        shield.refused_unauthenticated(Port::Admin);
        return too_many(shield.retry_after(ip));
    }
    let resp = next.run(req).await;
    if resp.status() == StatusCode::UNAUTHORIZED {
        if let Err(retry) = shield.failed_auth(Port::Admin, ip) {
            return too_many(retry);
        }
    }
    resp
}

fn too_many(retry: u64) -> Response {
    refuse(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_unauthenticated",
        "too many requests without valid credentials from this address; retry later with a valid token",
        Some(retry),
    )
}

//! The data-plane listener. Routing, proxying and the LLM API build on this listener;
//! until a route matches, every request gets a JSON 404 (never a hang or a reset).

use std::convert::Infallible;
use std::future::Future;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = serde_json::json!({"error": {"code": "no_route", "message": format!("no route matches {} {}", req.method(), req.uri().path())}});
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Accepts connections until `stop` resolves; HTTP/1.1 and h2c.
pub async fn serve(listener: TcpListener, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let conn = tokio::select! {
            _ = &mut stop => return,
            c = listener.accept() => c,
        };
        let Ok((stream, _)) = conn else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let svc = hyper::service::service_fn(handle);
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

//! The data-plane listeners: plain HTTP (HTTP/1.1 and h2c prior knowledge) and, when
//! configured, TLS (h2 or HTTP/1.1 by ALPN, certificate by SNI). Each request goes to
//! [`crate::proxy::handle`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::proxy::{handle, DataPlane};

/// Time a client has to send a request's headers (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a TLS client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn builder() -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(256 * 1024);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1024)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    b
}

async fn serve_conn<IO>(dp: Arc<DataPlane>, io: IO, conn: crate::proxy::ConnInfo)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    dp.metrics.connections.inc();
    let d = dp.clone();
    let svc = hyper::service::service_fn(move |req| handle(d.clone(), conn, req));
    let _ = builder()
        .serve_connection_with_upgrades(TokioIo::new(io), svc)
        .await;
    dp.metrics.connections.dec();
}

/// Accepts plain connections until `stop` resolves.
pub async fn serve(listener: TcpListener, dp: Arc<DataPlane>, stop: impl Future<Output = ()>) {
    accept(listener, dp, None, stop).await
}

/// Accepts TLS connections until `stop` resolves; certificates follow the config.
pub async fn serve_tls(listener: TcpListener, dp: Arc<DataPlane>, stop: impl Future<Output = ()>) {
    let acceptor = TlsAcceptor::from(crate::proxy::tls::server_config(dp.clone()));
    accept(listener, dp, Some(acceptor), stop).await
}

async fn accept(
    listener: TcpListener,
    dp: Arc<DataPlane>,
    tls: Option<TlsAcceptor>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let conn = tokio::select! {
            _ = &mut stop => return,
            c = listener.accept() => c,
        };
        let (stream, peer) = match conn {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "data plane: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let dp = dp.clone();
        match tls.clone() {
            None => {
                let info = crate::proxy::ConnInfo { peer, tls: false };
                tokio::spawn(serve_conn(dp, stream, info));
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let info = crate::proxy::ConnInfo { peer, tls: true };
                            serve_conn(dp, tls, info).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

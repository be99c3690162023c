//! The data-plane listeners: plain HTTP (HTTP/1.1 and h2c prior knowledge) and, when
//! configured, TLS (h2 or HTTP/1.1 by ALPN, certificate by SNI). Each request goes to
//! [`crate::proxy::handle`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::proxy::{handle, DataPlane};
use crate::shield::serve::{serve_conn, Held};
use crate::shield::{Port, Shield};

/// Time a TLS client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn serve_conn_dp<IO>(
    dp: Arc<DataPlane>,
    shield: Arc<Shield>,
    builder: Arc<Builder<TokioExecutor>>,
    io: IO,
    conn: crate::proxy::ConnInfo,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    dp.metrics.connections.inc();
    let d = dp.clone();
    let make = |activity: Arc<crate::shield::serve::Activity>| {
        hyper::service::service_fn(move |req| {
            let guard = activity.enter();
            let fut = handle(d.clone(), conn, req);
            async move { fut.await.map(|r| r.map(|b| Held::new(b, guard))) }
        })
    };
    serve_conn(&shield, Port::Data, &builder, io, make).await;
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
    let Some(shield) = dp.shield.get().cloned() else {
        return tracing::error!("data plane: started without limits");
    };
    let builder = Arc::new(crate::shield::serve::builder(&shield.limits));
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
        // Over the per-IP cap: closed right after accept, before any TLS or HTTP work.
        let Some(slot) = shield.admit(Port::Data, peer.ip()) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (dp, shield, builder) = (dp.clone(), shield.clone(), builder.clone());
        match tls.clone() {
            None => {
                let info = crate::proxy::ConnInfo { peer, tls: false };
                tokio::spawn(async move {
                    let _slot = slot;
                    serve_conn_dp(dp, shield, builder, stream, info).await
                });
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let info = crate::proxy::ConnInfo { peer, tls: true };
                            serve_conn_dp(dp, shield, builder, tls, info).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

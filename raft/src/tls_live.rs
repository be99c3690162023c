//! The Raft port's TLS acceptor, with material that can be replaced while the node runs
//! (certificate rotation without downtime): every new handshake uses the configuration
//! current at accept time; established connections keep theirs until they close.
//!
//! tonic's built-in `ServerTlsConfig` is fixed for the server's life, so the node accepts
//! TCP connections and performs the handshakes itself, handing finished TLS streams to
//! tonic as its incoming connections.

use std::io;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use crate::tls::{PeerTls, TlsFileError, HANDSHAKE_TIMEOUT};

/// Handshaken connections waiting for tonic to pick them up.
const QUEUE: usize = 64;

/// The server side of the Raft port's mutual TLS, swappable at run time.
pub(crate) struct LiveServerTls {
    config: ArcSwap<rustls::ServerConfig>,
}

impl LiveServerTls {
    pub(crate) fn new(tls: &PeerTls) -> Result<LiveServerTls, TlsFileError> {
        Ok(LiveServerTls {
            config: ArcSwap::new(tls.server_config()?),
        })
    }

    /// Checks `tls` and makes it the material for every later handshake. On error the
    /// current material stays in use.
    pub(crate) fn replace(&self, tls: &PeerTls) -> Result<(), TlsFileError> {
        self.config.store(tls.server_config()?);
        Ok(())
    }

    /// Accepts connections on `listener` until `done` fires (or is dropped), handshakes each in its
    /// own task (bounded by [`HANDSHAKE_TIMEOUT`], so a slow or silent client never holds
    /// up others) and yields the established streams.
    pub(crate) fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
        mut done: oneshot::Receiver<()>,
    ) -> ReceiverStream<Result<TlsStream<TcpStream>, io::Error>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = &mut done => return,
                    _ = tx.closed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(c) => c,
                        Err(e) => {
                            // Out of file descriptors and the like: back off, keep serving.
                            tracing::warn!(error = %e, "raft: accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            continue;
                        }
                    },
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = TlsAcceptor::from(self.config.load_full());
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send(Ok(stream)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "raft: TLS handshake refused")
                        }
                        Err(_) => tracing::debug!(%peer, "raft: TLS handshake timed out"),
                    }
                });
            }
        });
        ReceiverStream::new(rx)
    }
}

//! The Raft port's TLS acceptor, with material that can be replaced while the node runs
//! (certificate rotation without downtime): every new handshake uses the configuration
//! current at accept time; established connections keep theirs until they close.
//!
//! tonic's built-in `ServerTlsConfig` is fixed for the server's life, so the node accepts
//! TCP connections and performs the handshakes itself, handing finished TLS streams to
//! tonic as its incoming connections. Handshakes in progress are bounded in total and
//! per client IP, so connections without a cluster certificate cannot pile up.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use crate::tls::{PeerTls, TlsFileError, HANDSHAKE_TIMEOUT};

/// Handshaken connections waiting for tonic to pick them up.
const QUEUE: usize = 64;
/// Handshakes in progress at once, from anyone: only a certificate from the cluster CA
/// gets past one, so this bounds what unauthenticated clients can make us hold.
const MAX_HANDSHAKES: usize = 256;
/// Handshakes in progress at once from one IP address: a peer needs a few (one channel
/// per peer, plus probes); a flood from one address cannot take every slot.
const MAX_HANDSHAKES_PER_IP: usize = 16;

/// Counts handshakes in progress, in total and per client IP.
#[derive(Default)]
struct Handshakes {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted handshake; releases its slots when dropped.
struct Slot {
    owner: Arc<Handshakes>,
    ip: IpAddr,
}

impl Handshakes {
    /// A slot for a handshake from `ip`, or `None` when the limits are reached.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = map.values().sum();
        let mine = map.get(&ip).copied().unwrap_or(0);
        if total >= MAX_HANDSHAKES || mine >= MAX_HANDSHAKES_PER_IP {
            return None;
        }
        map.insert(ip, mine + 1);
        Some(Slot {
            owner: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.owner.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

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
        let handshakes = Arc::new(Handshakes::default());
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
                let Some(slot) = handshakes.admit(peer.ip()) else {
                    tracing::debug!(%peer, "raft: too many TLS handshakes in progress; connection closed");
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = TlsAcceptor::from(self.config.load_full());
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _slot = slot;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_slots_are_bounded_per_ip_and_in_total_and_released() {
        let h = Arc::new(Handshakes::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mine: Vec<Slot> = (0..MAX_HANDSHAKES_PER_IP)
            .map(|_| h.admit(a).expect("slot"))
            .collect();
        assert!(h.admit(a).is_none(), "per-IP limit");
        let others: Vec<Slot> = (0..MAX_HANDSHAKES - MAX_HANDSHAKES_PER_IP)
            .map(|i| {
                let ip = IpAddr::from([10, 1, (i / 200) as u8, (i % 200) as u8]);
                h.admit(ip).expect("slot")
            })
            .collect();
        assert!(
            h.admit("10.9.9.9".parse().unwrap()).is_none(),
            "total limit"
        );
        drop(others);
        drop(mine);
        assert!(h.per_ip.lock().unwrap().is_empty(), "every slot released");
        assert!(h.admit(a).is_some());
    }
}

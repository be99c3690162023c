//! `TestUpstream`: a real HTTP/1.1 + HTTP/2 (h2c or TLS) backend on a real socket, for
//! data-plane tests and benchmarks; the `raftgate-upstream` binary runs the same code.
//!
//! Endpoints (see [`handlers`]): `GET /health`, `/status/{code}`, `/delay/{ms}`,
//! `/bytes/{n}`, `POST /upload`, `/ws` (WebSocket echo), `/bench`, and a JSON echo of
//! anything else. A test can make it unhealthy ([`TestUpstream::set_healthy`]) or make every
//! request fail ([`TestUpstream::set_mode`]) and count what reached it.

mod body;
mod handlers;
mod tls;
mod ws;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

pub use tls::{ca_and_leaf, self_signed, CaAndLeaf};

/// How the upstream answers requests other than `GET /health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The endpoints behave as documented.
    #[default]
    Normal,
    /// Every request is answered with this status (200..=999) and a small JSON body.
    Status(u16),
    /// Every request is read and never answered (the connection stays open).
    Hang,
    /// Every request closes its connection without an answer (HTTP/2: the stream is reset).
    Reset,
}

impl Mode {
    fn encode(self) -> u32 {
        match self {
            Mode::Normal => 0,
            Mode::Hang => 1,
            Mode::Reset => 2,
            Mode::Status(code) => u32::from(code),
        }
    }

    fn decode(v: u32) -> Mode {
        match v {
            0 => Mode::Normal,
            1 => Mode::Hang,
            2 => Mode::Reset,
            code => Mode::Status(code as u16),
        }
    }
}

/// What to start; `UpstreamOptions::default()` is a plain-TCP upstream named `upstream`
/// on `127.0.0.1:0`.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// Reported as `server` in echo answers.
    pub name: String,
    /// Where to listen; `None`: `127.0.0.1:0`.
    pub addr: Option<SocketAddr>,
    /// `(cert_pem, key_pem)`: serve TLS with ALPN `h2` and `http/1.1`.
    pub tls: Option<(String, String)>,
}

impl Default for UpstreamOptions {
    fn default() -> UpstreamOptions {
        UpstreamOptions {
            name: "upstream".into(),
            addr: None,
            tls: None,
        }
    }
}

impl UpstreamOptions {
    /// Default options with this name.
    pub fn named(name: &str) -> UpstreamOptions {
        UpstreamOptions {
            name: name.into(),
            ..UpstreamOptions::default()
        }
    }

    /// Listen on `addr` (e.g. to come back on the same port after [`TestUpstream::stop`]).
    pub fn addr(mut self, addr: SocketAddr) -> UpstreamOptions {
        self.addr = Some(addr);
        self
    }

    /// Serve TLS with this certificate chain and private key (PEM).
    pub fn tls(mut self, cert_pem: &str, key_pem: &str) -> UpstreamOptions {
        self.tls = Some((cert_pem.into(), key_pem.into()));
        self
    }
}

/// State shared by the accept loop and every request.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) requests: AtomicU64,
    pub(crate) health_probes: AtomicU64,
    pub(crate) healthy: AtomicBool,
    mode: AtomicU32,
    /// Flips to `true` at stop; WebSocket sessions (which outlive their connection's
    /// task once upgraded) watch it.
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub(crate) fn mode(&self) -> Mode {
        Mode::decode(self.mode.load(Ordering::Relaxed))
    }
}

/// A running upstream. Stops (listener closed, connections dropped) on [`stop`](Self::stop)
/// or when dropped.
#[derive(Debug)]
pub struct TestUpstream {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl TestUpstream {
    /// Binds (default `127.0.0.1:0`) and starts serving on the current tokio runtime; the
    /// socket accepts connections when this returns.
    pub async fn start(options: UpstreamOptions) -> anyhow::Result<TestUpstream> {
        let bind = options
            .addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding the test upstream to {bind}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let acceptor = match &options.tls {
            Some((cert, key)) => Some(TlsAcceptor::from(Arc::new(tls::server_config(cert, key)?))),
            None => None,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            name: options.name,
            requests: AtomicU64::new(0),
            health_probes: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            mode: AtomicU32::new(0),
            shutdown: shutdown_rx,
        });
        let task = tokio::spawn(accept_loop(listener, acceptor, shared.clone()));
        Ok(TestUpstream {
            addr,
            tls: options.tls.is_some(),
            shared,
            shutdown,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Requests received, every endpoint and mode except `GET /health`.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// `GET /health` requests received.
    pub fn health_probes(&self) -> u64 {
        self.shared.health_probes.load(Ordering::Relaxed)
    }

    /// `GET /health` answers 200 when `true` (the initial state), 503 when `false`.
    pub fn set_healthy(&self, healthy: bool) {
        self.shared.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Takes effect for the next request. Panics on `Status` outside 200..=999.
    pub fn set_mode(&self, mode: Mode) {
        if let Mode::Status(code) = mode {
            assert!(
                (200..=999).contains(&code),
                "Mode::Status({code}): not an HTTP status"
            );
        }
        self.shared.mode.store(mode.encode(), Ordering::Relaxed);
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Closes the listener and drops every connection, and waits until they are gone, so
    /// the port can be bound again. Idempotent.
    pub async fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accepts until aborted; connection tasks live in a `JoinSet`, so aborting this task
/// drops (and aborts) all of them.
async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_connection(stream, tls.clone(), shared.clone()));
                }
                // EMFILE and the like: back off briefly instead of spinning.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    match tls {
        Some(acceptor) => {
            // A failed handshake only concerns that client.
            if let Ok(stream) = acceptor.accept(stream).await {
                serve_io(TokioIo::new(stream), shared).await
            }
        }
        None => serve_io(TokioIo::new(stream), shared).await,
    }
}

/// HTTP/1.1 or HTTP/2 (detected from the connection preface, so h2c prior knowledge works
/// on plain TCP), with upgrades for WebSocket.
async fn serve_io<I>(io: I, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| handlers::handle(shared.clone(), req));
    let builder = auto::Builder::new(TokioExecutor::new());
    // Errors (a client going away, a `Mode::Reset` request) end only this connection.
    let _ = builder.serve_connection_with_upgrades(io, service).await;
}

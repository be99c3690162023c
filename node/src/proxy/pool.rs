//! Keep-alive connections to HTTP/1.1 upstream targets, kept lean for the proxy core.
//!
//! hyper-util's generic client costs every request a pool-key hash and clone, a
//! checkout future and a spawned task that waits for the connection to be idle again.
//! Here each target has two stacks of idle connections: plain ones for requests whose
//! body is at hand whole, exchanged on the request's own task (`crate::proxy::wire`),
//! and hyper `SendRequest`s for streamed bodies and upgrades. A request pops one (or
//! connects), sends, and its response body pushes the connection back when the body
//! ends. A body dropped early, an error or a `101` never returns its connection.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::proxy::wire::{self, AnswerBody, Conn, ExchangeError, GiveBack, Io, Outgoing};
use crate::proxy::{BoxError, ProxyBody};

/// Idle connections kept per target; beyond this a returned connection is closed.
const MAX_IDLE: usize = 1024;
/// An idle connection older than this is closed rather than reused (as hyper-util's
/// pool did: servers commonly drop idle keep-alive connections after 60–120 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keep-alive probes on upstream connections start after this much silence.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Why a request to an upstream failed.
#[derive(Debug)]
pub struct UpstreamError {
    connect: bool,
    inner: BoxError,
}

impl UpstreamError {
    pub fn connect(e: impl Into<BoxError>) -> UpstreamError {
        UpstreamError {
            connect: true,
            inner: e.into(),
        }
    }

    pub fn other(e: impl Into<BoxError>) -> UpstreamError {
        UpstreamError {
            connect: false,
            inner: e.into(),
        }
    }

    /// The connection could not be made: nothing reached the upstream.
    pub fn is_connect(&self) -> bool {
        self.connect
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.inner)
    }
}

struct Idle {
    tx: SendRequest<ProxyBody>,
    since: Instant,
}

struct IdleConn {
    conn: Conn,
    since: Instant,
}

/// HTTP/1.1 connections to the targets of one upstream (one TLS setting, one connect
/// timeout).
pub struct H1Pool {
    tls: Option<(TlsConnector, Option<ServerName<'static>>)>,
    connect_timeout: Duration,
    idle: Mutex<HashMap<Authority, VecDeque<Idle>>>,
    idle_conns: Mutex<HashMap<Authority, VecDeque<IdleConn>>>,
}

impl H1Pool {
    /// `tls`: the connector for `https` upstreams and the server name to verify when it
    /// is not the target's host.
    pub fn new(
        tls: Option<(TlsConnector, Option<ServerName<'static>>)>,
        connect_timeout: Duration,
    ) -> H1Pool {
        H1Pool {
            tls,
            connect_timeout,
            idle: Mutex::new(HashMap::new()),
            idle_conns: Mutex::new(HashMap::new()),
        }
    }

    /// Sends a request whose body is at hand whole, on the calling task. A kept-alive
    /// connection the upstream closed meanwhile is replaced by another when nothing of
    /// the request can have been processed: the write failed, or (idempotent methods
    /// only, as Go's client does) the connection closed before any answer.
    pub(crate) async fn send_whole(
        self: &Arc<Self>,
        authority: &Authority,
        req: Outgoing<'_>,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        loop {
            let (mut conn, reused) = match self.checkout_conn(authority) {
                Some(c) => (c, true),
                None => (Conn::new(self.open(authority).await?), false),
            };
            match wire::exchange(&mut conn, &req).await {
                Ok(mut answer) => {
                    let back = Back {
                        pool: self.clone(),
                        authority: authority.clone(),
                    };
                    let body = match wire::body(conn, &mut answer, back) {
                        AnswerBody::Whole(b) => Full::new(b).map_err(|e| match e {}).boxed_unsync(),
                        AnswerBody::Streaming(b) => b.boxed_unsync(),
                    };
                    let mut resp = Response::new(body);
                    *resp.status_mut() = answer.status;
                    *resp.version_mut() = answer.version;
                    *resp.headers_mut() = answer.headers;
                    return Ok(resp);
                }
                Err(ExchangeError::Write(_)) if reused => {}
                Err(ExchangeError::ClosedBeforeAnswer) if reused && idempotent(req.method) => {}
                Err(e) => return Err(UpstreamError::other(e)),
            }
        }
    }

    /// The most recently idle connection to `authority` that the upstream has not
    /// closed, if any.
    fn checkout_conn(&self, authority: &Authority) -> Option<Conn> {
        let mut idle = self.idle_conns.lock().unwrap_or_else(|p| p.into_inner());
        let stack = idle.get_mut(authority)?;
        let now = Instant::now();
        while stack
            .front()
            .is_some_and(|i| now.duration_since(i.since) > IDLE_TIMEOUT)
        {
            stack.pop_front();
        }
        while let Some(mut i) = stack.pop_back() {
            if i.conn.is_idle_and_open() {
                return Some(i.conn);
            }
        }
        None
    }

    fn checkin_conn(&self, authority: &Authority, conn: Conn) {
        let now = Instant::now();
        let mut idle = self.idle_conns.lock().unwrap_or_else(|p| p.into_inner());
        let stack = match idle.get_mut(authority) {
            Some(s) => s,
            None => idle.entry(authority.clone()).or_default(),
        };
        if stack.len() < MAX_IDLE {
            stack.push_back(IdleConn { conn, since: now });
        }
    }

    /// Sends `req` (origin-form URI, `Host` set by the caller) to `authority`.
    pub async fn send(
        self: &Arc<Self>,
        authority: &Authority,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        loop {
            let (mut tx, reused) = match self.checkout(authority) {
                Some(tx) => (tx, true),
                None => (self.connect(authority).await?, false),
            };
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok(self.returning(authority, tx, resp)),
                Err(mut e) => match e.take_message() {
                    // The connection closed before the request was written (the server
                    // dropped an idle connection): nothing was sent, so try another.
                    Some(r) if reused => req = r,
                    _ => return Err(UpstreamError::other(e.into_error())),
                },
            }
        }
    }

    /// The most recently idle live connection to `authority` that is ready for a
    /// request now, if any. One whose connection task has not yet caught up with the
    /// end of its last exchange (or still sends a request body the upstream answered
    /// before reading) stays in the pool for later instead of being waited for.
    fn checkout(&self, authority: &Authority) -> Option<SendRequest<ProxyBody>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut busy = Vec::new();
        let found = loop {
            let mut conn = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                let Some(stack) = idle.get_mut(authority) else {
                    break None;
                };
                expire(stack, Instant::now());
                match stack.pop_back() {
                    Some(c) => c,
                    None => break None,
                }
            };
            match conn.tx.poll_ready(&mut cx) {
                Poll::Ready(Ok(())) => break Some(conn.tx),
                Poll::Ready(Err(_)) => {} // closed: dropped
                Poll::Pending => busy.push(conn),
            }
        };
        if !busy.is_empty() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            // At the cold end, so the next request does not poll them again first.
            let stack = idle.entry(authority.clone()).or_default();
            for conn in busy {
                stack.push_front(conn);
            }
        }
        found
    }

    fn checkin(&self, authority: &Authority, tx: SendRequest<ProxyBody>) {
        if tx.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let stack = match idle.get_mut(authority) {
            Some(s) => s,
            None => idle.entry(authority.clone()).or_default(),
        };
        expire(stack, now);
        if stack.len() < MAX_IDLE {
            stack.push_back(Idle { tx, since: now });
        }
    }

    /// Closes connections idle for longer than the idle timeout (called every second
    /// by the data plane's refresher, so an unused pool does not hold sockets).
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, stack| {
            stack.retain(|i| !i.tx.is_closed() && now.duration_since(i.since) <= IDLE_TIMEOUT);
            !stack.is_empty()
        });
        drop(idle);
        let mut idle = self.idle_conns.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, stack| {
            stack.retain_mut(|i| {
                now.duration_since(i.since) <= IDLE_TIMEOUT && i.conn.is_idle_and_open()
            });
            !stack.is_empty()
        });
    }

    /// Idle connections held now, of both kinds (tests).
    pub fn idle_count(&self) -> usize {
        let hyper = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let own = self.idle_conns.lock().unwrap_or_else(|p| p.into_inner());
        hyper.values().map(VecDeque::len).sum::<usize>()
            + own.values().map(VecDeque::len).sum::<usize>()
    }

    async fn connect(
        &self,
        authority: &Authority,
    ) -> Result<SendRequest<ProxyBody>, UpstreamError> {
        handshake(self.open(authority).await?).await
    }

    /// A new connection to `authority`, TLS when the upstream uses it.
    async fn open(&self, authority: &Authority) -> Result<Io, UpstreamError> {
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = authority
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| UpstreamError::connect(format!("connecting to {authority} timed out")))?
            .map_err(UpstreamError::connect)?;
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&tcp)
            .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE));
        let Some((connector, fixed_name)) = &self.tls else {
            return Ok(Io::Tcp(tcp));
        };
        let name = match fixed_name {
            Some(n) => n.clone(),
            None => ServerName::try_from(host.to_string()).map_err(UpstreamError::connect)?,
        };
        let tls = tokio::time::timeout(self.connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| {
                UpstreamError::connect(format!("TLS handshake with {authority} timed out"))
            })?
            .map_err(UpstreamError::connect)?;
        Ok(Io::Tls(Box::new(tls)))
    }

    fn returning(
        self: &Arc<Self>,
        authority: &Authority,
        tx: SendRequest<ProxyBody>,
        resp: Response<Incoming>,
    ) -> Response<ProxyBody> {
        let (parts, body) = resp.into_parts();
        let give_back = parts.status != StatusCode::SWITCHING_PROTOCOLS;
        let mut body = Returning {
            inner: body,
            back: give_back.then(|| (self.clone(), authority.clone(), tx)),
        };
        if body.inner.is_end_stream() {
            body.give_back();
        }
        Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync())
    }
}

fn expire(stack: &mut VecDeque<Idle>, now: Instant) {
    while stack
        .front()
        .is_some_and(|i| now.duration_since(i.since) > IDLE_TIMEOUT)
    {
        stack.pop_front();
    }
}

async fn handshake<IO>(io: IO) -> Result<SendRequest<ProxyBody>, UpstreamError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, conn) = http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(UpstreamError::connect)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(tx)
}

/// Where a connection of a finished exchange goes back to.
struct Back {
    pool: Arc<H1Pool>,
    authority: Authority,
}

impl GiveBack for Back {
    fn give_back(self, conn: Conn) {
        self.pool.checkin_conn(&self.authority, conn);
    }
}

/// Methods a client may send again without changing the result (RFC 9110 §9.2.2).
pub(crate) fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// `Host` for a request to `authority` without one: the port only when it is not the
/// scheme's default (what browsers and hyper-util send).
pub fn host_header(authority: &Authority, tls: bool) -> Option<HeaderValue> {
    HeaderValue::from_str(host_of(authority, tls)).ok()
}

/// [`host_header`] as the text it holds, borrowed from `authority`.
pub fn host_of(authority: &Authority, tls: bool) -> &str {
    let default = if tls { 443 } else { 80 };
    match authority.port_u16() {
        Some(p) if p != default => authority.as_str(),
        _ => authority.host(),
    }
}

/// An upstream response body that gives its connection back when it ends.
struct Returning {
    inner: Incoming,
    back: Option<(Arc<H1Pool>, Authority, SendRequest<ProxyBody>)>,
}

impl Returning {
    fn give_back(&mut self) {
        if let Some((pool, authority, tx)) = self.back.take() {
            pool.checkin(&authority, tx);
        }
    }
}

impl Body for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            // The server stops polling once `is_end_stream` says so: give back then.
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.give_back(),
            Poll::Ready(None) => self.give_back(),
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// An HTTP/1.1 server on loopback that counts its connections; `/close` answers
    /// with `Connection: close`, `/big` with a body larger than one read.
    async fn server() -> (Authority, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let conns = Arc::new(AtomicUsize::new(0));
        let counted = conns.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let mut r = match req.uri().path() {
                            "/big" => Response::new(Full::new(Bytes::from(vec![b'x'; 1 << 20]))),
                            p => Response::new(Full::new(Bytes::from(format!(
                                "{p} {}",
                                req.headers()
                                    .get(http::header::HOST)
                                    .map_or("-", |h| h.to_str().unwrap_or("?"))
                            )))),
                        };
                        if req.uri().path() == "/close" {
                            r.headers_mut().insert(
                                http::header::CONNECTION,
                                HeaderValue::from_static("close"),
                            );
                        }
                        Ok::<_, std::convert::Infallible>(r)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        (addr.to_string().parse().expect("authority"), conns)
    }

    fn get(authority: &Authority, path: &str) -> Request<ProxyBody> {
        let mut req = Request::new(
            http_body_util::Empty::new()
                .map_err(|e| match e {})
                .boxed_unsync(),
        );
        *req.uri_mut() = path.parse().expect("path");
        req.headers_mut().insert(
            http::header::HOST,
            host_header(authority, false).expect("host"),
        );
        req
    }

    async fn text(pool: &Arc<H1Pool>, a: &Authority, path: &str) -> String {
        let resp = pool.send(a, get(a, path)).await.expect("response");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    }

    #[tokio::test]
    async fn sequential_requests_share_one_connection() {
        let (a, conns) = server().await;
        let pool = Arc::new(H1Pool::new(None, Duration::from_secs(1)));
        for i in 0..5 {
            assert_eq!(
                text(&pool, &a, &format!("/r{i}")).await,
                format!("/r{i} {a}")
            );
        }
        assert_eq!(conns.load(SeqCst), 1, "keep-alive reused the connection");
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn concurrent_requests_open_one_connection_each_then_reuse_them() {
        let (a, conns) = server().await;
        let pool = Arc::new(H1Pool::new(None, Duration::from_secs(1)));
        // Hold three response bodies unread: three connections are busy at once.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(pool.send(&a, get(&a, "/big")).await.expect("response"));
        }
        assert_eq!(conns.load(SeqCst), 3);
        assert_eq!(
            pool.idle_count(),
            0,
            "a connection with an unread body is not idle"
        );
        for r in held {
            let n = r
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes()
                .len();
            assert_eq!(n, 1 << 20);
        }
        assert_eq!(pool.idle_count(), 3);
        for _ in 0..6 {
            text(&pool, &a, "/again").await;
        }
        assert_eq!(conns.load(SeqCst), 3, "later requests reused them");
    }

    #[tokio::test]
    async fn a_body_dropped_early_or_a_closing_answer_is_never_reused() {
        let (a, conns) = server().await;
        let pool = Arc::new(H1Pool::new(None, Duration::from_secs(1)));
        drop(pool.send(&a, get(&a, "/big")).await.expect("response"));
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(text(&pool, &a, "/next").await, format!("/next {a}"));
        assert_eq!(
            conns.load(SeqCst),
            2,
            "the half-read connection was not reused"
        );
        assert_eq!(text(&pool, &a, "/close").await, format!("/close {a}"));
        assert_eq!(text(&pool, &a, "/after").await, format!("/after {a}"));
        assert_eq!(
            conns.load(SeqCst),
            3,
            "`Connection: close` ended the second one"
        );
    }

    /// A request body that never ends (a client that stalls mid-upload).
    struct Stalled;

    impl Body for Stalled {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_connection_still_sending_a_request_body_is_not_handed_out() {
        let (a, conns) = server().await;
        let pool = Arc::new(H1Pool::new(None, Duration::from_secs(1)));
        let mut req = get(&a, "/early");
        *req.method_mut() = http::Method::POST;
        *req.body_mut() = Stalled.boxed_unsync();
        // The test server answers without reading the body.
        let resp = pool.send(&a, req).await.expect("an early answer");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], format!("/early {a}").as_bytes());
        // Waiting for that connection would wait for the stalled upload: the next
        // request must go out on a new one (the bound only turns a hang into a failure).
        let next = tokio::time::timeout(Duration::from_secs(10), text(&pool, &a, "/next"))
            .await
            .expect("not queued behind the busy connection");
        assert_eq!(next, format!("/next {a}"));
        assert_eq!(conns.load(SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let a: Authority = l
            .local_addr()
            .expect("addr")
            .to_string()
            .parse()
            .expect("authority");
        drop(l);
        let pool = Arc::new(H1Pool::new(None, Duration::from_secs(1)));
        let e = pool
            .send(&a, get(&a, "/"))
            .await
            .expect_err("nothing listens");
        assert!(e.is_connect(), "{e}");
    }

    async fn whole(
        pool: &Arc<H1Pool>,
        a: &Authority,
        method: &Method,
        path: &str,
    ) -> Result<String, UpstreamError> {
        let headers = http::HeaderMap::new();
        let req = Outgoing {
            method,
            path_and_query: path,
            host: Some(host_of(a, false)),
            headers: &headers,
            body: b"",
        };
        let resp = pool.send_whole(a, req).await?;
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn whole_bodies_reuse_connections_and_skip_ones_in_use() {
        let (a, conns) = server().await;
        let pool = Arc::new(H1Pool::new(None, Duration::from_secs(1)));
        for i in 0..5 {
            let got = whole(&pool, &a, &Method::GET, &format!("/w{i}"))
                .await
                .expect("answer");
            assert_eq!(got, format!("/w{i} {a}"));
        }
        assert_eq!(conns.load(SeqCst), 1);
        // A response body still being read holds its connection.
        let headers = http::HeaderMap::new();
        let req = Outgoing {
            method: &Method::GET,
            path_and_query: "/big",
            host: Some(host_of(&a, false)),
            headers: &headers,
            body: b"",
        };
        let held = pool.send_whole(&a, req).await.expect("response");
        assert_eq!(
            whole(&pool, &a, &Method::GET, "/other")
                .await
                .expect("answer"),
            format!("/other {a}")
        );
        assert_eq!(conns.load(SeqCst), 2);
        let n = held
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .len();
        assert_eq!(n, 1 << 20);
        assert_eq!(pool.idle_count(), 2);
        assert_eq!(
            whole(&pool, &a, &Method::GET, "/close")
                .await
                .expect("answer"),
            format!("/close {a}")
        );
        assert_eq!(pool.idle_count(), 1, "`Connection: close` is not pooled");
    }

    /// A server that answers the first request on each connection and then, on the
    /// next request of that connection, closes it without answering (an upstream whose
    /// keep-alive timeout fired just as the request went out).
    async fn one_answer_per_connection() -> (Authority, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let conns = Arc::new(AtomicUsize::new(0));
        let counted = conns.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let n = counted.fetch_add(1, SeqCst) + 1;
                tokio::spawn(async move {
                    let mut b = [0u8; 4096];
                    let _ = s.read(&mut b).await;
                    let body = format!("conn {n}");
                    let _ = s
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .await;
                    let _ = s.read(&mut b).await; // the next request: dropped unanswered
                });
            }
        });
        (addr.to_string().parse().expect("authority"), conns)
    }

    #[tokio::test]
    async fn a_reused_connection_closed_unanswered_is_retried_only_when_idempotent() {
        let (a, conns) = one_answer_per_connection().await;
        let pool = Arc::new(H1Pool::new(None, Duration::from_secs(1)));
        assert_eq!(
            whole(&pool, &a, &Method::GET, "/").await.expect("first"),
            "conn 1"
        );
        assert_eq!(
            whole(&pool, &a, &Method::GET, "/")
                .await
                .expect("a GET goes again on a new connection"),
            "conn 2"
        );
        assert_eq!(conns.load(SeqCst), 2);
        let e = whole(&pool, &a, &Method::POST, "/")
            .await
            .expect_err("a POST is not sent twice");
        assert!(!e.is_connect(), "{e}");
        assert_eq!(conns.load(SeqCst), 2);
    }

    #[test]
    fn host_header_omits_the_default_port() {
        let h = |a: &str, tls| host_header(&a.parse().expect("authority"), tls).expect("value");
        assert_eq!(h("example.com:80", false), "example.com");
        assert_eq!(h("example.com:443", true), "example.com");
        assert_eq!(h("example.com:8080", false), "example.com:8080");
        assert_eq!(h("example.com:80", true), "example.com:80");
        assert_eq!(h("[::1]:9000", false), "[::1]:9000");
    }
}

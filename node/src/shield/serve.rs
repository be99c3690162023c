//! Serving one accepted connection under the limits: hyper's builder with the header
//! size, count and read-timeout limits, and a watcher that closes connections that sit
//! without a request in flight (idle keep-alive, HTTP/2, and clients that never finish
//! the first request, which hyper's own header timeout does not cover before it has
//! decided between HTTP/1 and HTTP/2).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Limits, Port, Shield};

/// How long a connection told to close may take to finish what it was doing.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// hyper's connection builder with the node's header limits.
pub fn builder(l: &Limits) -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    let mut h1 = b.http1();
    h1.timer(TokioTimer::new())
        .header_read_timeout(l.header_read_timeout())
        .max_buf_size(l.max_header_bytes.max(super::MIN_HEADER_BYTES));
    // 100 is hyper's default, parsed into a stack array; any other value costs a heap
    // allocation per request, so only set it when it differs.
    if l.max_headers != 100 {
        h1.max_headers(l.max_headers);
    }
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1024)
        .max_header_list_size(u32::try_from(l.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    b
}

/// Requests begun (high 32 bits) and in flight (low 32 bits) on one connection: one
/// uncontended atomic add per request start and end.
#[derive(Default)]
pub struct Activity(AtomicU64);

const BEGUN: u64 = 1 << 32;

impl Activity {
    /// A request started; the guard ends it when its response body is done.
    pub fn enter(self: &Arc<Self>) -> ActiveGuard {
        self.0.fetch_add(BEGUN + 1, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }

    fn read(&self) -> (u64, u64) {
        let v = self.0.load(Ordering::Relaxed);
        (v >> 32, v & 0xffff_ffff)
    }
}

pub struct ActiveGuard(Arc<Activity>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project! {
    /// A response body that keeps its request counted as in flight until it ends.
    pub struct Held<B> {
        #[pin]
        inner: B,
        guard: Option<ActiveGuard>,
    }
}

impl<B> Held<B> {
    pub fn new(inner: B, guard: ActiveGuard) -> Held<B> {
        Held {
            inner,
            guard: Some(guard),
        }
    }
}

impl<B: Body> Body for Held<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let r = this.inner.poll_frame(cx);
        if let Poll::Ready(None) = r {
            this.guard.take();
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

/// Serves `io` with the service `make(activity)` builds, until the client leaves, the
/// connection ends, or it goes idle: no request begun within the header timeout
/// (first request) or the idle timeout (later), and none in flight.
pub async fn serve_conn<IO, S, F, B>(
    shield: &Shield,
    port: Port,
    builder: &Builder<TokioExecutor>,
    io: IO,
    make: impl FnOnce(Arc<Activity>) -> S,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = hyper::Response<B>, Future = F>
        + Send
        + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    F: Future<Output = Result<hyper::Response<B>, S::Error>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Arc::new(Activity::default());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), make(activity.clone()));
    tokio::pin!(conn);
    let limits = &shield.limits;
    let mut seen = 0;
    loop {
        let wait = if seen == 0 {
            limits.header_read_timeout()
        } else {
            limits.idle_timeout()
        };
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let (begun, active) = activity.read();
        if active == 0 && begun == seen {
            shield.idle_closed(port);
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await;
            return;
        }
        seen = begun.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;

    #[tokio::test]
    async fn a_request_counts_until_its_body_ends() {
        let a = Arc::new(Activity::default());
        let g = a.enter();
        let _g2 = a.enter();
        assert_eq!(a.read(), (2, 2));
        let body = Held::new(Full::new(Bytes::from_static(b"hi")), g);
        assert_eq!(a.read(), (2, 2), "in flight while the body is unread");
        let got = body.collect().await.expect("body").to_bytes();
        assert_eq!(&got[..], b"hi");
        assert_eq!(a.read(), (2, 1), "ended with its body");
    }
}

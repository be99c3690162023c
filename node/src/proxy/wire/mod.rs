//! HTTP/1.1 exchanges with an upstream, written and parsed on the request's own task.
//!
//! hyper's client runs every upstream connection as a task of its own and hands each
//! request and response across channels to it. For the common proxied request (a body
//! already read whole, no protocol upgrade) that hand-off is most of the client's
//! cost, so here the request future writes the head and body itself, parses the
//! response head with `httparse` and reads the body straight from the socket as the
//! downstream connection polls it. Message framing follows RFC 9112 §6: no body for
//! `HEAD`, 1xx, 204 and 304; `Transfer-Encoding` (chunked, else read to close) over
//! `Content-Length`; differing lengths are an error; no framing means read to close.
//! Streamed request bodies and upgrades stay on hyper (`crate::proxy::pool`).
//!
//! The bytes-to-message half (head parser, framing, body decoder) is [`message`]; this
//! file is the exchange on a connection.

mod message;

use std::io::{self, Write as _};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::Method;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::proxy::BoxError;
use message::{parse_head, Answer, Decoded, Decoder, Framing};
pub use message::{read_response, ReadResponse};

/// A connection keeps its write buffer for the next request up to this capacity.
const KEEP_OUT: usize = 8 * 1024;
/// Reads ask for at least this much room.
const READ_CHUNK: usize = 16 * 1024;

/// The transport of one upstream connection.
pub(crate) enum Io {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One keep-alive connection: its transport and the bytes read but not yet consumed.
pub(crate) struct Conn {
    io: Io,
    buf: BytesMut,
    out: Vec<u8>,
}

impl Conn {
    pub fn new(io: Io) -> Conn {
        Conn {
            io,
            buf: BytesMut::new(),
            out: Vec::new(),
        }
    }

    /// Whether an idle connection can carry a request now: the peer has neither
    /// closed it nor sent anything unasked (either makes it useless).
    pub fn is_idle_and_open(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut byte = [0u8; 1];
        let mut rb = ReadBuf::new(&mut byte);
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut rb),
            Poll::Pending
        )
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }
}

/// Why an exchange failed, and whether the request can safely go out again on another
/// connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExchangeError {
    /// Writing the request failed: on a reused connection the peer had closed it.
    #[error("writing the request: {0}")]
    Write(io::Error),
    /// The connection ended before the first byte of a response.
    #[error("the upstream closed the connection before answering")]
    ClosedBeforeAnswer,
    #[error("reading the response: {0}")]
    Read(io::Error),
    #[error("invalid response from the upstream: {0}")]
    Invalid(&'static str),
}

/// One request whose body is at hand whole.
#[derive(Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    pub method: &'a Method,
    /// Origin form: the path and the query.
    pub path_and_query: &'a str,
    /// `Host` to send when `headers` has none (an authority: no CR or LF).
    pub host: Option<&'a str>,
    /// Hop-by-hop headers already removed.
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Writes the request head and then its body into `out`. The framing headers are the
/// gateway's own: a `Content-Length` or `Transfer-Encoding` in `headers` is not sent.
fn encode(out: &mut Vec<u8>, req: &Outgoing<'_>) {
    let Outgoing {
        method,
        path_and_query,
        host,
        headers,
        body,
    } = *req;
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(host) = host.filter(|_| !headers.contains_key(header::HOST)) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // As hyper's client: a length when there is a body or the method usually has one.
    if !body.is_empty() || matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        let _ = write!(out, "content-length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}
/// Sends one request on `conn` and reads the head of its final response (1xx interim
/// responses are skipped).
pub(crate) async fn exchange(conn: &mut Conn, req: &Outgoing<'_>) -> Result<Answer, ExchangeError> {
    let mut out = std::mem::take(&mut conn.out);
    encode(&mut out, req);
    let written = async {
        conn.io.write_all(&out).await?;
        conn.io.flush().await
    }
    .await;
    // Kept for the next request unless a large body grew it (pooled connections idle).
    if out.capacity() <= KEEP_OUT {
        conn.out = out;
    }
    // An upstream may answer and close before it has read the whole body (a 413, say):
    // after a failed write, an answer already received is still the answer.
    let mut write_error = written.err();
    let mut received = false;
    let failed = |write_error: &mut Option<io::Error>, e: ExchangeError| match write_error.take() {
        Some(w) => ExchangeError::Write(w),
        None => e,
    };
    loop {
        if !conn.buf.is_empty() {
            received = true;
            if let Some(mut answer) = parse_head(&mut conn.buf, req.method)? {
                if write_error.is_some() {
                    answer.keep_alive = false;
                }
                return Ok(answer);
            }
        }
        let e = match conn.fill().await {
            Ok(0) if !received => ExchangeError::ClosedBeforeAnswer,
            Ok(0) => ExchangeError::Invalid("the connection closed mid-head"),
            Ok(_) => continue,
            Err(e) if !received && is_reset(&e) => ExchangeError::ClosedBeforeAnswer,
            Err(e) => ExchangeError::Read(e),
        };
        return Err(failed(&mut write_error, e));
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}
/// Where a finished connection goes: back to its pool when it can carry another
/// exchange.
pub(crate) trait GiveBack: Send + 'static {
    fn give_back(self, conn: Conn);
}

/// The body of an answer: whole when it came with the head (its connection is then
/// free at once), else read from the connection as it is polled.
pub(crate) enum AnswerBody<B> {
    Whole(Bytes),
    Streaming(WireBody<B>),
}

/// Turns the answer on `conn` into its body. A body already read in full hands the
/// connection to `back` before returning.
pub(crate) fn body<B: GiveBack>(mut conn: Conn, answer: &mut Answer, back: B) -> AnswerBody<B> {
    let framing = std::mem::replace(&mut answer.framing, Framing::Done);
    match framing {
        Framing::Empty => {
            finish(conn, answer.keep_alive, back);
            AnswerBody::Whole(Bytes::new())
        }
        Framing::Length(n) if conn.buf.len() as u64 >= n => {
            let bytes = conn.buf.split_to(n as usize).freeze();
            finish(conn, answer.keep_alive, back);
            AnswerBody::Whole(bytes)
        }
        framing => AnswerBody::Streaming(WireBody {
            conn: Some(conn),
            decoder: Decoder(framing),
            keep_alive: answer.keep_alive,
            back: Some(back),
        }),
    }
}

fn finish<B: GiveBack>(conn: Conn, keep_alive: bool, back: B) {
    // Bytes past the end of the message were not asked for: the connection is unusable.
    if keep_alive && conn.buf.is_empty() {
        back.give_back(conn);
    }
}
/// A response body read from its connection as it is polled; the connection goes back
/// when the body ends, and is closed when the body is dropped before that.
pub(crate) struct WireBody<B> {
    conn: Option<Conn>,
    decoder: Decoder,
    keep_alive: bool,
    back: Option<B>,
}

impl<B: GiveBack> WireBody<B> {
    fn end(&mut self) {
        self.decoder.0 = Framing::Done;
        if let (Some(conn), Some(back)) = (self.conn.take(), self.back.take()) {
            finish(conn, self.keep_alive, back);
        }
    }

    fn fail(&mut self, e: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.decoder.0 = Framing::Done;
        self.conn = None;
        Poll::Ready(Some(Err(e.into())))
    }
}

impl<B: GiveBack + Unpin> Body for WireBody<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let frame = match this.decoder.decode(&mut conn.buf) {
                Ok(Decoded::NeedMore) => None,
                Ok(Decoded::Data(b)) => Some(Some(Frame::data(b))),
                Ok(Decoded::Trailers(t)) => Some(Some(Frame::trailers(t))),
                Ok(Decoded::End) => Some(None),
                Err(e) => return this.fail(e),
            };
            if let Some(frame) = frame {
                // The server stops polling once `is_end_stream` says so: give back now.
                if this.decoder.is_done() {
                    this.end();
                }
                return Poll::Ready(frame.map(Ok));
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) => {
                    if let Err(e) = this.decoder.at_eof() {
                        return this.fail(e);
                    }
                    this.keep_alive = false;
                    this.end();
                    return Poll::Ready(None);
                }
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.0 {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done | Framing::Empty => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;
    use http::StatusCode;
    use http_body_util::BodyExt;
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// Where a test's finished connection lands, and whether one ever did.
    #[derive(Clone, Default)]
    struct Slot(Arc<Mutex<Option<Conn>>>, Arc<std::sync::atomic::AtomicBool>);

    impl GiveBack for Slot {
        fn give_back(self, conn: Conn) {
            *self.0.lock().expect("slot") = Some(conn);
            self.1.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl Slot {
        fn returned(&self) -> bool {
            self.1.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    /// A server that reads one request head and answers with `fragments`, one write
    /// each (a pause between them, so the client sees them in separate reads), then
    /// closes the connection (`then_close`) or keeps it open until the client closes
    /// it. Returns the client's connection and what the server read.
    async fn scripted_then(
        fragments: Vec<Vec<u8>>,
        then_close: bool,
    ) -> (Conn, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut seen = Vec::new();
            let mut b = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut b).await.expect("read");
                if n == 0 {
                    return seen;
                }
                seen.extend_from_slice(&b[..n]);
            }
            for f in fragments {
                s.write_all(&f).await.expect("write");
                s.flush().await.expect("flush");
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            if then_close {
                return seen;
            }
            // Hold the connection until the client is done with it.
            while let Ok(n) = s.read(&mut b).await {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&b[..n]);
            }
            seen
        });
        let tcp = TcpStream::connect(addr).await.expect("connect");
        (Conn::new(Io::Tcp(tcp)), server)
    }

    async fn scripted(fragments: Vec<Vec<u8>>) -> (Conn, tokio::task::JoinHandle<Vec<u8>>) {
        scripted_then(fragments, false).await
    }

    /// The answer to a GET sent on `conn`.
    async fn ask(conn: &mut Conn) -> Result<Answer, ExchangeError> {
        exchange(conn, &get(&HeaderMap::new(), "h")).await
    }

    fn bytewise(s: &[u8]) -> Vec<Vec<u8>> {
        s.iter().map(|b| vec![*b]).collect()
    }

    fn get<'a>(headers: &'a HeaderMap, host: &'a str) -> Outgoing<'a> {
        Outgoing {
            method: &Method::GET,
            path_and_query: "/p?q=1",
            host: Some(host),
            headers,
            body: b"",
        }
    }

    async fn run(
        fragments: Vec<Vec<u8>>,
    ) -> (
        Result<
            (
                Answer,
                Slot,
                Result<http_body_util::Collected<Bytes>, BoxError>,
            ),
            ExchangeError,
        >,
        Vec<u8>,
    ) {
        let (mut conn, server) = scripted(fragments).await;
        let headers = HeaderMap::new();
        let host = "up.example";
        let r = match exchange(&mut conn, &get(&headers, host)).await {
            Ok(mut answer) => {
                let slot = Slot::default();
                let collected = match body(conn, &mut answer, slot.clone()) {
                    AnswerBody::Whole(b) => Ok(http_body_util::Full::new(b)
                        .collect()
                        .await
                        .unwrap_or_else(|e| match e {})),
                    AnswerBody::Streaming(b) => b.collect().await,
                };
                Ok((answer, slot, collected))
            }
            Err(e) => Err(e),
        };
        // The slot (or the error path) dropped or holds the client side; close it so the
        // server task ends.
        if let Ok((_, slot, _)) = &r {
            slot.0.lock().expect("slot").take();
        }
        let seen = tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .expect("server ended")
            .expect("server task");
        (r, seen)
    }

    #[tokio::test]
    async fn the_request_head_is_written_with_our_framing_and_host() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-a", HeaderValue::from_static("1"));
        let mut out = Vec::new();
        let post = Outgoing {
            method: &Method::POST,
            path_and_query: "/x",
            host: Some("up:8080"),
            headers: &headers,
            body: b"hello",
        };
        encode(&mut out, &post);
        assert_eq!(
            String::from_utf8(out.clone()).expect("utf8"),
            "POST /x HTTP/1.1\r\nhost: up:8080\r\nx-a: 1\r\ncontent-length: 5\r\n\r\nhello"
        );
        encode(&mut out, &Outgoing { body: b"", ..post });
        assert!(
            out.ends_with(b"content-length: 0\r\n\r\n"),
            "POST says its empty length"
        );
        let mut with_host = headers.clone();
        with_host.insert(header::HOST, HeaderValue::from_static("client.example"));
        let get = Outgoing {
            method: &Method::GET,
            body: b"",
            headers: &with_host,
            ..post
        };
        encode(&mut out, &get);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "GET /x HTTP/1.1\r\nx-a: 1\r\nhost: client.example\r\n\r\n",
            "the caller's Host wins; no length for a bodiless GET"
        );
    }

    #[tokio::test]
    async fn a_chunked_body_in_single_bytes_is_decoded_with_its_trailers() {
        let (r, seen) = run(bytewise(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-up: a\r\nx-up: b\r\n\r\n\
              5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n",
        ))
        .await;
        let (answer, slot, collected) = r.expect("answer");
        assert_eq!(answer.status, StatusCode::OK);
        let ups: Vec<_> = answer.headers.get_all("x-up").iter().collect();
        assert_eq!(ups, ["a", "b"], "repeated fields kept in order");
        let collected = collected.expect("body");
        assert_eq!(
            collected
                .trailers()
                .and_then(|t| t.get("x-sum"))
                .expect("trailer"),
            "11"
        );
        assert_eq!(&collected.to_bytes()[..], b"hello world");
        assert!(
            slot.returned(),
            "the connection went back after the last chunk"
        );
        assert!(String::from_utf8_lossy(&seen)
            .starts_with("GET /p?q=1 HTTP/1.1\r\nhost: up.example\r\n"));
    }

    #[tokio::test]
    async fn a_body_read_with_its_head_frees_the_connection_at_once() {
        let (mut conn, _server) = scripted(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()
        ])
        .await;
        let mut answer = ask(&mut conn).await.expect("answer");
        let slot = Slot::default();
        match body(conn, &mut answer, slot.clone()) {
            AnswerBody::Whole(b) => assert_eq!(&b[..], b"ok"),
            AnswerBody::Streaming(_) => panic!("the body came with the head"),
        }
        assert!(slot.returned());
    }

    #[tokio::test]
    async fn a_length_body_in_pieces_streams_and_then_frees_the_connection() {
        let (r, _) = run(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123".to_vec(),
            b"45".to_vec(),
            b"6789".to_vec(),
        ])
        .await;
        let (_, slot, collected) = r.expect("answer");
        assert_eq!(&collected.expect("body").to_bytes()[..], b"0123456789");
        assert!(slot.returned());
    }

    #[tokio::test]
    async fn interim_responses_are_skipped() {
        let (r, _) = run(vec![
            b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(),
            b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok".to_vec(),
        ])
        .await;
        let (answer, _, collected) = r.expect("answer");
        assert_eq!(answer.status, StatusCode::CREATED);
        assert!(answer.headers.get("link").is_none());
        assert_eq!(&collected.expect("body").to_bytes()[..], b"ok");
    }

    #[tokio::test]
    async fn a_body_without_framing_is_read_to_close_and_not_reused() {
        let fragments = vec![
            b"HTTP/1.1 200 OK\r\n\r\nuntil".to_vec(),
            b" the end".to_vec(),
        ];
        let (mut conn, _server) = scripted_then(fragments, true).await;
        let mut answer = ask(&mut conn).await.expect("answer");
        let slot = Slot::default();
        let AnswerBody::Streaming(b) = body(conn, &mut answer, slot.clone()) else {
            panic!("read to close streams");
        };
        let got = b.collect().await.expect("body").to_bytes();
        assert_eq!(&got[..], b"until the end");
        assert!(!slot.returned());
    }

    #[tokio::test]
    async fn a_connection_that_ends_mid_body_is_an_error() {
        let cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort".to_vec();
        let (mut conn, _server) = scripted_then(vec![cut], true).await;
        let mut answer = ask(&mut conn).await.expect("answer");
        let slot = Slot::default();
        let AnswerBody::Streaming(b) = body(conn, &mut answer, slot.clone()) else {
            panic!("streams");
        };
        assert!(b.collect().await.is_err());
        assert!(!slot.returned());
    }

    #[tokio::test]
    async fn extra_bytes_after_a_body_keep_the_connection_out_of_the_pool() {
        let (r, _) = run(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n".to_vec(),
        ])
        .await;
        let (_, slot, collected) = r.expect("answer");
        assert_eq!(&collected.expect("body").to_bytes()[..], b"ok");
        assert!(!slot.returned());
    }

    #[tokio::test]
    async fn a_closed_connection_is_not_idle_and_open() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (mut conn, accepted) = tokio::join!(
            async { Conn::new(Io::Tcp(TcpStream::connect(addr).await.expect("connect"))) },
            listener.accept()
        );
        assert!(conn.is_idle_and_open());
        drop(accepted.expect("accept"));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!conn.is_idle_and_open());
    }

    #[tokio::test]
    async fn an_upstream_that_closes_without_answering_is_told_apart() {
        let (mut conn, _server) = scripted_then(Vec::new(), true).await;
        let e = ask(&mut conn).await.err().expect("no answer");
        assert!(matches!(e, ExchangeError::ClosedBeforeAnswer), "{e}");
    }
}

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

use std::io::{self, Write as _};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::proxy::BoxError;

/// A response head larger than this is refused (hyper's client default is ~400 KiB of
/// buffer; nginx's `proxy_buffer_size` defaults to 4–8 KiB).
const MAX_HEAD: usize = 64 * 1024;
/// Header fields in one response head, or in a chunked body's trailer section.
const MAX_HEADERS: usize = 128;
/// A chunk-size line (with extensions) longer than this is refused.
const MAX_CHUNK_LINE: usize = 4 * 1024;
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

/// The parsed head of a final response and how its body is delimited.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked(Chunk),
    Close,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
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

/// Parses a complete head at the front of `buf` and consumes it; `None` when more bytes
/// are needed. Interim (1xx) responses are consumed and skipped.
fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Answer>, ExchangeError> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut slots);
        // A head is refused by its length, whatever reads it arrived in.
        let len = match res.parse(buf) {
            Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Ok(None),
            Ok(_) => return Err(ExchangeError::Invalid("the response head is too large")),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ExchangeError::Invalid("too many header fields"))
            }
            Err(_) => return Err(ExchangeError::Invalid("malformed response head")),
        };
        let code = res.code.unwrap_or(0);
        let status = StatusCode::from_u16(code)
            .map_err(|_| ExchangeError::Invalid("invalid status code"))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(ExchangeError::Invalid(
                "101 to a request that asked for no upgrade",
            ));
        }
        if status.is_informational() {
            buf.advance(len);
            continue;
        }
        let version = if res.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        // Where each name and value lies in the head, so the values can share its bytes
        // once the head is frozen (as hyper does).
        let base = buf.as_ptr() as usize;
        let mut spans = [(0usize, 0usize, 0usize, 0usize); MAX_HEADERS];
        let count = res.headers.len();
        for (span, h) in spans.iter_mut().zip(res.headers.iter()) {
            let name = h.name.as_ptr() as usize - base;
            let value = h.value.as_ptr() as usize - base;
            *span = (name, name + h.name.len(), value, value + h.value.len());
        }
        let head = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(count);
        for &(ns, ne, vs, ve) in &spans[..count] {
            let name = HeaderName::from_bytes(&head[ns..ne])
                .map_err(|_| ExchangeError::Invalid("invalid header name"))?;
            let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
                .map_err(|_| ExchangeError::Invalid("invalid header value"))?;
            headers.append(name, value);
        }
        let (framing, framing_allows_reuse) = framing(status, method, &mut headers)?;
        let keep_alive = framing_allows_reuse && keeps_alive(version, &headers);
        return Ok(Some(Answer {
            status,
            version,
            headers,
            framing,
            keep_alive,
        }));
    }
}

/// How the body is delimited (RFC 9112 §6.3), and whether that framing lets the
/// connection carry another exchange afterwards.
fn framing(
    status: StatusCode,
    method: &Method,
    headers: &mut HeaderMap,
) -> Result<(Framing, bool), ExchangeError> {
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, true));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        let chunked_last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .rev()
            .find(|t| !t.trim_ascii().is_empty())
            .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        // Transfer-Encoding overrides a Content-Length, and such a message ends the
        // connection (RFC 9112 §6.3 item 3).
        let both = headers.remove(header::CONTENT_LENGTH).is_some();
        return Ok(if chunked_last {
            (Framing::Chunked(Chunk::Size), !both)
        } else {
            (Framing::Close, false)
        });
    }
    let mut length: Option<u64> = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            let n = parse_decimal(part.trim_ascii())
                .ok_or(ExchangeError::Invalid("invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(ExchangeError::Invalid("differing Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => (Framing::Empty, true),
        Some(n) => (Framing::Length(n), true),
        None => (Framing::Close, false),
    })
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn keeps_alive(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &str| {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    };
    if version == Version::HTTP_10 {
        has("keep-alive")
    } else {
        !has("close")
    }
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

/// What is left of a body's framing; decodes it from bytes as they arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Decoder(Framing);

enum Decoded {
    Data(Bytes),
    Trailers(HeaderMap),
    End,
    NeedMore,
}

impl Decoder {
    fn is_done(&self) -> bool {
        matches!(self.0, Framing::Done | Framing::Empty | Framing::Length(0))
    }

    /// The next piece of the body from the front of `buf`, consuming it.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ExchangeError> {
        loop {
            match self.0 {
                Framing::Done | Framing::Empty | Framing::Length(0) => {
                    self.0 = Framing::Done;
                    return Ok(Decoded::End);
                }
                _ if buf.is_empty() => return Ok(Decoded::NeedMore),
                Framing::Length(n) => {
                    let take = n.min(buf.len() as u64);
                    self.0 = Framing::Length(n - take);
                    return Ok(Decoded::Data(buf.split_to(take as usize).freeze()));
                }
                Framing::Close => return Ok(Decoded::Data(buf.split().freeze())),
                Framing::Chunked(state) => match decode_chunked(buf, state)? {
                    Step::Data(next, data) => {
                        self.0 = Framing::Chunked(next);
                        return Ok(Decoded::Data(data));
                    }
                    Step::Moved(next) => self.0 = Framing::Chunked(next),
                    Step::End(trailers) => {
                        self.0 = Framing::Done;
                        return Ok(trailers.map_or(Decoded::End, Decoded::Trailers));
                    }
                    Step::NeedMore => return Ok(Decoded::NeedMore),
                },
            }
        }
    }

    /// The connection ended: the end of a body read to close, else a cut-off body.
    fn at_eof(&mut self) -> Result<(), ExchangeError> {
        match self.0 {
            Framing::Close | Framing::Done => {
                self.0 = Framing::Done;
                Ok(())
            }
            _ => Err(ExchangeError::Invalid("the connection closed mid-body")),
        }
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

/// A response read from a byte stream cut into `chunks`, with the parser and decoder
/// of the pooled exchange: for tests and the `upstream_response` fuzz target, which
/// checks that where the stream is cut changes nothing.
#[derive(Debug, PartialEq)]
pub struct ReadResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
    /// The connection could carry another exchange (no bytes past the message).
    pub reusable: bool,
}

/// See [`ReadResponse`]. Errors are the exchange's, as text.
pub fn read_response<'a>(
    method: &Method,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<ReadResponse, String> {
    let mut buf = BytesMut::new();
    let mut answer: Option<Answer> = None;
    let mut body = Vec::new();
    let mut trailers = None;
    let mut ended = false;
    let mut extra = false;
    for chunk in chunks {
        if ended {
            extra |= !chunk.is_empty();
            continue;
        }
        buf.extend_from_slice(chunk);
        if answer.is_none() {
            answer = parse_head(&mut buf, method).map_err(|e| e.to_string())?;
            if answer.is_none() {
                continue;
            }
        }
        let Some(a) = answer.as_mut() else { continue };
        let mut decoder = Decoder(a.framing);
        loop {
            match decoder.decode(&mut buf).map_err(|e| e.to_string())? {
                Decoded::Data(b) => body.extend_from_slice(&b),
                Decoded::Trailers(t) => trailers = Some(t),
                Decoded::End => {
                    ended = true;
                    break;
                }
                Decoded::NeedMore => break,
            }
        }
        a.framing = decoder.0;
    }
    let Some(mut a) = answer else {
        return Err(ExchangeError::Invalid("the connection closed mid-head").to_string());
    };
    if !ended {
        let mut decoder = Decoder(a.framing);
        decoder.at_eof().map_err(|e| e.to_string())?;
        a.keep_alive = false;
    }
    Ok(ReadResponse {
        status: a.status,
        headers: a.headers,
        body,
        trailers,
        reusable: a.keep_alive && buf.is_empty() && !extra,
    })
}

enum Step {
    /// Body bytes, and the state after them.
    Data(Chunk, Bytes),
    /// Consumed framing bytes; go on decoding.
    Moved(Chunk),
    /// The message ended, with its trailer fields if it had any.
    End(Option<HeaderMap>),
    NeedMore,
}

/// One step of the chunked transfer coding (RFC 9112 §7.1) over the bytes in `buf`.
fn decode_chunked(buf: &mut BytesMut, state: Chunk) -> Result<Step, ExchangeError> {
    match state {
        Chunk::Size => match httparse::parse_chunk_size(buf) {
            Ok(httparse::Status::Complete((used, _))) if used > MAX_CHUNK_LINE => {
                Err(ExchangeError::Invalid("chunk size line too long"))
            }
            Ok(httparse::Status::Complete((used, size))) => {
                buf.advance(used);
                Ok(Step::Moved(if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                }))
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                Err(ExchangeError::Invalid("chunk size line too long"))
            }
            Ok(httparse::Status::Partial) => Ok(Step::NeedMore),
            Err(_) => Err(ExchangeError::Invalid("invalid chunk size")),
        },
        Chunk::Data(_) if buf.is_empty() => Ok(Step::NeedMore),
        Chunk::Data(n) => {
            let take = n.min(buf.len() as u64);
            let data = buf.split_to(take as usize).freeze();
            let next = if take == n {
                Chunk::DataEnd
            } else {
                Chunk::Data(n - take)
            };
            Ok(Step::Data(next, data))
        }
        Chunk::DataEnd => {
            if buf.len() < 2 {
                return Ok(Step::NeedMore);
            }
            if &buf[..2] != b"\r\n" {
                return Err(ExchangeError::Invalid("chunk data not followed by CRLF"));
            }
            buf.advance(2);
            Ok(Step::Moved(Chunk::Size))
        }
        Chunk::Trailers => {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match httparse::parse_headers(buf, &mut slots) {
                Ok(httparse::Status::Complete((used, _))) if used > MAX_HEAD => {
                    Err(ExchangeError::Invalid("trailer section too large"))
                }
                Ok(httparse::Status::Complete((used, fields))) => {
                    let mut trailers = HeaderMap::new();
                    for f in fields {
                        let (Ok(name), Ok(value)) = (
                            HeaderName::from_bytes(f.name.as_bytes()),
                            HeaderValue::from_bytes(f.value),
                        ) else {
                            return Err(ExchangeError::Invalid("invalid trailer field"));
                        };
                        trailers.append(name, value);
                    }
                    buf.advance(used);
                    Ok(Step::End((!trailers.is_empty()).then_some(trailers)))
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                    Err(ExchangeError::Invalid("trailer section too large"))
                }
                Ok(httparse::Status::Partial) => Ok(Step::NeedMore),
                Err(_) => Err(ExchangeError::Invalid("malformed trailer section")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn head(raw: &[u8], method: &Method) -> Result<Option<Answer>, ExchangeError> {
        parse_head(&mut BytesMut::from(raw), method)
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let a = |raw: &[u8]| head(raw, &Method::GET).expect("valid").expect("complete");
        let both = a(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n");
        assert_eq!(both.framing, Framing::Chunked(Chunk::Size));
        assert!(!both.keep_alive, "TE with CL ends the connection");
        assert!(both.headers.get(header::CONTENT_LENGTH).is_none());
        let gzip_only = a(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n");
        assert_eq!(gzip_only.framing, Framing::Close);
        let same = a(b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\ncontent-length: 5\r\n\r\n");
        assert_eq!(same.framing, Framing::Length(5));
        assert!(same.keep_alive);
        for raw in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"HTTP/1.1 2000 Odd\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
        ] {
            assert!(
                head(raw, &Method::GET).is_err(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let head_req = head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n",
            &Method::HEAD,
        )
        .expect("valid")
        .expect("complete");
        assert_eq!(head_req.framing, Framing::Empty);
        for status in ["204 No Content", "304 Not Modified"] {
            let raw = format!("HTTP/1.1 {status}\r\ncontent-length: 50\r\n\r\n");
            assert_eq!(a(raw.as_bytes()).framing, Framing::Empty);
        }
        assert!(!a(b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n").keep_alive);
        assert!(
            a(b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n").keep_alive
        );
        assert!(
            !a(b"HTTP/1.1 200 OK\r\nconnection: x, close\r\ncontent-length: 1\r\n\r\n").keep_alive
        );
        assert!(head(b"HTTP/1.1 200 OK\r\ncontent-len", &Method::GET)
            .expect("valid")
            .is_none());
    }

    #[test]
    fn where_the_stream_is_cut_changes_nothing() {
        let big_field = format!("HTTP/1.1 200 OK\r\nx-big: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let long_ext = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1;{}\r\nx\r\n0\r\n\r\n",
            "e".repeat(MAX_CHUNK_LINE)
        );
        let cases: Vec<&[u8]> = vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nx-t: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody",
            b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbodyEXTRA",
            b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbo",
            b"HTTP/1.1 200 OK\r\n\r\nread to the end",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcX\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-le",
            big_field.as_bytes(),
            long_ext.as_bytes(),
        ];
        for raw in cases {
            let whole = read_response(&Method::GET, [raw]);
            for size in [1, 2, 3, 7, 1000] {
                assert_eq!(
                    read_response(&Method::GET, raw.chunks(size)),
                    whole,
                    "{} in pieces of {size}",
                    String::from_utf8_lossy(&raw[..raw.len().min(80)])
                );
            }
        }
        let r = read_response(&Method::GET, [&b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n"[..]]).expect("valid");
        assert_eq!((r.body.as_slice(), r.reusable), (&b"abc"[..], true));
        assert_eq!(r.trailers.expect("trailers").get("x-t").expect("x-t"), "1");
        assert!(
            !read_response(
                &Method::GET,
                [&b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbodyEXTRA"[..]]
            )
            .expect("valid")
            .reusable
        );
        assert!(
            read_response(
                &Method::GET,
                [&b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbo"[..]]
            )
            .is_err(),
            "cut off"
        );
        assert!(
            read_response(&Method::GET, [big_field.as_bytes()]).is_err(),
            "head over the limit"
        );
        assert!(
            read_response(&Method::GET, [long_ext.as_bytes()]).is_err(),
            "chunk line over the limit"
        );
    }
}

//! An upstream's HTTP/1.1 response read from bytes as they arrive: the head (with
//! `httparse`), how the body is delimited (RFC 9112 §6.3) and the body decoder, chunked
//! coding and trailers included. Socket-free, so the exchange in [`super`] and the
//! `upstream_response` fuzz target read responses with the same code.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};

use super::ExchangeError;

/// A response head larger than this is refused (hyper's client default is ~400 KiB of
/// buffer; nginx's `proxy_buffer_size` defaults to 4–8 KiB).
const MAX_HEAD: usize = 64 * 1024;
/// Header fields in one response head, or in a chunked body's trailer section.
const MAX_HEADERS: usize = 128;
/// A chunk-size line (with extensions) longer than this is refused.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// The parsed head of a final response and how its body is delimited.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked(Chunk),
    Close,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}
/// Parses a complete head at the front of `buf` and consumes it; `None` when more bytes
/// are needed. Interim (1xx) responses are consumed and skipped.
pub(super) fn parse_head(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<Answer>, ExchangeError> {
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
/// What is left of a body's framing; decodes it from bytes as they arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Decoder(pub(super) Framing);

pub(super) enum Decoded {
    Data(Bytes),
    Trailers(HeaderMap),
    End,
    NeedMore,
}

impl Decoder {
    pub(super) fn is_done(&self) -> bool {
        matches!(self.0, Framing::Done | Framing::Empty | Framing::Length(0))
    }

    /// The next piece of the body from the front of `buf`, consuming it.
    pub(super) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ExchangeError> {
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
    pub(super) fn at_eof(&mut self) -> Result<(), ExchangeError> {
        match self.0 {
            Framing::Close | Framing::Done => {
                self.0 = Framing::Done;
                Ok(())
            }
            _ => Err(ExchangeError::Invalid("the connection closed mid-body")),
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

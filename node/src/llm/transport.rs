//! How provider calls travel: over the proxy's lean HTTP/1.1 pool, the request written
//! and the answer read on the calling task. A streamed answer is then read from the
//! socket by the task that forwards it to the client, with no connection task between
//! them and no hand-off per chunk (through reqwest, each SSE chunk crossed two tasks
//! before it was written; that was most of a streamed call's cost).
//!
//! Requests are built as a [`ProviderRequest`]: the URL stays a string until it is sent,
//! and then it is split by `http::Uri` — reqwest's builder parsed every call's URL with
//! the `url` crate (IDNA included), ~3 % of the gateway's CPU on small JSON calls. When
//! the environment names an egress proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
//! either case), or the URL is one only reqwest handles (credentials in it, a host that
//! is not ASCII), the request is sent with reqwest, which honours those and `NO_PROXY`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::uri::{Authority, PathAndQuery};
use http::{Method, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Bytes;
use raftgate_store::model::Scheme;

use crate::proxy::client::{self, ClientKey, UpstreamClient, Whole};
use crate::proxy::{BoxError, ProxyBody};

/// Connections to a provider are opened within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the pools are looked over for connections idle past their timeout (90 s).
const SWEEP_EVERY_MS: u64 = 10_000;

/// Why a request got no answer.
#[derive(Debug)]
pub struct TransportError {
    /// `connection failed`, `timed out` or `transport error`.
    pub what: &'static str,
    pub detail: String,
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "provider {}: {}", self.what, self.detail)
    }
}

/// One request to a provider, built with the subset of reqwest's builder the providers
/// use. A header that is not valid is kept as an error, reported when it is sent. Not
/// `Debug`: its headers carry the provider's key.
pub struct ProviderRequest {
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    invalid: Option<String>,
}

impl ProviderRequest {
    fn new(method: Method, url: String) -> ProviderRequest {
        ProviderRequest {
            method,
            url,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            invalid: None,
        }
    }

    /// Adds a header (after any of the same name, as reqwest does).
    pub fn header(mut self, name: &str, value: &str) -> ProviderRequest {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => {
                self.invalid
                    .get_or_insert_with(|| format!("invalid header {name:?}"));
            }
        }
        self
    }

    /// `Authorization: Bearer <token>`, marked sensitive (kept out of debug output).
    pub fn bearer_auth(mut self, token: &str) -> ProviderRequest {
        match HeaderValue::from_str(&format!("Bearer {token}")) {
            Ok(mut v) => {
                v.set_sensitive(true);
                self.headers.append(AUTHORIZATION, v);
            }
            Err(_) => {
                self.invalid
                    .get_or_insert_with(|| "invalid API key for a header".to_string());
            }
        }
        self
    }

    /// Query parameters, appended to the URL percent-encoded.
    pub fn query(mut self, pairs: &[(&str, &str)]) -> ProviderRequest {
        for (k, v) in pairs {
            self.url
                .push(if self.url.contains('?') { '&' } else { '?' });
            self.url.push_str(&percent_encode(k));
            self.url.push('=');
            self.url.push_str(&percent_encode(v));
        }
        self
    }

    /// `body` as JSON, with `Content-Type: application/json` unless one is set.
    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> ProviderRequest {
        match serde_json::to_vec(body) {
            Ok(v) => {
                self.body = Bytes::from(v);
                if !self.headers.contains_key(CONTENT_TYPE) {
                    self.headers
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
            }
            Err(e) => {
                self.invalid.get_or_insert_with(|| e.to_string());
            }
        }
        self
    }

    /// A raw body.
    #[cfg(test)]
    pub fn body(mut self, body: impl Into<Bytes>) -> ProviderRequest {
        self.body = body.into();
        self
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
            }
        }
    }
    out
}

/// The HTTP client of every provider call on this node.
pub struct ProviderHttp {
    /// Sends what the pool does not (egress proxy, unusual URLs).
    builder: reqwest::Client,
    via_reqwest: bool,
    plain: UpstreamClient,
    tls: UpstreamClient,
    last_sweep_ms: AtomicU64,
    started: std::time::Instant,
}

impl ProviderHttp {
    pub fn new() -> ProviderHttp {
        let egress_proxy = [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
        Self::with(egress_proxy)
    }

    fn with(via_reqwest: bool) -> ProviderHttp {
        let builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        let connect_ms = CONNECT_TIMEOUT.as_millis() as u64;
        // Web roots, verification on, HTTP/1.1: cannot fail.
        let pool = |scheme| {
            client::build(&ClientKey::public(scheme, connect_ms))
                .expect("a client with the built-in roots")
        };
        ProviderHttp {
            builder,
            via_reqwest,
            plain: pool(Scheme::Http),
            tls: pool(Scheme::Https),
            last_sweep_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    /// A `POST` to `url`, to be completed (`.json(..)`, `.header(..)`) and sent.
    pub fn post(&self, url: impl Into<String>) -> ProviderRequest {
        ProviderRequest::new(Method::POST, url.into())
    }

    /// Sends `req` and returns the answer's head with its body still to read.
    pub async fn send(&self, req: ProviderRequest) -> Result<Response<ProxyBody>, TransportError> {
        if let Some(detail) = req.invalid {
            return Err(TransportError {
                what: "transport error",
                detail,
            });
        }
        let target = Self::target(&req.url);
        let (Some((https, authority, pq)), false) = (target, self.via_reqwest) else {
            return self.send_reqwest(req).await;
        };
        self.sweep();
        let client = if https { &self.tls } else { &self.plain };
        let whole = Whole {
            method: &req.method,
            path_and_query: &pq,
            headers: &req.headers,
            body: &req.body,
        };
        client
            .request_whole(&authority, whole)
            .await
            .map_err(|e| TransportError {
                what: if e.is_connect() {
                    "connection failed"
                } else {
                    "transport error"
                },
                detail: e.to_string(),
            })
    }

    /// Scheme, authority and path of `url`; `None` for what only reqwest handles
    /// (credentials in the URL, a host that is not plain ASCII, another scheme).
    fn target(url: &str) -> Option<(bool, Authority, PathAndQuery)> {
        let uri: Uri = url.parse().ok()?;
        let https = match uri.scheme_str()? {
            s if s.eq_ignore_ascii_case("http") => false,
            s if s.eq_ignore_ascii_case("https") => true,
            _ => return None,
        };
        let authority = uri.authority()?.clone();
        if authority.as_str().contains('@') || authority.host().is_empty() {
            return None;
        }
        let pq = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Some((https, authority, pq))
    }

    async fn send_reqwest(
        &self,
        req: ProviderRequest,
    ) -> Result<Response<ProxyBody>, TransportError> {
        let resp = self
            .builder
            .request(req.method, req.url)
            .headers(req.headers)
            .body(req.body)
            .send()
            .await
            .map_err(|e| TransportError {
                what: if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "transport error"
                },
                detail: e.to_string(),
            })?;
        let resp: Response<reqwest::Body> = resp.into();
        Ok(resp.map(|b| b.map_err(BoxError::from).boxed_unsync()))
    }

    /// Closes idle connections past their timeout, at most every [`SWEEP_EVERY_MS`].
    fn sweep(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < SWEEP_EVERY_MS
            || self
                .last_sweep_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.plain.sweep();
        self.tls.sweep();
    }
}

impl Default for ProviderHttp {
    fn default() -> Self {
        Self::new()
    }
}

/// Without an egress proxy, whatever the environment says.
#[cfg(test)]
pub(super) fn direct() -> ProviderHttp {
    ProviderHttp::with(false)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One exchange of a test server: reads a request head and its
    /// `Content-Length` body, returns them and writes `answer`.
    pub(in crate::llm) async fn serve_one(
        sock: &mut tokio::net::TcpStream,
        answer: &[u8],
    ) -> (String, Vec<u8>) {
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        let head_end = loop {
            let n = sock.read(&mut tmp).await.unwrap();
            assert!(n > 0, "client closed before its request");
            buf.extend_from_slice(&tmp[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let n = sock.read(&mut tmp).await.unwrap();
            buf.extend_from_slice(&tmp[..n]);
        }
        sock.write_all(answer).await.unwrap();
        (head, buf[head_end..head_end + len].to_vec())
    }

    #[tokio::test]
    async fn a_built_request_goes_out_whole_and_the_connection_is_reused() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut seen = Vec::new();
            for body in ["{\"n\":1}", "{\"n\":2}"] {
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                seen.push(serve_one(&mut s, answer.as_bytes()).await);
            }
            seen
        });
        let http = ProviderHttp::with(false);
        for n in 1..=2 {
            let rb = http
                .post(format!("http://{addr}/v1/chat/completions"))
                .query(&[("api-version", "2024-06-01")])
                .bearer_auth("sk-test")
                .json(&serde_json::json!({"model": "m", "n": n}));
            let resp = http.send(rb).await.unwrap();
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, format!("{{\"n\":{n}}}"));
        }
        // Both requests came on the one accepted connection.
        let seen = server.await.unwrap();
        for (i, (head, body)) in seen.iter().enumerate() {
            assert!(
                head.starts_with("POST /v1/chat/completions?api-version=2024-06-01 HTTP/1.1\r\n"),
                "{head}"
            );
            let lower = head.to_ascii_lowercase();
            assert!(lower.contains("\r\nhost: 127.0.0.1:"), "{head}");
            assert!(
                lower.contains("\r\nauthorization: bearer sk-test\r\n"),
                "{head}"
            );
            assert!(
                lower.contains("\r\ncontent-type: application/json\r\n"),
                "{head}"
            );
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(v["n"], i + 1);
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connection_failure() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let http = ProviderHttp::with(false);
        let rb = http.post(format!("http://{addr}/x")).body("{}");
        let e = http.send(rb).await.unwrap_err();
        assert_eq!(e.what, "connection failed", "{e}");
    }

    #[test]
    fn urls_with_credentials_are_left_to_reqwest() {
        let (https, a, pq) = ProviderHttp::target("https://api.example.com/v1/x?a=b").unwrap();
        assert!(https);
        assert_eq!(a.as_str(), "api.example.com");
        assert_eq!(pq.as_str(), "/v1/x?a=b");
        let (https, a, _) = ProviderHttp::target("http://[::1]:8080/").unwrap();
        assert!(!https);
        assert_eq!(a.as_str(), "[::1]:8080");
        let (_, _, pq) = ProviderHttp::target("HTTP://h").unwrap();
        assert_eq!(pq.as_str(), "/");
        assert!(ProviderHttp::target("http://u:p@h/").is_none());
        assert!(ProviderHttp::target("http://bücher.example/").is_none());
        assert!(ProviderHttp::target("ftp://h/").is_none());
        assert!(ProviderHttp::target("not a url").is_none());
    }

    #[tokio::test]
    async fn a_bad_header_is_an_error_and_nothing_is_sent() {
        let http = ProviderHttp::with(false);
        // Nothing listens on port 9 of this address either: an error must come first.
        let rb = http.post("http://127.0.0.1:9/x").header("x-bad\n", "v");
        let e = http.send(rb).await.unwrap_err();
        assert_eq!(e.what, "transport error", "{e}");
        assert!(e.detail.contains("invalid header"), "{e}");
        let rb = http
            .post("http://127.0.0.1:9/x")
            .bearer_auth("k\r\nx-injected: 1");
        let e = http.send(rb).await.unwrap_err();
        assert!(e.detail.contains("invalid API key"), "{e}");
    }

    #[test]
    fn queries_are_percent_encoded_and_joined() {
        let rb = ProviderHttp::with(false)
            .post("http://h/p")
            .query(&[("api-version", "2024-06-01"), ("q", "a b&c")]);
        assert_eq!(rb.url, "http://h/p?api-version=2024-06-01&q=a%20b%26c");
        let rb = ProviderHttp::with(false)
            .post("http://h/p?x=1")
            .query(&[("y", "2")]);
        assert_eq!(rb.url, "http://h/p?x=1&y=2");
    }
}

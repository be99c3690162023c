//! How provider calls travel: over the proxy's lean HTTP/1.1 pool, the request written
//! and the answer read on the calling task. A streamed answer is then read from the
//! socket by the task that forwards it to the client, with no connection task between
//! them and no hand-off per chunk (through reqwest, each SSE chunk crossed two tasks
//! before it was written; that was most of a streamed call's cost).
//!
//! Requests are still built with reqwest's builder (URL, query, JSON, headers). When the
//! environment names an egress proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, either
//! case), they are also sent with reqwest, which honours those and `NO_PROXY`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery};
use http::Response;
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

/// The HTTP client of every provider call on this node.
pub struct ProviderHttp {
    /// Builds requests; sends them too when `via_reqwest`.
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

    /// For building requests (`post(url).json(..)`).
    pub fn builder(&self) -> &reqwest::Client {
        &self.builder
    }

    /// Sends `rb` and returns the answer's head with its body still to read.
    pub async fn send(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<Response<ProxyBody>, TransportError> {
        let req = rb.build().map_err(|e| TransportError {
            what: "transport error",
            detail: e.to_string(),
        })?;
        let body = match req.body() {
            None => Some(Bytes::new()),
            Some(b) => b.as_bytes().map(Bytes::copy_from_slice),
        };
        let target = Self::target(req.url());
        let (Some(body), Some((https, authority, pq)), false) = (body, target, self.via_reqwest)
        else {
            return self.send_reqwest(req).await;
        };
        self.sweep();
        let client = if https { &self.tls } else { &self.plain };
        let whole = Whole {
            method: req.method(),
            path_and_query: &pq,
            headers: req.headers(),
            body: &body,
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
    /// (credentials in the URL).
    fn target(url: &reqwest::Url) -> Option<(bool, Authority, PathAndQuery)> {
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return None,
        };
        if !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let uri: http::Uri = url.as_str().parse().ok()?;
        let pq = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Some((https, uri.authority()?.clone(), pq))
    }

    async fn send_reqwest(
        &self,
        req: reqwest::Request,
    ) -> Result<Response<ProxyBody>, TransportError> {
        let resp = self
            .builder
            .execute(req)
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
                .builder()
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
        let rb = http.builder().post(format!("http://{addr}/x")).body("{}");
        let e = http.send(rb).await.unwrap_err();
        assert_eq!(e.what, "connection failed", "{e}");
    }

    #[test]
    fn urls_with_credentials_are_left_to_reqwest() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let (https, a, pq) =
            ProviderHttp::target(&url("https://api.example.com/v1/x?a=b")).unwrap();
        assert!(https);
        assert_eq!(a.as_str(), "api.example.com");
        assert_eq!(pq.as_str(), "/v1/x?a=b");
        let (https, a, _) = ProviderHttp::target(&url("http://[::1]:8080/")).unwrap();
        assert!(!https);
        assert_eq!(a.as_str(), "[::1]:8080");
        assert!(ProviderHttp::target(&url("http://u:p@h/")).is_none());
    }
}

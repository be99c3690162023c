//! What happens after the response headers: counting the body, the access log line,
//! metrics, and releasing the target's in-flight slot — all when the body ends or the
//! client goes away.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::HeaderValue;
use hyper::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use raftgate_store::calllog::CallRecord;

use crate::proxy::compile::{RouteRt, UpstreamRt};
use crate::proxy::target::TargetState;
use crate::proxy::{BoxError, ProxyBody};
use crate::telemetry::otlp::{Attr, CallTrace, SpanRecord};
use crate::telemetry::rotate::{Rotation, Sink};
use crate::telemetry::trace_context::SpanContext;

/// JSON-lines access log written by a background thread; a full queue drops lines (and
/// counts them) rather than slowing requests down. File rotation and reopening happen on
/// that thread (see [`crate::telemetry::rotate`]).
#[derive(Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<String>,
    pub dropped: Arc<AtomicU64>,
    reopen: Arc<AtomicBool>,
}

impl AccessLog {
    /// `dest`: `-` or `stdout` for standard output, anything else is a file appended to
    /// and rotated by `rotation`.
    pub fn start(dest: &str, rotation: Rotation) -> std::io::Result<AccessLog> {
        let mut out = Sink::open(dest, rotation)?;
        let reopen = Arc::new(AtomicBool::new(false));
        let reopen_flag = reopen.clone();
        let (tx, mut rx) = mpsc::channel::<String>(65_536);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                // Polls instead of blocking on the channel: a parked receiver would make
                // every request pay for waking this thread.
                let mut buf = Vec::with_capacity(64 * 1024);
                let mut failing = false;
                let mut write = |out: &mut Sink, buf: &mut Vec<u8>| {
                    let r = out.write_lines(buf);
                    buf.clear();
                    if let Err(e) = &r {
                        if !failing {
                            tracing::warn!(error = %e, "access log write failed; lines are lost until it recovers");
                        }
                    }
                    failing = r.is_err();
                };
                loop {
                    if reopen_flag.swap(false, Relaxed) {
                        if !buf.is_empty() {
                            write(&mut out, &mut buf);
                        }
                        if let Err(e) = out.reopen() {
                            tracing::warn!(error = %e, "access log: reopening failed");
                        }
                    }
                    let closed = loop {
                        match rx.try_recv() {
                            Ok(line) => {
                                buf.extend_from_slice(line.as_bytes());
                                buf.push(b'\n');
                                if buf.len() > 60 * 1024 {
                                    write(&mut out, &mut buf);
                                }
                            }
                            Err(mpsc::error::TryRecvError::Empty) => break false,
                            Err(mpsc::error::TryRecvError::Disconnected) => break true,
                        }
                    };
                    if !buf.is_empty() {
                        write(&mut out, &mut buf);
                    }
                    if closed {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            })?;
        Ok(AccessLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            reopen,
        })
    }

    /// Asks the writer to close and reopen its file before its next write (SIGHUP).
    pub fn reopen(&self) {
        self.reopen.store(true, Relaxed);
    }

    fn send(&self, line: String) {
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
    }
}

/// Longest request path kept in a call log record.
const MAX_LOGGED_PATH: usize = 512;

/// Facts about one request gathered on the way, finished when the body ends.
pub struct Outcome {
    pub request_id: http::HeaderValue,
    pub method: http::Method,
    pub uri: http::Uri,
    pub host: String,
    pub client: std::net::IpAddr,
    pub status: u16,
    pub started: Instant,
    pub headers_after: Duration,
    pub route: Option<Arc<RouteRt>>,
    pub consumer: Option<String>,
    pub tenant: Option<String>,
    pub upstream: Option<Arc<UpstreamRt>>,
    pub target: Option<Arc<TargetState>>,
    pub tries: u32,
    pub error: Option<&'static str>,
    /// An LLM call: its model and attempts.
    pub llm: Option<crate::llm::LlmTrace>,
    pub log: Option<AccessLog>,
    /// The request's `Content-Length` (0 when streamed without one).
    pub bytes_in: u64,
    /// The node's call log (one record per call); `None` when off.
    pub calls: Option<crate::calllog::CallLog>,
    /// This call's OpenTelemetry span; `None` when OTLP export is off.
    pub trace: Option<CallTrace>,
    /// Body prefixes kept for the call log (routes with a `capture` policy).
    pub capture: Option<crate::proxy::capture::Slots>,
    /// The admitted call's `RateLimit-*` values (a route with quotas), written straight
    /// onto the response: through `extra` each header was inserted twice.
    pub rate: Option<crate::quota::RateHeaders>,
}

impl Outcome {
    fn finish(mut self, bytes_out: u64, aborted: bool) {
        if let Some(t) = &self.target {
            t.end();
        }
        if let Some(r) = &self.route {
            r.metrics.count(self.status);
            r.metrics.duration.observe(self.headers_after.as_secs_f64());
        }
        if let Some(log) = &self.log {
            log.send(self.line(bytes_out, aborted));
        }
        if let Some(t) = self.trace.take() {
            t.finish(|ctx| self.span(ctx));
        }
        if let Some(calls) = self.calls.take() {
            calls.send(self.record(calls.node_id, bytes_out, aborted));
        }
    }

    /// The call log record; moves what it can out of `self` instead of copying.
    fn record(self, node_id: u64, bytes_out: u64, aborted: bool) -> CallRecord {
        let elapsed = self.started.elapsed();
        let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let route = self.route.as_deref();
        let mut path = self.uri.path();
        if path.len() > MAX_LOGGED_PATH {
            let mut cut = MAX_LOGGED_PATH;
            while !path.is_char_boundary(cut) {
                cut -= 1;
            }
            path = &path[..cut];
        }
        let mut r = CallRecord {
            time_us: now_us.saturating_sub(latency_us),
            seq: 0,
            node_id,
            request_id: self.request_id.to_str().unwrap_or("-").to_string(),
            method: self.method.as_str().to_string(),
            path: path.to_string(),
            route: route.map(|r| r.id.clone()),
            service: route.and_then(|r| r.service.as_ref()).map(|s| s.id.clone()),
            // The caller's tenant, else the route's (calls without a consumer).
            tenant: self.tenant.or_else(|| route.and_then(|r| r.tenant.clone())),
            consumer: self.consumer,
            attempts: self.tries,
            status: self.status,
            latency_us,
            bytes_in: self.bytes_in,
            bytes_out,
            error: self.error.map(str::to_string),
            aborted,
            ..CallRecord::default()
        };
        if let Some(t) = self.llm {
            fill_llm(t, &mut r);
        }
        if let Some(c) = &self.capture {
            c.fill(&mut r);
        }
        r
    }

    /// The OpenTelemetry span of this call (HTTP server and GenAI semantic conventions).
    fn span(&self, ctx: SpanContext) -> SpanRecord {
        let elapsed = self.started.elapsed();
        let end_unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let route = self.route.as_deref();
        let name = match (route, &self.llm) {
            (Some(r), _) => format!("{} {}", self.method, r.id),
            // The LLM API's paths are a fixed set, so they are a fine span name.
            (None, Some(_)) => format!("{} {}", self.method, self.uri.path()),
            (None, None) => self.method.to_string(),
        };
        let s = |v: &str| Attr::Str(v.to_string());
        let mut attributes = vec![
            ("http.request.method", s(self.method.as_str())),
            ("url.path", s(self.uri.path())),
            (
                "http.response.status_code",
                Attr::Int(i64::from(self.status)),
            ),
        ];
        let tenant = self
            .tenant
            .as_deref()
            .or(route.and_then(|r| r.tenant.as_deref()));
        for (k, v) in [
            ("raftgate.route", route.map(|r| r.id.as_str())),
            ("raftgate.tenant", tenant),
            ("raftgate.consumer", self.consumer.as_deref()),
            ("raftgate.request_id", self.request_id.to_str().ok()),
        ] {
            if let Some(v) = v {
                attributes.push((k, s(v)));
            }
        }
        if let Some(t) = &self.llm {
            attributes.push(("gen_ai.request.model", s(&t.model)));
            let f = t.facts.get();
            for (k, v) in [
                ("gen_ai.usage.input_tokens", f.tokens_in),
                ("gen_ai.usage.output_tokens", f.tokens_out),
            ] {
                if let Some(v) = v {
                    attributes.push((k, Attr::Int(i64::try_from(v).unwrap_or(i64::MAX))));
                }
            }
        }
        SpanRecord {
            ctx,
            name,
            start_unix_ns: end_unix_ns
                .saturating_sub(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)),
            end_unix_ns,
            attributes,
            error: self.status >= 500,
        }
    }

    /// One JSON object, written field by field (no intermediate `serde_json::Value`).
    fn line(&self, bytes_out: u64, aborted: bool) -> String {
        use std::fmt::Write as _;
        let mut l = String::with_capacity(512);
        let ts = crate::proxy::forward::unix_ms();
        let _ = write!(l, "{{\"ts_ms\":{ts},\"request_id\":");
        json_str(&mut l, self.request_id.to_str().unwrap_or("-"));
        let _ = write!(l, ",\"client\":\"{}\",\"method\":", self.client);
        json_str(&mut l, self.method.as_str());
        l.push_str(",\"host\":");
        json_str(&mut l, &self.host);
        l.push_str(",\"path\":");
        json_str(&mut l, self.uri.path());
        let _ = write!(l, ",\"status\":{}", self.status);
        let route = self.route.as_deref();
        json_opt(&mut l, "route", route.map(|r| r.id.as_str()));
        json_opt(
            &mut l,
            "service",
            route
                .and_then(|r| r.service.as_ref())
                .map(|s| s.id.as_str()),
        );
        json_opt(&mut l, "tenant", self.tenant.as_deref());
        json_opt(&mut l, "consumer", self.consumer.as_deref());
        json_opt(
            &mut l,
            "upstream",
            self.upstream.as_ref().map(|u| u.id.as_str()),
        );
        json_opt(
            &mut l,
            "target",
            self.target.as_ref().map(|t| t.address.as_str()),
        );
        json_opt(&mut l, "error", self.error);
        if let Some(t) = &self.llm {
            json_opt(&mut l, "model", Some(&t.model));
            l.push_str(",\"attempts\":[");
            for (i, a) in t.attempts.iter().enumerate() {
                if i > 0 {
                    l.push(',');
                }
                json_str(&mut l, a);
            }
            l.push(']');
        }
        let _ = write!(
            l,
            ",\"tries\":{},\"latency_ms\":{:.3},\"upstream_headers_ms\":{:.3},\"bytes_out\":{bytes_out},\"aborted\":{aborted}}}",
            self.tries,
            self.started.elapsed().as_secs_f64() * 1000.0,
            self.headers_after.as_secs_f64() * 1000.0,
        );
        l
    }
}

/// The LLM part of a call record, from the attempts `provider/model:outcome`: the
/// attempt that answered gives provider and deployment; earlier ones are fallbacks.
fn fill_llm(t: crate::llm::LlmTrace, r: &mut CallRecord) {
    r.attempts = u32::try_from(t.attempts.len()).unwrap_or(u32::MAX);
    let answered = t.attempts.iter().rposition(|a| a.ends_with(":ok"));
    for (i, a) in t.attempts.iter().enumerate() {
        let target = a.rsplit_once(':').map_or(a.as_str(), |(t, _)| t);
        let (provider, model) = target.split_once('/').unwrap_or((target, ""));
        match answered {
            Some(k) if k == i => {
                r.provider = Some(provider.to_string());
                r.deployment = Some(model.to_string());
            }
            Some(k) if i > k => {}
            _ => r.fallbacks.push(provider.to_string()),
        }
    }
    let f = t.facts.get();
    (r.tokens_in, r.tokens_out, r.cost_micros) = (f.tokens_in, f.tokens_out, f.cost_micros);
    (r.ttft_us, r.cache_hit) = (f.ttft_us, f.cache_hit);
    r.guardrails = f.guardrails.iter().map(|c| c.to_string()).collect();
    r.model = Some(t.model);
}

fn json_str(out: &mut String, s: &str) {
    // serde_json's escaping of a plain string cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

fn json_opt(out: &mut String, key: &str, v: Option<&str>) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    match v {
        Some(v) => json_str(out, v),
        None => out.push_str("null"),
    }
}

/// The response body with its [`Outcome`] attached.
pub struct Tracked {
    inner: ProxyBody,
    bytes: u64,
    outcome: Option<Box<Outcome>>,
}

impl Tracked {
    pub fn new(inner: ProxyBody, outcome: Outcome) -> Tracked {
        let mut t = Tracked {
            inner,
            bytes: 0,
            outcome: Some(Box::new(outcome)),
        };
        if t.inner.is_end_stream() {
            t.done(false);
        }
        t
    }

    fn done(&mut self, aborted: bool) {
        if let Some(o) = self.outcome.take() {
            o.finish(self.bytes, aborted);
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.done(true);
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    this.bytes += d.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.done(false);
                }
            }
            Poll::Ready(None) => this.done(false),
            Poll::Ready(Some(Err(_))) => this.done(true),
            Poll::Pending => {}
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

/// Request ids: a per-process random prefix and a counter; cheap and unique enough
/// to find one request across nodes' logs.
pub struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new() -> RequestIds {
        RequestIds {
            prefix: rand::random::<u64>(),
            next: AtomicU64::new(1),
        }
    }

    /// The next id as a header value: 16 hex digits of the prefix, then the counter in
    /// at least 8. Written into a stack buffer: a `format!` per request showed up in
    /// the proxy's profile.
    pub fn next(&self) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.next.fetch_add(1, Relaxed);
        let mut buf = [0u8; 32];
        for (i, b) in buf[..16].iter_mut().enumerate() {
            *b = HEX[((self.prefix >> (60 - 4 * i)) & 0xf) as usize];
        }
        let digits = (((64 - n.leading_zeros()) as usize).div_ceil(4)).max(8);
        for i in 0..digits {
            buf[16 + digits - 1 - i] = HEX[((n >> (4 * i)) & 0xf) as usize];
        }
        HeaderValue::from_bytes(&buf[..16 + digits])
            .unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_the_prefix_then_the_counter_in_hex() {
        let ids = RequestIds {
            prefix: 0x0123_4567_89ab_cdef,
            next: AtomicU64::new(0x2a),
        };
        assert_eq!(ids.next(), "0123456789abcdef0000002a");
        assert_eq!(ids.next(), "0123456789abcdef0000002b");
        let wide = RequestIds {
            prefix: 0xf,
            next: AtomicU64::new(0x1_0000_0000),
        };
        assert_eq!(wide.next(), "000000000000000f100000000");
        let max = RequestIds {
            prefix: u64::MAX,
            next: AtomicU64::new(u64::MAX),
        };
        assert_eq!(max.next(), "ffffffffffffffffffffffffffffffff");
        let zero = RequestIds {
            prefix: 0,
            next: AtomicU64::new(0),
        };
        assert_eq!(zero.next(), "000000000000000000000000");
    }

    fn outcome(llm: Option<crate::llm::LlmTrace>) -> Outcome {
        Outcome {
            request_id: http::HeaderValue::from_static("rid-1"),
            method: http::Method::POST,
            uri: "/v1/chat/completions".parse().unwrap(),
            host: "gw".into(),
            client: std::net::IpAddr::from([127, 0, 0, 1]),
            status: 502,
            started: Instant::now() - Duration::from_millis(30),
            headers_after: Duration::ZERO,
            route: None,
            consumer: Some("c1".into()),
            tenant: Some("t1".into()),
            upstream: None,
            target: None,
            tries: 1,
            error: None,
            llm,
            log: None,
            bytes_in: 0,
            calls: None,
            trace: None,
            capture: None,
            rate: None,
        }
    }

    #[test]
    fn span_carries_the_call_and_its_model() {
        let ctx = crate::telemetry::trace_context::SpanContext::start(None, 1.0);
        let llm = crate::llm::LlmTrace {
            model: "gpt-x".into(),
            attempts: vec![],
            facts: Arc::default(),
        };
        let s = outcome(Some(llm)).span(ctx);
        assert_eq!(s.name, "POST /v1/chat/completions");
        assert!(s.error, "5xx marks the span as an error");
        let get = |k: &str| s.attributes.iter().find(|(n, _)| *n == k).map(|(_, v)| v);
        assert_eq!(get("http.response.status_code"), Some(&Attr::Int(502)));
        assert_eq!(get("raftgate.tenant"), Some(&Attr::Str("t1".into())));
        assert_eq!(get("raftgate.consumer"), Some(&Attr::Str("c1".into())));
        assert_eq!(
            get("gen_ai.request.model"),
            Some(&Attr::Str("gpt-x".into()))
        );
        assert_eq!(get("gen_ai.usage.input_tokens"), None, "no usage known");
        assert_eq!(get("raftgate.route"), None);
        let took = s.end_unix_ns - s.start_unix_ns;
        assert!(took >= 30_000_000, "duration from the call's start: {took}");
        let plain = outcome(None).span(ctx);
        assert_eq!(plain.name, "POST");
    }

    #[test]
    fn the_writer_rotates_and_reopens_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let rot = Rotation {
            max_bytes: 1024,
            keep: 2,
        };
        let log = AccessLog::start(path.to_str().unwrap(), rot).unwrap();
        let line = format!("{{\"pad\":\"{}\"}}", "x".repeat(400));
        for _ in 0..4 {
            log.send(line.clone());
        }
        let wait = |f: &dyn Fn() -> bool| {
            let until = Instant::now() + Duration::from_secs(5);
            while !f() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            f()
        };
        let n = |p: &std::path::Path| {
            std::fs::read_to_string(p)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        let rotated = dir.path().join("access.log.1");
        assert!(wait(&|| n(&path) + n(&rotated) == 4));
        assert_eq!(
            (n(&rotated), n(&path)),
            (2, 2),
            "two 411-byte lines per KiB file"
        );
        let moved = dir.path().join("moved");
        std::fs::rename(&path, &moved).unwrap();
        log.reopen();
        std::thread::sleep(Duration::from_millis(100));
        log.send(line.clone());
        assert!(wait(&|| n(&path) == 1), "a new file after reopen");
        assert_eq!(n(&moved), 2);
    }
}

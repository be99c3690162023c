//! Payload capture for the call log (`capture` route policy): the first bytes of the
//! request and response bodies are copied as frames pass — the proxied stream is never
//! held back or buffered beyond the kept prefix — then redacted once, when the call's
//! record is made. Headers are never captured.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use raftgate_store::calllog::CallRecord;
use raftgate_store::model::Capture;
use serde_json::Value;

use crate::proxy::{BoxError, ProxyBody};

/// What replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";
/// Marks a captured body that is not UTF-8 (the rest is standard base64).
pub const BASE64_MARKER: &str = "base64:";

/// A route's compiled `capture` policy.
#[derive(Debug)]
pub struct CaptureRt {
    request_bytes: usize,
    response_bytes: usize,
    redact: Arc<[String]>,
}

impl CaptureRt {
    pub fn compile(c: &Capture) -> CaptureRt {
        let cap = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        CaptureRt {
            request_bytes: cap(c.request_bytes),
            response_bytes: cap(c.response_bytes),
            redact: c.redact.iter().cloned().collect(),
        }
    }

    /// Fresh taps for one call (`None` for a side that captures nothing).
    pub fn start(&self) -> Slots {
        let tap = |cap: usize| (cap > 0).then(|| Tap::new(cap));
        Slots {
            request: tap(self.request_bytes),
            response: tap(self.response_bytes),
            redact: self.redact.clone(),
        }
    }
}

/// One call's captures, filled while its bodies stream.
pub struct Slots {
    pub request: Option<Tap>,
    pub response: Option<Tap>,
    redact: Arc<[String]>,
}

impl Slots {
    /// Redacts what was captured and stores it in the call record.
    pub fn fill(&self, r: &mut CallRecord) {
        if let Some((body, cut)) = self.request.as_ref().and_then(|t| t.render(&self.redact)) {
            (r.request_body, r.request_truncated) = (Some(body), cut);
        }
        if let Some((body, cut)) = self.response.as_ref().and_then(|t| t.render(&self.redact)) {
            (r.response_body, r.response_truncated) = (Some(body), cut);
        }
    }
}

/// The kept prefix of one body, shared by the body wrapper and the call's record.
#[derive(Clone)]
pub struct Tap(Arc<Mutex<Prefix>>);

struct Prefix {
    cap: usize,
    buf: Vec<u8>,
    /// Bytes that passed, kept or not.
    seen: u64,
    /// The body ended (rather than being abandoned part way).
    complete: bool,
}

impl Tap {
    pub fn new(cap: usize) -> Tap {
        Tap(Arc::new(Mutex::new(Prefix {
            cap,
            buf: Vec::new(),
            seen: 0,
            complete: false,
        })))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Prefix) -> T) -> T {
        // A panic elsewhere while holding the lock leaves a usable prefix; keep going.
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Copies up to the cap from `d`; true once nothing more will be kept.
    fn push(&self, d: &[u8]) -> bool {
        self.with(|p| {
            p.seen += d.len() as u64;
            let room = p.cap - p.buf.len().min(p.cap);
            p.buf.extend_from_slice(&d[..room.min(d.len())]);
            p.seen > p.cap as u64
        })
    }

    fn end(&self) {
        self.with(|p| p.complete = true);
    }

    /// A body already read whole (small bodies read before the first try).
    pub fn whole(&self, body: &[u8]) {
        self.push(body);
        self.end();
    }

    /// The redacted text and whether it is short of the whole body; `None` when the
    /// body was never read (the call ended before it).
    fn render(&self, names: &[String]) -> Option<(String, bool)> {
        self.with(|p| {
            if p.seen == 0 && !p.complete {
                return None;
            }
            let truncated = p.seen > p.buf.len() as u64 || !p.complete;
            Some((redact(&p.buf, !truncated, names), truncated))
        })
    }
}

/// A body that copies its first bytes into a [`Tap`] as frames pass through unchanged.
pub struct CaptureBody {
    inner: ProxyBody,
    tap: Tap,
    /// The cap was passed: frames are no longer looked at (only the end is noted).
    full: bool,
}

impl CaptureBody {
    pub fn new(inner: ProxyBody, tap: Tap) -> CaptureBody {
        CaptureBody {
            inner,
            tap,
            full: false,
        }
    }
}

impl Body for CaptureBody {
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
                    if !this.full {
                        this.full = this.tap.push(d);
                    }
                }
                if this.inner.is_end_stream() {
                    this.tap.end();
                }
            }
            Poll::Ready(None) => this.tap.end(),
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
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

/// The stored text of a captured body. A whole body that parses as JSON has the value
/// of every object key matching a name (ASCII case-insensitive, any depth) replaced by
/// `"[REDACTED]"` and is re-serialized compactly; anything else goes through
/// [`redact_scan`]. Then bearer tokens are redacted, and bytes that are not UTF-8 are
/// stored as `base64:` + base64.
pub fn redact(body: &[u8], whole: bool, names: &[String]) -> String {
    let json = whole
        .then(|| serde_json::from_slice::<Value>(body).ok())
        .flatten();
    let mut out = match json {
        Some(mut v) => {
            redact_json(&mut v, names);
            v.to_string().into_bytes()
        }
        None => redact_scan(body, names),
    };
    out = redact_bearer(&out);
    match std::str::from_utf8(&out) {
        Ok(s) => s.to_string(),
        // A prefix cut inside a multi-byte character: drop the partial character.
        Err(e) if !whole && e.error_len().is_none() => {
            String::from_utf8_lossy(&out[..e.valid_up_to()]).into_owned()
        }
        Err(_) => format!("{BASE64_MARKER}{}", B64.encode(&out)),
    }
}

fn matches_name(key: &[u8], names: &[String]) -> bool {
    names.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(key))
}

fn redact_json(v: &mut Value, names: &[String]) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if matches_name(k.as_bytes(), names) {
                    *val = Value::String(REDACTED.into());
                } else {
                    redact_json(val, names);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact_json(x, names)),
        _ => {}
    }
}

/// Conservative redaction without parsing, for truncated or non-JSON bodies:
/// - `"name"` followed by optional blanks and `:`: a string value's contents become
///   `[REDACTED]` (to the closing quote, or to the end of a cut body); an object or
///   array value (to its matching bracket, or the end) and any other value (to the next
///   `,` `}` `]` or line end) become `"[REDACTED]"`;
/// - `name=` at the start or after `&`, `?`, `;` or a blank: the value up to the next
///   `&`, `;` or blank becomes `[REDACTED]` (form bodies, `key=value` lines).
///
/// Names compare ASCII case-insensitively; everything else is kept byte for byte.
pub fn redact_scan(b: &[u8], names: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let Some((start, end, with)) = value_at(b, i, names) {
            out.extend_from_slice(&b[i..start]);
            out.extend_from_slice(with.as_bytes());
            i = end;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// The value span to replace if a listed key starts at `i`: (start, end, replacement).
fn value_at(b: &[u8], i: usize, names: &[String]) -> Option<(usize, usize, &'static str)> {
    let key_len = |from: usize, close: u8| {
        names.iter().map(String::as_bytes).find_map(|n| {
            let end = from + n.len();
            let hit = !n.is_empty()
                && b.get(from..end)?.eq_ignore_ascii_case(n)
                && b.get(end) == Some(&close);
            hit.then_some(n.len())
        })
    };
    if b[i] == b'"' {
        let mut j = i + 1 + key_len(i + 1, b'"')? + 1;
        while b.get(j).is_some_and(|c| is_blank(*c)) {
            j += 1;
        }
        if b.get(j) != Some(&b':') {
            return None;
        }
        j += 1;
        while b.get(j).is_some_and(|c| is_blank(*c)) {
            j += 1;
        }
        return match b.get(j)? {
            b'"' => Some((j + 1, string_end(b, j + 1), REDACTED)),
            b'{' | b'[' => Some((j, bracket_end(b, j), "\"[REDACTED]\"")),
            _ => {
                let end = (j..b.len())
                    .find(|&k| matches!(b[k], b',' | b'}' | b']' | b'\r' | b'\n'))
                    .unwrap_or(b.len());
                Some((j, end, "\"[REDACTED]\""))
            }
        };
    }
    let boundary = i == 0 || matches!(b[i - 1], b'&' | b'?' | b';') || is_blank(b[i - 1]);
    if !boundary {
        return None;
    }
    let start = i + key_len(i, b'=')? + 1;
    let end = (start..b.len())
        .find(|&k| b[k] == b'&' || b[k] == b';' || is_blank(b[k]))
        .unwrap_or(b.len());
    Some((start, end, REDACTED))
}

/// Index of the unescaped `"` closing a string whose contents start at `from`, or the
/// end of the data.
fn string_end(b: &[u8], from: usize) -> usize {
    let mut k = from;
    while k < b.len() {
        match b[k] {
            b'\\' => k += 2,
            b'"' => return k,
            _ => k += 1,
        }
    }
    b.len()
}

/// Index after the bracket closing the one at `open` (strings skipped), or the end.
fn bracket_end(b: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    let mut k = open;
    while k < b.len() {
        match b[k] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return k + 1;
                }
            }
            b'"' => k = string_end(b, k + 1),
            _ => {}
        }
        k += 1;
    }
    b.len()
}

/// Built-in: the token after `Bearer ` (any case) becomes `[REDACTED]`, wherever it
/// appears in a body.
fn redact_bearer(b: &[u8]) -> Vec<u8> {
    const BEARER: &[u8] = b"bearer ";
    let token = |c: u8| c.is_ascii_alphanumeric() || b"-._~+/=".contains(&c);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hit = b
            .get(i..i + BEARER.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(BEARER));
        if hit && b.get(i + BEARER.len()).is_some_and(|c| token(*c)) {
            out.extend_from_slice(&b[i..i + BEARER.len()]);
            out.extend_from_slice(REDACTED.as_bytes());
            i += BEARER.len();
            while b.get(i).is_some_and(|c| token(*c)) {
                i += 1;
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
#[path = "capture_tests.rs"]
mod tests;

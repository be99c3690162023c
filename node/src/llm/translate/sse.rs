//! Server-Sent Events: an incremental parser for provider streams and an encoder for
//! the streams we send to clients. Follows the WHATWG event-stream rules (CRLF, LF or CR
//! line ends, `data:` lines joined with `\n`, `:` comments, `event:`), takes bytes split
//! anywhere (inside a line, a CRLF or a UTF-8 character), and is bounded: an event
//! larger than the limit is an error instead of unbounded memory.

use hyper::body::Bytes;
use serde_json::Value;

use super::util::invalid;
use super::TranslateError;

/// Default bound on one event (its pending line plus its data): 4 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// One dispatched event: its `event:` name (if any) and its data lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Incremental parser: feed it body chunks as they arrive, get complete events back.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    data: String,
    has_data: bool,
    event: Option<String>,
    /// The last byte was a CR: an LF right after it belongs to the same line end.
    after_cr: bool,
    first_line: bool,
    max: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// A parser bounded by [`DEFAULT_MAX_EVENT_BYTES`].
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A parser that rejects events larger than `max_event_bytes`.
    pub fn with_limit(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            data: String::new(),
            has_data: false,
            event: None,
            after_cr: false,
            first_line: true,
            max: max_event_bytes,
        }
    }

    /// Feeds the next bytes of the stream; returns the events they complete.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, TranslateError> {
        let mut out = Vec::new();
        let mut rest = chunk;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if let Some((b'\n', tail)) = rest.split_first() {
                rest = tail;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let Some((head, tail)) = rest.split_at_checked(pos) else {
                break;
            };
            self.append(head)?;
            let Some((&term, mut after)) = tail.split_first() else {
                break;
            };
            if term == b'\r' {
                match after.split_first() {
                    Some((b'\n', t)) => after = t,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            rest = after;
            self.end_line(&mut out);
        }
        self.append(rest)?;
        Ok(out)
    }

    /// Ends the stream: a last event that was not followed by a blank line is
    /// dispatched too (lenient towards providers that close without one).
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut out);
        }
        self.dispatch(&mut out);
        out
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), TranslateError> {
        if self
            .line
            .len()
            .saturating_add(bytes.len())
            .saturating_add(self.data.len())
            > self.max
        {
            let max = self.max;
            self.reset();
            return Err(invalid(format!(
                "server-sent event larger than {max} bytes"
            )));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn reset(&mut self) {
        self.line = Vec::new();
        self.data = String::new();
        self.has_data = false;
        self.event = None;
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let mut raw = std::mem::take(&mut self.line);
        let mut bytes: &[u8] = &raw;
        if self.first_line {
            self.first_line = false;
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        if bytes.is_empty() {
            self.dispatch(out);
        } else if bytes.first() != Some(&b':') {
            let text = String::from_utf8_lossy(bytes);
            let (field, value) = match text.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (text.as_ref(), ""),
            };
            match field {
                "data" => {
                    self.data.push_str(value);
                    self.data.push('\n');
                    self.has_data = true;
                }
                "event" => self.event = Some(value.to_string()),
                _ => {} // `id`, `retry` and unknown fields do not matter here
            }
        }
        raw.clear();
        self.line = raw;
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take().filter(|e| !e.is_empty());
        if !self.has_data {
            return;
        }
        self.has_data = false;
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        out.push(SseEvent { event, data });
    }
}

/// Encodes one event: `event: <name>` (CR/LF removed from the name so it cannot inject
/// fields), one `data:` line per line of `data`, and the blank line that ends it. A
/// line of `data` ends at CRLF, LF or a lone CR, as a client's parser sees it: a lone
/// CR kept inside a `data:` line would end it there and let the rest inject fields.
pub fn sse_event(event: Option<&str>, data: &str) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 32);
    write_sse_event(&mut out, event, data);
    Bytes::from(out)
}

/// [`sse_event`] appended to `out`, for a body that gathers several events in one frame.
pub fn write_sse_event(out: &mut Vec<u8>, event: Option<&str>, data: &str) {
    write_event_name(out, event);
    let mut rest = data;
    loop {
        let end = rest.find(['\r', '\n']);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(
            rest.get(..end.unwrap_or(rest.len()))
                .unwrap_or_default()
                .as_bytes(),
        );
        out.push(b'\n');
        let Some(end) = end else { break };
        let crlf = rest.get(end..).is_some_and(|r| r.starts_with("\r\n"));
        rest = rest
            .get(end + if crlf { 2 } else { 1 }..)
            .unwrap_or_default();
    }
    out.push(b'\n');
}

/// The `event:` line, with CR and LF removed from the name so it cannot inject fields.
fn write_event_name(out: &mut Vec<u8>, event: Option<&str>) {
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend(name.bytes().filter(|b| *b != b'\r' && *b != b'\n'));
        out.push(b'\n');
    }
}

/// A JSON value appended to `out` as one event: compact JSON has no line breaks (JSON
/// escapes them inside strings), so it is one `data:` line as it is.
pub fn write_sse_json(out: &mut Vec<u8>, event: Option<&str>, value: &Value) {
    write_event_name(out, event);
    out.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
}

/// Encodes a JSON value as one event (compact JSON is a single `data:` line).
pub fn sse_json(event: Option<&str>, value: &Value) -> Bytes {
    let mut out = Vec::with_capacity(128);
    write_sse_json(&mut out, event, value);
    Bytes::from(out)
}

/// The `data: [DONE]` terminator of OpenAI streams.
pub const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

/// [`SSE_DONE`] as a body chunk.
pub fn sse_done() -> Bytes {
    Bytes::from_static(SSE_DONE)
}

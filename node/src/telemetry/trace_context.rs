//! W3C Trace Context (`traceparent`): parsing the caller's header, starting this call's
//! span in the caller's trace (or a new one), and the header sent upstream.

use http::HeaderValue;

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";

/// A valid incoming `traceparent`: `VERSION-TRACEID-PARENTID-FLAGS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

fn hex_into(s: &[u8], out: &mut [u8]) -> Option<()> {
    // Lowercase hex only, as the spec requires.
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if s.len() != out.len() * 2 {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(())
}

impl TraceParent {
    /// Parses a header value; anything invalid is `None` (the call then starts a new
    /// trace). Version `00` must be exactly 55 characters; a later version may carry
    /// more fields after a `-`, which are ignored; version `ff` is invalid; all-zero
    /// trace or parent ids are invalid.
    pub fn parse(v: &[u8]) -> Option<TraceParent> {
        if v.len() < 55 {
            return None;
        }
        let mut version = [0u8; 1];
        hex_into(&v[..2], &mut version)?;
        match version[0] {
            0xff => return None,
            0x00 if v.len() != 55 => return None,
            _ if v.len() > 55 && v[55] != b'-' => return None,
            _ => {}
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let mut tp = TraceParent {
            trace_id: [0; 16],
            parent_id: [0; 8],
            flags: 0,
        };
        hex_into(&v[3..35], &mut tp.trace_id)?;
        hex_into(&v[36..52], &mut tp.parent_id)?;
        let mut flags = [0u8; 1];
        hex_into(&v[53..55], &mut flags)?;
        tp.flags = flags[0];
        if tp.trace_id == [0; 16] || tp.parent_id == [0; 8] {
            return None;
        }
        Some(tp)
    }

    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// This call's span: its trace, its own id, the caller's span (if it came with a valid
/// `traceparent`) and whether it is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub sampled: bool,
}

fn nonzero<const N: usize>() -> [u8; N] {
    let mut id: [u8; N] = rand::random();
    if id.iter().all(|b| *b == 0) {
        id[N - 1] = 1;
    }
    id
}

/// Whether a new trace is recorded: the trace id's last 8 bytes against `ratio`, so
/// the decision is a function of the id (as OpenTelemetry's ratio sampler does).
fn ratio_sampled(trace_id: &[u8; 16], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    let x = (u64::from_be_bytes(low) >> 11) as f64 / (1u64 << 53) as f64;
    x < ratio
}

impl SpanContext {
    /// Continues `incoming` (same trace, its span as parent, its sampled flag) or
    /// starts a new trace sampled with probability `ratio`.
    pub fn start(incoming: Option<TraceParent>, ratio: f64) -> SpanContext {
        match incoming {
            Some(p) => SpanContext {
                trace_id: p.trace_id,
                span_id: nonzero(),
                parent_span_id: Some(p.parent_id),
                sampled: p.sampled(),
            },
            None => {
                let trace_id = nonzero();
                SpanContext {
                    trace_id,
                    span_id: nonzero(),
                    parent_span_id: None,
                    sampled: ratio_sampled(&trace_id, ratio),
                }
            }
        }
    }

    /// The `traceparent` for the upstream request: this span as the parent.
    pub fn traceparent(&self) -> HeaderValue {
        let s = format!(
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            u8::from(self.sampled)
        );
        // Only hex digits and dashes.
        HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_version_00() {
        let tp = TraceParent::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(hex::encode(tp.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(tp.parent_id), "00f067aa0ba902b7");
        assert!(tp.sampled());
        let unsampled = GOOD.replace("-01", "-00");
        assert!(!TraceParent::parse(unsampled.as_bytes()).unwrap().sampled());
        // Other flag bits do not make it sampled; bit 0 does.
        assert!(!TraceParent::parse(GOOD.replace("-01", "-02").as_bytes())
            .unwrap()
            .sampled());
        assert!(TraceParent::parse(GOOD.replace("-01", "-03").as_bytes())
            .unwrap()
            .sampled());
    }

    #[test]
    fn rejects_invalid_headers() {
        let bad = [
            "",
            "garbage",
            &GOOD[..54],
            &format!("{GOOD}-extra"),        // v00 has no more fields
            &GOOD.replace("4bf9", "4BF9"),   // uppercase
            &GOOD.replacen("00-", "ff-", 1), // version ff
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        ];
        for b in bad {
            assert_eq!(TraceParent::parse(b.as_bytes()), None, "{b:?}");
        }
    }

    #[test]
    fn accepts_a_later_version_with_more_fields() {
        let v = GOOD.replacen("00-", "01-", 1) + "-whatever";
        assert!(TraceParent::parse(v.as_bytes()).is_some());
        let glued = GOOD.replacen("00-", "01-", 1) + "x";
        assert_eq!(TraceParent::parse(glued.as_bytes()), None);
    }

    #[test]
    fn continues_an_incoming_trace_and_renders_the_upstream_header() {
        let tp = TraceParent::parse(GOOD.as_bytes()).unwrap();
        let span = SpanContext::start(Some(tp), 0.0);
        assert_eq!(span.trace_id, tp.trace_id);
        assert_eq!(span.parent_span_id, Some(tp.parent_id));
        assert_ne!(span.span_id, tp.parent_id);
        assert!(span.sampled, "the caller's decision wins over the ratio");
        let h = span.traceparent();
        let h = h.to_str().unwrap();
        assert_eq!(h.len(), 55);
        let again = TraceParent::parse(h.as_bytes()).unwrap();
        assert_eq!(again.trace_id, tp.trace_id);
        assert_eq!(again.parent_id, span.span_id);
        assert!(h.ends_with("-01"));
    }

    #[test]
    fn new_traces_follow_the_ratio() {
        let all = (0..200).filter(|_| SpanContext::start(None, 1.0).sampled);
        assert_eq!(all.count(), 200);
        let none = (0..200).filter(|_| SpanContext::start(None, 0.0).sampled);
        assert_eq!(none.count(), 0);
        let half = (0..4000)
            .filter(|_| SpanContext::start(None, 0.5).sampled)
            .count();
        assert!((1700..2300).contains(&half), "{half} of 4000 at 0.5");
        let s = SpanContext::start(None, 0.0);
        assert_eq!(s.parent_span_id, None);
        assert!(s.traceparent().to_str().unwrap().ends_with("-00"));
    }
}

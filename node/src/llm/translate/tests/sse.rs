//! The SSE parser and encoder (rules: <https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>).

use serde_json::json;

use super::support::{parse_sse, parse_sse_split};
use crate::llm::translate::sse::{sse_done, sse_event, sse_json, SseEvent, SseParser};
use crate::llm::translate::TranslateError;

fn ev(event: Option<&str>, data: &str) -> SseEvent {
    SseEvent {
        event: event.map(str::to_string),
        data: data.to_string(),
    }
}

/// The streaming example of <https://docs.anthropic.com/en/docs/build-with-claude/streaming>
/// with CRLF line ends and some non-ASCII text, to cut anywhere.
const MIXED: &str = "event: message_start\r\ndata: {\"type\": \"message_start\"}\r\n\r\n: keep-alive comment\n\nevent: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"h\u{e9}llo \u{2713} \u{1F600}\"}}\n\nevent: ping\rdata: {\"type\": \"ping\"}\r\rdata: line one\ndata: line two\n\n";

#[test]
fn parses_events_with_names() {
    let events = parse_sse("event: a\ndata: 1\n\ndata: 2\n\n");
    assert_eq!(events, vec![ev(Some("a"), "1"), ev(None, "2")]);
}

#[test]
fn crlf_cr_and_lf_line_ends_are_equivalent() {
    let lf = parse_sse("event: x\ndata: y\n\n");
    assert_eq!(parse_sse("event: x\r\ndata: y\r\n\r\n"), lf);
    assert_eq!(parse_sse("event: x\rdata: y\r\r"), lf);
}

#[test]
fn multi_line_data_is_joined_with_newlines() {
    assert_eq!(
        parse_sse("data: a\ndata:b\ndata:  c\n\n"),
        vec![ev(None, "a\nb\n c")]
    );
}

#[test]
fn comments_ids_retries_and_unknown_fields_are_ignored() {
    let events = parse_sse(": comment\nid: 7\nretry: 10\nfoo: bar\ndata: x\n\n:only a comment\n\n");
    assert_eq!(events, vec![ev(None, "x")]);
}

#[test]
fn event_name_does_not_leak_into_the_next_event() {
    let events = parse_sse("event: a\n\ndata: 1\n\n");
    assert_eq!(
        events,
        vec![ev(None, "1")],
        "an event without data is not dispatched"
    );
}

#[test]
fn empty_data_line_and_field_without_colon() {
    assert_eq!(parse_sse("data:\n\n"), vec![ev(None, "")]);
    assert_eq!(parse_sse("data\n\n"), vec![ev(None, "")]);
}

#[test]
fn leading_bom_is_stripped() {
    assert_eq!(parse_sse("\u{feff}data: x\n\n"), vec![ev(None, "x")]);
}

#[test]
fn finish_dispatches_an_unterminated_last_event() {
    let mut p = SseParser::new();
    assert!(p.push(b"data: tail").unwrap().is_empty());
    assert_eq!(p.finish(), vec![ev(None, "tail")]);
    assert!(p.finish().is_empty());
}

#[test]
fn split_at_every_byte_gives_the_same_events() {
    let whole = parse_sse(MIXED);
    assert_eq!(whole.len(), 4);
    assert_eq!(whole[2].event.as_deref(), Some("ping"));
    assert_eq!(whole[3], ev(None, "line one\nline two"));
    let bytes = MIXED.as_bytes();
    for cut in 0..=bytes.len() {
        assert_eq!(parse_sse_split(bytes, &[cut]), whole, "cut at {cut}");
    }
    for a in (0..bytes.len()).step_by(7) {
        for b in (a..bytes.len()).step_by(5) {
            assert_eq!(parse_sse_split(bytes, &[a, b]), whole, "cuts at {a}, {b}");
        }
    }
}

#[test]
fn byte_by_byte_with_empty_chunks() {
    let whole = parse_sse(MIXED);
    let mut p = SseParser::new();
    let mut events = Vec::new();
    for b in MIXED.as_bytes() {
        events.extend(p.push(&[]).unwrap());
        events.extend(p.push(std::slice::from_ref(b)).unwrap());
    }
    events.extend(p.finish());
    assert_eq!(events, whole);
}

#[test]
fn cr_at_the_end_of_a_chunk_then_lf() {
    let mut p = SseParser::new();
    assert!(p.push(b"data: a\r").unwrap().is_empty());
    assert!(p.push(b"").unwrap().is_empty());
    assert_eq!(p.push(b"\n\r").unwrap(), vec![ev(None, "a")]);
    assert_eq!(p.push(b"\ndata: b\n\n").unwrap(), vec![ev(None, "b")]);
}

#[test]
fn an_event_over_the_limit_is_an_error() {
    let mut p = SseParser::with_limit(64);
    let long = format!("data: {}", "x".repeat(100));
    assert!(matches!(
        p.push(long.as_bytes()),
        Err(TranslateError::Invalid(_))
    ));
    // Many short data lines add up too.
    let mut p = SseParser::with_limit(64);
    let mut failed = false;
    for _ in 0..20 {
        if p.push(b"data: 0123456789\n").is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed);
    // The parser recovers for the next event after the error.
    assert_eq!(p.push(b"\ndata: ok\n\n").unwrap(), vec![ev(None, "ok")]);
}

#[test]
fn the_limit_is_per_event_not_per_stream() {
    let mut p = SseParser::with_limit(64);
    let mut n = 0;
    for _ in 0..1000 {
        n += p.push(b"data: 0123456789\n\n").unwrap().len();
    }
    assert_eq!(n, 1000);
}

#[test]
fn invalid_utf8_is_replaced_not_an_error() {
    let mut p = SseParser::new();
    let events = p.push(b"data: \xff\xfe ok\n\n").unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].data.ends_with(" ok"));
}

#[test]
fn encoder_writes_one_data_line_per_line() {
    assert_eq!(
        &sse_event(Some("message_stop"), "{}")[..],
        b"event: message_stop\ndata: {}\n\n"
    );
    assert_eq!(
        &sse_event(None, "a\nb\r\nc")[..],
        b"data: a\ndata: b\ndata: c\n\n"
    );
    assert_eq!(&sse_done()[..], b"data: [DONE]\n\n");
}

#[test]
fn encoder_strips_newlines_from_event_names() {
    let b = sse_event(Some("x\r\ndata: injected"), "1");
    assert_eq!(
        parse_sse(std::str::from_utf8(&b).unwrap()),
        vec![ev(Some("xdata: injected"), "1")]
    );
}

/// Found by the `sse_parse` fuzz target: a lone CR in the data ended the `data:` line
/// at the client, so the rest of the text was read as new fields and events.
#[test]
fn encoder_treats_a_lone_cr_in_data_as_a_line_end() {
    let b = sse_event(None, "x\r\revent: injected\rdata: evil\r");
    assert_eq!(
        parse_sse(std::str::from_utf8(&b).unwrap()),
        vec![ev(None, "x\n\nevent: injected\ndata: evil\n")]
    );
    assert_eq!(&sse_event(None, "a\rb")[..], b"data: a\ndata: b\n\n");
}

#[test]
fn encode_then_parse_round_trips() {
    let v = json!({"type": "content_block_delta", "delta": {"text": "two\nlines"}});
    let b = sse_json(Some("content_block_delta"), &v);
    let events = parse_sse(std::str::from_utf8(&b).unwrap());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.as_deref(), Some("content_block_delta"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&events[0].data).unwrap(),
        v
    );
    let multi = "first\nsecond\n\nfourth";
    let events = parse_sse(std::str::from_utf8(&sse_event(None, multi)).unwrap());
    assert_eq!(events, vec![ev(None, multi)]);
}

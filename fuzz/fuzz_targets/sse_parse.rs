//! The SSE parser on a fuzzed byte stream cut at fuzzed points: the events must be the
//! same however the stream is split (whole, in the given chunk sizes, byte by byte).
//! A small event limit gives errors, never a panic or an oversized event. Every event
//! is re-encoded with the gateway's encoder and must parse back as exactly itself, and
//! is fed to the Anthropic and Gemini stream translators.
//!
//! Input: `[n][n chunk sizes][stream bytes...]` (sizes are reused cyclically; 0 pushes
//! an empty chunk).
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftgate_node::llm::translate::anthropic::AnthropicToOpenaiStream;
use raftgate_node::llm::translate::gemini::GeminiToOpenaiStream;
use raftgate_node::llm::translate::sse::{sse_event, SseEvent, SseParser};

fn parse_in_chunks(stream: &[u8], sizes: &[u8]) -> Vec<SseEvent> {
    let mut p = SseParser::new();
    let mut events = Vec::new();
    let mut rest = stream;
    let mut i = 0usize;
    while !rest.is_empty() {
        let size = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(0) as usize;
        i += 1;
        // Never stall: after a full cycle of zero sizes, take the rest.
        let size = if size == 0 && i > sizes.len() * 2 {
            rest.len()
        } else {
            size
        };
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        events.extend(p.push(chunk).expect("below the default limit"));
        rest = tail;
    }
    events.extend(p.finish());
    events
}

/// What a client's parser must read back from `sse_event(event, data)`.
fn expected(event: Option<&str>, data: &str) -> SseEvent {
    let name: Option<String> = event
        .map(|n| n.chars().filter(|c| *c != '\r' && *c != '\n').collect())
        .filter(|n: &String| !n.is_empty());
    SseEvent {
        event: name,
        data: data.replace("\r\n", "\n").replace('\r', "\n"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8).min(rest.len());
    let (sizes, stream) = rest.split_at(n);

    let whole = parse_in_chunks(stream, &[]);
    assert_eq!(whole, parse_in_chunks(stream, sizes), "split at {sizes:?}");
    assert_eq!(whole, parse_in_chunks(stream, &[1]), "byte by byte");

    let limit = 8 + stream.len() / 3;
    let mut small = SseParser::with_limit(limit);
    for chunk in stream.chunks(sizes.first().map_or(7, |&s| usize::from(s).max(1))) {
        if let Ok(events) = small.push(chunk) {
            for e in events {
                assert!(e.data.len() <= limit, "event of {} bytes", e.data.len());
            }
        }
    }
    let _ = small.finish();

    let mut anthropic = AnthropicToOpenaiStream::new("m");
    let mut gemini = GeminiToOpenaiStream::new("m");
    for e in &whole {
        assert!(!e.data.contains('\r'), "a CR in parsed data: {e:?}");
        let back = parse_in_chunks(&sse_event(e.event.as_deref(), &e.data), &[]);
        assert_eq!(back, vec![e.clone()], "encode then parse");
        for c in anthropic.on_event(e).into_iter().chain(gemini.on_event(e)) {
            serde_json::to_vec(&c).expect("chunks serialize");
        }
    }
    let _ = (anthropic.usage(), anthropic.is_finished(), gemini.finish());

    // The encoder on raw text (names and data straight from the fuzzer, CRs included):
    // one event in, exactly that event out, whatever it contains.
    let text = String::from_utf8_lossy(stream);
    let (name, body) = text
        .split_once('\u{0}')
        .map_or((None, &*text), |(a, b)| (Some(a), b));
    let back = parse_in_chunks(&sse_event(name, body), &[]);
    assert_eq!(
        back,
        vec![expected(name, body)],
        "encoder injected or lost lines"
    );
});

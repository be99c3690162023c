//! The upstream response reader of the proxy's HTTP/1.1 exchange (head parser, framing
//! rules, chunked decoder) on fuzzed bytes cut at fuzzed points: it must never panic,
//! and the result (status, headers, body, trailers, reusability, or the error) must be
//! the same however the stream is cut — whole, in the given sizes, byte by byte.
//!
//! Input: `[flags][n][n chunk sizes][response bytes...]`; bit 0 of `flags` makes the
//! request a `HEAD` (no body whatever the head says).
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use raftgate_node::proxy::wire::read_response;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some((&n, rest)) = rest.split_first() else {
        return;
    };
    let (sizes, stream) = rest.split_at(usize::from(n).min(rest.len()));
    let method = if flags & 1 == 1 { Method::HEAD } else { Method::GET };
    let whole = read_response(&method, [stream]);
    let mut pieces = Vec::new();
    let mut tail = stream;
    let mut i = 0;
    while !tail.is_empty() {
        let size = sizes.get(i % sizes.len().max(1)).map_or(tail.len(), |&s| usize::from(s));
        i += 1;
        let (piece, next) = tail.split_at(size.min(tail.len()));
        pieces.push(piece);
        tail = next;
        if i > stream.len() * 2 + 2 {
            pieces.push(tail);
            break;
        }
    }
    assert_eq!(read_response(&method, pieces), whole, "cut at the given sizes");
    assert_eq!(read_response(&method, stream.chunks(1)), whole, "byte by byte");
    if let Ok(r) = &whole {
        if method == Method::HEAD || r.status == http::StatusCode::NO_CONTENT {
            assert!(r.body.is_empty(), "no body for HEAD or 204");
        }
    }
});

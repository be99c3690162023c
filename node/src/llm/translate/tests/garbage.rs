//! Malformed input from clients and providers must give an `Err` (or a best-effort
//! `Ok`), never a panic: wrong types, missing fields, deep nesting, random JSON built
//! from the vocabulary of these formats, random bytes into the SSE parser.

use serde_json::{json, Map, Value};

use crate::llm::translate::anthropic::{
    request_from_anthropic, request_to_anthropic, response_from_anthropic, response_to_anthropic,
    AnthropicToOpenaiStream, OpenaiToAnthropicStream,
};
use crate::llm::translate::gemini::{
    embeddings_request_to_gemini, embeddings_response_from_gemini, request_to_gemini,
    response_from_gemini, GeminiToOpenaiStream,
};
use crate::llm::translate::openai::{
    encode_embeddings_base64, is_usage_only_chunk, prepare_upstream, validate_chat_request,
};
use crate::llm::translate::sse::{SseEvent, SseParser};
use crate::llm::translate::{estimate_prompt_tokens, openai_usage, text_of_openai_chunk};

/// Runs every translator on `v` (as a request, a response, a chunk and a stream event).
fn exercise(v: &Value) {
    let _ = validate_chat_request(v);
    let _ = prepare_upstream(v, "up", true);
    let _ = is_usage_only_chunk(v);
    let _ = openai_usage(v);
    let _ = text_of_openai_chunk(v);
    let _ = estimate_prompt_tokens(v);
    let _ = request_to_anthropic(v, "up");
    let _ = request_from_anthropic(v);
    let _ = response_from_anthropic(v, "p");
    let _ = response_to_anthropic(v);
    let _ = request_to_gemini(v);
    let _ = response_from_gemini(v, "p");
    let _ = embeddings_request_to_gemini(v, "e");
    let _ = embeddings_response_from_gemini(v, "p", 1);
    let mut copy = v.clone();
    encode_embeddings_base64(&mut copy);
    let event = SseEvent {
        event: None,
        data: v.to_string(),
    };
    let mut a = AnthropicToOpenaiStream::new("p");
    let _ = a.on_event(&event);
    let _ = a.usage();
    let mut g = GeminiToOpenaiStream::new("p");
    let _ = g.on_event(&event);
    let _ = g.finish();
    let mut o = OpenaiToAnthropicStream::new("p");
    let _ = o.on_chunk(v);
    let _ = o.finish();
}

#[test]
fn wrong_types_everywhere() {
    let cases = [
        json!(null),
        json!(1),
        json!("x"),
        json!([]),
        json!({}),
        json!([{}]),
        json!({"messages": 5}),
        json!({"messages": [5]}),
        json!({"messages": [{"role": 5}]}),
        json!({"messages": [{"role": "user", "content": {"a": 1}}]}),
        json!({"messages": [{"role": "user", "content": [5, null, {"type": 1}]}]}),
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]}),
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:"}}]}]}),
        json!({"messages": [{"role": "assistant", "tool_calls": "x"}]}),
        json!({"messages": [{"role": "assistant", "tool_calls": [5, {"function": 5}, {"id": 1, "function": {"name": [], "arguments": {}}}]}]}),
        json!({"messages": [{"role": "tool", "tool_call_id": ["x"], "content": 5}]}),
        json!({"messages": [{"role": "user", "content": "x"}], "tools": {}, "tool_choice": 5, "stop": 5, "temperature": "hot", "n": -1, "max_tokens": -5}),
        json!({"messages": [{"role": "user", "content": "x"}], "tools": [5, {"type": "function", "function": {"name": "f", "parameters": 5}}]}),
        json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": [1]}}}),
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "tool_result", "content": 5}, {"type": "image", "source": 5}]}], "system": 5, "tools": [{"name": 5}], "tool_choice": {"type": "tool"}}),
        json!({"type": "message", "content": [5, {"type": "tool_use"}, {"type": "text", "text": 5}], "usage": 5, "stop_reason": 5}),
        json!({"type": "message", "content": "x"}),
        json!({"type": "error", "error": 5}),
        json!({"choices": [{"message": 5}]}),
        json!({"choices": [{"message": {"content": 5, "tool_calls": [5]}}]}),
        json!({"choices": 5, "usage": {"prompt_tokens": -1}}),
        json!({"choices": [{"delta": {"content": 5, "tool_calls": [{"index": -1, "function": {"arguments": 5}}]}, "finish_reason": 5}]}),
        json!({"choices": [{"index": "0", "delta": {"tool_calls": [{"index": 18446744073709551615u64, "id": "x"}]}}]}),
        json!({"candidates": [5, {"content": {"parts": 5}}, {"content": {"parts": [{"text": 5}, {"functionCall": 5}]}, "finishReason": 5}], "usageMetadata": 5}),
        json!({"candidates": [{"index": 18446744073709551615u64, "content": {"parts": [{"functionCall": {"name": "f", "args": 5}}]}}]}),
        json!({"embeddings": 5}),
        json!({"embeddings": [{"values": 5}]}),
        json!({"input": {"a": 1}}),
        json!({"type": "content_block_start", "index": 0, "content_block": 5}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": 5}}),
        json!({"type": "message_delta", "delta": 5, "usage": {"output_tokens": "many"}}),
        json!({"type": "message_start", "message": {"id": 5, "usage": [1]}}),
        json!({"error": "plain string"}),
        json!({"error": null}),
    ];
    for c in &cases {
        exercise(c);
    }
}

/// Builds a `depth`-deep chain of `{"properties": {"p": {...}}}`-like objects
/// iteratively (serde_json's parser refuses more than 128 levels anyway).
fn nested(depth: usize, key: &str) -> Value {
    let mut v = json!({"type": "string"});
    for _ in 0..depth {
        v = json!({"type": "object", key: {"p": v}});
    }
    v
}

#[test]
fn deep_nesting() {
    // The JSON parser itself bounds what a body can hold.
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    assert!(serde_json::from_str::<Value>(&deep).is_err());
    // Deep but parseable values go through every translator.
    let deep_schema = nested(120, "properties");
    let req = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": deep_schema}}]});
    assert!(matches!(
        request_to_gemini(&req),
        Err(crate::llm::translate::TranslateError::Invalid(_))
    ));
    request_to_anthropic(&req, "m").unwrap();
    exercise(&req);
    let deep_args = nested(120, "a").to_string();
    let req = json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": deep_args}}]}]});
    exercise(&req);
    exercise(&nested(120, "content"));
    exercise(&nested(120, "choices"));
}

/// A small deterministic PRNG (xorshift64*), so failures are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const KEYS: [&str; 40] = [
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "image_url",
    "url",
    "tool_calls",
    "id",
    "function",
    "name",
    "arguments",
    "tool_call_id",
    "tools",
    "parameters",
    "tool_choice",
    "stream",
    "stop",
    "n",
    "choices",
    "delta",
    "index",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "message",
    "input",
    "source",
    "tool_use_id",
    "candidates",
    "parts",
    "functionCall",
    "args",
    "finishReason",
    "usageMetadata",
    "system",
    "embeddings",
    "values",
    "partial_json",
];
const STRINGS: [&str; 16] = [
    "user",
    "assistant",
    "system",
    "tool",
    "text",
    "image_url",
    "function",
    "tool_use",
    "tool_result",
    "message_start",
    "content_block_delta",
    "input_json_delta",
    "data:image/png;base64,AA==",
    "{\"a\":1}",
    "",
    "STOP",
];

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    let pick = if depth >= 6 {
        rng.below(5)
    } else {
        rng.below(8)
    };
    match pick {
        0 => Value::Null,
        1 => json!(rng.below(3) == 0),
        2 => json!(rng.below(5) as i64 - 1),
        3 | 4 => json!(STRINGS[rng.below(STRINGS.len())]),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.below(6) {
                m.insert(
                    KEYS[rng.below(KEYS.len())].to_string(),
                    random_value(rng, depth + 1),
                );
            }
            Value::Object(m)
        }
    }
}

#[test]
fn random_json_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..4000 {
        let v = random_value(&mut rng, 0);
        exercise(&v);
    }
}

#[test]
fn random_bytes_through_the_parser_and_streams() {
    let mut rng = Rng(42);
    let alphabet: &[u8] = b"data: event:{}\"[]\r\n\n\n:,type0123message_start\xff\xc3";
    for _ in 0..300 {
        let len = rng.below(400);
        let bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        let mut p = SseParser::with_limit(256);
        let mut a = AnthropicToOpenaiStream::new("p");
        let mut g = GeminiToOpenaiStream::new("p");
        let mut start = 0;
        while start < bytes.len() {
            let end = (start + 1 + rng.below(40)).min(bytes.len());
            if let Ok(events) = p.push(&bytes[start..end]) {
                for e in events {
                    let _ = a.on_event(&e);
                    let _ = g.on_event(&e);
                }
            }
            start = end;
        }
        for e in p.finish() {
            let _ = a.on_event(&e);
        }
    }
}

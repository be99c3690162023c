//! Anthropic-format client → gateway (`POST /v1/messages`): requests in, answers and
//! streams out. Fixtures from <https://docs.anthropic.com/en/api/messages>, the tool-use
//! guide and, for the OpenAI side, <https://platform.openai.com/docs/guides/function-calling>.

use serde_json::{json, Value};

use super::fixtures::TOOL_STREAM;
use super::support::{assemble_anthropic, parse_sse, run};
use crate::llm::translate::anthropic::{
    error_to_anthropic, request_from_anthropic, request_to_anthropic, response_from_anthropic,
    response_to_anthropic, AnthropicToOpenaiStream, OpenaiToAnthropicStream,
};
use crate::llm::translate::{TranslateError, Usage};

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

fn usage_chunk(prompt: u64, completion: u64, cached: u64) -> Value {
    json!({"id": "chatcmpl-123", "object": "chat.completion.chunk", "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                  "prompt_tokens_details": {"cached_tokens": cached}}})
}

fn stream_events(chunks: &[Value]) -> (Vec<(String, Value)>, OpenaiToAnthropicStream) {
    let mut s = OpenaiToAnthropicStream::new("claude-public").with_input_tokens(11);
    let mut events = Vec::new();
    for c in chunks {
        events.extend(s.on_chunk(c));
    }
    events.extend(s.finish());
    (events, s)
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn basic_request() {
    // Request example of the Messages reference.
    let req = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello, world"}]});
    assert_eq!(
        request_from_anthropic(&req).unwrap(),
        json!({
            "model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello, world"}]
        })
    );
}

#[test]
fn full_request() {
    let req = json!({
        "model": "claude-x", "max_tokens": 512,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "Use metric units."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
                {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/a.jpg"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}, "title": "doc.pdf"},
                {"type": "text", "text": "What's the weather like here?"}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Let me call the tool", "signature": "sig"},
                {"type": "text", "text": "<thinking>I need to use get_weather</thinking>"},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
                {"type": "text", "text": "And tomorrow?"}
            ]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true, "content": [{"type": "text", "text": "unavailable"}]}]}
        ],
        "tools": [{"name": "get_weather", "description": "Get the current weather in a given location",
                   "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["###"], "temperature": 0.3, "top_p": 0.8, "top_k": 40,
        "stream": true, "metadata": {"user_id": "user-7"}
    });
    let out = request_from_anthropic(&req).unwrap();
    assert_eq!(
        out["messages"],
        json!([
            {"role": "system", "content": "Be brief.\n\nUse metric units."},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/a.jpg"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "doc.pdf"}},
                {"type": "text", "text": "What's the weather like here?"}
            ]},
            {"role": "assistant", "content": "<thinking>I need to use get_weather</thinking>", "tool_calls": [
                {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"San Francisco, CA\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
            {"role": "user", "content": "And tomorrow?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: unavailable"}
        ])
    );
    assert_eq!(
        out["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}])
    );
    assert_eq!(out["tool_choice"], "required");
    assert_eq!(out["parallel_tool_calls"], false);
    assert_eq!(out["stop"], json!(["###"]));
    assert_eq!(
        (
            out["temperature"].clone(),
            out["top_p"].clone(),
            out["top_k"].clone()
        ),
        (json!(0.3), json!(0.8), json!(40))
    );
    assert_eq!(out["stream"], true);
    assert_eq!(out["stream_options"], json!({"include_usage": true}));
    assert_eq!(out["user"], "user-7");
    assert_eq!(out["max_tokens"], 512);
    // And the result is a valid canonical request.
    crate::llm::translate::openai::validate_chat_request(&out).unwrap();
}

#[test]
fn tool_choice_variants() {
    for (tc, expected) in [
        (json!({"type": "auto"}), json!("auto")),
        (json!({"type": "none"}), json!("none")),
        (
            json!({"type": "tool", "name": "get_weather"}),
            json!({"type": "function", "function": {"name": "get_weather"}}),
        ),
    ] {
        let req = json!({"model": "m", "max_tokens": 1, "messages": [], "tool_choice": tc});
        assert_eq!(
            request_from_anthropic(&req).unwrap()["tool_choice"],
            expected
        );
    }
}

#[test]
fn unsupported_inputs_are_named() {
    let base =
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]});
    let cases = [
        (
            json!({"thinking": {"type": "enabled", "budget_tokens": 2000}}),
            "thinking",
        ),
        (json!({"mcp_servers": [{}]}), "mcp_servers"),
        (
            json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            "tools.0.type=web_search_20250305",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}]}),
            "messages.0.content.0 (only base64 PDF documents)",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}]}]}),
            "messages.0.content.0.content.0 (only text in tool results)",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "search_result"}]}]}),
            "messages.0.content.0.type=search_result",
        ),
    ];
    for (patch, param) in cases {
        let mut req = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            req[k] = v.clone();
        }
        match request_from_anthropic(&req) {
            Err(TranslateError::Unsupported { param: p, .. }) => assert_eq!(p, param),
            other => panic!("{patch}: {other:?}"),
        }
    }
    for bad in [
        json!({"max_tokens": 1, "messages": []}),
        json!({"model": "m", "messages": [{"role": "system", "content": "x"}]}),
        json!({"model": "m", "messages": "x"}),
    ] {
        assert!(
            matches!(
                request_from_anthropic(&bad),
                Err(TranslateError::Invalid(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn request_round_trip_through_the_canonical_form() {
    let original = json!({
        "model": "claude", "max_tokens": 300, "system": "sys",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "calling"}, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1, 2]}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}, {"type": "text", "text": "next"}]}
        ],
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object", "properties": {"a": {"type": "array"}}}}],
        "tool_choice": {"type": "tool", "name": "f"}, "stop_sequences": ["x"], "temperature": 0.1, "top_k": 5
    });
    let canonical = request_from_anthropic(&original).unwrap();
    let back = request_to_anthropic(&canonical, "claude").unwrap();
    assert_eq!(back["system"], json!([{"type": "text", "text": "sys"}]));
    assert_eq!(back["messages"], original["messages"]);
    assert_eq!(back["tools"], original["tools"]);
    assert_eq!(back["tool_choice"], original["tool_choice"]);
    assert_eq!(back["stop_sequences"], original["stop_sequences"]);
    assert_eq!(
        (
            back["max_tokens"].clone(),
            back["temperature"].clone(),
            back["top_k"].clone()
        ),
        (json!(300), json!(0.1), json!(5))
    );
}

#[test]
fn response_to_anthropic_text_and_tools() {
    // Function-calling response example of the OpenAI guide.
    let resp = json!({
        "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1699896916, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_abc123", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\n\"location\": \"Boston, MA\"\n}"}}
        ]}, "logprobs": null, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99, "prompt_tokens_details": {"cached_tokens": 64}}
    });
    let out = response_to_anthropic(&resp).unwrap();
    assert!(out["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(out["type"], "message");
    assert_eq!(out["role"], "assistant");
    assert_eq!(out["model"], "gpt-4o-mini");
    assert_eq!(
        out["content"],
        json!([{"type": "tool_use", "id": "call_abc123", "name": "get_current_weather", "input": {"location": "Boston, MA"}}])
    );
    assert_eq!(out["stop_reason"], "tool_use");
    assert_eq!(out["stop_sequence"], Value::Null);
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 18, "output_tokens": 17, "cache_read_input_tokens": 64})
    );

    for (finish, stop) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("tool_calls", "tool_use"),
    ] {
        let r = json!({"model": "m", "choices": [{"message": {"role": "assistant", "content": "x"}, "finish_reason": finish}]});
        assert_eq!(response_to_anthropic(&r).unwrap()["stop_reason"], stop);
    }
    let refusal = json!({"choices": [{"message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"}]});
    let out = response_to_anthropic(&refusal).unwrap();
    assert_eq!(out["stop_reason"], "refusal");
    assert_eq!(out["content"][0]["text"], "I can't help with that.");

    let bad_args = json!({"choices": [{"message": {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}}]});
    assert!(matches!(
        response_to_anthropic(&bad_args),
        Err(TranslateError::Invalid(_))
    ));
    assert!(response_to_anthropic(&json!({"choices": []})).is_err());
}

#[test]
fn response_round_trip() {
    let original = json!({
        "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": "I'll check the current weather in San Francisco for you."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA", "unit": "celsius"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 100, "cache_read_input_tokens": 50, "output_tokens": 30}
    });
    let back =
        response_to_anthropic(&response_from_anthropic(&original, "claude-sonnet-4-5").unwrap())
            .unwrap();
    assert_eq!(back["content"], original["content"]);
    assert_eq!(back["stop_reason"], "tool_use");
    assert_eq!(back["usage"], original["usage"]);
    assert_eq!(back["model"], "claude-sonnet-4-5");
}

#[test]
fn stream_of_text_has_the_exact_event_sequence() {
    // Streaming chunks of <https://platform.openai.com/docs/api-reference/chat-streaming>.
    let chunks = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Hello"}), None),
        chunk(json!({"content": " there"}), None),
        chunk(json!({}), Some("stop")),
        usage_chunk(9, 12, 0),
    ];
    let (events, s) = stream_events(&chunks);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[0].1["message"]["model"], "claude-public");
    assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 11);
    assert_eq!(events[0].1["message"]["content"], json!([]));
    assert_eq!(
        events[1].1,
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    assert_eq!(
        events[2].1,
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}})
    );
    assert_eq!(
        events[5].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"input_tokens": 9, "output_tokens": 12}})
    );
    let msg = assemble_anthropic(&events);
    assert_eq!(
        msg["content"],
        json!([{"type": "text", "text": "Hello there"}])
    );
    assert_eq!(
        s.usage(),
        Usage {
            input: 9,
            output: 12,
            cached_input: 0
        }
    );
}

#[test]
fn stream_with_text_then_tool_calls() {
    // Tool-call streaming deltas of the OpenAI function-calling guide (later deltas have
    // null ids and names), after some text, followed by a second parallel call.
    let tc = |i: u64, id: Value, name: Value, args: &str| {
        chunk(
            json!({"tool_calls": [{"index": i, "id": id, "function": {"arguments": args, "name": name}, "type": "function"}]}),
            None,
        )
    };
    let chunks = [
        chunk(json!({"role": "assistant", "content": "Checking."}), None),
        tc(
            0,
            json!("call_DdmO9pD3xa9XTPNJ32zg2hcA"),
            json!("get_weather"),
            "",
        ),
        tc(0, Value::Null, Value::Null, "{\""),
        tc(0, Value::Null, Value::Null, "location"),
        tc(0, Value::Null, Value::Null, "\":\""),
        tc(0, Value::Null, Value::Null, "Paris, France"),
        tc(0, Value::Null, Value::Null, "\"}"),
        tc(1, json!("call_2"), json!("get_time"), "{}"),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(40, 20, 8),
    ];
    let (events, _) = stream_events(&chunks);
    let msg = assemble_anthropic(&events);
    assert_eq!(
        msg["content"],
        json!([
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "name": "get_weather", "input": {"location": "Paris, France"}},
            {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}
        ])
    );
    assert_eq!(msg["stop_reason"], "tool_use");
    assert_eq!(
        msg["usage"],
        json!({"input_tokens": 32, "output_tokens": 20, "cache_read_input_tokens": 8})
    );
}

#[test]
fn stream_finish_is_idempotent_and_works_without_chunks() {
    let mut s = OpenaiToAnthropicStream::new("m");
    let events = s.finish();
    assert_eq!(
        names(&events),
        ["message_start", "message_delta", "message_stop"]
    );
    assert!(s.finish().is_empty());
    assert!(s
        .on_chunk(&chunk(json!({"content": "late"}), None))
        .is_empty());
}

#[test]
fn stream_without_usage_estimates_output() {
    let chunks = [chunk(json!({"content": "abcdefgh"}), Some("length"))];
    let (events, s) = stream_events(&chunks);
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"]["output_tokens"], 2);
    assert_eq!(
        s.usage(),
        Usage {
            input: 11,
            output: 2,
            cached_input: 0
        }
    );
}

#[test]
fn stream_error_chunk_becomes_an_error_event() {
    let mut s = OpenaiToAnthropicStream::new("m");
    let mut events = s.on_chunk(&chunk(json!({"content": "partial"}), None));
    events.extend(s.on_chunk(
        &json!({"error": {"message": "upstream overloaded", "type": "overloaded_error"}}),
    ));
    let last = events.last().unwrap();
    assert_eq!(last.0, "error");
    assert_eq!(
        last.1,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "upstream overloaded"}})
    );
    assert!(s.finish().is_empty(), "no orderly end after an error");
}

/// Anthropic provider stream → canonical chunks → Anthropic client stream: the client
/// sees the message the provider sent.
#[test]
fn stream_round_trip_anthropic_to_anthropic() {
    let mut up = AnthropicToOpenaiStream::new("claude-public");
    let chunks = run(&parse_sse(TOOL_STREAM), |e| up.on_event(e)).unwrap();
    let (events, down) = stream_events(&chunks);
    let msg = assemble_anthropic(&events);
    assert_eq!(
        msg["content"],
        json!([
            {"type": "text", "text": "Okay, let's check the weather for San Francisco, CA:"},
            {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {"location": "San Francisco, CA", "unit": "fahrenheit"}}
        ])
    );
    assert_eq!(msg["stop_reason"], "tool_use");
    assert_eq!(
        msg["usage"],
        json!({"input_tokens": 472, "output_tokens": 89})
    );
    assert_eq!(down.usage(), up.usage());
}

#[test]
fn error_bodies_use_anthropic_type_names() {
    // Error types of <https://docs.anthropic.com/en/api/errors>.
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (529, "overloaded_error"),
        (503, "overloaded_error"),
        (422, "invalid_request_error"),
    ] {
        assert_eq!(
            error_to_anthropic(status, "whatever", "m"),
            json!({"type": "error", "error": {"type": kind, "message": "m"}}),
            "{status}"
        );
    }
    assert_eq!(
        error_to_anthropic(500, "overloaded_error", "busy")["error"]["type"],
        "overloaded_error"
    );
}

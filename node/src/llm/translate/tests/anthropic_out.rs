//! Gateway → Anthropic provider: requests out, responses and streams back. Fixtures from
//! <https://docs.anthropic.com/en/api/messages>, <https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use>
//! and <https://docs.anthropic.com/en/docs/build-with-claude/streaming>.

use serde_json::{json, Value};

use super::fixtures::{TEXT_STREAM, TOOL_STREAM};
use super::support::{collect, parse_sse, parse_sse_split, run};
use crate::llm::translate::anthropic::{
    request_to_anthropic, response_from_anthropic, AnthropicToOpenaiStream,
};
use crate::llm::translate::{TranslateError, Usage};

fn chat(messages: Value) -> Value {
    json!({"model": "claude", "messages": messages})
}

fn unsupported_param(req: &Value) -> String {
    match request_to_anthropic(req, "claude-up") {
        Err(TranslateError::Unsupported { param, provider }) => {
            assert_eq!(provider, "anthropic");
            param
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn basic_request() {
    let req = json!({
        "model": "public",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello, world"},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        ],
        "temperature": 0.5, "top_p": 0.9, "stop": "END", "stream": true, "user": "u-42",
        "stream_options": {"include_usage": true}, "store": false
    });
    let out = request_to_anthropic(&req, "claude-sonnet-4-5").unwrap();
    assert_eq!(
        out,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in French."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, world"}]}],
            "temperature": 0.5, "top_p": 0.9,
            "stop_sequences": ["END"],
            "stream": true,
            "metadata": {"user_id": "u-42"}
        })
    );
}

#[test]
fn max_tokens_prefers_max_completion_tokens() {
    let mut req = chat(json!([{"role": "user", "content": "x"}]));
    req["max_tokens"] = json!(100);
    assert_eq!(request_to_anthropic(&req, "m").unwrap()["max_tokens"], 100);
    req["max_completion_tokens"] = json!(200);
    assert_eq!(request_to_anthropic(&req, "m").unwrap()["max_tokens"], 200);
}

#[test]
fn consecutive_turns_of_one_role_are_merged() {
    let req = chat(json!([
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}, {"type": "text", "text": ""}]},
        {"role": "assistant", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "three"},
    ]));
    let out = request_to_anthropic(&req, "m").unwrap();
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "user", "content": [{"type": "text", "text": "three"}]},
        ])
    );
}

#[test]
fn images_become_base64_or_url_sources() {
    let req = chat(json!([{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg", "detail": "high"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    ]}]));
    let out = request_to_anthropic(&req, "m").unwrap();
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "text", "text": "Compare"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
        ])
    );
    for bad in [
        "ftp://x/y.png",
        "data:image/png,notbase64",
        "data:;base64,AAAA",
    ] {
        let req = chat(
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": bad}}]}]),
        );
        assert!(
            matches!(
                request_to_anthropic(&req, "m"),
                Err(TranslateError::Invalid(_))
            ),
            "{bad}"
        );
    }
}

/// A full tool round in OpenAI form (from the function-calling guide) and its Anthropic
/// form (from the tool-use guide).
#[test]
fn tool_calls_and_results() {
    let req = json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "What's the weather like in San Francisco and Paris?"},
            {"role": "assistant", "content": "I'll check both.", "tool_calls": [
                {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"San Francisco, CA\", \"unit\": \"celsius\"}"}},
                {"id": "call.with:odd/chars", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
            {"role": "tool", "tool_call_id": "call.with:odd/chars", "content": [{"type": "text", "text": "rain"}]},
            {"role": "user", "content": "Thanks, and tomorrow?"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a given location",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}},
            {"type": "function", "function": {"name": "now"}}],
        "tool_choice": "required",
        "parallel_tool_calls": false
    });
    let out = request_to_anthropic(&req, "m").unwrap();
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "What's the weather like in San Francisco and Paris?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "I'll check both."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA", "unit": "celsius"}},
                {"type": "tool_use", "id": "call_with_odd_chars", "name": "get_weather", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
                {"type": "tool_result", "tool_use_id": "call_with_odd_chars", "content": [{"type": "text", "text": "rain"}]},
                {"type": "text", "text": "Thanks, and tomorrow?"}
            ]}
        ])
    );
    assert_eq!(
        out["tools"],
        json!([
            {"name": "get_weather", "description": "Get the current weather in a given location",
             "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}},
            {"name": "now", "input_schema": {"type": "object", "properties": {}}}
        ])
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
}

#[test]
fn tool_results_go_first_in_a_user_turn() {
    let req = chat(json!([
        {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "user", "content": "by the way"},
        {"role": "tool", "tool_call_id": "t1", "content": "done"},
    ]));
    let out = request_to_anthropic(&req, "m").unwrap();
    assert_eq!(out["messages"][1]["content"][0]["type"], "tool_result");
    assert_eq!(out["messages"][1]["content"][1]["type"], "text");
}

#[test]
fn tool_choice_variants() {
    let base = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}]});
    for (choice, expected) in [
        (json!("auto"), json!({"type": "auto"})),
        (json!("none"), json!({"type": "none"})),
        (json!("required"), json!({"type": "any"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "tool", "name": "f"}),
        ),
    ] {
        let mut req = base.clone();
        req["tool_choice"] = choice;
        assert_eq!(
            request_to_anthropic(&req, "m").unwrap()["tool_choice"],
            expected
        );
    }
    let mut req = base.clone();
    req["parallel_tool_calls"] = json!(false);
    assert_eq!(
        request_to_anthropic(&req, "m").unwrap()["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    // Without tools there is no tool_choice to send.
    let req = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"});
    assert!(request_to_anthropic(&req, "m")
        .unwrap()
        .get("tool_choice")
        .is_none());
}

#[test]
fn invalid_tool_arguments_are_invalid() {
    for args in ["{not json", "[1,2]", "42"] {
        let req = chat(
            json!([{"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": args}}]}]),
        );
        match request_to_anthropic(&req, "m") {
            Err(TranslateError::Invalid(m)) => assert!(
                m.contains("messages[0].tool_calls[0].function.arguments"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn every_unsupported_parameter_is_named() {
    let cases = [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("logit_bias", json!({"50256": -100})),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(-0.5)),
        ("seed", json!(7)),
        ("audio", json!({"voice": "alloy", "format": "wav"})),
        ("modalities", json!(["text", "audio"])),
        ("prediction", json!({"type": "content", "content": "x"})),
        ("reasoning_effort", json!("high")),
        ("web_search_options", json!({})),
        ("functions", json!([{"name": "f"}])),
        ("function_call", json!("auto")),
        ("response_format", json!({"type": "json_object"})),
        (
            "response_format",
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
        ),
    ];
    for (param, value) in cases {
        let mut req = chat(json!([{"role": "user", "content": "x"}]));
        req[param] = value;
        assert_eq!(unsupported_param(&req), param);
    }
    let mut req = chat(
        json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}}]}]),
    );
    assert_eq!(unsupported_param(&req), "input_audio");
    req = chat(json!([{"role": "user", "content": "x"}]));
    req["tools"] = json!([{"type": "custom", "custom": {"name": "x"}}]);
    assert_eq!(unsupported_param(&req), "tools[0].type=custom");
    req = chat(json!([{"role": "function", "name": "f", "content": "x"}]));
    assert_eq!(unsupported_param(&req), "function messages");
}

#[test]
fn default_values_of_unsupported_parameters_are_accepted() {
    let mut req = chat(json!([{"role": "user", "content": "x"}]));
    for (k, v) in [
        ("n", json!(1)),
        ("logprobs", json!(false)),
        ("logit_bias", json!({})),
        ("presence_penalty", json!(0)),
        ("frequency_penalty", json!(0.0)),
        ("seed", Value::Null),
        ("modalities", json!(["text"])),
        ("response_format", json!({"type": "text"})),
        ("parallel_tool_calls", json!(true)),
    ] {
        req[k] = v;
    }
    request_to_anthropic(&req, "m").unwrap();
    req["temperature"] = json!(1.5);
    assert!(
        matches!(request_to_anthropic(&req, "m"), Err(TranslateError::Invalid(m)) if m.contains("temperature"))
    );
}

#[test]
fn response_with_text() {
    // Example response of <https://docs.anthropic.com/en/api/messages>.
    let resp = json!({
        "content": [{"text": "Hi! My name is Claude.", "type": "text"}],
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "model": "claude-sonnet-4-5-20250929",
        "role": "assistant",
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "type": "message",
        "usage": {"input_tokens": 2095, "output_tokens": 503}
    });
    let out = response_from_anthropic(&resp, "public-claude").unwrap();
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["id"], "chatcmpl-msg_013Zva2CMHLNnXjNJJKqJ2EF");
    assert_eq!(out["model"], "public-claude");
    assert!(out["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(
        out["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "Hi! My name is Claude.", "refusal": null}, "logprobs": null, "finish_reason": "stop"}])
    );
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598, "prompt_tokens_details": {"cached_tokens": 0}})
    );
}

#[test]
fn response_with_tool_use() {
    // Tool-use response of the implement-tool-use guide.
    let resp = json!({
        "id": "msg_01Aq9w938a90dw8q",
        "model": "claude-sonnet-4-5",
        "stop_reason": "tool_use",
        "role": "assistant",
        "type": "message",
        "content": [
            {"type": "text", "text": "I'll check the current weather in San Francisco for you."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA", "unit": "celsius"}}
        ]
    });
    let out = response_from_anthropic(&resp, "p").unwrap();
    let msg = &out["choices"][0]["message"];
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        msg["content"],
        "I'll check the current weather in San Francisco for you."
    );
    let call = &msg["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        args,
        json!({"location": "San Francisco, CA", "unit": "celsius"})
    );
    // Only a tool call: content is null, as OpenAI sends it.
    let only = json!({"type": "message", "content": [resp["content"][1].clone()], "stop_reason": "tool_use"});
    assert_eq!(
        response_from_anthropic(&only, "p").unwrap()["choices"][0]["message"]["content"],
        Value::Null
    );
}

#[test]
fn response_stop_reasons_and_cache_usage() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ] {
        let resp = json!({"type": "message", "content": [], "stop_reason": stop});
        assert_eq!(
            response_from_anthropic(&resp, "p").unwrap()["choices"][0]["finish_reason"],
            finish,
            "{stop}"
        );
    }
    // Prompt caching usage: <https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching>.
    let resp = json!({"type": "message", "content": [{"type": "thinking", "thinking": "hmm", "signature": "x"}, {"type": "text", "text": "ok"}],
        "usage": {"input_tokens": 21, "cache_creation_input_tokens": 188086, "cache_read_input_tokens": 1000, "output_tokens": 393}});
    let out = response_from_anthropic(&resp, "p").unwrap();
    assert_eq!(
        out["choices"][0]["message"]["content"], "ok",
        "thinking is not carried over"
    );
    assert_eq!(out["usage"]["prompt_tokens"], 21 + 188086 + 1000);
    assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 1000);
    assert_eq!(out["usage"]["completion_tokens"], 393);
}

#[test]
fn error_body_is_an_error() {
    let e = json!({"type": "error", "error": {"type": "not_found_error", "message": "The requested resource could not be found."}});
    match response_from_anthropic(&e, "p") {
        Err(TranslateError::Invalid(m)) => {
            assert!(m.contains("could not be found") && m.contains("not_found_error"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn stream_of_text() {
    let mut s = AnthropicToOpenaiStream::new("public");
    let chunks = run(&parse_sse(TEXT_STREAM), |e| s.on_event(e)).unwrap();
    let c = collect(&chunks);
    assert!(c.role_first);
    assert_eq!(c.content, "Hello!");
    assert_eq!(c.finish.as_deref(), Some("stop"));
    assert_eq!(
        c.usage,
        Some(Usage {
            input: 25,
            output: 15,
            cached_input: 0
        })
    );
    assert_eq!(c.after_usage, 0);
    assert_eq!(
        s.usage(),
        Usage {
            input: 25,
            output: 15,
            cached_input: 0
        }
    );
    assert!(s.is_finished());
    for ch in &chunks {
        assert_eq!(ch["model"], "public");
        assert_eq!(ch["id"], "chatcmpl-msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
}

#[test]
fn stream_with_tool_use() {
    let mut s = AnthropicToOpenaiStream::new("public");
    let chunks = run(&parse_sse(TOOL_STREAM), |e| s.on_event(e)).unwrap();
    let c = collect(&chunks);
    assert_eq!(
        c.content,
        "Okay, let's check the weather for San Francisco, CA:"
    );
    assert_eq!(c.tool_calls.len(), 1);
    let (id, name, args) = &c.tool_calls[0];
    assert_eq!(
        (id.as_str(), name.as_str()),
        ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather")
    );
    assert_eq!(
        serde_json::from_str::<Value>(args).unwrap(),
        json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
    );
    assert_eq!(c.finish.as_deref(), Some("tool_calls"));
    assert_eq!(
        c.usage,
        Some(Usage {
            input: 472,
            output: 89,
            cached_input: 0
        })
    );
    // The first tool-call delta names the call; later ones carry only arguments.
    let first = chunks
        .iter()
        .find(|ch| ch["choices"][0]["delta"].get("tool_calls").is_some())
        .unwrap();
    assert_eq!(
        first["choices"][0]["delta"]["tool_calls"][0],
        json!({"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function", "function": {"name": "get_weather", "arguments": ""}})
    );
}

#[test]
fn stream_split_at_any_byte_translates_the_same() {
    let whole = {
        let mut s = AnthropicToOpenaiStream::new("p");
        collect(&run(&parse_sse(TOOL_STREAM), |e| s.on_event(e)).unwrap())
    };
    let bytes = TOOL_STREAM.as_bytes();
    for cut in (0..bytes.len()).step_by(3) {
        let mut s = AnthropicToOpenaiStream::new("p");
        let events = parse_sse_split(bytes, &[cut, (cut + 17).min(bytes.len())]);
        assert_eq!(
            collect(&run(&events, |e| s.on_event(e)).unwrap()),
            whole,
            "cut at {cut}"
        );
    }
}

#[test]
fn stream_error_event_carries_the_message() {
    // Error event of the streaming guide.
    let raw = "event: message_start\ndata: {\"type\": \"message_start\", \"message\": {\"id\": \"m\", \"usage\": {\"input_tokens\": 3}}}\n\nevent: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n";
    let mut s = AnthropicToOpenaiStream::new("p");
    let events = parse_sse(raw);
    assert!(s.on_event(&events[0]).is_ok());
    match s.on_event(&events[1]) {
        Err(TranslateError::Invalid(m)) => assert!(
            m.contains("Overloaded") && m.contains("overloaded_error"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.usage().input, 3);
}

#[test]
fn stream_usage_with_cache_and_cumulative_input() {
    let raw = r#"data: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":10,"cache_read_input_tokens":90,"output_tokens":1}}}

data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}

data: {"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"input_tokens":10,"cache_read_input_tokens":90,"cache_creation_input_tokens":5,"output_tokens":7}}

data: {"type":"message_stop"}

"#;
    let mut s = AnthropicToOpenaiStream::new("p");
    let c = collect(&run(&parse_sse(raw), |e| s.on_event(e)).unwrap());
    assert!(
        c.role_first,
        "a role chunk even without content_block_start"
    );
    assert_eq!(c.finish.as_deref(), Some("length"));
    assert_eq!(
        c.usage,
        Some(Usage {
            input: 105,
            output: 7,
            cached_input: 90
        })
    );
}

#[test]
fn stream_protocol_violations_are_errors() {
    let mut s = AnthropicToOpenaiStream::new("p");
    let bad = [
        "data: not json\n\n",
        "data: {\"type\":\"content_block_delta\",\"index\":5,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}\n\n",
        "data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\"}}\n\n",
    ];
    for raw in bad {
        assert!(s.on_event(&parse_sse(raw)[0]).is_err(), "{raw}");
    }
    // Unknown event types are ignored.
    assert!(
        s.on_event(&parse_sse("event: future\ndata: {\"type\":\"future\"}\n\n")[0])
            .unwrap()
            .len()
            <= 1
    );
}

//! The canonical format: validation, upstream preparation, usage and token helpers.
//! Request fixtures follow <https://platform.openai.com/docs/api-reference/chat/create>.

use base64::Engine;
use serde_json::{json, Value};

use crate::llm::translate::openai::{
    encode_embeddings_base64, is_usage_only_chunk, prepare_upstream, upstream_body,
    validate_chat_request, wants_base64_embeddings,
};
use crate::llm::translate::{
    estimate_prompt_tokens, estimate_tokens, openai_usage, text_of_openai_chunk, TranslateError,
    Usage,
};

/// The function-calling request example of the Chat Completions reference.
fn tools_request() -> Value {
    json!({
        "model": "gpt-4.1",
        "messages": [
            {"role": "developer", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What's the weather like in Boston today?"}
        ],
        "tools": [{
            "type": "function",
            "function": {
                "name": "get_current_weather",
                "description": "Get the current weather in a given location",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
                    },
                    "required": ["location"]
                }
            }
        }],
        "tool_choice": "auto",
        "stream": true,
        "stream_options": {"include_usage": true}
    })
}

fn invalid_message(req: Value) -> String {
    match validate_chat_request(&req) {
        Err(TranslateError::Invalid(m)) => m,
        other => panic!("expected Invalid for {req}, got {other:?}"),
    }
}

#[test]
fn accepts_the_reference_examples() {
    validate_chat_request(&tools_request()).unwrap();
    // Vision example: text and image_url parts.
    validate_chat_request(&json!({
        "model": "gpt-4.1",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What's in this image?"},
            {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/Gfp-wisconsin-madison-the-nature-boardwalk.jpg/2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg"}}
        ]}],
        "max_tokens": 300
    }))
    .unwrap();
    // A tool-call round: assistant tool_calls with null content, then the tool answer.
    validate_chat_request(&json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
        ],
        "n": 1, "temperature": 0.2, "top_p": 1, "stop": ["\n"], "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    }))
    .unwrap();
}

#[test]
fn rejects_malformed_requests_naming_the_parameter() {
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"messages": msgs}), "model"),
        (json!({"model": "m"}), "messages"),
        (json!({"model": "m", "messages": []}), "messages"),
        (
            json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "m", "messages": [{"content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user"}]}),
            "messages[0].content",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "video"}]}]}),
            "messages[0].content[0].type",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant"}]}),
            "messages[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "tool_call_id",
        ),
        (
            json!({"model": "m", "messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}]}),
            "arguments",
        ),
        (json!({"model": "m", "messages": msgs, "n": 0}), "`n`"),
        (
            json!({"model": "m", "messages": msgs, "temperature": 3}),
            "`temperature`",
        ),
        (
            json!({"model": "m", "messages": msgs, "top_p": "high"}),
            "`top_p`",
        ),
        (
            json!({"model": "m", "messages": msgs, "max_tokens": 0}),
            "`max_tokens`",
        ),
        (
            json!({"model": "m", "messages": msgs, "stream": "yes"}),
            "`stream`",
        ),
        (
            json!({"model": "m", "messages": msgs, "stream_options": {"include_usage": true}}),
            "`stream_options`",
        ),
        (json!({"model": "m", "messages": msgs, "stop": 5}), "`stop`"),
        (
            json!({"model": "m", "messages": msgs, "tools": [{"type": "function", "function": {}}]}),
            "tools[0].function.name",
        ),
        (
            json!({"model": "m", "messages": msgs, "tool_choice": "always"}),
            "`tool_choice`",
        ),
        (
            json!({"model": "m", "messages": msgs, "response_format": {"type": "json_schema"}}),
            "response_format",
        ),
        (
            json!({"model": "m", "messages": msgs, "response_format": {"type": "yaml"}}),
            "response_format",
        ),
    ];
    for (req, needle) in cases {
        let m = invalid_message(req.clone());
        assert!(
            m.contains(needle),
            "message {m:?} for {req} should name {needle}"
        );
    }
    assert!(matches!(
        validate_chat_request(&json!([1])),
        Err(TranslateError::Invalid(_))
    ));
}

#[test]
fn prepare_upstream_forces_usage_and_reports_the_clients_choice() {
    let p = prepare_upstream(&tools_request(), "gpt-4.1-2025-04-14", true);
    assert_eq!(p.body["model"], "gpt-4.1-2025-04-14");
    assert_eq!(p.body["stream_options"]["include_usage"], true);
    assert!(p.client_asked_usage);

    let mut req = tools_request();
    req.as_object_mut().unwrap().remove("stream_options");
    let p = prepare_upstream(&req, "up", true);
    assert_eq!(p.body["stream_options"], json!({"include_usage": true}));
    assert!(!p.client_asked_usage);
    assert_eq!(p.body["messages"], req["messages"], "the rest is untouched");

    let p = prepare_upstream(&req, "up", false);
    assert!(p.body.get("stream_options").is_none());

    req["stream"] = json!(false);
    let p = prepare_upstream(&req, "up", true);
    assert!(
        p.body.get("stream_options").is_none(),
        "only streams get stream_options"
    );
    assert!(!p.client_asked_usage);
}

/// The body the provider call sends is written while serializing the client's request;
/// it must be what copying the request and editing the copy gives, byte for byte.
#[test]
fn the_upstream_body_is_the_edited_copy_of_the_request() {
    fn edited_copy(req: &Value, model: &str, want_usage: bool) -> Value {
        let mut body = req.clone();
        let streaming = body.get("stream") == Some(&Value::Bool(true));
        if let Some(obj) = body.as_object_mut() {
            obj.insert("model".into(), json!(model));
            if streaming && want_usage {
                let so = obj.entry("stream_options").or_insert_with(|| json!({}));
                if !so.is_object() {
                    *so = json!({});
                }
                so["include_usage"] = json!(true);
            }
        }
        body
    }
    let mut no_model = tools_request();
    no_model.as_object_mut().unwrap().remove("model");
    let cases = [
        tools_request(),
        json!({"model": "a", "messages": [], "stream": true}),
        json!({"model": "a", "stream": true, "stream_options": {"include_usage": false, "x": 1}}),
        json!({"model": "a", "stream": true, "stream_options": "odd"}),
        json!({"model": "a", "stream": false, "stream_options": {"include_usage": false}}),
        json!({"model": "a", "stream": "true"}),
        json!({"messages": [{"role": "user", "content": "z\n\"q\" é"}], "zz": null}),
        no_model,
        json!([1, 2]),
        json!("text"),
    ];
    for req in &cases {
        for want in [true, false] {
            let sent = serde_json::to_vec(&upstream_body(req, "up-1", want)).unwrap();
            let expected = edited_copy(req, "up-1", want);
            assert_eq!(
                String::from_utf8(sent).unwrap(),
                expected.to_string(),
                "{req} (want usage: {want})"
            );
            assert_eq!(prepare_upstream(req, "up-1", want).body, expected);
        }
    }
}

#[test]
fn usage_only_chunks() {
    let usage = json!({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}});
    assert!(is_usage_only_chunk(&usage));
    let content = json!({"choices": [{"index": 0, "delta": {"content": "x"}}], "usage": null});
    assert!(!is_usage_only_chunk(&content));
    assert!(!is_usage_only_chunk(&json!({"choices": []})));
    assert!(!is_usage_only_chunk(&json!("garbage")));
}

#[test]
fn usage_with_cached_tokens() {
    // Response usage shape of <https://platform.openai.com/docs/api-reference/chat/object>.
    let resp = json!({"usage": {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0}}});
    assert_eq!(
        openai_usage(&resp),
        Some(Usage {
            input: 2006,
            output: 300,
            cached_input: 1920
        })
    );
    assert_eq!(
        openai_usage(&resp["usage"]),
        openai_usage(&resp),
        "a bare usage object works too"
    );
    assert_eq!(openai_usage(&json!({"usage": null})), None);
    assert_eq!(openai_usage(&json!({"choices": []})), None);
    assert_eq!(
        openai_usage(&json!({"usage": {"prompt_tokens": "x"}})),
        None
    );
    assert_eq!(
        Usage {
            input: 3,
            output: 4,
            cached_input: 1
        }
        .total(),
        7
    );
}

#[test]
fn text_of_a_chunk_includes_tool_arguments() {
    let chunk = json!({"choices": [
        {"index": 0, "delta": {"content": "Hello"}},
        {"index": 1, "delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{\"a\""}}]}}
    ]});
    assert_eq!(text_of_openai_chunk(&chunk), "Hellof{\"a\"");
    assert_eq!(text_of_openai_chunk(&json!({"choices": 5})), "");
}

#[test]
fn token_estimates() {
    assert_eq!(estimate_tokens(""), 0);
    assert_eq!(estimate_tokens("a"), 1);
    assert_eq!(estimate_tokens("abcd"), 1);
    assert_eq!(estimate_tokens("abcde"), 2);
    assert_eq!(estimate_tokens("éééé"), 1, "characters, not bytes");
    let plain = json!({"messages": [{"role": "user", "content": "x".repeat(400)}]});
    let n = estimate_prompt_tokens(&plain);
    assert!((100..=110).contains(&n), "{n}");
    let with_tools = tools_request();
    let without: Value = {
        let mut r = tools_request();
        r.as_object_mut().unwrap().remove("tools");
        r
    };
    assert!(estimate_prompt_tokens(&with_tools) > estimate_prompt_tokens(&without) + 20);
    let image = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "abcd"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]});
    assert!(estimate_prompt_tokens(&image) >= 86);
    assert_eq!(estimate_prompt_tokens(&json!("garbage")), 0);
}

#[test]
fn base64_embeddings() {
    assert!(wants_base64_embeddings(
        &json!({"encoding_format": "base64"})
    ));
    assert!(!wants_base64_embeddings(
        &json!({"encoding_format": "float"})
    ));
    let mut resp = json!({"object": "list", "data": [
        {"object": "embedding", "index": 0, "embedding": [0.5, -1.0, 2.25]},
        {"object": "embedding", "index": 1, "embedding": "already"}
    ]});
    encode_embeddings_base64(&mut resp);
    let b = base64::engine::general_purpose::STANDARD
        .decode(resp["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let floats: Vec<f32> = b
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(floats, vec![0.5, -1.0, 2.25]);
    assert_eq!(resp["data"][1]["embedding"], "already");
}

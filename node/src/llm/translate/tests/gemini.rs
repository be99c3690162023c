//! Gateway → Gemini. Fixtures from <https://ai.google.dev/api/generate-content>,
//! <https://ai.google.dev/gemini-api/docs/function-calling> and
//! <https://ai.google.dev/api/embeddings>.

use serde_json::{json, Value};

use super::support::{collect, parse_sse, parse_sse_split, run};
use crate::llm::translate::gemini::{
    embeddings_request_to_gemini, embeddings_response_from_gemini, request_to_gemini,
    response_from_gemini, GeminiToOpenaiStream,
};
use crate::llm::translate::{TranslateError, Usage};

fn chat(messages: Value) -> Value {
    json!({"model": "gemini-public", "messages": messages})
}

#[test]
fn function_calling_request_matches_the_guide() {
    // The light-control example of the function-calling guide, in OpenAI form.
    let req = json!({
        "model": "g",
        "messages": [{"role": "user", "content": "Dim the lights so the room feels cozy and warm."}],
        "tools": [{"type": "function", "function": {
            "name": "set_light_values",
            "description": "Sets the brightness and color temperature of a light.",
            "parameters": {"type": "object", "properties": {
                "brightness": {"type": "integer", "description": "Light level from 0 to 100. Zero is off and 100 is full brightness"},
                "color_temp": {"type": "string", "enum": ["daylight", "cool", "warm"], "description": "Color temperature of the light fixture, which can be `daylight`, `cool` or `warm`."}
            }, "required": ["brightness", "color_temp"], "additionalProperties": false, "$schema": "http://json-schema.org/draft-07/schema#"}
        }}],
        "tool_choice": "auto"
    });
    let out = request_to_gemini(&req).unwrap();
    assert_eq!(
        out,
        json!({
            "contents": [{"role": "user", "parts": [{"text": "Dim the lights so the room feels cozy and warm."}]}],
            "tools": [{"functionDeclarations": [{
                "name": "set_light_values",
                "description": "Sets the brightness and color temperature of a light.",
                "parameters": {"type": "object", "properties": {
                    "brightness": {"type": "integer", "description": "Light level from 0 to 100. Zero is off and 100 is full brightness"},
                    "color_temp": {"type": "string", "enum": ["daylight", "cool", "warm"], "description": "Color temperature of the light fixture, which can be `daylight`, `cool` or `warm`."}
                }, "required": ["brightness", "color_temp"]}
            }]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}}
        })
    );
}

#[test]
fn multi_turn_with_tools_system_and_images() {
    let req = json!({
        "model": "g",
        "messages": [
            {"role": "system", "content": "You are a cat. Your name is Neko."},
            {"role": "user", "content": [
                {"type": "text", "text": "Tell me about this instrument"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/organ.PNG?size=2"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/noext"}}
            ]},
            {"role": "user", "content": "and the lights?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "set_light_values", "arguments": "{\"brightness\":25,\"color_temp\":\"warm\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"brightness\":25,\"colorTemperature\":\"warm\"}"},
            {"role": "tool", "tool_call_id": "call_2", "content": "12:00"},
            {"role": "assistant", "content": "Done."}
        ],
        "temperature": 0.7, "top_p": 0.9, "top_k": 20, "max_completion_tokens": 800, "stop": ["x", "y"], "n": 2,
        "presence_penalty": 0.1, "frequency_penalty": 0.2, "seed": 9, "parallel_tool_calls": false, "user": "u"
    });
    let out = request_to_gemini(&req).unwrap();
    assert_eq!(
        out["systemInstruction"],
        json!({"parts": [{"text": "You are a cat. Your name is Neko."}]})
    );
    assert_eq!(
        out["contents"],
        json!([
            {"role": "user", "parts": [
                {"text": "Tell me about this instrument"},
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
                {"fileData": {"fileUri": "https://example.com/organ.PNG?size=2", "mimeType": "image/png"}},
                {"fileData": {"fileUri": "https://example.com/noext"}},
                {"text": "and the lights?"}
            ]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "set_light_values", "args": {"brightness": 25, "color_temp": "warm"}}, "thoughtSignature": "skip_thought_signature_validator"},
                {"functionCall": {"name": "get_time", "args": {}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "set_light_values", "response": {"brightness": 25, "colorTemperature": "warm"}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "12:00"}}}
            ]},
            {"role": "model", "parts": [{"text": "Done."}]}
        ])
    );
    assert_eq!(
        out["generationConfig"],
        json!({
            "temperature": 0.7, "topP": 0.9, "topK": 20, "maxOutputTokens": 800, "stopSequences": ["x", "y"],
            "candidateCount": 2, "presencePenalty": 0.1, "frequencyPenalty": 0.2, "seed": 9
        })
    );
}

#[test]
fn tool_message_needs_a_known_call_id() {
    let req = chat(
        json!([{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "r"}]),
    );
    match request_to_gemini(&req) {
        Err(TranslateError::Invalid(m)) => {
            assert!(m.contains("nope") && m.contains("messages[1]"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tool_choice_variants() {
    let base = json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}]});
    for (choice, expected) in [
        (json!("none"), json!({"mode": "NONE"})),
        (json!("required"), json!({"mode": "ANY"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"mode": "ANY", "allowedFunctionNames": ["f"]}),
        ),
    ] {
        let mut req = base.clone();
        req["tool_choice"] = choice;
        let out = request_to_gemini(&req).unwrap();
        assert_eq!(out["toolConfig"]["functionCallingConfig"], expected);
        assert_eq!(
            out["tools"][0]["functionDeclarations"][0],
            json!({"name": "f"}),
            "no parameters: none sent"
        );
    }
}

#[test]
fn response_format_and_schema_sanitizing() {
    let mut req = chat(json!([{"role": "user", "content": "x"}]));
    req["response_format"] = json!({"type": "json_object"});
    assert_eq!(
        request_to_gemini(&req).unwrap()["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
    // A Pydantic-style schema: $defs/$ref, nullable unions, formats Gemini lacks.
    req["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "recipe", "strict": true, "schema": {
        "$defs": {"Ingredient": {"type": "object", "properties": {"name": {"type": "string"}, "grams": {"type": ["number", "null"]}}, "required": ["name"], "additionalProperties": false}},
        "type": "object",
        "properties": {
            "title": {"type": "string", "format": "uri", "default": "x"},
            "when": {"type": "string", "format": "date-time"},
            "ingredients": {"type": "array", "items": {"$ref": "#/$defs/Ingredient"}, "minItems": 1},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "kind": {"const": "dessert"},
            "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]}
        },
        "required": ["title", "ingredients"], "additionalProperties": false
    }}});
    let out = request_to_gemini(&req).unwrap();
    assert_eq!(
        out["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(
        out["generationConfig"]["responseSchema"],
        json!({
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "when": {"type": "string", "format": "date-time"},
                "ingredients": {"type": "array", "minItems": 1, "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "grams": {"type": "number", "nullable": true}}, "required": ["name"]}},
                "note": {"type": "string", "nullable": true},
                "kind": {"enum": ["dessert"]},
                "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]}
            },
            "required": ["title", "ingredients"]
        })
    );
}

#[test]
fn recursive_and_oversized_schemas_are_refused() {
    let mut req = chat(json!([{"role": "user", "content": "x"}]));
    // A tree whose children refer back to the root: inlining would never end.
    req["tools"] = json!([{"type": "function", "function": {"name": "t", "parameters": {
        "type": "object", "properties": {"left": {"$ref": "#"}, "right": {"$ref": "#"}}}}}]);
    assert!(
        matches!(request_to_gemini(&req), Err(TranslateError::Invalid(m)) if m.contains("tools[0].function.parameters"))
    );
    req["tools"] = json!([{"type": "function", "function": {"name": "t", "parameters": {
        "type": "object", "properties": {"x": {"$ref": "https://example.com/schema.json"}}}}}]);
    assert!(matches!(
        request_to_gemini(&req),
        Err(TranslateError::Unsupported { .. })
    ));
}

#[test]
fn every_unsupported_parameter_is_named() {
    for (param, value) in [
        ("logprobs", json!(true)),
        ("top_logprobs", json!(2)),
        ("logit_bias", json!({"1": 2})),
        ("audio", json!({"voice": "alloy"})),
        ("modalities", json!(["audio"])),
        ("prediction", json!({"type": "content"})),
        ("reasoning_effort", json!("low")),
        ("web_search_options", json!({})),
        ("functions", json!([])),
        ("function_call", json!("none")),
    ] {
        let mut req = chat(json!([{"role": "user", "content": "x"}]));
        req[param] = value;
        match request_to_gemini(&req) {
            Err(TranslateError::Unsupported { param: p, provider }) => {
                assert_eq!((p.as_str(), provider), (param, "gemini"))
            }
            other => panic!("{param}: {other:?}"),
        }
    }
    let req = chat(
        json!([{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}]),
    );
    assert!(
        matches!(request_to_gemini(&req), Err(TranslateError::Unsupported { param, .. }) if param == "messages[0].content[0].file.file_id")
    );
    let req = chat(json!([{"role": "system", "content": "only system"}]));
    assert!(matches!(
        request_to_gemini(&req),
        Err(TranslateError::Invalid(_))
    ));
}

#[test]
fn text_response() {
    // Response body of <https://ai.google.dev/api/generate-content#generatecontentresponse>.
    let resp = json!({
        "candidates": [{
            "content": {"parts": [{"text": "In a quaint little bakery..."}], "role": "model"},
            "finishReason": "STOP", "index": 0,
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
        }],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 10, "totalTokenCount": 18},
        "modelVersion": "gemini-2.0-flash",
        "responseId": "tTCwacuEBMvnitYP06qsgQY"
    });
    let out = response_from_gemini(&resp, "gemini-public").unwrap();
    assert_eq!(out["id"], "chatcmpl-tTCwacuEBMvnitYP06qsgQY");
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "gemini-public");
    assert_eq!(
        out["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "In a quaint little bakery...", "refusal": null}, "logprobs": null, "finish_reason": "stop"}])
    );
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 10, "total_tokens": 18, "prompt_tokens_details": {"cached_tokens": 0}})
    );
}

#[test]
fn function_call_response() {
    // Response of the function-calling guide.
    let resp = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "set_light_values", "args": {"brightness": 25, "color_temp": "warm"}}},
        {"functionCall": {"name": "get_time", "args": {}}},
        {"functionCall": {"name": "with_id", "id": "fc-7"}}
    ]}, "finishReason": "STOP"}]});
    let out = response_from_gemini(&resp, "g").unwrap();
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0]["function"]["name"], "set_light_values");
    assert_eq!(
        serde_json::from_str::<Value>(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"brightness": 25, "color_temp": "warm"})
    );
    assert_eq!(calls[1]["function"]["arguments"], "{}");
    let (a, b) = (
        calls[0]["id"].as_str().unwrap(),
        calls[1]["id"].as_str().unwrap(),
    );
    assert!(a.starts_with("call_") && a.len() == 29 && a != b, "{a} {b}");
    assert_eq!(calls[2]["id"], "fc-7");
}

#[test]
fn finish_reasons_candidates_and_usage_details() {
    for (reason, finish) in [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
    ] {
        let resp = json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]});
        assert_eq!(
            response_from_gemini(&resp, "g").unwrap()["choices"][0]["finish_reason"],
            finish,
            "{reason}"
        );
    }
    let resp = json!({
        "candidates": [
            {"index": 0, "content": {"parts": [{"text": "thinking...", "thought": true}, {"text": "A"}]}, "finishReason": "STOP"},
            {"index": 1, "content": {"parts": [{"text": "B"}]}, "finishReason": "MAX_TOKENS"}
        ],
        "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 20, "thoughtsTokenCount": 5, "totalTokenCount": 125}
    });
    let out = response_from_gemini(&resp, "g").unwrap();
    assert_eq!(
        out["choices"][0]["message"]["content"], "A",
        "thought summaries are skipped"
    );
    assert_eq!(out["choices"][1]["index"], 1);
    assert_eq!(out["choices"][1]["finish_reason"], "length");
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 100, "completion_tokens": 25, "total_tokens": 125,
        "prompt_tokens_details": {"cached_tokens": 60}, "completion_tokens_details": {"reasoning_tokens": 5}})
    );
}

#[test]
fn blocked_prompts_and_errors() {
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}});
    let out = response_from_gemini(&blocked, "g").unwrap();
    assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(out["choices"][0]["message"]["content"], "");
    let err = json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}});
    assert!(
        matches!(response_from_gemini(&err, "g"), Err(TranslateError::Invalid(m)) if m.contains("API key not valid"))
    );
    assert!(response_from_gemini(&json!({}), "g").is_err());
}

/// A streamed answer in the shape `streamGenerateContent?alt=sse` sends: text pieces,
/// usage on every event, the finish reason and final counts on the last.
const TEXT_STREAM: &str = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello!\"}],\"role\": \"model\"}}],\"usageMetadata\": {\"promptTokenCount\": 1,\"totalTokenCount\": 1},\"modelVersion\": \"gemini-2.0-flash\",\"responseId\": \"tTCwacuEBMvnitYP06qsgQY\"}\r\n\r\ndata: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" How can I help you today\"}],\"role\": \"model\"}}],\"usageMetadata\": {\"promptTokenCount\": 1,\"totalTokenCount\": 1},\"responseId\": \"tTCwacuEBMvnitYP06qsgQY\"}\r\n\r\ndata: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"?\"}],\"role\": \"model\"},\"finishReason\": \"STOP\"}],\"usageMetadata\": {\"promptTokenCount\": 1,\"candidatesTokenCount\": 9,\"totalTokenCount\": 10},\"responseId\": \"tTCwacuEBMvnitYP06qsgQY\"}\r\n\r\n";

#[test]
fn stream_of_text() {
    let mut s = GeminiToOpenaiStream::new("gemini-public");
    let chunks = run(&parse_sse(TEXT_STREAM), |e| s.on_event(e)).unwrap();
    let c = collect(&chunks);
    assert!(c.role_first);
    assert_eq!(c.content, "Hello! How can I help you today?");
    assert_eq!(c.finish.as_deref(), Some("stop"));
    assert_eq!(
        c.usage,
        Some(Usage {
            input: 1,
            output: 9,
            cached_input: 0
        })
    );
    assert_eq!(c.after_usage, 0);
    assert!(s.finish().is_empty(), "the usage chunk was already sent");
    assert_eq!(
        s.usage(),
        Usage {
            input: 1,
            output: 9,
            cached_input: 0
        }
    );
    assert!(
        chunks
            .iter()
            .all(|ch| ch["id"] == "chatcmpl-tTCwacuEBMvnitYP06qsgQY"
                && ch["model"] == "gemini-public")
    );
}

#[test]
fn stream_split_anywhere() {
    let whole = {
        let mut s = GeminiToOpenaiStream::new("g");
        collect(&run(&parse_sse(TEXT_STREAM), |e| s.on_event(e)).unwrap())
    };
    let bytes = TEXT_STREAM.as_bytes();
    for cut in 0..=bytes.len() {
        let mut s = GeminiToOpenaiStream::new("g");
        assert_eq!(
            collect(&run(&parse_sse_split(bytes, &[cut]), |e| s.on_event(e)).unwrap()),
            whole,
            "cut at {cut}"
        );
    }
}

#[test]
fn stream_with_function_calls() {
    let raw = "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Setting lights.\"}]}}]}\n\n\
data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"set_light_values\",\"args\":{\"brightness\":25}}}]}}]}\n\n\
data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"get_time\",\"args\":{}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":30,\"candidatesTokenCount\":12,\"totalTokenCount\":42}}\n\n";
    let mut s = GeminiToOpenaiStream::new("g");
    let chunks = run(&parse_sse(raw), |e| s.on_event(e)).unwrap();
    let c = collect(&chunks);
    assert_eq!(c.content, "Setting lights.");
    assert_eq!(c.tool_calls.len(), 2);
    assert_eq!(c.tool_calls[0].1, "set_light_values");
    assert_eq!(
        serde_json::from_str::<Value>(&c.tool_calls[0].2).unwrap(),
        json!({"brightness": 25})
    );
    assert_eq!(
        (c.tool_calls[1].1.as_str(), c.tool_calls[1].2.as_str()),
        ("get_time", "{}")
    );
    assert!(c.tool_calls[0].0.starts_with("call_"));
    assert_eq!(c.finish.as_deref(), Some("tool_calls"));
    assert_eq!(
        c.usage,
        Some(Usage {
            input: 30,
            output: 12,
            cached_input: 0
        })
    );
}

#[test]
fn stream_without_finish_gets_usage_from_finish() {
    let raw = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"cut\"}]}}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":1}}\n\n";
    let mut s = GeminiToOpenaiStream::new("g");
    let mut chunks = run(&parse_sse(raw), |e| s.on_event(e)).unwrap();
    assert!(collect(&chunks).usage.is_none());
    chunks.extend(s.finish());
    assert_eq!(
        collect(&chunks).usage,
        Some(Usage {
            input: 3,
            output: 1,
            cached_input: 0
        })
    );
    assert!(s.finish().is_empty());
}

#[test]
fn stream_blocked_prompt_and_errors() {
    let mut s = GeminiToOpenaiStream::new("g");
    let blocked = parse_sse("data: {\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\"},\"usageMetadata\":{\"promptTokenCount\":4}}\n\n");
    let c = collect(&run(&blocked, |e| s.on_event(e)).unwrap());
    assert_eq!(c.finish.as_deref(), Some("content_filter"));
    assert_eq!(
        c.usage,
        Some(Usage {
            input: 4,
            output: 0,
            cached_input: 0
        })
    );
    let mut s = GeminiToOpenaiStream::new("g");
    let err = parse_sse("data: {\"error\":{\"code\":429,\"message\":\"Resource has been exhausted\",\"status\":\"RESOURCE_EXHAUSTED\"}}\n\n");
    assert!(
        matches!(s.on_event(&err[0]), Err(TranslateError::Invalid(m)) if m.contains("exhausted"))
    );
    assert!(s.on_event(&parse_sse("data: [1,2]\n\n")[0]).is_err());
    assert!(s
        .on_event(&parse_sse("data: {\"candidates\":{}}\n\n")[0])
        .is_err());
}

#[test]
fn embeddings_request() {
    let single = json!({"model": "text-embedding", "input": "The food was delicious and the waiter...", "encoding_format": "float"});
    assert_eq!(
        embeddings_request_to_gemini(&single, "gemini-embedding-001").unwrap(),
        json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "The food was delicious and the waiter..."}]}}
        ]})
    );
    let batch = json!({"model": "e", "input": ["a", "b"], "dimensions": 768});
    let out = embeddings_request_to_gemini(&batch, "models/text-embedding-004").unwrap();
    assert_eq!(out["requests"].as_array().unwrap().len(), 2);
    assert_eq!(
        out["requests"][1],
        json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 768})
    );
    assert!(
        matches!(embeddings_request_to_gemini(&json!({"input": [[1, 2, 3]]}), "m"), Err(TranslateError::Unsupported { param, .. }) if param.starts_with("input"))
    );
    assert!(matches!(
        embeddings_request_to_gemini(&json!({"input": [1, 2]}), "m"),
        Err(TranslateError::Unsupported { .. })
    ));
    for bad in [
        json!({"input": []}),
        json!({}),
        json!({"input": [null]}),
        json!({"input": "x", "dimensions": 0}),
        json!({"input": "x", "encoding_format": "hex"}),
    ] {
        assert!(
            matches!(
                embeddings_request_to_gemini(&bad, "m"),
                Err(TranslateError::Invalid(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn embeddings_response() {
    // batchEmbedContents response: one ContentEmbedding per request, in order.
    let resp =
        json!({"embeddings": [{"values": [0.013168523, -0.008711934]}, {"values": [0.5, 1]}]});
    let out = embeddings_response_from_gemini(&resp, "embed-public", 12).unwrap();
    assert_eq!(
        out,
        json!({
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": [0.013168523, -0.008711934]},
                {"object": "embedding", "index": 1, "embedding": [0.5, 1]}
            ],
            "model": "embed-public",
            "usage": {"prompt_tokens": 12, "total_tokens": 12}
        })
    );
    for bad in [
        json!({}),
        json!({"embeddings": [{"values": ["x"]}]}),
        json!({"embeddings": [{}]}),
        json!({"error": {"message": "quota"}}),
    ] {
        assert!(
            embeddings_response_from_gemini(&bad, "m", 1).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn thought_signatures_round_trip() {
    // A Gemini 3 function call carries a signature that must come back next turn.
    let resp = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "check_flight", "args": {"flight": "AA100"}}, "thoughtSignature": "CiQBcsjafE+Q=="}
    ]}, "finishReason": "STOP"}]});
    let out = response_from_gemini(&resp, "g").unwrap();
    let call = out["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(
        call["extra_content"],
        json!({"google": {"thought_signature": "CiQBcsjafE+Q=="}})
    );
    let next = json!({"model": "g", "messages": [
        {"role": "user", "content": "Check flight AA100"},
        {"role": "assistant", "content": null, "tool_calls": [call.clone()]},
        {"role": "tool", "tool_call_id": call["id"], "content": "{\"status\":\"delayed\"}"}
    ]});
    let req = request_to_gemini(&next).unwrap();
    assert_eq!(
        req["contents"][1]["parts"][0]["thoughtSignature"],
        "CiQBcsjafE+Q=="
    );
    assert_eq!(
        req["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "check_flight", "response": {"status": "delayed"}})
    );
    // Streamed calls carry it too.
    let raw = format!("data: {}\n\n", resp);
    let mut s = GeminiToOpenaiStream::new("g");
    let chunks = run(&parse_sse(&raw), |e| s.on_event(e)).unwrap();
    let delta = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0).cloned())
        .unwrap();
    assert_eq!(
        delta["extra_content"]["google"]["thought_signature"],
        "CiQBcsjafE+Q=="
    );
    assert_eq!(delta["index"], 0);
}

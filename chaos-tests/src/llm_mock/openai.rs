//! OpenAI (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`) and Azure OpenAI
//! (`/openai/deployments/{deployment}/...?api-version=`), which share the body formats;
//! Azure differs in auth (`api-key`), paths, its `{"error":{"code","message"}}` errors for
//! auth, routing and rate limits, and content-filter annotations (streams open with a
//! `prompt_filter_results` chunk whose `choices` is empty).

use hyper::Method;
use serde_json::{json, Value};

use super::server::{sse_data, Call, Reply};
use super::text::{self, Output, DEFAULT_DIMENSIONS};
use super::{Flavor, Shared};

const SSE: &str = "text/event-stream; charset=utf-8";

enum Endpoint<'a> {
    Chat(Option<&'a str>),
    Embeddings(Option<&'a str>),
    Models,
    Model(&'a str),
}

pub(crate) fn handle(shared: &Shared, call: &Call) -> Reply {
    let azure = shared.opts.flavor == Flavor::Azure;
    let endpoint = if azure {
        azure_route(call)
    } else {
        openai_route(call)
    };
    let Some(endpoint) = endpoint else {
        return not_found(azure, call);
    };
    if let Some(denied) = check_auth(shared, call, azure) {
        return denied;
    }
    let reply = match endpoint {
        Endpoint::Chat(deployment) => chat(shared, call, azure, deployment),
        Endpoint::Embeddings(deployment) => embeddings(call, deployment),
        Endpoint::Models => json_ok(json!({
            "object": "list",
            "data": [model_object("gpt-4o-mini"), model_object("text-embedding-3-small")],
        })),
        Endpoint::Model(id) => json_ok(model_object(id)),
    };
    reply.header("x-request-id", format!("req_mock{}", shared.next_seq()))
}

fn openai_route(call: &Call) -> Option<Endpoint<'_>> {
    let post = call.method == Method::POST;
    let get = call.method == Method::GET;
    match call.path.as_str() {
        "/v1/chat/completions" if post => Some(Endpoint::Chat(None)),
        "/v1/embeddings" if post => Some(Endpoint::Embeddings(None)),
        "/v1/models" if get => Some(Endpoint::Models),
        path if get => path
            .strip_prefix("/v1/models/")
            .filter(|id| !id.is_empty())
            .map(Endpoint::Model),
        _ => None,
    }
}

fn azure_route(call: &Call) -> Option<Endpoint<'_>> {
    // Without api-version, Azure answers 404 "Resource not found".
    call.query_param("api-version").filter(|v| !v.is_empty())?;
    if call.method != Method::POST {
        return None;
    }
    let rest = call.path.strip_prefix("/openai/deployments/")?;
    let (deployment, op) = rest.split_once('/')?;
    match op {
        "chat/completions" if !deployment.is_empty() => Some(Endpoint::Chat(Some(deployment))),
        "embeddings" if !deployment.is_empty() => Some(Endpoint::Embeddings(Some(deployment))),
        _ => None,
    }
}

fn json_ok(body: Value) -> Reply {
    Reply::json(200, body)
}

/// OpenAI's error object.
pub(crate) fn error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Reply {
    Reply::json(
        status,
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

/// Azure's own error object (auth, routing, rate limits).
fn azure_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": {"code": code, "message": message}}))
}

fn not_found(azure: bool, call: &Call) -> Reply {
    if azure {
        azure_error(404, "404", "Resource not found")
    } else {
        let message = format!("Invalid URL ({} {})", call.method, call.path);
        error(404, &message, "invalid_request_error", None)
    }
}

fn check_auth(shared: &Shared, call: &Call, azure: bool) -> Option<Reply> {
    let expected = shared.opts.api_key.as_deref();
    if azure {
        let ok = match (call.header("api-key"), expected) {
            (Some(got), Some(want)) => got == want,
            (Some(got), None) => !got.is_empty(),
            (None, _) => false,
        };
        let message = "Access denied due to invalid subscription key or wrong API endpoint. \
            Make sure to provide a valid key for an active subscription and use a correct \
            regional API endpoint for your resource.";
        return (!ok).then(|| azure_error(401, "401", message));
    }
    let got = call
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty());
    match (got, expected) {
        (None, _) => Some(error(
            401,
            "You didn't provide an API key. You need to provide your API key in an \
             Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
            None,
        )),
        (Some(got), Some(want)) if got != want => {
            let shown: String = got.chars().take(3).collect();
            let tail: String = got
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .iter()
                .rev()
                .collect();
            let message = format!(
                "Incorrect API key provided: {shown}****{tail}. You can find your API key at \
                 https://platform.openai.com/account/api-keys."
            );
            Some(error(
                401,
                &message,
                "invalid_request_error",
                Some("invalid_api_key"),
            ))
        }
        _ => None,
    }
}

/// The answer to an injected `Fault::Status`.
pub(crate) fn fault(azure: bool, status: u16, retry_after: Option<u64>) -> Reply {
    if azure && status == 429 {
        let secs = retry_after.unwrap_or(1);
        let message = format!(
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version \
             2024-10-21 have exceeded call rate limit of your current OpenAI S0 pricing tier. \
             Please retry after {secs} seconds."
        );
        return azure_error(429, "429", &message);
    }
    match status {
        429 => error(
            429,
            "Rate limit reached for requests (mock fault). Please try again later.",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        500..=599 => error(
            status,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        _ => error(status, "Mock fault.", "invalid_request_error", None),
    }
}

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "openai"})
}

fn bad_request(message: &str, param: Option<&str>, code: Option<&str>) -> Reply {
    Reply::json(
        400,
        json!({"error": {"message": message, "type": "invalid_request_error",
            "param": param, "code": code}}),
    )
}

fn safe_filters() -> Value {
    let safe = json!({"filtered": false, "severity": "safe"});
    json!({"hate": safe, "self_harm": safe, "sexual": safe, "violence": safe})
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    })
}

/// The tool to call, if any: the one forced by `tool_choice`, else the first; none when
/// `tool_choice` is `"none"`, or automatic and the last message is a tool result.
fn pick_tool<'a>(body: &'a Value, messages: &[Value]) -> Option<(&'a str, &'a Value)> {
    let tools = body.get("tools")?.as_array()?;
    let choice = body.get("tool_choice").unwrap_or(&Value::Null);
    let forced = choice
        .pointer("/function/name")
        .or_else(|| choice.get("name"))
        .and_then(Value::as_str);
    let after_tool = matches!(
        messages
            .last()
            .and_then(|m| m.get("role"))
            .and_then(Value::as_str),
        Some("tool" | "function")
    );
    match choice.as_str() {
        Some("none") => return None,
        Some("required") => {}
        _ if forced.is_none() && after_tool => return None,
        _ => {}
    }
    let name_of = |t: &'a Value| t.pointer("/function/name").and_then(Value::as_str);
    let tool = match forced {
        Some(name) => tools.iter().find(|t| name_of(t) == Some(name)),
        None => tools.iter().find(|t| name_of(t).is_some()),
    }?;
    let schema = tool.pointer("/function/parameters").unwrap_or(&Value::Null);
    Some((name_of(tool)?, schema))
}

fn chat(shared: &Shared, call: &Call, azure: bool, deployment: Option<&str>) -> Reply {
    let Some(body) = call.object() else {
        return bad_request(
            "We could not parse the JSON body of your request. The OpenAI API expects a \
             JSON payload.",
            None,
            None,
        );
    };
    let model = match (body.get("model").and_then(Value::as_str), deployment) {
        (Some(model), _) => model,
        (None, Some(deployment)) => deployment,
        (None, None) => return bad_request("you must provide a model parameter", None, None),
    };
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return bad_request(
            "Missing required parameter: 'messages'.",
            Some("messages"),
            Some("missing_required_parameter"),
        );
    };
    let input: u64 = messages
        .iter()
        .filter_map(|m| m.get("content"))
        .map(text::content_words)
        .sum();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(text::content_joined)
        .unwrap_or_default();
    let max_tokens = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64);
    let out = text::output(
        shared.opts.reply.as_deref(),
        &last_user,
        max_tokens,
        pick_tool(body, messages),
    );
    let id = format!("chatcmpl-mock{}", shared.next_seq());
    let call_id = format!("call_mock{}", shared.next_seq());
    let finish = match &out {
        Output::Tool { .. } => "tool_calls",
        Output::Text { cut: true, .. } => "length",
        Output::Text { .. } => "stop",
    };
    let usage = usage(input, out.tokens());
    let created = text::unix_now();
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = body.pointer("/stream_options/include_usage") == Some(&json!(true));
        let chunk = |choices: Value| {
            let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created,
                "model": model, "system_fingerprint": "fp_mock", "choices": choices});
            if include_usage {
                c["usage"] = Value::Null;
            }
            c
        };
        let choice = |delta: Value, finish: Option<&str>| {
            let mut c = json!([{"index": 0, "delta": delta, "logprobs": null,
                "finish_reason": finish}]);
            if azure {
                c[0]["content_filter_results"] = safe_filters();
            }
            c
        };
        let mut chunks = Vec::new();
        if azure {
            chunks.push(sse_data(
                &json!({"choices": [], "created": 0, "id": "", "model": "",
                "object": "", "prompt_filter_results": [{"prompt_index": 0,
                "content_filter_results": safe_filters()}]}),
            ));
        }
        let first = match &out {
            Output::Tool { name, .. } => json!({"role": "assistant", "content": null,
                "tool_calls": [{"index": 0, "id": call_id, "type": "function",
                    "function": {"name": name, "arguments": ""}}], "refusal": null}),
            Output::Text { .. } => json!({"role": "assistant", "content": "", "refusal": null}),
        };
        chunks.push(sse_data(&chunk(choice(first, None))));
        for piece in out.pieces() {
            let delta = match &out {
                Output::Tool { .. } => {
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                }
                Output::Text { .. } => json!({"content": piece}),
            };
            chunks.push(sse_data(&chunk(choice(delta, None))));
        }
        chunks.push(sse_data(&chunk(choice(json!({}), Some(finish)))));
        if include_usage {
            let mut last = chunk(json!([]));
            last["usage"] = usage;
            chunks.push(sse_data(&last));
        }
        chunks.push("data: [DONE]\n\n".into());
        return Reply::Stream {
            content_type: SSE,
            headers: Vec::new(),
            chunks,
        };
    }
    let message = match &out {
        Output::Tool { name, args } => json!({"role": "assistant", "content": null,
            "tool_calls": [{"id": call_id, "type": "function",
                "function": {"name": name, "arguments": args}}],
            "refusal": null, "annotations": []}),
        Output::Text { text, .. } => {
            json!({"role": "assistant", "content": text, "refusal": null, "annotations": []})
        }
    };
    let mut choice = json!({"index": 0, "message": message, "logprobs": null,
        "finish_reason": finish});
    let mut res = json!({"id": id, "object": "chat.completion", "created": created,
        "model": model, "choices": [], "usage": usage, "service_tier": "default",
        "system_fingerprint": "fp_mock"});
    if azure {
        choice["content_filter_results"] = safe_filters();
        res["prompt_filter_results"] =
            json!([{"prompt_index": 0, "content_filter_results": safe_filters()}]);
    }
    res["choices"] = json!([choice]);
    json_ok(res)
}

/// `(text to hash, tokens)` of each input: a string, strings, a token array, token arrays.
fn embedding_inputs(input: &Value) -> Option<Vec<(String, u64)>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some((s.clone(), text::words(s))),
        Value::Array(tokens) if tokens.iter().all(Value::is_u64) => {
            Some((v.to_string(), tokens.len() as u64))
        }
        _ => None,
    };
    match input {
        Value::String(_) => Some(vec![one(input)?]),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_u64) => {
            Some(vec![one(input)?])
        }
        Value::Array(items) if !items.is_empty() => items.iter().map(one).collect(),
        _ => None,
    }
}

fn embeddings(call: &Call, deployment: Option<&str>) -> Reply {
    let Some(body) = call.object() else {
        return bad_request(
            "We could not parse the JSON body of your request.",
            None,
            None,
        );
    };
    let model = match (body.get("model").and_then(Value::as_str), deployment) {
        (Some(model), _) => model,
        (None, Some(deployment)) => deployment,
        (None, None) => return bad_request("you must provide a model parameter", None, None),
    };
    let Some(inputs) = body.get("input").and_then(embedding_inputs) else {
        return bad_request(
            "'input' is a required property and must be a non-empty string or array",
            Some("input"),
            None,
        );
    };
    let dims = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_DIMENSIONS, |d| d.clamp(1, 4096) as usize);
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let tokens: u64 = inputs.iter().map(|(_, t)| t).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, (input, _))| {
            let vector = text::embedding(input, dims);
            let embedding = if base64 {
                Value::from(text::f32_base64(&vector))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json_ok(json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
}

//! Anthropic Messages API: `POST /v1/messages` (message object, or the named SSE events
//! `message_start`, `content_block_start`, `ping`, `content_block_delta`,
//! `content_block_stop`, `message_delta`, `message_stop`), `POST /v1/messages/count_tokens`,
//! `GET /v1/models[/{id}]`. Requires `x-api-key` and `anthropic-version`; errors are
//! `{"type":"error","error":{"type","message"},"request_id"}`.

use hyper::Method;
use serde_json::{json, Value};

use super::server::{sse_event, Call, Reply};
use super::text::{self, Output};
use super::Shared;

const SSE: &str = "text/event-stream; charset=utf-8";

pub(crate) fn handle(shared: &Shared, call: &Call) -> Reply {
    let post = call.method == Method::POST;
    let get = call.method == Method::GET;
    let path = call.path.as_str();
    let known = matches!(
        (path, post, get),
        ("/v1/messages", true, _)
            | ("/v1/messages/count_tokens", true, _)
            | ("/v1/models", _, true)
    ) || (get
        && path
            .strip_prefix("/v1/models/")
            .is_some_and(|id| !id.is_empty()));
    if !known {
        return error(shared, 404, "not_found_error", "Not found");
    }
    if let Some(denied) = check_headers(shared, call) {
        return denied;
    }
    let request_id = format!("req_mock{}", shared.next_seq());
    let reply = match path {
        "/v1/messages" => messages(shared, call, false),
        "/v1/messages/count_tokens" => messages(shared, call, true),
        "/v1/models" => Reply::json(
            200,
            json!({"data": [model_object("claude-sonnet-4-5")], "has_more": false,
                "first_id": "claude-sonnet-4-5", "last_id": "claude-sonnet-4-5"}),
        ),
        _ => Reply::json(200, model_object(&path["/v1/models/".len()..])),
    };
    reply.header("request-id", request_id)
}

fn model_object(id: &str) -> Value {
    json!({"type": "model", "id": id, "display_name": id,
        "created_at": "2025-01-01T00:00:00Z"})
}

/// Anthropic's error object.
pub(crate) fn error(shared: &Shared, status: u16, kind: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"type": "error", "error": {"type": kind, "message": message},
            "request_id": format!("req_mock{}", shared.next_seq())}),
    )
}

/// The answer to an injected `Fault::Status`, typed as the errors reference lists them.
pub(crate) fn fault(shared: &Shared, status: u16) -> Reply {
    let (kind, message) = match status {
        400 => ("invalid_request_error", "Mock fault."),
        401 => ("authentication_error", "invalid x-api-key"),
        403 => (
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => ("not_found_error", "Not found"),
        413 => (
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        ),
        429 => (
            "rate_limit_error",
            "This request would exceed the rate limit for your organization (mock fault).",
        ),
        529 => ("overloaded_error", "Overloaded"),
        500..=599 => ("api_error", "Internal server error"),
        _ => ("invalid_request_error", "Mock fault."),
    };
    error(shared, status, kind, message)
}

fn check_headers(shared: &Shared, call: &Call) -> Option<Reply> {
    match (call.header("x-api-key"), shared.opts.api_key.as_deref()) {
        (None, _) | (Some(""), _) => {
            return Some(error(
                shared,
                401,
                "authentication_error",
                "x-api-key header is required",
            ))
        }
        (Some(got), Some(want)) if got != want => {
            return Some(error(
                shared,
                401,
                "authentication_error",
                "invalid x-api-key",
            ))
        }
        _ => {}
    }
    if call.header("anthropic-version").is_none() {
        return Some(error(
            shared,
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        ));
    }
    None
}

/// The tool to call: the one named by `tool_choice: {"type":"tool"}`, else the first;
/// none for `{"type":"none"}`, or automatic choice after a `tool_result`.
fn pick_tool<'a>(body: &'a Value, messages: &[Value]) -> Option<(&'a str, &'a Value)> {
    let tools = body.get("tools")?.as_array()?;
    let choice = body.get("tool_choice").unwrap_or(&Value::Null);
    let kind = choice.get("type").and_then(Value::as_str).unwrap_or("auto");
    let forced = (kind == "tool")
        .then(|| choice.get("name").and_then(Value::as_str))
        .flatten();
    if kind == "none" || (kind == "auto" && after_tool_result(messages)) {
        return None;
    }
    let tool = match forced {
        Some(name) => tools
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(name)),
        None => tools.iter().find(|t| t.get("name").is_some()),
    }?;
    let schema = tool.get("input_schema").unwrap_or(&Value::Null);
    Some((tool.get("name")?.as_str()?, schema))
}

/// The last message is the user's and carries a `tool_result` block.
fn after_tool_result(messages: &[Value]) -> bool {
    let Some(last) = messages.last() else {
        return false;
    };
    last.get("role").and_then(Value::as_str) == Some("user")
        && last
            .get("content")
            .and_then(Value::as_array)
            .is_some_and(|blocks| {
                blocks
                    .iter()
                    .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            })
}

fn invalid(shared: &Shared, message: &str) -> Reply {
    error(shared, 400, "invalid_request_error", message)
}

fn messages(shared: &Shared, call: &Call, count_only: bool) -> Reply {
    let Some(body) = call.object() else {
        return invalid(
            shared,
            "There was an issue with the request body: not valid JSON",
        );
    };
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return invalid(shared, "model: Field required");
    };
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return invalid(shared, "messages: Field required");
    };
    let system = body.get("system").map_or(0, text::content_words);
    let input = system
        + messages
            .iter()
            .filter_map(|m| m.get("content"))
            .map(text::content_words)
            .sum::<u64>();
    if count_only {
        return Reply::json(200, json!({"input_tokens": input}));
    }
    let Some(max_tokens) = body.get("max_tokens").and_then(Value::as_u64) else {
        return invalid(shared, "max_tokens: Field required");
    };
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(text::content_joined)
        .unwrap_or_default();
    let out = text::output(
        shared.opts.reply.as_deref(),
        &last_user,
        Some(max_tokens),
        pick_tool(body, messages),
    );
    let id = format!("msg_mock{}", shared.next_seq());
    let tool_id = format!("toolu_mock{}", shared.next_seq());
    let stop = match &out {
        Output::Tool { .. } => "tool_use",
        Output::Text { cut: true, .. } => "max_tokens",
        Output::Text { .. } => "end_turn",
    };
    let usage = |output: u64| {
        json!({"input_tokens": input, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "output_tokens": output,
            "service_tier": "standard"})
    };
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        let block = match &out {
            Output::Tool { name, args } => json!({"type": "tool_use", "id": tool_id,
                "name": name, "input": serde_json::from_str::<Value>(args).unwrap_or_default()}),
            Output::Text { text, .. } => json!({"type": "text", "text": text}),
        };
        return Reply::json(
            200,
            json!({"id": id, "type": "message", "role": "assistant", "model": model,
                "content": [block], "stop_reason": stop, "stop_sequence": null,
                "usage": usage(out.tokens())}),
        );
    }
    let mut chunks = vec![sse_event(
        "message_start",
        &json!({"type": "message_start", "message": {"id": id, "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": usage(1)}}),
    )];
    let start_block = match &out {
        Output::Tool { name, .. } => {
            json!({"type": "tool_use", "id": tool_id, "name": name, "input": {}})
        }
        Output::Text { .. } => json!({"type": "text", "text": ""}),
    };
    chunks.push(sse_event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": 0, "content_block": start_block}),
    ));
    chunks.push(sse_event("ping", &json!({"type": "ping"})));
    for piece in out.pieces() {
        let delta = match &out {
            Output::Tool { .. } => json!({"type": "input_json_delta", "partial_json": piece}),
            Output::Text { .. } => json!({"type": "text_delta", "text": piece}),
        };
        chunks.push(sse_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ));
    }
    chunks.push(sse_event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    chunks.push(sse_event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": stop,
            "stop_sequence": null}, "usage": {"output_tokens": out.tokens()}}),
    ));
    chunks.push(sse_event("message_stop", &json!({"type": "message_stop"})));
    Reply::Stream {
        content_type: SSE,
        headers: Vec::new(),
        chunks,
    }
}

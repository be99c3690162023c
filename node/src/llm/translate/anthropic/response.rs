//! Non-streaming responses: Anthropic message ↔ OpenAI `chat.completion`.

use serde_json::{json, Value};

use super::{finish_reason, stop_reason, usage_from_anthropic, usage_to_anthropic};
use crate::llm::translate::util::{
    get_str, invalid, now_unix, openai_usage_json, parse_arguments, random_id, to_json_string,
};
use crate::llm::translate::{openai_usage, TranslateError};

/// An Anthropic message (`"type": "message"`) → `chat.completion` under `public_model`:
/// text blocks concatenated, `tool_use` blocks → `tool_calls` (input serialized as the
/// arguments string), `stop_reason` → `finish_reason`, usage with cache reads as
/// `prompt_tokens_details.cached_tokens`. Thinking blocks are not carried over.
pub fn response_from_anthropic(resp: &Value, public_model: &str) -> Result<Value, TranslateError> {
    if !resp.is_object() {
        return Err(invalid("anthropic response is not a JSON object"));
    }
    if get_str(resp, "type") == Some("error") {
        let e = resp.get("error").unwrap_or(&Value::Null);
        return Err(invalid(format!(
            "anthropic error ({}): {}",
            get_str(e, "type").unwrap_or("unknown"),
            get_str(e, "message").unwrap_or("no message")
        )));
    }
    let blocks = resp
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("anthropic response has no `content` array"))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        match get_str(b, "type") {
            Some("text") => {
                text.push_str(get_str(b, "text").ok_or_else(|| {
                    invalid(format!("anthropic content[{i}].text is not a string"))
                })?)
            }
            Some("tool_use") => {
                let id = get_str(b, "id")
                    .ok_or_else(|| invalid(format!("anthropic content[{i}].id is not a string")))?;
                let name = get_str(b, "name").ok_or_else(|| {
                    invalid(format!("anthropic content[{i}].name is not a string"))
                })?;
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": to_json_string(&input)},
                }));
            }
            Some(_) => {} // thinking, redacted_thinking, server tool blocks
            None => return Err(invalid(format!("anthropic content[{i}] has no type"))),
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let usage = usage_from_anthropic(resp.get("usage").unwrap_or(&Value::Null));
    let id = get_str(resp, "id")
        .map_or_else(|| random_id("chatcmpl-", 24), |id| format!("chatcmpl-{id}"));
    Ok(json!({
        "id": id,
        "object": "chat.completion",
        "created": now_unix(),
        "model": public_model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(get_str(resp, "stop_reason")),
        }],
        "usage": openai_usage_json(usage),
    }))
}

/// A `chat.completion` → Anthropic message for an Anthropic-format client: the first
/// choice's text (and refusal) → a text block, `tool_calls` → `tool_use` blocks
/// (arguments parsed; invalid JSON from the model is `Invalid`), `finish_reason` →
/// `stop_reason`, usage → `input_tokens` (without cache reads) / `output_tokens`.
pub fn response_to_anthropic(openai_resp: &Value) -> Result<Value, TranslateError> {
    if !openai_resp.is_object() {
        return Err(invalid("response is not a JSON object"));
    }
    let choice = openai_resp
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| invalid("response has no choices"))?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| invalid("response choice has no message"))?;
    let mut content = Vec::new();
    let mut text = match message.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| get_str(p, "text").or_else(|| get_str(p, "refusal")))
            .collect(),
        Some(_) => return Err(invalid("response message content is not a string")),
    };
    if let Some(r) = get_str(message, "refusal") {
        text.push_str(r);
    }
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for (i, call) in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = call.get("function").unwrap_or(&Value::Null);
        let name = get_str(f, "name")
            .ok_or_else(|| invalid(format!("tool_calls[{i}].function.name is missing")))?;
        let input = parse_arguments(
            f.get("arguments"),
            &format!("tool_calls[{i}].function.arguments"),
        )?;
        let id = get_str(call, "id").map_or_else(|| random_id("toolu_", 24), str::to_string);
        content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    let usage = openai_usage(openai_resp).unwrap_or_default();
    let refused = message.get("refusal").is_some_and(Value::is_string);
    let finish = get_str(choice, "finish_reason");
    Ok(json!({
        "id": random_id("msg_", 24),
        "type": "message",
        "role": "assistant",
        "model": get_str(openai_resp, "model").unwrap_or(""),
        "content": content,
        "stop_reason": if refused { "refusal" } else { stop_reason(finish) },
        "stop_sequence": null,
        "usage": usage_to_anthropic(usage),
    }))
}

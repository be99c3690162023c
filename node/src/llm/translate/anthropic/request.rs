//! OpenAI chat request → Anthropic Messages request (gateway → Anthropic provider).
//!
//! Decisions (see `reject_unsupported`): parameters Anthropic cannot honour are refused
//! with `Unsupported` rather than dropped — `n` > 1, `logprobs`, `top_logprobs`,
//! non-empty `logit_bias`, non-zero `presence_penalty`/`frequency_penalty`, `seed`,
//! `audio`, non-text `modalities`, `prediction`, `reasoning_effort`,
//! `web_search_options`, the deprecated `functions`/`function_call`, and
//! `response_format` `json_object`/`json_schema` (Anthropic has no JSON mode; emulating
//! it with a forced tool would change the response shape). `parallel_tool_calls: false`
//! maps to `tool_choice.disable_parallel_tool_use`. `top_k` (an extension some clients
//! send) is passed through. `store`, `metadata`, `service_tier` and `stream_options`
//! are ignored: they do not change the generated text.

use serde_json::{json, Map, Value};

use super::PROVIDER;
use crate::llm::translate::util::{
    as_object, function_tools, get_str, invalid, is_set, parse_arguments, parse_data_url,
    text_content, text_part, unsupported,
};
use crate::llm::translate::TranslateError;

/// `max_tokens` sent when the client gave none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Translates an OpenAI chat request into an Anthropic Messages request for
/// `upstream_model`: system messages → `system`, consecutive same-role turns merged,
/// tool calls → `tool_use`, tool messages → `tool_result`, images → image sources.
pub fn request_to_anthropic(
    openai_req: &Value,
    upstream_model: &str,
) -> Result<Value, TranslateError> {
    let obj = as_object(openai_req, "request body")?;
    reject_unsupported(obj)?;
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`messages` is required and must be an array"))?;

    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        match get_str(m, "role") {
            Some("system") | Some("developer") => {
                system.extend(text_blocks(m.get("content"), &at)?)
            }
            Some("user") => push_turn(&mut turns, "user", user_blocks(m.get("content"), &at)?),
            Some("assistant") => push_turn(&mut turns, "assistant", assistant_blocks(m, &at)?),
            Some("tool") => push_turn(&mut turns, "user", vec![tool_result(m, &at)?]),
            Some("function") => return Err(unsupported("function messages", PROVIDER)),
            Some(other) => return Err(invalid(format!("{at}.role: unknown role `{other}`"))),
            None => return Err(invalid(format!("{at}.role must be a string"))),
        }
    }
    if turns.is_empty() {
        return Err(invalid(
            "`messages` must contain at least one user or assistant message",
        ));
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, mut blocks)| {
            if role == "user" {
                // Anthropic wants the tool results first in a user turn.
                blocks.sort_by_key(|b| get_str(b, "type") != Some("tool_result"));
            }
            json!({"role": role, "content": blocks})
        })
        .collect();

    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_u64))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));
    out.insert("max_tokens".into(), json!(max_tokens));
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    if let Some(t) = obj.get("temperature").filter(|v| !v.is_null()) {
        match t.as_f64() {
            Some(x) if (0.0..=1.0).contains(&x) => out.insert("temperature".into(), t.clone()),
            _ => {
                return Err(invalid(
                    "`temperature` must be between 0 and 1 for anthropic models",
                ))
            }
        };
    }
    for key in ["top_p", "top_k"] {
        if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
            if !v.is_number() {
                return Err(invalid(format!("`{key}` must be a number")));
            }
            out.insert(key.into(), v.clone());
        }
    }
    match obj.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            if !a.is_empty() {
                out.insert("stop_sequences".into(), Value::Array(a.clone()));
            }
        }
        Some(_) => return Err(invalid("`stop` must be a string or an array of strings")),
    }
    if obj.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream".into(), Value::Bool(true));
    }
    if let Some(user) = get_str(openai_req, "user") {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(tools) = obj.get("tools").filter(|v| !v.is_null()) {
        let tools = tools_to_anthropic(tools)?;
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(choice) = tool_choice(obj)? {
        if out.contains_key("tools") {
            out.insert("tool_choice".into(), choice);
        }
    }
    Ok(Value::Object(out))
}

fn push_turn(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

fn reject_unsupported(obj: &Map<String, Value>) -> Result<(), TranslateError> {
    let nonzero = |k: &str| obj.get(k).and_then(Value::as_f64).is_some_and(|x| x != 0.0);
    if obj.get("n").and_then(Value::as_u64).is_some_and(|n| n != 1) {
        return Err(unsupported("n", PROVIDER));
    }
    if obj.get("logprobs") == Some(&Value::Bool(true)) {
        return Err(unsupported("logprobs", PROVIDER));
    }
    if obj
        .get("logit_bias")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        return Err(unsupported("logit_bias", PROVIDER));
    }
    for key in ["presence_penalty", "frequency_penalty"] {
        if nonzero(key) {
            return Err(unsupported(key, PROVIDER));
        }
    }
    for key in [
        "top_logprobs",
        "seed",
        "audio",
        "prediction",
        "reasoning_effort",
        "web_search_options",
        "functions",
        "function_call",
    ] {
        if is_set(obj, key) {
            return Err(unsupported(key, PROVIDER));
        }
    }
    if let Some(m) = obj.get("modalities").filter(|v| !v.is_null()) {
        if m.as_array()
            .is_none_or(|a| a.iter().any(|x| x.as_str() != Some("text")))
        {
            return Err(unsupported("modalities", PROVIDER));
        }
    }
    if let Some(rf) = obj.get("response_format").filter(|v| !v.is_null()) {
        if get_str(rf, "type") != Some("text") {
            return Err(unsupported("response_format", PROVIDER));
        }
    }
    Ok(())
}

/// A text block, keeping a client's `cache_control` hint (an extension some
/// OpenAI-format clients use for Anthropic prompt caching).
fn text_block(text: &str, part: Option<&Value>) -> Value {
    let mut b = json!({"type": "text", "text": text});
    if let Some(cc) = part
        .and_then(|p| p.get("cache_control"))
        .filter(|v| v.is_object())
    {
        b["cache_control"] = cc.clone();
    }
    b
}

/// Text-only content (system, developer) as text blocks; empty texts are dropped
/// because Anthropic rejects empty text blocks.
fn text_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Value>, TranslateError> {
    match content {
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let text = text_part(part, &format!("{at}.content[{j}]"))?;
                if !text.is_empty() {
                    out.push(text_block(text, Some(part)));
                }
            }
            Ok(out)
        }
        other => {
            let text = text_content(other, &format!("{at}.content"))?;
            Ok(if text.is_empty() {
                vec![]
            } else {
                vec![text_block(&text, None)]
            })
        }
    }
}

fn user_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        Some(Value::Array(parts)) => parts,
        other => return text_blocks(other, at),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let pat = format!("{at}.content[{j}]");
        match get_str(part, "type") {
            Some("text") => {
                let text = get_str(part, "text")
                    .ok_or_else(|| invalid(format!("{pat}.text must be a string")))?;
                if !text.is_empty() {
                    out.push(text_block(text, Some(part)));
                }
            }
            Some("image_url") => {
                let iu = part.get("image_url");
                let url = iu
                    .and_then(|u| u.as_str().or_else(|| get_str(u, "url")))
                    .ok_or_else(|| invalid(format!("{pat}.image_url.url must be a string")))?;
                out.push(json!({"type": "image", "source": image_source(url, &pat)?}));
            }
            Some("file") => {
                let file = part.get("file").unwrap_or(&Value::Null);
                if let Some(data) = get_str(file, "file_data") {
                    match parse_data_url(data) {
                        Some((mime @ "application/pdf", b64)) => out.push(json!({
                            "type": "document",
                            "source": {"type": "base64", "media_type": mime, "data": b64},
                        })),
                        _ => {
                            return Err(unsupported(
                                format!("{pat}.file (only base64 PDF data URLs)"),
                                PROVIDER,
                            ))
                        }
                    }
                } else {
                    return Err(unsupported(format!("{pat}.file.file_id"), PROVIDER));
                }
            }
            Some("input_audio") => return Err(unsupported("input_audio", PROVIDER)),
            Some(other) => {
                return Err(invalid(format!(
                    "{pat}.type: unknown content part type `{other}`"
                )))
            }
            None => return Err(invalid(format!("{pat}.type must be a string"))),
        }
    }
    Ok(out)
}

/// An image URL as an Anthropic image source: `data:` URLs become base64 sources,
/// http(s) URLs url sources.
fn image_source(url: &str, at: &str) -> Result<Value, TranslateError> {
    if url.starts_with("data:") {
        let (mime, data) = parse_data_url(url).ok_or_else(|| {
            invalid(format!(
                "{at}.image_url: data URLs must be base64 with a media type"
            ))
        })?;
        Ok(json!({"type": "base64", "media_type": mime, "data": data}))
    } else if url.starts_with("https://") || url.starts_with("http://") {
        Ok(json!({"type": "url", "url": url}))
    } else {
        Err(invalid(format!(
            "{at}.image_url.url must be an http(s) or data: URL"
        )))
    }
}

/// Anthropic tool ids must match `^[a-zA-Z0-9_-]+$`; other characters become `_` (the
/// same mapping for `tool_use.id` and `tool_result.tool_use_id`, so they still match).
pub(crate) fn tool_id(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "toolu_".to_string()
    } else {
        s
    }
}

fn assistant_blocks(m: &Value, at: &str) -> Result<Vec<Value>, TranslateError> {
    if m.get("function_call").is_some_and(|v| !v.is_null()) {
        return Err(unsupported("function_call", PROVIDER));
    }
    let mut out = text_blocks(m.get("content"), at)?;
    if let Some(calls) = m.get("tool_calls").filter(|v| !v.is_null()) {
        let calls = calls
            .as_array()
            .ok_or_else(|| invalid(format!("{at}.tool_calls must be an array")))?;
        for (j, call) in calls.iter().enumerate() {
            let cat = format!("{at}.tool_calls[{j}]");
            let id =
                get_str(call, "id").ok_or_else(|| invalid(format!("{cat}.id must be a string")))?;
            let f = call.get("function").unwrap_or(&Value::Null);
            let name = get_str(f, "name")
                .ok_or_else(|| invalid(format!("{cat}.function.name must be a string")))?;
            let input = parse_arguments(f.get("arguments"), &format!("{cat}.function.arguments"))?;
            out.push(json!({"type": "tool_use", "id": tool_id(id), "name": name, "input": input}));
        }
    }
    Ok(out)
}

fn tool_result(m: &Value, at: &str) -> Result<Value, TranslateError> {
    let id = get_str(m, "tool_call_id")
        .ok_or_else(|| invalid(format!("{at}.tool_call_id must be a string")))?;
    let mut block = json!({"type": "tool_result", "tool_use_id": tool_id(id)});
    match m.get("content") {
        Some(Value::String(s)) if !s.is_empty() => block["content"] = json!(s),
        Some(Value::Array(_)) => {
            let blocks = text_blocks(m.get("content"), at)?;
            if !blocks.is_empty() {
                block["content"] = Value::Array(blocks);
            }
        }
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => {
            return Err(invalid(format!(
                "{at}.content must be a string or an array of text parts"
            )))
        }
    }
    Ok(block)
}

fn tools_to_anthropic(tools: &Value) -> Result<Vec<Value>, TranslateError> {
    let tools = function_tools(tools, PROVIDER)?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, f, name) in tools {
        let schema = match f.get("parameters") {
            Some(p @ Value::Object(_)) => p.clone(),
            None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
            Some(_) => {
                return Err(invalid(format!(
                    "tools[{i}].function.parameters must be an object"
                )))
            }
        };
        let mut tool = json!({"name": name, "input_schema": schema});
        if let Some(d) = get_str(f, "description") {
            tool["description"] = json!(d);
        }
        out.push(tool);
    }
    Ok(out)
}

fn tool_choice(obj: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    let mut choice = match obj.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "none" => Some(json!({"type": "none"})),
            "required" => Some(json!({"type": "any"})),
            other => return Err(invalid(format!("`tool_choice`: unknown value `{other}`"))),
        },
        Some(v) => match (
            get_str(v, "type"),
            v.get("function").and_then(|f| get_str(f, "name")),
        ) {
            (Some("function"), Some(name)) => Some(json!({"type": "tool", "name": name})),
            _ => return Err(unsupported("tool_choice", PROVIDER)),
        },
    };
    if obj.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if get_str(c, "type") != Some("none") {
            c["disable_parallel_tool_use"] = Value::Bool(true);
        }
    }
    Ok(choice)
}

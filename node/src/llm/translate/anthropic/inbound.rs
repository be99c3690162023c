//! Anthropic Messages request → OpenAI chat request (Anthropic-format client →
//! gateway, for our `POST /v1/messages`).
//!
//! Decisions: `top_k` is kept as a `top_k` extension field (passed on to Anthropic and
//! Gemini, and to OpenAI-compatible servers that accept it); `metadata.user_id` →
//! `user`; `disable_parallel_tool_use` → `parallel_tool_calls: false`; `cache_control`
//! hints are dropped; `thinking` blocks in assistant history are dropped (OpenAI has no
//! place for them); a `tool_result` with `is_error` gets its text prefixed with
//! `Error: `. Refused with `Unsupported`: the `thinking` parameter, `mcp_servers`,
//! `container`, server tools (typed tools such as `web_search_*`), images inside tool
//! results, and documents other than base64 PDF.

use serde_json::{json, Map, Value};

use crate::llm::translate::util::{
    as_object, get_str, invalid, is_set, to_json_string, unsupported,
};
use crate::llm::translate::TranslateError;

/// Provider name for `Unsupported` errors raised against an Anthropic-format request.
const CLIENT: &str = "the anthropic messages endpoint";

/// Translates an Anthropic Messages request into the canonical OpenAI chat request.
pub fn request_from_anthropic(req: &Value) -> Result<Value, TranslateError> {
    let obj = as_object(req, "request body")?;
    for key in ["thinking", "mcp_servers", "container"] {
        if is_set(obj, key) {
            return Err(unsupported(key, CLIENT));
        }
    }
    let model = match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m,
        _ => return Err(invalid("model: field required (a non-empty string)")),
    };
    let in_messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("messages: field required (an array)"))?;

    let mut messages = Vec::new();
    match obj.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if !s.is_empty() {
                messages.push(json!({"role": "system", "content": s}));
            }
        }
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (i, b) in blocks.iter().enumerate() {
                texts.push(
                    get_str(b, "text").ok_or_else(|| {
                        invalid(format!("system.{i}: only text blocks are allowed"))
                    })?,
                );
            }
            if !texts.is_empty() {
                messages.push(json!({"role": "system", "content": texts.join("\n\n")}));
            }
        }
        Some(_) => {
            return Err(invalid(
                "system: must be a string or an array of text blocks",
            ))
        }
    }
    for (i, m) in in_messages.iter().enumerate() {
        let at = format!("messages.{i}");
        match get_str(m, "role") {
            Some("user") => user_messages(m.get("content"), &at, &mut messages)?,
            Some("assistant") => messages.push(assistant_message(m.get("content"), &at)?),
            _ => {
                return Err(invalid(format!(
                    "{at}.role: must be \"user\" or \"assistant\""
                )))
            }
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));
    if let Some(n) = obj.get("max_tokens").filter(|v| !v.is_null()) {
        let n = n
            .as_u64()
            .ok_or_else(|| invalid("max_tokens: must be a positive integer"))?;
        out.insert("max_tokens".into(), json!(n));
    }
    for key in ["temperature", "top_p", "top_k"] {
        if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
            if !v.is_number() {
                return Err(invalid(format!("{key}: must be a number")));
            }
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stops) = obj.get("stop_sequences").filter(|v| !v.is_null()) {
        match stops.as_array() {
            Some(a) if a.iter().all(Value::is_string) => {
                if !a.is_empty() {
                    out.insert("stop".into(), stops.clone());
                }
            }
            _ => return Err(invalid("stop_sequences: must be an array of strings")),
        }
    }
    if obj.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream".into(), Value::Bool(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(user) = obj.get("metadata").and_then(|m| get_str(m, "user_id")) {
        out.insert("user".into(), json!(user));
    }
    if let Some(tools) = obj.get("tools").filter(|v| !v.is_null()) {
        let tools = tools
            .as_array()
            .ok_or_else(|| invalid("tools: must be an array"))?;
        let mut list = Vec::with_capacity(tools.len());
        for (i, t) in tools.iter().enumerate() {
            list.push(tool_to_openai(t, i)?);
        }
        if !list.is_empty() {
            out.insert("tools".into(), Value::Array(list));
        }
    }
    if let Some(tc) = obj.get("tool_choice").filter(|v| !v.is_null()) {
        let choice = match (get_str(tc, "type"), get_str(tc, "name")) {
            (Some("auto"), _) => json!("auto"),
            (Some("any"), _) => json!("required"),
            (Some("none"), _) => json!("none"),
            (Some("tool"), Some(name)) => json!({"type": "function", "function": {"name": name}}),
            _ => {
                return Err(invalid(
                    "tool_choice: must be auto, any, none or {\"type\":\"tool\",\"name\":...}",
                ))
            }
        };
        if tc.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
            out.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
        out.insert("tool_choice".into(), choice);
    }
    Ok(Value::Object(out))
}

fn tool_to_openai(t: &Value, i: usize) -> Result<Value, TranslateError> {
    match get_str(t, "type") {
        None | Some("custom") => {}
        Some(other) => return Err(unsupported(format!("tools.{i}.type={other}"), CLIENT)),
    }
    let name =
        get_str(t, "name").ok_or_else(|| invalid(format!("tools.{i}.name: field required")))?;
    let mut f = json!({"name": name});
    if let Some(d) = get_str(t, "description") {
        f["description"] = json!(d);
    }
    match t.get("input_schema") {
        Some(s @ Value::Object(_)) => f["parameters"] = s.clone(),
        None | Some(Value::Null) => {}
        Some(_) => {
            return Err(invalid(format!(
                "tools.{i}.input_schema: must be an object"
            )))
        }
    }
    Ok(json!({"type": "function", "function": f}))
}

/// Content as a list of blocks (`"text"` shorthand becomes one text block).
fn blocks<'a>(content: Option<&'a Value>, at: &str) -> Result<Vec<&'a Value>, TranslateError> {
    match content {
        Some(Value::Array(a)) => Ok(a.iter().collect()),
        Some(s @ Value::String(_)) => Ok(vec![s]),
        _ => Err(invalid(format!(
            "{at}.content: must be a string or an array of content blocks"
        ))),
    }
}

/// A user turn: its `tool_result` blocks become `tool` messages (first, since they
/// answer the previous assistant turn), the rest one `user` message.
fn user_messages(
    content: Option<&Value>,
    at: &str,
    out: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let mut parts = Vec::new();
    for (j, b) in blocks(content, at)?.into_iter().enumerate() {
        let bat = format!("{at}.content.{j}");
        if let Value::String(s) = b {
            parts.push(json!({"type": "text", "text": s}));
            continue;
        }
        match get_str(b, "type") {
            Some("text") => {
                let text = get_str(b, "text")
                    .ok_or_else(|| invalid(format!("{bat}.text: must be a string")))?;
                parts.push(json!({"type": "text", "text": text}));
            }
            Some("image") => parts.push(image_part(b, &bat)?),
            Some("document") => parts.push(document_part(b, &bat)?),
            Some("tool_result") => out.push(tool_message(b, &bat)?),
            Some(other) => return Err(unsupported(format!("{bat}.type={other}"), CLIENT)),
            None => return Err(invalid(format!("{bat}.type: field required"))),
        }
    }
    if !parts.is_empty() {
        // A lone text block becomes plain string content, the common OpenAI form.
        let single = match parts.as_slice() {
            [only] if get_str(only, "type") == Some("text") => {
                get_str(only, "text").map(str::to_string)
            }
            _ => None,
        };
        let content = match single {
            Some(text) => json!(text),
            None => Value::Array(parts),
        };
        out.push(json!({"role": "user", "content": content}));
    }
    Ok(())
}

fn image_part(b: &Value, at: &str) -> Result<Value, TranslateError> {
    let src = b.get("source").unwrap_or(&Value::Null);
    let url = match get_str(src, "type") {
        Some("base64") => {
            let mime = get_str(src, "media_type")
                .ok_or_else(|| invalid(format!("{at}.source.media_type: field required")))?;
            let data = get_str(src, "data")
                .ok_or_else(|| invalid(format!("{at}.source.data: field required")))?;
            format!("data:{mime};base64,{data}")
        }
        Some("url") => get_str(src, "url")
            .ok_or_else(|| invalid(format!("{at}.source.url: field required")))?
            .to_string(),
        _ => return Err(unsupported(format!("{at}.source.type"), CLIENT)),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn document_part(b: &Value, at: &str) -> Result<Value, TranslateError> {
    let src = b.get("source").unwrap_or(&Value::Null);
    match (
        get_str(src, "type"),
        get_str(src, "media_type"),
        get_str(src, "data"),
    ) {
        (Some("base64"), Some(mime @ "application/pdf"), Some(data)) => {
            let mut file = json!({"file_data": format!("data:{mime};base64,{data}")});
            if let Some(t) = get_str(b, "title") {
                file["filename"] = json!(t);
            }
            Ok(json!({"type": "file", "file": file}))
        }
        _ => Err(unsupported(
            format!("{at} (only base64 PDF documents)"),
            CLIENT,
        )),
    }
}

fn tool_message(b: &Value, at: &str) -> Result<Value, TranslateError> {
    let id = get_str(b, "tool_use_id")
        .ok_or_else(|| invalid(format!("{at}.tool_use_id: field required")))?;
    let mut text = match b.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            let mut texts = Vec::with_capacity(items.len());
            for (k, item) in items.iter().enumerate() {
                match get_str(item, "type") {
                    Some("text") => texts.push(get_str(item, "text").unwrap_or("")),
                    _ => {
                        return Err(unsupported(
                            format!("{at}.content.{k} (only text in tool results)"),
                            CLIENT,
                        ))
                    }
                }
            }
            texts.join("\n")
        }
        Some(_) => {
            return Err(invalid(format!(
                "{at}.content: must be a string or an array of blocks"
            )))
        }
    };
    if b.get("is_error") == Some(&Value::Bool(true)) {
        text = format!("Error: {text}");
    }
    Ok(json!({"role": "tool", "tool_call_id": id, "content": text}))
}

fn assistant_message(content: Option<&Value>, at: &str) -> Result<Value, TranslateError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, b) in blocks(content, at)?.into_iter().enumerate() {
        let bat = format!("{at}.content.{j}");
        if let Value::String(s) = b {
            text.push_str(s);
            continue;
        }
        match get_str(b, "type") {
            Some("text") => text.push_str(
                get_str(b, "text")
                    .ok_or_else(|| invalid(format!("{bat}.text: must be a string")))?,
            ),
            Some("tool_use") => {
                let id =
                    get_str(b, "id").ok_or_else(|| invalid(format!("{bat}.id: field required")))?;
                let name = get_str(b, "name")
                    .ok_or_else(|| invalid(format!("{bat}.name: field required")))?;
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": to_json_string(&input)},
                }));
            }
            Some("thinking") | Some("redacted_thinking") => {}
            Some(other) => return Err(unsupported(format!("{bat}.type={other}"), CLIENT)),
            None => return Err(invalid(format!("{bat}.type: field required"))),
        }
    }
    let mut m = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
    });
    if !calls.is_empty() {
        m["tool_calls"] = Value::Array(calls);
    }
    Ok(m)
}

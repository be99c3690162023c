//! Small JSON helpers shared by the translators. Every accessor returns an `Option` or a
//! `TranslateError` instead of panicking: all input here comes from clients or providers.

use serde_json::{json, Map, Value};

use super::{TranslateError, Usage};

/// Seconds since the Unix epoch, for the `created` field of OpenAI objects (0 if the
/// clock is before 1970 rather than a panic).
pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `prefix` followed by `len` (at most 32) random hex characters: ids for objects the
/// provider did not name (completions, messages, tool calls).
pub(crate) fn random_id(prefix: &str, len: usize) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    let cut = hex.get(..len.min(hex.len())).unwrap_or(&hex);
    format!("{prefix}{cut}")
}

pub(crate) fn invalid(msg: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(msg.into())
}

pub(crate) fn unsupported(param: impl Into<String>, provider: &'static str) -> TranslateError {
    TranslateError::Unsupported {
        param: param.into(),
        provider,
    }
}

/// The value as an object, or `Invalid` naming `what`.
pub(crate) fn as_object<'a>(
    v: &'a Value,
    what: &str,
) -> Result<&'a Map<String, Value>, TranslateError> {
    v.as_object()
        .ok_or_else(|| invalid(format!("{what} must be a JSON object")))
}

pub(crate) fn get_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A non-negative integer field, 0 when absent or of another type (token counts).
pub(crate) fn get_u64(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// The field is present and not `null` (clients often send explicit nulls for defaults).
pub(crate) fn is_set(obj: &Map<String, Value>, key: &str) -> bool {
    obj.get(key).is_some_and(|v| !v.is_null())
}

/// Splits `data:<mime>[;params];base64,<data>` into `(mime, data)`; `None` for anything
/// else (providers only take base64 inline data).
pub(crate) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let meta = meta.strip_suffix(";base64")?;
    let mime = meta.split(';').next().unwrap_or("");
    if mime.is_empty() || data.is_empty() {
        return None;
    }
    Some((mime, data))
}

/// The text of an OpenAI `content` that may only hold text: a string, `null`, or an
/// array of `text` (or `refusal`) parts, joined with newlines.
pub(crate) fn text_content(content: Option<&Value>, what: &str) -> Result<String, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (i, part) in parts.iter().enumerate() {
                texts.push(text_part(part, &format!("{what}[{i}]"))?);
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(invalid(format!(
            "{what} must be a string or an array of text parts"
        ))),
    }
}

/// The text of one `{"type":"text","text":...}` (or `refusal`) part.
pub(crate) fn text_part<'a>(part: &'a Value, what: &str) -> Result<&'a str, TranslateError> {
    match get_str(part, "type") {
        Some("text") => {
            get_str(part, "text").ok_or_else(|| invalid(format!("{what}.text must be a string")))
        }
        Some("refusal") => get_str(part, "refusal")
            .ok_or_else(|| invalid(format!("{what}.refusal must be a string"))),
        Some(other) => Err(invalid(format!(
            "{what}: content part type `{other}` is not allowed here (text only)"
        ))),
        None => Err(invalid(format!("{what}.type must be a string"))),
    }
}

/// Tool-call arguments (a JSON string) as the object providers want; `""` is `{}`.
pub(crate) fn parse_arguments(args: Option<&Value>, what: &str) -> Result<Value, TranslateError> {
    let text = match args {
        None | Some(Value::Null) => return Ok(json!({})),
        Some(Value::String(s)) => s.as_str(),
        Some(v @ Value::Object(_)) => return Ok(v.clone()),
        Some(_) => return Err(invalid(format!("{what} must be a JSON string"))),
    };
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(invalid(format!("{what} must encode a JSON object"))),
        Err(e) => Err(invalid(format!("{what} is not valid JSON: {e}"))),
    }
}

/// Serializes a value to a JSON string (cannot fail for a `Value`; `"{}"` if it did).
pub(crate) fn to_json_string(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string())
}

/// The OpenAI `usage` object for a `Usage`.
pub(crate) fn openai_usage_json(u: Usage) -> Value {
    json!({
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.input.saturating_add(u.output),
        "prompt_tokens_details": {"cached_tokens": u.cached_input},
    })
}

/// Builds `chat.completion.chunk` objects that share one id, timestamp and model.
#[derive(Debug, Clone)]
pub(crate) struct ChunkBuilder {
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: String,
}

impl ChunkBuilder {
    pub(crate) fn new(model: &str) -> Self {
        Self {
            id: random_id("chatcmpl-", 24),
            created: now_unix(),
            model: model.to_string(),
        }
    }

    /// A chunk with one choice carrying `delta` (and a finish reason when it ends).
    pub(crate) fn delta(&self, index: u64, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": index,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish,
            }],
        })
    }

    /// The usage-only chunk OpenAI sends last when `stream_options.include_usage` is set.
    pub(crate) fn usage(&self, usage: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        })
    }
}

/// The OpenAI `tools` array as (index, `function` object, name), refusing tools that are
/// not functions (as `provider` cannot take them) and functions without a name.
pub(crate) fn function_tools<'a>(
    tools: &'a Value,
    provider: &'static str,
) -> Result<Vec<(usize, &'a Value, &'a str)>, TranslateError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| invalid("`tools` must be an array"))?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        match get_str(t, "type") {
            Some("function") => {}
            Some(other) => return Err(unsupported(format!("tools[{i}].type={other}"), provider)),
            None => return Err(invalid(format!("tools[{i}].type must be a string"))),
        }
        let f = t.get("function").unwrap_or(&Value::Null);
        let name = get_str(f, "name")
            .ok_or_else(|| invalid(format!("tools[{i}].function.name must be a string")))?;
        out.push((i, f, name));
    }
    Ok(out)
}

//! The canonical format itself: validation of client requests to
//! `POST /v1/chat/completions` (so bad requests get a clear 400 before any provider is
//! called), and the small rewrite applied before forwarding to an OpenAI-compatible
//! upstream.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{Map, Value};

use super::util::{get_str, invalid, is_set};
use super::TranslateError;

/// Message roles of the Chat Completions API (`function` is the deprecated one).
const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// Checks the shape of a chat request: `model`, a non-empty `messages` array with
/// valid roles and contents, and the types and ranges of the common parameters. The
/// error message names the offending parameter.
pub fn validate_chat_request(req: &Value) -> Result<(), TranslateError> {
    let obj = req
        .as_object()
        .ok_or_else(|| invalid("request body must be a JSON object"))?;
    match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        _ => {
            return Err(invalid(
                "`model` is required and must be a non-empty string",
            ))
        }
    }
    let messages = match obj.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(invalid("`messages` must not be empty")),
        _ => return Err(invalid("`messages` is required and must be an array")),
    };
    for (i, m) in messages.iter().enumerate() {
        validate_message(i, m)?;
    }
    if is_set(obj, "n") {
        match obj.get("n").and_then(Value::as_u64) {
            Some(1..=128) => {}
            _ => return Err(invalid("`n` must be an integer between 1 and 128")),
        }
    }
    check_bool(obj, "stream")?;
    check_bool(obj, "logprobs")?;
    check_bool(obj, "parallel_tool_calls")?;
    check_range(obj, "temperature", 0.0, 2.0)?;
    check_range(obj, "top_p", 0.0, 1.0)?;
    check_range(obj, "presence_penalty", -2.0, 2.0)?;
    check_range(obj, "frequency_penalty", -2.0, 2.0)?;
    check_range(obj, "top_logprobs", 0.0, 20.0)?;
    for key in ["max_tokens", "max_completion_tokens"] {
        if is_set(obj, key) && obj.get(key).and_then(Value::as_u64).is_none_or(|n| n == 0) {
            return Err(invalid(format!("`{key}` must be a positive integer")));
        }
    }
    if is_set(obj, "stream_options") {
        let so = obj.get("stream_options").unwrap_or(&Value::Null);
        if !so.is_object() {
            return Err(invalid("`stream_options` must be an object"));
        }
        if obj.get("stream") != Some(&Value::Bool(true)) {
            return Err(invalid(
                "`stream_options` is only allowed when `stream` is true",
            ));
        }
        if so
            .get("include_usage")
            .is_some_and(|v| !v.is_boolean() && !v.is_null())
        {
            return Err(invalid("`stream_options.include_usage` must be a boolean"));
        }
    }
    match obj.get("stop") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => return Err(invalid("`stop` must be a string or an array of strings")),
    }
    if is_set(obj, "user") && !obj.get("user").is_some_and(Value::is_string) {
        return Err(invalid("`user` must be a string"));
    }
    if is_set(obj, "logit_bias") && !obj.get("logit_bias").is_some_and(Value::is_object) {
        return Err(invalid("`logit_bias` must be an object"));
    }
    validate_tools(obj)?;
    validate_response_format(obj)
}

fn check_bool(obj: &Map<String, Value>, key: &str) -> Result<(), TranslateError> {
    if is_set(obj, key) && !obj.get(key).is_some_and(Value::is_boolean) {
        return Err(invalid(format!("`{key}` must be a boolean")));
    }
    Ok(())
}

fn check_range(
    obj: &Map<String, Value>,
    key: &str,
    lo: f64,
    hi: f64,
) -> Result<(), TranslateError> {
    if !is_set(obj, key) {
        return Ok(());
    }
    match obj.get(key).and_then(Value::as_f64) {
        Some(x) if (lo..=hi).contains(&x) => Ok(()),
        _ => Err(invalid(format!(
            "`{key}` must be a number between {lo} and {hi}"
        ))),
    }
}

fn validate_message(i: usize, m: &Value) -> Result<(), TranslateError> {
    let at = format!("messages[{i}]");
    if !m.is_object() {
        return Err(invalid(format!("{at} must be an object")));
    }
    let role = match get_str(m, "role") {
        Some(r) if ROLES.contains(&r) => r,
        Some(r) => {
            return Err(invalid(format!(
                "{at}.role: unknown role `{r}` (expected one of {})",
                ROLES.join(", ")
            )))
        }
        None => {
            return Err(invalid(format!(
                "{at}.role is required and must be a string"
            )))
        }
    };
    let content = m.get("content");
    match role {
        "system" | "developer" | "tool" | "function" => {
            if content.is_none() {
                return Err(invalid(format!("{at}.content is required")));
            }
            super::util::text_content(content, &format!("{at}.content"))?;
            if role == "tool" && get_str(m, "tool_call_id").is_none() {
                return Err(invalid(format!(
                    "{at}.tool_call_id is required for tool messages"
                )));
            }
        }
        "user" => match content {
            Some(Value::String(_)) => {}
            Some(Value::Array(parts)) if !parts.is_empty() => {
                for (j, part) in parts.iter().enumerate() {
                    validate_user_part(&format!("{at}.content[{j}]"), part)?;
                }
            }
            _ => {
                return Err(invalid(format!(
                    "{at}.content must be a string or a non-empty array of content parts"
                )))
            }
        },
        _ => {
            // assistant
            let calls = m.get("tool_calls").filter(|v| !v.is_null());
            if content.is_none_or(Value::is_null)
                && calls.is_none()
                && m.get("function_call").is_none()
            {
                return Err(invalid(format!(
                    "{at}: an assistant message needs `content` or `tool_calls`"
                )));
            }
            super::util::text_content(content, &format!("{at}.content"))?;
            if let Some(calls) = calls {
                let calls = calls
                    .as_array()
                    .ok_or_else(|| invalid(format!("{at}.tool_calls must be an array")))?;
                for (j, c) in calls.iter().enumerate() {
                    let cat = format!("{at}.tool_calls[{j}]");
                    if get_str(c, "id").is_none() {
                        return Err(invalid(format!("{cat}.id must be a string")));
                    }
                    let f = c.get("function");
                    if f.and_then(|f| get_str(f, "name")).is_none() {
                        return Err(invalid(format!("{cat}.function.name must be a string")));
                    }
                    if f.and_then(|f| get_str(f, "arguments")).is_none() {
                        return Err(invalid(format!(
                            "{cat}.function.arguments must be a string"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

fn validate_user_part(at: &str, part: &Value) -> Result<(), TranslateError> {
    let ok = match get_str(part, "type") {
        Some("text") => part.get("text").is_some_and(Value::is_string),
        Some("image_url") => part
            .get("image_url")
            .is_some_and(|u| u.is_string() || get_str(u, "url").is_some()),
        Some("input_audio") => part.get("input_audio").is_some_and(Value::is_object),
        Some("file") => part.get("file").is_some_and(Value::is_object),
        Some(other) => {
            return Err(invalid(format!(
                "{at}.type: unknown content part type `{other}`"
            )))
        }
        None => return Err(invalid(format!("{at}.type is required"))),
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("{at}: malformed content part")))
    }
}

fn validate_tools(obj: &Map<String, Value>) -> Result<(), TranslateError> {
    if is_set(obj, "tools") {
        let tools = obj
            .get("tools")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("`tools` must be an array"))?;
        for (i, t) in tools.iter().enumerate() {
            match get_str(t, "type") {
                Some("function") => {
                    let f = t.get("function");
                    match f.and_then(|f| get_str(f, "name")) {
                        Some(n) if !n.is_empty() => {}
                        _ => return Err(invalid(format!("tools[{i}].function.name is required"))),
                    }
                    if f.and_then(|f| f.get("parameters"))
                        .is_some_and(|p| !p.is_object() && !p.is_null())
                    {
                        return Err(invalid(format!(
                            "tools[{i}].function.parameters must be an object"
                        )));
                    }
                }
                Some(_) => {}
                None => return Err(invalid(format!("tools[{i}].type is required"))),
            }
        }
    }
    match obj.get("tool_choice") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if ["none", "auto", "required"].contains(&s.as_str()) => Ok(()),
        Some(Value::Object(o)) if o.get("type").is_some_and(Value::is_string) => {
            if o.get("type").and_then(Value::as_str) == Some("function")
                && o.get("function").and_then(|f| get_str(f, "name")).is_none()
            {
                return Err(invalid("`tool_choice.function.name` is required"));
            }
            Ok(())
        }
        Some(_) => Err(invalid(
            "`tool_choice` must be \"none\", \"auto\", \"required\" or an object",
        )),
    }
}

fn validate_response_format(obj: &Map<String, Value>) -> Result<(), TranslateError> {
    if !is_set(obj, "response_format") {
        return Ok(());
    }
    let rf = obj.get("response_format").unwrap_or(&Value::Null);
    match get_str(rf, "type") {
        Some("text") | Some("json_object") => Ok(()),
        Some("json_schema") => match rf.get("json_schema") {
            Some(js) if get_str(js, "name").is_some() => Ok(()),
            _ => Err(invalid("`response_format.json_schema.name` is required")),
        },
        _ => Err(invalid(
            "`response_format.type` must be text, json_object or json_schema",
        )),
    }
}

/// The body to forward to an OpenAI-compatible upstream, and whether the client itself
/// asked for usage in its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRequest {
    pub body: Value,
    /// The client set `stream_options.include_usage: true`. When false (and the gateway
    /// forced usage on for metering), the core removes the usage-only chunk
    /// ([`is_usage_only_chunk`]) from what it streams to the client.
    pub client_asked_usage: bool,
}

/// Replaces `model` with the upstream's name and, for a stream when
/// `want_usage_in_stream` is set, sets `stream_options.include_usage = true` so the
/// gateway learns the token counts; reports whether the client had asked for it.
pub fn prepare_upstream(
    req: &Value,
    upstream_model: &str,
    want_usage_in_stream: bool,
) -> PreparedRequest {
    let body = upstream_body(req, upstream_model, want_usage_in_stream);
    PreparedRequest {
        client_asked_usage: req.get("stream") == Some(&Value::Bool(true))
            && req.pointer("/stream_options/include_usage") == Some(&Value::Bool(true)),
        body: serde_json::to_value(&body).unwrap_or(Value::Null),
    }
}

/// [`prepare_upstream`]'s body written straight from the client's request while it is
/// serialized: the provider call sends it without a copy of the whole request tree.
pub fn upstream_body<'a>(
    req: &'a Value,
    upstream_model: &'a str,
    want_usage_in_stream: bool,
) -> UpstreamBody<'a> {
    UpstreamBody {
        req,
        model: upstream_model,
        force_usage: want_usage_in_stream && req.get("stream") == Some(&Value::Bool(true)),
    }
}

/// See [`upstream_body`]. The keys come out as the edited copy would have them (serde_json
/// maps are sorted), so the body is the same bytes as before, only not copied first.
pub struct UpstreamBody<'a> {
    req: &'a Value,
    model: &'a str,
    /// A stream whose usage the gateway wants: `stream_options.include_usage` is true.
    force_usage: bool,
}

impl serde::Serialize for UpstreamBody<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Some(obj) = self.req.as_object() else {
            return self.req.serialize(s);
        };
        let mut map = s.serialize_map(None)?;
        // The keys the body has that the request may lack, in order.
        let mut added = [("model", true), ("stream_options", self.force_usage)];
        let put = |map: &mut S::SerializeMap, key: &str, v: Option<&Value>| {
            if key == "model" {
                map.serialize_entry(key, self.model)
            } else {
                map.serialize_entry(key, &WithUsage(v.unwrap_or(&Value::Null)))
            }
        };
        for (k, v) in obj {
            for (key, due) in &mut added {
                if *due && *key <= k.as_str() {
                    *due = false;
                    put(&mut map, key, Some(v).filter(|_| *key == k.as_str()))?;
                }
            }
            if !(k == "model" || (k == "stream_options" && self.force_usage)) {
                map.serialize_entry(k, v)?;
            }
        }
        for (key, due) in added {
            if due {
                put(&mut map, key, None)?;
            }
        }
        map.end()
    }
}

/// The client's `stream_options` with `include_usage: true` (an object of its own when
/// the client's was not an object).
struct WithUsage<'a>(&'a Value);

impl serde::Serialize for WithUsage<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        let mut set = false;
        for (k, v) in self.0.as_object().into_iter().flatten() {
            if k == "include_usage" {
                map.serialize_entry(k, &true)?;
                set = true;
            } else {
                map.serialize_entry(k, v)?;
            }
        }
        if !set {
            map.serialize_entry("include_usage", &true)?;
        }
        map.end()
    }
}

/// The final chunk of a stream with `include_usage`: no choices, a `usage` object.
pub fn is_usage_only_chunk(chunk: &Value) -> bool {
    let no_choices = match chunk.get("choices") {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    no_choices && chunk.get("usage").is_some_and(Value::is_object)
}

/// The embeddings request asks for base64 vectors (`encoding_format: "base64"`, which
/// the OpenAI Python SDK sends by default).
pub fn wants_base64_embeddings(req: &Value) -> bool {
    get_str(req, "encoding_format") == Some("base64")
}

/// Re-encodes the float vectors of an OpenAI embeddings `list` as base64 of
/// little-endian f32 (OpenAI's encoding), for providers that only return floats.
/// Vectors that are not arrays of numbers are left as they are.
pub fn encode_embeddings_base64(resp: &mut Value) {
    let Some(data) = resp.get_mut("data").and_then(Value::as_array_mut) else {
        return;
    };
    for item in data {
        let Some(emb) = item.get_mut("embedding") else {
            continue;
        };
        let Some(values) = emb.as_array() else {
            continue;
        };
        let floats: Option<Vec<f32>> = values
            .iter()
            .map(|v| v.as_f64().map(|f| f as f32))
            .collect();
        let Some(floats) = floats else {
            continue;
        };
        let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
        *emb = Value::String(B64.encode(bytes));
    }
}

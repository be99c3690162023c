//! The built-in `mock` provider: deterministic answers in-process, for demos and tests.
//! The reply is `mock reply to: <last user text>`; with tools offered (and `tool_choice`
//! not `none`) it calls the first tool, or the one forced. Tokens are words.

use serde_json::{json, Value};

use super::providers::{Answer, ChunkStream};

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn prompt_words(req: &Value) -> u64 {
    req.get("messages")
        .and_then(Value::as_array)
        .map_or(0, |ms| {
            ms.iter()
                .map(|m| words(&text_of(m.get("content").unwrap_or(&Value::Null))))
                .sum()
        })
}

fn last_user_text(req: &Value) -> String {
    req.get("messages")
        .and_then(Value::as_array)
        .and_then(|ms| {
            ms.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .map(|m| text_of(m.get("content").unwrap_or(&Value::Null)))
        .unwrap_or_default()
}

/// The tool to call, if the request offers tools and lets the model use them — but not
/// right after a tool result (unless forced), so an agent loop ends with a text answer.
fn tool_to_call(req: &Value) -> Option<String> {
    let tools = req.get("tools")?.as_array()?;
    let after_tool = req
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        == Some("tool");
    if after_tool && !matches!(req.get("tool_choice"), Some(Value::Object(_))) {
        return None;
    }
    match req.get("tool_choice") {
        Some(Value::String(s)) if s == "none" => None,
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => tools
            .first()?
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

fn id() -> String {
    format!("chatcmpl-mock{:016x}", rand::random::<u64>())
}

fn now() -> u64 {
    crate::proxy::unix_ms() / 1000
}

/// A whole answer or a stream of chunks for an OpenAI-shaped request.
pub fn chat(req: &Value, model: &str, stream: bool) -> Answer {
    let input = prompt_words(req);
    let (message, finish, output) = match tool_to_call(req) {
        Some(name) => {
            let args = json!({"mock": true}).to_string();
            let call = json!({"id": "call_mock_0", "type": "function",
                "function": {"name": name, "arguments": args}});
            (
                json!({"role": "assistant", "content": null, "tool_calls": [call]}),
                "tool_calls",
                1,
            )
        }
        None => {
            let text = format!("mock reply to: {}", last_user_text(req));
            let n = words(&text);
            (json!({"role": "assistant", "content": text}), "stop", n)
        }
    };
    let usage = json!({"prompt_tokens": input, "completion_tokens": output,
        "total_tokens": input + output});
    let id = id();
    if !stream {
        return Answer::Whole(
            json!({
                "id": id, "object": "chat.completion", "created": now(), "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
                "usage": usage,
            })
            .into(),
        );
    }
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": now(), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]})
    };
    let mut chunks = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for (i, c) in calls.iter().enumerate() {
            let mut call = c.clone();
            call["index"] = json!(i);
            chunks.push(chunk(json!({"tool_calls": [call]}), Value::Null));
        }
    } else if let Some(text) = message.get("content").and_then(Value::as_str) {
        for w in text.split_inclusive(' ') {
            chunks.push(chunk(json!({"content": w}), Value::Null));
        }
    }
    chunks.push(chunk(json!({}), json!(finish)));
    chunks.push(
        json!({"id": id, "object": "chat.completion.chunk", "created": now(),
        "model": model, "choices": [], "usage": usage}),
    );
    Answer::Stream(Box::new(ChunkStream::mock(chunks)))
}

/// Deterministic 8-dimension vectors (from a hash of each input), OpenAI's `list` shape.
pub fn embeddings(req: &Value, model: &str) -> Value {
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            tokens += words(text);
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in text.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
            let v: Vec<f64> = (0..8)
                .map(|k| (((h >> (k * 8)) & 0xff) as f64 / 127.5) - 1.0)
                .collect();
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
}

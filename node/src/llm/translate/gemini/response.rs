//! Gemini `GenerateContentResponse` → OpenAI `chat.completion`.

use serde_json::{json, Value};

use super::{finish_reason, usage};
use crate::llm::translate::util::{get_str, invalid, now_unix, random_id, to_json_string};
use crate::llm::translate::TranslateError;

/// What one candidate (or one streamed piece of it) contributes.
pub(crate) struct CandidateParts {
    pub(crate) index: u64,
    pub(crate) text: String,
    /// OpenAI `tool_calls` entries (without the stream `index`).
    pub(crate) calls: Vec<Value>,
    pub(crate) finish: Option<String>,
}

/// Reads one candidate: text parts concatenated (thought summaries skipped),
/// `functionCall` parts as tool calls with the call's `id` or a generated `call_…` id,
/// and its `thoughtSignature` as `extra_content.google.thought_signature`.
pub(crate) fn candidate_parts(
    cand: &Value,
    position: usize,
) -> Result<CandidateParts, TranslateError> {
    if !cand.is_object() {
        return Err(invalid("gemini candidate is not an object"));
    }
    let index = cand
        .get("index")
        .and_then(Value::as_u64)
        .unwrap_or(position as u64);
    let mut text = String::new();
    let mut calls = Vec::new();
    let parts = match cand.get("content").and_then(|c| c.get("parts")) {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(p)) => p.as_slice(),
        Some(_) => return Err(invalid("gemini candidate content.parts is not an array")),
    };
    for part in parts {
        if part.get("thought") == Some(&Value::Bool(true)) {
            continue;
        }
        if let Some(t) = part.get("text") {
            text.push_str(
                t.as_str()
                    .ok_or_else(|| invalid("gemini part text is not a string"))?,
            );
        } else if let Some(fc) = part.get("functionCall") {
            let name =
                get_str(fc, "name").ok_or_else(|| invalid("gemini functionCall without name"))?;
            let args = fc.get("args").cloned().unwrap_or_else(|| json!({}));
            let id = get_str(fc, "id").map_or_else(|| random_id("call_", 24), str::to_string);
            let mut call = json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": to_json_string(&args)},
            });
            // Gemini 3 wants the signature back with the call in the next turn; carried
            // where Google's own OpenAI-compatible endpoint puts it.
            if let Some(sig) = get_str(part, "thoughtSignature") {
                call["extra_content"] = json!({"google": {"thought_signature": sig}});
            }
            calls.push(call);
        }
    }
    let finish = match cand.get("finishReason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(finish_reason(r, !calls.is_empty()).to_string()),
        Some(_) => return Err(invalid("gemini finishReason is not a string")),
    };
    Ok(CandidateParts {
        index,
        text,
        calls,
        finish,
    })
}

/// The provider's error message when the body is an error (`{"error": {...}}`).
pub(crate) fn error_of(resp: &Value) -> Option<TranslateError> {
    let e = resp.get("error")?;
    Some(invalid(format!(
        "gemini error ({}): {}",
        get_str(e, "status").unwrap_or("unknown"),
        get_str(e, "message").unwrap_or("no message")
    )))
}

/// A Gemini response → `chat.completion` under `public_model`: one choice per
/// candidate (keeping its index), function calls → `tool_calls`, `finishReason` →
/// `finish_reason`, `usageMetadata` → usage. A prompt blocked by safety filters (no
/// candidates, `promptFeedback.blockReason`) is an empty `content_filter` choice.
pub fn response_from_gemini(resp: &Value, public_model: &str) -> Result<Value, TranslateError> {
    if !resp.is_object() {
        return Err(invalid("gemini response is not a JSON object"));
    }
    if let Some(e) = error_of(resp) {
        return Err(e);
    }
    let cands = match resp.get("candidates") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(c)) => c.as_slice(),
        Some(_) => return Err(invalid("gemini candidates is not an array")),
    };
    let mut choices = Vec::with_capacity(cands.len().max(1));
    for (pos, cand) in cands.iter().enumerate() {
        let c = candidate_parts(cand, pos)?;
        let mut message = json!({
            "role": "assistant",
            "content": if c.text.is_empty() && !c.calls.is_empty() { Value::Null } else { json!(c.text) },
            "refusal": null,
        });
        if !c.calls.is_empty() {
            message["tool_calls"] = Value::Array(c.calls);
        }
        choices.push(json!({
            "index": c.index,
            "message": message,
            "logprobs": null,
            "finish_reason": c.finish.unwrap_or_else(|| "stop".to_string()),
        }));
    }
    if choices.is_empty() {
        let blocked = resp
            .get("promptFeedback")
            .and_then(|f| get_str(f, "blockReason"))
            .is_some();
        if !blocked {
            return Err(invalid("gemini response has no candidates"));
        }
        choices.push(json!({
            "index": 0,
            "message": {"role": "assistant", "content": "", "refusal": null},
            "logprobs": null,
            "finish_reason": "content_filter",
        }));
    }
    let (_, usage_json) = usage(resp.get("usageMetadata").unwrap_or(&Value::Null));
    let id = get_str(resp, "responseId")
        .map_or_else(|| random_id("chatcmpl-", 24), |id| format!("chatcmpl-{id}"));
    Ok(json!({
        "id": id,
        "object": "chat.completion",
        "created": now_unix(),
        "model": public_model,
        "choices": choices,
        "usage": usage_json,
    }))
}

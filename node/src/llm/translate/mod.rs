//! Translation between the gateway's canonical format — OpenAI Chat Completions JSON
//! (requests to `POST /v1/chat/completions`, `chat.completion` responses and
//! `chat.completion.chunk` stream chunks) — and the wire formats of other providers
//! (Anthropic Messages, Gemini generateContent) and of Anthropic-format clients.
//!
//! Everything here is pure and synchronous: the gateway core does the HTTP calls and
//! feeds bodies and stream events through these functions. All input comes from
//! clients or remote providers, so nothing here panics on input: malformed data is a
//! `TranslateError`.

pub mod anthropic;
pub mod gemini;
pub mod openai;
pub mod sse;
mod util;

#[cfg(test)]
mod tests;

use serde_json::Value;

/// Why a translation failed. In a client request both variants become HTTP 400 naming
/// the parameter; an `Invalid` provider response becomes 502.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The request uses a parameter the target provider cannot honour; refusing is
    /// better than silently changing the meaning of the request.
    #[error("parameter `{param}` is not supported by {provider}")]
    Unsupported {
        param: String,
        provider: &'static str,
    },
    /// Malformed request or response (wrong types, missing fields, bad JSON).
    #[error("{0}")]
    Invalid(String),
}

/// Token counts of one call, as billed: `input` includes `cached_input` (which is the
/// part served from a prompt cache); `output` includes any reasoning tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
}

impl Usage {
    /// `input + output`, saturating.
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

/// The usage of an OpenAI `chat.completion`, a chunk, or a bare `usage` object —
/// `None` when there is none (chunks carry `"usage": null` until the last one).
pub fn openai_usage(v: &Value) -> Option<Usage> {
    let usage = match v.get("usage") {
        Some(u) if u.is_object() => u,
        Some(_) => return None,
        None if v.get("prompt_tokens").is_some() || v.get("completion_tokens").is_some() => v,
        None => return None,
    };
    let input = usage.get("prompt_tokens").and_then(Value::as_u64);
    let output = usage.get("completion_tokens").and_then(Value::as_u64);
    if input.is_none() && output.is_none() {
        return None;
    }
    let cached_input = usage
        .get("prompt_tokens_details")
        .and_then(|d| d.get("cached_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Some(Usage {
        input: input.unwrap_or(0),
        output: output.unwrap_or(0),
        cached_input,
    })
}

/// Everything generated in one OpenAI chunk — delta `content`, `refusal`, and tool-call
/// names and argument fragments of all choices — so the core can count the output
/// tokens of what was streamed when a client disconnects before the usage chunk.
pub fn text_of_openai_chunk(v: &Value) -> String {
    let mut out = String::new();
    let Some(choices) = v.get("choices").and_then(Value::as_array) else {
        return out;
    };
    for choice in choices {
        let Some(delta) = choice.get("delta") else {
            continue;
        };
        for key in ["content", "refusal", "reasoning_content"] {
            if let Some(s) = delta.get(key).and_then(Value::as_str) {
                out.push_str(s);
            }
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let function = call.get("function");
            for key in ["name", "arguments"] {
                if let Some(s) = function.and_then(|f| f.get(key)).and_then(Value::as_str) {
                    out.push_str(s);
                }
            }
        }
    }
    out
}

/// A rough token count (≈ 4 characters a token, at least 1 for non-empty text), for
/// quotas before a call and for billing when a provider reports no usage.
pub fn estimate_tokens(text: &str) -> u64 {
    let chars = text.chars().count() as u64;
    chars.div_ceil(4)
}

/// Fixed estimate for one image part (OpenAI's price of a low-detail image).
const IMAGE_TOKENS: u64 = 85;
/// Per-message overhead of the chat format (role and separators).
const MESSAGE_OVERHEAD: u64 = 4;

/// A rough prompt size of an OpenAI chat request: message contents (strings and
/// arrays of parts, images at a fixed price), assistant tool calls and the tool
/// definitions, plus a small per-message overhead.
pub fn estimate_prompt_tokens(openai_req: &Value) -> u64 {
    let mut total: u64 = 0;
    for m in openai_req
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        total = total.saturating_add(MESSAGE_OVERHEAD);
        match m.get("content") {
            Some(Value::String(s)) => total = total.saturating_add(estimate_tokens(s)),
            Some(Value::Array(parts)) => {
                for part in parts {
                    let n = match part.get("type").and_then(Value::as_str) {
                        Some("text") => part
                            .get("text")
                            .and_then(Value::as_str)
                            .map_or(0, estimate_tokens),
                        Some("image_url") => IMAGE_TOKENS,
                        _ => estimate_tokens(&util::to_json_string(part)),
                    };
                    total = total.saturating_add(n);
                }
            }
            _ => {}
        }
        if let Some(calls) = m.get("tool_calls") {
            total = total.saturating_add(estimate_tokens(&util::to_json_string(calls)));
        }
    }
    if let Some(tools) = openai_req.get("tools") {
        total = total.saturating_add(estimate_tokens(&util::to_json_string(tools)));
    }
    total
}

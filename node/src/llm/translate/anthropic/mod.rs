//! Anthropic Messages API (<https://docs.anthropic.com/en/api/messages>), both ways:
//!
//! - outbound, gateway → Anthropic provider: [`request_to_anthropic`],
//!   [`response_from_anthropic`], [`AnthropicToOpenaiStream`];
//! - inbound, Anthropic-format client → gateway (our `POST /v1/messages`):
//!   [`request_from_anthropic`], [`response_to_anthropic`], [`OpenaiToAnthropicStream`],
//!   [`error_to_anthropic`].

mod inbound;
mod inbound_stream;
mod request;
mod response;
mod stream;

pub use inbound::request_from_anthropic;
pub use inbound_stream::OpenaiToAnthropicStream;
pub use request::{request_to_anthropic, DEFAULT_MAX_TOKENS};
pub use response::{response_from_anthropic, response_to_anthropic};
pub use stream::AnthropicToOpenaiStream;

use serde_json::{json, Value};

use super::util::get_u64;
use super::Usage;

/// Provider name used in `TranslateError::Unsupported`.
pub(crate) const PROVIDER: &str = "anthropic";

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn, unknown
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub(crate) fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic usage (`input_tokens` excludes cache reads and writes) → `Usage`, whose
/// `input` is the whole prompt.
pub(crate) fn usage_from_anthropic(u: &Value) -> Usage {
    let cache_read = get_u64(u, "cache_read_input_tokens");
    let cache_write = get_u64(u, "cache_creation_input_tokens");
    Usage {
        input: get_u64(u, "input_tokens")
            .saturating_add(cache_read)
            .saturating_add(cache_write),
        output: get_u64(u, "output_tokens"),
        cached_input: cache_read,
    }
}

/// `Usage` → Anthropic usage object (`input_tokens` without the cache reads).
pub(crate) fn usage_to_anthropic(u: Usage) -> Value {
    let mut v = json!({
        "input_tokens": u.input.saturating_sub(u.cached_input),
        "output_tokens": u.output,
    });
    if u.cached_input > 0 {
        v["cache_read_input_tokens"] = json!(u.cached_input);
    }
    v
}

/// An Anthropic error body, `{"type":"error","error":{"type":..., "message":...}}`, with
/// Anthropic's error type for the HTTP status (or `code` itself when it already is one
/// of Anthropic's type names), so Anthropic SDKs raise the right exception.
pub fn error_to_anthropic(status: u16, code: &str, message: &str) -> Value {
    const TYPES: [&str; 8] = [
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "overloaded_error",
    ];
    let kind = if let Some(t) = TYPES.iter().find(|t| **t == code) {
        t
    } else {
        match status {
            401 => "authentication_error",
            402 | 403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        }
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

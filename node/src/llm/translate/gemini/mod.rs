//! Google Gemini API (<https://ai.google.dev/api>), outbound only (gateway → Gemini):
//! `generateContent` / `streamGenerateContent?alt=sse` requests and responses, and
//! `batchEmbedContents` for `/v1/embeddings`. The model is part of the URL, so the
//! chat request body carries none.

mod embeddings;
mod request;
mod response;
mod schema;
mod stream;

pub use embeddings::{embeddings_request_to_gemini, embeddings_response_from_gemini};
pub use request::request_to_gemini;
pub use response::response_from_gemini;
pub use stream::GeminiToOpenaiStream;

use serde_json::{json, Value};

use super::util::get_u64;
use super::Usage;

/// Provider name used in `TranslateError::Unsupported`.
pub(crate) const PROVIDER: &str = "gemini";

/// Gemini `finishReason` → OpenAI `finish_reason` (`tool_calls` when the candidate
/// called functions and stopped normally).
pub(crate) fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
        | "LANGUAGE" => "content_filter",
        _ if has_calls => "tool_calls",
        _ => "stop", // STOP, OTHER, MALFORMED_FUNCTION_CALL, unspecified
    }
}

/// Gemini `usageMetadata` → `Usage` (thinking tokens count as output, as OpenAI counts
/// reasoning tokens in `completion_tokens`) and the OpenAI `usage` object.
pub(crate) fn usage(meta: &Value) -> (Usage, Value) {
    let thoughts = get_u64(meta, "thoughtsTokenCount");
    let u = Usage {
        input: get_u64(meta, "promptTokenCount")
            .saturating_add(get_u64(meta, "toolUsePromptTokenCount")),
        output: get_u64(meta, "candidatesTokenCount").saturating_add(thoughts),
        cached_input: get_u64(meta, "cachedContentTokenCount"),
    };
    let mut v = super::util::openai_usage_json(u);
    if thoughts > 0 {
        v["completion_tokens_details"] = json!({"reasoning_tokens": thoughts});
    }
    (u, v)
}

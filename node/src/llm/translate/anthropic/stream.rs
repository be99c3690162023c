//! Anthropic stream events → OpenAI `chat.completion.chunk`s (gateway ← Anthropic
//! provider). Event order per <https://docs.anthropic.com/en/docs/build-with-claude/streaming>:
//! `message_start`, per block `content_block_start` / `content_block_delta`* /
//! `content_block_stop`, `message_delta` (stop reason, cumulative usage),
//! `message_stop`, with `ping`s anywhere and possibly an `error`.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{finish_reason, usage_from_anthropic};
use crate::llm::translate::sse::SseEvent;
use crate::llm::translate::util::{get_str, get_u64, invalid, openai_usage_json, ChunkBuilder};
use crate::llm::translate::{TranslateError, Usage};

/// Translates one Anthropic stream into OpenAI chunks: a role chunk first, content
/// deltas, tool-call deltas (index, id and name first, then argument fragments from
/// `input_json_delta`), a finish-reason chunk, and a final usage-only chunk
/// `{"choices": [], "usage": {...}}` on `message_stop`.
#[derive(Debug)]
pub struct AnthropicToOpenaiStream {
    chunks: ChunkBuilder,
    started: bool,
    /// Anthropic content block index → OpenAI tool call index.
    tools: HashMap<u64, u64>,
    usage: Usage,
    finished: bool,
    usage_sent: bool,
}

impl AnthropicToOpenaiStream {
    pub fn new(public_model: &str) -> Self {
        Self {
            chunks: ChunkBuilder::new(public_model),
            started: false,
            tools: HashMap::new(),
            usage: Usage::default(),
            finished: false,
            usage_sent: false,
        }
    }

    /// The usage reported so far (input from `message_start`, output from the
    /// cumulative `message_delta` counts).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The provider sent `message_stop` (the usage chunk has been produced).
    pub fn is_finished(&self) -> bool {
        self.usage_sent
    }

    /// Translates one SSE event. The event type is read from the JSON `type` (the SSE
    /// `event:` name only as a fallback); unknown events are ignored, as Anthropic
    /// asks; an `error` event is `Err` with the provider's message.
    pub fn on_event(&mut self, event: &SseEvent) -> Result<Vec<Value>, TranslateError> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| invalid(format!("anthropic stream: event data is not JSON: {e}")))?;
        let kind = get_str(&data, "type")
            .or(event.event.as_deref())
            .unwrap_or("");
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                let msg = data.get("message").unwrap_or(&Value::Null);
                if let Some(id) = get_str(msg, "id") {
                    self.chunks.id = format!("chatcmpl-{id}");
                }
                if let Some(u) = msg.get("usage").filter(|u| u.is_object()) {
                    self.usage = usage_from_anthropic(u);
                }
                self.start(&mut out);
            }
            "content_block_start" => {
                self.start(&mut out);
                let index = block_index(&data)?;
                let block = data.get("content_block").unwrap_or(&Value::Null);
                match get_str(block, "type") {
                    Some("tool_use") => {
                        let tool_index = self.tools.len() as u64;
                        self.tools.insert(index, tool_index);
                        let id = get_str(block, "id").ok_or_else(|| {
                            invalid("anthropic stream: tool_use block without id")
                        })?;
                        let name = get_str(block, "name").ok_or_else(|| {
                            invalid("anthropic stream: tool_use block without name")
                        })?;
                        let call = json!({
                            "index": tool_index,
                            "id": id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        });
                        out.push(self.chunks.delta(0, json!({"tool_calls": [call]}), None));
                    }
                    Some("text") => {
                        if let Some(t) = get_str(block, "text").filter(|t| !t.is_empty()) {
                            out.push(self.chunks.delta(0, json!({"content": t}), None));
                        }
                    }
                    _ => {} // thinking and server tool blocks are not carried over
                }
            }
            "content_block_delta" => {
                self.start(&mut out);
                let index = block_index(&data)?;
                let delta = data.get("delta").unwrap_or(&Value::Null);
                match get_str(delta, "type") {
                    Some("text_delta") => {
                        let text = get_str(delta, "text")
                            .ok_or_else(|| invalid("anthropic stream: text_delta without text"))?;
                        out.push(self.chunks.delta(0, json!({"content": text}), None));
                    }
                    Some("input_json_delta") => {
                        let part = get_str(delta, "partial_json").ok_or_else(|| {
                            invalid("anthropic stream: input_json_delta without partial_json")
                        })?;
                        let tool_index = self.tools.get(&index).copied().ok_or_else(|| {
                            invalid(format!(
                                "anthropic stream: input_json_delta for unknown block {index}"
                            ))
                        })?;
                        if !part.is_empty() {
                            let call =
                                json!({"index": tool_index, "function": {"arguments": part}});
                            out.push(self.chunks.delta(0, json!({"tool_calls": [call]}), None));
                        }
                    }
                    _ => {} // thinking_delta, signature_delta, citations_delta
                }
            }
            "message_delta" => {
                self.start(&mut out);
                if let Some(u) = data.get("usage").filter(|u| u.is_object()) {
                    self.usage.output = get_u64(u, "output_tokens");
                    if u.get("input_tokens").is_some_and(Value::is_u64) {
                        let cumulative = usage_from_anthropic(u);
                        self.usage.input = cumulative.input;
                        self.usage.cached_input = cumulative.cached_input;
                    }
                }
                let stop = data.get("delta").and_then(|d| get_str(d, "stop_reason"));
                if !self.finished && stop.is_some() {
                    self.finished = true;
                    out.push(self.chunks.delta(0, json!({}), Some(finish_reason(stop))));
                }
            }
            "message_stop" => {
                self.start(&mut out);
                if !self.finished {
                    self.finished = true;
                    out.push(self.chunks.delta(0, json!({}), Some("stop")));
                }
                if !self.usage_sent {
                    self.usage_sent = true;
                    out.push(self.chunks.usage(openai_usage_json(self.usage)));
                }
            }
            "error" => {
                let e = data.get("error").unwrap_or(&Value::Null);
                return Err(invalid(format!(
                    "anthropic stream error ({}): {}",
                    get_str(e, "type").unwrap_or("unknown"),
                    get_str(e, "message").unwrap_or("no message")
                )));
            }
            _ => {} // ping, content_block_stop, future event types
        }
        Ok(out)
    }

    /// The role chunk, once, before anything else.
    fn start(&mut self, out: &mut Vec<Value>) {
        if !self.started {
            self.started = true;
            out.push(
                self.chunks
                    .delta(0, json!({"role": "assistant", "content": ""}), None),
            );
        }
    }
}

fn block_index(data: &Value) -> Result<u64, TranslateError> {
    data.get("index")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("anthropic stream: content block event without index"))
}

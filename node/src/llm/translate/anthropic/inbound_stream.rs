//! OpenAI chunks → Anthropic stream events (gateway → Anthropic-format client). Emits
//! exactly the sequence Anthropic SDKs expect: `message_start`; per block
//! `content_block_start`, `content_block_delta`s (`text_delta` / `input_json_delta`),
//! `content_block_stop`; `message_delta` with `stop_reason` and usage; `message_stop`.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{error_to_anthropic, stop_reason, usage_to_anthropic};
use crate::llm::translate::util::{get_str, random_id};
use crate::llm::translate::{openai_usage, Usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u64),
    Tool(u64),
}

/// Translates the OpenAI stream of choice 0 into Anthropic events. Call
/// [`on_chunk`](Self::on_chunk) for every chunk and [`finish`](Self::finish) when the
/// upstream stream ends: the stop reason and usage arrive in different OpenAI chunks,
/// so `message_delta` / `message_stop` are only emitted by `finish`.
#[derive(Debug)]
pub struct OpenaiToAnthropicStream {
    id: String,
    model: String,
    estimated_input: u64,
    started: bool,
    open: Option<Open>,
    next_block: u64,
    /// OpenAI tool call index → Anthropic content block index.
    tool_blocks: HashMap<u64, u64>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    /// Characters generated, to estimate output tokens when no usage arrives.
    generated_chars: u64,
    done: bool,
}

impl OpenaiToAnthropicStream {
    pub fn new(public_model: &str) -> Self {
        Self {
            id: random_id("msg_", 24),
            model: public_model.to_string(),
            estimated_input: 0,
            started: false,
            open: None,
            next_block: 0,
            tool_blocks: HashMap::new(),
            finish_reason: None,
            usage: None,
            generated_chars: 0,
            done: false,
        }
    }

    /// Sets the `input_tokens` reported in `message_start` (the real count only arrives
    /// with the last OpenAI chunk; it is repeated in `message_delta`).
    pub fn with_input_tokens(mut self, estimated_input: u64) -> Self {
        self.estimated_input = estimated_input;
        self
    }

    /// The usage reported by the upstream, or an estimate of what was streamed so far.
    pub fn usage(&self) -> Usage {
        self.usage.unwrap_or(Usage {
            input: self.estimated_input,
            output: self.generated_chars.div_ceil(4),
            cached_input: 0,
        })
    }

    /// Translates one OpenAI chunk into `(event name, data)` pairs. An `error` object in
    /// the chunk (some OpenAI-compatible servers send one mid-stream) becomes an
    /// Anthropic `error` event that ends the stream.
    pub fn on_chunk(&mut self, chunk: &Value) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        if let Some(e) = chunk.get("error").filter(|e| !e.is_null()) {
            let message = get_str(e, "message").unwrap_or("upstream error");
            self.done = true;
            out.push((
                "error".to_string(),
                error_to_anthropic(500, get_str(e, "type").unwrap_or(""), message),
            ));
            return out;
        }
        self.start(&mut out);
        if let Some(u) = openai_usage(chunk) {
            self.usage = Some(u);
        }
        let choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            });
        let Some(choice) = choice else {
            return out;
        };
        if let Some(delta) = choice.get("delta") {
            for key in ["content", "refusal"] {
                if let Some(text) = get_str(delta, key).filter(|t| !t.is_empty()) {
                    self.text(text, &mut out);
                }
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.tool_call(call, &mut out);
            }
        }
        if let Some(reason) = get_str(choice, "finish_reason") {
            self.finish_reason = Some(reason.to_string());
        }
        out
    }

    /// Ends the message: closes the open block, then `message_delta` (stop reason and
    /// usage) and `message_stop`. Idempotent.
    pub fn finish(&mut self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.start(&mut out);
        self.close(&mut out);
        self.done = true;
        let usage = self.usage();
        out.push((
            "message_delta".to_string(),
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason(self.finish_reason.as_deref()), "stop_sequence": null},
                "usage": usage_to_anthropic(usage),
            }),
        ));
        out.push(("message_stop".to_string(), json!({"type": "message_stop"})));
        out
    }

    fn count(&mut self, text: &str) {
        self.generated_chars = self
            .generated_chars
            .saturating_add(text.chars().count() as u64);
    }

    fn start(&mut self, out: &mut Vec<(String, Value)>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push((
            "message_start".to_string(),
            json!({
                "type": "message_start",
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": {"input_tokens": self.estimated_input, "output_tokens": 0},
                },
            }),
        ));
    }

    fn close(&mut self, out: &mut Vec<(String, Value)>) {
        if let Some(Open::Text(i) | Open::Tool(i)) = self.open.take() {
            out.push((
                "content_block_stop".to_string(),
                json!({"type": "content_block_stop", "index": i}),
            ));
        }
    }

    fn open_block(&mut self, block: Value, out: &mut Vec<(String, Value)>) -> u64 {
        self.close(out);
        let index = self.next_block;
        self.next_block = self.next_block.saturating_add(1);
        out.push((
            "content_block_start".to_string(),
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    fn text(&mut self, text: &str, out: &mut Vec<(String, Value)>) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                let i = self.open_block(json!({"type": "text", "text": ""}), out);
                self.open = Some(Open::Text(i));
                i
            }
        };
        self.count(text);
        out.push((
            "content_block_delta".to_string(),
            json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
        ));
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<(String, Value)>) {
        let tool_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let function = call.get("function").unwrap_or(&Value::Null);
        let block = match self.tool_blocks.get(&tool_index) {
            Some(b) => *b,
            None => {
                let id =
                    get_str(call, "id").map_or_else(|| random_id("toolu_", 24), str::to_string);
                let name = get_str(function, "name").unwrap_or("");
                self.count(name);
                let b = self.open_block(
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    out,
                );
                self.open = Some(Open::Tool(b));
                self.tool_blocks.insert(tool_index, b);
                b
            }
        };
        if let Some(args) = get_str(function, "arguments").filter(|a| !a.is_empty()) {
            self.count(args);
            out.push((
                "content_block_delta".to_string(),
                json!({
                    "type": "content_block_delta",
                    "index": block,
                    "delta": {"type": "input_json_delta", "partial_json": args},
                }),
            ));
        }
    }
}

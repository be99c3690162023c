//! Gemini `streamGenerateContent?alt=sse` → OpenAI chunks. Each SSE `data:` is a whole
//! `GenerateContentResponse` holding the next piece of each candidate; the last piece
//! of a candidate carries its `finishReason`, and `usageMetadata` is cumulative.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::response::{candidate_parts, error_of};
use super::usage;
use crate::llm::translate::sse::SseEvent;
use crate::llm::translate::util::{get_str, invalid, ChunkBuilder};
use crate::llm::translate::{TranslateError, Usage};

#[derive(Debug, Default)]
struct Candidate {
    tool_calls: u64,
    finished: bool,
}

/// Translates one Gemini stream: per candidate a role chunk, content deltas, complete
/// tool calls (Gemini sends each function call whole), a finish chunk; then one
/// usage-only chunk from the last `usageMetadata` — as soon as every candidate seen
/// has finished, or from [`finish`](Self::finish) at the end of the stream.
#[derive(Debug)]
pub struct GeminiToOpenaiStream {
    chunks: ChunkBuilder,
    id_set: bool,
    candidates: BTreeMap<u64, Candidate>,
    usage: Option<(Usage, Value)>,
    usage_sent: bool,
}

impl GeminiToOpenaiStream {
    pub fn new(public_model: &str) -> Self {
        Self {
            chunks: ChunkBuilder::new(public_model),
            id_set: false,
            candidates: BTreeMap::new(),
            usage: None,
            usage_sent: false,
        }
    }

    /// The last usage reported (zero before any `usageMetadata`).
    pub fn usage(&self) -> Usage {
        self.usage.as_ref().map(|(u, _)| *u).unwrap_or_default()
    }

    /// Translates one SSE event (its data is one `GenerateContentResponse`); an error
    /// body is `Err` with the provider's message.
    pub fn on_event(&mut self, event: &SseEvent) -> Result<Vec<Value>, TranslateError> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| invalid(format!("gemini stream: event data is not JSON: {e}")))?;
        if !data.is_object() {
            return Err(invalid("gemini stream: event data is not an object"));
        }
        if let Some(e) = error_of(&data) {
            return Err(e);
        }
        if !self.id_set {
            self.id_set = true;
            if let Some(id) = get_str(&data, "responseId") {
                self.chunks.id = format!("chatcmpl-{id}");
            }
        }
        if let Some(meta) = data.get("usageMetadata").filter(|m| m.is_object()) {
            self.usage = Some(usage(meta));
        }
        let mut out = Vec::new();
        let cands = match data.get("candidates") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(c)) => c.as_slice(),
            Some(_) => return Err(invalid("gemini stream: candidates is not an array")),
        };
        for (pos, cand) in cands.iter().enumerate() {
            let c = candidate_parts(cand, pos)?;
            let state = self.candidates.entry(c.index).or_insert_with(|| {
                out.push(self.chunks.delta(
                    c.index,
                    json!({"role": "assistant", "content": ""}),
                    None,
                ));
                Candidate::default()
            });
            if state.finished {
                continue;
            }
            if !c.text.is_empty() {
                out.push(self.chunks.delta(c.index, json!({"content": c.text}), None));
            }
            let had_calls = !c.calls.is_empty();
            for mut call in c.calls {
                call["index"] = json!(state.tool_calls);
                state.tool_calls += 1;
                out.push(
                    self.chunks
                        .delta(c.index, json!({"tool_calls": [call]}), None),
                );
            }
            if let Some(finish) = c.finish {
                // A function call sent in an earlier piece still makes this `tool_calls`.
                let finish = if finish == "stop" && (had_calls || state.tool_calls > 0) {
                    "tool_calls".to_string()
                } else {
                    finish
                };
                state.finished = true;
                out.push(self.chunks.delta(c.index, json!({}), Some(&finish)));
            }
        }
        let blocked = data
            .get("promptFeedback")
            .and_then(|f| get_str(f, "blockReason"))
            .is_some();
        if cands.is_empty() && self.candidates.is_empty() && blocked {
            out.push(
                self.chunks
                    .delta(0, json!({"role": "assistant", "content": ""}), None),
            );
            out.push(self.chunks.delta(0, json!({}), Some("content_filter")));
            self.candidates.insert(
                0,
                Candidate {
                    tool_calls: 0,
                    finished: true,
                },
            );
        }
        if !self.candidates.is_empty() && self.candidates.values().all(|c| c.finished) {
            out.extend(self.usage_chunk());
        }
        Ok(out)
    }

    /// End of the upstream stream: the usage-only chunk if it was not sent yet.
    pub fn finish(&mut self) -> Vec<Value> {
        self.usage_chunk().into_iter().collect()
    }

    fn usage_chunk(&mut self) -> Option<Value> {
        if self.usage_sent {
            return None;
        }
        let (_, usage_json) = self.usage.as_ref()?;
        self.usage_sent = true;
        Some(self.chunks.usage(usage_json.clone()))
    }
}

//! Helpers shared by the tests: feeding raw SSE text through the parser and the
//! stream translators, and reassembling streams to compare them with whole answers.

use serde_json::{json, Value};

use crate::llm::translate::sse::{SseEvent, SseParser};
use crate::llm::translate::{openai_usage, TranslateError, Usage};

/// All events of a complete SSE body.
pub(super) fn parse_sse(raw: &str) -> Vec<SseEvent> {
    let mut p = SseParser::new();
    let mut events = p.push(raw.as_bytes()).expect("parse");
    events.extend(p.finish());
    events
}

/// The same body fed in pieces cut at the given byte offsets.
pub(super) fn parse_sse_split(raw: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut p = SseParser::new();
    let mut events = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        events.extend(p.push(&raw[start..cut]).expect("parse"));
        start = cut;
    }
    events.extend(p.push(&raw[start..]).expect("parse"));
    events.extend(p.finish());
    events
}

/// Runs events through a stream translator's `on_event`, concatenating its chunks.
pub(super) fn run<F>(events: &[SseEvent], mut on_event: F) -> Result<Vec<Value>, TranslateError>
where
    F: FnMut(&SseEvent) -> Result<Vec<Value>, TranslateError>,
{
    let mut out = Vec::new();
    for e in events {
        out.extend(on_event(e)?);
    }
    Ok(out)
}

/// What an OpenAI client reassembles from a stream of chunks (choice 0).
#[derive(Debug, Default, PartialEq)]
pub(super) struct Collected {
    pub role_first: bool,
    pub content: String,
    /// (id, name, arguments) per tool call index.
    pub tool_calls: Vec<(String, String, String)>,
    pub finish: Option<String>,
    pub usage: Option<Usage>,
    /// Chunks after the usage-only chunk (must be none).
    pub after_usage: usize,
}

pub(super) fn collect(chunks: &[Value]) -> Collected {
    let mut c = Collected::default();
    for (n, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        if c.usage.is_some() {
            c.after_usage += 1;
        }
        let choices = chunk["choices"].as_array().expect("choices array");
        if choices.is_empty() {
            c.usage = openai_usage(chunk);
            continue;
        }
        for choice in choices {
            if choice["index"] != 0 {
                continue;
            }
            let delta = &choice["delta"];
            if n == 0 && delta["role"] == "assistant" {
                c.role_first = true;
            }
            if let Some(t) = delta["content"].as_str() {
                c.content.push_str(t);
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let i = call["index"].as_u64().expect("tool call index") as usize;
                if c.tool_calls.len() <= i {
                    c.tool_calls.resize(i + 1, Default::default());
                }
                let slot = &mut c.tool_calls[i];
                if let Some(id) = call["id"].as_str() {
                    slot.0 = id.to_string();
                }
                if let Some(name) = call["function"]["name"].as_str() {
                    slot.1 = name.to_string();
                }
                if let Some(a) = call["function"]["arguments"].as_str() {
                    slot.2.push_str(a);
                }
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                assert!(c.finish.is_none(), "two finish reasons");
                c.finish = Some(f.to_string());
            }
        }
    }
    c
}

/// Checks an Anthropic event sequence against the protocol (message_start first,
/// message_stop last, event name = data type, one block open at a time, deltas only
/// for the open block) and reassembles the message it describes.
pub(super) fn assemble_anthropic(events: &[(String, Value)]) -> Value {
    assert!(!events.is_empty());
    assert_eq!(events[0].0, "message_start");
    assert_eq!(events[events.len() - 1].0, "message_stop");
    let mut content: Vec<Value> = Vec::new();
    let mut partial: Vec<String> = Vec::new();
    let mut open: Option<usize> = None;
    let mut stop_reason = Value::Null;
    let mut usage = Value::Null;
    for (name, data) in events {
        assert_eq!(data["type"], name.as_str(), "event name and type differ");
        match name.as_str() {
            "content_block_start" => {
                assert!(open.is_none(), "block opened while another is open");
                let i = data["index"].as_u64().unwrap() as usize;
                assert_eq!(i, content.len(), "block indices are sequential");
                content.push(data["content_block"].clone());
                partial.push(String::new());
                open = Some(i);
            }
            "content_block_delta" => {
                let i = data["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(i), "delta for a block that is not open");
                match data["delta"]["type"].as_str().unwrap() {
                    "text_delta" => {
                        let t = content[i]["text"].as_str().unwrap().to_string();
                        content[i]["text"] = json!(t + data["delta"]["text"].as_str().unwrap());
                    }
                    "input_json_delta" => {
                        partial[i].push_str(data["delta"]["partial_json"].as_str().unwrap())
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let i = data["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(i));
                open = None;
                if content[i]["type"] == "tool_use" && !partial[i].is_empty() {
                    content[i]["input"] =
                        serde_json::from_str(&partial[i]).expect("tool input JSON");
                }
            }
            "message_delta" => {
                assert!(open.is_none(), "message_delta with a block open");
                stop_reason = data["delta"]["stop_reason"].clone();
                usage = data["usage"].clone();
            }
            "message_start" | "message_stop" | "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    json!({"content": content, "stop_reason": stop_reason, "usage": usage})
}

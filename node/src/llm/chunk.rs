//! One `chat.completion.chunk` of a streamed answer as the relay handles it. A chunk from
//! an OpenAI-format provider is kept as the JSON text it came in, with what the relay
//! needs (usage, the generated text, where its `model` is) read by one borrowing parse,
//! and is sent on with only the model name swapped: no tree of `Value`s built and
//! serialized again per event. Chunks built by a translation, the cache, or a provider
//! event the borrowing parse does not take (an error, an odd shape) are `Value`s and
//! take the general path, which gives the same answers.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::Value;

use super::peek::{self, Obj, Text};
use super::translate::sse::write_sse_json;
use super::translate::{openai, openai_usage, text_of_openai_chunk, Usage};

/// A chunk of a streamed answer, in OpenAI's `chat.completion.chunk` shape.
#[derive(Debug, Clone)]
pub enum Chunk {
    Value(Value),
    Raw(RawChunk),
}

/// A provider's chunk as it came, and what the relay reads from it.
#[derive(Debug, Clone)]
pub struct RawChunk {
    /// The event's JSON text: one line, an object with a top-level `model`.
    json: String,
    /// Where the value of that `model` is in `json`.
    model: Range<usize>,
    usage: Option<Usage>,
    usage_only: bool,
    /// The text generated in it (content, refusal, reasoning, tool calls).
    text: String,
}

impl Chunk {
    /// The chunk in an OpenAI-format event's data; an error when it is not JSON.
    pub fn parse(json: String) -> Result<Chunk, serde_json::Error> {
        match RawChunk::read(&json) {
            Some(raw) => Ok(Chunk::Raw(RawChunk { json, ..raw })),
            None => serde_json::from_str(&json).map(Chunk::Value),
        }
    }

    /// The usage it reports, if any.
    pub fn usage(&self) -> Option<Usage> {
        match self {
            Chunk::Value(v) => openai_usage(v),
            Chunk::Raw(r) => r.usage,
        }
    }

    /// Everything generated in it, to count and to check.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Chunk::Value(v) => Cow::Owned(text_of_openai_chunk(v)),
            Chunk::Raw(r) => Cow::Borrowed(&r.text),
        }
    }

    /// Only usage, no choices: the chunk `stream_options.include_usage` adds.
    pub fn is_usage_only(&self) -> bool {
        match self {
            Chunk::Value(v) => openai::is_usage_only_chunk(v),
            Chunk::Raw(r) => r.usage_only,
        }
    }

    /// The provider's error message, when the event is an error instead of a chunk.
    pub fn error(&self) -> Option<&str> {
        match self {
            Chunk::Value(v) => v.pointer("/error/message").and_then(Value::as_str),
            Chunk::Raw(_) => None, // an event with `error` is never raw
        }
    }

    /// As a `Value` (for a translation, or the cache).
    pub fn into_value(self) -> Value {
        match self {
            Chunk::Value(v) => v,
            Chunk::Raw(r) => serde_json::from_str(&r.json).unwrap_or(Value::Null),
        }
    }

    /// Appends it as one `data:` event with `model` set to `model`, whose JSON text is
    /// `model_json`.
    pub fn write_sse(self, model: &str, model_json: &str, out: &mut Vec<u8>) {
        match self {
            Chunk::Raw(r) => {
                let (head, tail) = (r.json.get(..r.model.start), r.json.get(r.model.end..));
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(head.unwrap_or_default().as_bytes());
                out.extend_from_slice(model_json.as_bytes());
                out.extend_from_slice(tail.unwrap_or_default().as_bytes());
                out.extend_from_slice(b"\n\n");
            }
            Chunk::Value(mut v) => {
                if let Some(o) = v.as_object_mut() {
                    o.insert("model".into(), Value::String(model.to_string()));
                }
                write_sse_json(out, None, &v);
            }
        }
    }
}

impl From<Value> for Chunk {
    fn from(v: Value) -> Chunk {
        Chunk::Value(v)
    }
}

impl RawChunk {
    /// What the relay reads from `json` (kept apart: the caller moves the text in).
    /// `None` for anything the general path must handle: not one line, not an object,
    /// an `error`, no `model`, a field of another type than OpenAI's, a repeated field.
    fn read(json: &str) -> Option<RawChunk> {
        if json.contains(['\n', '\r']) {
            return None;
        }
        let (head, choices) = peek::read::<Vec<Obj<PeekChoice<'_>>>>(json)?;
        let choices = choices.unwrap_or_default();
        let usage_only = choices.is_empty() && head.has_usage;
        let mut text = String::new();
        for Obj(delta) in choices.iter().filter_map(|Obj(c)| c.delta.as_ref()) {
            for s in [&delta.content, &delta.refusal, &delta.reasoning_content] {
                text.push_str(s.as_ref().map_or("", |t| &t.0));
            }
            for f in delta.tool_calls.iter().flatten() {
                let Some(Obj(f)) = &f.0.function else {
                    continue;
                };
                text.push_str(f.name.as_ref().map_or("", |t| &t.0));
                text.push_str(f.arguments.as_ref().map_or("", |t| &t.0));
            }
        }
        Some(RawChunk {
            json: String::new(),
            model: head.model,
            usage: head.usage,
            usage_only,
            text,
        })
    }
}

/// What the relay reads from a chunk's choices, borrowed from its text. A field of
/// another type fails the parse (the chunk then takes the general path, which ignores
/// such fields).
#[derive(Deserialize)]
struct PeekChoice<'a> {
    #[serde(borrow, default)]
    delta: Option<Obj<PeekDelta<'a>>>,
}

#[derive(Deserialize)]
struct PeekDelta<'a> {
    #[serde(borrow, default)]
    content: Option<Text<'a>>,
    #[serde(borrow, default)]
    refusal: Option<Text<'a>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Text<'a>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<Obj<PeekCall<'a>>>>,
}

#[derive(Deserialize)]
struct PeekCall<'a> {
    #[serde(borrow, default)]
    function: Option<Obj<PeekFunction<'a>>>,
}

#[derive(Deserialize)]
struct PeekFunction<'a> {
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    arguments: Option<Text<'a>>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// The same chunk through the raw path and the general one: same usage, text,
    /// usage-only verdict, and the same JSON sent (model swapped).
    fn same_both_ways(json: &str) -> bool {
        let raw = Chunk::parse(json.to_string()).unwrap();
        let general = Chunk::Value(serde_json::from_str(json).unwrap());
        assert_eq!(raw.usage(), general.usage(), "{json}");
        assert_eq!(raw.text(), general.text(), "{json}");
        assert_eq!(raw.is_usage_only(), general.is_usage_only(), "{json}");
        assert_eq!(raw.error(), general.error(), "{json}");
        let is_raw = matches!(raw, Chunk::Raw(_));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        raw.write_sse("public", "\"public\"", &mut a);
        general.write_sse("public", "\"public\"", &mut b);
        let sent = |out: &[u8]| -> Value {
            let s = std::str::from_utf8(out).unwrap();
            let line = s
                .strip_prefix("data: ")
                .unwrap()
                .strip_suffix("\n\n")
                .unwrap();
            assert!(!line.contains('\n'), "{s}");
            serde_json::from_str(line).unwrap()
        };
        assert_eq!(sent(&a), sent(&b), "{json}");
        is_raw
    }

    #[test]
    fn a_provider_chunk_is_sent_as_it_came_with_the_model_swapped() {
        let json = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"Hi \"you\"\u00e9"},"logprobs":null,"finish_reason":null}]}"#;
        let c = Chunk::parse(json.to_string()).unwrap();
        assert!(matches!(c, Chunk::Raw(_)));
        assert_eq!(c.text(), "Hi \"you\"é");
        assert_eq!(c.usage(), None);
        let mut out = Vec::new();
        c.write_sse("gpt-4o", "\"gpt-4o\"", &mut out);
        let want = json.replace("gpt-4o-2024-08-06", "gpt-4o");
        assert_eq!(String::from_utf8(out).unwrap(), format!("data: {want}\n\n"));
        assert!(same_both_ways(json));
    }

    #[test]
    fn usage_tool_calls_and_odd_shapes_read_the_same_as_the_general_path() {
        let raw = [
            // The usage chunk `include_usage` adds, with cached tokens.
            r#"{"id":"c","model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":4}}}"#,
            // A last chunk that has both a choice and usage (some servers).
            r#"{"model":"m","choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"completion_tokens":3}}"#,
            r#"{"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"ci"}}]}}]}"#,
            r#"{"model":"m","choices":[{"delta":{"content":null,"refusal":"no","reasoning_content":"hm"}}],"usage":null}"#,
            r#" { "model" : "m" , "nested" : {"model":"x","a":[1,{"b":"}"}]}, "choices" : [ ] } "#,
            r#"{"nested":{"model":"x"},"model":"m","choices":[{"delta":{"content":"a"}}]}"#,
            r#"{"model":"m","error":null,"choices":[]}"#,
            // The same key to a JSON reader: replaced where it is.
            r#"{"mod\u0065l":"m","choices":[]}"#,
        ];
        for json in raw {
            assert!(same_both_ways(json), "raw path not taken: {json}");
        }
        let general = [
            r#"{"choices":[{"delta":{"content":"no model"}}]}"#,
            r#"{"model":null,"choices":[]}"#,
            r#"{"model":3,"choices":[]}"#,
            r#"{"model":"m\u00e9","choices":[]}"#,
            r#"{"model":"m","choices":[{"delta":{"content":7}}]}"#,
            r#"{"model":"m","choices":{"0":{}}}"#,
            r#"{"model":"m","usage":{"prompt_tokens":1.5}}"#,
            r#"{"model":"m","prompt_tokens":3,"completion_tokens":4}"#,
            r#"{"model":"m","model":"n","choices":[]}"#,
            "{\"model\":\"m\",\n\"choices\":[]}",
            r#"["model","m"]"#,
            r#"["m"]"#,
            // Arrays where objects belong: the general path sees no fields in them.
            r#"{"model":"m","choices":[],"usage":[1,2]}"#,
            r#"{"model":"m","choices":[[{"content":"x"}]]}"#,
            r#"{"model":"m","choices":[{"delta":["x"]}]}"#,
        ];
        for json in general {
            assert!(!same_both_ways(json), "raw path taken: {json}");
        }
        let err = r#"{"model":"m","error":{"message":"overloaded"}}"#;
        let err = Chunk::parse(err.to_string()).unwrap();
        assert_eq!(err.error(), Some("overloaded"));
        assert!(Chunk::parse("{\"model\":".to_string()).is_err());
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z \"\\\\{}\\[\\],:]{0,12}",
            any::<String>().prop_map(|s| s.chars().take(8).collect()),
        ]
    }

    fn opt<T: std::fmt::Debug + Clone + 'static>(
        s: impl Strategy<Value = T> + 'static,
    ) -> impl Strategy<Value = Option<T>> {
        prop_oneof![Just(None), s.prop_map(Some)]
    }

    proptest! {
        /// Random chunks (fields present or not, null, of the wrong type, in any order,
        /// nested `model`s, strings with quotes and brackets) read and sent the same on
        /// both paths.
        #[test]
        fn random_chunks_read_and_send_the_same_on_both_paths(
            model in opt(prop_oneof![text().prop_map(Value::from), Just(Value::Null), Just(json!(3))]),
            content in opt(prop_oneof![text().prop_map(Value::from), Just(Value::Null), Just(json!(1))]),
            args in opt(text()),
            usage in opt((opt(0u64..1000), opt(0u64..1000), opt(0u64..10))),
            choices_empty in any::<bool>(),
            nested_model in opt(text()),
            order in any::<u64>(),
        ) {
            let mut fields: Vec<(&str, Value)> = vec![("id", json!("c1"))];
            if let Some(m) = model { fields.push(("model", m)); }
            if let Some(n) = nested_model { fields.push(("meta", json!({"model": n, "x": [n]}))); }
            let mut delta = serde_json::Map::new();
            if let Some(c) = content { delta.insert("content".into(), c); }
            if let Some(a) = args {
                delta.insert("tool_calls".into(), json!([{"index": 0, "function": {"name": "f", "arguments": a}}]));
            }
            let choices = if choices_empty { json!([]) } else { json!([{"index": 0, "delta": delta}]) };
            fields.push(("choices", choices));
            if let Some((p, c, cached)) = usage {
                let mut u = serde_json::Map::new();
                if let Some(p) = p { u.insert("prompt_tokens".into(), json!(p)); }
                if let Some(c) = c { u.insert("completion_tokens".into(), json!(c)); }
                if let Some(k) = cached { u.insert("prompt_tokens_details".into(), json!({"cached_tokens": k})); }
                fields.push(("usage", Value::Object(u)));
            }
            let n = fields.len();
            fields.rotate_left((order as usize) % n);
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{}", json!(k), v))
                .collect();
            same_both_ways(&format!("{{{}}}", body.join(",")));
        }
    }
}

//! A provider's whole (non-streamed) answer in OpenAI's `chat.completion` shape. One from
//! an OpenAI-format provider is kept as the text it came in, its usage and the place of
//! its `model` read by one borrowing parse ([`peek`](super::peek)), and goes to an OpenAI
//! client with only the model name swapped. What needs the answer as a tree — a
//! translation, the cache, the deny-list, a provider answer the borrowing read does not
//! take — gets the `Value`, which gives the same usage and the same JSON.

use std::ops::Range;

use hyper::body::Bytes;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::peek;
use super::translate::{openai_usage, Usage};

/// A whole answer.
#[derive(Debug)]
pub enum Whole {
    Value(Value),
    Raw(RawAnswer),
}

/// An OpenAI-format provider's answer as it came.
#[derive(Debug)]
pub struct RawAnswer {
    json: String,
    /// Where the top-level `model` string is in `json`, quotes included.
    model: Range<usize>,
    usage: Option<Usage>,
}

impl Whole {
    /// The answer in an OpenAI-format provider's body; an error when it is not JSON.
    pub fn parse(body: Vec<u8>) -> Result<Whole, serde_json::Error> {
        let json = match String::from_utf8(body) {
            Ok(s) => s,
            Err(e) => return serde_json::from_slice(e.as_bytes()).map(Whole::Value),
        };
        match peek::read::<IgnoredAny>(&json) {
            Some((head, _)) => Ok(Whole::Raw(RawAnswer {
                json,
                model: head.model,
                usage: head.usage,
            })),
            None => serde_json::from_str(&json).map(Whole::Value),
        }
    }

    /// The usage it reports, if any.
    pub fn usage(&self) -> Option<Usage> {
        match self {
            Whole::Value(v) => openai_usage(v),
            Whole::Raw(r) => r.usage,
        }
    }

    /// As a `Value`.
    pub fn into_value(self) -> Value {
        match self {
            Whole::Value(v) => v,
            Whole::Raw(r) => serde_json::from_str(&r.json).unwrap_or(Value::Null),
        }
    }

    /// The JSON body for an OpenAI client, with `model` set to `model`.
    pub fn into_body(self, model: &str) -> Bytes {
        match self {
            Whole::Raw(r) => {
                let quoted = Value::from(model).to_string();
                let (head, tail) = (r.json.get(..r.model.start), r.json.get(r.model.end..));
                let (head, tail) = (head.unwrap_or_default(), tail.unwrap_or_default());
                let mut out = String::with_capacity(head.len() + quoted.len() + tail.len());
                out.push_str(head);
                out.push_str(&quoted);
                out.push_str(tail);
                Bytes::from(out)
            }
            Whole::Value(mut v) => {
                set_model(&mut v, model);
                Bytes::from(v.to_string())
            }
        }
    }
}

impl From<Value> for Whole {
    fn from(v: Value) -> Whole {
        Whole::Value(v)
    }
}

/// Sets a `Value` answer's top-level `model`.
pub fn set_model(v: &mut Value, model: &str) {
    if let Some(o) = v.as_object_mut() {
        o.insert("model".into(), Value::String(model.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same answer both ways: same usage, and the same JSON sent (model swapped).
    fn same_both_ways(json: &str) -> bool {
        let raw = Whole::parse(json.as_bytes().to_vec()).unwrap();
        let general = Whole::Value(serde_json::from_str(json).unwrap());
        assert_eq!(raw.usage(), general.usage(), "{json}");
        let is_raw = matches!(raw, Whole::Raw(_));
        let sent = |b: Bytes| -> Value { serde_json::from_slice(&b).unwrap() };
        assert_eq!(
            sent(raw.into_body("pub\"lic")),
            sent(general.into_body("pub\"lic")),
            "{json}"
        );
        is_raw
    }

    /// The non-streamed example answer of the Chat Completions reference, pretty-printed
    /// as the API sends it.
    const REFERENCE: &str = r#"{
  "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
  "object": "chat.completion",
  "created": 1741569952,
  "model": "gpt-4.1-2025-04-14",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "Hello! How can I assist you today?",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 19,
    "completion_tokens": 10,
    "total_tokens": 29,
    "prompt_tokens_details": {
      "cached_tokens": 3,
      "audio_tokens": 0
    },
    "completion_tokens_details": {
      "reasoning_tokens": 0,
      "audio_tokens": 0,
      "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0
    }
  },
  "service_tier": "default"
}"#;

    #[test]
    fn a_provider_answer_goes_on_as_it_came_with_the_model_swapped() {
        let w = Whole::parse(REFERENCE.as_bytes().to_vec()).unwrap();
        assert!(matches!(w, Whole::Raw(_)));
        assert_eq!(
            w.usage(),
            Some(Usage {
                input: 19,
                output: 10,
                cached_input: 3
            })
        );
        let body = w.into_body("gpt-4.1");
        let want = REFERENCE.replace("\"gpt-4.1-2025-04-14\"", "\"gpt-4.1\"");
        assert_eq!(std::str::from_utf8(&body).unwrap(), want);
        assert!(same_both_ways(REFERENCE));
    }

    #[test]
    fn odd_answers_read_the_same_as_the_general_path() {
        let raw = [
            r#"{"model":"m","choices":"not checked here","usage":{"completion_tokens":2}}"#,
            r#"{"nested":{"model":"x"},"model":"m","usage":null}"#,
            r#"{"mod\u0065l":"m","usage":{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":1}}}"#,
        ];
        for json in raw {
            assert!(same_both_ways(json), "raw path not taken: {json}");
        }
        let general = [
            r#"{"choices":[]}"#,
            r#"{"model":"m\u00e9","usage":{"prompt_tokens":1}}"#,
            r#"{"model":"m","usage":{"prompt_tokens":1.5}}"#,
            r#"{"model":"m","prompt_tokens":3,"completion_tokens":4}"#,
            r#"{"model":"m","model":"n"}"#,
            r#"{"model":"m","error":{"message":"x"}}"#,
            r#"{"model":"m","usage":[1]}"#,
            r#"["model","m"]"#,
            r#"7"#,
        ];
        for json in general {
            assert!(!same_both_ways(json), "raw path taken: {json}");
        }
        assert!(Whole::parse(b"{\"model\":".to_vec()).is_err());
        assert!(Whole::parse(b"{\"model\":\"\xff\"}".to_vec()).is_err());
        assert!(Whole::parse(Vec::new()).is_err());
    }
}

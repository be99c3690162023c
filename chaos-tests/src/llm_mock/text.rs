//! Deterministic content shared by every flavor: word counting, the reply text and its
//! word-by-word split, tool-call arguments from a JSON schema, embeddings, base64.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Dimensions of an embedding when the request does not ask for a number.
pub const DEFAULT_DIMENSIONS: usize = 8;

/// Whitespace-separated words: the mock's token count.
pub fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Splits `s` into chunks of one word plus the whitespace after it (leading whitespace
/// goes with the first word), so that the chunks concatenate back to `s`.
pub(crate) fn word_chunks(s: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut in_space = false;
    let mut seen_word = false;
    for c in s.chars() {
        let space = c.is_whitespace();
        if !space && in_space && seen_word {
            chunks.push(std::mem::take(&mut current));
        }
        seen_word |= !space;
        in_space = space;
        current.push(c);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// The reply to a request: the configured text or `mock reply to: <last user text>`,
/// cut to `max_tokens` words. Returns the text and whether it was cut.
pub(crate) fn reply_text(
    configured: Option<&str>,
    last_user: &str,
    max_tokens: Option<u64>,
) -> (String, bool) {
    let full = match configured {
        Some(text) => text.to_string(),
        None => format!("mock reply to: {}", last_user.trim()),
    };
    match max_tokens {
        Some(max) if words(&full) > max => {
            let cut: String = word_chunks(&full).into_iter().take(max as usize).collect();
            (cut.trim_end().to_string(), true)
        }
        _ => (full, false),
    }
}

/// What a chat request gets: text, or a call of one tool.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    /// `cut`: the text was truncated to the request's max tokens.
    Text { text: String, cut: bool },
    /// `args`: the arguments as a JSON string (see [`tool_arguments`]).
    Tool { name: String, args: String },
}

impl Output {
    /// The reply (or arguments) text, its output tokens, and its stream pieces.
    pub fn text(&self) -> &str {
        match self {
            Output::Text { text, .. } => text,
            Output::Tool { args, .. } => args,
        }
    }

    pub fn tokens(&self) -> u64 {
        words(self.text())
    }

    pub fn pieces(&self) -> Vec<String> {
        word_chunks(self.text())
    }
}

/// The output for a request: a call of `tool` (name, parameters schema) if one was
/// picked, else the (possibly cut) reply text.
pub(crate) fn output(
    configured: Option<&str>,
    last_user: &str,
    max_tokens: Option<u64>,
    tool: Option<(&str, &Value)>,
) -> Output {
    match tool {
        Some((name, schema)) => Output::Tool {
            name: name.to_string(),
            args: tool_arguments(schema),
        },
        None => {
            let (text, cut) = reply_text(configured, last_user, max_tokens);
            Output::Text { text, cut }
        }
    }
}

/// A value that satisfies `schema` in the simple cases: its first `enum` value, else by
/// `type` (any case, the first of a list): `"mock"`, `1`, `true`, `[]`, `null`, or an
/// object with a value for every property (sorted by name).
fn sample(schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return first.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.to_ascii_lowercase(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| !t.eq_ignore_ascii_case("null"))
            .unwrap_or("null")
            .to_ascii_lowercase(),
        _ if schema.get("properties").is_some() => "object".into(),
        _ => "string".into(),
    };
    match ty.as_str() {
        "integer" | "number" => Value::from(1),
        "boolean" => Value::Bool(true),
        "array" => Value::Array(Vec::new()),
        "null" => Value::Null,
        "object" => Value::Object(sample_object(schema)),
        _ => Value::from("mock"),
    }
}

fn sample_object(schema: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            out.insert(name.clone(), sample(prop));
        }
    }
    out
}

/// The arguments of a mock tool call for a tool with this parameters schema, as the JSON
/// string sent on the wire: `{"key": value, "other": value}` (keys sorted; Python
/// `json.dumps` style, so that its words can be streamed and counted), `{}` without
/// properties.
pub fn tool_arguments(schema: &Value) -> String {
    let object = sample_object(schema);
    if object.is_empty() {
        return "{}".into();
    }
    let mut fields: Vec<(&String, &Value)> = object.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let fields: Vec<String> = fields
        .into_iter()
        .map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), v))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// The mock embedding of `input`: `dimensions` floats from SHA-256 of the input (chained
/// for more than 16 dimensions), scaled to unit length.
pub fn embedding(input: &str, dimensions: usize) -> Vec<f32> {
    let mut raw = Vec::with_capacity(dimensions);
    let mut block = 0u32;
    while raw.len() < dimensions {
        let mut hasher = Sha256::new();
        hasher.update(input.as_bytes());
        hasher.update(block.to_le_bytes());
        let digest = hasher.finalize();
        for pair in digest.chunks(2) {
            if raw.len() == dimensions {
                break;
            }
            let v = u16::from_le_bytes([pair[0], pair[1]]);
            raw.push(f32::from(v) / 32767.5 - 1.0);
        }
        block += 1;
    }
    let norm = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        raw.iter_mut().for_each(|v| *v /= norm);
    }
    raw
}

/// Standard base64 (with padding) of the little-endian bytes of `values`: OpenAI's
/// `encoding_format: "base64"`.
pub(crate) fn f32_base64(values: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The raw value of `name` in a query string.
pub(crate) fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Texts of a content value that is a string or an array of parts with `text` (OpenAI
/// parts, Anthropic blocks; Anthropic `tool_result` blocks contribute their content).
pub(crate) fn content_texts(content: &Value, out: &mut Vec<String>) {
    match content {
        Value::String(s) => out.push(s.clone()),
        Value::Array(parts) => {
            for part in parts {
                if let Some(text) = part.get("text").and_then(Value::as_str) {
                    out.push(text.to_string());
                } else if let Some(inner) = part.get("content") {
                    content_texts(inner, out);
                }
            }
        }
        _ => {}
    }
}

/// Words over every text of `content` (see [`content_texts`]).
pub(crate) fn content_words(content: &Value) -> u64 {
    let mut texts = Vec::new();
    content_texts(content, &mut texts);
    texts.iter().map(|t| words(t)).sum()
}

/// The texts of `content` joined by a space.
pub(crate) fn content_joined(content: &Value) -> String {
    let mut texts = Vec::new();
    content_texts(content, &mut texts);
    texts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chunks_concatenate_back() {
        for s in ["mock reply to: hi  there\n", "  lead", "one", "", "a b c"] {
            assert_eq!(word_chunks(s).concat(), s);
        }
        assert_eq!(word_chunks("a b  c"), vec!["a ", "b  ", "c"]);
    }

    #[test]
    fn reply_is_cut_to_max_tokens() {
        assert_eq!(
            reply_text(None, "hello big world", Some(4)),
            ("mock reply to: hello".to_string(), true)
        );
        assert_eq!(reply_text(Some("fixed"), "x", Some(4)).0, "fixed");
    }

    #[test]
    fn arguments_follow_the_schema() {
        let schema = json!({"type": "object", "properties": {
            "city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]},
            "days": {"type": "INTEGER"}}});
        let args = tool_arguments(&schema);
        assert_eq!(args, r#"{"city": "mock", "days": 1, "unit": "c"}"#);
        let parsed: Value = serde_json::from_str(&args).unwrap();
        assert_eq!(parsed["unit"], "c");
        assert_eq!(tool_arguments(&json!({})), "{}");
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embedding("hello", 8);
        assert_eq!(a, embedding("hello", 8));
        assert_ne!(a, embedding("hellp", 8));
        assert_eq!(embedding("x", 40).len(), 40);
        let norm: f32 = a.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(f32_base64(&[1.0]), "AACAPw==");
    }
}

//! OpenAI `/v1/embeddings` ↔ Gemini `batchEmbedContents`
//! (`POST /v1beta/models/{model}:batchEmbedContents`), which embeds a list of texts in
//! one call. Token-array inputs are refused (Gemini takes text only); `dimensions` →
//! `outputDimensionality`. Gemini returns floats only: for `encoding_format: "base64"`
//! (the OpenAI Python SDK's default) the core re-encodes the answer with
//! `openai::encode_embeddings_base64`.

use serde_json::{json, Value};

use super::PROVIDER;
use crate::llm::translate::util::{as_object, get_str, invalid, unsupported};
use crate::llm::translate::TranslateError;

/// OpenAI's bound on the number of inputs of one embeddings request.
const MAX_INPUTS: usize = 2048;

/// An OpenAI embeddings request → a `batchEmbedContents` body for `upstream_model`.
pub fn embeddings_request_to_gemini(
    openai_embeddings_req: &Value,
    upstream_model: &str,
) -> Result<Value, TranslateError> {
    let obj = as_object(openai_embeddings_req, "request body")?;
    let texts: Vec<&str> = match obj.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut texts = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => texts.push(s.as_str()),
                    Value::Number(_) | Value::Array(_) => {
                        return Err(unsupported("input (token arrays)", PROVIDER))
                    }
                    _ => return Err(invalid(format!("input[{i}] must be a string"))),
                }
            }
            texts
        }
        _ => {
            return Err(invalid(
                "`input` is required: a string or a non-empty array of strings",
            ))
        }
    };
    if texts.len() > MAX_INPUTS {
        return Err(invalid(format!("`input` has more than {MAX_INPUTS} items")));
    }
    if let Some(f) = obj.get("encoding_format").filter(|v| !v.is_null()) {
        if !matches!(f.as_str(), Some("float") | Some("base64")) {
            return Err(invalid("`encoding_format` must be float or base64"));
        }
    }
    let dims = match obj.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(d) => Some(
            d.as_u64()
                .filter(|d| *d >= 1)
                .ok_or_else(|| invalid("`dimensions` must be a positive integer"))?,
        ),
    };
    let model = if upstream_model.starts_with("models/") {
        upstream_model.to_string()
    } else {
        format!("models/{upstream_model}")
    };
    let requests: Vec<Value> = texts
        .into_iter()
        .map(|t| {
            let mut r = json!({"model": model, "content": {"parts": [{"text": t}]}});
            if let Some(d) = dims {
                r["outputDimensionality"] = json!(d);
            }
            r
        })
        .collect();
    Ok(json!({"requests": requests}))
}

/// A `batchEmbedContents` response → an OpenAI `list` of `embedding` objects (float
/// vectors) under `public_model`. Gemini reports no token counts, so the core passes its
/// estimate of `input_tokens`. When the client asked for `encoding_format: "base64"`,
/// follow with [`openai::encode_embeddings_base64`](crate::llm::translate::openai::encode_embeddings_base64).
pub fn embeddings_response_from_gemini(
    resp: &Value,
    public_model: &str,
    input_tokens: u64,
) -> Result<Value, TranslateError> {
    if let Some(e) = resp.get("error") {
        return Err(invalid(format!(
            "gemini error: {}",
            get_str(e, "message").unwrap_or("no message")
        )));
    }
    let embeddings = resp
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("gemini embeddings response has no `embeddings` array"))?;
    let mut data = Vec::with_capacity(embeddings.len());
    for (i, e) in embeddings.iter().enumerate() {
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(format!("gemini embeddings[{i}] has no `values` array")))?;
        if !values.iter().all(Value::is_number) {
            return Err(invalid(format!(
                "gemini embeddings[{i}] holds a non-number"
            )));
        }
        data.push(json!({"object": "embedding", "index": i, "embedding": values}));
    }
    Ok(json!({
        "object": "list",
        "data": data,
        "model": public_model,
        "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens},
    }))
}

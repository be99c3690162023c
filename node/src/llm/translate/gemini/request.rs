//! OpenAI chat request → Gemini `GenerateContentRequest`.
//!
//! Decisions: mapped to `generationConfig` — temperature, top_p, `top_k` (extension),
//! max tokens, stop, `n` → candidateCount, presence/frequency penalties, seed, and
//! `response_format` (json_object → `responseMimeType`, json_schema → also
//! `responseSchema`). Refused with `Unsupported`: `logprobs`, `top_logprobs`,
//! non-empty `logit_bias`, `audio`, non-text `modalities`, `prediction`,
//! `reasoning_effort`, `web_search_options`, deprecated `functions`/`function_call`,
//! non-function tools, `file_id` files and audio parts. `parallel_tool_calls` and
//! `user` are ignored (Gemini has no such controls). Tool messages need the function
//! name, which is looked up from the earlier assistant `tool_calls` by id. Thought
//! signatures travel in `tool_calls[].extra_content.google.thought_signature` (as on
//! Google's OpenAI-compatible endpoint); a first call without one gets the documented
//! `skip_thought_signature_validator`.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::schema::to_gemini_schema;
use super::PROVIDER;
use crate::llm::translate::util::{
    as_object, function_tools, get_str, invalid, is_set, parse_arguments, parse_data_url,
    text_content, unsupported,
};
use crate::llm::translate::TranslateError;

/// `thoughtSignature` for a replayed function call whose signature is unknown
/// (<https://ai.google.dev/gemini-api/docs/thought-signatures>).
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Translates an OpenAI chat request into a Gemini `generateContent` body (the same
/// body serves `streamGenerateContent`).
pub fn request_to_gemini(openai_req: &Value) -> Result<Value, TranslateError> {
    let obj = as_object(openai_req, "request body")?;
    reject_unsupported(obj)?;
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`messages` is required and must be an array"))?;

    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut call_names: HashMap<String, String> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        match get_str(m, "role") {
            Some("system") | Some("developer") => {
                let text = text_content(m.get("content"), &format!("{at}.content"))?;
                if !text.is_empty() {
                    system.push(json!({"text": text}));
                }
            }
            Some("user") => push(&mut contents, "user", user_parts(m.get("content"), &at)?),
            Some("assistant") => push(
                &mut contents,
                "model",
                model_parts(m, &at, &mut call_names)?,
            ),
            Some("tool") => {
                let id = get_str(m, "tool_call_id")
                    .ok_or_else(|| invalid(format!("{at}.tool_call_id must be a string")))?;
                let name = call_names.get(id).ok_or_else(|| {
                    invalid(format!(
                        "{at}.tool_call_id `{id}` matches no earlier assistant tool call"
                    ))
                })?;
                let text = text_content(m.get("content"), &format!("{at}.content"))?;
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"content": text}),
                };
                push(
                    &mut contents,
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
            Some("function") => return Err(unsupported("function messages", PROVIDER)),
            Some(other) => return Err(invalid(format!("{at}.role: unknown role `{other}`"))),
            None => return Err(invalid(format!("{at}.role must be a string"))),
        }
    }
    if contents.is_empty() {
        return Err(invalid(
            "`messages` must contain at least one user or assistant message",
        ));
    }

    let mut out = Map::new();
    out.insert(
        "contents".into(),
        Value::Array(
            contents
                .into_iter()
                .map(|(role, parts)| json!({"role": role, "parts": parts}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    if let Some(tools) = obj.get("tools").filter(|v| !v.is_null()) {
        let decls = function_declarations(tools)?;
        if !decls.is_empty() {
            out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        }
    }
    if let Some(tc) = tool_config(obj)? {
        if out.contains_key("tools") {
            out.insert("toolConfig".into(), tc);
        }
    }
    let config = generation_config(obj)?;
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(out))
}

fn push(contents: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(parts),
        _ => contents.push((role, parts)),
    }
}

fn reject_unsupported(obj: &Map<String, Value>) -> Result<(), TranslateError> {
    if obj.get("logprobs") == Some(&Value::Bool(true)) {
        return Err(unsupported("logprobs", PROVIDER));
    }
    if obj
        .get("logit_bias")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        return Err(unsupported("logit_bias", PROVIDER));
    }
    for key in [
        "top_logprobs",
        "audio",
        "prediction",
        "reasoning_effort",
        "web_search_options",
        "functions",
        "function_call",
    ] {
        if is_set(obj, key) {
            return Err(unsupported(key, PROVIDER));
        }
    }
    if let Some(m) = obj.get("modalities").filter(|v| !v.is_null()) {
        if m.as_array()
            .is_none_or(|a| a.iter().any(|x| x.as_str() != Some("text")))
        {
            return Err(unsupported("modalities", PROVIDER));
        }
    }
    Ok(())
}

fn user_parts(content: Option<&Value>, at: &str) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        Some(Value::Array(parts)) => parts,
        other => {
            let text = text_content(other, &format!("{at}.content"))?;
            return Ok(if text.is_empty() {
                vec![]
            } else {
                vec![json!({"text": text})]
            });
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let pat = format!("{at}.content[{j}]");
        match get_str(part, "type") {
            Some("text") => {
                let text = get_str(part, "text")
                    .ok_or_else(|| invalid(format!("{pat}.text must be a string")))?;
                if !text.is_empty() {
                    out.push(json!({"text": text}));
                }
            }
            Some("image_url") => {
                let iu = part.get("image_url");
                let url = iu
                    .and_then(|u| u.as_str().or_else(|| get_str(u, "url")))
                    .ok_or_else(|| invalid(format!("{pat}.image_url.url must be a string")))?;
                out.push(media_part(url, &pat)?);
            }
            Some("file") => {
                let file = part.get("file").unwrap_or(&Value::Null);
                let data = get_str(file, "file_data")
                    .ok_or_else(|| unsupported(format!("{pat}.file.file_id"), PROVIDER))?;
                out.push(media_part(data, &pat)?);
            }
            Some("input_audio") => return Err(unsupported("input_audio", PROVIDER)),
            Some(other) => {
                return Err(invalid(format!(
                    "{pat}.type: unknown content part type `{other}`"
                )))
            }
            None => return Err(invalid(format!("{pat}.type must be a string"))),
        }
    }
    Ok(out)
}

/// A `data:` URL → `inlineData`; an http(s) URL → `fileData` (MIME type guessed from
/// the extension when it is a common one).
fn media_part(url: &str, at: &str) -> Result<Value, TranslateError> {
    if url.starts_with("data:") {
        let (mime, data) = parse_data_url(url)
            .ok_or_else(|| invalid(format!("{at}: data URLs must be base64 with a media type")))?;
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(invalid(format!("{at}: the URL must be http(s) or data:")));
    }
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    let mime = [
        (".png", "image/png"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".webp", "image/webp"),
        (".gif", "image/gif"),
        (".heic", "image/heic"),
        (".pdf", "application/pdf"),
    ]
    .iter()
    .find(|(ext, _)| path.ends_with(ext))
    .map(|(_, m)| *m);
    let mut file = json!({"fileUri": url});
    if let Some(m) = mime {
        file["mimeType"] = json!(m);
    }
    Ok(json!({"fileData": file}))
}

fn model_parts(
    m: &Value,
    at: &str,
    names: &mut HashMap<String, String>,
) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::new();
    let text = text_content(m.get("content"), &format!("{at}.content"))?;
    if !text.is_empty() {
        out.push(json!({"text": text}));
    }
    for (j, call) in m
        .get("tool_calls")
        .filter(|v| !v.is_null())
        .map(|v| {
            v.as_array()
                .ok_or_else(|| invalid(format!("{at}.tool_calls must be an array")))
        })
        .transpose()?
        .into_iter()
        .flatten()
        .enumerate()
    {
        let cat = format!("{at}.tool_calls[{j}]");
        let f = call.get("function").unwrap_or(&Value::Null);
        let name = get_str(f, "name")
            .ok_or_else(|| invalid(format!("{cat}.function.name must be a string")))?;
        let args = parse_arguments(f.get("arguments"), &format!("{cat}.function.arguments"))?;
        if let Some(id) = get_str(call, "id") {
            names.insert(id.to_string(), name.to_string());
        }
        let mut part = json!({"functionCall": {"name": name, "args": args}});
        let signature = call
            .get("extra_content")
            .and_then(|e| e.get("google"))
            .and_then(|g| get_str(g, "thought_signature"));
        match signature {
            Some(sig) => part["thoughtSignature"] = json!(sig),
            // Gemini 3 rejects a replayed call without one; this is the documented
            // value for histories that lost it (or came from another model).
            None if j == 0 => part["thoughtSignature"] = json!(SKIP_SIGNATURE),
            None => {}
        }
        out.push(part);
    }
    Ok(out)
}

fn function_declarations(tools: &Value) -> Result<Vec<Value>, TranslateError> {
    let tools = function_tools(tools, PROVIDER)?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, f, name) in tools {
        let mut decl = json!({"name": name});
        if let Some(d) = get_str(f, "description") {
            decl["description"] = json!(d);
        }
        if let Some(p) = f.get("parameters").filter(|p| !p.is_null()) {
            // Gemini rejects an object schema without properties: a function without
            // parameters simply has none.
            let empty = p
                .get("properties")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty());
            if !empty {
                decl["parameters"] =
                    to_gemini_schema(p, &format!("tools[{i}].function.parameters"))?;
            }
        }
        out.push(decl);
    }
    Ok(out)
}

fn tool_config(obj: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    let config = match obj.get("tool_choice") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "none" => json!({"mode": "NONE"}),
            "required" => json!({"mode": "ANY"}),
            other => return Err(invalid(format!("`tool_choice`: unknown value `{other}`"))),
        },
        Some(v) => match (
            get_str(v, "type"),
            v.get("function").and_then(|f| get_str(f, "name")),
        ) {
            (Some("function"), Some(name)) => {
                json!({"mode": "ANY", "allowedFunctionNames": [name]})
            }
            _ => return Err(unsupported("tool_choice", PROVIDER)),
        },
    };
    Ok(Some(json!({"functionCallingConfig": config})))
}

fn generation_config(obj: &Map<String, Value>) -> Result<Map<String, Value>, TranslateError> {
    let mut gc = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ] {
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()) {
            if !v.is_number() {
                return Err(invalid(format!("`{from}` must be a number")));
            }
            gc.insert(to.into(), v.clone());
        }
    }
    if let Some(n) = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_u64))
    {
        gc.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(n) = obj.get("n").and_then(Value::as_u64).filter(|n| *n != 1) {
        gc.insert("candidateCount".into(), json!(n));
    }
    match obj.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            gc.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            if !a.is_empty() {
                gc.insert("stopSequences".into(), Value::Array(a.clone()));
            }
        }
        Some(_) => return Err(invalid("`stop` must be a string or an array of strings")),
    }
    if let Some(rf) = obj.get("response_format").filter(|v| !v.is_null()) {
        match get_str(rf, "type") {
            Some("text") => {}
            Some("json_object") => {
                gc.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                gc.insert("responseMimeType".into(), json!("application/json"));
                if let Some(schema) = rf
                    .get("json_schema")
                    .and_then(|j| j.get("schema"))
                    .filter(|s| !s.is_null())
                {
                    gc.insert(
                        "responseSchema".into(),
                        to_gemini_schema(schema, "response_format.json_schema.schema")?,
                    );
                }
            }
            _ => {
                return Err(invalid(
                    "`response_format.type` must be text, json_object or json_schema",
                ))
            }
        }
    }
    Ok(gc)
}

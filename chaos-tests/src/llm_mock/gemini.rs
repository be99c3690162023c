//! Gemini API (`/v1beta/...` or `/v1/...`): `models/{model}:generateContent`,
//! `:streamGenerateContent` (`?alt=sse`: SSE `data:` events framed with CRLF as Google
//! sends them; otherwise one JSON array streamed element by element), `:countTokens`,
//! `:embedContent`, `:batchEmbedContents`, `GET models[/{model}]`. Key in `x-goog-api-key`
//! or `?key=`. Errors are `{"error":{"code","message","status"}}`: a wrong key is Google's
//! 400 `INVALID_ARGUMENT` (`API_KEY_INVALID`), a missing one 403 `PERMISSION_DENIED`.

use hyper::body::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use super::server::{Call, Reply};
use super::text::{self, Output, DEFAULT_DIMENSIONS};
use super::Shared;

const JSON: &str = "application/json; charset=UTF-8";

enum Endpoint<'a> {
    Models,
    Model(&'a str),
    Call(&'a str, &'a str),
}

fn route(call: &Call) -> Option<Endpoint<'_>> {
    let rest = call
        .path
        .strip_prefix("/v1beta/")
        .or_else(|| call.path.strip_prefix("/v1/"))?;
    if rest == "models" {
        return (call.method == Method::GET).then_some(Endpoint::Models);
    }
    let rest = rest.strip_prefix("models/").filter(|r| !r.is_empty())?;
    match rest.split_once(':') {
        Some((model, method)) if call.method == Method::POST && !model.is_empty() => matches!(
            method,
            "generateContent"
                | "streamGenerateContent"
                | "countTokens"
                | "embedContent"
                | "batchEmbedContents"
        )
        .then_some(Endpoint::Call(model, method)),
        None if call.method == Method::GET => Some(Endpoint::Model(rest)),
        _ => None,
    }
}

pub(crate) fn handle(shared: &Shared, call: &Call) -> Reply {
    let Some(endpoint) = route(call) else {
        let message = format!(
            "The requested URL {} was not found on this server.",
            call.path
        );
        return error(404, &message);
    };
    let key = call
        .header("x-goog-api-key")
        .or_else(|| call.query_param("key"))
        .filter(|k| !k.is_empty());
    match (key, shared.opts.api_key.as_deref()) {
        (None, _) => {
            return error(
                403,
                "Method doesn't allow unregistered callers (callers without established \
                 identity). Please use API Key or other form of API consumer identity to call \
                 this API.",
            )
        }
        (Some(got), Some(want)) if got != want => {
            let reply = json!({"error": {"code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"}}]}});
            return Reply::json(400, reply).content_type(JSON);
        }
        _ => {}
    }
    let reply = match endpoint {
        Endpoint::Models => Reply::json(200, json!({"models": [model_object("gemini-2.0-flash")]})),
        Endpoint::Model(model) => Reply::json(200, model_object(model)),
        Endpoint::Call(model, method) => match call.object() {
            None => error(400, "Invalid JSON payload received."),
            Some(body) => match method {
                "embedContent" => embed_one(body)
                    .map(|e| Reply::json(200, json!({"embedding": e})))
                    .unwrap_or_else(|| {
                        error(
                            400,
                            "* EmbedContentRequest.content: content is not specified\n",
                        )
                    }),
                "batchEmbedContents" => batch_embed(body),
                "countTokens" => {
                    let request = body.get("generateContentRequest").unwrap_or(body);
                    Reply::json(200, json!({"totalTokens": prompt_tokens(request)}))
                }
                _ => generate(shared, call, body, model, method == "streamGenerateContent"),
            },
        },
    };
    match reply {
        Reply::Json { .. } => reply.content_type(JSON),
        stream => stream,
    }
}

fn model_object(model: &str) -> Value {
    json!({"name": format!("models/{model}"), "displayName": model, "version": "001",
        "inputTokenLimit": 1_048_576, "outputTokenLimit": 8192,
        "supportedGenerationMethods": ["generateContent", "countTokens"]})
}

/// The `google.rpc.Status` error object, its `status` name from the HTTP code.
pub(crate) fn error(code: u16, message: &str) -> Reply {
    let status = match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    };
    Reply::json(
        code,
        json!({"error": {"code": code, "message": message, "status": status}}),
    )
    .content_type(JSON)
}

/// The answer to an injected `Fault::Status` (with a `RetryInfo` detail when set).
pub(crate) fn fault(code: u16, retry_after: Option<u64>) -> Reply {
    let message = match code {
        429 => "Resource has been exhausted (e.g. check quota).",
        503 => "The model is overloaded. Please try again later.",
        500..=599 => "An internal error has occurred. Please retry.",
        _ => "Mock fault.",
    };
    let reply = error(code, message);
    match (reply, retry_after) {
        (
            Reply::Json {
                status,
                content_type,
                headers,
                mut body,
            },
            Some(secs),
        ) => {
            body["error"]["details"] = json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": format!("{secs}s")}]);
            Reply::Json {
                status,
                content_type,
                headers,
                body,
            }
        }
        (reply, _) => reply,
    }
}

/// Text of every `parts[].text` of one `Content`.
fn parts_text(content: &Value) -> Vec<&str> {
    content
        .get("parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text")?.as_str())
                .collect()
        })
        .unwrap_or_default()
}

fn field<'a>(body: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    body.get(camel).or_else(|| body.get(snake))
}

fn contents(body: &Value) -> &[Value] {
    body.get("contents")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Words of the system instruction and of every text part.
fn prompt_tokens(body: &Value) -> u64 {
    let system = field(body, "systemInstruction", "system_instruction").map_or(0, |s| {
        parts_text(s).iter().map(|t| text::words(t)).sum::<u64>()
    });
    system
        + contents(body)
            .iter()
            .flat_map(parts_text)
            .map(text::words)
            .sum::<u64>()
}

/// The function to call: the first allowed one under mode `ANY`, else the first declared;
/// none under `NONE`, or under `AUTO` when the last content carries a `functionResponse`.
fn pick_tool(body: &Value) -> Option<(&str, &Value)> {
    fn name_of(d: &Value) -> Option<&str> {
        d.get("name").and_then(Value::as_str)
    }
    let decls: Vec<&Value> = body
        .get("tools")?
        .as_array()?
        .iter()
        .filter_map(|t| field(t, "functionDeclarations", "function_declarations")?.as_array())
        .flatten()
        .filter(|d| d.get("name").and_then(Value::as_str).is_some())
        .collect();
    let config = field(body, "toolConfig", "tool_config")
        .and_then(|c| field(c, "functionCallingConfig", "function_calling_config"));
    let mode = config
        .and_then(|c| c.get("mode"))
        .and_then(Value::as_str)
        .unwrap_or("AUTO")
        .to_ascii_uppercase();
    let allowed = config
        .and_then(|c| field(c, "allowedFunctionNames", "allowed_function_names"))
        .and_then(|a| a.get(0))
        .and_then(Value::as_str);
    let after_response = contents(body).last().is_some_and(|c| {
        c.get("parts")
            .and_then(Value::as_array)
            .is_some_and(|parts| {
                parts
                    .iter()
                    .any(|p| field(p, "functionResponse", "function_response").is_some())
            })
    });
    if mode == "NONE" || (mode != "ANY" && after_response) {
        return None;
    }
    let decl = match allowed.filter(|_| mode == "ANY") {
        Some(name) => decls.into_iter().find(|d| name_of(d) == Some(name)),
        None => decls.into_iter().next(),
    }?;
    let schema = decl
        .get("parameters")
        .or_else(|| field(decl, "parametersJsonSchema", "parameters_json_schema"))
        .unwrap_or(&Value::Null);
    Some((name_of(decl)?, schema))
}

fn generate(shared: &Shared, call: &Call, body: &Value, model: &str, stream: bool) -> Reply {
    if body.get("contents").and_then(Value::as_array).is_none() {
        return error(
            400,
            "* GenerateContentRequest.contents: contents is not specified\n",
        );
    }
    let prompt = prompt_tokens(body);
    let last_user = contents(body)
        .iter()
        .rev()
        .find(|c| c.get("role").and_then(Value::as_str).unwrap_or("user") == "user")
        .map(|c| parts_text(c).join(" "))
        .unwrap_or_default();
    let max_tokens = field(body, "generationConfig", "generation_config")
        .and_then(|g| field(g, "maxOutputTokens", "max_output_tokens"))
        .and_then(Value::as_u64);
    let out = text::output(
        shared.opts.reply.as_deref(),
        &last_user,
        max_tokens,
        pick_tool(body),
    );
    let finish = match &out {
        Output::Text { cut: true, .. } => "MAX_TOKENS",
        _ => "STOP",
    };
    let response_id = format!("mock{}", shared.next_seq());
    let usage = json!({"promptTokenCount": prompt, "candidatesTokenCount": out.tokens(),
        "totalTokenCount": prompt + out.tokens(),
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]});
    let response = |parts: Value, last: bool| {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        let usage = if last {
            candidate["finishReason"] = finish.into();
            usage.clone()
        } else {
            json!({"promptTokenCount": prompt, "totalTokenCount": prompt})
        };
        json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model,
            "responseId": response_id})
    };
    let pieces: Vec<Value> = match &out {
        Output::Tool { name, args } => vec![json!([{"functionCall": {"name": name,
            "args": serde_json::from_str::<Value>(args).unwrap_or_default()}}])],
        Output::Text { text, .. } if !stream => vec![json!([{"text": text}])],
        Output::Text { .. } => {
            let pieces = out.pieces();
            if pieces.is_empty() {
                vec![json!([{"text": ""}])]
            } else {
                pieces.into_iter().map(|p| json!([{"text": p}])).collect()
            }
        }
    };
    if !stream {
        let parts = pieces.into_iter().next().unwrap_or_default();
        return Reply::json(200, response(parts, true));
    }
    let n = pieces.len();
    let events = pieces
        .into_iter()
        .enumerate()
        .map(|(i, parts)| response(parts, i + 1 == n));
    if call.query_param("alt") == Some("sse") {
        let chunks = events
            .map(|e| Bytes::from(format!("data: {e}\r\n\r\n")))
            .collect();
        return Reply::Stream {
            content_type: "text/event-stream",
            headers: Vec::new(),
            chunks,
        };
    }
    // Without alt=sse: one JSON array, an element per chunk.
    let chunks = events
        .enumerate()
        .map(|(i, e)| {
            let open = if i == 0 { "[" } else { ",\r\n" };
            let close = if i + 1 == n { "]" } else { "" };
            Bytes::from(format!("{open}{e}{close}"))
        })
        .collect();
    Reply::Stream {
        content_type: JSON,
        headers: Vec::new(),
        chunks,
    }
}

/// `{"values": [...]}` for an `EmbedContentRequest`-shaped object.
fn embed_one(request: &Value) -> Option<Value> {
    let content = request.get("content")?;
    let text = parts_text(content).join(" ");
    let dims = field(request, "outputDimensionality", "output_dimensionality")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_DIMENSIONS, |d| d.clamp(1, 4096) as usize);
    Some(json!({"values": text::embedding(&text, dims)}))
}

fn batch_embed(body: &Value) -> Reply {
    let Some(requests) = body.get("requests").and_then(Value::as_array) else {
        return error(
            400,
            "* BatchEmbedContentsRequest.requests: requests is not specified\n",
        );
    };
    match requests.iter().map(embed_one).collect::<Option<Vec<_>>>() {
        Some(embeddings) => Reply::json(200, json!({"embeddings": embeddings})),
        None => error(
            400,
            "* EmbedContentRequest.content: content is not specified\n",
        ),
    }
}

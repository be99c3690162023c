//! Routes whose target is a model or a prompt template ("prompt encapsulation"): the
//! route's own policies (auth, access, quotas) have run; here the body becomes a chat
//! request and goes through the same pipeline as `/v1/chat/completions`. The route
//! grants access to its model: no model Permission is needed.

use std::time::Instant;

use http::request::Parts;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use raftgate_store::model::{Kind, Model, Resource, TemplateVersion};
use serde_json::{json, Map, Value};

use super::error::{Flavor, LlmError};
use super::translate::openai;
use super::{Api, Llm, Who, MAX_REQUEST};
use crate::proxy::access::Outcome;
use crate::proxy::compile::{Compiled, LlmTarget, RouteRt};
use crate::proxy::ProxyBody;

impl Llm {
    /// Serves a route to a model or a prompt; errors in the OpenAI error shape.
    #[allow(clippy::too_many_arguments)]
    pub async fn serve_route(
        &self,
        target: &LlmTarget,
        route: &RouteRt,
        compiled: &Compiled,
        who: Who,
        parts: &Parts,
        body: Incoming,
        outcome: &mut Outcome,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        match self
            .route_call(target, route, compiled, who, parts, body, started)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                outcome.error = Some(e.code);
                e.into_response(Flavor::OpenAi)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn route_call(
        &self,
        target: &LlmTarget,
        route: &RouteRt,
        compiled: &Compiled,
        who: Who,
        parts: &Parts,
        body: Incoming,
        started: Instant,
    ) -> Result<Response<ProxyBody>, LlmError> {
        let raw = Limited::new(body, MAX_REQUEST)
            .collect()
            .await
            .map_err(|e| {
                LlmError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_too_large",
                    format!("reading the request body: {e}"),
                )
            })?
            .to_bytes();
        let body: Value = if raw.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(&raw)
                .map_err(|e| LlmError::bad_request(format!("the body is not valid JSON: {e}")))?
        };
        let state = &compiled.snapshot.state;
        let req = match target {
            LlmTarget::Model(model) => {
                let mut req = body;
                let Some(o) = req.as_object_mut() else {
                    return Err(LlmError::bad_request(
                        "the body must be a chat completion request object",
                    ));
                };
                o.insert("model".into(), Value::String(model.clone()));
                openai::validate_chat_request(&req)?;
                req
            }
            LlmTarget::Prompt { template, version } => {
                let t = match state
                    .get(Kind::PromptTemplate, template)
                    .map(|s| &s.resource)
                {
                    Some(Resource::PromptTemplate(t)) => t,
                    _ => return Err(unavailable(format!("prompt template {template:?} is gone"))),
                };
                let v = t.version(*version).ok_or_else(|| {
                    unavailable(format!(
                        "prompt template {template:?} has no version {version:?}"
                    ))
                })?;
                let stream = wants_stream(parts);
                prompt_request(v, &body, stream)?
            }
        };
        let name = req.get("model").and_then(Value::as_str).unwrap_or_default();
        let model: Model = match state.get(Kind::Model, name).map(|s| &s.resource) {
            Some(Resource::Model(m)) => m.clone(),
            _ => {
                return Err(unavailable(format!(
                    "route {:?}: model {name:?} is gone",
                    route.id
                )))
            }
        };
        self.chat(
            Api::Chat,
            compiled,
            who,
            model,
            req,
            started,
            route.guardrails.as_ref(),
        )
        .await
    }
}

fn unavailable(message: String) -> LlmError {
    LlmError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "route_misconfigured",
        message,
    )
}

/// `?stream=true` or `Accept: text/event-stream` asks for the answer as a stream.
fn wants_stream(parts: &Parts) -> bool {
    let query = parts.uri.query().unwrap_or("");
    query
        .split('&')
        .any(|kv| kv == "stream=true" || kv == "stream=1")
        || parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"))
}

/// The chat request for a template version with these variables: exactly the declared
/// ones, no more, no fewer.
pub fn prompt_request(v: &TemplateVersion, vars: &Value, stream: bool) -> Result<Value, LlmError> {
    let empty = Map::new();
    let given = match vars {
        Value::Object(o) => o,
        Value::Null => &empty,
        _ => {
            return Err(LlmError::bad_request(
                "the body must be a JSON object of the template's variables",
            ))
        }
    };
    let missing: Vec<&str> = v
        .variables
        .iter()
        .filter(|n| !given.contains_key(n.as_str()))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(
            LlmError::bad_request(format!("missing variables: {}", missing.join(", ")))
                .with_param(missing.join(",")),
        );
    }
    let mut extra: Vec<&str> = given
        .keys()
        .filter(|k| !v.variables.iter().any(|d| d == *k))
        .map(String::as_str)
        .collect();
    extra.sort_unstable();
    if !extra.is_empty() {
        return Err(LlmError::bad_request(format!(
            "unknown variables: {} (this template takes: {})",
            extra.join(", "),
            v.variables.join(", ")
        ))
        .with_param(extra.join(",")));
    }
    let messages: Vec<Value> = v
        .messages
        .iter()
        .map(|m| json!({"role": m.role, "content": render(&m.content, given)}))
        .collect();
    let mut req = json!({"model": v.model, "messages": messages, "stream": stream});
    if let Some(t) = v.temperature {
        req["temperature"] = json!(t);
    }
    if let Some(m) = v.max_tokens {
        req["max_tokens"] = json!(m);
    }
    Ok(req)
}

/// Replaces every `{{name}}` with its value (strings as they are, anything else as JSON).
fn render(text: &str, vars: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        match vars.get(name) {
            Some(Value::String(s)) => out.push_str(s),
            Some(other) => out.push_str(&other.to_string()),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftgate_store::model::TemplateMessage;

    fn version() -> TemplateVersion {
        TemplateVersion {
            version: 2,
            model: "chat".into(),
            messages: vec![
                TemplateMessage {
                    role: "system".into(),
                    content: "You summarise {{ kind }} texts.".into(),
                },
                TemplateMessage {
                    role: "user".into(),
                    content: "Summarise in {{words}} words: {{text}}".into(),
                },
            ],
            variables: vec!["kind".into(), "words".into(), "text".into()],
            temperature: Some(0.2),
            max_tokens: Some(100),
        }
    }

    #[test]
    fn renders_exactly_the_declared_variables() {
        let req = prompt_request(
            &version(),
            &json!({"kind": "legal", "words": 20, "text": "{{kind}} stays literal"}),
            true,
        )
        .expect("renders");
        assert_eq!(req["model"], "chat");
        assert_eq!(req["stream"], true);
        assert_eq!(req["temperature"], 0.2);
        assert_eq!(req["max_tokens"], 100);
        assert_eq!(req["messages"][0]["content"], "You summarise legal texts.");
        // A value is never re-rendered: placeholders inside it stay as they are.
        assert_eq!(
            req["messages"][1]["content"],
            "Summarise in 20 words: {{kind}} stays literal"
        );
    }

    #[test]
    fn missing_and_unknown_variables_are_named() {
        let e = prompt_request(&version(), &json!({"kind": "x"}), false).expect_err("missing");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(
            e.message.contains("words") && e.message.contains("text"),
            "{}",
            e.message
        );
        let e = prompt_request(
            &version(),
            &json!({"kind": "x", "words": 1, "text": "t", "zzz": 1, "aaa": 2}),
            false,
        )
        .expect_err("extra");
        assert!(
            e.message.starts_with("unknown variables: aaa, zzz"),
            "{}",
            e.message
        );
        let e = prompt_request(&version(), &json!([1]), false).expect_err("not an object");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}

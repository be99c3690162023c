//! Routes whose target is a model or a prompt template ("prompt encapsulation"): the
//! route's own policies (auth, access, quotas) have run; here the body becomes a chat
//! request and goes through the same pipeline as `/v1/chat/completions`. The route
//! grants access to its model: no model Permission is needed.

use std::time::Instant;

use http::request::Parts;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use raftgate_store::model::{
    Capture, Kind, Model, Policy, Resource, Route, RouteTarget, TemplateVersion,
};
use serde_json::{json, Map, Value};

use super::error::{Flavor, LlmError};
use super::translate::openai;
use super::{Api, Llm, Who, MAX_REQUEST};
use crate::proxy::access::Outcome;
use crate::proxy::capture::{CaptureRt, Tap};
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
        let tap = outcome.capture.as_ref().and_then(|c| c.request.clone());
        match self
            .route_call(target, route, compiled, who, parts, body, started, tap)
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
        tap: Option<Tap>,
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
        // The route's `capture` policy: the client's body as sent (the response side is
        // tapped by the proxy as it streams out, streamed answers included).
        if let Some(tap) = tap {
            tap.whole(&raw);
        }
        crate::shield::check_depth(&raw, crate::shield::json_depth())
            .map_err(|e| LlmError::new(StatusCode::BAD_REQUEST, "json_too_deep", e.to_string()))?;
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

/// The capture policy for a call to `model` through the built-in `/v1` API, which has
/// no route of its own: that of a route to the model with a `capture` policy — one of
/// the caller's tenant first, else one without a tenant (never another tenant's), the
/// lowest route id winning a tie. The Model resource carries no policy: its stored
/// encoding (bincode) cannot gain a field without a format version bump.
pub(super) fn model_capture(compiled: &Compiled, model: &str, tenant: &str) -> Option<CaptureRt> {
    let routes = compiled
        .model_capture_routes
        .get(model)
        .into_iter()
        .flatten()
        .map(|r| r.as_ref());
    pick_capture(routes, model, tenant).map(CaptureRt::compile)
}

/// [`model_capture`]'s choice among `routes` (given in id order).
fn pick_capture<'a>(
    routes: impl Iterator<Item = &'a Route>,
    model: &str,
    tenant: &str,
) -> Option<&'a Capture> {
    let mut found: Option<(bool, &Capture)> = None;
    for r in routes {
        if !matches!(&r.target, RouteTarget::Model(m) if m == model) {
            continue;
        }
        let own = match r.tenant.as_deref() {
            Some(t) if t == tenant => true,
            Some(_) => continue,
            None => false,
        };
        let Some(c) = r.policies.iter().find_map(|p| match p {
            Policy::Capture(c) => Some(c),
            _ => None,
        }) else {
            continue;
        };
        // Keep the first, unless a tenant's own route comes later.
        if found.is_none_or(|(had_own, _)| own && !had_own) {
            found = Some((own, c));
        }
    }
    found.map(|(_, c)| c)
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

    #[test]
    fn builtin_api_capture_follows_the_callers_or_a_shared_model_route() {
        let route = |id: &str, tenant: Option<&str>, model: &str, bytes: Option<u64>| {
            let mut r = json!({"id": id, "tenant": tenant, "path": format!("/{id}"),
                "target": {"model": model}});
            if let Some(n) = bytes {
                r["policies"] = json!([{"capture": {"request_bytes": n}}]);
            }
            match Resource::from_json(Kind::Route, r) {
                Ok(Resource::Route(r)) => r,
                other => panic!("route JSON: {other:?}"),
            }
        };
        let routes = [
            route("a", None, "m", Some(1)),
            route("b", Some("other"), "m", Some(2)),
            route("c", Some("acme"), "m", None),
            route("d", Some("acme"), "m", Some(4)),
            route("e", Some("acme"), "m", Some(5)),
            route("f", None, "n", Some(6)),
        ];
        let pick = |model: &str, tenant: &str| {
            pick_capture(routes.iter(), model, tenant).map(|c| c.request_bytes)
        };
        assert_eq!(pick("m", "acme"), Some(4), "the tenant's own, first by id");
        assert_eq!(pick("m", "other"), Some(2));
        assert_eq!(
            pick("m", "third"),
            Some(1),
            "a shared route, never another tenant's"
        );
        assert_eq!(pick("n", "acme"), Some(6));
        assert_eq!(pick("x", "acme"), None);
    }
}

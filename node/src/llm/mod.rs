//! The LLM gateway on the data-plane port: `POST /v1/chat/completions`,
//! `POST /v1/embeddings`, `GET /v1/models` (OpenAI) and `POST /v1/messages` (Anthropic),
//! in front of OpenAI(-compatible), Azure OpenAI, Anthropic, Gemini and mock providers.
//!
//! A call, phase by phase: API key → model and permission → request checks → quota
//! reservation (requests, tokens, cost) → deployments in order (priority, weight,
//! cool-downs, fallback models) until one answers → the answer in the client's format,
//! whole or streamed → usage and cost settled with the quotas and metrics.

pub mod cache;
pub mod error;
pub mod guardrails;
mod metrics;
mod mock;
mod providers;
mod route;
mod routing;
mod stream;
pub mod translate;
mod usage;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use raftgate_store::model::{Guardrails, KeyAuth, Kind, Model, Provider, Resource};
use serde_json::{json, Value};

use self::cache::{CacheKey, ResponseCache};
use self::error::{Flavor, LlmError};
use self::guardrails::Guard;
use self::providers::{Answer, AttemptError, Target};
use self::routing::{Attempt, Cooldowns};
use self::translate::{anthropic, openai, Usage};
use crate::proxy::access::Outcome;
use crate::proxy::auth::{self, Authenticator, Identity};
use crate::proxy::compile::Compiled;
use crate::proxy::{unix_ms, ProxyBody};
use crate::quota::{CallScope, Check, Permit, Quotas, RateHeaders, Rejection};
use crate::secrets::SecretBox;

pub use metrics::LlmMetrics;

/// Largest request body accepted (images as base64 make prompts large).
pub(crate) const MAX_REQUEST: usize = 16 * 1024 * 1024;
/// A model's total time budget when it sets no `timeout_ms`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The LLM endpoints, reserved on the data-plane port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat,
    Messages,
    Embeddings,
    Models,
}

impl Api {
    pub fn of(method: &Method, path: &str) -> Option<Api> {
        match (method, path.trim_end_matches('/')) {
            (&Method::POST, "/v1/chat/completions") => Some(Api::Chat),
            (&Method::POST, "/v1/messages") => Some(Api::Messages),
            (&Method::POST, "/v1/embeddings") => Some(Api::Embeddings),
            (&Method::GET, "/v1/models") => Some(Api::Models),
            _ => None,
        }
    }

    fn flavor(self) -> Flavor {
        match self {
            Api::Messages => Flavor::Anthropic,
            _ => Flavor::OpenAi,
        }
    }
}

/// Shared by every LLM call on this node.
pub struct Llm {
    http: reqwest::Client,
    secrets: Option<Arc<SecretBox>>,
    cooldowns: Cooldowns,
    keys: Vec<Authenticator>,
    quotas: Arc<Quotas>,
    cache: Arc<ResponseCache>,
    pub metrics: LlmMetrics,
}

/// Memory for cached answers per node.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
static X_CACHE: HeaderName = HeaderName::from_static("x-raftgate-cache");

/// Who is calling, as far as quotas and guardrails care.
#[derive(Debug, Clone, Default)]
pub struct Who {
    pub key_id: Option<String>,
    pub consumer: Option<String>,
    /// The consumer's tenant, else the route's.
    pub tenant: Option<String>,
}

impl Who {
    pub fn of(id: Option<&Identity>, route_tenant: Option<&str>) -> Who {
        Who {
            key_id: id.and_then(|i| i.key_id.clone()),
            consumer: id.map(|i| i.consumer.clone()),
            tenant: id
                .map(|i| i.tenant.clone())
                .or(route_tenant.map(str::to_string)),
        }
    }
}

/// A call after its checks: which model, what was reserved.
struct Call {
    model: Model,
    estimated_input: u64,
    permit: Option<Permit>,
    headers: HeaderMap,
    output_budget: Option<u64>,
    /// Where to store the answer, for a model with a cache (on a miss).
    cache_key: Option<(CacheKey, Duration)>,
    /// Checks the answer against the deny-list.
    guard: Option<Arc<Guard>>,
}

impl Llm {
    pub fn new(
        registry: &prometheus::Registry,
        secrets: Option<Arc<SecretBox>>,
        quotas: Arc<Quotas>,
    ) -> Arc<Llm> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        let keys = Authenticator::key(&KeyAuth::default())
            .into_iter()
            .collect();
        Arc::new(Llm {
            http,
            secrets,
            cooldowns: Cooldowns::default(),
            keys,
            quotas,
            cache: Arc::new(ResponseCache::new(CACHE_BYTES)),
            metrics: LlmMetrics::new(registry),
        })
    }

    /// Serves one call; errors are answered in the client API's own error shape.
    pub async fn serve(
        &self,
        api: Api,
        compiled: &Compiled,
        parts: &Parts,
        body: Incoming,
        outcome: &mut Outcome,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        match self
            .call(api, compiled, parts, body, outcome, started)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                outcome.error = Some(e.code);
                e.into_response(api.flavor())
            }
        }
    }

    async fn call(
        &self,
        api: Api,
        compiled: &Compiled,
        parts: &Parts,
        body: Incoming,
        outcome: &mut Outcome,
        started: Instant,
    ) -> Result<Response<ProxyBody>, LlmError> {
        let state = &compiled.snapshot.state;
        let identity = auth::authenticate(&self.keys, parts, state, unix_ms())
            .and_then(|id| auth::check_enabled(&id, state).map(|_| id))
            .map_err(|e| {
                let code = if e.status() == StatusCode::UNAUTHORIZED {
                    "invalid_api_key"
                } else {
                    "permission_denied"
                };
                LlmError::new(e.status(), code, e.to_string())
            })?;
        outcome.consumer = Some(identity.consumer.clone());
        outcome.tenant = Some(identity.tenant.clone());
        if api == Api::Models {
            return Ok(json_response(
                &models_list(compiled, &identity),
                HeaderMap::new(),
            ));
        }
        let raw = Limited::new(body, MAX_REQUEST)
            .collect()
            .await
            .map_err(|e| {
                LlmError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_too_large",
                    format!("reading the request body: {e} (at most {MAX_REQUEST} bytes)"),
                )
            })?
            .to_bytes();
        let client_req: Value = serde_json::from_slice(&raw)
            .map_err(|e| LlmError::bad_request(format!("the body is not valid JSON: {e}")))?;
        let req = match api {
            Api::Messages => anthropic::request_from_anthropic(&client_req)?,
            _ => client_req,
        };
        let name = req
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| LlmError::bad_request("`model` is required").with_param("model"))?;
        let model = find_model(compiled, &identity, name)?;
        match api {
            Api::Embeddings => {
                self.embeddings(
                    compiled,
                    Who::of(Some(&identity), None),
                    model,
                    req,
                    started,
                )
                .await
            }
            _ => {
                openai::validate_chat_request(&req)?;
                self.chat(
                    api,
                    compiled,
                    Who::of(Some(&identity), None),
                    model,
                    req,
                    started,
                    None,
                )
                .await
            }
        }
    }

    /// Reserves the call's estimate against the model's quotas (and, for `hard`
    /// policies, works out how many output tokens the reservation allows).
    async fn reserve(
        &self,
        compiled: &Compiled,
        who: &Who,
        model: Model,
        estimated_input: u64,
        estimated_output: u64,
    ) -> Result<Call, LlmError> {
        let state = &compiled.snapshot.state;
        let price = usage::max_pricing(&model);
        let estimate = Usage {
            input: estimated_input,
            output: estimated_output,
            cached_input: 0,
        };
        let cost = usage::cost_micros(&price, &estimate);
        let scope = CallScope {
            api_key: who.key_id.as_deref(),
            consumer: who.consumer.as_deref(),
            tenant: who.tenant.as_deref(),
            route: None,
            service: None,
            model: Some(&model.id),
        };
        let checks: Vec<Check> = model
            .quotas
            .iter()
            .filter_map(|q| state.quota_policy(q))
            .map(|p| Check {
                key: scope.key(&p.scope),
                units: usage::units(p.metric, &estimate, cost),
                policy: Arc::new(p.clone()),
            })
            .collect();
        let mut headers = HeaderMap::new();
        let permit = if checks.is_empty() {
            None
        } else {
            match self.quotas.admit(&checks, unix_ms()).await {
                Ok(p) => {
                    if let Some(h) = &p.headers {
                        rate_headers(h, &mut headers);
                    }
                    Some(p)
                }
                Err(r) => return Err(rejection(r)),
            }
        };
        let output_budget = checks
            .iter()
            .filter(|c| c.policy.hard)
            .filter_map(|c| usage::output_budget(c.policy.metric, c.units, estimated_input, &price))
            .min();
        Ok(Call {
            model,
            estimated_input,
            permit,
            headers,
            output_budget,
            cache_key: None,
            guard: None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn chat(
        &self,
        api: Api,
        compiled: &Compiled,
        who: Who,
        model: Model,
        mut req: Value,
        started: Instant,
        route_guardrails: Option<&Guardrails>,
    ) -> Result<Response<ProxyBody>, LlmError> {
        let guard = guard_for(compiled, &who, route_guardrails);
        if let Some(g) = &guard {
            let verdict = g.check_prompt(&mut req);
            self.judged(&model.id, "prompt", &verdict)?;
        }
        let stream = req.get("stream").and_then(Value::as_bool) == Some(true);
        let usage_wanted = req
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        let asked_output = req
            .get("max_completion_tokens")
            .or_else(|| req.get("max_tokens"))
            .and_then(Value::as_u64);
        let estimated_output = asked_output
            .or(model.default_max_tokens.map(u64::from))
            .unwrap_or(usage::DEFAULT_OUTPUT_ESTIMATE);
        let estimated_input = translate::estimate_prompt_tokens(&req);
        let mut call = self
            .reserve(compiled, &who, model, estimated_input, estimated_output)
            .await?;
        call.guard = guard.map(Arc::new);
        if let Some(c) = call.model.cache {
            let key = CacheKey::new(who.tenant.as_deref().unwrap_or(""), &call.model.id, &req);
            if let Some(hit) = self.cache.get(&key, Instant::now()) {
                return Ok(self.cached(api, call, &hit, stream, usage_wanted, started));
            }
            call.headers
                .insert(X_CACHE.clone(), HeaderValue::from_static("miss"));
            call.cache_key = Some((key, Duration::from_secs(c.ttl_secs)));
        }
        if let Some(budget) = call.output_budget {
            // A hard quota: the provider itself stops at what the reservation covers.
            let capped = asked_output.map_or(budget, |a| a.min(budget)).max(1);
            if let Some(o) = req.as_object_mut() {
                let field = if o.contains_key("max_completion_tokens") {
                    "max_completion_tokens"
                } else {
                    "max_tokens"
                };
                o.insert(field.into(), json!(capped));
            }
        }
        let state = &compiled.snapshot.state;
        let timeout = call
            .model
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let deadline = started + timeout;
        let plan = routing::plan(state, &call.model, &self.cooldowns, &mut rand::rng());
        let mut failures: Vec<AttemptError> = Vec::new();
        for (i, attempt) in plan.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if i > 0 {
                let pause = Duration::from_millis(25 << i.min(4)).min(left / 4);
                tokio::time::sleep(pause).await;
            }
            let Some(provider) = provider(state, &attempt.deployment.provider) else {
                continue;
            };
            let target = Target {
                provider,
                api_key: self.api_key(provider),
                upstream_model: &attempt.deployment.model,
                public_model: &call.model.id,
            };
            let left = attempt_budget(deadline, plan.len() - i);
            let answer = providers::chat(&self.http, &target, &req, stream, left).await;
            let failure = match answer {
                Ok(Answer::Whole(resp)) => {
                    self.metrics.attempt(&attempt.model.id, &provider.id, "ok");
                    self.cooldowns.clear(&attempt.key());
                    return self.whole(api, call, attempt, provider, resp, started);
                }
                Ok(Answer::Stream(mut s)) => {
                    // Fall back only until the first chunk: after that the client has it.
                    match s.next(left).await {
                        Ok(Some(first)) => {
                            self.metrics.attempt(&attempt.model.id, &provider.id, "ok");
                            self.cooldowns.clear(&attempt.key());
                            return Ok(self.streamed(
                                api,
                                call,
                                attempt,
                                provider,
                                first,
                                s,
                                usage_wanted,
                                timeout,
                                started,
                            ));
                        }
                        Ok(None) => AttemptError {
                            retryable: true,
                            status: None,
                            retry_after: None,
                            message: "provider stream ended before any chunk".into(),
                        },
                        Err(e) => e,
                    }
                }
                Err(Ok(unsupported)) => return Err(unsupported.into()),
                Err(Err(e)) => e,
            };
            tracing::info!(model = %attempt.model.id, provider = %provider.id, upstream = %attempt.deployment.model, error = %failure.message, "LLM attempt failed");
            let outcome = match failure.status {
                Some(429) => "rate_limited",
                Some(_) => "error",
                None => "unreachable",
            };
            self.metrics
                .attempt(&attempt.model.id, &provider.id, outcome);
            if !failure.retryable {
                if let Some(p) = call.permit {
                    p.settle(|_| 0);
                }
                self.metrics.finished(
                    &call.model.id,
                    &provider.id,
                    failure.status.unwrap_or(502),
                    started.elapsed().as_secs_f64(),
                );
                return Err(provider_refused(&failure));
            }
            self.cooldowns.cool(
                attempt.key(),
                failure.retry_after.unwrap_or(routing::DEFAULT_COOLDOWN),
            );
            failures.push(failure);
        }
        // Nothing answered: the reservation comes back whole.
        if let Some(p) = call.permit {
            p.settle(|_| 0);
        }
        self.metrics
            .finished(&call.model.id, "-", 502, started.elapsed().as_secs_f64());
        Err(all_failed(&call.model.id, &failures))
    }

    /// Records a guardrail verdict (categories only, never values) and refuses the call
    /// when it blocks.
    fn judged(&self, model: &str, what: &str, v: &guardrails::Verdict) -> Result<(), LlmError> {
        for (category, count) in &v.findings {
            self.metrics.guardrail(category, u64::from(*count));
        }
        if !v.findings.is_empty() {
            let found: Vec<&str> = v.findings.iter().map(|(c, _)| *c).collect();
            tracing::info!(model, what, findings = ?found, blocked = ?v.blocked, "guardrail findings");
        }
        match v.blocked {
            Some(category) => Err(LlmError::new(
                StatusCode::BAD_REQUEST,
                "guardrail_blocked",
                format!("the {what} was blocked by a guardrail ({category})"),
            )),
            None => Ok(()),
        }
    }

    /// Answers from the cache: nothing was generated, so no tokens are charged (request
    /// quotas count the call).
    fn cached(
        &self,
        api: Api,
        mut call: Call,
        hit: &Value,
        stream: bool,
        usage_wanted: bool,
        started: Instant,
    ) -> Response<ProxyBody> {
        if let Some(p) = call.permit.take() {
            p.settle(|q| usage::units(q.metric, &Usage::default(), 0));
        }
        self.metrics.finished(
            &call.model.id,
            "cache",
            200,
            started.elapsed().as_secs_f64(),
        );
        let mut headers = call.headers;
        headers.insert(X_CACHE.clone(), HeaderValue::from_static("hit"));
        if stream {
            let mut chunks = cache::replay(hit);
            if !chunks.is_empty() {
                let first = chunks.remove(0);
                let finish = stream::Finish {
                    settle: Box::new(|_, _| {}),
                    estimated_input: call.estimated_input,
                    output_budget: None,
                    idle: DEFAULT_TIMEOUT,
                    started,
                    on_first_chunk: Box::new(|_| {}),
                    guard: None,
                    on_complete: None,
                };
                let s = Box::new(providers::ChunkStream::mock(chunks));
                return stream::respond(
                    api.flavor(),
                    &call.model.id,
                    usage_wanted,
                    first,
                    s,
                    headers,
                    finish,
                );
            }
        }
        let body = match api {
            Api::Messages => anthropic::response_to_anthropic(hit).unwrap_or_else(|_| hit.clone()),
            _ => hit.clone(),
        };
        json_response(&body, headers)
    }

    fn whole(
        &self,
        api: Api,
        call: Call,
        attempt: &Attempt,
        provider: &Provider,
        mut resp: Value,
        started: Instant,
    ) -> Result<Response<ProxyBody>, LlmError> {
        if let Some(o) = resp.as_object_mut() {
            o.insert("model".into(), Value::String(call.model.id.clone()));
        }

        let used = translate::openai_usage(&resp).unwrap_or(Usage {
            input: call.estimated_input,
            output: 0,
            cached_input: 0,
        });
        self.settle(&call.model, attempt, provider, call.permit, used);
        if let Some(g) = call.guard.as_ref().filter(|g| g.checks_answers()) {
            let text = answer_text(&resp);
            self.judged(&call.model.id, "answer", &g.check_answer(&text))?;
        }
        self.metrics.finished(
            &call.model.id,
            &provider.id,
            200,
            started.elapsed().as_secs_f64(),
        );
        if let Some((key, ttl)) = call.cache_key {
            self.cache.put(key, resp.clone(), ttl, Instant::now());
        }
        let body = match api {
            Api::Messages => anthropic::response_to_anthropic(&resp).map_err(|e| {
                LlmError::new(
                    StatusCode::BAD_GATEWAY,
                    "bad_provider_answer",
                    e.to_string(),
                )
            })?,
            _ => resp,
        };
        let mut headers = call.headers;
        provider_headers(&mut headers, provider, attempt);
        Ok(json_response(&body, headers))
    }

    #[allow(clippy::too_many_arguments)]
    fn streamed(
        &self,
        api: Api,
        call: Call,
        attempt: &Attempt,
        provider: &Provider,
        first: Value,
        s: Box<providers::ChunkStream>,
        usage_wanted: bool,
        idle: Duration,
        started: Instant,
    ) -> Response<ProxyBody> {
        let mut headers = call.headers;
        provider_headers(&mut headers, provider, attempt);
        let metrics = self.metrics.clone();
        let model_id = call.model.id.clone();
        let provider_id = provider.id.clone();
        let price = usage::pricing(&call.model, &attempt.deployment.model);
        let permit = call.permit;
        let settle_metrics = metrics.clone();
        let (m2, p2) = (model_id.clone(), provider_id.clone());
        let finish = stream::Finish {
            settle: Box::new(move |used: Usage, _complete: bool| {
                let cost = usage::cost_micros(&price, &used);
                if let Some(p) = permit {
                    p.settle(|q| usage::units(q.metric, &used, cost));
                }
                settle_metrics.usage(&m2, &p2, used.input, used.output, cost);
                settle_metrics.finished(&m2, &p2, 200, started.elapsed().as_secs_f64());
            }),
            estimated_input: call.estimated_input,
            output_budget: call.output_budget,
            idle,
            started,
            on_first_chunk: Box::new(move |secs| metrics.first_token(&model_id, secs)),
            guard: call.guard.clone().filter(|g| g.checks_answers()),
            on_complete: call.cache_key.map(|(key, ttl)| {
                let cache = self.cache.clone();
                Box::new(move |chunks: Vec<Value>| {
                    if let Some(whole) = cache::accumulate(&chunks) {
                        cache.put(key, whole, ttl, Instant::now());
                    }
                }) as Box<dyn FnOnce(Vec<Value>) + Send>
            }),
        };
        stream::respond(
            api.flavor(),
            &call.model.id,
            usage_wanted,
            first,
            s,
            headers,
            finish,
        )
    }

    fn settle(
        &self,
        model: &Model,
        attempt: &Attempt,
        provider: &Provider,
        permit: Option<Permit>,
        used: Usage,
    ) {
        let price = usage::pricing(model, &attempt.deployment.model);
        let cost = usage::cost_micros(&price, &used);
        if let Some(p) = permit {
            p.settle(|q| usage::units(q.metric, &used, cost));
        }
        self.metrics
            .usage(&model.id, &provider.id, used.input, used.output, cost);
    }

    async fn embeddings(
        &self,
        compiled: &Compiled,
        who: Who,
        model: Model,
        req: Value,
        started: Instant,
    ) -> Result<Response<ProxyBody>, LlmError> {
        let input_tokens = match req.get("input") {
            Some(Value::String(s)) => translate::estimate_tokens(s),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => translate::estimate_tokens(s),
                    Value::Array(ids) => ids.len() as u64,
                    _ => 1,
                })
                .sum(),
            _ => {
                return Err(LlmError::bad_request(
                    "`input` must be a string or an array of strings or token arrays",
                )
                .with_param("input"))
            }
        };
        let mut req = req;
        if let Some(g) = guard_for(compiled, &who, None) {
            let verdict = g.check_embedding_input(&mut req);
            self.judged(&model.id, "input", &verdict)?;
        }
        let call = self.reserve(compiled, &who, model, input_tokens, 0).await?;
        let state = &compiled.snapshot.state;
        let timeout = call
            .model
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let deadline = started + timeout;
        let plan = routing::plan(state, &call.model, &self.cooldowns, &mut rand::rng());
        let mut failures = Vec::new();
        for attempt in &plan {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let Some(provider) = provider(state, &attempt.deployment.provider) else {
                continue;
            };
            let target = Target {
                provider,
                api_key: self.api_key(provider),
                upstream_model: &attempt.deployment.model,
                public_model: &call.model.id,
            };
            match providers::embeddings(&self.http, &target, &req, input_tokens, left).await {
                Ok(resp) => {
                    self.metrics.attempt(&attempt.model.id, &provider.id, "ok");
                    self.cooldowns.clear(&attempt.key());
                    let used = Usage {
                        input: resp
                            .pointer("/usage/prompt_tokens")
                            .and_then(Value::as_u64)
                            .unwrap_or(input_tokens),
                        output: 0,
                        cached_input: 0,
                    };
                    self.settle(&call.model, attempt, provider, call.permit, used);
                    self.metrics.finished(
                        &call.model.id,
                        &provider.id,
                        200,
                        started.elapsed().as_secs_f64(),
                    );
                    let mut headers = call.headers;
                    provider_headers(&mut headers, provider, attempt);
                    return Ok(json_response(&resp, headers));
                }
                Err(Ok(unsupported)) => return Err(unsupported.into()),
                Err(Err(e)) => {
                    self.metrics
                        .attempt(&attempt.model.id, &provider.id, "error");
                    if !e.retryable {
                        if let Some(p) = call.permit {
                            p.settle(|_| 0);
                        }
                        return Err(provider_refused(&e));
                    }
                    self.cooldowns.cool(
                        attempt.key(),
                        e.retry_after.unwrap_or(routing::DEFAULT_COOLDOWN),
                    );
                    failures.push(e);
                }
            }
        }
        if let Some(p) = call.permit {
            p.settle(|_| 0);
        }
        Err(all_failed(&call.model.id, &failures))
    }

    /// The provider's key in the clear (stored encrypted when the node has a secret key).
    fn api_key(&self, p: &Provider) -> Option<String> {
        let stored = p.api_key.as_deref()?;
        if !SecretBox::is_encrypted(stored) {
            return Some(stored.to_string());
        }
        match self.secrets.as_deref().map(|s| s.decrypt(stored)) {
            Some(Ok(plain)) => Some(plain),
            _ => {
                tracing::error!(provider = %p.id, "cannot decrypt the provider's api_key: every node needs the same secret key");
                None
            }
        }
    }
}

/// Time for one attempt: a hanging deployment must leave time for the next ones, so with
/// more attempts to come an attempt gets half of what is left (a third with three or
/// more); the last one gets everything.
fn attempt_budget(deadline: Instant, attempts_left: usize) -> Duration {
    let left = deadline.saturating_duration_since(Instant::now());
    match attempts_left {
        0 | 1 => left,
        2 => left / 2,
        _ => left / 3,
    }
}

/// The guardrails of the caller's tenant and of the route, combined.
fn guard_for(compiled: &Compiled, who: &Who, route: Option<&Guardrails>) -> Option<Guard> {
    let state = &compiled.snapshot.state;
    let tenant = who
        .tenant
        .as_deref()
        .and_then(|t| match &state.get(Kind::Tenant, t)?.resource {
            Resource::Tenant(t) => t.guardrails.as_ref(),
            _ => None,
        });
    let cfgs: Vec<&Guardrails> = tenant.into_iter().chain(route).collect();
    if cfgs.is_empty() {
        None
    } else {
        Guard::combine(&cfgs)
    }
}

/// The text of a whole answer's choices (content and tool-call arguments).
fn answer_text(resp: &Value) -> String {
    let mut out = String::new();
    for c in resp
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = c.pointer("/message/content").and_then(Value::as_str) {
            out.push_str(t);
            out.push('\n');
        }
        for call in c
            .pointer("/message/tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(a) = call.pointer("/function/arguments").and_then(Value::as_str) {
                out.push_str(a);
                out.push('\n');
            }
        }
    }
    out
}

fn provider<'a>(state: &'a raftgate_store::state::State, id: &str) -> Option<&'a Provider> {
    match &state.get(Kind::Provider, id)?.resource {
        Resource::Provider(p) => Some(p),
        _ => None,
    }
}

/// The model `name` if the caller may use it: a Permission for it, or the model belongs
/// to the caller's tenant.
fn find_model(compiled: &Compiled, id: &Identity, name: &str) -> Result<Model, LlmError> {
    let state = &compiled.snapshot.state;
    let model = match state.get(Kind::Model, name).map(|s| &s.resource) {
        Some(Resource::Model(m)) => m,
        _ => {
            return Err(LlmError::new(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!("the model `{name}` does not exist"),
            )
            .with_param("model"))
        }
    };
    if permitted(compiled, id, model) {
        Ok(model.clone())
    } else {
        Err(LlmError::new(
            StatusCode::FORBIDDEN,
            "model_not_permitted",
            format!("consumer {:?} may not use the model `{name}`", id.consumer),
        ))
    }
}

fn permitted(compiled: &Compiled, id: &Identity, model: &Model) -> bool {
    model.tenant.as_deref() == Some(id.tenant.as_str())
        || compiled
            .model_grants
            .get(&id.consumer)
            .is_some_and(|m| m.contains(&model.id))
}

/// `GET /v1/models`: the models this key may use.
fn models_list(compiled: &Compiled, id: &Identity) -> Value {
    let state = &compiled.snapshot.state;
    let data: Vec<Value> = state
        .list(Kind::Model)
        .filter_map(|s| match &s.resource {
            Resource::Model(m) if permitted(compiled, id, m) => Some(json!({
                "id": m.id,
                "object": "model",
                "created": s.created_at_ms / 1000,
                "owned_by": m.tenant.as_deref().unwrap_or("raftgate"),
            })),
            _ => None,
        })
        .collect();
    json!({"object": "list", "data": data})
}

fn json_response(body: &Value, headers: HeaderMap) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    r.headers_mut().extend(headers);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

static X_PROVIDER: HeaderName = HeaderName::from_static("x-raftgate-provider");
static X_UPSTREAM_MODEL: HeaderName = HeaderName::from_static("x-raftgate-upstream-model");

fn provider_headers(h: &mut HeaderMap, provider: &Provider, attempt: &Attempt) {
    if let Ok(v) = HeaderValue::from_str(&provider.id) {
        h.insert(X_PROVIDER.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(&attempt.deployment.model) {
        h.insert(X_UPSTREAM_MODEL.clone(), v);
    }
}

fn rate_headers(h: &RateHeaders, out: &mut HeaderMap) {
    out.insert("ratelimit-limit", HeaderValue::from(h.limit));
    out.insert("ratelimit-remaining", HeaderValue::from(h.remaining));
    if let Some(r) = h.reset_secs {
        out.insert("ratelimit-reset", HeaderValue::from(r));
    }
}

fn rejection(r: Rejection) -> LlmError {
    match r {
        Rejection::Exhausted {
            policy,
            limit,
            headers,
            ..
        } => {
            let mut e = LlmError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                format!("quota {policy:?} is used up for this window (limit {limit})"),
            );
            rate_headers(&headers, &mut e.headers);
            e.headers.insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(headers.reset_secs.unwrap_or(60).max(1)),
            );
            e
        }
        Rejection::Unavailable { policy } => {
            let mut e = LlmError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "quota_unavailable",
                format!("quota {policy:?} cannot be checked: the cluster leader is unreachable"),
            );
            e.headers
                .insert(http::header::RETRY_AFTER, HeaderValue::from(1u64));
            e
        }
    }
}

/// A provider said no to the request itself (4xx other than 429): the client sees it.
fn provider_refused(e: &AttemptError) -> LlmError {
    let status = e
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    LlmError::new(status, "provider_error", e.message.clone())
}

/// Every deployment failed: 429 when they were all rate limited, else 502/504.
fn all_failed(model: &str, failures: &[AttemptError]) -> LlmError {
    let all_limited = !failures.is_empty() && failures.iter().all(|f| f.status == Some(429));
    let last = failures
        .last()
        .map_or("no deployment could be tried".to_string(), |f| {
            f.message.clone()
        });
    if all_limited {
        let mut e = LlmError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            format!("every deployment of `{model}` is rate limited: {last}"),
        );
        let wait = failures
            .iter()
            .filter_map(|f| f.retry_after)
            .min()
            .unwrap_or(Duration::from_secs(1));
        e.headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return e;
    }
    let timed_out = failures
        .last()
        .is_some_and(|f| f.message.contains("within"));
    let status = if timed_out {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    LlmError::new(
        status,
        "provider_unavailable",
        format!(
            "no deployment of `{model}` answered ({} tried): {last}",
            failures.len()
        ),
    )
}

//! The LLM gateway on the data-plane port: `POST /v1/chat/completions`,
//! `POST /v1/embeddings`, `GET /v1/models` (OpenAI) and `POST /v1/messages` (Anthropic),
//! in front of OpenAI(-compatible), Azure OpenAI, Anthropic, Gemini and mock providers.
//!
//! A call, phase by phase: API key → model and permission → request checks → quota
//! reservation (requests, tokens, cost) → deployments in order (priority, weight,
//! cool-downs, fallback models) until one answers → the answer in the client's format,
//! whole or streamed → usage and cost settled with the quotas and metrics.

mod answer;
pub mod cache;
mod catalog;
mod chunk;
mod embeddings;
pub mod error;
mod facts;
pub mod guardrails;
mod metrics;
mod mock;
mod peek;
mod providers;
mod reply;
mod route;
mod routing;
mod stream;
pub mod translate;
mod transport;
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

use self::answer::Whole;
use self::cache::{CacheKey, ResponseCache};
use self::error::{Flavor, LlmError};
pub use self::facts::{Facts, LlmFacts};
use self::guardrails::Guard;
use self::providers::{Answer, AttemptError, Target};
use self::routing::{Attempt, Cooldowns};
use self::translate::{anthropic, openai, Usage};
use self::transport::ProviderHttp;
use crate::proxy::access::Outcome;
use crate::proxy::auth::{self, Authenticator, Identity};
use crate::proxy::compile::Compiled;
use crate::proxy::{unix_ms, ProxyBody};
use crate::quota::{CallScope, Check, Permit, Quotas, Rejection};
use crate::secrets::{OpenedSecrets, SecretBox};

use self::catalog::*;
use self::reply::*;
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
    http: ProviderHttp,
    secrets: Option<Arc<SecretBox>>,
    opened: OpenedSecrets,
    cooldowns: Cooldowns,
    keys: Vec<Authenticator>,
    quotas: Arc<Quotas>,
    cache: Arc<ResponseCache>,
    pub metrics: LlmMetrics,
}

/// Memory for cached answers per node.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
static X_CACHE: HeaderName = HeaderName::from_static("x-raftgate-cache");

/// The attempts of one call, for the access log (carried in the response's extensions).
#[derive(Debug, Clone, Default)]
pub struct LlmTrace {
    pub model: String,
    /// `provider/upstream-model:outcome`, in order.
    pub attempts: Vec<String>,
    /// Usage, timing and findings, for the call log.
    pub facts: Arc<LlmFacts>,
}

impl LlmTrace {
    fn push(&mut self, a: &Attempt, outcome: &str) {
        self.attempts.push(format!(
            "{}/{}:{outcome}",
            a.deployment.provider, a.deployment.model
        ));
    }

    fn attach(self, mut r: Response<ProxyBody>) -> Response<ProxyBody> {
        r.extensions_mut().insert(self);
        r
    }
}

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
    /// Shared with the call's [`LlmTrace`].
    facts: Arc<LlmFacts>,
}

impl Llm {
    pub fn new(
        registry: &prometheus::Registry,
        secrets: Option<Arc<SecretBox>>,
        quotas: Arc<Quotas>,
    ) -> Arc<Llm> {
        let http = ProviderHttp::new();
        let keys = Authenticator::key(&KeyAuth::default())
            .into_iter()
            .collect();
        Arc::new(Llm {
            http,
            secrets,
            opened: OpenedSecrets::default(),
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
        crate::shield::check_depth(&raw, crate::shield::json_depth())
            .map_err(|e| LlmError::new(StatusCode::BAD_REQUEST, "json_too_deep", e.to_string()))?;
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
        // No route here: a capture policy on a route to this model applies (route.rs).
        outcome.capture =
            route::model_capture(compiled, &model.id, &identity.tenant).map(|c| c.start());
        if let Some(tap) = outcome.capture.as_ref().and_then(|c| c.request.as_ref()) {
            tap.whole(&raw);
        }
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
                        h.write(&mut headers);
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
            facts: Arc::default(),
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
        let facts = Arc::new(LlmFacts::default());
        if let Some(g) = &guard {
            let verdict = g.check_prompt(&mut req);
            facts.found(&verdict);
            self.judged(&model.id, "prompt", &verdict).map_err(|e| {
                e.traced(LlmTrace {
                    model: model.id.clone(),
                    attempts: Vec::new(),
                    facts: facts.clone(),
                })
            })?;
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
        call.facts = facts;
        if let Some(c) = call.model.cache {
            let key = CacheKey::new(who.tenant.as_deref().unwrap_or(""), &call.model.id, &req);
            if let Some(hit) = self.cache.get(&key, Instant::now()) {
                call.facts.with(|f| f.cache_hit = true);
                let trace = LlmTrace {
                    model: call.model.id.clone(),
                    attempts: Vec::new(),
                    facts: call.facts.clone(),
                };
                return Ok(trace.attach(self.cached(
                    api,
                    call,
                    &hit,
                    stream,
                    usage_wanted,
                    started,
                )));
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
        let mut trace = LlmTrace {
            model: call.model.id.clone(),
            attempts: Vec::new(),
            facts: call.facts.clone(),
        };
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
                    self.metrics.attempt(&attempt.model_id, &provider.id, "ok");
                    self.cooldowns.clear(attempt);
                    trace.push(attempt, "ok");
                    return match self.whole(api, call, attempt, provider, resp, started) {
                        Ok(r) => Ok(trace.attach(r)),
                        Err(e) => Err(e.traced(trace)),
                    };
                }
                Ok(Answer::Stream(mut s)) => {
                    // Fall back only until the first chunk: after that the client has it.
                    match s.next(left).await {
                        Ok(Some(first)) => {
                            self.metrics.attempt(&attempt.model_id, &provider.id, "ok");
                            self.cooldowns.clear(attempt);
                            trace.push(attempt, "ok");
                            return Ok(trace.attach(self.streamed(
                                api,
                                call,
                                attempt,
                                provider,
                                first,
                                s,
                                usage_wanted,
                                timeout,
                                started,
                            )));
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
            tracing::info!(model = %attempt.model_id, provider = %provider.id, upstream = %attempt.deployment.model, error = %failure.message, "LLM attempt failed");
            let outcome = match failure.status {
                Some(429) => "rate_limited",
                Some(_) => "error",
                None => "unreachable",
            };
            self.metrics
                .attempt(&attempt.model_id, &provider.id, outcome);
            trace.push(attempt, outcome);
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
                return Err(provider_refused(&failure).traced(trace));
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
        Err(all_failed(&call.model.id, &failures).traced(trace))
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
                let first = chunks.remove(0).into();
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
        resp: Whole,
        started: Instant,
    ) -> Result<Response<ProxyBody>, LlmError> {
        let public = &call.model.id;
        let used = resp.usage().unwrap_or(Usage {
            input: call.estimated_input,
            output: 0,
            cached_input: 0,
        });
        let cost = self.settle(&call.model, attempt, provider, call.permit, used);
        call.facts.used(&used, cost);
        let guard = call.guard.as_ref().filter(|g| g.checks_answers());
        let body = if guard.is_none() && call.cache_key.is_none() && api != Api::Messages {
            // Nothing reads the answer: an OpenAI-format provider's text goes on as it came.
            resp.into_body(public)
        } else {
            let mut resp = resp.into_value();
            answer::set_model(&mut resp, public);
            if let Some(g) = guard {
                let verdict = g.check_answer(&answer_text(&resp));
                call.facts.found(&verdict);
                self.judged(public, "answer", &verdict)?;
            }
            let body = match api {
                Api::Messages => anthropic::response_to_anthropic(&resp)
                    .map_err(|e| {
                        let secs = started.elapsed().as_secs_f64();
                        self.metrics.finished(public, &provider.id, 502, secs);
                        LlmError::new(
                            StatusCode::BAD_GATEWAY,
                            "bad_provider_answer",
                            e.to_string(),
                        )
                    })?
                    .to_string(),
                _ => resp.to_string(),
            };
            if let Some((key, ttl)) = call.cache_key {
                self.cache.put(key, resp, ttl, Instant::now());
            }
            Bytes::from(body)
        };
        self.metrics
            .finished(public, &provider.id, 200, started.elapsed().as_secs_f64());
        let mut headers = call.headers;
        provider_headers(&mut headers, provider, attempt);
        Ok(json_bytes_response(body, headers))
    }

    #[allow(clippy::too_many_arguments)]
    fn streamed(
        &self,
        api: Api,
        call: Call,
        attempt: &Attempt,
        provider: &Provider,
        first: chunk::Chunk,
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
        let (facts, first_facts) = (call.facts.clone(), call.facts.clone());
        let finish = stream::Finish {
            settle: Box::new(move |used: Usage, _complete: bool| {
                let cost = usage::cost_micros(&price, &used);
                facts.used(&used, cost);
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
            on_first_chunk: Box::new(move |secs| {
                first_facts.with(|f| f.ttft_us = Some((secs * 1e6) as u64));
                metrics.first_token(&model_id, secs)
            }),
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
    ) -> u64 {
        let price = usage::pricing(model, &attempt.deployment.model);
        let cost = usage::cost_micros(&price, &used);
        if let Some(p) = permit {
            p.settle(|q| usage::units(q.metric, &used, cost));
        }
        self.metrics
            .usage(&model.id, &provider.id, used.input, used.output, cost);
        cost
    }

    /// The provider's key in the clear (stored encrypted when the node has a secret key).
    fn api_key(&self, p: &Provider) -> Option<String> {
        let stored = p.api_key.as_deref()?;
        if !SecretBox::is_encrypted(stored) {
            return Some(stored.to_string());
        }
        match self.secrets.as_deref().map(|s| self.opened.open(s, stored)) {
            Some(Ok(plain)) => Some(plain),
            _ => {
                tracing::error!(provider = %p.id, "cannot decrypt the provider's api_key: every node needs the same secret key");
                None
            }
        }
    }
}

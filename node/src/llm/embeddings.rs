//! `POST /v1/embeddings`: the same plan of deployments as chat, one whole answer.

use super::*;

impl Llm {
    pub(super) async fn embeddings(
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
        // Attempts and usage for the call log, as chat calls carry them.
        let mut trace = LlmTrace {
            model: call.model.id.clone(),
            attempts: Vec::new(),
            facts: call.facts.clone(),
        };
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
                    self.metrics.attempt(&attempt.model_id, &provider.id, "ok");
                    self.cooldowns.clear(attempt);
                    trace.push(attempt, "ok");
                    let used = Usage {
                        input: resp
                            .pointer("/usage/prompt_tokens")
                            .and_then(Value::as_u64)
                            .unwrap_or(input_tokens),
                        output: 0,
                        cached_input: 0,
                    };
                    let cost = self.settle(&call.model, attempt, provider, call.permit, used);
                    call.facts.used(&used, cost);
                    self.metrics.finished(
                        &call.model.id,
                        &provider.id,
                        200,
                        started.elapsed().as_secs_f64(),
                    );
                    let mut headers = call.headers;
                    provider_headers(&mut headers, provider, attempt);
                    return Ok(trace.attach(json_response(&resp, headers)));
                }
                Err(Ok(unsupported)) => return Err(unsupported.into()),
                Err(Err(e)) => {
                    self.metrics
                        .attempt(&attempt.model_id, &provider.id, "error");
                    trace.push(attempt, "error");
                    if !e.retryable {
                        if let Some(p) = call.permit {
                            p.settle(|_| 0);
                        }
                        return Err(provider_refused(&e).traced(trace));
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
        Err(all_failed(&call.model.id, &failures).traced(trace))
    }
}

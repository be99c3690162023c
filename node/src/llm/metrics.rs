//! LLM metrics. Labels are model and provider ids from the config, so cardinality is
//! what operators create.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Clone)]
pub struct LlmMetrics {
    requests: IntCounterVec,
    attempts: IntCounterVec,
    tokens: IntCounterVec,
    cost: IntCounterVec,
    ttft: HistogramVec,
    duration: HistogramVec,
    guardrails: IntCounterVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    r.unwrap_or_else(|e| unreachable!("static metric definitions are valid: {e}"))
}

impl LlmMetrics {
    pub fn new(registry: &Registry) -> LlmMetrics {
        let m = LlmMetrics {
            guardrails: must(IntCounterVec::new(
                Opts::new(
                    "raftgate_llm_guardrail_findings_total",
                    "Guardrail findings by category (never the values)",
                ),
                &["category"],
            )),
            requests: must(IntCounterVec::new(
                Opts::new("raftgate_llm_requests_total", "LLM API calls by outcome"),
                &["model", "provider", "status_class"],
            )),
            attempts: must(IntCounterVec::new(
                Opts::new(
                    "raftgate_llm_attempts_total",
                    "Provider attempts (fallbacks and retries included) by outcome",
                ),
                &["model", "provider", "outcome"],
            )),
            tokens: must(IntCounterVec::new(
                Opts::new("raftgate_llm_tokens_total", "Tokens by type (input, output)"),
                &["model", "provider", "type"],
            )),
            cost: must(IntCounterVec::new(
                Opts::new("raftgate_llm_cost_microusd_total", "Cost in micro-dollars"),
                &["model", "provider"],
            )),
            ttft: must(HistogramVec::new(
                HistogramOpts::new(
                    "raftgate_llm_time_to_first_token_seconds",
                    "Time from request to the first streamed chunk (gen_ai.server.time_to_first_token)",
                )
                .buckets(BUCKETS.to_vec()),
                &["model"],
            )),
            duration: must(HistogramVec::new(
                HistogramOpts::new(
                    "raftgate_llm_request_duration_seconds",
                    "Time from request to the end of the answer (gen_ai.server.request.duration)",
                )
                .buckets(BUCKETS.to_vec()),
                &["model"],
            )),
        };
        for c in [
            Box::new(m.requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.attempts.clone()),
            Box::new(m.tokens.clone()),
            Box::new(m.cost.clone()),
            Box::new(m.ttft.clone()),
            Box::new(m.duration.clone()),
            Box::new(m.guardrails.clone()),
        ] {
            let _ = registry.register(c);
        }
        m
    }

    pub fn attempt(&self, model: &str, provider: &str, outcome: &str) {
        self.attempts
            .with_label_values(&[model, provider, outcome])
            .inc();
    }

    pub fn finished(&self, model: &str, provider: &str, status: u16, secs: f64) {
        let class = match status {
            200..=299 => "2xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .with_label_values(&[model, provider, class])
            .inc();
        self.duration.with_label_values(&[model]).observe(secs);
    }

    pub fn guardrail(&self, category: &str, count: u64) {
        self.guardrails.with_label_values(&[category]).inc_by(count);
    }

    pub fn first_token(&self, model: &str, secs: f64) {
        self.ttft.with_label_values(&[model]).observe(secs);
    }

    pub fn usage(&self, model: &str, provider: &str, input: u64, output: u64, cost: u64) {
        self.tokens
            .with_label_values(&[model, provider, "input"])
            .inc_by(input);
        self.tokens
            .with_label_values(&[model, provider, "output"])
            .inc_by(output);
        self.cost.with_label_values(&[model, provider]).inc_by(cost);
    }
}

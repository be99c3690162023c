//! Per-call LLM facts for the call log: usage, cost, time to first token, cache hits
//! and guardrail categories, shared by the call pipeline and its [`super::LlmTrace`].

use super::guardrails;
use super::translate::Usage;

/// What one call used, filled in as it becomes known — a stream settles after the
/// response headers left — and read by the call log when the body ends.
#[derive(Debug, Default)]
pub struct LlmFacts(std::sync::Mutex<Facts>);

#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    pub cost_micros: Option<u64>,
    pub ttft_us: Option<u64>,
    pub cache_hit: bool,
    /// Guardrail finding categories, in order, without repeats.
    pub guardrails: Vec<&'static str>,
}

impl LlmFacts {
    pub(super) fn with(&self, f: impl FnOnce(&mut Facts)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn get(&self) -> Facts {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn used(&self, u: &Usage, cost: u64) {
        self.with(|f| {
            (f.tokens_in, f.tokens_out) = (Some(u.input), Some(u.output));
            f.cost_micros = Some(cost);
        });
    }

    pub(super) fn found(&self, v: &guardrails::Verdict) {
        if v.findings.is_empty() {
            return;
        }
        self.with(|f| {
            for (category, _) in &v.findings {
                if !f.guardrails.contains(category) {
                    f.guardrails.push(category);
                }
            }
        });
    }
}

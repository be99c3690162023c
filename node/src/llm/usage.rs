//! What a call costs: prices per model (configured, else a built-in table of well-known
//! upstream models), cost in micro-dollars, and the units a call reserves against and
//! settles with each quota metric.

use raftgate_store::model::{Model, Pricing, QuotaMetric};

use super::translate::Usage;

/// Output tokens reserved when neither the request nor the model says (`max_tokens`).
pub const DEFAULT_OUTPUT_ESTIMATE: u64 = 1_024;

/// USD per million tokens (input, output, cached input) for well-known upstream models,
/// longest prefix first. Public list prices at the time of writing; override per model
/// with `pricing`.
const KNOWN: &[(&str, f64, f64, f64)] = &[
    ("gpt-4o-mini", 0.15, 0.60, 0.075),
    ("gpt-4o", 2.50, 10.00, 1.25),
    ("gpt-4.1-nano", 0.10, 0.40, 0.025),
    ("gpt-4.1-mini", 0.40, 1.60, 0.10),
    ("gpt-4.1", 2.00, 8.00, 0.50),
    ("o4-mini", 1.10, 4.40, 0.275),
    ("o3-mini", 1.10, 4.40, 0.55),
    ("text-embedding-3-small", 0.02, 0.0, 0.02),
    ("text-embedding-3-large", 0.13, 0.0, 0.13),
    ("claude-3-5-haiku", 0.80, 4.00, 0.08),
    ("claude-3-5-sonnet", 3.00, 15.00, 0.30),
    ("claude-3-7-sonnet", 3.00, 15.00, 0.30),
    ("claude-sonnet-4", 3.00, 15.00, 0.30),
    ("claude-opus-4", 15.00, 75.00, 1.50),
    ("gemini-1.5-flash", 0.075, 0.30, 0.01875),
    ("gemini-1.5-pro", 1.25, 5.00, 0.3125),
    ("gemini-2.0-flash", 0.10, 0.40, 0.025),
    ("gemini-2.5-pro", 1.25, 10.00, 0.31),
    ("gemini-2.5-flash", 0.30, 2.50, 0.075),
];

/// The price of a call to `model` served by the upstream model `upstream`.
pub fn pricing(model: &Model, upstream: &str) -> Pricing {
    if let Some(p) = model.pricing {
        return p;
    }
    KNOWN
        .iter()
        .filter(|(prefix, ..)| upstream.starts_with(prefix))
        .max_by_key(|(prefix, ..)| prefix.len())
        .map(|(_, i, o, c)| Pricing {
            input: *i,
            output: *o,
            cached_input: Some(*c),
        })
        .unwrap_or_default()
}

/// Cost in micro-dollars (USD per million tokens is micro-dollars per token).
pub fn cost_micros(p: &Pricing, u: &Usage) -> u64 {
    let cached = u.cached_input.min(u.input);
    let fresh = u.input - cached;
    let c = fresh as f64 * p.input
        + cached as f64 * p.cached_input.unwrap_or(p.input)
        + u.output as f64 * p.output;
    if c.is_finite() && c > 0.0 {
        c.round() as u64
    } else {
        0
    }
}

/// Units of `metric` that a call with this usage and cost consumed.
pub fn units(metric: QuotaMetric, u: &Usage, cost: u64) -> u64 {
    match metric {
        QuotaMetric::Requests => 1,
        QuotaMetric::InputTokens => u.input,
        QuotaMetric::OutputTokens => u.output,
        QuotaMetric::TotalTokens => u.input.saturating_add(u.output),
        QuotaMetric::CostMicros => cost,
    }
}

/// The most expensive pricing among the model's deployments: reservations must cover
/// whichever deployment ends up answering.
pub fn max_pricing(model: &Model) -> Pricing {
    let mut best = Pricing::default();
    for d in &model.deployments {
        let p = pricing(model, &d.model);
        best.input = best.input.max(p.input);
        best.output = best.output.max(p.output);
    }
    best
}

/// Output tokens a `hard` quota of `metric` leaves for a call that reserved `reserved`
/// units with `input` estimated prompt tokens.
pub fn output_budget(metric: QuotaMetric, reserved: u64, input: u64, p: &Pricing) -> Option<u64> {
    match metric {
        QuotaMetric::OutputTokens => Some(reserved),
        QuotaMetric::TotalTokens => Some(reserved.saturating_sub(input)),
        QuotaMetric::CostMicros if p.output > 0.0 => {
            let left = reserved as f64 - input as f64 * p.input;
            Some((left / p.output).max(0.0) as u64)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftgate_store::model::Deployment;

    fn model(pricing: Option<Pricing>, upstream: &[&str]) -> Model {
        Model {
            id: "m".into(),
            tenant: None,
            deployments: upstream
                .iter()
                .map(|u| Deployment {
                    provider: "p".into(),
                    model: u.to_string(),
                    weight: 1,
                    priority: 0,
                })
                .collect(),
            fallbacks: Vec::new(),
            timeout_ms: None,
            quotas: Vec::new(),
            default_max_tokens: None,
            pricing,
            cache: None,
        }
    }

    #[test]
    fn known_models_are_priced_by_longest_prefix_and_config_wins() {
        let m = model(None, &["gpt-4o-mini-2024-07-18"]);
        let p = pricing(&m, "gpt-4o-mini-2024-07-18");
        assert_eq!((p.input, p.output), (0.15, 0.60));
        assert_eq!(pricing(&m, "gpt-4o-2024-08-06").input, 2.50);
        assert_eq!(pricing(&m, "llama-3-70b"), Pricing::default());
        let own = Pricing {
            input: 1.0,
            output: 2.0,
            cached_input: None,
        };
        assert_eq!(pricing(&model(Some(own), &["gpt-4o"]), "gpt-4o"), own);
    }

    #[test]
    fn cost_counts_cached_input_at_its_own_price() {
        let p = Pricing {
            input: 2.5,
            output: 10.0,
            cached_input: Some(1.25),
        };
        let u = Usage {
            input: 1_000,
            output: 200,
            cached_input: 400,
        };
        // 600 × 2.5 + 400 × 1.25 + 200 × 10 = 1500 + 500 + 2000 µ$.
        assert_eq!(cost_micros(&p, &u), 4_000);
        assert_eq!(units(QuotaMetric::TotalTokens, &u, 4_000), 1_200);
        assert_eq!(units(QuotaMetric::CostMicros, &u, 4_000), 4_000);
        assert_eq!(units(QuotaMetric::Requests, &u, 4_000), 1);
    }

    #[test]
    fn hard_budgets_leave_what_the_reservation_covers_after_the_prompt() {
        let p = Pricing {
            input: 2.0,
            output: 4.0,
            cached_input: None,
        };
        assert_eq!(
            output_budget(QuotaMetric::OutputTokens, 300, 50, &p),
            Some(300)
        );
        assert_eq!(
            output_budget(QuotaMetric::TotalTokens, 300, 50, &p),
            Some(250)
        );
        // 1000 µ$ − 50 × 2 = 900 µ$ → 225 output tokens at 4 µ$.
        assert_eq!(
            output_budget(QuotaMetric::CostMicros, 1_000, 50, &p),
            Some(225)
        );
        assert_eq!(output_budget(QuotaMetric::Requests, 1, 50, &p), None);
        let m = model(None, &["gpt-4o-mini", "gpt-4o"]);
        assert_eq!(max_pricing(&m).output, 10.0);
    }
}

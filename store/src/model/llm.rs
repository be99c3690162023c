//! LLM-specific settings: guardrails (per tenant or route) and the response cache (per
//! model).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Checks on prompts and answers. Findings are reported by category only, never with
/// the values found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// Personal data in prompts.
    #[serde(default)]
    pub pii: Option<PiiGuard>,
    /// A heuristic for prompt injection ("ignore previous instructions", ...): `block`
    /// or `log`.
    #[serde(default)]
    pub prompt_injection: Option<GuardAction>,
    /// Terms refused in answers (case-insensitive substrings).
    #[serde(default)]
    pub deny_list: Vec<String>,
    /// What a deny-listed term in an answer does: `block` (default) or `log`.
    #[serde(default = "block")]
    pub deny_action: GuardAction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PiiGuard {
    /// Which kinds to look for (default: all).
    #[serde(default = "all_pii")]
    pub categories: Vec<PiiCategory>,
    pub action: GuardAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PiiCategory {
    Email,
    Phone,
    /// Payment card numbers (Luhn-checked).
    Card,
    /// IBANs (mod-97 checked).
    Iban,
    IpAddress,
    /// Strings that look like API keys or tokens.
    Secret,
}

impl PiiCategory {
    /// Every category: the default of a PII guardrail.
    pub const ALL: [PiiCategory; 6] = [
        PiiCategory::Email,
        PiiCategory::Phone,
        PiiCategory::Card,
        PiiCategory::Iban,
        PiiCategory::IpAddress,
        PiiCategory::Secret,
    ];
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardAction {
    /// Replace what was found with `[REDACTED:<category>]` and go on (PII only).
    Redact,
    /// Refuse the call (400 `guardrail_blocked`).
    #[default]
    Block,
    /// Go on, and report the finding in the call log and metrics.
    Log,
}

fn block() -> GuardAction {
    GuardAction::Block
}

fn all_pii() -> Vec<PiiCategory> {
    PiiCategory::ALL.to_vec()
}

/// Exact-match caching of answers on each node (opt-in per model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseCacheConfig {
    /// How long an answer is served from the cache.
    pub ttl_secs: u64,
}

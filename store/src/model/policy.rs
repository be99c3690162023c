//! Route policies: authentication, IP rules, header rules, CORS, body limit, rewrite
//! and quota references.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A typed, validated policy attached to a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    KeyAuth(KeyAuth),
    JwtAuth(JwtAuth),
    Cors(Cors),
    IpRestriction(IpRestriction),
    Headers(HeaderRules),
    BodyLimit(BodyLimit),
    Rewrite(Rewrite),
    /// Enforce a quota policy by id.
    Quota(String),
    /// Checks on LLM prompts and answers (routes to models).
    Guardrails(crate::model::Guardrails),
    /// Opt-in payload capture into the call log (routes to upstreams). Must stay the
    /// last variant: policies are stored with bincode, which numbers variants by order.
    Capture(Capture),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyAuth {
    /// Extra header to read the key from (besides `Authorization: Bearer` and `x-api-key`).
    #[serde(default)]
    pub header: Option<String>,
    /// Query parameter to read the key from.
    #[serde(default)]
    pub query: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRestriction {
    /// CIDRs allowed; empty allows all that are not denied.
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    #[serde(default)]
    pub request_add: BTreeMap<String, String>,
    #[serde(default)]
    pub request_remove: Vec<String>,
    #[serde(default)]
    pub response_add: BTreeMap<String, String>,
    #[serde(default)]
    pub response_remove: Vec<String>,
    /// Old name → new name.
    #[serde(default)]
    pub request_rename: BTreeMap<String, String>,
    #[serde(default)]
    pub response_rename: BTreeMap<String, String>,
}

/// JWT bearer auth: the token is verified, then a claim names the consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtAuth {
    pub algorithm: JwtAlgorithm,
    /// HS256 shared secret. Write-only: the admin API returns it redacted.
    #[serde(default)]
    pub secret: Option<String>,
    /// RS256/ES256 public key (PEM).
    #[serde(default)]
    pub public_key_pem: Option<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    /// The claim whose value is the consumer id.
    #[serde(default = "default_consumer_claim")]
    pub consumer_claim: String,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway_s")]
    pub leeway_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum JwtAlgorithm {
    Hs256,
    Rs256,
    Es256,
}

/// CORS: answers preflights at the gateway and decorates responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Exact origins, or `*` for any.
    pub allow_origins: Vec<String>,
    /// Empty: the route's methods, or the common ones.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub max_age_s: u64,
    #[serde(default)]
    pub allow_credentials: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BodyLimit {
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rewrite {
    /// Remove the matched prefix.
    StripPrefix,
    /// Replace the matched prefix with this one.
    ReplacePrefix(String),
    /// Build the path from a template using `{param}` captures.
    Template(String),
}

/// Most bytes of each body a `capture` policy may keep.
pub const CAPTURE_MAX_BYTES: u64 = 65_536;
/// Most `redact` names a `capture` policy may list.
pub const CAPTURE_MAX_REDACT: usize = 64;

/// Keeps the first bytes of request and response bodies in the call log, with the
/// values of the named fields replaced by `[REDACTED]`. Headers are never captured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// Request body bytes kept (0 = none), at most [`CAPTURE_MAX_BYTES`].
    #[serde(default)]
    pub request_bytes: u64,
    /// Response body bytes kept (0 = none), at most [`CAPTURE_MAX_BYTES`].
    #[serde(default)]
    pub response_bytes: u64,
    /// Field names whose values are redacted (case-insensitive, at any depth).
    #[serde(default)]
    pub redact: Vec<String>,
}

fn default_consumer_claim() -> String {
    "sub".into()
}
fn default_leeway_s() -> u64 {
    30
}

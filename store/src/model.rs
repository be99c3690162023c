//! The replicated domain model: every resource an operator configures.
//!
//! These types are both the admin API's JSON bodies and the Raft log's payloads, so they
//! follow two rules: serde attributes stay bincode-safe (no `tag`, `flatten`, `untagged`
//! or `skip_serializing_if`), and new fields get `#[serde(default)]` plus a codec version
//! bump. Field-level checks live in [`crate::validate`]; cross-resource checks in
//! [`crate::state`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod llm;
mod policy;
mod upstream;

pub use llm::*;
pub use policy::*;
pub use upstream::*;

/// The resource kinds, also the admin API's collection names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Tenant,
    Consumer,
    ApiKey,
    Upstream,
    Route,
    Provider,
    Model,
    PromptTemplate,
    QuotaPolicy,
    Permission,
    Service,
    Subscription,
    Certificate,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::Tenant,
        Kind::Consumer,
        Kind::ApiKey,
        Kind::Upstream,
        Kind::Route,
        Kind::Provider,
        Kind::Model,
        Kind::PromptTemplate,
        Kind::QuotaPolicy,
        Kind::Permission,
        Kind::Service,
        Kind::Subscription,
        Kind::Certificate,
    ];

    /// Singular name used in errors and in `{"kind": ...}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Tenant => "tenant",
            Kind::Consumer => "consumer",
            Kind::ApiKey => "api_key",
            Kind::Upstream => "upstream",
            Kind::Route => "route",
            Kind::Provider => "provider",
            Kind::Model => "model",
            Kind::PromptTemplate => "prompt_template",
            Kind::QuotaPolicy => "quota_policy",
            Kind::Permission => "permission",
            Kind::Service => "service",
            Kind::Subscription => "subscription",
            Kind::Certificate => "certificate",
        }
    }

    /// Plural collection name used in admin URLs (`/admin/v1/{collection}`).
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Tenant => "tenants",
            Kind::Consumer => "consumers",
            Kind::ApiKey => "api_keys",
            Kind::Upstream => "upstreams",
            Kind::Route => "routes",
            Kind::Provider => "providers",
            Kind::Model => "models",
            Kind::PromptTemplate => "prompt_templates",
            Kind::QuotaPolicy => "quota_policies",
            Kind::Permission => "permissions",
            Kind::Service => "services",
            Kind::Subscription => "subscriptions",
            Kind::Certificate => "certificates",
        }
    }

    pub fn from_collection(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.collection() == s)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An organisation or team; owns consumers and, optionally, routes, upstreams and models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Checks on every LLM call of this tenant's consumers.
    #[serde(default)]
    pub guardrails: Option<Guardrails>,
}

/// An application of a tenant that calls APIs through the gateway with API keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    pub id: String,
    pub tenant: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// An API key of a consumer. Only the SHA-256 of the secret is stored; the plaintext is
/// returned once by the admin API when the key is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub id: String,
    pub consumer: String,
    /// First characters of the secret, to tell keys apart in listings.
    pub prefix: String,
    /// Hex SHA-256 of the full secret.
    pub sha256: String,
    #[serde(default)]
    pub name: String,
    /// Unix milliseconds after which the key is refused; `None` never expires.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
}

/// How a route's path pattern is compared with the request path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    /// The request path starts with the pattern at a segment boundary.
    #[default]
    Prefix,
    /// The request path equals the pattern.
    Exact,
}

/// A data-plane route: which requests it takes and where they go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub id: String,
    #[serde(default)]
    pub tenant: Option<String>,
    /// The service this route belongs to; its lifecycle decides whether the route is
    /// served, and consumers need an approved subscription to it.
    #[serde(default)]
    pub service: Option<String>,
    /// Host names; `*.example.com` matches one or more leading labels. Empty: any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Path pattern; segments may be `{name}` parameters.
    pub path: String,
    #[serde(default)]
    pub path_match: PathMatch,
    /// Upper-case HTTP methods; empty: any method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Request headers that must match, value compared as a regular expression.
    #[serde(default)]
    pub headers: Vec<HeaderMatch>,
    /// Higher wins when several routes match equally specifically.
    #[serde(default)]
    pub priority: i32,
    pub target: RouteTarget,
    #[serde(default)]
    pub policies: Vec<Policy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    pub name: String,
    /// A regular expression the whole value must match.
    pub regex: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteTarget {
    /// Proxy to an upstream by id.
    Upstream(String),
    /// Serve OpenAI chat completions with an LLM model by public name.
    Model(String),
    /// Serve a prompt template: the body is its variables, the answer the model's.
    Prompt(PromptTarget),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptTarget {
    pub template: String,
    /// Pinned version; the current one when absent.
    #[serde(default)]
    pub version: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderType {
    Openai,
    AzureOpenai,
    Anthropic,
    Gemini,
    /// Built-in deterministic provider for demos and tests.
    Mock,
}

/// An LLM provider account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub id: String,
    #[serde(rename = "type")]
    pub provider_type: ProviderType,
    /// Base URL of the provider's API; required except for `mock`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// API key or token. Write-only: the admin API returns it redacted.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Azure OpenAI `api-version`.
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A public model name and the deployments that serve it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// The public name clients put in `"model"`.
    pub id: String,
    #[serde(default)]
    pub tenant: Option<String>,
    pub deployments: Vec<Deployment>,
    /// Other models tried, in order, when every deployment of this one fails.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Quota policies every call to this model must fit (requests, tokens or cost).
    #[serde(default)]
    pub quotas: Vec<String>,
    /// Output tokens reserved against token and cost quotas when a request sets no
    /// `max_tokens` (default 1024).
    #[serde(default)]
    pub default_max_tokens: Option<u32>,
    /// Prices in USD per million tokens; when absent, the built-in table for well-known
    /// upstream model names applies (else the call costs 0).
    #[serde(default)]
    pub pricing: Option<Pricing>,
    /// Serve identical requests from a node-local cache (never across tenants).
    #[serde(default)]
    pub cache: Option<ResponseCacheConfig>,
}

/// USD per million tokens, which is also micro-dollars per token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    pub input: f64,
    pub output: f64,
    /// Cached input tokens; defaults to the input price.
    #[serde(default)]
    pub cached_input: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub provider: String,
    /// The model name at the provider.
    pub model: String,
    #[serde(default = "one")]
    pub weight: u32,
    /// Lower is tried first; equal priorities share traffic by weight.
    #[serde(default)]
    pub priority: u32,
}

/// A prompt with `{{variable}}` placeholders, published as a REST API by routes whose
/// target is `{"prompt": {"template": ID, "version": N}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplate {
    pub id: String,
    #[serde(default)]
    pub tenant: Option<String>,
    /// Every version kept; the highest is the current one. A route may pin a version,
    /// which then cannot be removed while the route exists.
    pub versions: Vec<TemplateVersion>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateVersion {
    pub version: u32,
    /// The model (public name) the rendered prompt is sent to.
    pub model: String,
    /// Messages whose content may hold `{{name}}` placeholders.
    pub messages: Vec<TemplateMessage>,
    /// Every placeholder must be declared here; a call must give exactly these.
    #[serde(default)]
    pub variables: Vec<String>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl PromptTemplate {
    /// Version `v`, or the current (highest) one.
    pub fn version(&self, v: Option<u32>) -> Option<&TemplateVersion> {
        match v {
            Some(v) => self.versions.iter().find(|t| t.version == v),
            None => self.versions.iter().max_by_key(|t| t.version),
        }
    }
}

/// A cluster-wide limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaPolicy {
    pub id: String,
    #[serde(default)]
    pub tenant: Option<String>,
    /// What a counter is kept per: each listed dimension splits the counter.
    pub scope: Vec<QuotaScope>,
    pub metric: QuotaMetric,
    pub window: QuotaWindow,
    pub limit: u64,
    #[serde(default)]
    pub mode: QuotaMode,
    /// Admit when the node holds no lease and cannot get one (default: reject).
    #[serde(default)]
    pub fail_open: bool,
    /// Token and cost metrics: cut a response off when it reaches what was reserved for
    /// it, instead of charging the overshoot afterwards.
    #[serde(default)]
    pub hard: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaScope {
    ApiKey,
    Consumer,
    Tenant,
    Route,
    Service,
    Model,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaMetric {
    Requests,
    InputTokens,
    OutputTokens,
    TotalTokens,
    CostMicros,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaWindow {
    Second,
    Minute,
    Hour,
    Day,
    Month,
    /// A budget that never resets.
    Fixed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaMode {
    #[default]
    Strict,
    Local,
}

/// Grants a consumer the right to call a route or a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    pub id: String,
    pub consumer: String,
    pub target: PermissionTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PermissionTarget {
    Route(String),
    Model(String),
}

/// A group of routes owned by a tenant, published through a lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: String,
    pub tenant: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Only `published` and `deprecated` services are routed.
    #[serde(default)]
    pub state: Lifecycle,
    /// New subscriptions wait for a tenant admin of this service's tenant to approve them.
    #[serde(default)]
    pub approval_required: bool,
    /// `public` services accept subscriptions from consumers of other tenants.
    #[serde(default)]
    pub visibility: Visibility,
    /// Sent as the `Sunset` date (Unix ms) while the service is deprecated.
    #[serde(default)]
    pub sunset_at_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    #[default]
    Draft,
    Published,
    Deprecated,
    Retired,
}

impl Lifecycle {
    /// Whether routes of a service in this state take traffic.
    pub fn is_routable(self) -> bool {
        matches!(self, Lifecycle::Published | Lifecycle::Deprecated)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Tenant,
    Public,
}

/// A consumer's subscription to a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub id: String,
    pub consumer: String,
    pub service: String,
    /// Set by the gateway: `approved` at once unless the service requires approval.
    #[serde(default)]
    pub state: SubscriptionState,
    /// Why it was rejected or revoked, or anything the approver wants to say.
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    #[default]
    Pending,
    Approved,
    Rejected,
    Revoked,
}

/// A TLS certificate for the data-plane listener, chosen by SNI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub id: String,
    /// Server names it serves: exact, or `*.example.com` for one leading label.
    pub snis: Vec<String>,
    /// PEM chain, leaf first.
    pub cert_pem: String,
    /// PEM private key. Encrypted by the admin API before it enters the Raft log
    /// (`enc:v1:...`); write-only: reads return it redacted.
    pub key_pem: String,
}

/// Any resource, as carried by create/update commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Tenant(Tenant),
    Consumer(Consumer),
    ApiKey(ApiKey),
    Upstream(Upstream),
    Route(Route),
    Provider(Provider),
    Model(Model),
    PromptTemplate(PromptTemplate),
    QuotaPolicy(QuotaPolicy),
    Permission(Permission),
    Service(Service),
    Subscription(Subscription),
    Certificate(Certificate),
}

macro_rules! each_resource {
    ($self:expr, $r:ident => $body:expr) => {
        match $self {
            Resource::Tenant($r) => $body,
            Resource::Consumer($r) => $body,
            Resource::ApiKey($r) => $body,
            Resource::Upstream($r) => $body,
            Resource::Route($r) => $body,
            Resource::Provider($r) => $body,
            Resource::Model($r) => $body,
            Resource::PromptTemplate($r) => $body,
            Resource::QuotaPolicy($r) => $body,
            Resource::Permission($r) => $body,
            Resource::Service($r) => $body,
            Resource::Subscription($r) => $body,
            Resource::Certificate($r) => $body,
        }
    };
}

impl Resource {
    pub fn kind(&self) -> Kind {
        match self {
            Resource::Tenant(_) => Kind::Tenant,
            Resource::Consumer(_) => Kind::Consumer,
            Resource::ApiKey(_) => Kind::ApiKey,
            Resource::Upstream(_) => Kind::Upstream,
            Resource::Route(_) => Kind::Route,
            Resource::Provider(_) => Kind::Provider,
            Resource::Model(_) => Kind::Model,
            Resource::PromptTemplate(_) => Kind::PromptTemplate,
            Resource::QuotaPolicy(_) => Kind::QuotaPolicy,
            Resource::Permission(_) => Kind::Permission,
            Resource::Service(_) => Kind::Service,
            Resource::Subscription(_) => Kind::Subscription,
            Resource::Certificate(_) => Kind::Certificate,
        }
    }

    pub fn id(&self) -> &str {
        each_resource!(self, r => &r.id)
    }

    /// Parses the admin API's JSON body for a resource of `kind`.
    pub fn from_json(kind: Kind, body: serde_json::Value) -> Result<Resource, serde_json::Error> {
        use serde_json::from_value as v;
        Ok(match kind {
            Kind::Tenant => Resource::Tenant(v(body)?),
            Kind::Consumer => Resource::Consumer(v(body)?),
            Kind::ApiKey => Resource::ApiKey(v(body)?),
            Kind::Upstream => Resource::Upstream(v(body)?),
            Kind::Route => Resource::Route(v(body)?),
            Kind::Provider => Resource::Provider(v(body)?),
            Kind::Model => Resource::Model(v(body)?),
            Kind::PromptTemplate => Resource::PromptTemplate(v(body)?),
            Kind::QuotaPolicy => Resource::QuotaPolicy(v(body)?),
            Kind::Permission => Resource::Permission(v(body)?),
            Kind::Service => Resource::Service(v(body)?),
            Kind::Subscription => Resource::Subscription(v(body)?),
            Kind::Certificate => Resource::Certificate(v(body)?),
        })
    }

    /// The resource as the admin API shows it: plain JSON, with secrets redacted.
    pub fn to_public_json(&self) -> serde_json::Value {
        let mut value = each_resource!(self, r => serde_json::to_value(r)).unwrap_or_default();
        let redact = |v: &mut serde_json::Value, field: &str| {
            if let Some(slot) = v.get_mut(field).filter(|s| !s.is_null()) {
                *slot = serde_json::Value::String(REDACTED.into());
            }
        };
        match self {
            Resource::Provider(_) => redact(&mut value, "api_key"),
            Resource::Certificate(_) => redact(&mut value, "key_pem"),
            Resource::Route(r) => {
                for (i, p) in r.policies.iter().enumerate() {
                    if let Policy::JwtAuth(_) = p {
                        if let Some(jwt) = value.pointer_mut(&format!("/policies/{i}/jwt_auth")) {
                            redact(jwt, "secret");
                        }
                    }
                }
            }
            _ => {}
        }
        value
    }
}

/// What secrets look like when read back through the admin API.
pub const REDACTED: &str = "<redacted>";

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

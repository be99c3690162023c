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
}

impl Kind {
    pub const ALL: [Kind; 10] = [
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

/// A pool of backend servers a route proxies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub id: String,
    /// Owning tenant; `None` for a cluster-wide upstream usable by every tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    pub targets: Vec<Target>,
    #[serde(default)]
    pub scheme: Scheme,
    #[serde(default)]
    pub balancer: Balancer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `host:port`.
    pub address: String,
    #[serde(default = "one")]
    pub weight: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balancer {
    /// Smooth weighted round-robin (plain round-robin when all weights are equal).
    #[default]
    RoundRobin,
    LeastConnections,
    /// Consistent hashing on a request header, a cookie, or the client IP.
    ConsistentHash(HashKey),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    Header(String),
    Cookie(String),
    ClientIp,
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
    /// Serve with an LLM model by public name.
    Model(String),
}

/// A typed, validated policy attached to a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    KeyAuth(KeyAuth),
    IpRestriction(IpRestriction),
    Headers(HeaderRules),
    BodyLimit(BodyLimit),
    Rewrite(Rewrite),
    /// Enforce a quota policy by id.
    Quota(String),
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

/// A reusable prompt with `{{variable}}` placeholders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplate {
    pub id: String,
    #[serde(default)]
    pub tenant: Option<String>,
    pub template: String,
    /// Every `{{name}}` in the template must be declared here.
    #[serde(default)]
    pub variables: Vec<String>,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaScope {
    ApiKey,
    Consumer,
    Tenant,
    Route,
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
        })
    }

    /// The resource as the admin API shows it: plain JSON, with secrets redacted.
    pub fn to_public_json(&self) -> serde_json::Value {
        let mut value = each_resource!(self, r => serde_json::to_value(r)).unwrap_or_default();
        if let (Resource::Provider(p), Some(obj)) = (self, value.as_object_mut()) {
            if p.api_key.is_some() {
                obj.insert("api_key".into(), serde_json::Value::String(REDACTED.into()));
            }
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

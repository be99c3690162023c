//! Upstreams: targets, balancing, timeouts, retries, health checks, circuit breaker
//! and TLS towards the targets.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{one, yes};

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
    /// Protocol spoken to the targets.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Send the client's `Host` header upstream instead of the target's address (Kong's
    /// `preserve_host`).
    #[serde(default)]
    pub preserve_host: bool,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub retries: Retries,
    #[serde(default)]
    pub health_check: HealthCheck,
    /// Opens per target when too many calls fail; `None` disables it.
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// TLS to `https` targets.
    #[serde(default)]
    pub tls: UpstreamTls,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    /// HTTP/2: negotiated by ALPN over TLS, prior knowledge (h2c) over plain TCP.
    Http2,
}

/// Upstream timeouts. A try that exceeds `per_try_ms` counts as a failure and may be
/// retried; the whole request, retries included, never exceeds `total_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default = "default_connect_ms")]
    pub connect_ms: u64,
    /// Until the response headers of one try arrive.
    #[serde(default = "default_per_try_ms")]
    pub per_try_ms: u64,
    /// Until the response headers arrive, over all tries.
    #[serde(default = "default_total_ms")]
    pub total_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect_ms: default_connect_ms(),
            per_try_ms: default_per_try_ms(),
            total_ms: default_total_ms(),
        }
    }
}

/// Retries. Connect failures are retried for every method (nothing reached the target);
/// timeouts and `on_statuses` only for idempotent methods (GET, HEAD, OPTIONS, PUT,
/// DELETE, TRACE) whose body was not streamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// Extra tries after the first; 0 disables retries.
    #[serde(default = "default_retry_attempts")]
    pub attempts: u32,
    #[serde(default = "default_retry_statuses")]
    pub on_statuses: Vec<u16>,
    /// Delay before the first retry; doubles with each further one.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
}

impl Default for Retries {
    fn default() -> Retries {
        Retries {
            attempts: default_retry_attempts(),
            on_statuses: default_retry_statuses(),
            backoff_ms: default_backoff_ms(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Probes every target on every node.
    #[serde(default)]
    pub active: Option<ActiveHealthCheck>,
    /// Ejects a target after consecutive failures of real traffic.
    #[serde(default)]
    pub passive: Option<PassiveHealthCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveHealthCheck {
    #[serde(default = "default_probe_path")]
    pub path: String,
    #[serde(default = "default_probe_interval_ms")]
    pub interval_ms: u64,
    #[serde(default = "default_probe_timeout_ms")]
    pub timeout_ms: u64,
    /// Consecutive successes that bring an unhealthy target back.
    #[serde(default = "default_healthy_threshold")]
    pub healthy_threshold: u32,
    /// Consecutive failures that take a healthy target out.
    #[serde(default = "default_unhealthy_threshold")]
    pub unhealthy_threshold: u32,
    /// Statuses that count as healthy; empty means 200–399.
    #[serde(default)]
    pub expected_statuses: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PassiveHealthCheck {
    /// Consecutive failed calls (connect error, timeout, 5xx) that eject a target.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// How long an ejected target stays out.
    #[serde(default = "default_cooldown_ms")]
    pub cooldown_ms: u64,
}

/// Per-target breaker: opens when `failure_ratio` of at least `min_calls` calls in the
/// last `window_ms` failed; after `open_ms` one trial call decides between closing and
/// opening again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    #[serde(default = "default_failure_ratio")]
    pub failure_ratio: f64,
    #[serde(default = "default_min_calls")]
    pub min_calls: u32,
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    #[serde(default = "default_open_ms")]
    pub open_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// Verify the target's certificate (on by default).
    #[serde(default = "yes")]
    pub verify: bool,
    /// PEM CA certificates trusted instead of the built-in web roots.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// Server name sent and verified; defaults to the target's host.
    #[serde(default)]
    pub server_name: Option<String>,
}

impl Default for UpstreamTls {
    fn default() -> UpstreamTls {
        UpstreamTls {
            verify: true,
            ca_pem: None,
            server_name: None,
        }
    }
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

fn default_connect_ms() -> u64 {
    2_000
}
fn default_per_try_ms() -> u64 {
    30_000
}
fn default_total_ms() -> u64 {
    60_000
}
fn default_retry_attempts() -> u32 {
    1
}
fn default_retry_statuses() -> Vec<u16> {
    vec![502, 503, 504]
}
fn default_backoff_ms() -> u64 {
    25
}
fn default_probe_path() -> String {
    "/".into()
}
fn default_probe_interval_ms() -> u64 {
    5_000
}
fn default_probe_timeout_ms() -> u64 {
    1_000
}
fn default_healthy_threshold() -> u32 {
    2
}
fn default_unhealthy_threshold() -> u32 {
    3
}
fn default_max_failures() -> u32 {
    5
}
fn default_cooldown_ms() -> u64 {
    10_000
}
fn default_failure_ratio() -> f64 {
    0.5
}
fn default_min_calls() -> u32 {
    20
}
fn default_window_ms() -> u64 {
    10_000
}
fn default_open_ms() -> u64 {
    10_000
}

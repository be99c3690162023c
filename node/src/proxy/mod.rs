//! The REST data plane: a reverse proxy that serves every request from the local
//! replica of the config. The request path reads one atomic pointer (the compiled
//! config of the current revision) and touches no lock, no Raft and no disk.
//!
//! Phases of a request, in `forward`: route match → IP rules → CORS preflight →
//! authentication → access (subscription, tenant, permission) → quota hook → body
//! limit → header rules and rewrite → upstream tries (balancer, breaker, timeouts,
//! retries) → response headers → streamed body, metrics and access log when it ends.

pub mod access;
pub mod auth;
pub mod balancer;
pub mod capture;
pub mod client;
pub mod compile;
mod forward;
mod head;
pub mod health;
pub mod limit;
pub mod metrics;
pub mod policy;
pub mod pool;
mod quota_check;
pub mod rewrite;
pub mod router;
pub mod target;
pub mod tls;
mod unauth;
pub mod wire;

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use hyper::body::Bytes;
use raftgate_store::config::ConfigHandle;

use crate::llm::Llm;
use crate::proxy::access::{AccessLog, RequestIds};
use crate::proxy::compile::{Compiled, Ctx, Registry};
use crate::proxy::metrics::ProxyMetrics;
use crate::proxy::target::CircuitState;
use crate::quota::Quotas;
use crate::secrets::SecretBox;

pub use forward::{handle, unix_ms, ConnInfo};

/// How long the background refresher waits between checks for a new revision.
const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Shared by every connection of the data-plane listeners.
pub struct DataPlane {
    config: ConfigHandle,
    compiled: ArcSwap<Compiled>,
    registry: Mutex<Registry>,
    secrets: Option<Arc<SecretBox>>,
    pub metrics: ProxyMetrics,
    pub access_log: Option<AccessLog>,
    /// One record per call into the node-local call log (`crate::calllog`).
    pub call_log: Option<crate::calllog::CallLog>,
    pub ids: RequestIds,
    pub quotas: Arc<Quotas>,
    pub llm: Arc<Llm>,
    /// OpenTelemetry spans (`crate::telemetry::otlp`); set once at start when enabled.
    pub tracer: std::sync::OnceLock<crate::telemetry::otlp::Tracer>,
    /// The hostile-input limits (`crate::shield`); set once at start. Without them (unit
    /// tests) requests are served unchecked.
    pub shield: std::sync::OnceLock<Arc<crate::shield::Shield>>,
}

impl DataPlane {
    pub fn new(
        config: ConfigHandle,
        registry: &prometheus::Registry,
        secrets: Option<Arc<SecretBox>>,
        access_log: Option<AccessLog>,
        call_log: Option<crate::calllog::CallLog>,
        quotas: Arc<Quotas>,
        llm: Arc<Llm>,
    ) -> Arc<DataPlane> {
        let dp = Arc::new(DataPlane {
            config,
            compiled: ArcSwap::from_pointee(Compiled::empty()),
            registry: Mutex::new(Registry::default()),
            secrets,
            metrics: ProxyMetrics::new(registry),
            access_log,
            call_log,
            ids: RequestIds::new(),
            quotas,
            llm,
            tracer: std::sync::OnceLock::new(),
            shield: std::sync::OnceLock::new(),
        });
        dp.current();
        dp
    }

    /// The compiled config of the latest applied revision. Compiles on the spot when
    /// the config moved (once per revision; concurrent callers wait for that one), so
    /// a request sent after an admin write was acknowledged by this node sees it.
    pub fn current(&self) -> Arc<Compiled> {
        let compiled = self.compiled.load_full();
        let snapshot = self.config.load();
        if compiled.revision == snapshot.state.revision() {
            return compiled;
        }
        drop(snapshot);
        let mut reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = self.config.load_full();
        let now = self.compiled.load_full();
        if now.revision == snapshot.state.revision() {
            return now;
        }
        let ctx = Ctx {
            metrics: &self.metrics,
            secrets: self.secrets.as_deref(),
        };
        let fresh = Arc::new(compile::compile(snapshot, &mut reg, &ctx));
        tracing::debug!(
            revision = fresh.revision,
            routes = fresh.router.len(),
            "data plane compiled"
        );
        self.compiled.store(fresh.clone());
        fresh
    }

    /// Keeps the compiled config fresh without traffic (health probes, TLS
    /// certificates) and exports target health gauges.
    pub async fn refresh_loop(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let c = self.current();
            n += 1;
            if n.is_multiple_of(20) {
                self.export_gauges(&c);
            }
        }
    }

    fn export_gauges(&self, c: &Compiled) {
        let now = target::now_ms();
        for u in &c.upstreams {
            u.client.sweep();
            for (t, _) in &u.balancer.targets {
                let labels = [u.id.as_str(), t.address.as_str()];
                self.metrics
                    .target_healthy
                    .with_label_values(&labels)
                    .set(i64::from(t.is_healthy(now)));
                let circuit = match t.circuit() {
                    CircuitState::Closed => 0,
                    CircuitState::Open => 1,
                    CircuitState::HalfOpen => 2,
                };
                self.metrics
                    .circuit_state
                    .with_label_values(&labels)
                    .set(circuit);
            }
        }
    }
}

//! Data-plane metrics. Label values are route, service, tenant and upstream ids from
//! the replicated config (bounded by what operators create) plus a status class; the
//! per-route handles are resolved at compile time so a request only touches atomics.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone)]
pub struct ProxyMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_duration: HistogramVec,
    pub connections: IntGauge,
    pub target_healthy: IntGaugeVec,
    pub circuit_state: IntGaugeVec,
    retries: IntCounterVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    r.unwrap_or_else(|e| unreachable!("static metric definitions are valid: {e}"))
}

impl ProxyMetrics {
    pub fn new(registry: &Registry) -> ProxyMetrics {
        let m = ProxyMetrics {
            requests: must(IntCounterVec::new(
                Opts::new(
                    "raftgate_http_requests_total",
                    "Data-plane requests by route and status class",
                ),
                &["route", "service", "tenant", "status_class"],
            )),
            duration: must(HistogramVec::new(
                HistogramOpts::new(
                    "raftgate_http_request_duration_seconds",
                    "Time from request to response headers, gateway included",
                )
                .buckets(BUCKETS.to_vec()),
                &["route"],
            )),
            upstream_duration: must(HistogramVec::new(
                HistogramOpts::new(
                    "raftgate_upstream_duration_seconds",
                    "Time an upstream took to answer one try",
                )
                .buckets(BUCKETS.to_vec()),
                &["upstream"],
            )),
            connections: must(IntGauge::new(
                "raftgate_http_active_connections",
                "Open data-plane client connections",
            )),
            target_healthy: must(IntGaugeVec::new(
                Opts::new(
                    "raftgate_upstream_target_healthy",
                    "1 if the target takes traffic",
                ),
                &["upstream", "target"],
            )),
            circuit_state: must(IntGaugeVec::new(
                Opts::new(
                    "raftgate_upstream_circuit_state",
                    "Circuit breaker: 0 closed, 1 open, 2 half-open",
                ),
                &["upstream", "target"],
            )),
            retries: must(IntCounterVec::new(
                Opts::new(
                    "raftgate_upstream_retries_total",
                    "Upstream tries after the first",
                ),
                &["upstream"],
            )),
        };
        for c in [
            Box::new(m.requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.duration.clone()),
            Box::new(m.upstream_duration.clone()),
            Box::new(m.connections.clone()),
            Box::new(m.target_healthy.clone()),
            Box::new(m.circuit_state.clone()),
            Box::new(m.retries.clone()),
        ] {
            let _ = registry.register(c);
        }
        m
    }

    pub fn route(&self, route: &str, service: &str, tenant: &str) -> RouteMetrics {
        let class = |c: &str| {
            self.requests
                .with_label_values(&[route, service, tenant, c])
        };
        RouteMetrics {
            by_class: [
                class("1xx"),
                class("2xx"),
                class("3xx"),
                class("4xx"),
                class("5xx"),
            ],
            duration: self.duration.with_label_values(&[route]),
        }
    }

    pub fn upstream(&self, upstream: &str) -> UpstreamMetrics {
        UpstreamMetrics {
            duration: self.upstream_duration.with_label_values(&[upstream]),
            retries: self.retries.with_label_values(&[upstream]),
        }
    }

    /// Drops the series of routes and upstreams that no longer exist.
    pub fn forget_route(&self, route: &str, service: &str, tenant: &str) {
        for c in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
            let _ = self
                .requests
                .remove_label_values(&[route, service, tenant, c]);
        }
        let _ = self.duration.remove_label_values(&[route]);
    }

    pub fn forget_upstream(&self, upstream: &str) {
        let _ = self.upstream_duration.remove_label_values(&[upstream]);
        let _ = self.retries.remove_label_values(&[upstream]);
    }

    pub fn forget_target(&self, upstream: &str, target: &str) {
        let _ = self.target_healthy.remove_label_values(&[upstream, target]);
        let _ = self.circuit_state.remove_label_values(&[upstream, target]);
    }
}

#[derive(Clone, Debug)]
pub struct RouteMetrics {
    by_class: [IntCounter; 5],
    pub duration: Histogram,
}

impl RouteMetrics {
    pub fn count(&self, status: u16) {
        let i = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[i].inc();
    }
}

#[derive(Clone, Debug)]
pub struct UpstreamMetrics {
    pub duration: Histogram,
    pub retries: IntCounter,
}

//! Prometheus metrics of the node: Raft progress and admin API traffic. The data plane
//! registers its own families in the same registry (see `proxy::metrics`).

use openraft::RaftMetrics;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use raftgate_store::{Node, NodeId};

/// The node's metric families, registered once at start.
pub struct Metrics {
    registry: Registry,
    term: IntGauge,
    leader_id: IntGauge,
    is_leader: IntGauge,
    last_log_index: IntGauge,
    applied_index: IntGauge,
    apply_lag: IntGauge,
    snapshot_index: IntGauge,
    snapshots: IntCounter,
    admin_requests: IntCounterVec,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g =
        IntGauge::new(name, help).unwrap_or_else(|_| unreachable!("static metric names are valid"));
    let _ = registry.register(Box::new(g.clone()));
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let snapshots = IntCounter::new(
            "raftgate_raft_snapshots_total",
            "Snapshots built or installed since start",
        )
        .unwrap_or_else(|_| unreachable!("static metric names are valid"));
        let _ = registry.register(Box::new(snapshots.clone()));
        let admin_requests = IntCounterVec::new(
            Opts::new(
                "raftgate_admin_requests_total",
                "Admin API requests by method and status",
            ),
            &["method", "status"],
        )
        .unwrap_or_else(|_| unreachable!("static metric names are valid"));
        let _ = registry.register(Box::new(admin_requests.clone()));
        Metrics {
            term: gauge(&registry, "raftgate_raft_term", "Current Raft term"),
            leader_id: gauge(
                &registry,
                "raftgate_raft_leader_id",
                "Id of the known leader, 0 if none",
            ),
            is_leader: gauge(
                &registry,
                "raftgate_raft_is_leader",
                "1 if this node is the leader",
            ),
            last_log_index: gauge(
                &registry,
                "raftgate_raft_last_log_index",
                "Index of the last log entry",
            ),
            applied_index: gauge(
                &registry,
                "raftgate_raft_applied_index",
                "Index of the last applied entry",
            ),
            apply_lag: gauge(
                &registry,
                "raftgate_raft_apply_lag",
                "Log entries not yet applied",
            ),
            snapshot_index: gauge(
                &registry,
                "raftgate_raft_snapshot_index",
                "Last log index in the current snapshot",
            ),
            snapshots,
            admin_requests,
            registry,
        }
    }

    /// Where other parts of the node (the data plane) register their families.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn admin_request(&self, method: &str, status: u16) {
        self.admin_requests
            .with_label_values(&[method, &status.to_string()])
            .inc();
    }

    /// Counts a snapshot; called by the watcher when the snapshot log id moves.
    pub fn snapshot_taken(&self) {
        self.snapshots.inc();
    }

    /// Refreshes the Raft gauges from `m` and renders everything in the text format.
    pub fn render(&self, m: &RaftMetrics<NodeId, Node>) -> String {
        let idx = |l: Option<openraft::LogId<NodeId>>| l.map_or(0, |l| l.index) as i64;
        self.term.set(m.current_term as i64);
        self.leader_id.set(m.current_leader.unwrap_or(0) as i64);
        self.is_leader
            .set(i64::from(m.current_leader == Some(m.id)));
        self.last_log_index
            .set(m.last_log_index.unwrap_or(0) as i64);
        self.applied_index.set(idx(m.last_applied));
        self.apply_lag
            .set(m.last_log_index.unwrap_or(0) as i64 - idx(m.last_applied));
        self.snapshot_index.set(idx(m.snapshot));
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

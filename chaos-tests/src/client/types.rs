//! Response types of the admin API (`docs/admin-api.md`) and helpers to compare them.

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /admin/v1/{collection}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ResourceList {
    pub items: Vec<Value>,
    pub revision: u64,
}

/// `POST /admin/v1/cluster/init`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct InitResponse {
    pub cluster_id: String,
    pub node_id: u64,
    pub admin_token: String,
}

/// `GET /admin/v1/cluster`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ClusterStatus {
    #[serde(default)]
    pub cluster_id: String,
    #[serde(default)]
    pub leader_id: Option<u64>,
    #[serde(default)]
    pub term: u64,
    pub nodes: Vec<NodeStatus>,
}

/// One member in [`ClusterStatus`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct NodeStatus {
    pub id: u64,
    #[serde(default)]
    pub raft_addr: String,
    #[serde(default)]
    pub admin_url: String,
    #[serde(default)]
    pub http_addr: String,
    #[serde(default)]
    pub voter: bool,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub term: Option<u64>,
    #[serde(default)]
    pub last_log_index: Option<u64>,
    #[serde(default)]
    pub applied_index: Option<u64>,
    #[serde(default)]
    pub reachable: bool,
}

impl ClusterStatus {
    /// Ids of the voting members.
    pub fn voter_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.voter)
            .map(|n| n.id)
            .collect()
    }

    /// One line per node, for error messages.
    pub fn summary(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "#{} {} voter={} reachable={} applied={:?}",
                    n.id, n.role, n.voter, n.reachable, n.applied_index
                )
            })
            .collect();
        format!(
            "leader={:?} term={} [{}]",
            self.leader_id,
            self.term,
            nodes.join("; ")
        )
    }
}

/// A raw answer, for tests that send malformed requests on purpose.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: StatusCode,
    pub body: String,
}

impl RawResponse {
    /// `error.code` of a JSON error body, if the body is one.
    pub fn error_code(&self) -> Option<String> {
        let v: Value = serde_json::from_str(&self.body).ok()?;
        v.pointer("/error/code")?.as_str().map(str::to_string)
    }
}

/// True when every field of `sent` appears with the same value in `stored` (recursively for
/// objects), i.e. the node stored what was written, plus its own bookkeeping fields.
pub fn contains_fields(stored: &Value, sent: &Value) -> bool {
    match (stored, sent) {
        (Value::Object(s), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| s.get(k).is_some_and(|sv| contains_fields(sv, v))),
        _ => stored == sent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_containment_ignores_bookkeeping() {
        let stored = json!({"id": "t", "name": "n", "labels": {"a": "1"}, "revision": 7});
        assert!(contains_fields(
            &stored,
            &json!({"id": "t", "labels": {"a": "1"}})
        ));
        assert!(!contains_fields(
            &stored,
            &json!({"id": "t", "labels": {"a": "2"}})
        ));
        assert!(!contains_fields(&stored, &json!({"missing": 1})));
    }

    #[test]
    fn cluster_status_parses_the_documented_shape() {
        let s: ClusterStatus = serde_json::from_value(json!({
            "cluster_id": "c", "leader_id": 1, "term": 2,
            "nodes": [{"id": 1, "raft_addr": "127.0.0.1:1", "admin_url": "http://127.0.0.1:2",
                       "http_addr": "127.0.0.1:3", "voter": true, "role": "leader", "term": 2,
                       "last_log_index": 5, "applied_index": 5, "reachable": true}]
        }))
        .expect("documented shape parses");
        assert_eq!(s.voter_ids(), vec![1]);
        assert!(s.summary().contains("leader=Some(1)"));
    }
}

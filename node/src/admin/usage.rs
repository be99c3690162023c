//! `GET /admin/v1/usage`: cluster-wide quota usage from the replicated ledger, answered
//! by any node. Nodes report usage in batched Raft writes about once a second, so the
//! figures trail the traffic by that much; grants are exact.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use raftgate_store::model::{Kind, QuotaPolicy, Resource};
use raftgate_store::quota::Counter;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::resources::can_read;
use super::AppState;
use crate::quota::scope::parse_key;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    pub policy: Option<String>,
    pub api_key: Option<String>,
    pub consumer: Option<String>,
    pub tenant: Option<String>,
    pub route: Option<String>,
    pub service: Option<String>,
    pub model: Option<String>,
    /// `current` (the window holding now), `previous` (ended), or `all` (default).
    pub window: Option<String>,
    pub consistent: Option<bool>,
}

impl UsageParams {
    fn wanted(&self) -> Vec<(&'static str, &str)> {
        [
            ("api_key", &self.api_key),
            ("consumer", &self.consumer),
            ("tenant", &self.tenant),
            ("route", &self.route),
            ("service", &self.service),
            ("model", &self.model),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }
}

pub async fn usage(
    State(state): State<AppState>,
    params: Result<Query<UsageParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let claims = state.authenticate(&headers)?;
    let Query(params) =
        params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let now = crate::proxy::unix_ms();
    let window_filter = match params.window.as_deref().unwrap_or("all") {
        "all" => None,
        "current" => Some(true),
        "previous" => Some(false),
        other => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("window must be current, previous or all, not {other:?}"),
            ))
        }
    };
    if params.consistent.unwrap_or(false) {
        state.raft.linearizable_barrier().await?;
    }
    let cfg = state.config.load();
    let st = &cfg.state;
    let wanted = params.wanted();
    let mut items = Vec::new();
    for c in st.ledger().counters() {
        if params.policy.as_ref().is_some_and(|p| *p != c.id.policy) {
            continue;
        }
        let Some(stored) = st.get(Kind::QuotaPolicy, &c.id.policy) else {
            continue;
        };
        let Resource::QuotaPolicy(policy) = &stored.resource else {
            continue;
        };
        let dims = parse_key(&c.id.key);
        let tenant_dim = dims.iter().find(|(k, _)| k == "tenant").map(|(_, v)| v);
        let visible = can_read(st, &claims, &stored.resource)
            || (tenant_dim.is_some() && claims.tenant.as_ref() == tenant_dim);
        if !visible {
            continue;
        }
        if !wanted
            .iter()
            .all(|(k, v)| dims.iter().any(|(dk, dv)| dk == k && dv == v))
        {
            continue;
        }
        let current = c.id.window_start_ms <= now && now < c.id.window_end_ms;
        if window_filter.is_some_and(|w| w != current) {
            continue;
        }
        items.push(item(c, policy, &dims, current));
    }
    Ok(Json(json!({
        "items": items,
        "applied_index": cfg.applied_index(),
        "note": "used units are reported by every node about once per second; granted units are exact",
    })))
}

fn item(c: &Counter, p: &QuotaPolicy, dims: &[(String, String)], current: bool) -> Value {
    let scope: Map<String, Value> = dims
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let nodes: Map<String, Value> = c
        .granted
        .iter()
        .map(|(n, g)| (n.to_string(), json!(g)))
        .collect();
    let granted = c.total_granted();
    json!({
        "policy": c.id.policy,
        "metric": p.metric,
        "window": p.window,
        "mode": p.mode,
        "scope": scope,
        "window_start_ms": c.id.window_start_ms,
        "window_end_ms": (c.id.window_end_ms != u64::MAX).then_some(c.id.window_end_ms),
        "current": current,
        "limit": p.limit,
        "used": c.used,
        "granted": granted,
        "remaining": p.limit.saturating_sub(granted.max(c.used)),
        "granted_by_node": nodes,
    })
}

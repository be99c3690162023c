//! `GET /admin/v1/logs`: cluster-wide call log search. Every member is asked over the
//! peer channels with a per-node deadline; answers are merged newest first. A member that
//! does not answer in time is named in `missing_nodes` (`partial: true`), never silently
//! left out. Tenant admins only ever see their own tenant's calls.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use raftgate_store::calllog::{CallFilter, CallQuery, CallRecord, Pos};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Role;
use super::error::ApiError;
use super::AppState;

/// Items per page when `limit` is not given, and the most a page may hold.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;
/// How long each node may take to answer, unless `timeout_ms` says otherwise.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_NODE_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    /// Inclusive lower bound, Unix ms.
    pub from_ms: Option<u64>,
    /// Exclusive upper bound, Unix ms.
    pub to_ms: Option<u64>,
    pub tenant: Option<String>,
    pub consumer: Option<String>,
    pub route: Option<String>,
    pub model: Option<String>,
    /// `1xx` .. `5xx`.
    pub status_class: Option<String>,
    pub min_latency_ms: Option<u64>,
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Per-node deadline in ms (default 2000).
    pub timeout_ms: Option<u64>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

fn ms_to_us(key: &str, ms: u64) -> Result<u64, ApiError> {
    ms.checked_mul(1000)
        .ok_or_else(|| bad(format!("{key} is out of range")))
}

/// The query this request asks for (before tenant scoping), or a 400.
pub fn parse(p: LogParams) -> Result<(CallQuery, Duration), ApiError> {
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(bad(format!("limit must be 1..={MAX_LIMIT}")));
    }
    let status_class = match p.status_class.as_deref() {
        None => None,
        Some(s) => match s.as_bytes() {
            [d @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => Some(d - b'0'),
            _ => return Err(bad(format!("status_class must be 1xx..5xx, not {s:?}"))),
        },
    };
    let from_us = ms_to_us("from_ms", p.from_ms.unwrap_or(0))?;
    let to_us = p.to_ms.map(|t| ms_to_us("to_ms", t)).transpose()?;
    if to_us.is_some_and(|t| t < from_us) {
        return Err(bad("to_ms must not be before from_ms"));
    }
    let min_latency_us = p
        .min_latency_ms
        .map(|m| ms_to_us("min_latency_ms", m))
        .transpose()?;
    let cursor = match p.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            Pos::from_cursor(c)
                .ok_or_else(|| bad("cursor is not a cursor returned by this endpoint"))?,
        ),
    };
    let timeout = match p.timeout_ms {
        None => DEFAULT_NODE_TIMEOUT,
        Some(t) if (1..=MAX_NODE_TIMEOUT_MS).contains(&t) => Duration::from_millis(t),
        Some(_) => return Err(bad(format!("timeout_ms must be 1..={MAX_NODE_TIMEOUT_MS}"))),
    };
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let filter = CallFilter {
        from_us,
        to_us,
        tenant: nonempty(p.tenant),
        consumer: nonempty(p.consumer),
        route: nonempty(p.route),
        model: nonempty(p.model),
        status_class,
        min_latency_us,
    };
    Ok((
        CallQuery {
            filter,
            limit,
            cursor,
        },
        timeout,
    ))
}

pub async fn search(
    State(state): State<AppState>,
    params: Result<Query<LogParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let claims = state.authenticate(&headers)?;
    let Query(params) = params.map_err(|e| bad(e.body_text()))?;
    let (mut q, timeout) = parse(params)?;
    if claims.role == Role::TenantAdmin {
        let Some(own) = claims.tenant.clone() else {
            return Err(ApiError::forbidden(
                "this tenant-admin token names no tenant",
            ));
        };
        if q.filter.tenant.as_ref().is_some_and(|t| *t != own) {
            return Err(ApiError::forbidden(format!(
                "a tenant admin of {own:?} may only search its own tenant's calls"
            )));
        }
        q.filter.tenant = Some(own);
    }
    let mut found = state.raft.search_call_logs(q, timeout).await;
    if claims.role == Role::Viewer {
        found.items.iter_mut().for_each(strip_payloads);
    }
    let nodes: Map<String, Value> = found
        .counts
        .iter()
        .map(|(id, n)| (id.to_string(), json!(n)))
        .collect();
    let errors: Map<String, Value> = found
        .missing
        .iter()
        .map(|(id, e)| (id.to_string(), json!(e)))
        .collect();
    Ok(Json(json!({
        "items": found.items,
        "next_cursor": found.next.map(Pos::to_cursor),
        "partial": found.partial(),
        "missing_nodes": found.missing.keys().collect::<Vec<_>>(),
        "nodes": nodes,
        "errors": errors,
    })))
}

/// Captured bodies are for admins and tenant admins only: viewers get the record
/// without them (the truncation flags go too, so nothing hints at their size).
fn strip_payloads(r: &mut CallRecord) {
    (r.request_body, r.response_body) = (None, None);
    (r.request_truncated, r.response_truncated) = (false, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &str) -> Result<(CallQuery, Duration), ApiError> {
        let uri: axum::http::Uri = format!("/logs?{pairs}").parse().unwrap();
        let Query(p) = Query::<LogParams>::try_from_uri(&uri).map_err(|e| bad(e.body_text()))?;
        parse(p)
    }

    #[test]
    fn parses_filters_and_defaults() {
        let (q, t) = params("").unwrap();
        assert_eq!(
            (q.limit, t, q.cursor),
            (DEFAULT_LIMIT, DEFAULT_NODE_TIMEOUT, None)
        );
        let (q, _) = params(
            "from_ms=5&to_ms=9&tenant=t&status_class=5xx&min_latency_ms=3&limit=1000&route=r",
        )
        .unwrap();
        assert_eq!(q.filter.from_us, 5000);
        assert_eq!(q.filter.to_us, Some(9000));
        assert_eq!(q.filter.status_class, Some(5));
        assert_eq!(q.filter.min_latency_us, Some(3000));
        assert_eq!(q.filter.tenant.as_deref(), Some("t"));
        let c = Pos {
            time_us: 1,
            node: 2,
            seq: 3,
        };
        let (q, _) = params(&format!("cursor={}", c.to_cursor())).unwrap();
        assert_eq!(q.cursor, Some(c));
    }

    #[test]
    fn bad_params_are_400s() {
        for bad in [
            "limit=0",
            "limit=1001",
            "status_class=6xx",
            "status_class=2",
            "cursor=nope",
            "from_ms=10&to_ms=5",
            "from_ms=18446744073709551615",
            "timeout_ms=0",
        ] {
            let e = params(bad).expect_err(bad);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}

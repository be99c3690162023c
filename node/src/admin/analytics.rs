//! `GET /admin/v1/analytics/timeseries` and `/analytics/top`: per-minute rollups of every
//! node, asked over the peer channels with a per-node deadline and merged. Like
//! `/admin/v1/logs`, a member that does not answer is named in `missing_nodes`
//! (`partial: true`), and tenant admins only ever see their own tenant's calls.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use raftgate_raft::RollupAnswer;
use raftgate_store::rollup::{minute_of, Dimension, GroupBy, RollupQuery, Stats, MINUTE_MS};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::{Claims, Role};
use super::error::ApiError;
use super::logs::DEFAULT_NODE_TIMEOUT;
use super::AppState;

/// Range when `from_ms` is not given: the last hour.
const DEFAULT_RANGE_MS: u64 = 3_600_000;
/// Most minutes one time series may span (31 days).
pub const MAX_POINTS: u64 = 31 * 24 * 60;
pub const DEFAULT_TOP: usize = 10;
pub const MAX_TOP: usize = 100;
const MAX_NODE_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesParams {
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    /// `all` (default), `tenant`, `consumer`, `route`, `model` or `provider`.
    pub dimension: Option<String>,
    /// One id of the dimension; all of them when absent.
    pub key: Option<String>,
    pub tenant: Option<String>,
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopParams {
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    /// `tenant`, `consumer`, `route`, `model` or `provider` (required).
    pub dimension: Option<String>,
    /// `requests` (default), `cost`, `errors` or `p99`.
    pub by: Option<String>,
    pub limit: Option<usize>,
    pub tenant: Option<String>,
    pub timeout_ms: Option<u64>,
}

/// What a top list is sorted by (descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Requests,
    Cost,
    Errors,
    P99,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

/// The aligned range [from, to) in ms: defaults to the last hour up to now.
fn range(from_ms: Option<u64>, to_ms: Option<u64>, now_ms: u64) -> Result<(u64, u64), ApiError> {
    let to = to_ms.unwrap_or(now_ms);
    let from = from_ms.unwrap_or(to.saturating_sub(DEFAULT_RANGE_MS));
    if to < from {
        return Err(bad("to_ms must not be before from_ms"));
    }
    Ok((minute_of(from), to))
}

fn timeout(t: Option<u64>) -> Result<Duration, ApiError> {
    match t {
        None => Ok(DEFAULT_NODE_TIMEOUT),
        Some(t) if (1..=MAX_NODE_TIMEOUT_MS).contains(&t) => Ok(Duration::from_millis(t)),
        Some(_) => Err(bad(format!("timeout_ms must be 1..={MAX_NODE_TIMEOUT_MS}"))),
    }
}

fn dimension(s: Option<&str>, default: Option<Dimension>) -> Result<Dimension, ApiError> {
    match (s.filter(|s| !s.is_empty()), default) {
        (None, Some(d)) => Ok(d),
        (None, None) => Err(bad(
            "dimension is required: tenant, consumer, route, model or provider",
        )),
        (Some(s), _) => Dimension::parse(s).ok_or_else(|| {
            bad(format!(
                "dimension must be all, tenant, consumer, route, model or provider, not {s:?}"
            ))
        }),
    }
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// A time series query (before tenant scoping) and the per-node deadline, or a 400.
pub fn parse_series(p: SeriesParams, now_ms: u64) -> Result<(RollupQuery, Duration), ApiError> {
    let (from_ms, to_ms) = range(p.from_ms, p.to_ms, now_ms)?;
    if (to_ms - from_ms).div_ceil(MINUTE_MS) > MAX_POINTS {
        return Err(bad(format!(
            "a time series spans at most {MAX_POINTS} minutes (31 days)"
        )));
    }
    let dimension = dimension(p.dimension.as_deref(), Some(Dimension::All))?;
    let key = nonempty(p.key);
    if dimension == Dimension::All && key.is_some() {
        return Err(bad("key needs a dimension other than all"));
    }
    let q = RollupQuery {
        from_ms,
        to_ms,
        dimension,
        key,
        tenant: nonempty(p.tenant),
        group: GroupBy::Minute,
    };
    Ok((q, timeout(p.timeout_ms)?))
}

/// A top-list query, its sort and length, and the per-node deadline, or a 400.
pub fn parse_top(
    p: TopParams,
    now_ms: u64,
) -> Result<(RollupQuery, By, usize, Duration), ApiError> {
    let (from_ms, to_ms) = range(p.from_ms, p.to_ms, now_ms)?;
    let dimension = dimension(p.dimension.as_deref(), None)?;
    if dimension == Dimension::All {
        return Err(bad("a top list needs a dimension other than all"));
    }
    let by = match p.by.as_deref().unwrap_or("requests") {
        "requests" => By::Requests,
        "cost" => By::Cost,
        "errors" => By::Errors,
        "p99" => By::P99,
        other => {
            return Err(bad(format!(
                "by must be requests, cost, errors or p99, not {other:?}"
            )))
        }
    };
    let limit = p.limit.unwrap_or(DEFAULT_TOP);
    if limit == 0 || limit > MAX_TOP {
        return Err(bad(format!("limit must be 1..={MAX_TOP}")));
    }
    let q = RollupQuery {
        from_ms,
        to_ms,
        dimension,
        key: None,
        tenant: nonempty(p.tenant),
        group: GroupBy::Key,
    };
    Ok((q, by, limit, timeout(p.timeout_ms)?))
}

/// Forces a tenant admin's queries to its own tenant (403 for another one).
fn scope(claims: &Claims, q: &mut RollupQuery) -> Result<(), ApiError> {
    if claims.role == Role::TenantAdmin {
        let Some(own) = claims.tenant.clone() else {
            return Err(ApiError::forbidden(
                "this tenant-admin token names no tenant",
            ));
        };
        if q.tenant.as_ref().is_some_and(|t| *t != own) {
            return Err(ApiError::forbidden(format!(
                "a tenant admin of {own:?} may only see its own tenant's analytics"
            )));
        }
        q.tenant = Some(own);
    }
    Ok(())
}

fn ms(us: Option<f64>) -> Value {
    us.map_or(Value::Null, |us| {
        json!((us / 1000.0 * 1000.0).round() / 1000.0)
    })
}

/// The JSON figures of merged stats (shared by points and top items).
pub fn figures(s: &Stats) -> Map<String, Value> {
    let errors = s.errors_4xx + s.errors_5xx;
    let rate = if s.requests == 0 {
        0.0
    } else {
        errors as f64 / s.requests as f64
    };
    let mut m = Map::new();
    m.insert("requests".into(), json!(s.requests));
    m.insert("errors_4xx".into(), json!(s.errors_4xx));
    m.insert("errors_5xx".into(), json!(s.errors_5xx));
    m.insert("error_rate".into(), json!(rate));
    m.insert("p50_ms".into(), ms(s.latency.quantile(0.5)));
    m.insert("p95_ms".into(), ms(s.latency.quantile(0.95)));
    m.insert("p99_ms".into(), ms(s.latency.quantile(0.99)));
    m.insert("tokens_in".into(), json!(s.tokens_in));
    m.insert("tokens_out".into(), json!(s.tokens_out));
    m.insert("cost".into(), json!(s.cost_micros as f64 / 1e6));
    m
}

fn envelope(found: &RollupAnswer, q: &RollupQuery, mut body: Map<String, Value>) -> Json<Value> {
    let errors: Map<String, Value> = found
        .missing
        .iter()
        .map(|(id, e)| (id.to_string(), json!(e)))
        .collect();
    body.insert("from_ms".into(), json!(q.from_ms));
    body.insert("to_ms".into(), json!(q.to_ms));
    body.insert("partial".into(), json!(found.partial()));
    body.insert(
        "missing_nodes".into(),
        json!(found.missing.keys().collect::<Vec<_>>()),
    );
    body.insert("truncated".into(), json!(found.truncated));
    body.insert("errors".into(), Value::Object(errors));
    Json(Value::Object(body))
}

pub async fn timeseries(
    State(state): State<AppState>,
    params: Result<Query<SeriesParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let claims = state.authenticate(&headers)?;
    let Query(params) = params.map_err(|e| bad(e.body_text()))?;
    let (mut q, ttl) = parse_series(params, crate::proxy::unix_ms())?;
    scope(&claims, &mut q)?;
    let found = state.raft.query_rollups(q.clone(), ttl).await;
    let empty = Stats::default();
    let points: Vec<Value> = (q.from_ms..q.to_ms)
        .step_by(MINUTE_MS as usize)
        .map(|minute| {
            let s = found.groups.get(&(minute, String::new())).unwrap_or(&empty);
            let mut m = figures(s);
            m.insert("minute_ms".into(), json!(minute));
            Value::Object(m)
        })
        .collect();
    let mut body = Map::new();
    body.insert("dimension".into(), json!(q.dimension.name()));
    body.insert("key".into(), json!(q.key));
    body.insert("points".into(), Value::Array(points));
    Ok(envelope(&found, &q, body))
}

pub async fn top(
    State(state): State<AppState>,
    params: Result<Query<TopParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let claims = state.authenticate(&headers)?;
    let Query(params) = params.map_err(|e| bad(e.body_text()))?;
    let (mut q, by, limit, ttl) = parse_top(params, crate::proxy::unix_ms())?;
    scope(&claims, &mut q)?;
    let found = state.raft.query_rollups(q.clone(), ttl).await;
    let mut rows: Vec<(&str, &Stats)> = found
        .groups
        .iter()
        .map(|((_, key), s)| (key.as_str(), s))
        .collect();
    rows.sort_by(|a, b| {
        let (x, y) = (a.1, b.1);
        let order = match by {
            By::Requests => y.requests.cmp(&x.requests),
            By::Cost => y.cost_micros.cmp(&x.cost_micros),
            By::Errors => (y.errors_4xx + y.errors_5xx).cmp(&(x.errors_4xx + x.errors_5xx)),
            By::P99 => {
                let p = |s: &Stats| s.latency.quantile(0.99).unwrap_or(-1.0);
                p(y).total_cmp(&p(x))
            }
        };
        order.then_with(|| a.0.cmp(b.0))
    });
    let items: Vec<Value> = rows
        .into_iter()
        .take(limit)
        .map(|(key, s)| {
            let mut m = figures(s);
            m.insert("key".into(), json!(key));
            Value::Object(m)
        })
        .collect();
    let mut body = Map::new();
    body.insert("dimension".into(), json!(q.dimension.name()));
    body.insert(
        "by".into(),
        json!(match by {
            By::Requests => "requests",
            By::Cost => "cost",
            By::Errors => "errors",
            By::P99 => "p99",
        }),
    );
    body.insert("items".into(), Value::Array(items));
    Ok(envelope(&found, &q, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_050_000;

    fn series(pairs: &str) -> Result<(RollupQuery, Duration), ApiError> {
        let uri: axum::http::Uri = format!("/x?{pairs}").parse().unwrap();
        let Query(p) = Query::<SeriesParams>::try_from_uri(&uri).map_err(|e| bad(e.body_text()))?;
        parse_series(p, NOW)
    }

    fn top(pairs: &str) -> Result<(RollupQuery, By, usize, Duration), ApiError> {
        let uri: axum::http::Uri = format!("/x?{pairs}").parse().unwrap();
        let Query(p) = Query::<TopParams>::try_from_uri(&uri).map_err(|e| bad(e.body_text()))?;
        parse_top(p, NOW)
    }

    #[test]
    fn defaults_and_alignment() {
        let (q, t) = series("").unwrap();
        assert_eq!(q.dimension, Dimension::All);
        assert_eq!(q.to_ms, NOW);
        assert_eq!(q.from_ms, minute_of(NOW - DEFAULT_RANGE_MS));
        assert_eq!(t, DEFAULT_NODE_TIMEOUT);
        let (q, _) = series("from_ms=61000&to_ms=200000&dimension=route&key=r1").unwrap();
        assert_eq!((q.from_ms, q.to_ms), (60_000, 200_000));
        assert_eq!(q.key.as_deref(), Some("r1"));
        let (q, by, n, _) = top("dimension=consumer&by=cost").unwrap();
        assert_eq!(
            (q.dimension, by, n),
            (Dimension::Consumer, By::Cost, DEFAULT_TOP)
        );
        assert_eq!(q.group, GroupBy::Key);
    }

    #[test]
    fn bad_params_are_400s() {
        for p in [
            "dimension=nope",
            "dimension=all&key=x",
            "from_ms=10&to_ms=5",
            "from_ms=0&to_ms=999999999999",
            "timeout_ms=0",
            "extra=1",
            "from_ms=-1",
        ] {
            let e = series(p).expect_err(p);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{p}");
        }
        for p in [
            "",
            "dimension=all",
            "dimension=route&by=latency",
            "dimension=route&limit=0",
            "dimension=route&limit=101",
            "dimension=route&key=x",
        ] {
            let e = top(p).expect_err(p);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{p}");
        }
    }

    #[test]
    fn figures_report_errors_and_percentiles() {
        let mut s = Stats::default();
        for (status, us) in [(200, 10_000), (404, 20_000), (503, 30_000), (200, 40_000)] {
            s.add_record(&raftgate_store::calllog::CallRecord {
                status,
                latency_us: us,
                cost_micros: Some(1_500_000),
                ..Default::default()
            });
        }
        let f = figures(&s);
        assert_eq!(f["requests"], json!(4));
        assert_eq!(f["errors_4xx"], json!(1));
        assert_eq!(f["errors_5xx"], json!(1));
        assert_eq!(f["error_rate"], json!(0.5));
        assert_eq!(f["cost"], json!(6.0));
        let p99 = f["p99_ms"].as_f64().unwrap();
        assert!((p99 - 40.0).abs() <= 0.4, "{p99}");
        assert_eq!(figures(&Stats::default())["p50_ms"], Value::Null);
    }
}

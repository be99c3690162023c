//! Phase 4 of a REST request: the route's quotas, one unit each, from this node's local
//! balances (see `crate::quota`).

use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;
use raftgate_store::model::QuotaWindow;

use crate::proxy::auth::Identity;
use crate::proxy::compile::RouteRt;
use crate::proxy::forward::{fail, unix_ms, Failure};
use crate::quota::{CallScope, Check, Quotas, RateHeaders, Rejection};

/// Admits the call against every quota of the route (one unit each), or refuses it:
/// 429 when a limit is reached, 503 when no grant could be had (no leader reachable).
/// An admitted call's `RateLimit-*` values are returned, for the response whatever
/// answers it; a refusal writes its headers into `extra`.
pub(crate) async fn check_quotas(
    quotas: &Quotas,
    route: &RouteRt,
    id: Option<&Identity>,
    extra: &mut HeaderMap,
) -> Result<Option<RateHeaders>, Failure> {
    let scope = CallScope {
        api_key: id.and_then(|i| i.key_id.as_deref()),
        consumer: id.map(|i| i.consumer.as_str()),
        tenant: id.map(|i| i.tenant.as_str()).or(route.tenant.as_deref()),
        route: Some(&route.id),
        service: route.service.as_ref().map(|s| s.id.as_str()),
        model: None,
    };
    let checks: Vec<Check> = route
        .quotas
        .iter()
        .map(|p| Check {
            policy: p.clone(),
            key: scope.key(&p.scope),
            units: 1,
        })
        .collect();
    match quotas.admit(&checks, unix_ms()).await {
        Ok(permit) => {
            let headers = permit.headers;
            permit.commit();
            Ok(headers)
        }
        Err(Rejection::Exhausted {
            policy,
            limit,
            window,
            headers,
        }) => {
            headers.write(extra);
            if let Some(reset) = headers.reset_secs {
                extra.insert(header::RETRY_AFTER, HeaderValue::from(reset.max(1)));
            }
            let per = match window {
                QuotaWindow::Second => "per second",
                QuotaWindow::Minute => "per minute",
                QuotaWindow::Hour => "per hour",
                QuotaWindow::Day => "per day",
                QuotaWindow::Month => "per month",
                QuotaWindow::Fixed => "in total",
            };
            Err(fail(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("quota {policy:?} is used up: at most {limit} {per}"),
            ))
        }
        Err(Rejection::Unavailable { policy }) => {
            extra.insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            Err(fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "quota_unavailable",
                format!(
                    "quota {policy:?} cannot be checked: this node holds no units for it and cannot reach the cluster leader"
                ),
            ))
        }
    }
}

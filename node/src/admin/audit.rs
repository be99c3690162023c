//! The admin audit trail, HTTP side: what each write carries into Raft (who, from which
//! node, which request) and `GET /admin/v1/audit`. Records are made at apply (see
//! `raftgate_store::audit`), so every node answers the same query the same way.

use axum::extract::{Query, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use raftgate_store::audit::{AuditFilter, AuditRecord, Origin};
use raftgate_store::model::Kind;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Claims, Role};
use super::error::ApiError;
use super::AppState;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// The request being served, for the audit origin of the writes it proposes.
#[derive(Clone)]
struct RequestLine {
    method: String,
    path: String,
}

tokio::task_local! {
    static REQUEST: RequestLine;
}

/// Middleware: remembers method and path (never the query string or body) for the
/// handler's task, so `propose` can put them in the command without every handler
/// passing them along.
pub async fn capture_request(req: Request, next: Next) -> Response {
    let line = RequestLine {
        method: req.method().as_str().to_string(),
        // Inside `nest` the URI lost its `/admin/v1` prefix; the original keeps it.
        path: req
            .extensions()
            .get::<axum::extract::OriginalUri>()
            .map_or(req.uri().path(), |u| u.path())
            .to_string(),
    };
    REQUEST.scope(line, next.run(req)).await
}

/// The node itself writing without a token (`cluster init`, `bootstrap = true`).
pub fn system_origin(state: &AppState) -> Origin {
    let (method, path) = REQUEST
        .try_with(|r| (r.method.clone(), r.path.clone()))
        .unwrap_or_default();
    Origin {
        role: "system".to_string(),
        tenant: None,
        node: state.raft.id(),
        method,
        path,
    }
}

/// Who is writing, as the audit record will show it.
pub fn origin(state: &AppState, claims: &Claims) -> Origin {
    let (method, path) = REQUEST
        .try_with(|r| (r.method.clone(), r.path.clone()))
        .unwrap_or_default();
    let role = match claims.role {
        Role::Admin => "admin",
        Role::TenantAdmin => "tenant-admin",
        Role::Viewer => "viewer",
    };
    Origin {
        role: role.to_string(),
        tenant: claims.tenant.clone(),
        node: state.raft.id(),
        method,
        path,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Inclusive lower bound, Unix ms.
    pub since: Option<u64>,
    /// Exclusive upper bound, Unix ms.
    pub until: Option<u64>,
    pub actor: Option<String>,
    /// A collection name (`consumers`) or kind (`consumer`).
    pub kind: Option<String>,
    pub limit: Option<usize>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

/// The filter and page size a query asks for, with a tenant admin held to its tenant.
pub fn parse(p: AuditParams, claims: &Claims) -> Result<(AuditFilter, usize), ApiError> {
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(bad(format!("limit must be 1..={MAX_LIMIT}")));
    }
    if let (Some(s), Some(u)) = (p.since, p.until) {
        if u < s {
            return Err(bad("until must not be before since"));
        }
    }
    let kind = match p.kind.as_deref() {
        None | Some("") => None,
        Some(k) => Some(
            Kind::from_collection(k)
                .or_else(|| Kind::ALL.into_iter().find(|x| x.to_string() == k))
                .ok_or_else(|| bad(format!("unknown kind {k:?}")))?,
        ),
    };
    let tenant = match claims.role {
        Role::Admin | Role::Viewer => None,
        Role::TenantAdmin => Some(
            claims
                .tenant
                .clone()
                .ok_or_else(|| ApiError::forbidden("this tenant-admin token names no tenant"))?,
        ),
    };
    let filter = AuditFilter {
        since_ms: p.since,
        until_ms: p.until,
        actor: p.actor.filter(|a| !a.is_empty()),
        kind,
        tenant,
    };
    Ok((filter, limit))
}

pub fn record_json(r: &AuditRecord) -> Value {
    json!({
        "seq": r.seq, "at_ms": r.at_ms, "actor": r.actor, "role": r.role,
        "actor_tenant": r.actor_tenant, "tenant": r.tenant, "node": r.node,
        "method": r.method, "path": r.path, "op": r.op, "kind": r.kind, "id": r.id,
        "outcome": r.outcome,
    })
}

/// `GET /admin/v1/audit`: newest first. Admins and viewers see every record, tenant
/// admins the records about their tenant or made with their tenant's tokens.
pub async fn query(
    State(state): State<AppState>,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let claims = state.authenticate(&headers)?;
    let Query(params) = params.map_err(|e| bad(e.body_text()))?;
    let (filter, limit) = parse(params, &claims)?;
    let cfg = state.config.load();
    let mut matching = cfg
        .state
        .audit_records()
        .rev()
        .filter(|r| filter.matches(r));
    let items: Vec<Value> = matching.by_ref().take(limit).map(record_json).collect();
    let more = matching.next().is_some();
    Ok(Json(
        json!({"items": items, "more": more, "revision": cfg.state.revision()}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(role: Role, tenant: Option<&str>) -> Claims {
        Claims {
            sub: "t".into(),
            role,
            tenant: tenant.map(Into::into),
            iat: 0,
            exp: 0,
            jti: None,
        }
    }

    #[test]
    fn tenant_admins_are_held_to_their_tenant() {
        let (f, limit) = parse(
            AuditParams {
                kind: Some("consumers".into()),
                ..Default::default()
            },
            &claims(Role::TenantAdmin, Some("a")),
        )
        .unwrap();
        assert_eq!(
            (f.tenant.as_deref(), f.kind, limit),
            (Some("a"), Some(Kind::Consumer), DEFAULT_LIMIT)
        );
        let (f, _) = parse(AuditParams::default(), &claims(Role::Viewer, None)).unwrap();
        assert_eq!(f.tenant, None);
        assert!(parse(AuditParams::default(), &claims(Role::TenantAdmin, None)).is_err());
    }

    #[test]
    fn bad_queries_are_refused() {
        let admin = claims(Role::Admin, None);
        for p in [
            AuditParams {
                limit: Some(0),
                ..Default::default()
            },
            AuditParams {
                limit: Some(MAX_LIMIT + 1),
                ..Default::default()
            },
            AuditParams {
                since: Some(10),
                until: Some(5),
                ..Default::default()
            },
            AuditParams {
                kind: Some("widgets".into()),
                ..Default::default()
            },
        ] {
            let e = parse(p, &admin).unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (400, "invalid_query"));
        }
    }
}

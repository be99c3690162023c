//! Subscriptions: who may see and change them, the state the gateway sets on create, and
//! the approve / reject / revoke actions.
//!
//! Two tenants have a say in a subscription: the consumer's (it owns the subscription and
//! may revoke it) and the service's (its tenant admins approve, reject and revoke, and see
//! subscriptions to their services whatever the consumer's tenant).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use raftgate_store::model::{Kind, Resource, Service, Subscription, SubscriptionState};
use raftgate_store::state::State as Replicated;
use serde::Deserialize;
use serde_json::Value;

use super::auth::Claims;
use super::error::{parse_json, ApiError};
use super::resources::{can_read, write_resource};
use super::AppState;

fn service<'a>(st: &'a Replicated, id: &str) -> Option<&'a Service> {
    match &st.get(Kind::Service, id)?.resource {
        Resource::Service(s) => Some(s),
        _ => None,
    }
}

/// The tenant of the service `id`, if it exists.
pub fn service_tenant(st: &Replicated, id: &str) -> Option<String> {
    service(st, id).map(|s| s.tenant.clone())
}

/// Admins and tenant admins of the service's tenant decide on subscriptions to it.
pub fn may_approve(st: &Replicated, claims: &Claims, service_id: &str) -> bool {
    claims.can_write(service_tenant(st, service_id).as_deref())
}

/// Tenant admins of the consumer's tenant (and admins) own the subscription.
fn consumer_side(st: &Replicated, claims: &Claims, sub: &Subscription) -> bool {
    claims.can_write(
        st.owner_tenant(&Resource::Subscription(sub.clone()))
            .as_deref(),
    )
}

/// Sets the state of a new subscription: approved at once when the service does not
/// require approval; otherwise pending, unless an approver asked for `approved`.
pub fn on_create(st: &Replicated, claims: &Claims, sub: &mut Subscription) {
    let open = service(st, &sub.service).is_some_and(|s| !s.approval_required);
    let approved_by_caller =
        sub.state == SubscriptionState::Approved && may_approve(st, claims, &sub.service);
    sub.state = if open || approved_by_caller {
        SubscriptionState::Approved
    } else {
        SubscriptionState::Pending
    };
}

/// A PUT may change the note; the state only when the caller may approve.
pub fn authorize_update(
    st: &Replicated,
    claims: &Claims,
    old: &Subscription,
    new: &Subscription,
) -> Result<(), ApiError> {
    let approver = may_approve(st, claims, &old.service);
    if !approver && !consumer_side(st, claims, old) {
        return Err(hidden_or_forbidden(st, claims, old));
    }
    if new.state != old.state && !approver {
        return Err(ApiError::forbidden(format!(
            "only an admin or a tenant-admin of service '{}' may change a subscription's \
             state; the consumer's side may POST /admin/v1/subscriptions/{}/revoke",
            old.service, old.id
        )));
    }
    Ok(())
}

/// Either side may delete a subscription.
pub fn authorize_delete(
    st: &Replicated,
    claims: &Claims,
    sub: &Subscription,
) -> Result<(), ApiError> {
    if may_approve(st, claims, &sub.service) || consumer_side(st, claims, sub) {
        Ok(())
    } else {
        Err(hidden_or_forbidden(st, claims, sub))
    }
}

/// 404 for callers who cannot see the subscription (no existence leak), else 403.
fn hidden_or_forbidden(st: &Replicated, claims: &Claims, sub: &Subscription) -> ApiError {
    if can_read(st, claims, &Resource::Subscription(sub.clone())) {
        ApiError::forbidden(format!("not allowed to change subscription '{}'", sub.id))
    } else {
        ApiError::not_found(format!("subscription '{}' not found", sub.id))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Approve,
    Reject,
    Revoke,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Revoke => "revoke",
        }
    }

    /// The state after the action, or why it does not apply. Repeating an action is a
    /// no-op (its note still replaces the old one).
    fn next(self, from: SubscriptionState) -> Result<SubscriptionState, &'static str> {
        use SubscriptionState::*;
        match (self, from) {
            (Action::Approve, _) => Ok(Approved),
            (Action::Reject, Pending | Rejected) => Ok(Rejected),
            (Action::Reject, _) => {
                Err("only a pending subscription can be rejected; revoke an approved one")
            }
            (Action::Revoke, Approved | Pending | Revoked) => Ok(Revoked),
            (Action::Revoke, Rejected) => Err("a rejected subscription cannot be revoked"),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[serde(default)]
    note: Option<String>,
}

pub async fn approve(
    state: State<AppState>,
    id: Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    act(state, id, headers, body, Action::Approve).await
}

pub async fn reject(
    state: State<AppState>,
    id: Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    act(state, id, headers, body, Action::Reject).await
}

pub async fn revoke(
    state: State<AppState>,
    id: Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    act(state, id, headers, body, Action::Revoke).await
}

/// Checks who asks and the transition, then proposes the changed subscription as a normal
/// replicated update and answers with it.
async fn act(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    action: Action,
) -> Result<Json<Value>, ApiError> {
    let claims = state.authenticate(&headers)?;
    let body = body?;
    let req: ActionBody = if body.is_empty() {
        ActionBody::default()
    } else {
        serde_json::from_value(parse_json(&body)?)
            .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?
    };
    let new = {
        let cfg = state.config.load();
        let not_found = || ApiError::not_found(format!("subscription '{id}' not found"));
        let old = match cfg.state.get(Kind::Subscription, &id).map(|s| &s.resource) {
            Some(res @ Resource::Subscription(sub)) if can_read(&cfg.state, &claims, res) => sub,
            _ => return Err(not_found()),
        };
        let allowed = match action {
            Action::Approve | Action::Reject => may_approve(&cfg.state, &claims, &old.service),
            Action::Revoke => {
                may_approve(&cfg.state, &claims, &old.service)
                    || consumer_side(&cfg.state, &claims, old)
            }
        };
        if !allowed {
            let who = match action {
                Action::Revoke => {
                    "an admin or a tenant-admin of the service's or the consumer's tenant"
                }
                _ => "an admin or a tenant-admin of the service's tenant",
            };
            return Err(ApiError::forbidden(format!(
                "only {who} may {} subscription '{id}' (service '{}')",
                action.name(),
                old.service
            )));
        }
        let next = action.next(old.state).map_err(|m| {
            ApiError::new(
                StatusCode::CONFLICT,
                "invalid_transition",
                format!("cannot {} subscription '{id}': {m}", action.name()),
            )
        })?;
        let mut new = old.clone();
        new.state = next;
        if let Some(note) = req.note {
            new.note = note;
        }
        new
    };
    Ok(Json(
        write_resource(&state, &claims, Resource::Subscription(new), false).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use SubscriptionState::*;

    #[test]
    fn transitions() {
        for from in [Pending, Approved, Rejected, Revoked] {
            assert_eq!(Action::Approve.next(from), Ok(Approved));
        }
        assert_eq!(Action::Reject.next(Pending), Ok(Rejected));
        assert!(Action::Reject.next(Approved).is_err());
        assert!(Action::Reject.next(Revoked).is_err());
        assert_eq!(Action::Revoke.next(Approved), Ok(Revoked));
        assert_eq!(Action::Revoke.next(Pending), Ok(Revoked));
        assert!(Action::Revoke.next(Rejected).is_err());
    }
}

//! Looking things up for a call: models the caller may use, providers, guardrails that
//! apply, and how much time an attempt gets.

use super::*;

/// Time for one attempt: a hanging deployment must leave time for the next ones, so with
/// more attempts to come an attempt gets half of what is left (a third with three or
/// more); the last one gets everything.
pub(super) fn attempt_budget(deadline: Instant, attempts_left: usize) -> Duration {
    let left = deadline.saturating_duration_since(Instant::now());
    match attempts_left {
        0 | 1 => left,
        2 => left / 2,
        _ => left / 3,
    }
}

/// The guardrails of the caller's tenant and of the route, combined.
pub(super) fn guard_for(
    compiled: &Compiled,
    who: &Who,
    route: Option<&Guardrails>,
) -> Option<Guard> {
    let state = &compiled.snapshot.state;
    let tenant = who
        .tenant
        .as_deref()
        .and_then(|t| match &state.get(Kind::Tenant, t)?.resource {
            Resource::Tenant(t) => t.guardrails.as_ref(),
            _ => None,
        });
    let cfgs: Vec<&Guardrails> = tenant.into_iter().chain(route).collect();
    if cfgs.is_empty() {
        None
    } else {
        Guard::combine(&cfgs)
    }
}

pub(super) fn provider<'a>(
    state: &'a raftgate_store::state::State,
    id: &str,
) -> Option<&'a Provider> {
    match &state.get(Kind::Provider, id)?.resource {
        Resource::Provider(p) => Some(p),
        _ => None,
    }
}

/// The model `name` if the caller may use it: a Permission for it, or the model belongs
/// to the caller's tenant.
pub(super) fn find_model(
    compiled: &Compiled,
    id: &Identity,
    name: &str,
) -> Result<Model, LlmError> {
    let state = &compiled.snapshot.state;
    let model = match state.get(Kind::Model, name).map(|s| &s.resource) {
        Some(Resource::Model(m)) => m,
        _ => {
            return Err(LlmError::new(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!("the model `{name}` does not exist"),
            )
            .with_param("model"))
        }
    };
    if permitted(compiled, id, model) {
        Ok(model.clone())
    } else {
        Err(LlmError::new(
            StatusCode::FORBIDDEN,
            "model_not_permitted",
            format!("consumer {:?} may not use the model `{name}`", id.consumer),
        ))
    }
}

pub(super) fn permitted(compiled: &Compiled, id: &Identity, model: &Model) -> bool {
    model.tenant.as_deref() == Some(id.tenant.as_str())
        || compiled
            .model_grants
            .get(&id.consumer)
            .is_some_and(|m| m.contains(&model.id))
}

/// `GET /v1/models`: the models this key may use.
pub(super) fn models_list(compiled: &Compiled, id: &Identity) -> Value {
    let state = &compiled.snapshot.state;
    let data: Vec<Value> = state
        .list(Kind::Model)
        .filter_map(|s| match &s.resource {
            Resource::Model(m) if permitted(compiled, id, m) => Some(json!({
                "id": m.id,
                "object": "model",
                "created": s.created_at_ms / 1000,
                "owned_by": m.tenant.as_deref().unwrap_or("raftgate"),
            })),
            _ => None,
        })
        .collect();
    json!({"object": "list", "data": data})
}

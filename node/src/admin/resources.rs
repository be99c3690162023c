//! CRUD handlers for every replicated resource, with tenant scoping and read-your-writes.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use raftgate_store::model::{ApiKey, Kind, Resource, Visibility};
use raftgate_store::state::{State as Replicated, Stored};
use raftgate_store::{Applied, Command, Op};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Digest;

use super::auth::{Claims, Role};
use super::error::{parse_json, ApiError};
use super::{secret_fields, subscriptions, AppState};

/// Query parameters of admin reads.
#[derive(Debug, Default, Deserialize)]
pub struct ReadParams {
    #[serde(default)]
    pub consistent: Option<bool>,
}

/// Bookkeeping fields added to every resource on read and ignored on write.
const META_FIELDS: [&str; 3] = ["revision", "created_at_ms", "updated_at_ms"];

fn kind_of(collection: &str) -> Result<Kind, ApiError> {
    Kind::from_collection(collection).ok_or_else(|| {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.collection()).collect();
        ApiError::not_found(format!(
            "unknown collection '{collection}'; known: {}",
            known.join(", ")
        ))
    })
}

pub fn item_json(stored: &Stored) -> Value {
    let mut v = stored.resource.to_public_json();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("revision".into(), json!(stored.revision));
        obj.insert("created_at_ms".into(), json!(stored.created_at_ms));
        obj.insert("updated_at_ms".into(), json!(stored.updated_at_ms));
    }
    v
}

/// Parses a resource body; `path_id` (for PUT) fills or must equal the body's `id`.
pub fn parse_resource(
    kind: Kind,
    bytes: &[u8],
    path_id: Option<&str>,
) -> Result<Resource, ApiError> {
    let mut body = parse_json(bytes)?;
    let obj = body.as_object_mut().ok_or_else(|| {
        ApiError::bad_request("invalid_json", format!("a {kind} must be a JSON object"))
    })?;
    for f in META_FIELDS {
        obj.remove(f);
    }
    if let Some(id) = path_id {
        match obj.get("id").and_then(Value::as_str) {
            Some(body_id) if body_id != id => {
                return Err(ApiError::bad_request(
                    "invalid_resource",
                    format!("body id '{body_id}' does not match URL id '{id}'"),
                ));
            }
            _ => {
                obj.insert("id".into(), json!(id));
            }
        }
    }
    Resource::from_json(kind, body)
        .map_err(|e| ApiError::bad_request("invalid_resource", format!("invalid {kind}: {e}")))
}

/// May the caller see `res`? Whoever may read its owner's resources; besides, tenant
/// admins see subscriptions to their tenant's services, and public services that are
/// published or deprecated (to subscribe to them).
pub fn can_read(st: &Replicated, claims: &Claims, res: &Resource) -> bool {
    if claims.can_read(st.owner_tenant(res).as_deref()) {
        return true;
    }
    match res {
        Resource::Subscription(sub) => {
            claims.can_read(subscriptions::service_tenant(st, &sub.service).as_deref())
        }
        Resource::Service(svc) => {
            claims.role == Role::TenantAdmin
                && svc.visibility == Visibility::Public
                && svc.state.is_routable()
        }
        _ => false,
    }
}

/// The common start of every read: authenticate, resolve the collection, and for a
/// consistent read wait until the state is as new as the leader's commit at that moment.
async fn begin_read(
    state: &AppState,
    collection: &str,
    params: &ReadParams,
    headers: &HeaderMap,
) -> Result<(Claims, Kind), ApiError> {
    let claims = state.authenticate(headers)?;
    let kind = kind_of(collection)?;
    let header = headers
        .get("x-raftgate-consistent")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if params.consistent.unwrap_or(false) || header {
        state.raft.linearizable_barrier().await?;
    }
    Ok((claims, kind))
}

pub async fn list(
    State(state): State<AppState>,
    Path(collection): Path<String>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (claims, kind) = begin_read(&state, &collection, &params, &headers).await?;
    let cfg = state.config.load();
    let items: Vec<Value> = cfg
        .state
        .list(kind)
        .filter(|s| can_read(&cfg.state, &claims, &s.resource))
        .map(item_json)
        .collect();
    Ok(Json(
        json!({"items": items, "revision": cfg.state.revision()}),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    Path((collection, id)): Path<(String, String)>,
    Query(params): Query<ReadParams>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (claims, kind) = begin_read(&state, &collection, &params, &headers).await?;
    let cfg = state.config.load();
    match cfg.state.get(kind, &id) {
        // Other tenants' resources look absent rather than forbidden: no existence leak.
        Some(s) if can_read(&cfg.state, &claims, &s.resource) => Ok(Json(item_json(s))),
        _ => Err(ApiError::not_found(format!("{kind} '{id}' not found"))),
    }
}

/// Checks that the caller may write `res` as it would be owned after the write.
fn authorize_write(state: &AppState, claims: &Claims, res: &Resource) -> Result<(), ApiError> {
    let cfg = state.config.load();
    if claims.role == Role::TenantAdmin
        && matches!(
            res.kind(),
            Kind::Tenant | Kind::Provider | Kind::Certificate
        )
    {
        return Err(ApiError::forbidden(format!(
            "a tenant admin cannot write {}s",
            res.kind()
        )));
    }
    let owner = cfg.state.owner_tenant(res);
    if claims.can_write(owner.as_deref()) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "not allowed to write {} '{}'",
            res.kind(),
            res.id()
        )))
    }
}

/// Proposes `op` through Raft and waits until this node has applied it, so a read on
/// the same node right after sees the write.
pub async fn propose(state: &AppState, claims: &Claims, op: Op) -> Result<Applied, ApiError> {
    propose_command(state, command(state, claims, op)).await
}

/// `op` as `claims`' command, with the audit trail's origin.
fn command(state: &AppState, claims: &Claims, op: Op) -> Command {
    let origin = super::audit::origin(state, claims);
    Command::new(claims.sub.clone(), op).with_origin(origin)
}

async fn propose_command(state: &AppState, cmd: Command) -> Result<Applied, ApiError> {
    let applied = state.raft.write(cmd).await?.result?;
    state.wait_applied(applied.revision).await;
    Ok(applied)
}

/// Proposes the create (or the replace) of `res` and answers with the resource as this
/// write stored it: read back from the config it was applied to, or — when a later write
/// already replaced or deleted it (two clients racing on one id) — rebuilt from what was
/// proposed, as apply stores it. Either way the answer is this write's, whole.
pub async fn write_resource(
    state: &AppState,
    claims: &Claims,
    res: Resource,
    create: bool,
) -> Result<Value, ApiError> {
    let (kind, id) = (res.kind(), res.id().to_string());
    let created_before = state
        .config
        .load()
        .state
        .get(kind, &id)
        .map(|s| s.created_at_ms);
    let proposed = res.clone();
    let op = if create {
        Op::Create(res)
    } else {
        Op::Update(res)
    };
    let cmd = command(state, claims, op);
    let at_ms = cmd.at_ms;
    let applied = propose_command(state, cmd).await?;
    if let Some(s) = state.config.load().state.get(kind, &id) {
        if s.revision == applied.revision {
            return Ok(item_json(s));
        }
    }
    Ok(item_json(&Stored {
        resource: proposed,
        created_at_ms: match (create, created_before) {
            (false, Some(created)) => created,
            _ => at_ms,
        },
        updated_at_ms: at_ms,
        revision: applied.revision,
    }))
}

pub async fn create(
    State(state): State<AppState>,
    Path(collection): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let claims = state.authenticate(&headers)?;
    let kind = kind_of(&collection)?;
    if kind == Kind::ApiKey {
        return Err(ApiError::bad_request(
            "invalid_request",
            "create API keys with POST /admin/v1/consumers/{id}/keys",
        ));
    }
    let mut res = parse_resource(kind, &body?, None)?;
    authorize_write(&state, &claims, &res)?;
    if let Resource::Subscription(sub) = &mut res {
        subscriptions::on_create(&state.config.load().state, &claims, sub);
    }
    secret_fields::prepare(state.secrets.as_deref(), &mut res, None)?;
    Ok((
        StatusCode::CREATED,
        Json(write_resource(&state, &claims, res, true).await?),
    ))
}

pub async fn update(
    State(state): State<AppState>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let claims = state.authenticate(&headers)?;
    let kind = kind_of(&collection)?;
    let mut res = parse_resource(kind, &body?, Some(&id))?;
    {
        let cfg = state.config.load();
        let existing = cfg.state.get(kind, &id).map(|s| &s.resource);
        match (existing, &res) {
            // Both sides of a subscription may edit it, within limits.
            (Some(Resource::Subscription(old)), Resource::Subscription(new)) => {
                subscriptions::authorize_update(&cfg.state, &claims, old, new)?
            }
            (Some(old), _) => {
                authorize_write(&state, &claims, old)?;
                authorize_write(&state, &claims, &res)?;
            }
            (None, _) => authorize_write(&state, &claims, &res)?,
        }
        // A redacted secret sent back unchanged means "keep the stored one".
        secret_fields::prepare(state.secrets.as_deref(), &mut res, existing)?;
    }
    Ok(Json(write_resource(&state, &claims, res, false).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let claims = state.authenticate(&headers)?;
    let kind = kind_of(&collection)?;
    {
        let cfg = state.config.load();
        match cfg.state.get(kind, &id).map(|s| &s.resource) {
            Some(Resource::Subscription(sub)) => {
                subscriptions::authorize_delete(&cfg.state, &claims, sub)?
            }
            Some(existing) => authorize_write(&state, &claims, existing)?,
            None if claims.role == Role::Admin => {} // let apply answer 404 authoritatively
            None => return Err(ApiError::not_found(format!("{kind} '{id}' not found"))),
        }
    }
    let applied = propose(
        &state,
        &claims,
        Op::Delete {
            kind,
            id: id.clone(),
        },
    )
    .await?;
    let changed: Vec<Value> = applied
        .changed
        .iter()
        .map(|(k, i)| json!({"kind": k, "id": i}))
        .collect();
    Ok(Json(
        json!({"deleted": {"kind": kind, "id": id}, "revision": applied.revision, "changed": changed}),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
}

/// Creates an API key; the plaintext secret appears in this response only.
pub async fn create_key(
    State(state): State<AppState>,
    Path(consumer): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let claims = state.authenticate(&headers)?;
    let body = body?;
    let req: NewKey = if body.is_empty() {
        NewKey::default()
    } else {
        serde_json::from_value(parse_json(&body)?)
            .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?
    };
    let secret = format!("rg_{}", hex::encode(rand::random::<[u8; 24]>()));
    let id = req
        .id
        .unwrap_or_else(|| format!("key-{}", &hex::encode(rand::random::<[u8; 6]>())));
    let key = ApiKey {
        id: id.clone(),
        consumer,
        prefix: secret[..8].to_string(),
        sha256: hex::encode(sha2::Sha256::digest(secret.as_bytes())),
        name: req.name,
        expires_at_ms: req.expires_at_ms,
    };
    let res = Resource::ApiKey(key);
    authorize_write(&state, &claims, &res)?;
    let mut out = write_resource(&state, &claims, res, true).await?;
    if let Some(obj) = out.as_object_mut() {
        obj.insert("key".into(), json!(secret));
    }
    Ok((StatusCode::CREATED, Json(out)))
}

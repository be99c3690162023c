//! Cluster endpoints: bootstrap, join, membership changes, status, and token minting.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use raftgate_raft::RaftGateError;
use raftgate_store::model::Kind;
use raftgate_store::{ApplyError, Command, Node, NodeId, Op};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{self, Role};
use super::error::{parse_json, ApiError};
use super::AppState;

/// Lifetime of the token printed by `cluster init`: long, since it is the way back in.
const INIT_TOKEN_TTL_SECS: u64 = 365 * 24 * 3600;
/// Default lifetime of minted tokens.
const DEFAULT_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;

fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let value = parse_json(&body?)?;
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))
}

/// Bootstraps a one-node cluster on a fresh node and returns the first admin token.
/// A node with a join token initializes only for a caller presenting it, so whoever
/// reaches a fresh node's admin port first cannot take it over.
pub async fn init(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    if let Some(expected) = state.join_token.as_deref() {
        check_join_token(expected, &headers, "initializes a cluster")?;
    }
    let (cluster_id, token) = init_cluster(&state).await?;
    Ok(Json(
        json!({"cluster_id": cluster_id, "node_id": state.raft.id(), "admin_token": token}),
    ))
}

/// `cluster init` and `bootstrap = true`: initializes Raft with this node alone, commits
/// the cluster identity and returns `(cluster_id, first admin token)`.
pub async fn init_cluster(state: &AppState) -> Result<(String, String), ApiError> {
    if state.config.load().state.cluster().is_some() {
        return Err(ApplyError::AlreadyInitialized.into());
    }
    match state.raft.initialize().await {
        // Already a Raft member without cluster identity: a previous init stopped half-way.
        Ok(()) | Err(RaftGateError::AlreadyInitialized) => {}
        Err(e) => return Err(e.into()),
    }
    let cluster_id = uuid::Uuid::new_v4().to_string();
    let secret: [u8; 32] = rand::random();
    if state.secrets.is_none() {
        tracing::warn!(
            "no secret key configured: the admin-token signing secret is replicated in the \
             clear; set secret_key_file on every node and run `raftgate secrets rotate`"
        );
    }
    let op = Op::InitCluster {
        cluster_id: cluster_id.clone(),
        token_secret: crate::secrets::seal_token_secret(state.secrets.as_deref(), &secret),
    };
    let applied = state
        .raft
        .write(Command::new("cluster-init", op).with_origin(super::audit::system_origin(state)))
        .await?
        .result?;
    state.wait_applied(applied.revision).await;
    let token = auth::mint(&secret, "admin", Role::Admin, None, INIT_TOKEN_TTL_SECS)?;
    tracing::info!(%cluster_id, "cluster initialized");
    Ok((cluster_id, token))
}

/// Header that carries the cluster's join token on join calls.
pub const JOIN_TOKEN_HEADER: &str = "x-raftgate-join-token";

/// Equality that takes the same time wherever the inputs differ (SHA-256 first, so the
/// length of the expected token does not leak either).
fn same_secret(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// The rule for adding members: when this node has a join token, the caller must
/// present it in [`JOIN_TOKEN_HEADER`] (an admin token is neither needed nor enough);
/// without one, an admin bearer token is required, as before.
pub fn authorize_join(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = state.join_token.as_deref() else {
        return state.authenticate(headers)?.require_admin();
    };
    check_join_token(expected, headers, "adds members")
}

/// The join token in [`JOIN_TOKEN_HEADER`] must equal `expected` (constant time).
fn check_join_token(expected: &str, headers: &HeaderMap, what: &str) -> Result<(), ApiError> {
    match headers.get(JOIN_TOKEN_HEADER).map(|v| v.to_str()) {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "join_token_required",
            format!("this node {what} only with its join token: set join_token (RAFTGATE_JOIN_TOKEN) on the calling node or CLI; it is sent in the {JOIN_TOKEN_HEADER} header"),
        )),
        Some(Ok(given)) if same_secret(given.trim(), expected) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_join_token",
            "the join token does not match this cluster's join_token",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub via: String,
    #[serde(default)]
    pub learner: bool,
}

/// Makes this node join the cluster of the node at `via`. The bearer token is checked by
/// that cluster (and here too when this node already belongs to one).
pub async fn join(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: JoinRequest = parse(body)?;
    let token = auth::bearer(headers.get(axum::http::header::AUTHORIZATION)).map(str::to_string);
    if token.is_none() && state.join_token.is_none() {
        return Err(ApiError::unauthorized(
            "missing `Authorization: Bearer <token>` of the cluster to join (or configure this node's join_token)",
        ));
    }
    if state.config.load().state.cluster().is_some() {
        state.authenticate(&headers)?.require_admin()?;
    }
    let joined = join_cluster(&state, &req.via, token.as_deref(), req.learner).await?;
    Ok(Json(joined))
}

/// Asks the node at `via` for its cluster id and refuses when this node's data dir
/// belongs to another cluster (or this node leads a cluster of its own).
pub async fn check_same_cluster(
    state: &AppState,
    via: &str,
    token: Option<&str>,
) -> Result<String, ApiError> {
    let remote = call(
        state,
        reqwest::Method::GET,
        &format!("{via}/admin/v1/cluster"),
        token,
        None,
    )
    .await?;
    let theirs = remote
        .get("cluster_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if theirs.is_empty() {
        return Err(ApiError::unavailable(
            "not_initialized",
            format!("the node at {via} has no cluster yet"),
        ));
    }
    let cfg = state.config.load();
    match cfg.state.cluster() {
        Some(mine) if mine.cluster_id != theirs => Err(ApiError::new(
            StatusCode::CONFLICT,
            "cluster_mismatch",
            format!(
                "this node's data dir belongs to cluster {}, but {via} is in cluster {theirs}; stop the node and wipe its data dir to join",
                mine.cluster_id
            ),
        )),
        None if state.raft.is_initialized() && state.raft.current_leader() == Some(state.raft.id()) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_initialized",
            "this node leads a cluster of its own",
        )),
        _ => Ok(theirs),
    }
}

/// The join procedure, shared by the endpoint and `serve --join`.
pub async fn join_cluster(
    state: &AppState,
    via: &str,
    token: Option<&str>,
    learner: bool,
) -> Result<Value, ApiError> {
    let via = via.trim_end_matches('/');
    let theirs = check_same_cluster(state, via, token).await?;
    let me = state.raft.me().clone();
    let body = json!({
        "node_id": state.raft.id(),
        "raft_addr": me.raft_addr,
        "admin_url": me.admin_url,
        "http_addr": me.http_addr,
        "learner": learner,
    });
    call(
        state,
        reqwest::Method::POST,
        &format!("{via}/admin/v1/cluster/members"),
        token,
        Some(body),
    )
    .await?;
    tracing::info!(cluster_id = %theirs, %via, "joined cluster");
    Ok(json!({"cluster_id": theirs, "node_id": state.raft.id(), "voter": !learner}))
}

/// Calls another node's admin API with the admin token and/or this node's join token,
/// relaying its JSON errors and naming it when unreachable. A TLS failure is reported
/// as `tls_error`: retrying cannot fix a certificate the other side refuses.
async fn call(
    state: &AppState,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Value, ApiError> {
    let mut req = state.http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(j) = &state.join_token {
        req = req.header(JOIN_TOKEN_HEADER, j.as_ref());
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.map_err(|e| {
        let reason = raftgate_raft::tls::error_chain(&e);
        if raftgate_raft::tls::is_tls_failure(&e) {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "tls_error",
                format!("TLS with {url} failed: {reason}; both nodes need certificates from the same cluster CA (tls_ca), and the URL's host must be a SAN of its certificate"),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "unreachable",
                format!("cannot reach {url}: {reason}"),
            )
        }
    })?;
    let status = resp.status();
    let value: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(value);
    }
    let code = match value["error"]["code"].as_str() {
        Some("unauthorized") => "unauthorized",
        Some("forbidden") => "forbidden",
        Some("conflict") => "conflict",
        Some("join_token_required") => "join_token_required",
        Some("invalid_join_token") => "invalid_join_token",
        Some("untrusted_peer") => "untrusted_peer",
        Some("cluster_mismatch") => "cluster_mismatch",
        _ => "remote_error",
    };
    let message = value["error"]["message"]
        .as_str()
        .unwrap_or("no error body")
        .to_string();
    let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    Err(ApiError::new(status, code, format!("{url}: {message}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRequest {
    pub node_id: NodeId,
    pub raft_addr: String,
    pub admin_url: String,
    #[serde(default)]
    pub http_addr: String,
    #[serde(default)]
    pub learner: bool,
}

/// Adds a node: as learner, caught up, then voter unless `learner` is set. Idempotent.
pub async fn add_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize_join(&state, &headers)?;
    let req: MemberRequest = parse(body)?;
    if req.node_id == 0 || req.raft_addr.is_empty() || !req.admin_url.starts_with("http") {
        return Err(ApiError::bad_request(
            "invalid_request",
            "node_id must be positive, raft_addr set, admin_url an http(s) URL",
        ));
    }
    let node = Node {
        raft_addr: req.raft_addr,
        admin_url: req.admin_url,
        http_addr: req.http_addr,
    };
    if state.raft.tls_enabled() {
        probe_new_member(&state, req.node_id, &node.raft_addr).await?;
    }
    if req.learner {
        state.raft.add_learner(req.node_id, node).await?;
    } else {
        state.raft.add_member(req.node_id, node).await?;
    }
    Ok(Json(json!({"node_id": req.node_id, "voter": !req.learner})))
}

/// Before a member is added under TLS: its raft address must complete mutual TLS with
/// us and answer as `id`, not as a member of another cluster. Refusing here leaves no
/// half-added member behind that nobody can replicate to.
async fn probe_new_member(state: &AppState, id: NodeId, raft_addr: &str) -> Result<(), ApiError> {
    let peer = match state.raft.probe_peer(raft_addr).await {
        Ok(peer) => peer,
        Err(e @ raftgate_raft::ProbeError::Tls { .. }) => {
            tracing::warn!(node_id = id, %raft_addr, error = %e, "refused a member: TLS");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "untrusted_peer",
                format!("node {id}: {e}"),
            ));
        }
        Err(e @ raftgate_raft::ProbeError::Invalid { .. }) => {
            return Err(ApiError::bad_request("invalid_request", e.to_string()))
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "unreachable",
                format!("node {id}: {e}"),
            ))
        }
    };
    if peer.id != id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{raft_addr} answers as node {}, not node {id}", peer.id),
        ));
    }
    let ours = state
        .config
        .load()
        .state
        .cluster()
        .map(|c| c.cluster_id.clone());
    match (peer.cluster_id, ours) {
        (Some(theirs), Some(ours)) if theirs != ours => Err(ApiError::new(
            StatusCode::CONFLICT,
            "cluster_mismatch",
            format!("node {id} belongs to cluster {theirs}, not {ours}"),
        )),
        _ => Ok(()),
    }
}

pub async fn remove_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.authenticate(&headers)?.require_admin()?;
    let id: NodeId = id.parse().map_err(|_| {
        ApiError::bad_request("invalid_request", format!("'{id}' is not a node id"))
    })?;
    state.raft.remove_member(id).await?;
    Ok(Json(json!({"removed": id})))
}

pub async fn leave(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authenticate(&headers)?.require_admin()?;
    let id = state.raft.id();
    state.raft.remove_member(id).await?;
    Ok(Json(json!({"removed": id})))
}

/// Members with role, term and log positions; unreachable members are marked, not hidden.
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let has_bearer = headers.contains_key(axum::http::header::AUTHORIZATION);
    if !has_bearer && headers.contains_key(JOIN_TOKEN_HEADER) && state.join_token.is_some() {
        // A joining node learns the cluster id with the join token, and nothing more.
        authorize_join(&state, &headers)?;
        let cluster_id = state
            .config
            .load()
            .state
            .cluster()
            .map(|c| c.cluster_id.clone());
        return Ok(Json(
            json!({"cluster_id": cluster_id, "node_id": state.raft.id()}),
        ));
    }
    state.authenticate(&headers)?;
    let s = state.raft.status().await;
    let nodes: Vec<Value> = s
        .members
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "raft_addr": m.raft_addr, "admin_url": m.admin_url, "http_addr": m.http_addr,
                "voter": m.voter, "reachable": m.reachable,
                "role": m.role.as_deref().map(str::to_lowercase).unwrap_or_else(|| "unreachable".into()),
                "term": m.term, "last_log_index": m.last_log_index, "applied_index": m.applied_index, "error": m.error,
            })
        })
        .collect();
    Ok(Json(json!({
        "cluster_id": s.cluster_id.or_else(|| state.config.load().state.cluster().map(|c| c.cluster_id.clone())),
        "node_id": s.node_id, "leader_id": s.leader, "term": s.term, "nodes": nodes,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub role: String,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

pub async fn create_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.authenticate(&headers)?.require_admin()?;
    let req: TokenRequest = parse(body)?;
    let role: Role = req.role.parse()?;
    let cfg = state.config.load();
    if let Some(t) = &req.tenant {
        if cfg.state.get(Kind::Tenant, t).is_none() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_reference",
                format!("tenant '{t}' does not exist"),
            ));
        }
    }
    let secret = state.token_secret()?;
    let ttl = req
        .ttl_secs
        .unwrap_or(DEFAULT_TOKEN_TTL_SECS)
        .clamp(60, 10 * 365 * 24 * 3600);
    let subject = req.subject.unwrap_or_else(|| format!("{}-token", req.role));
    let tenant = if role == Role::TenantAdmin {
        req.tenant
    } else {
        None
    };
    let token = auth::mint(&secret, &subject, role, tenant, ttl)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token, "role": req.role, "expires_in_secs": ttl})),
    ))
}

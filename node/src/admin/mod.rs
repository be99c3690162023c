//! The admin API: resource CRUD, cluster membership, tokens, health and metrics, on the
//! admin port. Handlers live in submodules; this file holds the shared state and routes.

pub mod analytics;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cluster;
pub mod error;
pub mod logs;
pub mod oidc;
pub mod openapi;
pub mod ops;
pub mod rejections;
pub mod resources;
pub mod secret_fields;
pub mod secrets;
pub mod subscriptions;
pub mod tokens;
pub mod usage;
pub mod whoami;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use raftgate_raft::RaftNode;
use raftgate_store::ConfigHandle;

use self::auth::Claims;
use self::error::ApiError;
use crate::metrics::Metrics;
use crate::secrets::SecretBox;

/// Largest admin request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every admin handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub raft: RaftNode,
    pub config: ConfigHandle,
    pub metrics: Arc<Metrics>,
    /// For calls to other nodes' admin APIs (join).
    pub http: reqwest::Client,
    /// Encrypts secrets (certificate keys) before they are proposed; `None` when the node
    /// has no secret key configured, and then such writes are refused.
    pub secrets: Option<Arc<SecretBox>>,
    /// The cluster's join token (`join_token`): when set, adding a member needs it, and
    /// this node presents it when it joins. See `cluster::authorize_join`.
    pub join_token: Option<Arc<str>>,
    /// Verifier of OIDC tokens from an external identity provider; `None`: OIDC off.
    pub oidc: Option<Arc<oidc::OidcVerifier>>,
}

impl AppState {
    /// Verifies the bearer token against the cluster's signing secret, or an OIDC token
    /// against the identity provider's keys (see `oidc`).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Claims, ApiError> {
        let cfg = self.config.load();
        let cluster = cfg.state.cluster().ok_or_else(|| {
            ApiError::unavailable(
                "not_initialized",
                "this node has no cluster yet: run `raftgate cluster init` or join it",
            )
        })?;
        let token = auth::bearer(headers.get(axum::http::header::AUTHORIZATION))
            .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>`"))?;
        // The cluster signs HS256 only; any other algorithm is the provider's to check.
        match &self.oidc {
            Some(oidc) if oidc::is_external(token) => oidc.verify(token),
            _ => {
                let secret = self.open_token_secret(&cluster.token_secret)?;
                let claims = auth::verify(&secret, token)?;
                tokens::refuse_revoked(&cfg.state, &claims)?;
                Ok(claims)
            }
        }
    }

    /// The cluster's admin-token signing secret in the clear (it is stored encrypted
    /// under the key ring when the cluster has one; see `crate::secrets`).
    pub fn token_secret(&self) -> Result<Vec<u8>, ApiError> {
        let cfg = self.config.load();
        let cluster = cfg.state.cluster().ok_or_else(|| {
            ApiError::unavailable("not_initialized", "this node has no cluster yet")
        })?;
        self.open_token_secret(&cluster.token_secret)
    }

    fn open_token_secret(&self, stored: &[u8]) -> Result<Vec<u8>, ApiError> {
        crate::secrets::open_token_secret(self.secrets.as_deref(), stored).map_err(|e| {
            tracing::error!(error = %e, "cannot decrypt the admin-token signing secret");
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "secret_key_mismatch",
                format!(
                    "this node cannot decrypt the cluster's admin-token signing secret ({e}); \
                     run it with the cluster's secret key (secret_key_file or \
                     RAFTGATE_SECRET_KEY)"
                ),
            )
        })
    }

    /// Waits (bounded) until this node has applied `index`, for read-your-writes.
    pub async fn wait_applied(&self, index: u64) {
        let wait = self.raft.raft().wait(Some(Duration::from_secs(3)));
        if let Err(e) = wait
            .applied_index_at_least(Some(index), "admin read-your-writes")
            .await
        {
            tracing::debug!(index, error = %e, "write acknowledged before local apply");
        }
    }
}

/// All admin routes. Unknown paths and methods answer JSON errors too.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/cluster", get(cluster::status))
        .route("/cluster/init", post(cluster::init))
        .route("/cluster/join", post(cluster::join))
        .route("/cluster/leave", post(cluster::leave))
        .route("/cluster/members", post(cluster::add_member))
        .route(
            "/cluster/members/{id}",
            axum::routing::delete(cluster::remove_member),
        )
        .route("/tokens", post(cluster::create_token))
        .route("/tokens/revoke", post(tokens::revoke))
        .route("/tokens/revoked", get(tokens::list_revoked))
        .route("/audit", get(audit::query))
        .route("/secrets/rotate", post(secrets::rotate))
        .route("/secrets/status", get(secrets::status))
        .route("/backup", get(backup::save))
        .route(
            "/restore",
            post(backup::restore).layer(DefaultBodyLimit::max(backup::MAX_RESTORE_BODY)),
        )
        .route("/usage", get(usage::usage))
        .route("/logs", get(logs::search))
        .route("/analytics/timeseries", get(analytics::timeseries))
        .route("/analytics/top", get(analytics::top))
        .route("/whoami", get(whoami::whoami))
        .route("/openapi.json", get(openapi::document))
        .route("/consumers/{id}/keys", post(resources::create_key))
        .route("/subscriptions/{id}/approve", post(subscriptions::approve))
        .route("/subscriptions/{id}/reject", post(subscriptions::reject))
        .route("/subscriptions/{id}/revoke", post(subscriptions::revoke))
        .route(
            "/{collection}",
            get(resources::list).post(resources::create),
        )
        .route(
            "/{collection}/{id}",
            get(resources::get)
                .put(resources::update)
                .delete(resources::delete),
        )
        .layer(axum::middleware::from_fn(audit::capture_request));
    Router::new()
        .nest("/admin/v1", api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/readyz/data-plane", get(ops::readyz_data_plane))
        .route("/metrics", get(ops::metrics))
        .merge(crate::console::router())
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(axum::middleware::from_fn(rejections::json_rejections))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::count_requests,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            oidc::refresh_keys,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

//! Admin token revocation: `POST /admin/v1/tokens/revoke` proposes `Op::RevokeToken`,
//! `GET /admin/v1/tokens/revoked` lists the replicated set, and every authenticated
//! request is checked against it (`refuse_revoked`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use raftgate_store::audit::{check_jti, RevokedToken};
use raftgate_store::state::State as Replicated;
use raftgate_store::Op;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{now_secs, Claims, Role};
use super::error::{parse_json, ApiError};
use super::{resources, AppState};

/// Expiry assumed for a revocation by id alone: the longest lifetime a minted token can
/// have (`POST /tokens` clamps to ten years), so the token is refused for all of it.
pub const ASSUMED_MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;

/// 401 `token_revoked` when `claims` names a revoked token.
pub fn refuse_revoked(state: &Replicated, claims: &Claims) -> Result<(), ApiError> {
    match &claims.jti {
        Some(jti) if state.is_revoked(jti) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_revoked",
            "this admin token has been revoked",
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    #[serde(default)]
    pub jti: Option<String>,
    /// With `jti`: the token's expiry (Unix seconds), when known; it bounds how long the
    /// revocation is kept. Default: now plus [`ASSUMED_MAX_TTL_SECS`].
    #[serde(default)]
    pub exp: Option<u64>,
    /// A whole token, signed by this cluster (expired or not): its `jti` and `exp` are used.
    #[serde(default)]
    pub token: Option<String>,
}

/// The claims of a token signed with `secret`, expired or not.
fn claims_of(secret: &[u8], token: &str) -> Result<Claims, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["sub"]);
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)
        .map(|d| d.claims)
        .map_err(|e| {
            ApiError::bad_request("invalid_token", format!("not a token of this cluster: {e}"))
        })
}

/// What to revoke: `(jti, exp)` from the request, or a 400.
fn target(secret: &[u8], req: RevokeRequest) -> Result<(String, Option<u64>), ApiError> {
    match (req.jti, req.token) {
        (Some(jti), None) => Ok((jti, req.exp)),
        (None, Some(token)) => {
            if req.exp.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "`exp` goes with `jti`; a token carries its own expiry",
                ));
            }
            let c = claims_of(secret, &token)?;
            let jti = c.jti.ok_or_else(|| {
                ApiError::bad_request(
                    "token_without_jti",
                    "this token predates revocation (no jti); it stays valid until it expires",
                )
            })?;
            Ok((jti, Some(c.exp)))
        }
        _ => Err(ApiError::bad_request(
            "invalid_request",
            "give exactly one of `jti` and `token`",
        )),
    }
}

/// `POST /admin/v1/tokens/revoke`: admins revoke any token, any token revokes itself.
/// Answers once this node has applied the revocation, so the token is refused here from
/// then on (other nodes within their replication lag).
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let claims = state.authenticate(&headers)?;
    let req: RevokeRequest = serde_json::from_value(parse_json(&body?)?)
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
    let secret = state.token_secret()?;
    let (jti, exp) = target(&secret, req)?;
    let own = claims.jti.as_deref() == Some(jti.as_str());
    if claims.role != Role::Admin && !own {
        return Err(ApiError::forbidden(
            "only admins revoke other tokens; any token may revoke itself",
        ));
    }
    check_jti(&jti).map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
    let exp = match exp {
        Some(e) => e,
        None if own => claims.exp,
        None => now_secs().saturating_add(ASSUMED_MAX_TTL_SECS),
    };
    let applied = resources::propose(
        &state,
        &claims,
        Op::RevokeToken {
            jti: jti.clone(),
            exp,
        },
    )
    .await?;
    Ok(Json(
        json!({"revoked": {"jti": jti, "exp": exp}, "revision": applied.revision}),
    ))
}

fn revoked_json(r: &RevokedToken) -> Value {
    json!({"jti": r.jti, "exp": r.exp, "revoked_at_ms": r.revoked_at_ms, "revoked_by": r.revoked_by})
}

/// `GET /admin/v1/tokens/revoked` (admin).
pub async fn list_revoked(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authenticate(&headers)?.require_admin()?;
    let cfg = state.config.load();
    let items: Vec<Value> = cfg.state.revoked().map(revoked_json).collect();
    Ok(Json(
        json!({"items": items, "revision": cfg.state.revision()}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::auth::mint;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn req(jti: Option<&str>, exp: Option<u64>, token: Option<&str>) -> RevokeRequest {
        RevokeRequest {
            jti: jti.map(Into::into),
            exp,
            token: token.map(Into::into),
        }
    }

    #[test]
    fn targets_come_from_the_jti_or_the_signed_token() {
        let t = mint(SECRET, "ops", Role::Viewer, None, 60).unwrap();
        let (jti, exp) = target(SECRET, req(None, None, Some(&t))).unwrap();
        let c = crate::admin::auth::verify(SECRET, &t).unwrap();
        assert_eq!((Some(jti), exp), (c.jti, Some(c.exp)));
        assert_eq!(
            target(SECRET, req(Some("abc"), Some(5), None)).unwrap(),
            ("abc".to_string(), Some(5))
        );
        let other = mint(
            b"another-secret-another-secret-xx",
            "x",
            Role::Admin,
            None,
            60,
        )
        .unwrap();
        for bad in [
            req(None, None, Some(&other)),
            req(Some("a"), None, Some(&t)),
            req(None, None, None),
            req(None, Some(3), Some(&t)),
        ] {
            assert_eq!(
                target(SECRET, bad).unwrap_err().status,
                StatusCode::BAD_REQUEST
            );
        }
    }

    #[test]
    fn tokens_without_jti_cannot_be_revoked_and_are_not_refused() {
        let legacy = Claims {
            sub: "old".into(),
            role: Role::Admin,
            tenant: None,
            iat: now_secs(),
            exp: now_secs() + 60,
            jti: None,
        };
        let t = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &legacy,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(
            target(SECRET, req(None, None, Some(&t))).unwrap_err().code,
            "token_without_jti"
        );
        assert!(refuse_revoked(&Replicated::default(), &legacy).is_ok());
    }
}

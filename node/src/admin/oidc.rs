//! OIDC bearer tokens from an external identity provider (Keycloak, Dex, Auth0, …),
//! accepted next to the cluster's own HS256 tokens when `oidc_issuer` is configured.
//! The provider's public keys come from a JWKS file or URL (see `jwks`); claims are
//! mapped onto the same [`Claims`] the cluster's tokens carry, so roles mean the same.

pub mod jwks;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use self::jwks::{JwksCache, Source, ALGORITHMS};
use super::auth::{self, Claims, Role};
use super::error::ApiError;
use super::AppState;
use crate::config::{ConfigError, NodeConfig};

/// Clock skew tolerated on `exp` and `nbf` between the provider and this node.
pub const LEEWAY_SECS: u64 = 30;
/// Longest subject or tenant accepted from a token.
pub const MAX_CLAIM_LEN: usize = 256;
/// Keys tried for a token without `kid` (each try is a signature check).
const MAX_CANDIDATES: usize = 8;

/// The validated `oidc_*` keys of the node config.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcSettings {
    pub issuer: String,
    pub audience: Option<String>,
    pub source: Source,
    pub role_claim: String,
    pub tenant_claim: String,
    pub subject_claim: String,
    pub min_refetch: Duration,
}

fn bad(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// `http://` is allowed for loopback only: keys fetched in clear text over a network
/// could be swapped by anyone on the path, and they decide who is admin.
fn check_url(url: &str) -> Result<(), ConfigError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| bad("oidc_jwks_url", format!("'{url}' is not a URL")))?;
    let host = uri.host().unwrap_or("");
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if loopback => Ok(()),
        _ => Err(bad(
            "oidc_jwks_url",
            format!("'{url}' must be an https:// URL (http:// only for localhost)"),
        )),
    }
}

impl OidcSettings {
    /// `None` when `oidc_issuer` is unset (OIDC off). Errors name the key at fault.
    pub fn from_config(c: &NodeConfig) -> Result<Option<OidcSettings>, ConfigError> {
        let Some(issuer) = &c.oidc_issuer else {
            let stray = [
                ("oidc_audience", c.oidc_audience.is_some()),
                ("oidc_jwks_url", c.oidc_jwks_url.is_some()),
                ("oidc_jwks_file", c.oidc_jwks_file.is_some()),
            ];
            if let Some((key, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(bad(key, "needs oidc_issuer (OIDC is off without it)"));
            }
            return Ok(None);
        };
        if issuer.trim().is_empty() || issuer.trim() != issuer {
            return Err(bad(
                "oidc_issuer",
                "must be the provider's issuer (`iss`) exactly, without spaces",
            ));
        }
        if c.oidc_audience
            .as_ref()
            .is_some_and(|a| a.trim().is_empty())
        {
            return Err(bad("oidc_audience", "must not be empty when set"));
        }
        let source = match (&c.oidc_jwks_url, &c.oidc_jwks_file) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "oidc_jwks_file",
                    "set oidc_jwks_url or oidc_jwks_file, not both",
                ))
            }
            (None, None) => {
                return Err(bad(
                    "oidc_jwks_url",
                    "OIDC needs the provider's keys: set oidc_jwks_url or oidc_jwks_file",
                ))
            }
            (Some(url), None) => {
                check_url(url)?;
                Source::Url(url.clone())
            }
            (None, Some(path)) if path.as_os_str().is_empty() => {
                return Err(bad("oidc_jwks_file", "must not be empty when set"))
            }
            (None, Some(path)) => Source::File(path.clone()),
        };
        for (key, name) in [
            ("oidc_role_claim", &c.oidc_role_claim),
            ("oidc_tenant_claim", &c.oidc_tenant_claim),
            ("oidc_subject_claim", &c.oidc_subject_claim),
        ] {
            if name.trim().is_empty() {
                return Err(bad(key, "must name a claim"));
            }
        }
        if !(1..=3600).contains(&c.oidc_jwks_min_refetch_secs) {
            return Err(bad(
                "oidc_jwks_min_refetch_secs",
                "must be between 1 and 3600",
            ));
        }
        Ok(Some(OidcSettings {
            issuer: issuer.clone(),
            audience: c.oidc_audience.clone(),
            source,
            role_claim: c.oidc_role_claim.clone(),
            tenant_claim: c.oidc_tenant_claim.clone(),
            subject_claim: c.oidc_subject_claim.clone(),
            min_refetch: Duration::from_secs(c.oidc_jwks_min_refetch_secs),
        }))
    }
}

/// Verifies OIDC tokens and maps them to [`Claims`]. One per node, shared.
pub struct OidcVerifier {
    settings: OidcSettings,
    keys: JwksCache,
}

/// Does this token belong to the provider rather than the cluster? The cluster signs
/// HS256 only; a token whose header does not even parse goes to the cluster's verifier,
/// which refuses it as before.
pub fn is_external(token: &str) -> bool {
    jsonwebtoken::decode_header(token).is_ok_and(|h| h.alg != Algorithm::HS256)
}

fn unauthorized(message: impl std::fmt::Display) -> ApiError {
    ApiError::unauthorized(format!("invalid OIDC token: {message}"))
}

/// A claim by exact name (`https://example.com/role` style names included), else by
/// dotted path into nested objects (Keycloak's `realm_access.roles`).
fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

fn role_name(s: &str) -> Option<Role> {
    match s {
        "admin" => Some(Role::Admin),
        "tenant-admin" => Some(Role::TenantAdmin),
        "viewer" => Some(Role::Viewer),
        _ => None,
    }
}

/// A string names the role; in a list (group or role claims), other values are ignored
/// and exactly one distinct role must remain, so a token never gets a role by accident.
fn role_of(v: Option<&Value>, claim_name: &str) -> Result<Role, ApiError> {
    let roles: Vec<Role> = match v {
        Some(Value::String(s)) => role_name(s).into_iter().collect(),
        Some(Value::Array(items)) => {
            let mut found: Vec<Role> = items
                .iter()
                .filter_map(Value::as_str)
                .filter_map(role_name)
                .collect();
            found.sort_by_key(|r| *r as u8);
            found.dedup();
            found
        }
        _ => Vec::new(),
    };
    match roles.as_slice() {
        [role] => Ok(*role),
        [] => Err(ApiError::forbidden(format!(
            "the token's '{claim_name}' claim names no raftgate role (admin, tenant-admin, viewer)"
        ))),
        _ => Err(ApiError::forbidden(format!(
            "the token's '{claim_name}' claim names more than one raftgate role"
        ))),
    }
}

/// A non-negative integer claim (some providers write numbers as floats).
fn seconds(v: Option<&Value>) -> Option<u64> {
    let v = v?;
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

fn short_string(v: Option<&Value>, what: &str) -> Result<Option<String>, ApiError> {
    match v.and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(s) if s.len() > MAX_CLAIM_LEN => Err(unauthorized(format!(
            "the {what} claim is longer than {MAX_CLAIM_LEN} bytes"
        ))),
        other => Ok(other.map(str::to_string)),
    }
}

impl OidcVerifier {
    /// `None` when OIDC is off. A JWKS file is read now (its problems name
    /// `oidc_jwks_file`); a JWKS URL is fetched in the background when a runtime runs.
    pub fn from_config(c: &NodeConfig) -> Result<Option<Arc<OidcVerifier>>, ConfigError> {
        let Some(settings) = OidcSettings::from_config(c)? else {
            return Ok(None);
        };
        let v = Arc::new(OidcVerifier::new(settings)?);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let warm = v.clone();
            rt.spawn(async move { warm.keys.refresh(None).await });
        }
        Ok(Some(v))
    }

    pub fn new(settings: OidcSettings) -> Result<OidcVerifier, ConfigError> {
        let key = match &settings.source {
            Source::File(_) => "oidc_jwks_file",
            Source::Url(_) => "oidc_jwks_url",
        };
        let keys = JwksCache::open(settings.source.clone(), settings.min_refetch)
            .map_err(|e| bad(key, e))?;
        if settings.audience.is_none() {
            tracing::warn!(
                "oidc_audience is not set: tokens the provider issued to any of its clients are accepted"
            );
        }
        Ok(OidcVerifier { settings, keys })
    }

    /// Before [`Self::verify`] (which never waits): fetches the JWKS if this token's key
    /// is unknown or the cached set expired, within the refetch rate limit.
    pub async fn prepare(&self, token: &str) {
        if let Ok(h) = jsonwebtoken::decode_header(token) {
            if ALGORITHMS.contains(&h.alg) {
                self.keys.refresh(h.kid.as_deref()).await;
            }
        }
    }

    /// Checks signature, algorithm, issuer, audience, `exp`/`nbf`, then maps the claims.
    /// 401 for a token that is not genuine or not current; 403 for a genuine token
    /// whose claims give no usable role.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(unauthorized)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(unauthorized(format!(
                "{:?} is not accepted (RS256/384/512, PS256/384/512, ES256, ES384)",
                header.alg
            )));
        }
        let keys = self.keys.keys();
        let candidates: Vec<_> = keys
            .iter()
            .filter(|k| match &header.kid {
                Some(kid) => k.common.key_id.as_deref() == Some(kid.as_str()),
                None => true,
            })
            .filter(|k| jwks::fits(k, header.alg))
            .take(MAX_CANDIDATES)
            .collect();
        if candidates.is_empty() {
            return Err(unauthorized(match &header.kid {
                Some(kid) => format!(
                    "no {:?} key with id '{}' in the identity provider's key set",
                    header.alg,
                    kid.chars().take(64).collect::<String>()
                ),
                None => format!("no {:?} key in the identity provider's key set", header.alg),
            }));
        }
        let validation = self.validation(header.alg);
        let mut last = None;
        for jwk in candidates {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation) {
                Ok(data) => return self.map_claims(&data.claims),
                // Another key of the set may have signed it (no `kid`).
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                    last = Some(e)
                }
                Err(e) => return Err(unauthorized(e)),
            }
        }
        Err(unauthorized(last.map_or_else(
            || "no usable key".to_string(),
            |e| e.to_string(),
        )))
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_issuer(&[&self.settings.issuer]);
        match &self.settings.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                v.set_required_spec_claims(&["exp", "iss", "aud"]);
            }
            None => {
                v.validate_aud = false;
                v.set_required_spec_claims(&["exp", "iss"]);
            }
        }
        v
    }

    fn map_claims(&self, c: &Map<String, Value>) -> Result<Claims, ApiError> {
        let s = &self.settings;
        // The library also accepts an `iss` list containing ours; OIDC has one issuer.
        if c.get("iss").and_then(Value::as_str) != Some(s.issuer.as_str()) {
            return Err(unauthorized("`iss` must be the configured issuer"));
        }
        let sub = short_string(claim(c, &s.subject_claim), &s.subject_claim)?
            .ok_or_else(|| unauthorized(format!("the token has no '{}' claim", s.subject_claim)))?;
        let role = role_of(claim(c, &s.role_claim), &s.role_claim)?;
        let tenant = short_string(claim(c, &s.tenant_claim), &s.tenant_claim)?;
        if role == Role::TenantAdmin && tenant.is_none() {
            return Err(ApiError::forbidden(format!(
                "a tenant-admin token needs a '{}' claim naming its tenant",
                s.tenant_claim
            )));
        }
        let exp = seconds(c.get("exp")).ok_or_else(|| unauthorized("`exp` is not a number"))?;
        Ok(Claims {
            sub,
            role,
            tenant: (role == Role::TenantAdmin).then_some(tenant).flatten(),
            iat: seconds(c.get("iat")).unwrap_or_else(auth::now_secs),
            exp,
            // Revocation covers the cluster's own tokens; the provider revokes its own.
            jti: None,
        })
    }
}

/// Admin middleware: lets the verifier fetch the provider's keys (async) before a
/// handler authenticates (sync). Only bearer tokens bound for OIDC are looked at.
pub async fn refresh_keys(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(oidc) = &state.oidc {
        if let Some(token) = auth::bearer(req.headers().get(axum::http::header::AUTHORIZATION)) {
            if is_external(token) {
                oidc.prepare(token).await;
            }
        }
    }
    next.run(req).await
}

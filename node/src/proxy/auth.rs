//! Who is calling: API keys (header, bearer or query parameter) and JWTs mapped to a
//! consumer, then whether that consumer may use the route (subscription, tenant or
//! permission).

use http::header::{self, HeaderName};
use http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use raftgate_store::model::{JwtAlgorithm, JwtAuth, KeyAuth, Kind, Resource};
use raftgate_store::state::State;
use sha2::{Digest, Sha256};

#[derive(Debug)]
pub enum Authenticator {
    Key {
        header: Option<HeaderName>,
        query: Option<String>,
        /// A JWT authenticator follows: leave bearer tokens that look like JWTs to it.
        jwt_follows: bool,
    },
    Jwt(Box<JwtRule>),
}

pub struct JwtRule {
    key: DecodingKey,
    validation: Validation,
    claim: String,
}

impl std::fmt::Debug for JwtRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtRule")
            .field("claim", &self.claim)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn key(k: &KeyAuth) -> Result<Authenticator, String> {
        Ok(Authenticator::Key {
            header: k
                .header
                .as_deref()
                .map(|h| {
                    HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("bad header {h:?}"))
                })
                .transpose()?,
            query: k.query.clone(),
            jwt_follows: false,
        })
    }

    pub fn jwt(j: &JwtAuth) -> Result<Authenticator, String> {
        let (alg, key) = match j.algorithm {
            JwtAlgorithm::Hs256 => (
                Algorithm::HS256,
                DecodingKey::from_secret(j.secret.as_deref().unwrap_or_default().as_bytes()),
            ),
            JwtAlgorithm::Rs256 => (
                Algorithm::RS256,
                DecodingKey::from_rsa_pem(
                    j.public_key_pem.as_deref().unwrap_or_default().as_bytes(),
                )
                .map_err(|e| format!("public_key_pem: {e}"))?,
            ),
            JwtAlgorithm::Es256 => (
                Algorithm::ES256,
                DecodingKey::from_ec_pem(
                    j.public_key_pem.as_deref().unwrap_or_default().as_bytes(),
                )
                .map_err(|e| format!("public_key_pem: {e}"))?,
            ),
        };
        let mut v = Validation::new(alg);
        v.leeway = j.leeway_s;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        if let Some(iss) = &j.issuer {
            v.set_issuer(&[iss]);
        }
        match &j.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        Ok(Authenticator::Jwt(Box::new(JwtRule {
            key,
            validation: v,
            claim: j.consumer_claim.clone(),
        })))
    }
}

/// Marks key authenticators that precede a JWT one (see `jwt_follows`).
pub fn link(auths: &mut [Authenticator]) {
    let mut jwt_later = false;
    for a in auths.iter_mut().rev() {
        match a {
            Authenticator::Jwt(_) => jwt_later = true,
            Authenticator::Key { jwt_follows, .. } => *jwt_follows = jwt_later,
        }
    }
}

/// Where the credential came from, so it can be removed before going upstream.
#[derive(Debug, Clone)]
pub enum Credential {
    Header(HeaderName),
    Query(String),
}

#[derive(Debug, Clone)]
pub struct Identity {
    pub consumer: String,
    pub tenant: String,
    pub key_id: Option<String>,
    pub credential: Credential,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send an API key (Authorization: Bearer, x-api-key) or a token")]
    Missing,
    #[error("invalid API key")]
    InvalidKey,
    #[error("API key has expired")]
    KeyExpired,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("token names consumer {0:?}, which does not exist")]
    UnknownConsumer(String),
    #[error("consumer {0:?} is disabled")]
    Disabled(String),
    /// The client IP used up its failed-authentication budget (`crate::shield`), so a
    /// token's signature is not checked.
    #[error("too many requests without valid credentials from this address; retry later")]
    Throttled,
}

impl AuthError {
    /// 401 for bad or missing credentials, 403 for a known but disabled consumer.
    pub fn status(&self) -> http::StatusCode {
        match self {
            AuthError::Disabled(_) => http::StatusCode::FORBIDDEN,
            AuthError::Throttled => http::StatusCode::TOO_MANY_REQUESTS,
            _ => http::StatusCode::UNAUTHORIZED,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Disabled(_) => "consumer_disabled",
            AuthError::Throttled => "too_many_unauthenticated",
            _ => "unauthorized",
        }
    }
}

fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.bytes().filter(|&b| b == b'.').count() == 2
}

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn query_param<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .uri
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Runs the route's authenticators in order; the first that finds a credential decides.
pub fn authenticate(
    auths: &[Authenticator],
    parts: &Parts,
    state: &State,
    now_ms: u64,
) -> Result<Identity, AuthError> {
    authenticate_gated(auths, parts, state, now_ms, &|| true)
}

/// [`authenticate`], but a JWT's (costly) signature is checked only when `jwt_ok()`
/// says so; API keys (one hash and a lookup) are always checked.
pub fn authenticate_gated(
    auths: &[Authenticator],
    parts: &Parts,
    state: &State,
    now_ms: u64,
    jwt_ok: &dyn Fn() -> bool,
) -> Result<Identity, AuthError> {
    for a in auths {
        match a {
            Authenticator::Key {
                header,
                query,
                jwt_follows,
            } => {
                let found = header
                    .as_ref()
                    .and_then(|h| {
                        Some((
                            parts.headers.get(h)?.to_str().ok()?,
                            Credential::Header(h.clone()),
                        ))
                    })
                    .or_else(|| {
                        Some((
                            parts.headers.get(&X_API_KEY)?.to_str().ok()?,
                            Credential::Header(X_API_KEY.clone()),
                        ))
                    })
                    .or_else(|| {
                        let b = bearer(parts)?;
                        (!(*jwt_follows && looks_like_jwt(b)))
                            .then(|| (b, Credential::Header(header::AUTHORIZATION)))
                    })
                    .or_else(|| {
                        let q = query.as_deref()?;
                        Some((query_param(parts, q)?, Credential::Query(q.to_string())))
                    });
                if let Some((secret, credential)) = found {
                    return key_identity(secret, credential, state, now_ms);
                }
            }
            Authenticator::Jwt(rule) => {
                if let Some(token) = bearer(parts) {
                    if !jwt_ok() {
                        return Err(AuthError::Throttled);
                    }
                    return jwt_identity(rule, token, state);
                }
            }
        }
    }
    Err(AuthError::Missing)
}

fn key_identity(
    secret: &str,
    credential: Credential,
    state: &State,
    now_ms: u64,
) -> Result<Identity, AuthError> {
    let hash = hex::encode(Sha256::digest(secret.as_bytes()));
    let key = state.api_key_by_hash(&hash).ok_or(AuthError::InvalidKey)?;
    if key.expires_at_ms.is_some_and(|t| t <= now_ms) {
        return Err(AuthError::KeyExpired);
    }
    let mut id = consumer_identity(&key.consumer, state).ok_or(AuthError::InvalidKey)?;
    id.key_id = Some(key.id.clone());
    id.credential = credential;
    Ok(id)
}

fn jwt_identity(rule: &JwtRule, token: &str, state: &State) -> Result<Identity, AuthError> {
    let data = jsonwebtoken::decode::<serde_json::Value>(token, &rule.key, &rule.validation)
        .map_err(|e| AuthError::InvalidToken(jwt_reason(&e)))?;
    let consumer = match data.claims.get(&rule.claim) {
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => {
            return Err(AuthError::InvalidToken(format!(
                "claim {:?} is missing or not a string",
                rule.claim
            )))
        }
    };
    consumer_identity(&consumer, state).ok_or(AuthError::UnknownConsumer(consumer))
}

fn jwt_reason(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "expired".into(),
        K::ImmatureSignature => "not valid yet (nbf)".into(),
        K::InvalidIssuer => "wrong issuer".into(),
        K::InvalidAudience => "wrong audience".into(),
        K::InvalidSignature => "bad signature".into(),
        K::InvalidAlgorithm => "algorithm not accepted".into(),
        K::MissingRequiredClaim(c) => format!("missing claim {c:?}"),
        _ => "malformed".into(),
    }
}

/// An identity for `consumer`, with a placeholder credential; `Disabled` is reported by
/// [`check_enabled`] so that a missing consumer and a disabled one differ.
fn consumer_identity(consumer: &str, state: &State) -> Option<Identity> {
    match &state.get(Kind::Consumer, consumer)?.resource {
        Resource::Consumer(c) => Some(Identity {
            consumer: c.id.clone(),
            tenant: c.tenant.clone(),
            key_id: None,
            credential: Credential::Header(header::AUTHORIZATION),
        }),
        _ => None,
    }
}

/// Refuses identities whose consumer is disabled.
pub fn check_enabled(id: &Identity, state: &State) -> Result<(), AuthError> {
    match state.get(Kind::Consumer, &id.consumer).map(|s| &s.resource) {
        Some(Resource::Consumer(c)) if c.enabled => Ok(()),
        _ => Err(AuthError::Disabled(id.consumer.clone())),
    }
}

//! Admin bearer tokens: HS256 JWTs signed with the cluster's replicated secret, carrying
//! a role and, for tenant admins, the tenant they are scoped to.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Admin,
    TenantAdmin,
    Viewer,
}

impl std::str::FromStr for Role {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Role, ApiError> {
        match s {
            "admin" => Ok(Role::Admin),
            "tenant-admin" => Ok(Role::TenantAdmin),
            "viewer" => Ok(Role::Viewer),
            other => Err(ApiError::bad_request(
                "invalid_request",
                format!("unknown role '{other}' (admin, tenant-admin, viewer)"),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default)]
    pub tenant: Option<String>,
    pub iat: u64,
    pub exp: u64,
    /// Random token id, for revocation. Tokens minted before revocation existed have none
    /// and stay valid until they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl Claims {
    /// May this caller change resources owned by `tenant` (`None`: cluster-wide)?
    pub fn can_write(&self, tenant: Option<&str>) -> bool {
        match self.role {
            Role::Admin => true,
            Role::TenantAdmin => tenant.is_some() && tenant == self.tenant.as_deref(),
            Role::Viewer => false,
        }
    }

    /// May this caller see resources owned by `tenant`?
    pub fn can_read(&self, tenant: Option<&str>) -> bool {
        match self.role {
            Role::Admin | Role::Viewer => true,
            Role::TenantAdmin => tenant.is_some() && tenant == self.tenant.as_deref(),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("this operation needs the admin role"))
        }
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs a token valid for `ttl_secs`.
pub fn mint(
    secret: &[u8],
    sub: &str,
    role: Role,
    tenant: Option<String>,
    ttl_secs: u64,
) -> Result<String, ApiError> {
    if role == Role::TenantAdmin && tenant.is_none() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "a tenant-admin token needs a tenant",
        ));
    }
    let iat = now_secs();
    let claims = Claims {
        sub: sub.to_string(),
        role,
        tenant,
        iat,
        exp: iat.saturating_add(ttl_secs),
        jti: Some(hex::encode(rand::random::<[u8; 16]>())),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| ApiError::internal(format!("cannot sign token: {e}")))
}

/// Checks signature, algorithm and expiry.
pub fn verify(secret: &[u8], token: &str) -> Result<Claims, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 5;
    validation.set_required_spec_claims(&["exp", "sub"]);
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)
        .map(|d| d.claims)
        .map_err(|e| ApiError::unauthorized(format!("invalid admin token: {e}")))
}

/// The bearer token from an `Authorization` header value.
pub fn bearer(header: Option<&axum::http::HeaderValue>) -> Option<&str> {
    let value = header?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tampering() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let t = mint(secret, "ops", Role::TenantAdmin, Some("acme".into()), 60).expect("mint");
        let c = verify(secret, &t).expect("verify");
        assert_eq!(
            (c.role, c.tenant.as_deref()),
            (Role::TenantAdmin, Some("acme"))
        );
        assert!(verify(b"another-secret-another-secret-xx", &t).is_err());
        let mut forged = t.clone();
        forged.pop();
        assert!(verify(secret, &forged).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let claims = Claims {
            sub: "x".into(),
            role: Role::Admin,
            tenant: None,
            iat: 1,
            exp: 2,
            jti: None,
        };
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .expect("encode");
        assert!(verify(secret, &t).is_err());
    }

    #[test]
    fn scopes() {
        let ta = Claims {
            sub: "t".into(),
            role: Role::TenantAdmin,
            tenant: Some("a".into()),
            iat: 0,
            exp: 0,
            jti: None,
        };
        assert!(ta.can_write(Some("a")) && !ta.can_write(Some("b")) && !ta.can_write(None));
        assert!(ta.can_read(Some("a")) && !ta.can_read(None));
        let v = Claims {
            role: Role::Viewer,
            tenant: None,
            ..ta
        };
        assert!(v.can_read(None) && !v.can_write(None));
    }
}

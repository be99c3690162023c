//! The admin audit trail and the revoked admin tokens: both replicated, both built at
//! apply from the command alone (its proposer's clock included), so every node holds the
//! same records and drops the same ones. Operator view: `docs/admin-api.md`.

use serde::{Deserialize, Serialize};

use crate::command::{ApplyError, Op};
use crate::model::Kind;

/// At most this many audit records are kept; the oldest go first.
pub const MAX_AUDIT_RECORDS: usize = 10_000;
/// Audit records older than this (by the applying command's timestamp) are dropped.
pub const MAX_AUDIT_AGE_MS: u64 = 90 * 24 * 3600 * 1000;
/// A revoked token is forgotten this long after it expires: nodes whose clock lags the
/// proposer's must not see an expired-but-revoked token come back to life.
pub const REVOKED_GRACE_MS: u64 = 3600 * 1000;
/// Longest token id a revocation accepts (ours are 32 hex characters).
pub const MAX_JTI_LEN: usize = 128;
/// Longest request path kept in a record.
const MAX_PATH_LEN: usize = 512;

/// Who sent an admin write and where it arrived: travels in the [`crate::Command`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The caller's role (`admin`, `tenant-admin`, `viewer`, or `system`).
    pub role: String,
    /// The tenant a tenant-admin token is scoped to.
    pub tenant: Option<String>,
    /// The node that received the HTTP request.
    pub node: u64,
    pub method: String,
    /// The request path, without the query string.
    pub path: String,
}

/// One admin write as the state machine saw it. Holds names and ids only, never bodies,
/// so no secret (API key, provider key, certificate key, token secret) can end up here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The log index of the write: unique, and increasing with time.
    pub seq: u64,
    pub at_ms: u64,
    /// The token's subject.
    pub actor: String,
    pub role: String,
    /// The tenant of the caller's token (tenant admins).
    pub actor_tenant: Option<String>,
    /// The tenant owning the resource written, when it has one.
    pub tenant: Option<String>,
    pub node: u64,
    pub method: String,
    pub path: String,
    /// `create`, `update`, `delete`, `batch`, `restore`, `init_cluster`, `revoke_token`,
    /// `reencrypt_secrets`.
    pub op: String,
    pub kind: Option<Kind>,
    pub id: Option<String>,
    /// `ok`, or the error code the state machine answered.
    pub outcome: String,
}

/// A revoked admin token: refused until it would have expired anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedToken {
    pub jti: String,
    /// The token's own expiry, Unix seconds.
    pub exp: u64,
    pub revoked_at_ms: u64,
    /// Subject of the token that revoked it.
    pub revoked_by: String,
}

impl RevokedToken {
    /// Unix milliseconds after which the record is dropped.
    pub fn forget_after_ms(&self) -> u64 {
        self.exp
            .saturating_mul(1000)
            .saturating_add(REVOKED_GRACE_MS)
    }
}

/// Checks a revocation's token id: bounded, printable, so it is safe in keys and logs.
pub fn check_jti(jti: &str) -> Result<(), ApplyError> {
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(ApplyError::Revocation(format!(
            "a token id must be 1 to {MAX_JTI_LEN} characters"
        )));
    }
    if !jti
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ApplyError::Revocation(
            "a token id may only hold letters, digits, '-', '_' and '.'".into(),
        ));
    }
    Ok(())
}

/// The operation's name in a record.
pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::InitCluster { .. } => "init_cluster",
        Op::Create(_) => "create",
        Op::Update(_) => "update",
        Op::Delete { .. } => "delete",
        Op::Batch(_) => "batch",
        Op::QuotaSync(_) => "quota_sync",
        Op::Restore(_) => "restore",
        Op::RevokeToken { .. } => "revoke_token",
        Op::Reencrypt(_) => "reencrypt_secrets",
    }
}

/// The kind and id the operation writes, when it writes one thing.
pub fn op_target(op: &Op) -> (Option<Kind>, Option<String>) {
    match op {
        Op::Create(r) | Op::Update(r) => (Some(r.kind()), Some(r.id().to_string())),
        Op::Delete { kind, id } => (Some(*kind), Some(id.clone())),
        Op::RevokeToken { jti, .. } => (None, Some(jti.clone())),
        _ => (None, None),
    }
}

/// Cuts `path` to a bounded length on a character boundary.
pub fn bounded_path(path: &str) -> String {
    let mut end = path.len().min(MAX_PATH_LEN);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path[..end].to_string()
}

/// Which records a query wants. `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Inclusive lower bound on `at_ms`.
    pub since_ms: Option<u64>,
    /// Exclusive upper bound on `at_ms`.
    pub until_ms: Option<u64>,
    pub actor: Option<String>,
    pub kind: Option<Kind>,
    /// Only records about this tenant (tenant admins get their own forced here).
    pub tenant: Option<String>,
}

impl AuditFilter {
    pub fn matches(&self, r: &AuditRecord) -> bool {
        self.since_ms.is_none_or(|s| r.at_ms >= s)
            && self.until_ms.is_none_or(|u| r.at_ms < u)
            && self.actor.as_ref().is_none_or(|a| *a == r.actor)
            && self.kind.is_none_or(|k| r.kind == Some(k))
            && self
                .tenant
                .as_ref()
                .is_none_or(|t| r.tenant.as_ref() == Some(t) || r.actor_tenant.as_ref() == Some(t))
    }
}

//! Replicated commands, their answers, and the typed errors a rejected command returns.

use serde::{Deserialize, Serialize};

use crate::audit::Origin;
use crate::model::{Kind, Resource};
use crate::quota::{QuotaReply, QuotaSync};
use crate::reencrypt::SecretSwap;
use crate::state::StateImage;

/// One entry's payload in the Raft log.
///
/// Everything apply needs that is not in the current state travels in the command
/// (the proposer's clock, generated ids and secrets), so apply stays deterministic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unix milliseconds on the node that proposed the command.
    pub at_ms: u64,
    /// Who asked for it (the admin token's subject), for the audit trail.
    pub actor: String,
    pub op: Op,
    /// Role, tenant, receiving node and request of an admin write: when set, apply adds
    /// an audit record whatever the outcome. Added in format version 4.
    pub origin: Option<Origin>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// First command of a new cluster: its identity and the admin-token signing secret.
    InitCluster {
        cluster_id: String,
        token_secret: Vec<u8>,
    },
    Create(Resource),
    /// Replaces the whole resource; it must exist.
    Update(Resource),
    Delete {
        kind: Kind,
        id: String,
    },
    /// All ops or none.
    Batch(Vec<Op>),
    /// One node's quota grants, returns and usage for a tick (never inside a batch).
    QuotaSync(QuotaSync),
    /// Replaces the whole state with a backup's (never inside a batch): one entry, so every
    /// node switches at the same index. Added last, so older entries decode unchanged.
    Restore(StateImage),
    /// Refuses the admin token `jti` (expiring at `exp`, Unix seconds) on every node.
    RevokeToken {
        jti: String,
        exp: u64,
    },
    /// Stored secrets re-encrypted under another key, each swapped only if unchanged (never
    /// inside a batch; all or none). See `crate::reencrypt`.
    Reencrypt(Vec<SecretSwap>),
}

impl Command {
    pub fn new(actor: impl Into<String>, op: Op) -> Command {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Command {
            at_ms,
            actor: actor.into(),
            op,
            origin: None,
        }
    }

    /// The same command, audited as coming from `origin`.
    pub fn with_origin(mut self, origin: Origin) -> Command {
        self.origin = Some(origin);
        self
    }
}

/// The state machine's answer to one log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub result: Result<Applied, ApplyError>,
}

impl Response {
    pub fn ok(applied: Applied) -> Response {
        Response {
            result: Ok(applied),
        }
    }
    pub fn err(e: ApplyError) -> Response {
        Response { result: Err(e) }
    }
    /// The answer to entries without a command (blank, membership).
    pub fn none(revision: u64) -> Response {
        Response::ok(Applied {
            revision,
            changed: Vec::new(),
            quota: None,
        })
    }
}

/// A successfully applied command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// The log index of the entry: the cluster-wide revision of this change.
    pub revision: u64,
    /// Resources created, replaced or deleted by it (cascades included).
    pub changed: Vec<(Kind, String)>,
    /// The grants, for a [`Op::QuotaSync`].
    pub quota: Option<QuotaReply>,
}

/// Why a command was rejected. A rejected command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApplyError {
    #[error("invalid {kind} '{id}': {field}: {message}")]
    Invalid {
        kind: Kind,
        id: String,
        field: String,
        message: String,
    },
    #[error("{kind} '{id}' not found")]
    NotFound { kind: Kind, id: String },
    #[error("{kind} '{id}' already exists")]
    AlreadyExists { kind: Kind, id: String },
    #[error("{kind} '{id}': {field} refers to {target_kind} '{target_id}', which does not exist")]
    Dangling {
        kind: Kind,
        id: String,
        field: String,
        target_kind: Kind,
        target_id: String,
    },
    #[error("{kind} '{id}': {field} refers to {target_kind} '{target_id}' of another tenant")]
    CrossTenant {
        kind: Kind,
        id: String,
        field: String,
        target_kind: Kind,
        target_id: String,
    },
    #[error("{kind} '{id}' is still used by {}", describe(.used_by))]
    InUse {
        kind: Kind,
        id: String,
        used_by: Vec<(Kind, String)>,
    },
    #[error("{kind} '{id}': reference cycle {}", .path.join(" -> "))]
    Cycle {
        kind: Kind,
        id: String,
        path: Vec<String>,
    },
    #[error("the cluster is already initialized")]
    AlreadyInitialized,
    #[error("the cluster is not initialized")]
    NotInitialized,
    #[error("quota sync refused: {0}")]
    QuotaSync(String),
    #[error("restore refused: {0}")]
    Restore(String),
    #[error("revocation refused: {0}")]
    Revocation(String),
    #[error("re-encryption refused: {0}")]
    Reencrypt(String),
}

impl ApplyError {
    /// Stable machine-readable code for the admin API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            ApplyError::Invalid { .. } => "invalid_resource",
            ApplyError::NotFound { .. } => "not_found",
            ApplyError::AlreadyExists { .. } => "already_exists",
            ApplyError::Dangling { .. } => "invalid_reference",
            ApplyError::CrossTenant { .. } => "cross_tenant_reference",
            ApplyError::InUse { .. } => "in_use",
            ApplyError::Cycle { .. } => "reference_cycle",
            ApplyError::AlreadyInitialized => "already_initialized",
            ApplyError::NotInitialized => "not_initialized",
            ApplyError::QuotaSync(_) => "quota_sync_refused",
            ApplyError::Restore(_) => "invalid_backup",
            ApplyError::Revocation(_) => "invalid_request",
            ApplyError::Reencrypt(_) => "conflict",
        }
    }
}

fn describe(items: &[(Kind, String)]) -> String {
    let shown: Vec<String> = items
        .iter()
        .take(5)
        .map(|(k, id)| format!("{k} '{id}'"))
        .collect();
    let more = items.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

//! Apply-time bookkeeping of admin access: revoked tokens and the audit trail. Both are
//! driven by the command's timestamp only, so every node keeps and drops the same records.

use super::*;
use crate::audit::{self, AuditRecord, Origin, RevokedToken};

impl State {
    /// Is the admin token `jti` revoked (and not yet forgotten)?
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.contains_key(jti)
    }

    /// Revoked tokens, ordered by token id.
    pub fn revoked(&self) -> impl Iterator<Item = &RevokedToken> {
        self.revoked.values()
    }

    pub fn revoked_token(&self, jti: &str) -> Option<&RevokedToken> {
        self.revoked.get(jti)
    }

    /// Audit records, oldest first (reverse it for newest first).
    pub fn audit_records(&self) -> impl DoubleEndedIterator<Item = &AuditRecord> {
        self.audit.values().map(|r| &**r)
    }

    pub fn audit_record(&self, seq: u64) -> Option<&AuditRecord> {
        self.audit.get(&seq).map(|r| &**r)
    }

    pub fn load_revoked(&mut self, r: RevokedToken) {
        self.revoked_expiry
            .insert((r.forget_after_ms(), r.jti.clone()));
        self.revoked.insert(r.jti.clone(), r);
    }

    pub fn load_audit(&mut self, r: AuditRecord) {
        self.audit.insert(r.seq, std::sync::Arc::new(r));
    }

    /// `Op::RevokeToken`: idempotent; a second revocation keeps the later expiry.
    pub(super) fn revoke(
        &mut self,
        jti: &str,
        exp: u64,
        cmd: &Command,
        touched: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        audit::check_jti(jti)?;
        let mut record = RevokedToken {
            jti: jti.to_string(),
            exp,
            revoked_at_ms: cmd.at_ms,
            revoked_by: cmd.actor.clone(),
        };
        if let Some(old) = self.revoked.get(jti).cloned() {
            if old.exp >= exp {
                return Ok(());
            }
            self.revoked_expiry
                .remove(&(old.forget_after_ms(), old.jti.clone()));
            record.revoked_at_ms = old.revoked_at_ms;
            record.revoked_by = old.revoked_by;
        }
        if record.forget_after_ms() <= cmd.at_ms {
            // Already expired past the grace: nothing left to refuse.
            return Ok(());
        }
        self.load_revoked(record);
        touched.push(Change::Revoked(jti.to_string()));
        Ok(())
    }

    /// Drops revoked tokens past expiry and grace, and audit records beyond the count or
    /// age bound, as of `at_ms` (the applying command's timestamp).
    pub(super) fn expire(&mut self, at_ms: u64, changes: &mut Vec<Change>) {
        while let Some((forget_at, jti)) = self.revoked_expiry.get_min().cloned() {
            if forget_at > at_ms {
                break;
            }
            self.revoked_expiry.remove(&(forget_at, jti.clone()));
            self.revoked.remove(&jti);
            changes.push(Change::Revoked(jti));
        }
        while let Some((seq, oldest_at)) = self.audit.get_min().map(|(k, r)| (*k, r.at_ms)) {
            let too_old = oldest_at.saturating_add(audit::MAX_AUDIT_AGE_MS) < at_ms;
            if !too_old && self.audit.len() <= audit::MAX_AUDIT_RECORDS {
                break;
            }
            self.audit.remove(&seq);
            changes.push(Change::Audit(seq));
        }
    }

    /// The tenant owning what `op` writes, looked up before apply (a delete removes it).
    pub(super) fn op_tenant(&self, op: &Op) -> Option<String> {
        match op {
            Op::Create(r) | Op::Update(r) => self.owner_tenant(r),
            Op::Delete { kind, id } => self.owner_tenant(&self.get(*kind, id)?.resource),
            _ => None,
        }
    }

    /// Appends the audit record of the command at log index `seq`.
    pub(super) fn record(
        &mut self,
        seq: u64,
        cmd: &Command,
        origin: &Origin,
        tenant: Option<String>,
        outcome: &Result<Applied, ApplyError>,
        changes: &mut Vec<Change>,
    ) {
        let (kind, id) = audit::op_target(&cmd.op);
        let record = AuditRecord {
            seq,
            at_ms: cmd.at_ms,
            actor: cmd.actor.clone(),
            role: origin.role.clone(),
            actor_tenant: origin.tenant.clone(),
            tenant: tenant.or_else(|| origin.tenant.clone()),
            node: origin.node,
            method: origin.method.clone(),
            path: audit::bounded_path(&origin.path),
            op: audit::op_name(&cmd.op).to_string(),
            kind,
            id,
            outcome: match outcome {
                Ok(_) => "ok".to_string(),
                Err(e) => e.code().to_string(),
            },
        };
        self.audit.insert(seq, std::sync::Arc::new(record));
        changes.push(Change::Audit(seq));
        self.expire(cmd.at_ms, changes);
    }
}

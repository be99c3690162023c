//! Applying a backup (`Op::Restore`): the whole state replaced in one entry, with what
//! belongs to the running cluster kept. Decisions and their reasons: `docs/backup.md`.

use super::*;

impl State {
    /// Replaces the state with `image` at log index `revision`, or changes nothing.
    ///
    /// Kept from the running cluster: its identity (cluster id, creation time) and each
    /// node's quota-sync dedup record (they belong to the running processes, like the
    /// membership, which is not state-machine data at all), its audit trail, and its
    /// revoked tokens (joined with the backup's). Taken from the backup: every
    /// resource and the admin-token secret. Quota counters are merged so that no node can
    /// hold units the ledger does not count (see [`Ledger::restored`]).
    pub(super) fn restore(&mut self, revision: u64, image: &StateImage) -> Result<(), ApplyError> {
        let current = self.cluster.clone().ok_or(ApplyError::NotInitialized)?;
        let mut next = State::checked_image(image, revision)?;
        next.cluster = Some(ClusterMeta {
            token_secret: image
                .cluster
                .as_ref()
                .map_or(current.token_secret, |c| c.token_secret.clone()),
            ..current
        });
        next.revision = revision;
        let old_policy = |id: &str| self.quota_policy(id);
        let keep_live = |id: &str| match (old_policy(id), next.quota_policy(id)) {
            (Some(old), Some(new)) => !quota_counters_change(
                &Resource::QuotaPolicy(old.clone()),
                &Resource::QuotaPolicy(new.clone()),
            ),
            _ => false,
        };
        let exists = |id: &str| next.quota_policy(id).is_some();
        let ledger = self.ledger.restored(&image.ledger, keep_live, exists);
        next.ledger = ledger;
        // A backup never un-revokes a token, and the audit trail is the running cluster's
        // history, not the backup's.
        next.audit = self.audit.clone();
        for r in self.revoked.values().chain(&image.revoked) {
            crate::audit::check_jti(&r.jti).map_err(|e| ApplyError::Restore(e.to_string()))?;
            if next.revoked.get(&r.jti).is_none_or(|old| old.exp < r.exp) {
                if let Some(old) = next.revoked.get(&r.jti).cloned() {
                    next.revoked_expiry
                        .remove(&(old.forget_after_ms(), old.jti.clone()));
                }
                next.load_revoked(r.clone());
            }
        }
        *self = next;
        Ok(())
    }

    /// The resources of `image` as a state, each stamped with `revision`, after the same
    /// checks a write of each would pass: field validation, references, tenants, key hash
    /// uniqueness, cycles. A backup is trusted no further than an admin's writes.
    pub fn checked_image(image: &StateImage, revision: u64) -> Result<State, ApplyError> {
        let mut next = State::default();
        for stored in &image.resources {
            validate(&stored.resource)?;
            let mut stored = stored.clone();
            stored.revision = revision;
            let (kind, id) = (stored.resource.kind(), stored.resource.id().to_string());
            if next.get(kind, &id).is_some() {
                return Err(ApplyError::Restore(format!(
                    "{kind} '{id}' appears twice in the backup"
                )));
            }
            next.load(stored);
        }
        for stored in next.tables.values().flat_map(|t| t.values()) {
            next.check_new(&stored.resource)?;
        }
        Ok(next)
    }
}

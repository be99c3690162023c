//! Applying `Op::Reencrypt`: every swap checked against the stored value, then all
//! written, or none (the caller applies it on a scratch copy).

use super::*;
use crate::reencrypt::{SecretSlot, SecretSwap};

fn changed(slot: &SecretSlot) -> ApplyError {
    ApplyError::Reencrypt(format!(
        "{} changed or disappeared since the rotation read it; run the rotation again",
        slot.describe()
    ))
}

impl State {
    pub(super) fn reencrypt(
        &mut self,
        revision: u64,
        at_ms: u64,
        swaps: &[SecretSwap],
        touched: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        let cluster = self.cluster.as_mut().ok_or(ApplyError::NotInitialized)?;
        let mut seen = std::collections::BTreeSet::new();
        for swap in swaps {
            if !seen.insert(&swap.slot) {
                return Err(ApplyError::Reencrypt(format!(
                    "{} appears twice",
                    swap.slot.describe()
                )));
            }
        }
        for swap in swaps {
            if swap.slot == SecretSlot::TokenSecret {
                if cluster.token_secret != swap.from {
                    return Err(changed(&swap.slot));
                }
                if swap.to.is_empty() {
                    return Err(ApplyError::Reencrypt("an empty token secret".into()));
                }
                cluster.token_secret = swap.to.clone();
                touched.push(Change::Cluster);
            }
        }
        for swap in swaps {
            let (kind, id) = match &swap.slot {
                SecretSlot::TokenSecret => continue,
                SecretSlot::ProviderApiKey(id) => (Kind::Provider, id),
                SecretSlot::CertificateKey(id) => (Kind::Certificate, id),
                SecretSlot::RouteJwtSecret(id, _) => (Kind::Route, id),
            };
            let stored = self.get(kind, id).ok_or_else(|| changed(&swap.slot))?;
            let (created, mut res) = (stored.created_at_ms, stored.resource.clone());
            let to = String::from_utf8(swap.to.clone())
                .map_err(|_| ApplyError::Reencrypt("a value that is not UTF-8".into()))?;
            let field: Option<&mut String> = match (&swap.slot, &mut res) {
                (SecretSlot::ProviderApiKey(_), Resource::Provider(p)) => p.api_key.as_mut(),
                (SecretSlot::CertificateKey(_), Resource::Certificate(c)) => Some(&mut c.key_pem),
                (SecretSlot::RouteJwtSecret(_, i), Resource::Route(r)) => {
                    match r.policies.get_mut(*i as usize) {
                        Some(Policy::JwtAuth(j)) => j.secret.as_mut(),
                        _ => None,
                    }
                }
                _ => None,
            };
            match field {
                Some(value) if value.as_bytes() == swap.from.as_slice() => *value = to,
                _ => return Err(changed(&swap.slot)),
            }
            validate(&res)?;
            self.put(res, created, revision, at_ms, touched);
        }
        Ok(())
    }
}

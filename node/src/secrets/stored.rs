//! The secrets held in the replicated state, found and read with the node's key ring: the
//! admin-token signing secret, provider `api_key`s, certificate `key_pem`s and HS256
//! `jwt_auth` secrets. Used by the data plane (jwt secrets), `raftgate secrets
//! rotate|status` and the restore checks.

use std::collections::BTreeMap;

use raftgate_store::model::{JwtAuth, Policy, Resource};
use raftgate_store::reencrypt::{SecretSlot, SecretSwap};
use raftgate_store::state::{State, StateImage};

use super::{open_token_secret, split_v2, token_secret_is_sealed, SecretBox, SecretError};

/// A jwt_auth rule with its secret in the clear, for the data plane's verifier.
pub fn open_jwt(j: &JwtAuth, secrets: Option<&SecretBox>) -> Result<JwtAuth, String> {
    let Some(stored) = j.secret.as_deref().filter(|s| SecretBox::is_encrypted(s)) else {
        return Ok(j.clone());
    };
    let plain = match secrets {
        Some(sb) => sb
            .decrypt(stored)
            .map_err(|e| format!("jwt_auth secret: {e}"))?,
        None => {
            return Err("jwt_auth secret: this node has no secret key to decrypt it".into());
        }
    };
    Ok(JwtAuth {
        secret: Some(plain),
        ..j.clone()
    })
}

/// Every stored secret of `state` with its stored bytes, the signing secret first.
pub fn stored_secrets(state: &State) -> Vec<(SecretSlot, Vec<u8>)> {
    let mut out = Vec::new();
    if let Some(c) = state.cluster() {
        out.push((SecretSlot::TokenSecret, c.token_secret.clone()));
    }
    for kind in [
        raftgate_store::model::Kind::Provider,
        raftgate_store::model::Kind::Certificate,
        raftgate_store::model::Kind::Route,
    ] {
        for stored in state.list(kind) {
            resource_secrets(&stored.resource, &mut out);
        }
    }
    out
}

fn resource_secrets(res: &Resource, out: &mut Vec<(SecretSlot, Vec<u8>)>) {
    match res {
        Resource::Provider(p) => {
            if let Some(k) = &p.api_key {
                out.push((SecretSlot::ProviderApiKey(p.id.clone()), k.clone().into()));
            }
        }
        Resource::Certificate(c) => out.push((
            SecretSlot::CertificateKey(c.id.clone()),
            c.key_pem.clone().into(),
        )),
        Resource::Route(r) => {
            for (i, p) in r.policies.iter().enumerate() {
                if let Policy::JwtAuth(JwtAuth {
                    secret: Some(s), ..
                }) = p
                {
                    out.push((
                        SecretSlot::RouteJwtSecret(r.id.clone(), i as u32),
                        s.clone().into(),
                    ));
                }
            }
        }
        _ => {}
    }
}

/// How one stored value is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seal {
    /// Stored in the clear (a signing secret or jwt secret from before encryption, or a
    /// cluster without a key).
    Plaintext,
    /// Encrypted under this key id; `legacy` for `enc:v1:` values (no id in the value).
    Key { id: String, legacy: bool },
    /// Encrypted, and no key of this node opens it (the id when the value names one).
    Unreadable { id: Option<String> },
}

fn is_sealed(slot: &SecretSlot, value: &[u8]) -> bool {
    match slot {
        SecretSlot::TokenSecret => token_secret_is_sealed(value),
        _ => std::str::from_utf8(value).is_ok_and(SecretBox::is_encrypted),
    }
}

/// The plaintext of a stored value, whatever protects it.
pub fn open(
    secrets: Option<&SecretBox>,
    slot: &SecretSlot,
    value: &[u8],
) -> Result<Vec<u8>, SecretError> {
    match slot {
        SecretSlot::TokenSecret => open_token_secret(secrets, value),
        _ if !is_sealed(slot, value) => Ok(value.to_vec()),
        _ => {
            let text = std::str::from_utf8(value).map_err(|_| SecretError::Malformed)?;
            secrets.ok_or(SecretError::WrongKey)?.decrypt_bytes(text)
        }
    }
}

/// What protects `value`.
pub fn seal_of(secrets: Option<&SecretBox>, slot: &SecretSlot, value: &[u8]) -> Seal {
    if !is_sealed(slot, value) {
        return Seal::Plaintext;
    }
    let text = std::str::from_utf8(value).unwrap_or_default();
    let named = split_v2(text)
        .and_then(Result::ok)
        .map(|(kid, _)| kid.to_string());
    match secrets.map(|sb| sb.key_of(text)) {
        Some(Ok(id)) => Seal::Key {
            id: id.to_string(),
            legacy: named.is_none(),
        },
        _ => Seal::Unreadable { id: named },
    }
}

/// Counts for `GET /admin/v1/secrets/status`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Census {
    pub total: usize,
    /// Values per key id (readable ones, and unreadable ones that name their key).
    pub by_key: BTreeMap<String, usize>,
    /// Values per kind of secret.
    pub by_kind: BTreeMap<&'static str, usize>,
    pub plaintext: usize,
    /// `enc:v1:` values (also counted in `by_key` when a key opens them).
    pub legacy_v1: usize,
    /// Values no key of this node opens.
    pub unreadable: usize,
    /// Values a rotation would rewrite: not under the current key in the current format.
    pub not_current: usize,
}

pub fn kind_name(slot: &SecretSlot) -> &'static str {
    match slot {
        SecretSlot::TokenSecret => "token_secret",
        SecretSlot::ProviderApiKey(_) => "provider_api_keys",
        SecretSlot::CertificateKey(_) => "certificate_keys",
        SecretSlot::RouteJwtSecret(..) => "jwt_secrets",
    }
}

/// Counts the stored secrets of `state` by what protects them.
pub fn census(secrets: Option<&SecretBox>, state: &State) -> Census {
    let mut c = Census::default();
    for (slot, value) in stored_secrets(state) {
        c.total += 1;
        *c.by_kind.entry(kind_name(&slot)).or_default() += 1;
        let seal = seal_of(secrets, &slot, &value);
        let current = secrets.is_some_and(|sb| is_current(sb, &slot, &value));
        if !current {
            c.not_current += 1;
        }
        match seal {
            Seal::Plaintext => c.plaintext += 1,
            Seal::Key { id, legacy } => {
                *c.by_key.entry(id).or_default() += 1;
                c.legacy_v1 += usize::from(legacy);
            }
            Seal::Unreadable { id } => {
                c.unreadable += 1;
                c.legacy_v1 += usize::from(id.is_none());
                if let Some(id) = id {
                    *c.by_key.entry(id).or_default() += 1;
                }
            }
        }
    }
    c
}

fn is_current(sb: &SecretBox, slot: &SecretSlot, value: &[u8]) -> bool {
    is_sealed(slot, value) && std::str::from_utf8(value).is_ok_and(|t| sb.is_current(t))
}

/// The swaps that bring every stored secret under the current key; `Err` lists the
/// values this node cannot read (nothing can be rotated then).
pub fn rotation(sb: &SecretBox, state: &State) -> Result<Vec<SecretSwap>, Vec<String>> {
    let mut swaps = Vec::new();
    let mut unreadable = Vec::new();
    for (slot, value) in stored_secrets(state) {
        if is_current(sb, &slot, &value) {
            continue;
        }
        match open(Some(sb), &slot, &value) {
            Ok(plain) => swaps.push(SecretSwap {
                to: sb.encrypt_bytes(&plain).into_bytes(),
                slot,
                from: value,
            }),
            Err(e) => unreadable.push(format!("{} ({e})", slot.describe())),
        }
    }
    if unreadable.is_empty() {
        Ok(swaps)
    } else {
        Err(unreadable)
    }
}

/// Encrypts the plaintext secrets of a backup image (a signing secret or jwt secrets
/// written before encryption) before it is replicated.
pub fn seal_image(sb: &SecretBox, image: &mut StateImage) {
    if let Some(c) = image.cluster.as_mut() {
        if !token_secret_is_sealed(&c.token_secret) {
            c.token_secret = sb.encrypt_bytes(&c.token_secret).into_bytes();
        }
    }
    for stored in image.resources.iter_mut() {
        if let Resource::Route(r) = &mut stored.resource {
            for p in r.policies.iter_mut() {
                if let Policy::JwtAuth(JwtAuth {
                    secret: Some(s), ..
                }) = p
                {
                    if !SecretBox::is_encrypted(s) {
                        *s = sb.encrypt(s);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! Re-encryption of stored secrets under another key (`raftgate secrets rotate`): which
//! values a rotation replaces, each as a compare-and-swap, so a rotation that raced with an
//! admin write changes nothing instead of writing back a stale resource.
//!
//! The store never sees a key: the node that proposes the command decrypted and
//! re-encrypted every value; apply only checks that each one is still what was read.

use serde::{Deserialize, Serialize};

/// Where a secret lives in the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SecretSlot {
    /// The admin-token signing secret (`ClusterMeta::token_secret`).
    TokenSecret,
    /// A provider's `api_key`.
    ProviderApiKey(String),
    /// A certificate's `key_pem`.
    CertificateKey(String),
    /// The `secret` of a route's `jwt_auth` policy: route id, policy position.
    RouteJwtSecret(String, u32),
}

impl SecretSlot {
    /// A short name for reports and errors (never the value).
    pub fn describe(&self) -> String {
        match self {
            SecretSlot::TokenSecret => "the admin-token signing secret".into(),
            SecretSlot::ProviderApiKey(id) => format!("provider '{id}' api_key"),
            SecretSlot::CertificateKey(id) => format!("certificate '{id}' key_pem"),
            SecretSlot::RouteJwtSecret(id, i) => {
                format!("route '{id}' policies[{i}].jwt_auth.secret")
            }
        }
    }
}

/// Replace the value in `slot` by `to` if it still is `from` (stored bytes, as written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSwap {
    pub slot: SecretSlot,
    pub from: Vec<u8>,
    pub to: Vec<u8>,
}

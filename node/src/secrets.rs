//! Encryption of secrets before they enter the Raft log: AES-256-GCM under node-local
//! key-encryption keys (KEKs) that every node of a cluster shares. A node holds a key
//! ring: the current key (`secret_key_file` or `RAFTGATE_SECRET_KEY`), which encrypts,
//! and previous keys (`secret_key_previous_files` or `RAFTGATE_SECRET_KEY_PREVIOUS`),
//! which only decrypt, so a cluster can move to a new key without downtime.
//!
//! Stored form: `enc:v2:<kid>:` + base64(nonce ‖ ciphertext ‖ tag), where `kid` is a short
//! hash of the key (it names the key, it does not reveal it) and the header is bound as
//! associated data. Values written before key ids (`enc:v1:` + base64) still decrypt
//! with whichever key of the ring opens them.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use anyhow::Context;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, NodeConfig};

pub mod stored;
mod token;
pub use stored::open_jwt;
pub use token::{open_token_secret, seal_token_secret, token_secret_is_sealed};

/// Prefix of values written before key ids existed; still decrypted.
pub const PREFIX_V1: &str = "enc:v1:";
/// Prefix of values this release writes, followed by `<kid>:`.
pub const PREFIX_V2: &str = "enc:v2:";
/// Environment variable holding the key itself (64 hex characters or base64 of 32 bytes).
pub const KEY_ENV: &str = "RAFTGATE_SECRET_KEY";
/// Environment variable holding previous keys, comma-separated, for decryption only.
pub const PREVIOUS_KEYS_ENV: &str = "RAFTGATE_SECRET_KEY_PREVIOUS";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Hex characters of a key id: 32 bits tell a handful of keys apart.
const KID_LEN: usize = 8;

/// Why a stored value could not be decrypted. Messages never contain the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the value is not encrypted (no `enc:` prefix)")]
    NotEncrypted,
    #[error("the encrypted value is malformed")]
    Malformed,
    #[error(
        "the value was encrypted under key id {0}, which this node does not hold: add that \
         key to secret_key_previous_files (or RAFTGATE_SECRET_KEY_PREVIOUS)"
    )]
    UnknownKey(String),
    #[error("the value cannot be decrypted: wrong secret key, or the value was altered")]
    WrongKey,
}

struct Kek {
    id: String,
    cipher: Aes256Gcm,
}

impl Kek {
    fn new(key: &[u8; 32]) -> Kek {
        Kek {
            id: key_id(key),
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)),
        }
    }
}

/// The id of a key: the first hex characters of a domain-separated SHA-256 of it.
pub fn key_id(key: &[u8; 32]) -> String {
    let digest = Sha256::new()
        .chain_update(b"raftgate secret key id\0")
        .chain_update(key)
        .finalize();
    hex::encode(digest)[..KID_LEN].to_string()
}

/// Encrypts with the current key and decrypts with any key of the ring.
pub struct SecretBox {
    current: Kek,
    previous: Vec<Kek>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// The ring from `cfg.secret_key_file` or `RAFTGATE_SECRET_KEY`, plus
    /// `cfg.secret_key_previous_files` and `RAFTGATE_SECRET_KEY_PREVIOUS`; `None` when no
    /// current key is set. Both current sources set, previous keys without a current one,
    /// an unreadable file or a malformed key is a configuration error (exit 64).
    pub fn from_config(cfg: &NodeConfig) -> anyhow::Result<Option<SecretBox>> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self::from_sources(
            cfg.secret_key_file.as_deref(),
            env(KEY_ENV).as_deref(),
            &cfg.secret_key_previous_files,
            env(PREVIOUS_KEYS_ENV).as_deref(),
        )
    }

    fn from_sources(
        file: Option<&Path>,
        env: Option<&str>,
        previous_files: &[PathBuf],
        previous_env: Option<&str>,
    ) -> anyhow::Result<Option<SecretBox>> {
        let key = match (file, env) {
            (Some(_), Some(_)) => {
                return Err(bad(format!(
                    "both secret_key_file and {KEY_ENV} are set; give the key one way"
                ))
                .into())
            }
            (Some(path), None) => read_key_file(path)?,
            (None, Some(text)) => parse_key(text.trim().as_bytes()).ok_or_else(|| {
                bad(format!(
                    "{KEY_ENV} is not 64 hex characters or base64 of 32 bytes"
                ))
            })?,
            (None, None) => {
                if !previous_files.is_empty() || previous_env.is_some() {
                    return Err(bad(format!(
                        "previous secret keys are set but no current one: set secret_key_file \
                         or {KEY_ENV} to the key new secrets are encrypted with"
                    ))
                    .into());
                }
                return Ok(None);
            }
        };
        let mut previous = Vec::new();
        for path in previous_files {
            previous.push(read_key_file(path)?);
        }
        for (i, text) in previous_env
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            previous.push(parse_key(text.as_bytes()).ok_or_else(|| {
                bad(format!(
                    "key {} of {PREVIOUS_KEYS_ENV} is not 64 hex characters or base64 of 32 bytes",
                    i + 1
                ))
            })?);
        }
        Ok(Some(SecretBox::from_key(key).with_previous(&previous)))
    }

    /// A ring with `key` alone.
    pub fn from_key(key: [u8; 32]) -> SecretBox {
        SecretBox {
            current: Kek::new(&key),
            previous: Vec::new(),
        }
    }

    /// Adds decrypt-only keys; the current key and duplicates are skipped.
    pub fn with_previous(mut self, keys: &[[u8; 32]]) -> SecretBox {
        for key in keys {
            let kek = Kek::new(key);
            if kek.id != self.current.id && self.previous.iter().all(|p| p.id != kek.id) {
                self.previous.push(kek);
            }
        }
        self
    }

    /// Id of the key new values are encrypted with.
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    /// Ids of the decrypt-only keys.
    pub fn previous_key_ids(&self) -> Vec<&str> {
        self.previous.iter().map(|k| k.id.as_str()).collect()
    }

    fn keys(&self) -> impl Iterator<Item = &Kek> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }

    /// Encrypts with a fresh random nonce, so equal plaintexts give different outputs.
    pub fn encrypt(&self, plaintext: &str) -> String {
        self.encrypt_bytes(plaintext.as_bytes())
    }

    /// [`SecretBox::encrypt`] for binary secrets.
    pub fn encrypt_bytes(&self, plaintext: &[u8]) -> String {
        let header = format!("{PREFIX_V2}{}:", self.current.id);
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .current
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: header.as_bytes(),
                },
            )
            .expect("AES-GCM fails only for inputs near 64 GiB; admin bodies are at most 1 MiB");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{header}{}", B64.encode(out))
    }

    /// Decrypts a value produced by [`SecretBox::encrypt`] under any key of the ring.
    pub fn decrypt(&self, stored: &str) -> Result<String, SecretError> {
        String::from_utf8(self.decrypt_bytes(stored)?).map_err(|_| SecretError::Malformed)
    }

    /// [`SecretBox::decrypt`] for binary secrets.
    pub fn decrypt_bytes(&self, stored: &str) -> Result<Vec<u8>, SecretError> {
        self.open(stored).map(|(plain, _)| plain)
    }

    /// Id of the key that opens `stored` (for `enc:v1:` values: the one that decrypts it).
    pub fn key_of(&self, stored: &str) -> Result<&str, SecretError> {
        self.open(stored).map(|(_, kek)| kek.id.as_str())
    }

    /// Whether `stored` is encrypted under the current key in the current format.
    pub fn is_current(&self, stored: &str) -> bool {
        matches!(split_v2(stored), Some(Ok((kid, _))) if kid == self.current.id)
    }

    fn open(&self, stored: &str) -> Result<(Vec<u8>, &Kek), SecretError> {
        if let Some(parts) = split_v2(stored) {
            let (kid, body) = parts?;
            let kek = self
                .keys()
                .find(|k| k.id == kid)
                .ok_or_else(|| SecretError::UnknownKey(kid.to_string()))?;
            let header = &stored[..stored.len() - body.len()];
            let (nonce, sealed) = unpack(body)?;
            let plain = kek
                .cipher
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: &sealed,
                        aad: header.as_bytes(),
                    },
                )
                .map_err(|_| SecretError::WrongKey)?;
            return Ok((plain, kek));
        }
        let body = stored
            .strip_prefix(PREFIX_V1)
            .ok_or(SecretError::NotEncrypted)?;
        let (nonce, sealed) = unpack(body)?;
        self.keys()
            .find_map(|k| {
                k.cipher
                    .decrypt(&Nonce::from(nonce), sealed.as_slice())
                    .ok()
                    .map(|p| (p, k))
            })
            .ok_or(SecretError::WrongKey)
    }

    /// Whether `stored` has the form of an encrypted value (it may still fail to decrypt).
    pub fn is_encrypted(stored: &str) -> bool {
        stored.starts_with(PREFIX_V1) || stored.starts_with(PREFIX_V2)
    }
}

/// `(kid, base64 body)` of an `enc:v2:` value; `None` for other values.
fn split_v2(stored: &str) -> Option<Result<(&str, &str), SecretError>> {
    let rest = stored.strip_prefix(PREFIX_V2)?;
    Some(
        rest.split_once(':')
            .filter(|(kid, _)| kid.len() == KID_LEN)
            .ok_or(SecretError::Malformed),
    )
}

fn unpack(body: &str) -> Result<([u8; NONCE_LEN], Vec<u8>), SecretError> {
    let bytes = B64.decode(body).map_err(|_| SecretError::Malformed)?;
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return Err(SecretError::Malformed);
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::Malformed)?;
    Ok((nonce, sealed.to_vec()))
}

fn bad(message: String) -> ConfigError {
    ConfigError {
        key: "secret_key_file".into(),
        message,
    }
}

/// Reads a key file (hex, base64, or 32 raw bytes); warns when others may read it.
fn read_key_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    let bytes =
        std::fs::read(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the secret key file is readable by group or others; chmod 600 it"
                );
            }
        }
    }
    let key = if bytes.len() == 32 {
        bytes.as_slice().try_into().ok()
    } else {
        parse_key(bytes.trim_ascii())
    };
    key.ok_or_else(|| {
        bad(format!(
            "{} must hold 32 bytes: 64 hex characters, base64, or raw",
            path.display()
        ))
        .into()
    })
}

/// 64 hex characters or base64 (standard, padded) of exactly 32 bytes.
fn parse_key(text: &[u8]) -> Option<[u8; 32]> {
    let decoded = if text.len() == 64 {
        hex::decode(text).ok()?
    } else {
        B64.decode(text).ok()?
    };
    decoded.try_into().ok()
}

/// Secrets already opened, by their stored (sealed) text: a provider's `api_key` is needed
/// on every LLM call, and opening it each time (base64 and AES-GCM) was ~1.5 % of a small
/// call's CPU. A changed secret is new sealed text, so nothing goes stale; the map is
/// emptied when it reaches [`OpenedSecrets::MAX`] entries (keys replaced many times).
#[derive(Default)]
pub struct OpenedSecrets(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl OpenedSecrets {
    const MAX: usize = 1024;

    /// `stored` opened with `ring`, from the map when it was opened before.
    pub fn open(&self, ring: &SecretBox, stored: &str) -> Result<String, SecretError> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(plain) = map.get(stored) {
            return Ok(plain.clone());
        }
        let plain = ring.decrypt(stored)?;
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(stored.to_string(), plain.clone());
        Ok(plain)
    }
}

/// Outside `insecure` mode a node must hold a key: every cluster stores at least its
/// admin-token signing secret, and that must not reach the disk in the clear. Insecure
/// (test) nodes may run without one: the signing secret is then stored as is, and writes
/// of other secrets are refused (`secret_key_missing`).
pub fn check_policy(cfg: &NodeConfig, ring: Option<&SecretBox>) -> Result<(), ConfigError> {
    match ring {
        Some(sb) => {
            tracing::info!(
                key_id = sb.key_id(),
                previous_key_ids = ?sb.previous_key_ids(),
                "secret key ring loaded"
            );
            Ok(())
        }
        None if cfg.insecure => {
            tracing::warn!(
                "no secret key (secret_key_file / {KEY_ENV}): the admin-token signing secret \
                 is stored in the clear, and provider keys, certificates and jwt secrets \
                 cannot be stored"
            );
            Ok(())
        }
        None => Err(bad(format!(
            "serve needs a secret key that encrypts stored secrets (the admin-token signing \
             secret, provider keys, certificate keys, jwt secrets): set secret_key_file \
             (--secret-key-file, RAFTGATE_SECRET_KEY_FILE) or {KEY_ENV}, the same 32 bytes on \
             every node (`openssl rand -hex 32`), or set insecure = true on a private test \
             network"
        ))),
    }
}

/// Writes a fresh random key as hex to `path` (mode 0600) unless the file exists;
/// `raftgate dev` uses it on first run.
pub fn ensure_key_file(path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    if path.exists() {
        return Ok(());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(hex::encode(rand::random::<[u8; 32]>()).as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// An `enc:v1:` value as the previous release wrote it (no key id, no associated data).
    pub fn v1(b: &SecretBox, plain: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = b
            .current
            .cipher
            .encrypt(&Nonce::from(nonce), plain.as_bytes())
            .expect("encrypt");
        format!(
            "{PREFIX_V1}{}",
            B64.encode([nonce.as_slice(), &sealed].concat())
        )
    }
}

#[cfg(test)]
mod tests;

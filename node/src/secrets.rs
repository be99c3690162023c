//! Encryption of secrets before they enter the Raft log: AES-256-GCM under a node-local
//! key-encryption key that every node of a cluster shares (`secret_key_file` or
//! `RAFTGATE_SECRET_KEY`). Stored form: `enc:v1:` + base64(nonce ‖ ciphertext ‖ tag).

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use anyhow::Context;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::config::{ConfigError, NodeConfig};

/// Prefix of every value this module encrypted.
pub const PREFIX: &str = "enc:v1:";
/// Environment variable holding the key itself (64 hex characters or base64 of 32 bytes).
pub const KEY_ENV: &str = "RAFTGATE_SECRET_KEY";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why a stored value could not be decrypted. Messages never contain the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the value is not encrypted (no `enc:v1:` prefix)")]
    NotEncrypted,
    #[error("the encrypted value is malformed")]
    Malformed,
    #[error("the value cannot be decrypted: wrong secret key, or the value was altered")]
    WrongKey,
}

/// Encrypts and decrypts secrets with the cluster's key-encryption key.
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// The key from `cfg.secret_key_file` or the `RAFTGATE_SECRET_KEY` environment
    /// variable; `None` when neither is set. Both set, an unreadable file or a malformed
    /// key is a configuration error (exit 64). Called once at start-up.
    pub fn from_config(cfg: &NodeConfig) -> anyhow::Result<Option<SecretBox>> {
        let env = std::env::var(KEY_ENV).ok().filter(|v| !v.trim().is_empty());
        Self::from_sources(cfg.secret_key_file.as_deref(), env.as_deref())
    }

    fn from_sources(file: Option<&Path>, env: Option<&str>) -> anyhow::Result<Option<SecretBox>> {
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
            (None, None) => return Ok(None),
        };
        Ok(Some(SecretBox::from_key(key)))
    }

    pub fn from_key(key: [u8; 32]) -> SecretBox {
        SecretBox {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)),
        }
    }

    /// Encrypts with a fresh random nonce, so equal plaintexts give different outputs.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), plaintext.as_bytes())
            .expect("AES-GCM fails only for inputs near 64 GiB; admin bodies are at most 1 MiB");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// Decrypts a value produced by [`SecretBox::encrypt`] under the same key.
    pub fn decrypt(&self, stored: &str) -> Result<String, SecretError> {
        let body = stored
            .strip_prefix(PREFIX)
            .ok_or(SecretError::NotEncrypted)?;
        let bytes = B64.decode(body).map_err(|_| SecretError::Malformed)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::Malformed)?;
        let plain = self
            .cipher
            .decrypt(&Nonce::from(nonce), sealed)
            .map_err(|_| SecretError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| SecretError::Malformed)
    }

    /// Whether `stored` has the form of an encrypted value (it may still fail to decrypt).
    pub fn is_encrypted(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
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
mod tests {
    use super::*;

    fn boxed(byte: u8) -> SecretBox {
        SecretBox::from_key([byte; 32])
    }

    #[test]
    fn round_trip() {
        let b = boxed(1);
        let sealed = b.encrypt("-----BEGIN PRIVATE KEY-----\nabc\n");
        assert!(SecretBox::is_encrypted(&sealed));
        // A long fragment: a short one like "abc" turns up in random base64 now and then.
        assert!(!sealed.contains("PRIVATE KEY"));
        assert_eq!(
            b.decrypt(&sealed).as_deref(),
            Ok("-----BEGIN PRIVATE KEY-----\nabc\n")
        );
        assert_eq!(b.decrypt(&b.encrypt("")).as_deref(), Ok(""));
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = boxed(1).encrypt("secret");
        assert_eq!(boxed(2).decrypt(&sealed), Err(SecretError::WrongKey));
    }

    #[test]
    fn tampering_fails() {
        let b = boxed(1);
        let sealed = b.encrypt("secret");
        let mut raw = B64.decode(&sealed[PREFIX.len()..]).expect("base64");
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let forged = format!("{PREFIX}{}", B64.encode(&raw));
        assert_eq!(b.decrypt(&forged), Err(SecretError::WrongKey));
        raw[last] ^= 1;
        raw[NONCE_LEN] ^= 0x80;
        let forged = format!("{PREFIX}{}", B64.encode(&raw));
        assert_eq!(b.decrypt(&forged), Err(SecretError::WrongKey));
        assert_eq!(b.decrypt("plain"), Err(SecretError::NotEncrypted));
        assert_eq!(b.decrypt("enc:v1:!!!"), Err(SecretError::Malformed));
        assert_eq!(b.decrypt("enc:v1:AAAA"), Err(SecretError::Malformed));
    }

    #[test]
    fn nonce_differs_per_call() {
        let b = boxed(1);
        let (x, y) = (b.encrypt("same"), b.encrypt("same"));
        assert_ne!(x, y);
        let nonce = |s: &str| B64.decode(&s[PREFIX.len()..]).expect("b64")[..NONCE_LEN].to_vec();
        assert_ne!(nonce(&x), nonce(&y));
    }

    #[test]
    fn errors_do_not_leak_the_value() {
        let sealed = boxed(1).encrypt("hunter2-hunter2");
        let err = boxed(2).decrypt(&sealed).expect_err("wrong key");
        assert!(!format!("{err} {err:?}").contains("hunter2"));
        assert_eq!(format!("{:?}", boxed(1)), "SecretBox(..)");
    }

    #[test]
    fn key_sources() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hex_key = "ab".repeat(32);
        assert!(SecretBox::from_sources(None, None).expect("none").is_none());
        let from_env = SecretBox::from_sources(None, Some(&hex_key))
            .expect("hex")
            .expect("some");
        let b64 = B64.encode([0xab; 32]);
        let from_b64 = SecretBox::from_sources(None, Some(&b64))
            .expect("b64")
            .expect("some");
        assert_eq!(from_b64.decrypt(&from_env.encrypt("x")).as_deref(), Ok("x"));
        assert!(SecretBox::from_sources(None, Some("abcd")).is_err());

        let path = dir.path().join("secret.key");
        ensure_key_file(&path).expect("generate");
        let first = std::fs::read_to_string(&path).expect("read");
        ensure_key_file(&path).expect("kept");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let from_file = SecretBox::from_sources(Some(&path), None)
            .expect("file")
            .expect("some");
        let again = SecretBox::from_sources(Some(&path), None)
            .expect("file")
            .expect("some");
        assert_eq!(again.decrypt(&from_file.encrypt("y")).as_deref(), Ok("y"));

        let err = SecretBox::from_sources(Some(&path), Some(&hex_key)).expect_err("both");
        assert!(err.downcast_ref::<ConfigError>().is_some());
        let err = SecretBox::from_sources(Some(&dir.path().join("missing")), None)
            .expect_err("missing file");
        assert!(err.downcast_ref::<ConfigError>().is_some(), "{err:#}");
        std::fs::write(dir.path().join("short"), "abc").expect("write");
        assert!(SecretBox::from_sources(Some(&dir.path().join("short")), None).is_err());
    }
}

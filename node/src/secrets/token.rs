//! The admin-token signing secret at rest. It is random bytes; when the node has a key
//! ring, the stored form is the ASCII of an `enc:v2:` value instead. A plaintext secret is
//! exactly 32 bytes and a sealed one far longer, so the two never look alike, and secrets
//! of clusters created before encryption (or without a key) keep working as they are.

use super::{SecretBox, SecretError, PREFIX_V1, PREFIX_V2};

/// The stored form of a fresh signing secret: encrypted when there is a key ring.
pub fn seal_token_secret(secrets: Option<&SecretBox>, raw: &[u8]) -> Vec<u8> {
    match secrets {
        Some(sb) => sb.encrypt_bytes(raw).into_bytes(),
        None => raw.to_vec(),
    }
}

/// Whether a stored signing secret is encrypted.
pub fn token_secret_is_sealed(stored: &[u8]) -> bool {
    stored.len() != 32
        && (stored.starts_with(PREFIX_V1.as_bytes()) || stored.starts_with(PREFIX_V2.as_bytes()))
}

/// The signing secret in the clear: decrypted when sealed, as stored otherwise.
pub fn open_token_secret(
    secrets: Option<&SecretBox>,
    stored: &[u8],
) -> Result<Vec<u8>, SecretError> {
    if !token_secret_is_sealed(stored) {
        return Ok(stored.to_vec());
    }
    let text = std::str::from_utf8(stored).map_err(|_| SecretError::Malformed)?;
    match secrets {
        Some(sb) => sb.decrypt_bytes(text),
        None => Err(SecretError::WrongKey),
    }
}

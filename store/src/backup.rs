//! Backup files: the whole replicated state as of one applied log index, behind a small
//! versioned header that lets a restore refuse a wrong, damaged or truncated file before
//! anything is proposed. Layout and guarantees: `docs/backup.md`.
//!
//! ```text
//! offset  size  field (integers big-endian)
//! 0       8     magic "RGBACKUP"
//! 8       2     file format version (1)
//! 10      1     cluster id length n (at most 255)
//! 11      n     cluster id, UTF-8
//! 11+n    8     applied log index
//! 19+n    8     applied log term
//! 27+n    8     created at, Unix milliseconds
//! 35+n    8     payload length p
//! 43+n    32    SHA-256 of bytes [0, 43+n) followed by the payload
//! 75+n    p     payload: the codec-encoded `StateImage` (its own format version byte first)
//! ```
//!
//! The checksum covers the header fields too, so a flipped bit anywhere (index, cluster
//! id, payload) is caught; a file must end exactly after the payload.

use sha2::{Digest, Sha256};

use crate::codec::{self, CodecError};
use crate::state::{State, StateImage};
use crate::types::LogId;

pub const MAGIC: [u8; 8] = *b"RGBACKUP";
/// The file layout written by this release (the payload carries its own codec version).
pub const FILE_VERSION: u16 = 1;
const CHECKSUM_LEN: usize = 32;

/// What a backup file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupHeader {
    pub cluster_id: String,
    /// Log index and term of the last entry the backed-up state includes.
    pub index: u64,
    pub term: u64,
    pub created_at_ms: u64,
    pub payload_len: u64,
    pub sha256: [u8; CHECKSUM_LEN],
}

impl BackupHeader {
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a Raftgate backup file (bad magic bytes)")]
    BadMagic,
    #[error("backup file format version {0} is not supported (this release reads version {FILE_VERSION})")]
    UnsupportedVersion(u16),
    #[error("backup file is truncated: {have} bytes, the header announces {need}")]
    Truncated { have: u64, need: u64 },
    #[error("backup file has {0} unexpected bytes after the payload")]
    Trailing(u64),
    #[error("backup file checksum mismatch: the file is damaged (expected {expected}, computed {actual})")]
    Checksum { expected: String, actual: String },
    #[error("backup header: cluster id is not valid UTF-8")]
    ClusterId,
    #[error("cluster id longer than 255 bytes cannot be written to a backup header")]
    ClusterIdTooLong,
    #[error("backup payload cannot be decoded: {0}")]
    Payload(#[from] CodecError),
}

/// The bytes before the checksum for `header` (checksum and payload not included).
fn header_fields(h: &BackupHeader) -> Result<Vec<u8>, BackupError> {
    let id = h.cluster_id.as_bytes();
    let id_len = u8::try_from(id.len()).map_err(|_| BackupError::ClusterIdTooLong)?;
    let mut out = Vec::with_capacity(43 + id.len() + CHECKSUM_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FILE_VERSION.to_be_bytes());
    out.push(id_len);
    out.extend_from_slice(id);
    for v in [h.index, h.term, h.created_at_ms, h.payload_len] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    Ok(out)
}

fn checksum(fields: &[u8], payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut hasher = Sha256::new();
    hasher.update(fields);
    hasher.update(payload);
    hasher.finalize().into()
}

/// Writes a complete backup file: header (with its checksum) and `payload`.
pub fn encode(
    cluster_id: &str,
    index: u64,
    term: u64,
    created_at_ms: u64,
    payload: &[u8],
) -> Result<(BackupHeader, Vec<u8>), BackupError> {
    let mut header = BackupHeader {
        cluster_id: cluster_id.to_string(),
        index,
        term,
        created_at_ms,
        payload_len: payload.len() as u64,
        sha256: [0; CHECKSUM_LEN],
    };
    let mut out = header_fields(&header)?;
    header.sha256 = checksum(&out, payload);
    out.extend_from_slice(&header.sha256);
    out.reserve(payload.len());
    out.extend_from_slice(payload);
    Ok((header, out))
}

/// Bounds-checked cursor over the file; a short read is [`BackupError::Truncated`].
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BackupError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(BackupError::Truncated {
            have: self.bytes.len() as u64,
            need: (self.pos as u64).saturating_add(n as u64),
        })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u64(&mut self) -> Result<u64, BackupError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
}

/// Parses and verifies a backup file: magic, version, exact length and checksum.
/// Returns the header and the (verified, still encoded) payload.
pub fn decode(bytes: &[u8]) -> Result<(BackupHeader, &[u8]), BackupError> {
    let mut r = Reader { bytes, pos: 0 };
    // A file shorter than the magic is not a backup at all, rather than a truncated one.
    if bytes.len() < MAGIC.len() || r.take(MAGIC.len())? != MAGIC {
        return Err(BackupError::BadMagic);
    }
    let mut v = [0u8; 2];
    v.copy_from_slice(r.take(2)?);
    let version = u16::from_be_bytes(v);
    if version != FILE_VERSION {
        return Err(BackupError::UnsupportedVersion(version));
    }
    let id_len = r.take(1)?[0] as usize;
    let cluster_id = std::str::from_utf8(r.take(id_len)?)
        .map_err(|_| BackupError::ClusterId)?
        .to_string();
    let (index, term, created_at_ms, payload_len) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
    let fields_end = r.pos;
    let mut sha256 = [0u8; CHECKSUM_LEN];
    sha256.copy_from_slice(r.take(CHECKSUM_LEN)?);
    let need = (r.pos as u64).saturating_add(payload_len);
    if (bytes.len() as u64) < need {
        return Err(BackupError::Truncated {
            have: bytes.len() as u64,
            need,
        });
    }
    if (bytes.len() as u64) > need {
        return Err(BackupError::Trailing(bytes.len() as u64 - need));
    }
    let payload = &bytes[r.pos..];
    let actual = checksum(&bytes[..fields_end], payload);
    if actual != sha256 {
        return Err(BackupError::Checksum {
            expected: hex::encode(sha256),
            actual: hex::encode(actual),
        });
    }
    let header = BackupHeader {
        cluster_id,
        index,
        term,
        created_at_ms,
        payload_len,
        sha256,
    };
    Ok((header, payload))
}

/// A backup file of `state` as of `applied` (the log id it was published at).
pub fn export(
    state: &State,
    applied: Option<LogId>,
    created_at_ms: u64,
) -> Result<(BackupHeader, Vec<u8>), BackupError> {
    let payload = codec::encode(&state.to_image())?;
    let cluster_id = state.cluster().map_or("", |c| c.cluster_id.as_str());
    let (index, term) = applied.map_or((0, 0), |l| (l.index, l.leader_id.term));
    encode(cluster_id, index, term, created_at_ms, &payload)
}

/// Verifies a backup file and decodes the state image it holds.
pub fn import(bytes: &[u8]) -> Result<(BackupHeader, StateImage), BackupError> {
    let (header, payload) = decode(bytes)?;
    let image = crate::state::decode_image(payload)?;
    Ok((header, image))
}

#[cfg(test)]
mod tests;

//! Versioned binary encoding for everything written to disk or sent between nodes.
//!
//! Every value is `[version byte][bincode 2 body]`. A later release that changes a type
//! bumps [`FORMAT_VERSION`] and keeps a decoder for the older byte, so it can still read
//! logs and snapshots written before the upgrade.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The format written by this release. Versions 1 and 2 were written only by development
/// builds before the first release (the model and snapshots grew since) and are not read.
/// Version 4 added the audit origin to `Command` and the revoked tokens and audit records
/// to `StateImage`; every other type is laid out as in version 3.
pub const FORMAT_VERSION: u8 = 4;
/// The previous release's format, still read from disk: see [`decode_stored`] and
/// [`decode_upgrading`] (the older layouts live in `crate::legacy`).
pub const V3: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty buffer: no format version byte")]
    Empty,
    #[error("unsupported format version {0} (this release reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

fn config() -> impl bincode::config::Config {
    // Bounded allocations: a corrupt or hostile length prefix cannot ask for more than this.
    bincode::config::standard().with_limit::<{ 256 * 1024 * 1024 }>()
}

/// Encodes `value` behind the current format version byte.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![FORMAT_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, config())?;
    Ok(out)
}

/// Decodes a value written by [`encode`], rejecting unknown versions and trailing garbage.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    match version {
        FORMAT_VERSION => decode_body(body),
        other => Err(CodecError::UnsupportedVersion(other)),
    }
}

/// Decodes a value read from disk whose type has the same layout in version 3 and the
/// current version (everything but `Command`, log entries and `StateImage`).
pub fn decode_stored<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        Some((&V3, body)) => decode_body(body),
        _ => decode(bytes),
    }
}

/// Decodes a value whose layout changed in version 4: version-3 bytes are read as `Old`
/// and converted. Network peers are not upgraded this way: they must run one release.
pub fn decode_upgrading<T, Old>(bytes: &[u8]) -> Result<T, CodecError>
where
    T: DeserializeOwned,
    Old: DeserializeOwned + Into<T>,
{
    match bytes.split_first() {
        Some((&V3, body)) => decode_body::<Old>(body).map(Into::into),
        _ => decode(bytes),
    }
}

/// Decodes a body under a limit that grows with its length. bincode checks a length
/// prefix against the limit before it allocates, and a valid body of `n` bytes never
/// claims more than `16 n` (the widest integer, a u128, takes at least one byte), so a
/// few hostile bytes cannot reserve more than a small multiple of themselves (found by
/// the `raft_decode` fuzz target: 11 bytes reserved 13 MB, up to 256 MiB was possible).
fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    fn limited<T: DeserializeOwned, const N: usize>(
        body: &[u8],
    ) -> Result<(T, usize), bincode::error::DecodeError> {
        bincode::serde::decode_from_slice(body, bincode::config::standard().with_limit::<N>())
    }
    let (value, read) = match body.len() {
        0..=4_096 => limited::<T, { 64 * 1024 }>(body)?,
        4_097..=65_536 => limited::<T, { 1024 * 1024 }>(body)?,
        65_537..=1_048_576 => limited::<T, { 16 * 1024 * 1024 }>(body)?,
        _ => bincode::serde::decode_from_slice(body, config())?,
    };
    if read != body.len() {
        return Err(CodecError::Trailing(body.len() - read));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_checks() {
        let v = (7u64, "x".to_string(), Some(vec![1u8, 2]));
        let bytes = encode(&v).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<(u64, String, Option<Vec<u8>>)>(&bytes).unwrap(), v);

        let mut wrong = bytes.clone();
        wrong[0] = 99;
        assert!(matches!(
            decode::<(u64, String, Option<Vec<u8>>)>(&wrong),
            Err(CodecError::UnsupportedVersion(99))
        ));
        assert!(matches!(decode::<u64>(&[]), Err(CodecError::Empty)));
        let mut trailing = bytes;
        trailing.push(0);
        assert!(matches!(
            decode::<(u64, String, Option<Vec<u8>>)>(&trailing),
            Err(CodecError::Trailing(1))
        ));
    }

    #[test]
    fn a_length_prefix_beyond_the_input_is_refused_before_allocating() {
        // A string claiming 0x00c4fcfc bytes (12.9 MB) in a 6-byte body.
        let hostile = [FORMAT_VERSION, 252, 0xfc, 0xfc, 0xc4, 0x00];
        assert!(matches!(
            decode::<String>(&hostile),
            Err(CodecError::Decode(
                bincode::error::DecodeError::LimitExceeded
            ))
        ));
        // The values that claim most for their size (one byte per u128, 16 claimed)
        // still decode at both edges of every size class of the limit.
        for n in [1usize, 4_093, 4_094, 65_533, 65_534, 1_048_571, 1_048_572] {
            let v: Vec<u128> = vec![7; n];
            let bytes = encode(&v).unwrap();
            assert_eq!(decode::<Vec<u128>>(&bytes).unwrap(), v, "{n} values");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for len in 0..64usize {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let mut b = vec![FORMAT_VERSION];
            b.extend(junk);
            let _ = decode::<(String, Vec<String>)>(&b);
        }
    }
}

//! Versioned binary encoding for everything written to disk or sent between nodes.
//!
//! Every value is `[version byte][bincode 2 body]`. A later release that changes a type
//! bumps [`FORMAT_VERSION`] and keeps a decoder for the older byte, so it can still read
//! logs and snapshots written before the upgrade.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The format written by this release. Versions 1 and 2 were written only by development
/// builds before the first release (the model and snapshots grew since) and are not read.
pub const FORMAT_VERSION: u8 = 3;

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
        FORMAT_VERSION => {
            let (value, read) = bincode::serde::decode_from_slice(body, config())?;
            if read != body.len() {
                return Err(CodecError::Trailing(body.len() - read));
            }
            Ok(value)
        }
        other => Err(CodecError::UnsupportedVersion(other)),
    }
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
    fn garbage_is_an_error_not_a_panic() {
        for len in 0..64usize {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let mut b = vec![FORMAT_VERSION];
            b.extend(junk);
            let _ = decode::<(String, Vec<String>)>(&b);
        }
    }
}

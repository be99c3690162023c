//! The backup file: round trip, and every way a damaged file is refused.

use super::*;
use crate::command::{Command, Op};
use crate::model::{Kind, Resource, Tenant};

fn sample_state() -> State {
    let mut s = State::default();
    let ops = [
        Op::InitCluster {
            cluster_id: "c-123".into(),
            token_secret: vec![7; 32],
        },
        Op::Create(Resource::Tenant(Tenant {
            id: "acme".into(),
            name: "Acme".into(),
            description: String::new(),
            labels: Default::default(),
            guardrails: None,
        })),
    ];
    for (i, op) in ops.into_iter().enumerate() {
        let cmd = Command {
            at_ms: 1_700_000_000_000,
            actor: "test".into(),
            op,
            origin: None,
        };
        s.apply(i as u64 + 1, &cmd, &mut Vec::new())
            .expect("applies");
    }
    s
}

fn sample_file() -> (BackupHeader, Vec<u8>) {
    let applied = LogId::new(openraft::CommittedLeaderId::new(3, 1), 42);
    export(&sample_state(), Some(applied), 1_700_000_123_456).expect("export")
}

#[test]
fn header_round_trips_and_the_payload_is_the_state() {
    let (header, bytes) = sample_file();
    assert_eq!(&bytes[..8], b"RGBACKUP");
    assert_eq!(header.cluster_id, "c-123");
    assert_eq!((header.index, header.term), (42, 3));
    assert_eq!(header.created_at_ms, 1_700_000_123_456);
    let (decoded, image) = import(&bytes).expect("import");
    assert_eq!(decoded, header);
    assert_eq!(image, sample_state().to_image());
    assert!(image
        .resources
        .iter()
        .any(|s| s.resource.kind() == Kind::Tenant));
    // The printed checksum is the SHA-256 of the header fields and the payload.
    let fields_len = 43 + "c-123".len();
    let mut h = Sha256::new();
    h.update(&bytes[..fields_len]);
    h.update(&bytes[fields_len + 32..]);
    assert_eq!(hex::encode(h.finalize()), header.sha256_hex());
}

#[test]
fn any_flipped_byte_is_refused() {
    let (_, bytes) = sample_file();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        assert!(decode(&bad).is_err(), "a flip at byte {i} went unnoticed");
    }
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x80;
    assert!(matches!(decode(&bad), Err(BackupError::Checksum { .. })));
}

#[test]
fn magic_version_truncation_and_trailing_bytes() {
    let (_, bytes) = sample_file();
    assert!(matches!(decode(b""), Err(BackupError::BadMagic)));
    assert!(matches!(
        decode(b"{\"json\":1}"),
        Err(BackupError::BadMagic)
    ));
    let mut v2 = bytes.clone();
    v2[9] = 2;
    assert!(matches!(
        decode(&v2),
        Err(BackupError::UnsupportedVersion(2))
    ));
    for cut in [9, 11, 30, bytes.len() - 100, bytes.len() - 1] {
        assert!(
            matches!(decode(&bytes[..cut]), Err(BackupError::Truncated { .. })),
            "cut at {cut}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(decode(&long), Err(BackupError::Trailing(1))));
    // A payload length that overflows is a truncation, not a panic.
    let mut huge = bytes;
    let len_at = 11 + "c-123".len() + 24;
    huge[len_at..len_at + 8].copy_from_slice(&u64::MAX.to_be_bytes());
    assert!(matches!(decode(&huge), Err(BackupError::Truncated { .. })));
}

#[test]
fn a_valid_file_with_a_foreign_payload_is_a_payload_error() {
    let (_, bytes) = encode("c", 1, 1, 1, b"\x03not bincode of a state").expect("encode");
    assert!(matches!(import(&bytes), Err(BackupError::Payload(_))));
    let long_id = "x".repeat(256);
    assert!(matches!(
        encode(&long_id, 1, 1, 1, b""),
        Err(BackupError::ClusterIdTooLong)
    ));
}

use super::*;
use raftgate_store::model::Kind;
use raftgate_store::{Command, Op};

const TOKEN: [u8; 32] = [0x42; 32];

fn apply(state: &mut State, rev: u64, op: Op) -> Result<(), raftgate_store::ApplyError> {
    state
        .apply(rev, &Command::new("test", op), &mut Vec::new())
        .map(|_| ())
}

fn res(kind: Kind, body: serde_json::Value) -> Resource {
    Resource::from_json(kind, body).expect("resource")
}

/// A state as an older release with key `old` left it: the signing secret and a jwt
/// secret in the clear, a provider key in `enc:v1:`, a certificate key under `old`.
fn legacy_state(old: &SecretBox) -> (State, String) {
    let mut st = State::default();
    apply(
        &mut st,
        1,
        Op::InitCluster {
            cluster_id: "c".into(),
            token_secret: TOKEN.to_vec(),
        },
    )
    .expect("init");
    let v1 = crate::secrets::tests_support::v1(old, "sk-provider-secret");
    let c = rcgen::generate_simple_self_signed(vec!["a.example.com".into()]).expect("rcgen");
    let key_pem = c.key_pair.serialize_pem();
    let ops = vec![
        Op::Create(res(
            Kind::Upstream,
            serde_json::json!({"id": "u", "targets": [{"address": "127.0.0.1:1", "weight": 1}]}),
        )),
        Op::Create(res(
            Kind::Provider,
            serde_json::json!({"id": "p", "type": "mock", "api_key": v1}),
        )),
        Op::Create(res(
            Kind::Certificate,
            serde_json::json!({"id": "cert", "snis": ["a.example.com"], "cert_pem": c.cert.pem(),
                "key_pem": old.encrypt(&key_pem)}),
        )),
        Op::Create(res(
            Kind::Route,
            serde_json::json!({"id": "r", "path": "/", "target": {"upstream": "u"},
                "policies": [{"key_auth": {}},
                    {"jwt_auth": {"algorithm": "HS256", "secret": "jwt-secret-in-the-clear"}}]}),
        )),
    ];
    for (i, op) in ops.into_iter().enumerate() {
        apply(&mut st, 2 + i as u64, op).expect("create");
    }
    (st, key_pem)
}

#[test]
fn census_rotation_and_compare_and_swap() {
    let old = SecretBox::from_key([1; 32]);
    let (mut st, key_pem) = legacy_state(&old);
    let ring = SecretBox::from_key([2; 32]).with_previous(&[[1; 32]]);

    let before = census(Some(&ring), &st);
    assert_eq!(before.total, 4);
    assert_eq!(before.plaintext, 2, "{before:?}");
    assert_eq!(before.legacy_v1, 1);
    assert_eq!(before.by_key.get(old.key_id()), Some(&2));
    assert_eq!((before.unreadable, before.not_current), (0, 4));
    // Without the old key the encrypted values are unreadable, and nothing rotates.
    let new_only = SecretBox::from_key([2; 32]);
    let blind = census(Some(&new_only), &st);
    assert_eq!((blind.unreadable, blind.plaintext), (2, 2), "{blind:?}");
    let refused = rotation(&new_only, &st).expect_err("unreadable values");
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().all(|m| !m.contains("sk-provider")));

    let swaps = rotation(&ring, &st).expect("all readable");
    assert_eq!(swaps.len(), 4);
    apply(&mut st, 10, Op::Reencrypt(swaps.clone())).expect("rotated");
    let after = census(Some(&new_only), &st);
    assert_eq!(after.by_key.get(ring.key_id()), Some(&4), "{after:?}");
    assert_eq!(
        (after.plaintext, after.not_current, after.unreadable),
        (0, 0, 0)
    );
    assert!(rotation(&new_only, &st).expect("nothing to do").is_empty());
    // Every value still opens to what it was, with the new key alone.
    let plain: Vec<Vec<u8>> = stored_secrets(&st)
        .iter()
        .map(|(slot, v)| open(Some(&new_only), slot, v).expect("opens"))
        .collect();
    assert_eq!(
        plain,
        vec![
            TOKEN.to_vec(),
            b"sk-provider-secret".to_vec(),
            key_pem.into_bytes(),
            b"jwt-secret-in-the-clear".to_vec(),
        ]
    );
    // A stale rotation (values changed since it read them) changes nothing.
    let snapshot = st.clone();
    let err = apply(&mut st, 11, Op::Reencrypt(swaps)).expect_err("stale");
    assert_eq!(err.code(), "conflict");
    assert_eq!(st.cluster(), snapshot.cluster());
    assert_eq!(
        st.get(Kind::Provider, "p").map(|s| &s.resource),
        snapshot.get(Kind::Provider, "p").map(|s| &s.resource)
    );
    // Inside a batch it is refused too.
    let err = apply(&mut st, 12, Op::Batch(vec![Op::Reencrypt(Vec::new())])).expect_err("batch");
    assert_eq!(err.code(), "conflict");
}

#[test]
fn jwt_rules_open_for_the_data_plane() {
    let sb = SecretBox::from_key([3; 32]);
    let jwt = |secret: &str| JwtAuth {
        algorithm: raftgate_store::model::JwtAlgorithm::Hs256,
        secret: Some(secret.into()),
        public_key_pem: None,
        issuer: None,
        audience: None,
        consumer_claim: "sub".into(),
        leeway_s: 0,
    };
    let sealed = jwt(&sb.encrypt("jwt-secret-0123456789"));
    assert_eq!(
        open_jwt(&sealed, Some(&sb))
            .expect("opens")
            .secret
            .as_deref(),
        Some("jwt-secret-0123456789")
    );
    let err = open_jwt(&sealed, None).expect_err("no key");
    assert!(!err.contains("jwt-secret"));
    assert!(open_jwt(&sealed, Some(&SecretBox::from_key([4; 32]))).is_err());
    // Legacy plaintext secrets keep working.
    let clear = jwt("jwt-secret-0123456789");
    assert_eq!(open_jwt(&clear, None).expect("as is"), clear);
}

#[test]
fn seal_image_encrypts_plaintext_secrets_of_old_backups() {
    let old = SecretBox::from_key([1; 32]);
    let (st, _) = legacy_state(&old);
    let mut image = st.to_image();
    let sb = SecretBox::from_key([5; 32]).with_previous(&[[1; 32]]);
    seal_image(&sb, &mut image);
    let sealed = State::from_image(image);
    let c = census(Some(&sb), &sealed);
    assert_eq!(c.plaintext, 0, "{c:?}");
    let token = sealed.cluster().expect("cluster").token_secret.clone();
    assert_eq!(
        open(Some(&sb), &SecretSlot::TokenSecret, &token),
        Ok(TOKEN.to_vec())
    );
}

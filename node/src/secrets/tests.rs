use super::tests_support::v1;
use super::*;

fn boxed(byte: u8) -> SecretBox {
    SecretBox::from_key([byte; 32])
}

fn body(sealed: &str) -> &str {
    sealed.rsplit(':').next().expect("a body")
}

#[test]
fn round_trip() {
    let b = boxed(1);
    let sealed = b.encrypt("-----BEGIN PRIVATE KEY-----\nabc\n");
    assert!(SecretBox::is_encrypted(&sealed));
    assert!(
        sealed.starts_with(&format!("enc:v2:{}:", b.key_id())),
        "{sealed}"
    );
    // A long fragment: a short one like "abc" turns up in random base64 now and then.
    assert!(!sealed.contains("PRIVATE KEY"));
    assert_eq!(
        b.decrypt(&sealed).as_deref(),
        Ok("-----BEGIN PRIVATE KEY-----\nabc\n")
    );
    assert_eq!(b.decrypt(&b.encrypt("")).as_deref(), Ok(""));
    assert!(b.is_current(&sealed));
    assert_eq!(b.key_of(&sealed), Ok(b.key_id()));
}

#[test]
fn key_ids_are_short_stable_and_distinct() {
    assert_eq!(key_id(&[1; 32]), boxed(1).key_id());
    assert_eq!(key_id(&[1; 32]).len(), KID_LEN);
    assert_ne!(key_id(&[1; 32]), key_id(&[2; 32]));
    // Not the plain SHA-256 of the key.
    assert!(!hex::encode(Sha256::digest([1u8; 32])).starts_with(&key_id(&[1; 32])));
}

#[test]
fn ring_decrypts_old_values_and_encrypts_with_the_current_key() {
    let old = boxed(1);
    let ring = SecretBox::from_key([2; 32]).with_previous(&[[1; 32], [1; 32], [2; 32]]);
    assert_eq!(ring.previous_key_ids(), vec![old.key_id()], "deduplicated");
    let under_old = old.encrypt("sk-old");
    assert_eq!(ring.decrypt(&under_old).as_deref(), Ok("sk-old"));
    assert_eq!(ring.key_of(&under_old), Ok(old.key_id()));
    assert!(!ring.is_current(&under_old));
    let fresh = ring.encrypt("sk-new");
    assert!(ring.is_current(&fresh));
    // The old key alone cannot read what the new key wrote, and says which key it needs.
    assert_eq!(
        old.decrypt(&fresh),
        Err(SecretError::UnknownKey(ring.key_id().to_string()))
    );
    // Legacy v1 values open with whichever key of the ring wrote them.
    let legacy = v1(&old, "sk-legacy");
    assert_eq!(ring.decrypt(&legacy).as_deref(), Ok("sk-legacy"));
    assert_eq!(ring.key_of(&legacy), Ok(old.key_id()));
    assert!(!ring.is_current(&legacy));
    assert_eq!(boxed(3).decrypt(&legacy), Err(SecretError::WrongKey));
}

#[test]
fn opened_secrets_answer_as_the_ring_does() {
    let (b, other) = (boxed(1), boxed(2));
    let opened = OpenedSecrets::default();
    let (s1, s2) = (b.encrypt("sk-one"), b.encrypt("sk-two"));
    for _ in 0..2 {
        assert_eq!(opened.open(&b, &s1).as_deref(), Ok("sk-one"));
        assert_eq!(opened.open(&b, &s2).as_deref(), Ok("sk-two"));
    }
    // What the ring cannot open is an error every time, and never kept.
    let foreign = other.encrypt("sk-three");
    for _ in 0..2 {
        assert!(opened.open(&b, &foreign).is_err());
    }
    assert_eq!(opened.open(&other, &foreign).as_deref(), Ok("sk-three"));
    // Full: emptied, and still right.
    for i in 0..OpenedSecrets::MAX + 5 {
        let v = format!("k{i}");
        assert_eq!(opened.open(&b, &b.encrypt(&v)), Ok(v));
    }
    assert!(opened.0.lock().unwrap().len() <= OpenedSecrets::MAX);
    assert_eq!(opened.open(&b, &s1).as_deref(), Ok("sk-one"));
}

#[test]
fn wrong_key_fails() {
    let sealed = boxed(1).encrypt("secret");
    // Same key id cannot happen for another key; forge one to check the AEAD still refuses.
    let forged = sealed.replace(boxed(1).key_id(), boxed(2).key_id());
    assert_eq!(boxed(2).decrypt(&forged), Err(SecretError::WrongKey));
}

#[test]
fn tampering_fails() {
    let b = boxed(1);
    let sealed = b.encrypt("secret");
    let header = &sealed[..sealed.len() - body(&sealed).len()];
    let mut raw = B64.decode(body(&sealed)).expect("base64");
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let forged = format!("{header}{}", B64.encode(&raw));
    assert_eq!(b.decrypt(&forged), Err(SecretError::WrongKey));
    raw[last] ^= 1;
    raw[NONCE_LEN] ^= 0x80;
    let forged = format!("{header}{}", B64.encode(&raw));
    assert_eq!(b.decrypt(&forged), Err(SecretError::WrongKey));
    // The header is authenticated: a v2 body relabelled as v1 does not open.
    raw[NONCE_LEN] ^= 0x80;
    let relabelled = format!("{PREFIX_V1}{}", B64.encode(&raw));
    assert_eq!(b.decrypt(&relabelled), Err(SecretError::WrongKey));
    assert_eq!(b.decrypt("plain"), Err(SecretError::NotEncrypted));
    assert_eq!(b.decrypt("enc:v1:!!!"), Err(SecretError::Malformed));
    assert_eq!(b.decrypt("enc:v1:AAAA"), Err(SecretError::Malformed));
    assert_eq!(b.decrypt("enc:v2:AAAA"), Err(SecretError::Malformed));
    assert_eq!(b.decrypt("enc:v2:short:AAAA"), Err(SecretError::Malformed));
    assert_eq!(
        b.decrypt(&format!("{header}!!!")),
        Err(SecretError::Malformed)
    );
}

#[test]
fn nonce_differs_per_call() {
    let b = boxed(1);
    let (x, y) = (b.encrypt("same"), b.encrypt("same"));
    assert_ne!(x, y);
    let nonce = |s: &str| B64.decode(body(s)).expect("b64")[..NONCE_LEN].to_vec();
    assert_ne!(nonce(&x), nonce(&y));
}

#[test]
fn errors_do_not_leak_the_value() {
    let sealed = boxed(1).encrypt("hunter2-hunter2");
    let forged = sealed.replace(boxed(1).key_id(), boxed(2).key_id());
    for err in [
        boxed(2).decrypt(&sealed).expect_err("unknown key"),
        boxed(2).decrypt(&forged).expect_err("wrong key"),
    ] {
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }
    assert_eq!(format!("{:?}", boxed(1)), "SecretBox(..)");
}

#[test]
fn token_secret_sealing() {
    let raw = [0x5a; 32];
    assert_eq!(seal_token_secret(None, &raw), raw.to_vec());
    assert!(!token_secret_is_sealed(&raw));
    assert_eq!(open_token_secret(None, &raw), Ok(raw.to_vec()));
    // A 32-byte plaintext that happens to start like a sealed value is still plaintext.
    let tricky = *b"enc:v2:0123456789abcdef012345678";
    assert!(!token_secret_is_sealed(&tricky));

    let ring = boxed(1);
    let sealed = seal_token_secret(Some(&ring), &raw);
    assert!(token_secret_is_sealed(&sealed));
    assert!(!sealed.windows(raw.len()).any(|w| w == raw));
    assert_eq!(open_token_secret(Some(&ring), &sealed), Ok(raw.to_vec()));
    assert_eq!(open_token_secret(None, &sealed), Err(SecretError::WrongKey));
    let rotated = SecretBox::from_key([2; 32]).with_previous(&[[1; 32]]);
    assert_eq!(open_token_secret(Some(&rotated), &sealed), Ok(raw.to_vec()));
    assert!(open_token_secret(Some(&boxed(3)), &sealed).is_err());
}

#[test]
fn key_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hex_key = "ab".repeat(32);
    let none: &[PathBuf] = &[];
    assert!(SecretBox::from_sources(None, None, none, None)
        .expect("none")
        .is_none());
    let from_env = SecretBox::from_sources(None, Some(&hex_key), none, None)
        .expect("hex")
        .expect("some");
    let b64 = B64.encode([0xab; 32]);
    let from_b64 = SecretBox::from_sources(None, Some(&b64), none, None)
        .expect("b64")
        .expect("some");
    assert_eq!(from_b64.decrypt(&from_env.encrypt("x")).as_deref(), Ok("x"));
    assert!(SecretBox::from_sources(None, Some("abcd"), none, None).is_err());

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
    let from_file = SecretBox::from_sources(Some(&path), None, none, None)
        .expect("file")
        .expect("some");
    let again = SecretBox::from_sources(Some(&path), None, none, None)
        .expect("file")
        .expect("some");
    assert_eq!(again.decrypt(&from_file.encrypt("y")).as_deref(), Ok("y"));

    // Previous keys from files and from the environment.
    let ring = SecretBox::from_sources(
        None,
        Some(&"cd".repeat(32)),
        std::slice::from_ref(&path),
        Some(&format!(" {hex_key} ,")),
    )
    .expect("ring")
    .expect("some");
    assert_eq!(ring.previous_key_ids().len(), 2);
    assert_eq!(ring.decrypt(&from_file.encrypt("f")).as_deref(), Ok("f"));
    assert_eq!(ring.decrypt(&from_env.encrypt("e")).as_deref(), Ok("e"));
    assert!(ring.is_current(&ring.encrypt("n")));

    let config_err = |r: anyhow::Result<Option<SecretBox>>| {
        let err = r.expect_err("refused");
        assert!(err.downcast_ref::<ConfigError>().is_some(), "{err:#}");
    };
    config_err(SecretBox::from_sources(
        Some(&path),
        Some(&hex_key),
        none,
        None,
    ));
    config_err(SecretBox::from_sources(
        Some(&dir.path().join("missing")),
        None,
        none,
        None,
    ));
    config_err(SecretBox::from_sources(
        None,
        None,
        std::slice::from_ref(&path),
        None,
    ));
    config_err(SecretBox::from_sources(None, None, none, Some(&hex_key)));
    config_err(SecretBox::from_sources(
        None,
        Some(&hex_key),
        none,
        Some("not-a-key"),
    ));
    std::fs::write(dir.path().join("short"), "abc").expect("write");
    assert!(SecretBox::from_sources(Some(&dir.path().join("short")), None, none, None).is_err());
}

#[test]
fn serve_needs_a_key_unless_insecure() {
    let mut cfg = NodeConfig {
        insecure: false,
        ..NodeConfig::default()
    };
    let err = check_policy(&cfg, None).expect_err("no key");
    assert_eq!(err.key, "secret_key_file");
    assert!(check_policy(&cfg, Some(&boxed(1))).is_ok());
    cfg.insecure = true;
    assert!(check_policy(&cfg, None).is_ok());
}

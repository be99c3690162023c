//! Write-only fields on their way in: a `<redacted>` placeholder sent back on update keeps
//! the stored secret (provider `api_key`, jwt_auth `secret`, certificate `key_pem`), and a
//! certificate's key is checked against its certificate, then encrypted before it is
//! proposed, so it never enters the Raft log in the clear.

use axum::http::StatusCode;
use raftgate_store::model::{Certificate, Kind, Policy, Resource, REDACTED};
use raftgate_store::ApplyError;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::ApiError;
use crate::secrets::{SecretBox, SecretError};

fn invalid(kind: Kind, id: &str, field: &str, message: impl Into<String>) -> ApiError {
    ApplyError::Invalid {
        kind,
        id: id.to_string(),
        field: field.to_string(),
        message: message.into(),
    }
    .into()
}

fn placeholder_on_create(kind: Kind, id: &str, field: &str) -> ApiError {
    invalid(
        kind,
        id,
        field,
        format!("'{REDACTED}' keeps the stored value on update only; send the secret"),
    )
}

/// Prepares `res` for proposing: resolves redacted placeholders against `old` (the stored
/// resource on update, `None` on create) and encrypts certificate keys.
pub fn prepare(
    secrets: Option<&SecretBox>,
    res: &mut Resource,
    old: Option<&Resource>,
) -> Result<(), ApiError> {
    match res {
        Resource::Provider(new) if new.api_key.as_deref() == Some(REDACTED) => match old {
            Some(Resource::Provider(o)) => new.api_key = o.api_key.clone(),
            _ => return Err(placeholder_on_create(Kind::Provider, &new.id, "api_key")),
        },
        Resource::Provider(new) => {
            if let Some(key) = new.api_key.as_deref() {
                new.api_key = Some(provider_key(secrets, &new.id, key)?);
            }
        }
        Resource::Route(new) => {
            let old_policies = match old {
                Some(Resource::Route(o)) => o.policies.as_slice(),
                _ => &[],
            };
            for (i, p) in new.policies.iter_mut().enumerate() {
                let Policy::JwtAuth(jwt) = p else { continue };
                if jwt.secret.as_deref() != Some(REDACTED) {
                    if jwt.secret.as_deref().is_some_and(SecretBox::is_encrypted) {
                        return Err(invalid(
                            Kind::Route,
                            &new.id,
                            "policies.jwt_auth.secret",
                            "send the secret; encrypted 'enc:' values are made by the gateway",
                        ));
                    }
                    continue;
                }
                // Matched by position: the policy at the same index must be a jwt_auth.
                match old_policies.get(i) {
                    Some(Policy::JwtAuth(o)) if o.secret.is_some() => jwt.secret = o.secret.clone(),
                    _ => {
                        return Err(invalid(
                            Kind::Route,
                            &new.id,
                            "policies.jwt_auth.secret",
                            format!(
                                "'{REDACTED}' keeps the stored secret only when the stored route \
                                 has a jwt_auth policy with a secret at the same position ({i})"
                            ),
                        ))
                    }
                }
            }
            jwt_secrets(secrets, res)?;
        }
        Resource::Certificate(new) => {
            let old = match old {
                Some(Resource::Certificate(o)) => Some(o),
                _ => None,
            };
            certificate(secrets, new, old)?;
        }
        _ => {}
    }
    Ok(())
}

/// Encrypts the route's plaintext jwt_auth secrets (kept ones are already encrypted),
/// after checking the route with its plaintext: apply sees only the ciphertext.
fn jwt_secrets(secrets: Option<&SecretBox>, res: &mut Resource) -> Result<(), ApiError> {
    let Resource::Route(route) = &*res else {
        return Ok(());
    };
    let plain = |p: &Policy| match p {
        Policy::JwtAuth(j) => j
            .secret
            .as_deref()
            .is_some_and(|s| !SecretBox::is_encrypted(s)),
        _ => false,
    };
    if !route.policies.iter().any(plain) {
        return Ok(());
    }
    let Some(secrets) = secrets else {
        return Err(missing_key("jwt_auth secrets"));
    };
    raftgate_store::validate::validate(res)?;
    let Resource::Route(route) = res else {
        return Ok(());
    };
    for p in route.policies.iter_mut() {
        if let Policy::JwtAuth(j) = p {
            if let Some(s) = j.secret.as_mut() {
                if !SecretBox::is_encrypted(s) {
                    *s = secrets.encrypt(s);
                }
            }
        }
    }
    Ok(())
}

/// The refusal of a secret write on a node without a key ring.
fn missing_key(what: &str) -> ApiError {
    ApiError::bad_request(
        "secret_key_missing",
        format!(
            "{what} are encrypted before they are replicated: set secret_key_file in the node \
             config (or --secret-key-file / RAFTGATE_SECRET_KEY_FILE, or the key itself in \
             RAFTGATE_SECRET_KEY) on every node, with the same 32-byte key"
        ),
    )
}

/// A provider's API key as it enters the log: encrypted under the node's secret key.
fn provider_key(secrets: Option<&SecretBox>, id: &str, key: &str) -> Result<String, ApiError> {
    if SecretBox::is_encrypted(key) {
        return Err(invalid(
            Kind::Provider,
            id,
            "api_key",
            "send the provider's key; encrypted 'enc:' values are made by the gateway",
        ));
    }
    let secrets = secrets.ok_or_else(|| missing_key("provider API keys"))?;
    Ok(secrets.encrypt(key))
}

/// Checks that `cert_pem` and `key_pem` parse and belong together, then replaces the key
/// with its encryption.
pub fn certificate(
    secrets: Option<&SecretBox>,
    new: &mut Certificate,
    old: Option<&Certificate>,
) -> Result<(), ApiError> {
    let secrets = secrets.ok_or_else(|| missing_key("certificate private keys"))?;
    let id = new.id.clone();
    let (plaintext, stored) = if new.key_pem == REDACTED {
        let old = old.ok_or_else(|| placeholder_on_create(Kind::Certificate, &id, "key_pem"))?;
        match secrets.decrypt(&old.key_pem) {
            Ok(plain) => (plain, old.key_pem.clone()),
            Err(SecretError::NotEncrypted) => (old.key_pem.clone(), secrets.encrypt(&old.key_pem)),
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "secret_key_mismatch",
                    format!(
                        "the stored key of certificate '{id}' cannot be used ({e}); every node \
                         needs the same secret key. Send key_pem again to replace it"
                    ),
                ))
            }
        }
    } else if SecretBox::is_encrypted(&new.key_pem) {
        return Err(invalid(
            Kind::Certificate,
            &id,
            "key_pem",
            "send the PEM private key; encrypted 'enc:' values are made by the gateway",
        ));
    } else {
        (new.key_pem.clone(), secrets.encrypt(&new.key_pem))
    };
    check_pair(&id, &new.cert_pem, &plaintext)?;
    new.key_pem = stored;
    Ok(())
}

/// The chain parses, the key parses and is supported, and it is the leaf's key.
fn check_pair(id: &str, cert_pem: &str, key_pem: &str) -> Result<(), ApiError> {
    let bad = |field: &str, m: String| invalid(Kind::Certificate, id, field, m);
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("cert_pem", format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(bad("cert_pem", "holds no CERTIFICATE block".into()));
    }
    // Parse errors of the key are not echoed: they could quote key material.
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| {
        bad(
            "key_pem",
            "not a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)".into(),
        )
    })?;
    let signer = any_supported_type(&key).map_err(|_| {
        bad(
            "key_pem",
            "unsupported or corrupt private key (RSA, ECDSA P-256/P-384, Ed25519 are supported)"
                .into(),
        )
    })?;
    match CertifiedKey::new(certs, signer).keys_match() {
        Ok(()) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(bad(
            "key_pem",
            "does not match the leaf certificate (the first one in cert_pem)".into(),
        )),
        // The key cannot tell its public half: nothing to compare, accept like rustls does.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(e) => Err(bad(
            "cert_pem",
            format!("the leaf certificate cannot be parsed: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pair {
        cert: String,
        key: String,
    }

    fn pair(name: &str) -> Pair {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
        Pair {
            cert: c.cert.pem(),
            key: c.key_pair.serialize_pem(),
        }
    }

    fn cert(p: &Pair) -> Certificate {
        Certificate {
            id: "c".into(),
            snis: vec!["example.com".into()],
            cert_pem: p.cert.clone(),
            key_pem: p.key.clone(),
        }
    }

    fn field_of(e: &ApiError) -> &str {
        // "invalid certificate 'c': FIELD: message"
        e.message.split(": ").nth(1).unwrap_or_default()
    }

    #[test]
    fn redacted_provider_key_and_jwt_secret_are_kept() {
        use raftgate_store::model::{JwtAlgorithm, JwtAuth, KeyAuth};
        let provider = |key: &str| {
            Resource::from_json(
                Kind::Provider,
                serde_json::json!({"id": "p", "type": "mock", "api_key": key}),
            )
            .expect("provider")
        };
        let old = provider("sk-real");
        let mut new = provider(REDACTED);
        prepare(None, &mut new, Some(&old)).expect("update");
        assert_eq!(new, old);
        let e = prepare(None, &mut provider(REDACTED), None).expect_err("create");
        assert_eq!(field_of(&e), "api_key");
        // A new key is encrypted before it is proposed, and refused without a secret key.
        let e = prepare(None, &mut provider("sk-new"), None).expect_err("no secret key");
        assert_eq!(e.code, "secret_key_missing");
        let sb = SecretBox::from_key([7; 32]);
        let mut fresh = provider("sk-new");
        prepare(Some(&sb), &mut fresh, None).expect("encrypted");
        let Resource::Provider(p) = &fresh else {
            unreachable!()
        };
        let stored = p.api_key.clone().expect("a key");
        assert!(SecretBox::is_encrypted(&stored) && !stored.contains("sk-new"));
        assert_eq!(sb.decrypt(&stored).expect("decrypts"), "sk-new");
        assert!(prepare(Some(&sb), &mut provider(&stored), None).is_err());

        let jwt = |secret: &str| {
            Policy::JwtAuth(JwtAuth {
                algorithm: JwtAlgorithm::Hs256,
                secret: Some(secret.into()),
                public_key_pem: None,
                issuer: None,
                audience: None,
                consumer_claim: "sub".into(),
                leeway_s: 30,
            })
        };
        let route = |policies: Vec<Policy>| {
            let mut r = Resource::from_json(
                Kind::Route,
                serde_json::json!({"id": "r", "path": "/", "target": {"upstream": "u"}}),
            )
            .expect("route");
            if let Resource::Route(rt) = &mut r {
                rt.policies = policies;
            }
            r
        };
        let key_auth = || Policy::KeyAuth(KeyAuth::default());
        let jwt_secret = |r: &Resource| match r {
            Resource::Route(rt) => rt.policies.iter().find_map(|p| match p {
                Policy::JwtAuth(j) => j.secret.clone(),
                _ => None,
            }),
            _ => None,
        };
        // A new jwt secret is checked in the clear, then encrypted; refused without a key.
        let mut fresh = route(vec![key_auth(), jwt("0123456789abcdef-old")]);
        let e = prepare(None, &mut fresh, None).expect_err("no secret key");
        assert_eq!(e.code, "secret_key_missing");
        prepare(Some(&sb), &mut fresh, None).expect("encrypted");
        let sealed = jwt_secret(&fresh).expect("a secret");
        assert!(sealed.starts_with("enc:v2:") && !sealed.contains("abcdef-old"));
        assert_eq!(sb.decrypt(&sealed).as_deref(), Ok("0123456789abcdef-old"));
        let e = prepare(Some(&sb), &mut route(vec![jwt("short")]), None).expect_err("short");
        assert_eq!(field_of(&e), "policies.jwt_auth.secret");
        let e = prepare(Some(&sb), &mut route(vec![jwt(&sealed)]), None).expect_err("sent sealed");
        assert_eq!(field_of(&e), "policies.jwt_auth.secret");
        let old = fresh;
        let mut new = route(vec![key_auth(), jwt(REDACTED)]);
        prepare(None, &mut new, Some(&old)).expect("same position, no key needed");
        assert_eq!(new, old);
        // A secret stored in the clear before encryption existed is encrypted when kept.
        let legacy = route(vec![key_auth(), jwt("0123456789abcdef-legacy")]);
        let mut kept = route(vec![key_auth(), jwt(REDACTED)]);
        prepare(Some(&sb), &mut kept, Some(&legacy)).expect("kept");
        let sealed = jwt_secret(&kept).expect("a secret");
        assert_eq!(
            sb.decrypt(&sealed).as_deref(),
            Ok("0123456789abcdef-legacy")
        );
        // Moved to another position: no stored secret to keep.
        let mut moved = route(vec![jwt(REDACTED), key_auth()]);
        let e = prepare(None, &mut moved, Some(&old)).expect_err("moved");
        assert_eq!(field_of(&e), "policies.jwt_auth.secret");
        let e = prepare(None, &mut route(vec![jwt(REDACTED)]), None).expect_err("create");
        assert_eq!(field_of(&e), "policies.jwt_auth.secret");
    }

    #[test]
    fn key_is_checked_then_encrypted() {
        let sb = SecretBox::from_key([7; 32]);
        let p = pair("example.com");
        let mut c = cert(&p);
        certificate(Some(&sb), &mut c, None).expect("valid pair");
        assert!(SecretBox::is_encrypted(&c.key_pem));
        assert_eq!(sb.decrypt(&c.key_pem).as_deref(), Ok(p.key.as_str()));
    }

    #[test]
    fn refusals_name_the_field() {
        let sb = SecretBox::from_key([7; 32]);
        let (a, b) = (pair("a.example.com"), pair("b.example.com"));
        let mut mismatched = cert(&a);
        mismatched.key_pem = b.key.clone();
        let e = certificate(Some(&sb), &mut mismatched, None).expect_err("mismatch");
        assert_eq!(
            (e.code, field_of(&e)),
            ("invalid_resource", "key_pem"),
            "{}",
            e.message
        );

        let mut garbage_cert = cert(&a);
        garbage_cert.cert_pem =
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into();
        let e = certificate(Some(&sb), &mut garbage_cert, None).expect_err("bad cert");
        assert_eq!(field_of(&e), "cert_pem", "{}", e.message);

        let mut garbage_key = cert(&a);
        garbage_key.key_pem = "not a key".into();
        let e = certificate(Some(&sb), &mut garbage_key, None).expect_err("bad key");
        assert_eq!(field_of(&e), "key_pem", "{}", e.message);

        let mut sealed = cert(&a);
        sealed.key_pem = sb.encrypt(&a.key);
        let e = certificate(Some(&sb), &mut sealed, None).expect_err("enc value");
        assert_eq!(field_of(&e), "key_pem", "{}", e.message);

        let mut placeholder = cert(&a);
        placeholder.key_pem = REDACTED.into();
        let e = certificate(Some(&sb), &mut placeholder, None).expect_err("redacted on create");
        assert_eq!(field_of(&e), "key_pem", "{}", e.message);

        let e = certificate(None, &mut cert(&a), None).expect_err("no key");
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "secret_key_missing")
        );
    }

    #[test]
    fn redacted_key_keeps_the_stored_one() {
        let sb = SecretBox::from_key([7; 32]);
        let p = pair("example.com");
        let mut stored = cert(&p);
        certificate(Some(&sb), &mut stored, None).expect("create");
        let mut edited = stored.clone();
        edited.snis.push("www.example.com".into());
        edited.key_pem = REDACTED.into();
        certificate(Some(&sb), &mut edited, Some(&stored)).expect("update");
        assert_eq!(edited.key_pem, stored.key_pem, "ciphertext kept as is");
        // A new certificate with the old key is checked against the stored key.
        let other = pair("other.example.com");
        let mut swapped = stored.clone();
        swapped.cert_pem = other.cert;
        swapped.key_pem = REDACTED.into();
        let e = certificate(Some(&sb), &mut swapped, Some(&stored)).expect_err("mismatch");
        assert_eq!(field_of(&e), "key_pem", "{}", e.message);
        // Another node key cannot use it.
        let mut edited = stored.clone();
        edited.key_pem = REDACTED.into();
        let e = certificate(
            Some(&SecretBox::from_key([8; 32])),
            &mut edited,
            Some(&stored),
        )
        .expect_err("wrong node key");
        assert_eq!(e.code, "secret_key_mismatch");
    }
}

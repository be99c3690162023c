//! Field checks of route policies.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{check_id, header_name, is_dns_name, parse_cidr, pem_block, Ctx};
use crate::command::ApplyError;
use crate::model::*;

/// Headers that describe one connection, not the message, plus `host` and
/// `content-length`: renaming them would break the request or its framing.
const UNRENAMEABLE: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Checks each policy, then the combination: at most one `key_auth`, `jwt_auth`, `cors`,
/// `body_limit` and `rewrite` per route, and no quota listed twice. `key_auth` and
/// `jwt_auth` may be combined: a request passes with either credential.
pub(super) fn policies(
    cx: &Ctx,
    policies: &[Policy],
    params: &[String],
    path_match: PathMatch,
) -> Result<(), ApplyError> {
    let mut seen: Vec<&str> = Vec::new();
    let mut quotas: Vec<&str> = Vec::new();
    for p in policies {
        policy(cx, p, params, path_match)?;
        let single = match p {
            Policy::KeyAuth(_) => "key_auth",
            Policy::JwtAuth(_) => "jwt_auth",
            Policy::Cors(_) => "cors",
            Policy::BodyLimit(_) => "body_limit",
            Policy::Rewrite(_) => "rewrite",
            Policy::Guardrails(_) => "guardrails",
            Policy::Capture(_) => "capture",
            Policy::Quota(id) if quotas.contains(&id.as_str()) => {
                return Err(cx.err("policies.quota", format!("quota '{id}' is listed twice")));
            }
            Policy::Quota(id) => {
                quotas.push(id);
                continue;
            }
            Policy::IpRestriction(_) | Policy::Headers(_) => continue,
        };
        if seen.contains(&single) {
            return Err(cx.err(&format!("policies.{single}"), "at most one per route"));
        }
        seen.push(single);
    }
    Ok(())
}

fn policy(
    cx: &Ctx,
    p: &Policy,
    params: &[String],
    path_match: PathMatch,
) -> Result<(), ApplyError> {
    match p {
        Policy::KeyAuth(k) => {
            if let Some(h) = &k.header {
                header_name(cx, "policies.key_auth.header", h)?;
            }
            if k.query.as_deref() == Some("") {
                return Err(cx.err("policies.key_auth.query", "must not be empty"));
            }
        }
        Policy::JwtAuth(j) => jwt_auth(cx, j)?,
        Policy::Cors(c) => cors(cx, c)?,
        Policy::IpRestriction(ip) => {
            for c in ip.allow.iter().chain(&ip.deny) {
                if parse_cidr(c).is_none() {
                    return Err(cx.err(
                        "policies.ip_restriction",
                        format!("'{c}' is not an IP address or CIDR"),
                    ));
                }
            }
        }
        Policy::Headers(h) => {
            for name in h
                .request_add
                .keys()
                .chain(&h.request_remove)
                .chain(h.response_add.keys())
                .chain(&h.response_remove)
            {
                header_name(cx, "policies.headers", name)?;
            }
            renames(cx, "policies.headers.request_rename", &h.request_rename)?;
            renames(cx, "policies.headers.response_rename", &h.response_rename)?;
        }
        Policy::BodyLimit(b) => {
            if b.max_bytes == 0 {
                return Err(cx.err("policies.body_limit.max_bytes", "must be positive"));
            }
        }
        Policy::Rewrite(rw) => rewrite(cx, rw, params, path_match)?,
        Policy::Quota(id) => check_id(cx, "policies.quota", id, false)?,
        Policy::Guardrails(g) => guardrails(cx, "policies.guardrails", g)?,
        Policy::Capture(c) => capture(cx, c)?,
    }
    Ok(())
}

/// Capture sizes within the cap, and a bounded list of distinct, non-blank names.
fn capture(cx: &Ctx, c: &Capture) -> Result<(), ApplyError> {
    for (field, n) in [
        ("policies.capture.request_bytes", c.request_bytes),
        ("policies.capture.response_bytes", c.response_bytes),
    ] {
        if n > CAPTURE_MAX_BYTES {
            return Err(cx.err(field, format!("at most {CAPTURE_MAX_BYTES} bytes, not {n}")));
        }
    }
    const REDACT: &str = "policies.capture.redact";
    if c.redact.len() > CAPTURE_MAX_REDACT {
        return Err(cx.err(REDACT, format!("at most {CAPTURE_MAX_REDACT} names")));
    }
    for (i, name) in c.redact.iter().enumerate() {
        if name.trim().is_empty() || name.len() > 128 {
            return Err(cx.err(REDACT, "names must be 1 to 128 characters and not blank"));
        }
        if c.redact[..i].iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(cx.err(REDACT, format!("'{name}' is listed twice")));
        }
    }
    Ok(())
}

/// Guardrail settings: `redact` only for PII, and a bounded deny-list of real terms.
pub(crate) fn guardrails(cx: &Ctx, field: &str, g: &Guardrails) -> Result<(), ApplyError> {
    if g.prompt_injection == Some(GuardAction::Redact) {
        return Err(cx.err(
            &format!("{field}.prompt_injection"),
            "must be block or log (there is nothing to redact)",
        ));
    }
    if g.deny_action == GuardAction::Redact {
        return Err(cx.err(&format!("{field}.deny_action"), "must be block or log"));
    }
    if g.deny_list.len() > 1_000 {
        return Err(cx.err(&format!("{field}.deny_list"), "at most 1000 terms"));
    }
    if g.deny_list
        .iter()
        .any(|t| t.trim().is_empty() || t.len() > 200)
    {
        return Err(cx.err(
            &format!("{field}.deny_list"),
            "terms must be 1 to 200 characters and not blank",
        ));
    }
    if g.pii.as_ref().is_some_and(|p| p.categories.is_empty()) {
        return Err(cx.err(
            &format!("{field}.pii.categories"),
            "list at least one category (or leave it out for all)",
        ));
    }
    Ok(())
}

fn rewrite(
    cx: &Ctx,
    rw: &Rewrite,
    params: &[String],
    path_match: PathMatch,
) -> Result<(), ApplyError> {
    match rw {
        Rewrite::StripPrefix if path_match == PathMatch::Exact => {
            Err(cx.err("policies.rewrite", "strip_prefix needs a prefix route"))
        }
        Rewrite::StripPrefix => Ok(()),
        Rewrite::ReplacePrefix(to) | Rewrite::Template(to) if !to.starts_with('/') => {
            Err(cx.err("policies.rewrite", "the new path must start with '/'"))
        }
        Rewrite::ReplacePrefix(_) => Ok(()),
        Rewrite::Template(t) => {
            // Placeholders may sit anywhere (`/items-{id}`); `{*}` is the unmatched rest.
            let mut rest = t.as_str();
            while let Some(open) = rest.find('{') {
                let Some(close) = rest[open..].find('}') else {
                    return Err(cx.err("policies.rewrite.template", "unclosed '{'"));
                };
                let name = &rest[open + 1..open + close];
                if name != "*" && !params.iter().any(|p| p == name) {
                    return Err(cx.err(
                        "policies.rewrite.template",
                        format!("'{{{name}}}' is not a parameter of the route path (or '{{*}}')"),
                    ));
                }
                rest = &rest[open + close + 1..];
            }
            Ok(())
        }
    }
}

fn jwt_auth(cx: &Ctx, j: &JwtAuth) -> Result<(), ApplyError> {
    const SECRET: &str = "policies.jwt_auth.secret";
    const KEY: &str = "policies.jwt_auth.public_key_pem";
    match j.algorithm {
        JwtAlgorithm::Hs256 => {
            let secret = j.secret.as_deref().unwrap_or_default();
            // Stored encrypted (`enc:v…`): the node checked the plaintext before encrypting
            // it, and the ciphertext of 4096 bytes is about 5.5 KiB.
            let max = if secret.starts_with("enc:v") {
                8192
            } else {
                4096
            };
            if secret.len() < 16 || secret.len() > max {
                return Err(cx.err(SECRET, "HS256 needs a secret of 16 to 4096 bytes"));
            }
            if j.public_key_pem.is_some() {
                return Err(cx.err(KEY, "HS256 uses a secret, not a public key"));
            }
        }
        JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 => {
            if j.secret.is_some() {
                return Err(cx.err(SECRET, "RS256 and ES256 use public_key_pem, not a secret"));
            }
            let pem = j
                .public_key_pem
                .as_deref()
                .ok_or_else(|| cx.err(KEY, "required for RS256 and ES256"))?;
            let labels: &[&str] = match j.algorithm {
                JwtAlgorithm::Rs256 => &["PUBLIC KEY", "RSA PUBLIC KEY"],
                _ => &["PUBLIC KEY"],
            };
            pem_block(cx, KEY, pem, labels)?;
        }
    }
    for (field, value) in [
        ("policies.jwt_auth.issuer", &j.issuer),
        ("policies.jwt_auth.audience", &j.audience),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.is_empty() || v.len() > 1024)
        {
            return Err(cx.err(field, "must be 1 to 1024 characters when set"));
        }
    }
    if j.consumer_claim.is_empty() || j.consumer_claim.len() > 256 {
        return Err(cx.err(
            "policies.jwt_auth.consumer_claim",
            "must be 1 to 256 characters",
        ));
    }
    if j.leeway_s > 3600 {
        return Err(cx.err("policies.jwt_auth.leeway_s", "at most 3600 seconds"));
    }
    Ok(())
}

fn cors(cx: &Ctx, c: &Cors) -> Result<(), ApplyError> {
    const ORIGINS: &str = "policies.cors.allow_origins";
    if c.allow_origins.is_empty() {
        return Err(cx.err(ORIGINS, "at least one origin (or \"*\") is required"));
    }
    let any = c.allow_origins.iter().any(|o| o == "*");
    if any && c.allow_origins.len() > 1 {
        return Err(cx.err(ORIGINS, "\"*\" must be the only origin"));
    }
    if any && c.allow_credentials {
        // Browsers refuse `Access-Control-Allow-Origin: *` on credentialed requests.
        return Err(cx.err(
            "policies.cors.allow_credentials",
            "cannot be combined with the \"*\" origin; list the origins",
        ));
    }
    for o in c.allow_origins.iter().filter(|o| *o != "*") {
        if !is_origin(o) {
            return Err(cx.err(
                ORIGINS,
                format!("'{o}' is not \"*\" or a lower-case http(s)://host[:port] origin"),
            ));
        }
    }
    for m in &c.allow_methods {
        let token = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit() || b"-_".contains(&b);
        if m.is_empty() || m.len() > 32 || !m.bytes().all(token) {
            return Err(cx.err(
                "policies.cors.allow_methods",
                format!("'{m}' is not an upper-case method name"),
            ));
        }
    }
    for (field, names) in [
        ("policies.cors.allow_headers", &c.allow_headers),
        ("policies.cors.expose_headers", &c.expose_headers),
    ] {
        for n in names {
            if n == "*" && c.allow_credentials {
                return Err(cx.err(field, "\"*\" is taken literally with allow_credentials"));
            } else if n != "*" {
                header_name(cx, field, n)?;
            }
        }
    }
    if c.max_age_s > 86_400 {
        return Err(cx.err("policies.cors.max_age_s", "at most 86400 seconds"));
    }
    Ok(())
}

/// `http(s)://host[:port]` as browsers serialize it in the `Origin` header: lower case,
/// no path, no trailing slash.
fn is_origin(o: &str) -> bool {
    let Some(rest) = o
        .strip_prefix("http://")
        .or_else(|| o.strip_prefix("https://"))
    else {
        return false;
    };
    if rest.bytes().any(|b| b.is_ascii_uppercase()) {
        return false;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (rest, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => is_dns_name(host) || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv4()),
    };
    port_ok && host_ok
}

fn renames(cx: &Ctx, field: &str, map: &BTreeMap<String, String>) -> Result<(), ApplyError> {
    for (from, to) in map {
        for name in [from, to] {
            header_name(cx, field, name)?;
            if UNRENAMEABLE.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                return Err(cx.err(
                    field,
                    format!("'{name}' is a hop-by-hop or framing header and cannot be renamed"),
                ));
            }
        }
    }
    Ok(())
}

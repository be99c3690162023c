//! Field-level validation of resources: what can be checked without looking at other
//! resources. Cross-resource rules (references, tenancy, cycles) live in `state`.

mod policy;
mod upstream;

use std::net::IpAddr;

use crate::command::ApplyError;
use crate::model::*;

/// Longest id accepted for any resource.
const MAX_ID_LEN: usize = 128;
/// Longest human-readable `name` of a resource.
const MAX_NAME_LEN: usize = 256;
/// Longest `description` of a resource.
const MAX_DESCRIPTION_LEN: usize = 4096;
/// Longest subscription `note`.
const MAX_NOTE_LEN: usize = 1024;
/// Largest PEM document (certificate chain, key, CA bundle, public key).
const MAX_PEM_LEN: usize = 64 * 1024;
/// Compiled-regex size cap, so a hostile pattern cannot blow up memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

struct Ctx<'a> {
    kind: Kind,
    id: &'a str,
}

impl Ctx<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> ApplyError {
        ApplyError::Invalid {
            kind: self.kind,
            id: self.id.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// Checks a resource's own fields; returns the first problem found.
pub fn validate(res: &Resource) -> Result<(), ApplyError> {
    let cx = Ctx {
        kind: res.kind(),
        id: res.id(),
    };
    check_id(&cx, "id", res.id(), res.kind() == Kind::Model)?;
    match res {
        Resource::Tenant(t) => {
            name_and_description(&cx, &t.name, &t.description)?;
            labels(&cx, &t.labels)?;
            if let Some(g) = &t.guardrails {
                policy::guardrails(&cx, "guardrails", g)?;
            }
        }
        Resource::Consumer(c) => {
            check_id(&cx, "tenant", &c.tenant, false)?;
            name_and_description(&cx, &c.name, &c.description)?;
        }
        Resource::ApiKey(k) => {
            check_id(&cx, "consumer", &k.consumer, false)?;
            if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(cx.err("sha256", "must be 64 hex characters"));
            }
            if k.prefix.len() > 16 {
                return Err(cx.err("prefix", "at most 16 characters"));
            }
        }
        Resource::Upstream(u) => upstream::upstream(&cx, u)?,
        Resource::Route(r) => route(&cx, r)?,
        Resource::Provider(p) => {
            match (&p.base_url, p.provider_type) {
                (None, ProviderType::Mock) => {}
                (None, _) => return Err(cx.err("base_url", "required for this provider type")),
                (Some(url), _) => http_url(&cx, "base_url", url)?,
            }
            if p.provider_type == ProviderType::AzureOpenai && p.api_version.is_none() {
                return Err(cx.err("api_version", "required for azure_openai"));
            }
            for name in p.headers.keys() {
                header_name(&cx, "headers", name)?;
            }
        }
        Resource::Model(m) => {
            opt_tenant(&cx, &m.tenant)?;
            if m.deployments.is_empty() {
                return Err(cx.err("deployments", "at least one deployment is required"));
            }
            for d in &m.deployments {
                check_id(&cx, "deployments.provider", &d.provider, false)?;
                if d.model.is_empty() || d.model.len() > 256 {
                    return Err(cx.err("deployments.model", "must be 1 to 256 characters"));
                }
                if d.weight == 0 || d.weight > 10_000 {
                    return Err(cx.err("deployments.weight", "must be between 1 and 10000"));
                }
            }
            if m.fallbacks.iter().any(|f| f == &m.id) {
                return Err(ApplyError::Cycle {
                    kind: Kind::Model,
                    id: m.id.clone(),
                    path: vec![m.id.clone(), m.id.clone()],
                });
            }
            if m.timeout_ms == Some(0) {
                return Err(cx.err("timeout_ms", "must be positive"));
            }
            if let Some(c) = &m.cache {
                if c.ttl_secs == 0 || c.ttl_secs > 7 * 86_400 {
                    return Err(cx.err("cache.ttl_secs", "must be 1 second to 7 days"));
                }
            }
            if m.default_max_tokens == Some(0) {
                return Err(cx.err("default_max_tokens", "must be positive"));
            }
            if let Some(p) = &m.pricing {
                let prices = [Some(p.input), Some(p.output), p.cached_input];
                if prices
                    .iter()
                    .flatten()
                    .any(|v| !v.is_finite() || *v < 0.0 || *v > 1.0e6)
                {
                    return Err(
                        cx.err("pricing", "prices are USD per million tokens, 0 to 1000000")
                    );
                }
            }
            for q in &m.quotas {
                check_id(&cx, "quotas", q, false)?;
            }
        }
        Resource::PromptTemplate(p) => {
            opt_tenant(&cx, &p.tenant)?;
            template(&cx, p)?;
        }
        Resource::QuotaPolicy(q) => {
            opt_tenant(&cx, &q.tenant)?;
            if q.scope.is_empty() {
                return Err(cx.err("scope", "at least one scope dimension is required"));
            }
            if q.limit == 0 {
                return Err(cx.err("limit", "must be positive"));
            }
            let mut seen = q.scope.clone();
            seen.sort_by_key(|s| *s as u8);
            seen.dedup();
            if seen.len() != q.scope.len() {
                return Err(cx.err("scope", "a dimension is listed twice"));
            }
        }
        Resource::Permission(p) => {
            check_id(&cx, "consumer", &p.consumer, false)?;
            match &p.target {
                PermissionTarget::Route(id) => check_id(&cx, "target.route", id, false)?,
                PermissionTarget::Model(id) => check_id(&cx, "target.model", id, true)?,
            }
        }
        Resource::Service(s) => {
            check_id(&cx, "tenant", &s.tenant, false)?;
            name_and_description(&cx, &s.name, &s.description)?;
            if s.sunset_at_ms == Some(0) {
                return Err(cx.err("sunset_at_ms", "must be a Unix time in milliseconds"));
            }
        }
        Resource::Subscription(s) => {
            check_id(&cx, "consumer", &s.consumer, false)?;
            check_id(&cx, "service", &s.service, false)?;
            if s.note.len() > MAX_NOTE_LEN {
                return Err(cx.err("note", format!("at most {MAX_NOTE_LEN} bytes")));
            }
        }
        Resource::Certificate(c) => certificate(&cx, c)?,
    }
    Ok(())
}

fn certificate(cx: &Ctx, c: &Certificate) -> Result<(), ApplyError> {
    if c.snis.is_empty() || c.snis.len() > 100 {
        return Err(cx.err("snis", "must list 1 to 100 server names"));
    }
    for (i, sni) in c.snis.iter().enumerate() {
        let name = sni.strip_prefix("*.").unwrap_or(sni);
        if !is_dns_name(name) || name.parse::<IpAddr>().is_ok() {
            return Err(cx.err(
                "snis",
                format!("'{sni}' is not a DNS name or *.wildcard (SNI never carries an IP)"),
            ));
        }
        if sni.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(cx.err("snis", format!("'{sni}' must be lower case")));
        }
        if c.snis[..i].contains(sni) {
            return Err(cx.err("snis", format!("'{sni}' is listed twice")));
        }
    }
    pem_block(cx, "cert_pem", &c.cert_pem, &["CERTIFICATE"])?;
    if c.key_pem.trim().is_empty() || c.key_pem.len() > MAX_PEM_LEN {
        return Err(cx.err("key_pem", format!("must be 1 byte to {MAX_PEM_LEN} bytes")));
    }
    Ok(())
}

/// Checks that `pem` is of bounded size and holds a `-----BEGIN {label}-----` block for one
/// of `labels`. Full parsing happens where the bytes are used (admin API, data plane).
fn pem_block(cx: &Ctx, field: &str, pem: &str, labels: &[&str]) -> Result<(), ApplyError> {
    if pem.len() > MAX_PEM_LEN {
        return Err(cx.err(field, format!("at most {MAX_PEM_LEN} bytes")));
    }
    if labels
        .iter()
        .any(|l| pem.contains(&format!("-----BEGIN {l}-----")))
    {
        return Ok(());
    }
    let wanted: Vec<String> = labels.iter().map(|l| format!("BEGIN {l}")).collect();
    Err(cx.err(
        field,
        format!(
            "must be PEM with a '-----{}-----' block",
            wanted.join("' or '-----")
        ),
    ))
}

fn name_and_description(cx: &Ctx, name: &str, description: &str) -> Result<(), ApplyError> {
    if name.len() > MAX_NAME_LEN {
        return Err(cx.err("name", format!("at most {MAX_NAME_LEN} bytes")));
    }
    if description.len() > MAX_DESCRIPTION_LEN {
        return Err(cx.err(
            "description",
            format!("at most {MAX_DESCRIPTION_LEN} bytes"),
        ));
    }
    Ok(())
}

/// A DNS host name (any case): dot-separated labels of 1-63 letters, digits and inner
/// hyphens, 253 characters at most.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Ids are URL-safe slugs; model names may also hold `/` and `:` (e.g. `meta/llama-3:8b`).
fn check_id(cx: &Ctx, field: &str, id: &str, model_name: bool) -> Result<(), ApplyError> {
    let ok_char = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(c, '-' | '_' | '.')
            || (model_name && matches!(c, '/' | ':'))
    };
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(cx.err(field, format!("must be 1 to {MAX_ID_LEN} characters")));
    }
    if !id.chars().all(ok_char) || !id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        let extra = if model_name { ", '/', ':'" } else { "" };
        return Err(cx.err(field, format!("'{id}' may hold only letters, digits, '-', '_', '.'{extra} and must start with a letter or digit")));
    }
    Ok(())
}

fn opt_tenant(cx: &Ctx, tenant: &Option<String>) -> Result<(), ApplyError> {
    tenant
        .as_deref()
        .map_or(Ok(()), |t| check_id(cx, "tenant", t, false))
}

fn labels(cx: &Ctx, labels: &std::collections::BTreeMap<String, String>) -> Result<(), ApplyError> {
    if labels.len() > 64 {
        return Err(cx.err("labels", "at most 64 labels"));
    }
    for (k, v) in labels {
        if k.is_empty() || k.len() > 63 || v.len() > 256 {
            return Err(cx.err(
                "labels",
                format!("label '{k}': keys 1-63 and values up to 256 characters"),
            ));
        }
    }
    Ok(())
}

fn host_port(cx: &Ctx, field: &str, addr: &str) -> Result<(), ApplyError> {
    let bad = || cx.err(field, format!("'{addr}' is not host:port"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if port == 0 || host.is_empty() || host.len() > 253 {
        return Err(bad());
    }
    if host.parse::<IpAddr>().is_err()
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(bad());
    }
    Ok(())
}

fn http_url(cx: &Ctx, field: &str, url: &str) -> Result<(), ApplyError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| cx.err(field, "must start with http:// or https://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || url.len() > 2048 || url.chars().any(|c| c.is_whitespace()) {
        return Err(cx.err(field, format!("'{url}' is not a valid URL")));
    }
    Ok(())
}

fn header_name(cx: &Ctx, field: &str, name: &str) -> Result<(), ApplyError> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || name.len() > 256 || !name.chars().all(token) {
        return Err(cx.err(field, format!("'{name}' is not a valid header name")));
    }
    Ok(())
}

/// Parses `a.b.c.d/n` or `v6/n` (a bare address means a single host).
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max)?,
        None => max,
    };
    Some((addr, len))
}

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

fn route(cx: &Ctx, r: &Route) -> Result<(), ApplyError> {
    opt_tenant(cx, &r.tenant)?;
    let params = path_params(cx, &r.path)?;
    for host in &r.hosts {
        let h = host.strip_prefix("*.").unwrap_or(host);
        if h.is_empty()
            || h.len() > 253
            || !h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(cx.err(
                "hosts",
                format!("'{host}' is not a host name or *.wildcard"),
            ));
        }
    }
    for m in &r.methods {
        if !METHODS.contains(&m.as_str()) {
            return Err(cx.err("methods", format!("'{m}' is not an upper-case HTTP method")));
        }
    }
    for h in &r.headers {
        header_name(cx, "headers.name", &h.name)?;
        regex::RegexBuilder::new(&format!("^(?:{})$", h.regex))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| cx.err("headers.regex", format!("invalid regular expression: {e}")))?;
    }
    match &r.target {
        RouteTarget::Upstream(id) => check_id(cx, "target.upstream", id, false)?,
        RouteTarget::Model(id) => check_id(cx, "target.model", id, true)?,
        RouteTarget::Prompt(p) => check_id(cx, "target.prompt.template", &p.template, false)?,
    }
    if let Some(service) = &r.service {
        check_id(cx, "service", service, false)?;
    }
    policy::policies(cx, &r.policies, &params, r.path_match)
}

/// Checks a route path and returns its `{param}` names.
fn path_params(cx: &Ctx, path: &str) -> Result<Vec<String>, ApplyError> {
    if !path.starts_with('/') || path.len() > 2048 {
        return Err(cx.err("path", "must start with '/' and be at most 2048 characters"));
    }
    let mut names = Vec::new();
    for seg in path.split('/').skip(1) {
        if seg.contains(['{', '}']) {
            let name = seg
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .filter(|n| {
                    !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .ok_or_else(|| {
                    cx.err(
                        "path",
                        format!("segment '{seg}': a parameter is a whole segment like {{name}}"),
                    )
                })?;
            if names.iter().any(|n| n == name) {
                return Err(cx.err("path", format!("parameter '{name}' appears twice")));
            }
            names.push(name.to_string());
        } else if seg
            .chars()
            .any(|c| c.is_whitespace() || c == '?' || c == '#')
        {
            return Err(cx.err("path", format!("segment '{seg}' holds a space, '?' or '#'")));
        }
    }
    Ok(names)
}

fn template(cx: &Ctx, p: &PromptTemplate) -> Result<(), ApplyError> {
    if p.versions.is_empty() || p.versions.len() > 50 {
        return Err(cx.err("versions", "1 to 50 versions"));
    }
    let mut numbers: Vec<u32> = p.versions.iter().map(|v| v.version).collect();
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.len() != p.versions.len() {
        return Err(cx.err("versions.version", "each version number once"));
    }
    for v in &p.versions {
        check_id(cx, "versions.model", &v.model, true)?;
        if v.messages.is_empty() || v.messages.len() > 100 {
            return Err(cx.err("versions.messages", "1 to 100 messages"));
        }
        if v.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err(cx.err("versions.temperature", "0 to 2"));
        }
        if v.max_tokens == Some(0) {
            return Err(cx.err("versions.max_tokens", "must be positive"));
        }
        for name in &v.variables {
            if name.is_empty()
                || name.len() > 64
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(cx.err(
                    "versions.variables",
                    format!("'{name}': letters, digits and '_', at most 64"),
                ));
            }
        }
        let mut total = 0;
        for m in &v.messages {
            if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
                return Err(cx.err(
                    "versions.messages.role",
                    format!("'{}' is not system, user or assistant", m.role),
                ));
            }
            total += m.content.len();
            for name in
                placeholders(&m.content).map_err(|e| cx.err("versions.messages.content", e))?
            {
                if !v.variables.iter().any(|d| d == name) {
                    return Err(cx.err(
                        "versions.messages.content",
                        format!("variable '{name}' is not declared in variables"),
                    ));
                }
            }
        }
        if total == 0 || total > 256 * 1024 {
            return Err(cx.err("versions.messages.content", "1 byte to 256 KiB in all"));
        }
    }
    Ok(())
}

/// The `{{name}}` placeholders of a template text, in order.
pub fn placeholders(text: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "'{{' without a closing '}}'".to_string())?;
        out.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

//! Which counter a call is charged to: the policy's scope dimensions filled in from the
//! call, in one canonical string (`api_key=k1,model=gpt-4o`).

use raftgate_store::model::QuotaScope;

/// What is known about a call when its quotas are checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallScope<'a> {
    pub api_key: Option<&'a str>,
    pub consumer: Option<&'a str>,
    /// The caller's tenant (the consumer's), else the route's.
    pub tenant: Option<&'a str>,
    pub route: Option<&'a str>,
    pub service: Option<&'a str>,
    pub model: Option<&'a str>,
}

pub fn dimension_name(s: QuotaScope) -> &'static str {
    match s {
        QuotaScope::ApiKey => "api_key",
        QuotaScope::Consumer => "consumer",
        QuotaScope::Tenant => "tenant",
        QuotaScope::Route => "route",
        QuotaScope::Service => "service",
        QuotaScope::Model => "model",
    }
}

impl CallScope<'_> {
    fn value(&self, s: QuotaScope) -> &str {
        match s {
            QuotaScope::ApiKey => self.api_key,
            QuotaScope::Consumer => self.consumer,
            QuotaScope::Tenant => self.tenant,
            QuotaScope::Route => self.route,
            QuotaScope::Service => self.service,
            QuotaScope::Model => self.model,
        }
        .unwrap_or("")
    }

    /// The counter key for a policy with these scope dimensions. An unknown value (an
    /// anonymous caller on a route without auth) is empty: those calls share one counter.
    pub fn key(&self, scope: &[QuotaScope]) -> String {
        // Sized once: growing it push by push reallocated three times per call.
        let len: usize = scope
            .iter()
            .map(|s| dimension_name(*s).len() + 2 + self.value(*s).len())
            .sum();
        let mut out = String::with_capacity(len);
        for (i, s) in scope.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(dimension_name(*s));
            out.push('=');
            escape_into(self.value(*s), &mut out);
        }
        out
    }
}

/// `%`, `,` and `=` are percent-encoded so any id round-trips through the key.
fn escape_into(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '%' => out.push_str("%25"),
            ',' => out.push_str("%2C"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
}

fn unescape(v: &str) -> String {
    v.replace("%2C", ",")
        .replace("%3D", "=")
        .replace("%25", "%")
}

/// The `(dimension, value)` pairs of a counter key.
pub fn parse_key(key: &str) -> Vec<(String, String)> {
    if key.is_empty() {
        return Vec::new();
    }
    key.split(',')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), unescape(v)),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_canonical_and_round_trip() {
        let cx = CallScope {
            api_key: Some("k1"),
            model: Some("a,b=c%d"),
            ..CallScope::default()
        };
        let key = cx.key(&[QuotaScope::ApiKey, QuotaScope::Model, QuotaScope::Tenant]);
        assert_eq!(key, "api_key=k1,model=a%2Cb%3Dc%25d,tenant=");
        assert_eq!(
            parse_key(&key),
            vec![
                ("api_key".to_string(), "k1".to_string()),
                ("model".to_string(), "a,b=c%d".to_string()),
                ("tenant".to_string(), String::new()),
            ]
        );
        assert!(parse_key("").is_empty());
    }
}

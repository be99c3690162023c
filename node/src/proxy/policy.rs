//! Route policies other than auth, compiled once per config: IP allow/deny lists,
//! header rules and CORS.

use std::collections::HashSet;
use std::net::IpAddr;

use http::header::{self, HeaderName, HeaderValue};
use http::HeaderMap;
use ipnet::IpNet;
use raftgate_store::model::{Cors, HeaderRules, IpRestriction};

#[derive(Debug)]
pub struct IpRule {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

fn net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not an IP address or CIDR"))
}

impl IpRule {
    pub fn compile(r: &IpRestriction) -> Result<IpRule, String> {
        Ok(IpRule {
            allow: r.allow.iter().map(|s| net(s)).collect::<Result<_, _>>()?,
            deny: r.deny.iter().map(|s| net(s)).collect::<Result<_, _>>()?,
        })
    }

    /// Deny wins; a non-empty allow list admits only what it lists.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        !self.deny.iter().any(|n| n.contains(&ip))
            && (self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip)))
    }
}

/// Header edits for one direction, applied as rename, then remove, then add.
#[derive(Debug, Default)]
pub struct HeaderOps {
    rename: Vec<(HeaderName, HeaderName)>,
    remove: Vec<HeaderName>,
    add: Vec<(HeaderName, HeaderValue)>,
}

fn name(s: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(s.as_bytes()).map_err(|_| format!("{s:?} is not a header name"))
}

impl HeaderOps {
    fn compile(
        rename: &std::collections::BTreeMap<String, String>,
        remove: &[String],
        add: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<HeaderOps>, String> {
        if rename.is_empty() && remove.is_empty() && add.is_empty() {
            return Ok(None);
        }
        Ok(Some(HeaderOps {
            rename: rename
                .iter()
                .map(|(a, b)| Ok((name(a)?, name(b)?)))
                .collect::<Result<_, String>>()?,
            remove: remove.iter().map(|s| name(s)).collect::<Result<_, _>>()?,
            add: add
                .iter()
                .map(|(k, v)| {
                    let v = HeaderValue::from_str(v).map_err(|_| format!("bad value for {k}"))?;
                    Ok((name(k)?, v))
                })
                .collect::<Result<_, String>>()?,
        }))
    }

    /// `(request, response)` edits of a route's header rules.
    pub fn from_rules(r: &HeaderRules) -> Result<(Option<HeaderOps>, Option<HeaderOps>), String> {
        Ok((
            HeaderOps::compile(&r.request_rename, &r.request_remove, &r.request_add)?,
            HeaderOps::compile(&r.response_rename, &r.response_remove, &r.response_add)?,
        ))
    }

    pub fn apply(&self, h: &mut HeaderMap) {
        for (from, to) in &self.rename {
            let values: Vec<HeaderValue> = h.get_all(from).iter().cloned().collect();
            if !values.is_empty() {
                h.remove(from);
                for v in values {
                    h.append(to.clone(), v);
                }
            }
        }
        for n in &self.remove {
            h.remove(n);
        }
        for (n, v) in &self.add {
            h.insert(n.clone(), v.clone());
        }
    }
}

#[derive(Debug)]
pub struct CorsRule {
    any_origin: bool,
    origins: HashSet<String>,
    methods: HeaderValue,
    headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    credentials: bool,
}

fn joined(list: &[String]) -> Result<Option<HeaderValue>, String> {
    if list.is_empty() {
        return Ok(None);
    }
    HeaderValue::from_str(&list.join(", "))
        .map(Some)
        .map_err(|_| format!("{list:?} is not a valid header value"))
}

/// What CORS says about one request.
pub enum CorsVerdict {
    /// No `Origin` header or no CORS policy: nothing to do.
    NotCors,
    /// A preflight the gateway answers itself.
    Preflight(HeaderMap),
    /// An actual request from an allowed origin: add these headers to the response.
    Allowed(HeaderMap),
    Denied(String),
}

impl CorsRule {
    pub fn compile(c: &Cors, route_methods: &[String]) -> Result<CorsRule, String> {
        let methods = if !c.allow_methods.is_empty() {
            c.allow_methods.clone()
        } else if !route_methods.is_empty() {
            route_methods.to_vec()
        } else {
            ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                .map(String::from)
                .to_vec()
        };
        Ok(CorsRule {
            any_origin: c.allow_origins.iter().any(|o| o == "*"),
            origins: c
                .allow_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
            methods: joined(&methods)?.unwrap_or(HeaderValue::from_static("GET")),
            headers: joined(&c.allow_headers)?,
            expose: joined(&c.expose_headers)?,
            max_age: (c.max_age_s > 0).then(|| HeaderValue::from(c.max_age_s)),
            credentials: c.allow_credentials,
        })
    }

    pub fn check(&self, method: &http::Method, req: &HeaderMap) -> CorsVerdict {
        let Some(origin) = req.get(header::ORIGIN) else {
            return CorsVerdict::NotCors;
        };
        let allowed = self.any_origin
            || origin
                .to_str()
                .is_ok_and(|o| self.origins.contains(&o.to_ascii_lowercase()));
        let preflight = method == http::Method::OPTIONS
            && req.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if !allowed {
            return CorsVerdict::Denied(format!(
                "origin {:?} is not allowed by this route's CORS policy",
                origin.to_str().unwrap_or("?")
            ));
        }
        let mut h = HeaderMap::new();
        let allow_origin = if self.any_origin && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        };
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if preflight {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone());
            let asked = req.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
            if let Some(v) = self.headers.clone().or(asked) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
            if let Some(v) = &self.max_age {
                h.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
            }
            CorsVerdict::Preflight(h)
        } else {
            if let Some(v) = &self.expose {
                h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
            }
            CorsVerdict::Allowed(h)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_rules_deny_first_then_allow() {
        let r = IpRule::compile(&IpRestriction {
            allow: vec!["10.0.0.0/8".into(), "::1".into()],
            deny: vec!["10.1.0.0/16".into()],
        })
        .unwrap();
        assert!(r.permits("10.2.3.4".parse().unwrap()));
        assert!(!r.permits("10.1.3.4".parse().unwrap()));
        assert!(!r.permits("192.168.0.1".parse().unwrap()));
        assert!(r.permits("::1".parse().unwrap()));
        // IPv4-mapped IPv6 peers are judged as IPv4.
        assert!(r.permits("::ffff:10.2.3.4".parse().unwrap()));
        assert!(IpRule::compile(&IpRestriction {
            allow: vec!["nope".into()],
            deny: vec![]
        })
        .is_err());
    }

    #[test]
    fn header_ops_rename_remove_add() {
        let rules = HeaderRules {
            request_add: [("x-added".to_string(), "1".to_string())].into(),
            request_remove: vec!["x-secret".into()],
            request_rename: [("x-old".to_string(), "x-new".to_string())].into(),
            ..HeaderRules::default()
        };
        let (req, resp) = HeaderOps::from_rules(&rules).unwrap();
        assert!(resp.is_none());
        let mut h = HeaderMap::new();
        h.insert("x-secret", "s".parse().unwrap());
        h.append("x-old", "a".parse().unwrap());
        h.append("x-old", "b".parse().unwrap());
        req.unwrap().apply(&mut h);
        assert!(h.get("x-secret").is_none() && h.get("x-old").is_none());
        let new: Vec<_> = h
            .get_all("x-new")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(new, ["a", "b"]);
        assert_eq!(h["x-added"], "1");
    }

    #[test]
    fn cors_preflight_actual_and_denied() {
        let rule = CorsRule::compile(
            &Cors {
                allow_origins: vec!["https://app.example".into()],
                allow_headers: vec!["content-type".into()],
                max_age_s: 600,
                ..Cors::default()
            },
            &["GET".into(), "POST".into()],
        )
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, "https://app.example".parse().unwrap());
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            "POST".parse().unwrap(),
        );
        let CorsVerdict::Preflight(p) = rule.check(&http::Method::OPTIONS, &h) else {
            panic!("expected a preflight")
        };
        assert_eq!(
            p[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example"
        );
        assert_eq!(p[header::ACCESS_CONTROL_ALLOW_METHODS], "GET, POST");
        assert_eq!(p[header::ACCESS_CONTROL_MAX_AGE], "600");
        assert!(matches!(
            rule.check(&http::Method::GET, &h),
            CorsVerdict::Allowed(_)
        ));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(matches!(
            rule.check(&http::Method::GET, &h),
            CorsVerdict::Denied(_)
        ));
        assert!(matches!(
            rule.check(&http::Method::GET, &HeaderMap::new()),
            CorsVerdict::NotCors
        ));
    }
}

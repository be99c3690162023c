//! The route table, compiled once per configuration revision and then only read.
//!
//! Matching order, most specific first: the request host (exact name, then wildcards
//! from the longest suffix, then routes for any host), then within that host the path
//! (exact before prefix, more literal segments first, longer first), then routes that
//! name methods or headers before those that do not, then `priority` (higher first),
//! then id. Routes are sorted once at compile time, so a lookup returns the first entry
//! of a short candidate list that matches.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, Method};
use regex::Regex;

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Literal(String),
    Param(String),
}

/// Everything a route asks of a request, compiled.
#[derive(Debug, Clone)]
pub struct Matcher {
    hosts: Vec<String>,
    segs: Vec<Seg>,
    exact: bool,
    methods: Vec<Method>,
    headers: Vec<(HeaderName, Regex)>,
    priority: i32,
    id: String,
}

/// Why a route's matcher could not be compiled (the admin API validates the same
/// fields, so this only guards against config written by an older release).
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    #[error("invalid method {0:?}")]
    Method(String),
    #[error("invalid header name {0:?}")]
    HeaderName(String),
    #[error("invalid header regex for {0}: {1}")]
    Regex(String, regex::Error),
}

impl Matcher {
    pub fn new(
        id: &str,
        hosts: &[String],
        path: &str,
        exact: bool,
        methods: &[String],
        headers: &[(String, String)],
        priority: i32,
    ) -> Result<Matcher, MatcherError> {
        let trimmed = path.trim_end_matches('/');
        let segs = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed
                .trim_start_matches('/')
                .split('/')
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => Seg::Param(name.to_string()),
                        None => Seg::Literal(s.to_string()),
                    },
                )
                .collect()
        };
        let methods = methods
            .iter()
            .map(|m| Method::from_bytes(m.as_bytes()).map_err(|_| MatcherError::Method(m.clone())))
            .collect::<Result<_, _>>()?;
        let headers = headers
            .iter()
            .map(|(name, re)| {
                let n = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| MatcherError::HeaderName(name.clone()))?;
                let r = Regex::new(&format!("^(?:{re})$"))
                    .map_err(|e| MatcherError::Regex(name.clone(), e))?;
                Ok((n, r))
            })
            .collect::<Result<_, MatcherError>>()?;
        Ok(Matcher {
            hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            segs,
            exact: exact && !path.is_empty(),
            methods,
            headers,
            priority,
            id: id.to_string(),
        })
    }

    /// Sort key: smaller sorts first (more specific).
    fn rank(&self) -> impl Ord + '_ {
        let literals = self
            .segs
            .iter()
            .filter(|s| matches!(s, Seg::Literal(_)))
            .count();
        (
            std::cmp::Reverse(self.exact),
            std::cmp::Reverse(literals),
            std::cmp::Reverse(self.segs.len()),
            std::cmp::Reverse(!self.methods.is_empty()),
            std::cmp::Reverse(self.headers.len()),
            std::cmp::Reverse(self.priority),
            self.id.as_str(),
        )
    }

    /// Matches the path; on success returns the byte length of the matched prefix and
    /// pushes `{param}` captures.
    fn match_path<'p>(&self, path: &'p str, params: &mut Vec<(String, &'p str)>) -> Option<usize> {
        let body = path.strip_prefix('/')?;
        let mut consumed = 0usize;
        let mut parts = if body.is_empty() {
            None
        } else {
            Some(body.split('/'))
        };
        let start = params.len();
        for seg in &self.segs {
            let Some(part) = parts.as_mut().and_then(|p| p.next()) else {
                params.truncate(start);
                return None;
            };
            let ok = match seg {
                Seg::Literal(l) => l == part,
                Seg::Param(name) => {
                    if part.is_empty() {
                        false
                    } else {
                        params.push((name.clone(), part));
                        true
                    }
                }
            };
            if !ok {
                params.truncate(start);
                return None;
            }
            consumed += 1 + part.len();
        }
        if self.exact {
            let rest = parts.and_then(|mut p| p.next());
            // `/a` is exact for `/a` only; the root pattern is exact for `/` only.
            if rest.is_some() || (self.segs.is_empty() && path != "/") {
                params.truncate(start);
                return None;
            }
        }
        Some(consumed)
    }

    fn match_rest(&self, method: &Method, headers: &HeaderMap) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && self.headers.iter().all(|(name, re)| {
                headers
                    .get_all(name)
                    .iter()
                    .any(|v| v.to_str().is_ok_and(|v| re.is_match(v)))
            })
    }

    fn first_literal(&self) -> Option<&str> {
        match self.segs.first() {
            Some(Seg::Literal(l)) => Some(l),
            _ => None,
        }
    }
}

/// Candidates for one host: indexed by first literal path segment.
#[derive(Debug, Default)]
struct Table {
    by_first: HashMap<String, Vec<usize>>,
    other: Vec<usize>,
}

impl Table {
    fn add(&mut self, idx: usize, m: &Matcher) {
        match m.first_literal() {
            Some(first) => self
                .by_first
                .entry(first.to_string())
                .or_default()
                .push(idx),
            None => self.other.push(idx),
        }
    }
}

/// A successful lookup.
#[derive(Debug)]
pub struct Found<'r, 'p, T> {
    pub value: &'r T,
    pub params: Vec<(String, &'p str)>,
    /// Bytes of the request path matched by the route's pattern.
    pub matched_len: usize,
}

/// Routes compiled for lookup; `T` is whatever the caller attaches to a route.
#[derive(Debug)]
pub struct Router<T> {
    entries: Vec<(Matcher, T)>,
    exact_hosts: HashMap<String, Table>,
    /// `(".example.com", table)`, longest suffix first.
    wildcard_hosts: Vec<(String, Table)>,
    any_host: Table,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Router {
            entries: Vec::new(),
            exact_hosts: HashMap::new(),
            wildcard_hosts: Vec::new(),
            any_host: Table::default(),
        }
    }
}

impl<T> Router<T> {
    pub fn new(mut entries: Vec<(Matcher, T)>) -> Router<T> {
        entries.sort_by(|a, b| a.0.rank().cmp(&b.0.rank()));
        let mut r = Router {
            entries: Vec::new(),
            ..Router::default()
        };
        let mut wild: HashMap<String, Table> = HashMap::new();
        for (idx, (m, _)) in entries.iter().enumerate() {
            if m.hosts.is_empty() {
                r.any_host.add(idx, m);
            }
            for h in &m.hosts {
                match h.strip_prefix('*') {
                    Some(suffix) => wild.entry(suffix.to_string()).or_default().add(idx, m),
                    None => r.exact_hosts.entry(h.clone()).or_default().add(idx, m),
                }
            }
        }
        r.wildcard_hosts = wild.into_iter().collect();
        r.wildcard_hosts
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        r.entries = entries;
        r
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The best route for a request. `host` must be lower-case without a port.
    pub fn find<'r, 'p>(
        &'r self,
        host: &str,
        method: &Method,
        path: &'p str,
        headers: &HeaderMap,
    ) -> Option<Found<'r, 'p, T>> {
        if let Some(t) = self.exact_hosts.get(host) {
            if let Some(f) = self.find_in(t, method, path, headers) {
                return Some(f);
            }
        }
        for (suffix, t) in &self.wildcard_hosts {
            if host.len() > suffix.len() && host.ends_with(suffix.as_str()) {
                if let Some(f) = self.find_in(t, method, path, headers) {
                    return Some(f);
                }
            }
        }
        self.find_in(&self.any_host, method, path, headers)
    }

    fn find_in<'r, 'p>(
        &'r self,
        table: &Table,
        method: &Method,
        path: &'p str,
        headers: &HeaderMap,
    ) -> Option<Found<'r, 'p, T>> {
        let first = path
            .strip_prefix('/')
            .map(|p| p.split('/').next().unwrap_or(""));
        let keyed = first
            .and_then(|f| table.by_first.get(f))
            .map_or(&[][..], |v| v.as_slice());
        // Both lists are in rank order; the lower index is the better route.
        let (mut a, mut b) = (keyed.iter().peekable(), table.other.iter().peekable());
        let mut params = Vec::new();
        loop {
            let idx = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next().copied(),
                (Some(_), Some(_)) => b.next().copied(),
                (Some(_), None) => a.next().copied(),
                (None, Some(_)) => b.next().copied(),
                (None, None) => return None,
            }?;
            let (m, value) = &self.entries[idx];
            if !m.match_rest(method, headers) {
                continue;
            }
            if let Some(matched_len) = m.match_path(path, &mut params) {
                return Some(Found {
                    value,
                    params,
                    matched_len,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, hosts: &[&str], path: &str, exact: bool) -> Matcher {
        let hosts: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
        Matcher::new(id, &hosts, path, exact, &[], &[], 0).unwrap()
    }

    fn find(r: &Router<&'static str>, host: &str, method: &str, path: &str) -> Option<String> {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        r.find(host, &method, path, &HeaderMap::new())
            .map(|f| f.value.to_string())
    }

    #[test]
    fn prefix_matches_at_segment_boundaries_only() {
        let r = Router::new(vec![(m("a", &[], "/echo", false), "a")]);
        assert_eq!(find(&r, "x", "GET", "/echo").as_deref(), Some("a"));
        assert_eq!(find(&r, "x", "GET", "/echo/").as_deref(), Some("a"));
        assert_eq!(find(&r, "x", "GET", "/echo/deep/er").as_deref(), Some("a"));
        assert_eq!(find(&r, "x", "GET", "/echoes"), None);
        assert_eq!(find(&r, "x", "GET", "/"), None);
    }

    #[test]
    fn exact_beats_prefix_and_longer_prefix_beats_shorter() {
        let r = Router::new(vec![
            (m("root", &[], "/", false), "root"),
            (m("api", &[], "/api", false), "api"),
            (m("users", &[], "/api/users", false), "users"),
            (m("exact", &[], "/api/users", true), "exact"),
        ]);
        assert_eq!(find(&r, "h", "GET", "/api/users").as_deref(), Some("exact"));
        assert_eq!(
            find(&r, "h", "GET", "/api/users/7").as_deref(),
            Some("users")
        );
        assert_eq!(find(&r, "h", "GET", "/api/other").as_deref(), Some("api"));
        assert_eq!(find(&r, "h", "GET", "/elsewhere").as_deref(), Some("root"));
        assert_eq!(find(&r, "h", "GET", "/").as_deref(), Some("root"));
    }

    #[test]
    fn params_capture_and_literals_win_over_params() {
        let r = Router::new(vec![
            (m("p", &[], "/users/{id}/posts/{post}", true), "p"),
            (m("me", &[], "/users/me/posts/{post}", true), "me"),
        ]);
        let method = Method::GET;
        let f = r
            .find("h", &method, "/users/42/posts/7", &HeaderMap::new())
            .unwrap();
        assert_eq!(*f.value, "p");
        assert_eq!(
            f.params,
            vec![("id".to_string(), "42"), ("post".to_string(), "7")]
        );
        let f = r
            .find("h", &method, "/users/me/posts/7", &HeaderMap::new())
            .unwrap();
        assert_eq!(*f.value, "me");
        assert_eq!(f.params, vec![("post".to_string(), "7")]);
        // An empty segment is not a parameter value.
        assert!(r
            .find("h", &method, "/users//posts/7", &HeaderMap::new())
            .is_none());
    }

    #[test]
    fn hosts_exact_then_wildcard_then_any() {
        let r = Router::new(vec![
            (m("any", &[], "/", false), "any"),
            (m("wild", &["*.example.com"], "/", false), "wild"),
            (m("deep", &["*.api.example.com"], "/", false), "deep"),
            (m("exact", &["www.example.com"], "/", false), "exact"),
        ]);
        assert_eq!(
            find(&r, "www.example.com", "GET", "/").as_deref(),
            Some("exact")
        );
        assert_eq!(
            find(&r, "a.example.com", "GET", "/").as_deref(),
            Some("wild")
        );
        assert_eq!(
            find(&r, "a.b.example.com", "GET", "/").as_deref(),
            Some("wild")
        );
        assert_eq!(
            find(&r, "v1.api.example.com", "GET", "/").as_deref(),
            Some("deep")
        );
        // The wildcard needs at least one label before the suffix.
        assert_eq!(find(&r, "example.com", "GET", "/").as_deref(), Some("any"));
        assert_eq!(find(&r, "other.org", "GET", "/").as_deref(), Some("any"));
    }

    #[test]
    fn host_routes_fall_through_when_their_paths_do_not_match() {
        let r = Router::new(vec![
            (m("any", &[], "/", false), "any"),
            (m("exact", &["a.com"], "/only", false), "exact"),
        ]);
        assert_eq!(
            find(&r, "a.com", "GET", "/only/x").as_deref(),
            Some("exact")
        );
        assert_eq!(find(&r, "a.com", "GET", "/else").as_deref(), Some("any"));
    }

    #[test]
    fn methods_headers_and_priority() {
        let get = Matcher::new("get", &[], "/x", false, &["GET".into()], &[], 0).unwrap();
        let any = Matcher::new("any", &[], "/x", false, &[], &[], 0).unwrap();
        let beta = Matcher::new(
            "beta",
            &[],
            "/x",
            false,
            &[],
            &[("x-beta".into(), "yes|true".into())],
            0,
        )
        .unwrap();
        let low = Matcher::new("low", &[], "/y", false, &[], &[], 1).unwrap();
        let high = Matcher::new("high", &[], "/y", false, &[], &[], 5).unwrap();
        let r = Router::new(vec![
            (any, "any"),
            (get, "get"),
            (beta, "beta"),
            (low, "low"),
            (high, "high"),
        ]);
        assert_eq!(find(&r, "h", "GET", "/x").as_deref(), Some("get"));
        assert_eq!(find(&r, "h", "POST", "/x").as_deref(), Some("any"));
        let mut h = HeaderMap::new();
        h.insert("x-beta", "true".parse().unwrap());
        assert_eq!(*r.find("h", &Method::POST, "/x", &h).unwrap().value, "beta");
        // The regex must match the whole value.
        h.insert("x-beta", "truely".parse().unwrap());
        assert_eq!(*r.find("h", &Method::POST, "/x", &h).unwrap().value, "any");
        assert_eq!(find(&r, "h", "GET", "/y").as_deref(), Some("high"));
    }

    #[test]
    fn matched_len_covers_the_pattern_only() {
        let r = Router::new(vec![(m("a", &[], "/api/{v}", false), "a")]);
        let f = r
            .find("h", &Method::GET, "/api/v2/items", &HeaderMap::new())
            .unwrap();
        assert_eq!(&"/api/v2/items"[..f.matched_len], "/api/v2");
    }
}

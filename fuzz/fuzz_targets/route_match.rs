//! Builds a router from fuzzed route definitions and matches fuzzed requests (a line
//! format, so seeds and the dictionary stay readable: see [`parse`]).
//!
//! Beyond "never panics", the combined router must agree with one router per route:
//! it finds nothing exactly when no route matches on its own, and what it finds
//! matches on its own. A match ends at a segment boundary of the path, and rewriting
//! it always gives an absolute path.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use raftgate_node::proxy::rewrite::rewrite;
use raftgate_node::proxy::router::{Matcher, Router};
use raftgate_store::model::Rewrite;

/// `R\thosts,…\tpath\te|p\tMETHODS,…\tname:regex;…\tpriority`
struct RouteDef {
    hosts: Vec<String>,
    path: String,
    exact: bool,
    methods: Vec<String>,
    headers: Vec<(String, String)>,
    priority: i32,
}

/// `Q\thost\tMETHOD\tpath\tname:value;…`
struct Req {
    host: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

struct Input {
    routes: Vec<RouteDef>,
    requests: Vec<Req>,
}

fn list(s: &str, sep: char) -> Vec<String> {
    s.split(sep)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn pairs(s: &str) -> Vec<(String, String)> {
    s.split(';')
        .filter_map(|p| p.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Enough routes to fill every host tier; more only slows each run.
const MAX_ROUTES: usize = 12;
const MAX_REQUESTS: usize = 8;
/// Header regexes compile per run; a few keep runs fast.
const MAX_HEADER_RULES: usize = 2;

/// One record per line, tab-separated fields; missing fields are empty.
fn parse(data: &[u8]) -> Input {
    let text = String::from_utf8_lossy(data);
    let mut input = Input {
        routes: Vec::new(),
        requests: Vec::new(),
    };
    for line in text.split('\n') {
        let mut f = line.split('\t');
        let mut next = || f.next().unwrap_or("");
        match next() {
            "R" => input.routes.push(RouteDef {
                hosts: list(next(), ','),
                path: next().to_string(),
                exact: next() == "e",
                methods: list(next(), ','),
                headers: pairs(next()),
                priority: next().parse().unwrap_or(0),
            }),
            "Q" => input.requests.push(Req {
                host: next().to_string(),
                method: next().to_string(),
                path: next().to_string(),
                headers: pairs(next()),
            }),
            _ => {}
        }
    }
    input
}

fuzz_target!(|data: &[u8]| {
    let input = parse(data);
    let mut compiled: Vec<(Matcher, usize)> = Vec::new();
    for (i, r) in input.routes.iter().take(MAX_ROUTES).enumerate() {
        let headers: Vec<(String, String)> =
            r.headers.iter().take(MAX_HEADER_RULES).cloned().collect();
        let id = format!("r{i}");
        if let Ok(m) = Matcher::new(
            &id, &r.hosts, &r.path, r.exact, &r.methods, &headers, r.priority,
        ) {
            compiled.push((m, i));
        }
    }
    let singles: Vec<Router<usize>> = compiled
        .iter()
        .map(|e| Router::new(vec![e.clone()]))
        .collect();
    let router = Router::new(compiled);
    assert_eq!(router.len(), singles.len());

    for req in input.requests.iter().take(MAX_REQUESTS) {
        let Ok(method) = Method::from_bytes(req.method.as_bytes()) else {
            continue;
        };
        let mut headers = HeaderMap::new();
        for (n, v) in &req.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                headers.append(n, v);
            }
        }
        // The proxy lower-cases the host and drops the port before the lookup.
        let host = req.host.to_ascii_lowercase();
        let path = req.path.as_str();
        let alone: Vec<usize> = singles
            .iter()
            .filter_map(|r| r.find(&host, &method, path, &headers).map(|f| *f.value))
            .collect();
        let Some(found) = router.find(&host, &method, path, &headers) else {
            assert!(
                alone.is_empty(),
                "routes {alone:?} match alone but the router found none"
            );
            continue;
        };
        assert!(
            alone.contains(found.value),
            "the router chose route {} which does not match alone (alone: {alone:?})",
            found.value
        );
        let rest = path
            .get(found.matched_len..)
            .expect("matched_len is inside the path, on a char boundary");
        assert!(
            rest.is_empty() || rest.starts_with('/'),
            "a match must end at a segment boundary: {path:?} at {}",
            found.matched_len
        );
        for (_, v) in &found.params {
            assert!(
                !v.is_empty() && !v.contains('/'),
                "bad parameter value {v:?}"
            );
        }
        for rule in [
            Rewrite::StripPrefix,
            Rewrite::ReplacePrefix("/up/".into()),
            Rewrite::Template("/t/{*}".into()),
        ] {
            let out = rewrite(&rule, path, found.matched_len, &found.params);
            assert!(out.starts_with('/'), "{rule:?} gave {out:?}");
        }
    }
});

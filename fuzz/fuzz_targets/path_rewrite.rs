//! Path rewriting on fuzzed rules, route patterns and request paths: once with an
//! arbitrary match length and parameters (never panics, always an absolute path), and
//! once with what the router really matched, where each rule's output is known:
//! `strip_prefix` gives the unmatched rest, `replace_prefix` keeps it at the end, and
//! a template without placeholders is copied as it is. The result then goes through
//! the same URI building as the proxy.
#![no_main]

use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Uri};
use libfuzzer_sys::fuzz_target;
use raftgate_node::proxy::rewrite::rewrite;
use raftgate_node::proxy::router::{Matcher, Router};
use raftgate_store::model::Rewrite;

struct Input {
    rule: Rewrite,
    pattern: String,
    exact: bool,
    path: String,
    query: Option<String>,
    raw_matched_len: usize,
    raw_params: Vec<(String, String)>,
}

/// Four tab-separated lines: `strip|replace|template\targ`, `pattern\te|p`,
/// `path\tquery`, `matched_len\tname:value;…` (the last for the raw call).
fn parse(data: &[u8]) -> Input {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n').map(|l| l.split('\t').collect::<Vec<_>>());
    let mut line = || lines.next().unwrap_or_default();
    let field = |l: &[&str], i: usize| l.get(i).copied().unwrap_or("").to_string();
    let (r, p, q, raw) = (line(), line(), line(), line());
    let rule = match r.first().copied() {
        Some("strip") => Rewrite::StripPrefix,
        Some("replace") => Rewrite::ReplacePrefix(field(&r, 1)),
        _ => Rewrite::Template(field(&r, 1)),
    };
    Input {
        rule,
        pattern: field(&p, 0),
        exact: field(&p, 1) == "e",
        path: field(&q, 0),
        query: q.get(1).map(|s| s.to_string()),
        raw_matched_len: field(&raw, 0).parse().unwrap_or(0),
        raw_params: field(&raw, 1)
            .split(';')
            .filter_map(|p| p.split_once(':'))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    }
}

/// What the rewrite makes of a result: empty is `/`, a missing leading `/` is added.
fn absolute(s: &str) -> String {
    if s.is_empty() {
        "/".to_string()
    } else if s.starts_with('/') {
        s.to_string()
    } else {
        format!("/{s}")
    }
}

fuzz_target!(|data: &[u8]| {
    let input = parse(data);
    let rule = input.rule;
    let path = input.path.as_str();

    let params: Vec<(String, &str)> = input
        .raw_params
        .iter()
        .map(|(n, v)| (n.clone(), v.as_str()))
        .collect();
    let out = rewrite(&rule, path, input.raw_matched_len, &params);
    assert!(out.starts_with('/'), "{rule:?} gave {out:?}");

    let Ok(m) = Matcher::new("r", &[], &input.pattern, input.exact, &[], &[], 0) else {
        return;
    };
    let router = Router::new(vec![(m, ())]);
    let Some(found) = router.find("h", &Method::GET, path, &HeaderMap::new()) else {
        return;
    };
    let rest = &path[found.matched_len..];
    let out = rewrite(&rule, path, found.matched_len, &found.params);
    assert!(out.starts_with('/'), "{rule:?} gave {out:?}");
    match &rule {
        Rewrite::StripPrefix => assert_eq!(out, absolute(rest)),
        Rewrite::ReplacePrefix(_) => assert!(out.ends_with(rest), "{out:?} lost {rest:?}"),
        Rewrite::Template(t) if !t.contains('{') => assert_eq!(out, absolute(t)),
        Rewrite::Template(_) => {}
    }

    // The proxy's next step: a bad result is a 400, never a panic.
    let with_query = match input.query.as_deref().filter(|q| !q.is_empty()) {
        Some(q) => format!("{out}?{q}"),
        None => out,
    };
    if let Ok(pq) = with_query.parse::<PathAndQuery>() {
        let _ = Uri::builder()
            .scheme("http")
            .authority("upstream:8080")
            .path_and_query(pq)
            .build();
    }
});

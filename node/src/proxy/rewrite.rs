//! Path rewriting: what a route does to the request path before it goes upstream.
//! The query string is always kept as it came.

use raftgate_store::model::Rewrite;

/// The upstream path for `path`, of which the route's pattern matched the first
/// `matched_len` bytes capturing `params`. Template placeholders are `{name}` for a
/// captured parameter and `{*}` for the unmatched rest of the path (without its
/// leading `/`); unknown names become empty.
pub fn rewrite(
    rule: &Rewrite,
    path: &str,
    matched_len: usize,
    params: &[(String, &str)],
) -> String {
    let rest = path.get(matched_len..).unwrap_or("");
    let out = match rule {
        Rewrite::StripPrefix => rest.to_string(),
        Rewrite::ReplacePrefix(prefix) => format!("{}{}", prefix.trim_end_matches('/'), rest),
        Rewrite::Template(t) => {
            let mut out = String::with_capacity(t.len() + rest.len());
            let mut s = t.as_str();
            while let Some(open) = s.find('{') {
                out.push_str(&s[..open]);
                let Some(close) = s[open..].find('}') else {
                    out.push_str(&s[open..]);
                    s = "";
                    break;
                };
                let name = &s[open + 1..open + close];
                if name == "*" {
                    out.push_str(rest.trim_start_matches('/'));
                } else if let Some((_, v)) = params.iter().find(|(n, _)| n == name) {
                    out.push_str(v);
                }
                s = &s[open + close + 1..];
            }
            out.push_str(s);
            out
        }
    };
    if out.is_empty() {
        "/".to_string()
    } else if !out.starts_with('/') {
        format!("/{out}")
    } else {
        out
    }
}

/// The request path with its dot segments (`.`, `..`, and their percent-encoded forms
/// `%2e`, `%2e%2e`) removed as RFC 3986 §5.2.4 says, or `None` when it has none — the
/// common case, found with one scan. Routing and forwarding use the result, so
/// `/public/../admin` is matched as `/admin` and never reaches an upstream that would
/// resolve it behind a prefix route (what nginx, Envoy's `normalize_path` and Kong do).
/// A `..` above the root stays at the root.
pub fn normalize_dot_segments(path: &str) -> Option<String> {
    let is_dot = |seg: &str| seg == "." || seg.eq_ignore_ascii_case("%2e");
    let is_dot_dot = |seg: &str| {
        matches!(seg.len(), 2 | 4 | 6) && seg.to_ascii_lowercase().replace("%2e", ".").eq("..")
    };
    // Most paths hold neither `.` nor `%`: one byte scan, no allocation.
    if !path.bytes().any(|b| b == b'.' || b == b'%')
        || !path.split('/').any(|seg| is_dot(seg) || is_dot_dot(seg))
    {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        if is_dot(seg) {
            // A trailing `.` leaves the directory: `/a/.` is `/a/`.
            if i == last {
                out.push("");
            }
        } else if is_dot_dot(seg) {
            out.pop();
            if i == last {
                out.push("");
            }
        } else {
            out.push(seg);
        }
    }
    Some(format!("/{}", out.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_removed_before_routing() {
        for (path, want) in [
            ("/public/../admin", Some("/admin")),
            ("/public/%2e%2e/admin", Some("/admin")),
            ("/public/%2E./admin", Some("/admin")),
            ("/a/./b/../c", Some("/a/c")),
            ("/a/b/..", Some("/a/")),
            ("/a/b/.", Some("/a/b/")),
            ("/../../etc/passwd", Some("/etc/passwd")),
            ("/..", Some("/")),
            ("/a/%2e/b", Some("/a/b")),
            ("/a/..b/c", None),
            ("/a/.well-known/x", None),
            ("/a/b..", None),
            ("/v1/chat/completions", None),
            ("/", None),
            ("/a//b", None),
        ] {
            assert_eq!(normalize_dot_segments(path).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn strip_and_replace_prefix() {
        assert_eq!(
            rewrite(&Rewrite::StripPrefix, "/api/users/7", 4, &[]),
            "/users/7"
        );
        assert_eq!(rewrite(&Rewrite::StripPrefix, "/api", 4, &[]), "/");
        assert_eq!(rewrite(&Rewrite::StripPrefix, "/api/", 4, &[]), "/");
        let r = Rewrite::ReplacePrefix("/v2/".into());
        assert_eq!(rewrite(&r, "/api/users", 4, &[]), "/v2/users");
        assert_eq!(rewrite(&r, "/api", 4, &[]), "/v2");
        let root = Rewrite::ReplacePrefix("/".into());
        assert_eq!(rewrite(&root, "/api/users", 4, &[]), "/users");
    }

    #[test]
    fn template_uses_params_and_rest() {
        let t = Rewrite::Template("/internal/{id}/profile/{*}".into());
        let params = [("id".to_string(), "42")];
        assert_eq!(
            rewrite(&t, "/users/42/a/b", 9, &params),
            "/internal/42/profile/a/b"
        );
        let t = Rewrite::Template("items-{id}".into());
        assert_eq!(
            rewrite(&t, "/x/9", 4, &[("id".to_string(), "9")]),
            "/items-9"
        );
        let unknown = Rewrite::Template("/a/{nope}/b".into());
        assert_eq!(rewrite(&unknown, "/x", 2, &[]), "/a//b");
    }
}

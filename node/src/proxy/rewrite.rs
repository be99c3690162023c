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

#[cfg(test)]
mod tests {
    use super::*;

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

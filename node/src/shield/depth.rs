//! The nesting depth of a JSON text, found by one pass over its bytes before it is
//! parsed. serde_json stops at 128 levels by itself, but quietly, with a syntax-like
//! error; this check names the limit (`400 json_too_deep`) and keeps the allowed depth
//! well under anything that could exhaust a stack in later recursive code.

/// The body nests deeper than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("JSON nests deeper than {limit} levels of arrays and objects")]
pub struct TooDeep {
    pub limit: usize,
}

/// Checks that no array or object in `bytes` sits deeper than `limit` (a flat object is
/// depth 1). Brackets inside strings do not count; malformed JSON is left to the parser.
pub fn check_depth(bytes: &[u8], limit: usize) -> Result<(), TooDeep> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(TooDeep { limit });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(n: usize) -> String {
        format!("{}{}", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn depth_is_counted_and_the_limit_is_inclusive() {
        check_depth(br#"{"a": 1}"#, 1).expect("depth 1");
        check_depth(nested(64).as_bytes(), 64).expect("at the limit");
        assert_eq!(
            check_depth(nested(65).as_bytes(), 64),
            Err(TooDeep { limit: 64 })
        );
        check_depth(b"3", 1).expect("a scalar has depth 0");
        // Siblings do not add up.
        check_depth(br#"[[1],[2],[3],{"a":[4]}]"#, 3).expect("siblings");
        assert!(check_depth(br#"{"a":{"b":{"c":{}}}}"#, 3).is_err());
    }

    #[test]
    fn brackets_in_strings_and_escapes_are_not_nesting() {
        let s = format!(r#"{{"p": "{}", "q": "\"[[[\\"}}"#, "[".repeat(10_000));
        check_depth(s.as_bytes(), 1).expect("brackets inside strings");
        // An escaped backslash ends before the quote, so the string closes there.
        let t = br#"["a\\", [[1]]]"#;
        assert!(check_depth(t, 2).is_err());
        check_depth(t, 3).expect("depth 3");
    }

    #[test]
    fn hostile_inputs_end_quickly() {
        check_depth(&[], 1).expect("empty");
        assert!(check_depth(nested(1_000_000).as_bytes(), 64).is_err());
        // Stray closers and an unterminated string are for the parser to refuse.
        check_depth(b"]]]]}}}", 1).expect("no underflow");
        check_depth(b"\"[[[[[[", 1).expect("all inside a string");
        let v: Result<serde_json::Value, _> = serde_json::from_slice(nested(10_000).as_bytes());
        assert!(
            v.is_err(),
            "serde_json refuses it too, but without naming why"
        );
    }
}

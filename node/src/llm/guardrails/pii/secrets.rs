//! Secrets: known API-token formats, PEM private keys, values assigned to
//! secret-looking names, and bare high-entropy tokens.

use super::*;

// Secrets:
// - known token formats: OpenAI/Anthropic `sk-…` (20+ chars with a letter and a digit),
//   Stripe `sk_live_`/`sk_test_`/`rk_live_`/`rk_test_`/`pk_live_`, AWS `AKIA`/`ASIA` + 16,
//   GitHub `ghp_`/`gho_`/`ghs_`/`ghu_`/`ghr_` + 36 and `github_pat_`, Slack `xox[abpr]-`,
//   Google `AIza` + 35, GitLab `glpat-`, npm `npm_`, Hugging Face `hf_`, PyPI
//   `pypi-AgE`, Shopify `shpat_`…, DigitalOcean `dop_v1_`, SendGrid `SG.`, JWTs
//   (`eyJ….eyJ….…`), PEM private keys (the whole block: to its END line, or the
//   base64 lines after the header);
// - a value assigned to a secret-looking name (`api_key=…`, `"password": "…"`,
//   `Authorization: Bearer …`) with 8+ characters holding both a letter and a digit;
// - a bare token of 32-128 base64/base64url characters mixing lower case, upper case
//   and digits, with a Shannon entropy of at least 4.2 bits per character, less than
//   70 % of it in words (`GetUserById2FactorAuthToken` is an identifier) and no
//   path-like segment, no lower-case id prefix (`msg_…`, `chatcmpl-…`), and not
//   inline data (`base64,…`) nor a public key or certificate. Pure hex strings (git
//   SHAs, hashes, UUIDs) are not secrets unless assigned to a secret-looking name.

static KNOWN_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"(?-u:\b)(?:",
        r"sk-[A-Za-z0-9_\-]{20,}",
        r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
        r"|pk_live_[A-Za-z0-9]{16,}",
        r"|(?:AKIA|ASIA)[A-Z0-9]{16}",
        r"|gh[pousr]_[A-Za-z0-9]{36,}",
        r"|github_pat_[A-Za-z0-9_]{22,}",
        r"|xox[abpr]-[A-Za-z0-9\-]{10,}",
        r"|AIza[0-9A-Za-z_\-]{35}",
        r"|glpat-[A-Za-z0-9_\-]{20,}",
        r"|npm_[A-Za-z0-9]{36}",
        r"|hf_[A-Za-z0-9]{30,}",
        r"|pypi-AgE[A-Za-z0-9_\-]{50,}",
        r"|shp(?:at|ss|ca|pa)_[A-Fa-f0-9]{32}",
        r"|dop_v1_[a-f0-9]{64}",
        r"|SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
        r"|eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        r")",
    ))
});
/// A PEM block: its label, then up to the END line, or else the lines holding only
/// base64 after the header.
static PEM: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"-----BEGIN ((?:[A-Z0-9]+ )*[A-Z0-9]+)-----(?:",
        r"[A-Za-z0-9+/=\s:,\-]*?-----END (?:[A-Z0-9]+ )*[A-Z0-9]+-----",
        r"|(?:\r?\n(?:[ \t]*[A-Za-z0-9+/=]+[ \t]*(?:\r?\n|$))*)?)",
    ))
});
static ASSIGNED_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"(?-u:\b)(?:(?:",
        r"(?:api|access|secret|private|client|auth|refresh|session)[_\-]?(?:key|secret|token)",
        r"|apikey|secret|token|password|passwd|pwd|passphrase",
        r#")["']?\s{0,3}(?:=|:|=>)\s{0,3}["']?|(?:bearer|basic)\s+)"#,
        r"([A-Za-z0-9_\-+/=.~!@#$%^*]{8,200})",
    ))
});

/// Names that make the string assigned to them a secret (JSON keys in tool arguments).
pub(crate) fn is_secret_name(name: &str) -> bool {
    static NAME: LazyLock<Regex> = LazyLock::new(|| {
        compile(concat!(
            r"(?i)^(?:(?:api|access|secret|private|client|auth|refresh|session)[_\-]?(?:key|secret|token)",
            r"|apikey|secret|token|password|passwd|pwd|passphrase|authorization)$",
        ))
    });
    name.len() <= 40 && NAME.is_match(name)
}

/// Whether a value assigned to a secret-looking name is one.
pub(crate) fn secret_value_ok(v: &str) -> bool {
    (8..=200).contains(&v.len())
        && v.bytes().any(|b| b.is_ascii_alphabetic())
        && v.bytes().any(|b| b.is_ascii_digit())
        && !v.starts_with("[REDACTED")
}

/// Known token formats and private keys; returns the spans of the other PEM blocks
/// (public keys, certificates), whose base64 lines are not secrets.
pub(super) fn known_secrets(text: &str, out: &mut Vec<Found>) -> Vec<(usize, usize)> {
    for m in KNOWN_SECRET.find_iter(text) {
        let s = m.as_str();
        if let Some(tail) = s.strip_prefix("sk-") {
            if !tail.bytes().any(|b| b.is_ascii_digit())
                || !tail.bytes().any(|b| b.is_ascii_alphabetic())
            {
                continue;
            }
        }
        if is_word(next_char(text, m.end())) || prev_char(text, m.start()) == Some('\\') {
            continue;
        }
        out.push(Found {
            start: m.start(),
            end: m.end(),
            cat: Cat::Secret,
        });
    }
    let mut public = Vec::new();
    if text.contains("-----BEGIN") {
        for c in PEM.captures_iter(text) {
            let (Some(m), Some(label)) = (c.get(0), c.get(1)) else {
                continue;
            };
            if label.as_str().contains("PRIVATE") {
                out.push(Found {
                    start: m.start(),
                    end: m.end(),
                    cat: Cat::Secret,
                });
            } else {
                public.push((m.start(), m.end()));
            }
        }
    }
    public
}

/// Values assigned to secret-looking names. The names are matched in an ASCII
/// lower-cased copy (same byte offsets), which lets the regex engine look for them as
/// plain literals.
pub(super) fn assigned_secrets(text: &str, out: &mut Vec<Found>) {
    let lower = text.to_ascii_lowercase();
    for c in ASSIGNED_SECRET.captures_iter(&lower) {
        let Some(v) = c.get(1) else { continue };
        let Some(value) = text.get(v.start()..v.end()) else {
            continue;
        };
        // A sentence's full stop or comma after the value is not part of it.
        let value = value.trim_end_matches(['.', ',', '!']);
        let end = v.start() + value.len();
        if secret_value_ok(value) && !is_word(next_char(text, v.end())) {
            out.push(Found {
                start: v.start(),
                end,
                cat: Cat::Secret,
            });
        }
    }
}

pub(super) fn generic_secrets(
    text: &str,
    runs: &[usize],
    public_pem: &[(usize, usize)],
    out: &mut Vec<Found>,
) {
    let b = text.as_bytes();
    let token = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'_' | b'-');
    let mut covered = 0;
    for &r in runs {
        if r < covered {
            continue;
        }
        // The whole run of token characters around this digit.
        let start = r - b[..r].iter().rev().take_while(|c| token(c)).count();
        let mut end = r + b[r..].iter().take_while(|c| token(c)).count();
        covered = end;
        if end - start < 32 {
            continue;
        }
        end += b[end..].iter().take(2).take_while(|&&c| c == b'=').count();
        // Glued to a word, escaped, or inline data (`data:image/png;base64,…`).
        if is_word(next_char(text, end))
            || matches!(prev_char(text, start), Some('\\' | '.' | '%' | '='))
            || b[..start].ends_with(b"base64,")
            || public_pem.iter().any(|&(s, e)| (s..e).contains(&start))
        {
            continue;
        }
        if generic_secret_ok(&text[start..end]) {
            out.push(Found {
                start,
                end,
                cat: Cat::Secret,
            });
        }
    }
}

fn generic_secret_ok(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let b = body.as_bytes();
    // An object id behind a lower-case type prefix: `msg_01XFD…`, `chatcmpl-9x…`,
    // `call_…` (known secret prefixes are matched before).
    let prefix = b.iter().take_while(|c| c.is_ascii_lowercase()).count();
    if (2..=12).contains(&prefix) && matches!(b.get(prefix), Some(b'_' | b'-')) {
        return false;
    }
    if !(32..=128).contains(&b.len()) {
        return false;
    }
    let (lower, upper, digit) = (
        b.iter().any(u8::is_ascii_lowercase),
        b.iter().any(u8::is_ascii_uppercase),
        b.iter().any(u8::is_ascii_digit),
    );
    if !(lower && upper && digit) {
        return false;
    }
    if word_coverage(b) * 10 >= b.len() * 7 {
        return false;
    }
    // `/usr/lib/…`, `a/b/c`: a path, not base64.
    if body.contains('/')
        && body.split('/').any(|seg| {
            seg.is_empty() || (seg.len() >= 3 && seg.bytes().all(|c| c.is_ascii_lowercase()))
        })
    {
        return false;
    }
    entropy(b) >= 4.2
}

/// How many bytes are in words (`[A-Z]?[a-z]{2,}`): at least 70 % in identifiers such
/// as `GetUserById2FactorAuthTokenHandler`, rarely over 60 % in random base64.
fn word_coverage(b: &[u8]) -> usize {
    let mut covered = 0;
    let mut i = 0;
    while i < b.len() {
        let run = b[i..].iter().take_while(|c| c.is_ascii_lowercase()).count();
        if run >= 2 {
            covered += run + usize::from(i > 0 && b[i - 1].is_ascii_uppercase());
            i += run;
        } else {
            i += 1;
        }
    }
    covered
}

/// Shannon entropy in bits per byte.
pub(super) fn entropy(b: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &c in b {
        counts[usize::from(c)] += 1;
    }
    let n = b.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

//! IP addresses, v4 and v6.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

// IP addresses: dotted quads with valid octets (std's parser: 0-255, no leading zeros)
// not inside a longer dotted run (`1.2.3.4.5`) nor after "version"/"release"/"build";
// IPv6 candidates (hex groups and colons) that std parses, with at least one digit and
// two non-empty groups (not `::`, `a::b`, `std::fs`), not glued to a word. Loopback and
// unspecified addresses (`127.0.0.1`, `0.0.0.0`, `::1`) identify nobody and are left.

static IPV6: LazyLock<Regex> =
    LazyLock::new(|| compile(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}"));

pub(super) fn ipv4s(text: &str, runs: &[usize], out: &mut Vec<Found>) {
    let b = text.as_bytes();
    for &r in runs {
        if glued(text, r) || matches!(prev_char(text, r), Some('.' | '-' | '\\')) {
            continue;
        }
        // Four groups of 1-3 digits joined by dots.
        let mut i = r;
        let mut ok = true;
        for octet in 0..4 {
            let end = digits_end(b, i);
            if end == i || end - i > 3 {
                ok = false;
                break;
            }
            i = end;
            if octet < 3 {
                if b.get(i) != Some(&b'.') {
                    ok = false;
                    break;
                }
                i += 1;
            }
        }
        if !ok || is_word(next_char(text, i)) {
            continue;
        }
        let after = next_char(text, i);
        if matches!(after, Some('.' | '-')) && is_word(char_after_next(text, i)) {
            continue;
        }
        let ip = text[r..i].parse::<Ipv4Addr>();
        if ip.is_ok_and(|ip| !ip.is_loopback() && !ip.is_unspecified()) && !after_version(text, r) {
            out.push(Found {
                start: r,
                end: i,
                cat: Cat::IpAddress,
            });
        }
    }
}

/// Whether the dotted quad at `at` follows a word such as "version" (`Version 10.0.19045.3803`
/// is caught by the octet check, `version 1.8.1.6` by this one).
fn after_version(text: &str, at: usize) -> bool {
    let before = text[..at].trim_end_matches([' ', ':', 'v', 'V']);
    let start = before.len().saturating_sub(12);
    let Some(tail) = before.get(start..) else {
        return false;
    };
    let tail = tail.to_ascii_lowercase();
    ["version", "release", "build", "firmware"]
        .iter()
        .any(|w| tail.ends_with(w))
}

pub(super) fn ipv6s(text: &str, out: &mut Vec<Found>) {
    for m in IPV6.find_iter(text) {
        let mut s = m.as_str();
        if s.ends_with(':') && !s.ends_with("::") {
            s = &s[..s.len() - 1];
        }
        let (start, end) = (m.start(), m.start() + s.len());
        let before = prev_char(text, start);
        if is_word(before) || matches!(before, Some(':' | '.' | '\\')) {
            continue;
        }
        let after = next_char(text, end);
        if is_word(after) || (after == Some(':') && end == m.end()) {
            continue;
        }
        let groups = s.split([':', '.']).filter(|g| !g.is_empty()).count();
        if groups < 2 || !s.bytes().any(|b| b.is_ascii_digit()) {
            continue;
        }
        let ip = s.parse::<Ipv6Addr>();
        if ip.is_ok_and(|ip| !ip.is_loopback() && !ip.is_unspecified()) {
            out.push(Found {
                start,
                end,
                cat: Cat::IpAddress,
            });
        }
    }
}

//! Personal-data detectors. Each one is a candidate regex followed by a validation in
//! code (checksums, lengths, boundaries), tuned for precision: a false positive blocks a
//! real user, a miss only lets through what the client sent anyway.
//!
//! [`scan`] runs every detector, whatever the configured categories, and keeps a set of
//! non-overlapping matches (earliest first, then longest, then the most specific
//! category), so that e.g. the digits of an IBAN are never also reported as a card
//! number. The caller filters the result by the configured categories.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

use super::Cat;

/// One match: a byte range of the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    pub start: usize,
    pub end: usize,
    pub cat: Cat,
}

/// Shortest text any detector can match (`a@b.co`).
const MIN_LEN: usize = 6;

/// Every PII match in `text`, sorted and non-overlapping.
pub(super) fn scan(text: &str) -> Vec<Found> {
    let mut out = Vec::new();
    if text.len() < MIN_LEN {
        return out;
    }
    let bytes = text.as_bytes();
    let has_digit = bytes.iter().any(u8::is_ascii_digit);
    if bytes.contains(&b'@') {
        emails(text, &mut out);
    }
    if has_digit {
        phones(text, &mut out);
        cards(text, &mut out);
        ibans(text, &mut out);
        if bytes.contains(&b'.') {
            ipv4s(text, &mut out);
        }
    }
    if bytes.contains(&b':') {
        ipv6s(text, &mut out);
    }
    secrets(text, has_digit, &mut out);
    resolve(out)
}

/// Keeps non-overlapping matches: earliest start first, then the longest, then the
/// category that is the most specific.
fn resolve(mut found: Vec<Found>) -> Vec<Found> {
    if found.len() < 2 {
        return found;
    }
    found.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end), rank(f.cat)));
    let mut kept: Vec<Found> = Vec::with_capacity(found.len());
    for f in found {
        if kept.last().is_none_or(|k| f.start >= k.end) {
            kept.push(f);
        }
    }
    kept
}

/// Tie-break between matches of the same span (lowest wins).
fn rank(cat: Cat) -> u8 {
    match cat {
        Cat::Secret => 0,
        Cat::Iban => 1,
        Cat::Card => 2,
        Cat::Email => 3,
        Cat::IpAddress => 4,
        Cat::Phone => 5,
        _ => 6,
    }
}

fn prev_char(text: &str, at: usize) -> Option<char> {
    text.get(..at).and_then(|s| s.chars().next_back())
}

fn next_char(text: &str, at: usize) -> Option<char> {
    text.get(at..).and_then(|s| s.chars().next())
}

/// The character after the one at `at` (which is ASCII in every use).
fn char_after_next(text: &str, at: usize) -> Option<char> {
    text.get(at..).and_then(|s| s.chars().nth(1))
}

fn is_word(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

fn compile(re: &str) -> Regex {
    // The patterns are constants, exercised by the tests.
    Regex::new(re).expect("guardrail pattern")
}

// ---------------------------------------------------------------------------------
// Email: ASCII local part, a domain with at least one dot and an alphabetic TLD of 2-24
// letters (not an image extension: `icon@2x.png`).

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"[A-Za-z0-9._%+\-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}",
    )
});

const NOT_TLDS: [&str; 12] = [
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "heic", "avif",
];

fn emails(text: &str, out: &mut Vec<Found>) {
    for m in EMAIL.find_iter(text) {
        let s = m.as_str();
        let Some(at) = s.find('@') else { continue };
        // A local part never starts or ends with a dot, nor holds two in a row.
        let lead = s[..at].bytes().take_while(|&b| b == b'.').count();
        let local = &s[lead..at];
        if local.is_empty() || local.ends_with('.') || local.contains("..") {
            continue;
        }
        let tld = s.rsplit('.').next().unwrap_or("");
        if NOT_TLDS.iter().any(|t| tld.eq_ignore_ascii_case(t)) {
            continue;
        }
        // The domain must end here (`a@b.com-x`, `a@b.comé` are something else).
        let after = next_char(text, m.end());
        if is_word(after) || after == Some('-') || after == Some('@') {
            continue;
        }
        out.push(Found {
            start: m.start() + lead,
            end: m.end(),
            cat: Cat::Email,
        });
    }
}

// ---------------------------------------------------------------------------------
// Phone numbers. Digit groups joined by single separators (space, `-`, `.`, parentheses)
// with 8-15 digits in all, standing alone (no letter, digit, `-`, `.`, `/` glued on
// either side), and either:
// - international: `+` and a country code (no leading 0), separators optional;
// - national: a trunk `0` first (`030 1234567`, `06 12 34 56 78`, `(0151) 1234567`) or
//   the North American 3-3-4 shape (`(415) 555-2671`, `415.555.2671`, `1-800-555-1234`),
//   with at least one separator, at most 6 groups, every group after the first of 2+
//   digits, 3+ groups when the only separator is `.` (so `0.12345678` is a decimal),
//   and not starting with a date (`05.01.2024`, `05-01-2024 14`).
// Plain digit runs (order ids, timestamps, `1700000000000`) are never phone numbers.

static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"(?:\+\(?|\(|(?-u:\b))[0-9]{1,15}(?:(?:[ .\-]\(?|\)[ .\-]?|\()[0-9]{1,15})*")
});

fn phones(text: &str, out: &mut Vec<Found>) {
    for m in PHONE.find_iter(text) {
        let (mut start, end) = (m.start(), m.end());
        let mut s = m.as_str();
        if s.starts_with('(') && s.matches('(').count() != s.matches(')').count() {
            // `(call 0151 1234567)`: the opening parenthesis is not part of the number.
            start += 1;
            s = &s[1..];
        }
        if phone_ok(s) && phone_stands_alone(text, start, end) {
            out.push(Found {
                start,
                end,
                cat: Cat::Phone,
            });
        }
    }
}

fn phone_stands_alone(text: &str, start: usize, end: usize) -> bool {
    let before = prev_char(text, start);
    if is_word(before) || matches!(before, Some('-' | '.' | '/' | '+' | '#' | '\\')) {
        return false;
    }
    let after = next_char(text, end);
    if is_word(after) || after == Some('+') {
        return false;
    }
    // `0151-1234567-99`, `030.1234.5678.9` continue with something else.
    !(matches!(after, Some('-' | '.' | '/' | ',')) && is_word(char_after_next(text, end)))
}

fn phone_ok(s: &str) -> bool {
    if s.matches('(').count() != s.matches(')').count() || s.matches('(').count() > 1 {
        return false;
    }
    let international = s.starts_with('+');
    let body = s.trim_start_matches('+');
    // Digit groups and the separators between them.
    let mut groups: Vec<&str> = Vec::new();
    let mut seps: Vec<u8> = Vec::new();
    let mut prev_end = None;
    for part in body.split(|c: char| !c.is_ascii_digit()) {
        if part.is_empty() {
            continue;
        }
        let start = part.as_ptr() as usize - body.as_ptr() as usize;
        if let Some(prev_end) = prev_end {
            // The separator between the previous group and this one (`(` if only
            // parentheses).
            let between = body.as_bytes().get(prev_end..start).unwrap_or_default();
            let sep = between
                .iter()
                .find(|b| matches!(b, b' ' | b'-' | b'.'))
                .copied()
                .unwrap_or(b'(');
            seps.push(sep);
        }
        prev_end = Some(start + part.len());
        groups.push(part);
    }
    let digits: usize = groups.iter().map(|g| g.len()).sum();
    if !(8..=15).contains(&digits) || groups.is_empty() {
        return false;
    }
    if international {
        return !body.trim_start_matches('(').starts_with('0') && groups.len() <= 7;
    }
    if groups.len() < 2 || groups.len() > 6 || groups[1..].iter().any(|g| g.len() < 2) {
        return false;
    }
    if seps.iter().all(|&b| b == b'.') && groups.len() < 3 {
        return false;
    }
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let nanp = match lens.as_slice() {
        [3, 3, 4] => !groups[0].starts_with(['0', '1']),
        [1, 3, 3, 4] => groups[0] == "1" && !groups[1].starts_with(['0', '1']),
        _ => false,
    };
    let trunk = body.trim_start_matches('(').starts_with('0');
    (nanp || trunk) && !starts_with_date(&lens, &seps)
}

/// `dd.mm.yyyy`, `dd-mm-yy`, `yyyy-mm-dd`, followed by nothing or another separator.
fn starts_with_date(lens: &[usize], seps: &[u8]) -> bool {
    if lens.len() < 3 || seps.len() < 2 || seps[0] != seps[1] || seps[0] == b' ' {
        return false;
    }
    let shape = matches!(
        (lens[0], lens[1], lens[2]),
        (4, 2, 2) | (1..=2, 1..=2, 2) | (1..=2, 1..=2, 4)
    );
    shape && seps.get(2).is_none_or(|&s| s != seps[0])
}

// ---------------------------------------------------------------------------------
// Payment cards: 13-19 digits, optionally in groups split by one kind of separator
// (spaces or dashes) as printed (4-4-4-4(-x) or Amex/Diners 4-6-5 / 4-6-4), a major
// network prefix (2221-2720, 3, 4, 5, 6), and a valid Luhn check digit.

static CARD: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?-u:\b)[2-6][0-9](?:[ \-]?[0-9]){11,17}(?-u:\b)"));

fn cards(text: &str, out: &mut Vec<Found>) {
    for m in CARD.find_iter(text) {
        if matches!(prev_char(text, m.start()), Some('.' | ',' | '-' | '+' | '\\')) {
            continue;
        }
        if let Some(len) = card_len(m.as_str()) {
            let end = m.start() + len;
            let after = next_char(text, end);
            if matches!(after, Some('.' | ',' | '-')) && is_word(char_after_next(text, end)) {
                continue;
            }
            out.push(Found {
                start: m.start(),
                end,
                cat: Cat::Card,
            });
        }
    }
}

/// The byte length of the card number that `s` starts with, trying whole groups from
/// the longest.
fn card_len(s: &str) -> Option<usize> {
    let sep = s.bytes().find(|b| !b.is_ascii_digit());
    let Some(sep) = sep else {
        return card_digits_ok(s).then_some(s.len());
    };
    if s.bytes().any(|b| !b.is_ascii_digit() && b != sep) {
        return None;
    }
    let groups: Vec<&str> = s.split(sep as char).collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    for n in (2..=groups.len()).rev() {
        let l = &lens[..n];
        let printed = matches!(l, [4, 6, 5] | [4, 6, 4])
            || (l[..n - 1].iter().all(|&x| x == 4) && (1..=4).contains(&l[n - 1]));
        if !printed {
            continue;
        }
        let len = l.iter().sum::<usize>() + (n - 1);
        let digits: String = s[..len].chars().filter(char::is_ascii_digit).collect();
        if card_digits_ok(&digits) {
            return Some(len);
        }
    }
    None
}

fn card_digits_ok(digits: &str) -> bool {
    let d = digits.as_bytes();
    if !(13..=19).contains(&d.len()) {
        return false;
    }
    let prefix_ok = match d[0] {
        b'3' | b'4' | b'5' | b'6' => true,
        b'2' => digits
            .get(..4)
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| (2221..=2720).contains(&p)),
        _ => false,
    };
    prefix_ok && luhn(d)
}

pub(super) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.iter().rev().enumerate() {
        let mut d = u32::from(b.wrapping_sub(b'0'));
        if d > 9 {
            return false;
        }
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

// ---------------------------------------------------------------------------------
// IBANs: two capital letters, two check digits, then the BBAN (capitals and digits,
// single spaces allowed anywhere), as long as the country's IBAN (table below) or 15-34
// characters for other countries, ending at a word boundary, with ISO 7064 mod-97 = 1.

static IBAN: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}"));

/// IBAN lengths of common countries (SWIFT IBAN registry).
const IBAN_LENGTHS: [(&str, usize); 52] = [
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MT", 31),
    ("NL", 18),
    ("NO", 15),
    ("PL", 28),
    ("PT", 25),
    ("RO", 24),
    ("SA", 24),
    ("SE", 24),
    ("SI", 19),
];

fn ibans(text: &str, out: &mut Vec<Found>) {
    let mut from = 0;
    while let Some(m) = IBAN.find_at(text, from) {
        if let Some(end) = iban_end(text, m.start(), m.as_str()) {
            out.push(Found {
                start: m.start(),
                end,
                cat: Cat::Iban,
            });
            from = end;
        } else {
            // A valid IBAN may start inside a rejected candidate (`AB12 DE89 3704 …`).
            from = m.start() + 4;
        }
    }
}

/// Where the IBAN starting at `start` ends, if `cand` starts with a valid one.
fn iban_end(text: &str, start: usize, cand: &str) -> Option<usize> {
    // (character, byte offset just after it) of every non-space character.
    let chars: Vec<(u8, usize)> = cand
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b != b' ')
        .map(|(i, b)| (b, i + 1))
        .collect();
    let country = cand.get(..2)?;
    let lengths: Vec<usize> = match IBAN_LENGTHS.iter().find(|(c, _)| *c == country) {
        Some(&(_, len)) => vec![len],
        None => (15..=34).rev().collect(),
    };
    for len in lengths {
        let Some(&(_, end)) = chars.get(len.checked_sub(1)?) else {
            continue;
        };
        if is_word(next_char(text, start + end)) {
            continue;
        }
        let raw: Vec<u8> = chars[..len].iter().map(|&(b, _)| b).collect();
        if mod97(&raw) == Some(1) {
            return Some(start + end);
        }
    }
    None
}

/// ISO 7064 MOD 97-10 over the IBAN rearranged (first four characters moved to the end),
/// letters as 10-35.
pub(super) fn mod97(iban: &[u8]) -> Option<u32> {
    if iban.len() < 5 {
        return None;
    }
    let mut rem = 0u32;
    for &b in iban[4..].iter().chain(&iban[..4]) {
        match b {
            b'0'..=b'9' => rem = (rem * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => rem = (rem * 100 + u32::from(b - b'A') + 10) % 97,
            _ => return None,
        }
    }
    Some(rem)
}

// ---------------------------------------------------------------------------------
// IP addresses: dotted quads with valid octets (std's parser: 0-255, no leading zeros)
// not inside a longer dotted run (`1.2.3.4.5`); IPv6 candidates (hex groups and colons)
// that std parses, with at least one digit and two non-empty groups (not `::`, `a::b`,
// `std::fs`), not glued to a word.

static IPV4: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?-u:\b)[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?-u:\b)"));
static IPV6: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}")
});

fn ipv4s(text: &str, out: &mut Vec<Found>) {
    for m in IPV4.find_iter(text) {
        if matches!(prev_char(text, m.start()), Some('.' | '-' | '\\')) {
            continue;
        }
        let after = next_char(text, m.end());
        if matches!(after, Some('.' | '-')) && is_word(char_after_next(text, m.end())) {
            continue;
        }
        if m.as_str().parse::<Ipv4Addr>().is_ok() {
            out.push(Found {
                start: m.start(),
                end: m.end(),
                cat: Cat::IpAddress,
            });
        }
    }
}

fn ipv6s(text: &str, out: &mut Vec<Found>) {
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
        if s.parse::<Ipv6Addr>().is_ok() {
            out.push(Found {
                start,
                end,
                cat: Cat::IpAddress,
            });
        }
    }
}

// ---------------------------------------------------------------------------------
// Secrets:
// - known token formats: OpenAI/Anthropic `sk-…` (20+ chars with a letter and a digit),
//   Stripe `sk_live_`/`sk_test_`/`rk_live_`/`rk_test_`/`pk_live_`, AWS `AKIA`/`ASIA` + 16,
//   GitHub `ghp_`/`gho_`/`ghs_`/`ghu_`/`ghr_` + 36 and `github_pat_`, Slack `xox[abpr]-`,
//   Google `AIza` + 35, GitLab `glpat-`, JWTs (`eyJ….eyJ….…`), PEM private keys
//   (the whole block when its END line is there);
// - a value assigned to a secret-looking name (`api_key=…`, `"password": "…"`,
//   `Authorization: Bearer …`) with 8+ characters holding both a letter and a digit;
// - a bare token of 32-128 base64/base64url characters mixing lower case, upper case
//   and digits, with a Shannon entropy of at least 4.2 bits per character, less than
//   70 % of it in words (`GetUserById2FactorAuthToken` is an identifier) and no
//   path-like segment. Pure hex strings (git
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
        r"|eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        r")",
    ))
});
static PEM: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:[A-Za-z0-9+/=\s:,\-]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----)?",
    )
});
static ASSIGNED_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"(?i)(?-u:\b)(?:(?:",
        r"(?:api|access|secret|private|client|auth|refresh|session)[_\-]?(?:key|secret|token)",
        r"|apikey|secret|token|password|passwd|pwd|passphrase",
        r#")["']?\s{0,3}(?:=|:|=>)\s{0,3}["']?|(?:bearer|basic)\s+)"#,
        r"([A-Za-z0-9_\-+/=.~!@#$%^&*]{8,200})",
    ))
});
static GENERIC_SECRET: LazyLock<Regex> =
    LazyLock::new(|| compile(r"[A-Za-z0-9+/_\-]{32,}={0,2}"));

/// Names that make the string assigned to them a secret (JSON keys in tool arguments).
pub(super) fn is_secret_name(name: &str) -> bool {
    static NAME: LazyLock<Regex> = LazyLock::new(|| {
        compile(concat!(
            r"(?i)^(?:(?:api|access|secret|private|client|auth|refresh|session)[_\-]?(?:key|secret|token)",
            r"|apikey|secret|token|password|passwd|pwd|passphrase|authorization)$",
        ))
    });
    name.len() <= 40 && NAME.is_match(name)
}

/// Whether a value assigned to a secret-looking name is one.
pub(super) fn secret_value_ok(v: &str) -> bool {
    (8..=200).contains(&v.len())
        && v.bytes().any(|b| b.is_ascii_alphabetic())
        && v.bytes().any(|b| b.is_ascii_digit())
        && !v.starts_with("[REDACTED")
}

fn secrets(text: &str, has_digit: bool, out: &mut Vec<Found>) {
    for m in KNOWN_SECRET.find_iter(text) {
        let s = m.as_str();
        if s.starts_with("sk-") {
            let tail = &s[3..];
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
    if text.contains("-----BEGIN") {
        for m in PEM.find_iter(text) {
            out.push(Found {
                start: m.start(),
                end: m.end(),
                cat: Cat::Secret,
            });
        }
    }
    if !has_digit {
        // Every other secret shape holds a digit.
        return;
    }
    for c in ASSIGNED_SECRET.captures_iter(text) {
        let Some(v) = c.get(1) else { continue };
        // A sentence's full stop or comma after the value is not part of it.
        let value = v.as_str().trim_end_matches(['.', ',', '!']);
        let end = v.start() + value.len();
        if secret_value_ok(value) && !is_word(next_char(text, v.end())) {
            out.push(Found {
                start: v.start(),
                end,
                cat: Cat::Secret,
            });
        }
    }
    for m in GENERIC_SECRET.find_iter(text) {
        let before = prev_char(text, m.start());
        if is_word(next_char(text, m.end())) || matches!(before, Some('\\' | '.' | '%' | '=')) {
            continue;
        }
        if generic_secret_ok(m.as_str()) {
            out.push(Found {
                start: m.start(),
                end: m.end(),
                cat: Cat::Secret,
            });
        }
    }
}

fn generic_secret_ok(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let b = body.as_bytes();
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
        && body
            .split('/')
            .any(|seg| seg.is_empty() || (seg.len() >= 3 && seg.bytes().all(|c| c.is_ascii_lowercase())))
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

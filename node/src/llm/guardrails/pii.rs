//! Personal-data detectors. Each one finds candidates (a regex, or by hand from the runs
//! of digits) and validates them in code (checksums, lengths, boundaries), tuned for
//! precision: a false positive blocks a real user, a miss only lets through what the
//! client sent anyway.
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
///
/// Numbers (phones, cards, IBANs, IPv4) and bare tokens all hold a digit: they are
/// parsed by hand from the runs of digits, which keeps a 100 KB prompt to one pass over
/// its bytes plus a little work per number. The other detectors are regexes whose
/// literal parts (`@`, `:`, `sk-`, `password`, …) let the engine skip ahead.
pub(super) fn scan(text: &str) -> Vec<Found> {
    let mut out = Vec::new();
    if text.len() < MIN_LEN {
        return out;
    }
    let bytes = text.as_bytes();
    if bytes.contains(&b'@') {
        emails(text, &mut out);
    }
    if bytes.contains(&b':') {
        ipv6s(text, &mut out);
    }
    let public_pem = known_secrets(text, &mut out);
    let runs = digit_runs(bytes);
    if !runs.is_empty() {
        phones(text, &runs, &mut out);
        cards(text, &runs, &mut out);
        ibans(text, &runs, &mut out);
        ipv4s(text, &runs, &mut out);
        generic_secrets(text, &runs, &public_pem, &mut out);
        assigned_secrets(text, &mut out);
    }
    resolve(out)
}

/// Where the runs of ASCII digits start.
fn digit_runs(b: &[u8]) -> Vec<usize> {
    let mut runs = Vec::new();
    let mut prev_digit = false;
    for (i, c) in b.iter().enumerate() {
        let digit = c.is_ascii_digit();
        if digit && !prev_digit {
            runs.push(i);
        }
        prev_digit = digit;
    }
    runs
}

/// The end of the run of digits starting at `i`.
fn digits_end(b: &[u8], i: usize) -> usize {
    i + b
        .get(i..)
        .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count())
}

/// Whether the byte before `i` belongs to a word (as `\b` sees it, plus any non-ASCII
/// letter): a number glued to a word is part of an identifier.
fn glued(text: &str, i: usize) -> bool {
    is_word(prev_char(text, i))
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
// Email: a local part of Latin letters, digits and `._%+-` (up to 64 characters, no
// leading, trailing or double dot), an ASCII domain with at least one dot and an
// alphabetic TLD of 2-24 letters (not a file extension or a systemd unit type:
// `icon@2x.png`, `pg_dump@main.service`).

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"[\p{Latin}0-9._%+\-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}",
    )
});

/// File extensions and systemd unit types that follow `name@…` without being a domain.
const NOT_TLDS: &[&str] = &[
    "png",
    "jpg",
    "jpeg",
    "gif",
    "svg",
    "webp",
    "bmp",
    "ico",
    "tif",
    "tiff",
    "heic",
    "avif",
    "gz",
    "xz",
    "tgz",
    "bz2",
    "tar",
    "log",
    "txt",
    "json",
    "yaml",
    "yml",
    "toml",
    "lock",
    "html",
    "htm",
    "js",
    "mjs",
    "cjs",
    "css",
    "scss",
    "java",
    "kt",
    "cpp",
    "hpp",
    "dll",
    "exe",
    "dylib",
    "service",
    "socket",
    "timer",
    "target",
    "mount",
    "automount",
    "slice",
    "scope",
    "swap",
    "device",
];

fn emails(text: &str, out: &mut Vec<Found>) {
    for m in EMAIL.find_iter(text) {
        let s = m.as_str();
        let Some(at) = s.find('@') else { continue };
        // A local part never starts or ends with a dot, nor holds two in a row.
        let lead = s[..at].bytes().take_while(|&b| b == b'.').count();
        let local = &s[lead..at];
        if local.is_empty()
            || local.chars().count() > 64
            || local.ends_with('.')
            || local.contains("..")
        {
            continue;
        }
        let tld = s.rsplit('.').next().unwrap_or("");
        if NOT_TLDS.iter().any(|t| tld.eq_ignore_ascii_case(t)) {
            continue;
        }
        // The domain must end here (`a@b.com-x`, `a@b.comé` are something else; scripts
        // written without spaces, such as Chinese, may follow directly).
        let after = next_char(text, m.end());
        if after.is_some_and(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '_' | '@')
                || (c.is_alphanumeric() && u32::from(c) < 0x0E00)
        }) {
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
// Phone numbers. A maximal sequence of digit groups joined by single separators (space,
// `-`, `.`, parentheses), optionally after `+`, with 8-15 digits in all, standing alone
// (no letter, digit, `-`, `.`, `/` glued on either side), and either:
// - international: `+` and a country code (no leading 0), separators optional;
// - national: a trunk `0` first (`030 1234567`, `06 12 34 56 78`, `(0151) 1234567`) or
//   the North American 3-3-4 shape (`(415) 555-2671`, `415.555.2671`, `1-800-555-1234`),
//   with at least one separator, at most 6 groups, every group after the first of 2+
//   digits, 3+ groups when the only separator is `.` (so `0.12345678` is a decimal),
//   not starting with a date (`05.01.2024`, `05-01-2024 14`), and not a US ZIP+4 code
//   (`02110-1301`).
// Plain digit runs (order ids, timestamps, `1700000000000`) are never phone numbers.

fn phones(text: &str, runs: &[usize], out: &mut Vec<Found>) {
    let b = text.as_bytes();
    let mut next_free = 0;
    for &r in runs {
        if r < next_free || glued(text, r) {
            continue;
        }
        let (end, digits) = phone_extent(b, r);
        next_free = end;
        if !(8..=15).contains(&digits) {
            continue;
        }
        // A leading `+`, `(` or `+(`.
        let mut start = r;
        if r >= 1 && b[r - 1] == b'(' {
            start = if r >= 2 && b[r - 2] == b'+' {
                r - 2
            } else {
                r - 1
            };
        } else if r >= 1 && b[r - 1] == b'+' {
            start = r - 1;
        }
        let mut s = &text[start..end];
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

/// The end of the digit groups starting at `i`, joined by single separators: ` `, `-`,
/// `.` (each optionally followed by `(`), `)` (optionally followed by one of those), or
/// `(`; and how many digits they hold.
fn phone_extent(b: &[u8], mut i: usize) -> (usize, usize) {
    let mut digits = 0;
    loop {
        let end = digits_end(b, i);
        digits += end - i;
        i = end;
        let sep = match (b.get(i), b.get(i + 1)) {
            (Some(b' ' | b'.' | b'-'), Some(b'(')) | (Some(b')'), Some(b' ' | b'.' | b'-')) => 2,
            (Some(b' ' | b'.' | b'-' | b')' | b'('), _) => 1,
            _ => 0,
        };
        if sep == 0 || !b.get(i + sep).is_some_and(u8::is_ascii_digit) {
            return (i, digits);
        }
        i += sep;
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
    // `MA 02110-1301` is a US ZIP+4 code.
    let zip = lens == [5, 4] && seps == [b'-'];
    (nanp || trunk) && !zip && !starts_with_date(&lens, &seps)
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

fn cards(text: &str, runs: &[usize], out: &mut Vec<Found>) {
    let b = text.as_bytes();
    let mut next_free = 0;
    for &r in runs {
        if r < next_free
            || !(b'2'..=b'6').contains(&b[r])
            || glued(text, r)
            || matches!(prev_char(text, r), Some('.' | ',' | '-' | '+' | '\\'))
        {
            continue;
        }
        let Some(len) = card_extent(b, r).and_then(|e| card_len(&text[r..e])) else {
            continue;
        };
        let end = r + len;
        let after = next_char(text, end);
        if matches!(after, Some('.' | ',' | '-')) && is_word(char_after_next(text, end)) {
            continue;
        }
        out.push(Found {
            start: r,
            end,
            cat: Cat::Card,
        });
        next_free = end;
    }
}

/// The end of the longest candidate card number at `i`: whole groups of digits joined
/// by single spaces or dashes, 19 digits at most, not followed by another digit.
fn card_extent(b: &[u8], mut i: usize) -> Option<usize> {
    let mut digits = 0;
    let mut end = None;
    loop {
        let group_end = digits_end(b, i);
        digits += group_end - i;
        if digits > 19 {
            return end;
        }
        end = Some(group_end);
        match (b.get(group_end), b.get(group_end + 1)) {
            (Some(b' ' | b'-'), Some(c)) if c.is_ascii_digit() => i = group_end + 1,
            _ => return end,
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
    sum.is_multiple_of(10)
}

// ---------------------------------------------------------------------------------
// IBANs: two capital letters (not glued to a word), two check digits, then the BBAN
// (capitals and digits, single spaces allowed anywhere), as long as the country's IBAN
// (table below) or 15-34 characters for other countries, ending at a word boundary,
// with ISO 7064 mod-97 = 1.

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

fn ibans(text: &str, runs: &[usize], out: &mut Vec<Found>) {
    let b = text.as_bytes();
    let mut next_free = 0;
    for &r in runs {
        // Two capital letters, then at least two digits.
        if r < 2 || r - 2 < next_free || digits_end(b, r) < r + 2 {
            continue;
        }
        let start = r - 2;
        if !b[start].is_ascii_uppercase()
            || !b[start + 1].is_ascii_uppercase()
            || glued(text, start)
        {
            continue;
        }
        // Then 11 to 30 capitals or digits, each optionally after one space.
        let (mut i, mut n) = (r + 2, 0);
        while n < 30 {
            let alnum =
                |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            if alnum(b.get(i)) {
                i += 1;
            } else if b.get(i) == Some(&b' ') && alnum(b.get(i + 1)) {
                i += 2;
            } else {
                break;
            }
            n += 1;
        }
        if n < 11 {
            continue;
        }
        if let Some(end) = iban_end(text, start, &text[start..i]) {
            out.push(Found {
                start,
                end,
                cat: Cat::Iban,
            });
            next_free = end;
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
// not inside a longer dotted run (`1.2.3.4.5`) nor after "version"/"release"/"build";
// IPv6 candidates (hex groups and colons) that std parses, with at least one digit and
// two non-empty groups (not `::`, `a::b`, `std::fs`), not glued to a word. Loopback and
// unspecified addresses (`127.0.0.1`, `0.0.0.0`, `::1`) identify nobody and are left.

static IPV6: LazyLock<Regex> =
    LazyLock::new(|| compile(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}"));

fn ipv4s(text: &str, runs: &[usize], out: &mut Vec<Found>) {
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

// ---------------------------------------------------------------------------------
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

/// Known token formats and private keys; returns the spans of the other PEM blocks
/// (public keys, certificates), whose base64 lines are not secrets.
fn known_secrets(text: &str, out: &mut Vec<Found>) -> Vec<(usize, usize)> {
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
fn assigned_secrets(text: &str, out: &mut Vec<Found>) {
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

fn generic_secrets(
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

//! Contact details: email addresses and phone numbers.

use super::*;

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

pub(super) fn emails(text: &str, out: &mut Vec<Found>) {
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

pub(super) fn phones(text: &str, runs: &[usize], out: &mut Vec<Found>) {
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

//! Payment data: card numbers (Luhn) and IBANs (ISO 7064 mod-97).

use super::*;

// Payment cards: 13-19 digits, optionally in groups split by one kind of separator
// (spaces or dashes) as printed (4-4-4-4(-x) or Amex/Diners 4-6-5 / 4-6-4), a major
// network prefix (2221-2720, 3, 4, 5, 6), and a valid Luhn check digit.

pub(super) fn cards(text: &str, runs: &[usize], out: &mut Vec<Found>) {
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

pub(crate) fn luhn(digits: &[u8]) -> bool {
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

pub(super) fn ibans(text: &str, runs: &[usize], out: &mut Vec<Found>) {
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
pub(crate) fn mod97(iban: &[u8]) -> Option<u32> {
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

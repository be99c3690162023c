//! Personal-data detectors. Each one finds candidates (a regex, or by hand from the runs
//! of digits) and validates them in code (checksums, lengths, boundaries), tuned for
//! precision: a false positive blocks a real user, a miss only lets through what the
//! client sent anyway.
//!
//! [`scan`] runs every detector, whatever the configured categories, and keeps a set of
//! non-overlapping matches (earliest first, then longest, then the most specific
//! category), so that e.g. the digits of an IBAN are never also reported as a card
//! number. The caller filters the result by the configured categories.

use std::sync::LazyLock;

use regex::Regex;

use super::Cat;

mod contact;
mod finance;
mod network;
mod secrets;

use contact::{emails, phones};
use finance::{cards, ibans};
#[cfg(test)]
pub(super) use finance::{luhn, mod97};
use network::{ipv4s, ipv6s};
use secrets::{assigned_secrets, generic_secrets, known_secrets};
pub(super) use secrets::{is_secret_name, secret_value_ok};

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

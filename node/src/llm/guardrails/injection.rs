//! A prompt-injection **heuristic**: a scored set of phrases and markers seen in
//! injection and jailbreak attempts. It catches the common copy-paste attacks; it does
//! not understand language, and a determined attacker can rephrase around it. It runs on
//! user and tool content only, never on the system prompt the application wrote.
//!
//! Each signal below has a weight (in tenths). A message's score is the sum of the
//! weights of the distinct signals found in it (each counts once, however often it
//! occurs); the message is flagged when its score reaches [`THRESHOLD`] (1.0). Strong
//! signals ("ignore all previous instructions", "reveal your system prompt", a ChatML
//! `<|im_start|>system` marker) flag on their own; weak ones ("system prompt",
//! "jailbreak", "developer mode", "DAN", "you are now a …") only in combination, so a
//! developer asking how to write a system prompt is not refused. Matching is
//! case-insensitive (except `DAN`), and zero-width characters are removed first.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::RegexSet;

/// A message is flagged when the weights of its signals add up to this (tenths).
pub(super) const THRESHOLD: u32 = 10;

/// What to say before an instructions noun to address the model's own instructions.
const NOUN: &str =
    r"(?:instructions?|prompts?|directions?|directives?|rules|guidelines|commands?|constraints)";
const POSITION: &str =
    r"(?:previous|prior|above|earlier|preceding|foregoing|original|initial|system)";

/// (weight in tenths, pattern).
fn signals() -> Vec<(u32, String)> {
    vec![
        // "ignore all previous instructions", "disregard any prior rules".
        (
            10,
            format!(
                r"(?i)(?-u:\b)(?:ignore|disregard|forget|override)\s+(?:all|any|every)\s+(?:of\s+)?(?:the\s+|your\s+|these\s+|those\s+|my\s+)?{POSITION}\s+{NOUN}"
            ),
        ),
        // "ignore the previous instructions" (also said by users correcting themselves).
        (
            7,
            format!(
                r"(?i)(?-u:\b)(?:ignore|disregard|override)\s+(?:the\s+)?{POSITION}\s+{NOUN}"
            ),
        ),
        // "ignore your instructions", "bypass your safety guidelines".
        (
            10,
            r"(?i)(?-u:\b)(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+(?:of\s+)?)?your\s+(?:(?:previous|prior|original|initial|system|safety|current)\s+)?(?:instructions?|prompts?|rules|guidelines|programming|directives?|training|restrictions|guardrails)".into(),
        ),
        // "forget everything you were told".
        (
            7,
            r"(?i)(?-u:\b)forget\s+(?:everything|all)\s+(?:you\s+(?:were|have\s+been)\s+told|above|before)".into(),
        ),
        // A directive right after an instructions noun: "… instructions and say …".
        (
            4,
            format!(
                r"(?i){NOUN}\s*(?:and|,|\.|;|:)\s*(?:instead\s+|now\s+)?(?:say|print|output|write|respond|reply|tell|reveal|act|pretend|you\s+(?:are|will|must))(?-u:\b)"
            ),
        ),
        // "reveal your system prompt", "print your instructions".
        (
            10,
            r"(?i)(?-u:\b)(?:reveal|print|repeat|output|show|display|leak|dump|tell|give|write\s+out|spell\s+out)\s+(?:me\s+|us\s+)?(?:all\s+)?(?:of\s+)?(?:your\s+(?:(?:system|initial|original|hidden|secret|full|exact|verbatim)\s+)?(?:instructions|prompt|system\s+message)|the\s+(?:system|initial|original|hidden|secret)\s+(?:instructions|prompt|message))".into(),
        ),
        // "repeat the words above starting with …".
        (
            10,
            r"(?i)(?-u:\b)repeat\s+(?:all\s+)?(?:the\s+)?(?:words|text|everything)\s+above(?-u:\b)".into(),
        ),
        // Persona switches.
        (
            5,
            r"(?i)(?-u:\b)you\s+are\s+now\s+(?:an?|the|my|in|no\s+longer|free|unrestricted|unfiltered|jailbroken|DAN)(?-u:\b)".into(),
        ),
        (
            4,
            r"(?i)(?-u:\b)from\s+now\s+on,?\s+you\s+(?:are|will|must|shall|can)(?-u:\b)".into(),
        ),
        (
            7,
            r"(?i)(?-u:\b)(?:act|behave|respond|roleplay|pretend)\s+(?:as|like|to\s+be)\s+(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue)(?-u:\b)".into(),
        ),
        (
            7,
            r"(?i)(?-u:\b)pretend\s+(?:that\s+)?you\s+(?:are\s+not\s+an?\s+AI|have\s+no\s+(?:rules|restrictions|guidelines|filters|limits))".into(),
        ),
        // Words of the trade.
        (5, r"(?i)(?-u:\b)system\s+(?:prompt|message)(?-u:\b)".into()),
        (5, r"(?i)(?-u:\b)(?:developer|god)\s+mode(?-u:\b)".into()),
        (5, r"(?-u:\b)DAN(?-u:\b)".into()),
        (10, r"(?i)(?-u:\b)do\s+anything\s+now(?-u:\b)".into()),
        (5, r"(?i)(?-u:\b)jail\s?break(?:s|ing|ed|ers?)?(?-u:\b)".into()),
        (
            4,
            r"(?i)(?-u:\b)(?:without|no|free\s+(?:of|from))\s+(?:any\s+)?(?:restrictions|filters|censorship|limitations|safety\s+(?:filters|guidelines|measures))(?-u:\b)".into(),
        ),
        (
            5,
            r"(?i)(?-u:\b)(?:no\s+longer|not)\s+(?:bound|restricted|constrained)\s+by(?-u:\b)".into(),
        ),
        (
            5,
            r"(?i)(?-u:\b)(?:bypass|circumvent|disable|turn\s+off)\s+(?:your\s+|the\s+|all\s+|any\s+)?(?:safety|content|moderation)\s+(?:filters?|guidelines|policies|restrictions|measures)".into(),
        ),
        (
            5,
            r"(?i)(?-u:\b)(?:new|updated|real|actual)\s+(?:system\s+)?instructions\s*:".into(),
        ),
        // Chat-template role markers pasted into user content.
        (
            10,
            r"(?i)<\|im_start\|>\s*system|<\|start_header_id\|>\s*system|<\|system\|>".into(),
        ),
        (6, r"(?i)<\|im_start\|>|<\|im_end\|>|\[/?INST\]|<</?SYS>>".into()),
        (
            6,
            r"(?im)^\s*#{2,}\s*(?:system|instructions?)\s*:".into(),
        ),
        (
            7,
            r"(?im)^\s*\[?(?:system|assistant)\]?\s*:\s*you\s+(?:are|must|will|should)(?-u:\b)".into(),
        ),
    ]
}

struct Signals {
    set: RegexSet,
    weights: Vec<u32>,
}

static SIGNALS: LazyLock<Signals> = LazyLock::new(|| {
    let (weights, patterns): (Vec<u32>, Vec<String>) = signals().into_iter().unzip();
    Signals {
        // The patterns are constants, exercised by the tests.
        set: RegexSet::new(patterns).expect("injection patterns"),
        weights,
    }
});

/// The signals found in `text`, as a bit set (`1 << index`).
pub(super) fn find(text: &str) -> u64 {
    let text = without_invisible(text);
    let mut bits = 0u64;
    for i in SIGNALS.set.matches(&text).iter() {
        bits |= 1u64 << (i % 64);
    }
    bits
}

/// The score of a set of signals, in tenths.
pub(super) fn score(bits: u64) -> u32 {
    SIGNALS
        .weights
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1u64 << (i % 64)) != 0)
        .map(|(_, w)| *w)
        .sum()
}

fn invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

fn without_invisible(text: &str) -> Cow<'_, str> {
    // Their UTF-8 encodings start with 0xC2, 0xE2 or 0xEF.
    if text.bytes().any(|b| matches!(b, 0xC2 | 0xE2 | 0xEF)) && text.chars().any(invisible) {
        Cow::Owned(text.chars().filter(|&c| !invisible(c)).collect())
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
pub(super) fn signal_count() -> usize {
    SIGNALS.weights.len()
}

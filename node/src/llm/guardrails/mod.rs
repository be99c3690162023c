//! Guardrails: checks on prompts (personal data, prompt injection) and answers (a
//! deny-list), configured per tenant and per route ([`Guardrails`] in the replicated
//! model) and compiled into a [`Guard`].
//!
//! - **PII** ([`pii`]): emails, phone numbers, payment cards (Luhn), IBANs (mod 97), IP
//!   addresses and secrets (API keys, tokens, private keys) in every message of a chat
//!   request (text content and content parts, tool results, assistant tool-call
//!   arguments) and in embeddings inputs. `redact` replaces each with
//!   `[REDACTED:<category>]` in place; `block` refuses the call; `log` only reports.
//! - **Prompt injection** ([`injection`]): a scored phrase heuristic on user and tool
//!   content (not on system, developer or assistant messages); `block` or `log`.
//! - **Deny-list**: case-insensitive (Unicode lower-casing) substrings of the answer;
//!   `block` or `log`.
//!
//! A [`Verdict`] names the categories found and how often, never the values.
//! Detectors favour precision over recall: a false positive refuses a real user.

mod injection;
mod pii;

use raftgate_store::model::{GuardAction, Guardrails, PiiCategory};
use regex::Regex;
use serde_json::Value;

/// Result of a check.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Verdict {
    /// Set when the call must be refused: the category that blocked it ("email",
    /// "prompt_injection", "denied_term", ...).
    pub blocked: Option<&'static str>,
    /// Every category found with its count — never the values.
    pub findings: Vec<(&'static str, u32)>,
}

/// The categories, in the order findings are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cat {
    Email,
    Phone,
    Card,
    Iban,
    IpAddress,
    Secret,
    PromptInjection,
    DeniedTerm,
}

const CATS: [Cat; 8] = [
    Cat::Email,
    Cat::Phone,
    Cat::Card,
    Cat::Iban,
    Cat::IpAddress,
    Cat::Secret,
    Cat::PromptInjection,
    Cat::DeniedTerm,
];

impl Cat {
    fn name(self) -> &'static str {
        match self {
            Cat::Email => "email",
            Cat::Phone => "phone",
            Cat::Card => "card",
            Cat::Iban => "iban",
            Cat::IpAddress => "ip_address",
            Cat::Secret => "secret",
            Cat::PromptInjection => "prompt_injection",
            Cat::DeniedTerm => "denied_term",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    fn of(c: PiiCategory) -> Cat {
        match c {
            PiiCategory::Email => Cat::Email,
            PiiCategory::Phone => Cat::Phone,
            PiiCategory::Card => Cat::Card,
            PiiCategory::Iban => Cat::Iban,
            PiiCategory::IpAddress => Cat::IpAddress,
            PiiCategory::Secret => Cat::Secret,
        }
    }
}

/// What a check does with a finding, ordered by strictness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Log,
    Redact,
    Block,
}

impl Action {
    fn of(a: GuardAction) -> Action {
        match a {
            GuardAction::Log => Action::Log,
            GuardAction::Redact => Action::Redact,
            GuardAction::Block => Action::Block,
        }
    }

    /// For checks that cannot redact (injection, deny-list): `redact` is refused at
    /// admin time; should one get through, it blocks.
    fn without_redact(self) -> Action {
        if self == Action::Redact {
            Action::Block
        } else {
            self
        }
    }
}

/// Compiled guardrails, ready to check requests and answers.
#[derive(Debug)]
pub struct Guard {
    /// PII categories looked for (bits of [`Cat::bit`]) and the action.
    pii: Option<(u8, Action)>,
    injection: Option<Action>,
    deny: Option<Deny>,
}

#[derive(Debug)]
struct Deny {
    /// Lower-cased, non-blank, distinct terms.
    terms: Vec<String>,
    /// All terms at once; `None` if too many to compile (then one search per term).
    regex: Option<Regex>,
    action: Action,
}

impl Guard {
    pub fn new(cfg: &Guardrails) -> Guard {
        Guard::merge(&[cfg])
    }

    /// Merges several configs (tenant + route): the union of PII categories, the
    /// strictest action per check (block > redact > log), all deny terms. The deny
    /// action is the strictest among the configs that have deny terms. `None` when
    /// nothing is to be checked.
    pub fn combine(cfgs: &[&Guardrails]) -> Option<Guard> {
        let guard = Guard::merge(cfgs);
        (guard.pii.is_some() || guard.injection.is_some() || guard.deny.is_some()).then_some(guard)
    }

    fn merge(cfgs: &[&Guardrails]) -> Guard {
        let mut pii: Option<(u8, Action)> = None;
        let mut injection: Option<Action> = None;
        let mut deny_action: Option<Action> = None;
        let mut terms: Vec<String> = Vec::new();
        for cfg in cfgs {
            if let Some(p) = &cfg.pii {
                let bits = p.categories.iter().fold(0u8, |b, &c| b | Cat::of(c).bit());
                let action = Action::of(p.action);
                pii = Some(match pii {
                    Some((b, a)) => (b | bits, a.max(action)),
                    None => (bits, action),
                });
            }
            if let Some(a) = cfg.prompt_injection {
                let a = Action::of(a).without_redact();
                injection = Some(injection.map_or(a, |b| b.max(a)));
            }
            for t in &cfg.deny_list {
                if t.trim().is_empty() {
                    continue;
                }
                let t = t.to_lowercase();
                if !terms.contains(&t) {
                    terms.push(t);
                }
            }
            if cfg.deny_list.iter().any(|t| !t.trim().is_empty()) {
                let a = Action::of(cfg.deny_action).without_redact();
                deny_action = Some(deny_action.map_or(a, |b| b.max(a)));
            }
        }
        // A PII check without categories checks nothing.
        let pii = pii.filter(|(bits, _)| *bits != 0);
        let deny = deny_action
            .filter(|_| !terms.is_empty())
            .map(|action| Deny {
                regex: deny_regex(&terms),
                terms,
                action,
            });
        Guard {
            pii,
            injection,
            deny,
        }
    }

    /// Checks an OpenAI chat request's prompt: every message's content (a string, or
    /// content parts with `text`), tool results, and assistant tool-call arguments
    /// (PII only; JSON arguments are redacted value by value and stay valid JSON).
    /// Redacts in place when the PII action is `redact`. Prompt injection is looked for
    /// in user and tool messages (every role but system, developer and assistant), each
    /// message scored on its own.
    pub fn check_prompt(&self, req: &mut Value) -> Verdict {
        let mut tally = Tally::default();
        let Some(messages) = req.get_mut("messages").and_then(Value::as_array_mut) else {
            return self.verdict(&tally);
        };
        for msg in messages {
            let Some(msg) = msg.as_object_mut() else {
                continue;
            };
            let role = msg.get("role").and_then(Value::as_str).unwrap_or("");
            let untrusted = !matches!(role, "system" | "developer" | "assistant");
            if untrusted && self.injection.is_some() {
                if let Some(content) = msg.get("content") {
                    let mut bits = 0u64;
                    for_each_text(content, &mut |t| bits |= injection::find(t));
                    if bits != 0 && injection::score(bits) >= injection::THRESHOLD {
                        tally.add(Cat::PromptInjection, 1);
                    }
                }
            }
            let Some((cats, action)) = self.pii else {
                continue;
            };
            let redact = action == Action::Redact;
            if let Some(content) = msg.get_mut("content") {
                for_each_text_mut(content, &mut |t| redact_string(t, cats, redact, &mut tally));
            }
            if let Some(calls) = msg.get_mut("tool_calls").and_then(Value::as_array_mut) {
                for call in calls {
                    if let Some(args) = call.pointer_mut("/function/arguments") {
                        pii_arguments(args, cats, redact, &mut tally);
                    }
                }
            }
            if let Some(args) = msg
                .get_mut("function_call")
                .and_then(|f| f.get_mut("arguments"))
            {
                pii_arguments(args, cats, redact, &mut tally);
            }
        }
        self.verdict(&tally)
    }

    /// Checks an embeddings request's `input` (a string or an array of strings; token
    /// arrays are skipped) for PII, redacting in place when the action is `redact`.
    /// Prompt injection does not apply: an embedding model follows no instructions.
    pub fn check_embedding_input(&self, req: &mut Value) -> Verdict {
        let mut tally = Tally::default();
        if let (Some((cats, action)), Some(input)) = (self.pii, req.get_mut("input")) {
            let redact = action == Action::Redact;
            match input {
                Value::String(_) => redact_string(input, cats, redact, &mut tally),
                Value::Array(items) => {
                    for item in items {
                        redact_string(item, cats, redact, &mut tally);
                    }
                }
                _ => {}
            }
        }
        self.verdict(&tally)
    }

    /// Checks answer text against the deny-list.
    pub fn check_answer(&self, text: &str) -> Verdict {
        let mut tally = Tally::default();
        if let Some(deny) = &self.deny {
            let lower = text.to_lowercase();
            let n = match &deny.regex {
                Some(re) => re.find_iter(&lower).count(),
                None => deny
                    .terms
                    .iter()
                    .map(|t| lower.matches(t.as_str()).count())
                    .sum(),
            };
            tally.add(Cat::DeniedTerm, u32::try_from(n).unwrap_or(u32::MAX));
        }
        self.verdict(&tally)
    }

    /// Whether answers are checked at all (the deny-list is not empty).
    pub fn checks_answers(&self) -> bool {
        self.deny.is_some()
    }

    fn verdict(&self, tally: &Tally) -> Verdict {
        let findings: Vec<(&'static str, u32)> = CATS
            .iter()
            .filter(|c| tally.counts[**c as usize] > 0)
            .map(|c| (c.name(), tally.counts[*c as usize]))
            .collect();
        let blocks = |c: Cat| match c {
            Cat::PromptInjection => self.injection == Some(Action::Block),
            Cat::DeniedTerm => self
                .deny
                .as_ref()
                .is_some_and(|d| d.action == Action::Block),
            _ => self.pii.is_some_and(|(_, a)| a == Action::Block),
        };
        let blocked = CATS
            .iter()
            .find(|c| tally.counts[**c as usize] > 0 && blocks(**c))
            .map(|c| c.name());
        Verdict { blocked, findings }
    }
}

/// One regex matching any term (leftmost-first), `None` if it would be too large.
fn deny_regex(terms: &[String]) -> Option<Regex> {
    let pattern = terms
        .iter()
        .map(|t| regex::escape(t))
        .collect::<Vec<_>>()
        .join("|");
    regex::RegexBuilder::new(&pattern)
        .size_limit(8 << 20)
        .build()
        .ok()
}

#[derive(Default)]
struct Tally {
    counts: [u32; 8],
}

impl Tally {
    fn add(&mut self, cat: Cat, n: u32) {
        let c = &mut self.counts[cat as usize];
        *c = c.saturating_add(n);
    }
}

/// Calls `f` on every text of a message's content: the string itself, or the `text`
/// of each content part (and string parts).
fn for_each_text(content: &Value, f: &mut dyn FnMut(&str)) {
    match content {
        Value::String(s) => f(s),
        Value::Array(parts) => {
            for part in parts {
                match part {
                    Value::String(s) => f(s),
                    Value::Object(o) => {
                        if let Some(Value::String(s)) = o.get("text") {
                            f(s);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// [`for_each_text`], with the texts as the `Value`s holding them.
fn for_each_text_mut(content: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    match content {
        Value::String(_) => f(content),
        Value::Array(parts) => {
            for part in parts {
                match part {
                    Value::String(_) => f(part),
                    Value::Object(o) => {
                        if let Some(text) = o.get_mut("text") {
                            f(text);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Checks (and redacts) a string value; other values are left alone.
fn redact_string(v: &mut Value, cats: u8, redact: bool, tally: &mut Tally) {
    if let Value::String(s) = v {
        if let Some(new) = pii_str(s, cats, redact, tally) {
            *s = new;
        }
    }
}

/// Tool-call arguments: a JSON document in a string. Parsed, its string values are
/// checked one by one (a string under a secret-looking key such as `"password"` is a
/// secret if it holds a letter and a digit), and it is written back only if something
/// was redacted. Arguments that are not JSON are checked as text.
fn pii_arguments(args: &mut Value, cats: u8, redact: bool, tally: &mut Tally) {
    let Value::String(raw) = args else { return };
    match serde_json::from_str::<Value>(raw) {
        Ok(mut doc) if doc.is_object() || doc.is_array() => {
            let before = tally.counts;
            pii_json(&mut doc, None, cats, redact, tally);
            if redact && tally.counts != before {
                if let Ok(s) = serde_json::to_string(&doc) {
                    *raw = s;
                }
            }
        }
        _ => redact_string(args, cats, redact, tally),
    }
}

fn pii_json(v: &mut Value, key: Option<&str>, cats: u8, redact: bool, tally: &mut Tally) {
    match v {
        Value::String(s) => {
            if key.is_some_and(pii::is_secret_name) && pii::secret_value_ok(s) {
                if cats & Cat::Secret.bit() != 0 {
                    tally.add(Cat::Secret, 1);
                    if redact {
                        *s = redaction(Cat::Secret);
                    }
                }
                return;
            }
            if let Some(new) = pii_str(s, cats, redact, tally) {
                *s = new;
            }
        }
        Value::Array(items) => {
            for item in items {
                pii_json(item, None, cats, redact, tally);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                pii_json(item, Some(k), cats, redact, tally);
            }
        }
        _ => {}
    }
}

fn redaction(cat: Cat) -> String {
    format!("[REDACTED:{}]", cat.name())
}

/// Counts the PII of the configured categories in `s`; with `redact`, returns the
/// redacted text if anything was found.
fn pii_str(s: &str, cats: u8, redact: bool, tally: &mut Tally) -> Option<String> {
    let found: Vec<pii::Found> = pii::scan(s)
        .into_iter()
        .filter(|f| cats & f.cat.bit() != 0)
        .collect();
    if found.is_empty() {
        return None;
    }
    for f in &found {
        tally.add(f.cat, 1);
    }
    if !redact {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for f in &found {
        out.push_str(s.get(last..f.start)?);
        out.push_str(&redaction(f.cat));
        last = f.end;
    }
    out.push_str(s.get(last..)?);
    Some(out)
}

#[cfg(test)]
mod tests;

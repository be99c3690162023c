//! Borrowing reads of an OpenAI-format provider answer or chunk: where its top-level
//! `model` is and the usage it reports, read in one pass without building a tree of
//! `Value`s, so the text can go on to the client as it came with only the model swapped.
//! Anything the general path (`openai_usage` on a `Value`) could read differently — an
//! `error`, usage at the top level, a field of another type than OpenAI's, a repeated
//! field, a `model` written with escapes — is `None`, and the caller takes that path.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::value::MapAccessDeserializer;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::translate::Usage;

/// What every read gives: where the `model` string is (quotes included), the usage.
pub struct Head {
    pub model: Range<usize>,
    pub usage: Option<Usage>,
    /// A `usage` object is there (even one without token counts).
    pub has_usage: bool,
}

/// Reads `json`'s head, and its `choices` as `C` when present; `None` for the general
/// path (see the module's doc).
pub fn read<'a, C: Deserialize<'a>>(json: &'a str) -> Option<(Head, Option<C>)> {
    let Obj(peek): Obj<Peek<'a, C>> = serde_json::from_str(json).ok()?;
    let legacy = peek.legacy_input || peek.legacy_output;
    if peek.error || (peek.usage.is_none() && legacy) {
        return None;
    }
    let model = match &peek.model {
        Some(Text(Cow::Borrowed(m))) => string_span(json, m)?,
        _ => return None,
    };
    let has_usage = peek.usage.is_some();
    let usage = peek.usage.and_then(|Obj(u)| {
        (u.prompt_tokens.is_some() || u.completion_tokens.is_some()).then(|| Usage {
            input: u.prompt_tokens.unwrap_or(0),
            output: u.completion_tokens.unwrap_or(0),
            cached_input: u
                .prompt_tokens_details
                .and_then(|Obj(d)| d.cached_tokens)
                .unwrap_or(0),
        })
    });
    let head = Head {
        model,
        usage,
        has_usage,
    };
    Some((head, peek.choices))
}

/// The top level, `choices` as the caller needs them (`IgnoredAny` to skip them).
#[derive(Deserialize)]
#[serde(bound(deserialize = "C: Deserialize<'de>"))]
struct Peek<'a, C> {
    /// Borrowed from the text when it has no escapes: then where it is is known.
    #[serde(borrow, default)]
    model: Option<Text<'a>>,
    #[serde(default, deserialize_with = "present_not_null")]
    error: bool,
    #[serde(default = "none")]
    choices: Option<C>,
    #[serde(default)]
    usage: Option<Obj<PeekUsage>>,
    /// Usage at the top level, as some servers send it: the general path reads it.
    #[serde(default, deserialize_with = "present", rename = "prompt_tokens")]
    legacy_input: bool,
    #[serde(default, deserialize_with = "present", rename = "completion_tokens")]
    legacy_output: bool,
}

fn none<C>() -> Option<C> {
    None
}

#[derive(Deserialize)]
struct PeekUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<Obj<PeekDetails>>,
}

#[derive(Deserialize)]
struct PeekDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// A string, borrowed from the text when it has no escapes: serde borrows a `Cow` only
/// when it is a field's whole type, not inside an `Option`.
#[derive(Deserialize)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// `T` read only from a JSON object: serde's derived structs take arrays too (fields by
/// position), where the general path sees no fields at all.
pub struct Obj<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Object(PhantomData)).map(Obj)
    }
}

/// The field is there, whatever its value.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// The field is there and not `null`.
fn present_not_null<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Option::<IgnoredAny>::deserialize(d).map(|v| v.is_some())
}

/// Where `inner`, a string value borrowed from `json` by the parser, is in `json` with
/// its quotes.
fn string_span(json: &str, inner: &str) -> Option<Range<usize>> {
    let at = (inner.as_ptr() as usize).checked_sub(json.as_ptr() as usize)?;
    let span = at.checked_sub(1)?..at + inner.len() + 1;
    let quoted = json.get(span.clone())?;
    (quoted.starts_with('"') && quoted.ends_with('"') && quoted.len() >= 2).then_some(span)
}

//! JSON Schema (as OpenAI clients write it) → the OpenAPI-subset `Schema` Gemini takes
//! for function parameters and `responseSchema`. Gemini rejects unknown keywords, so
//! only the ones it documents are kept; local `$ref`s (`#/$defs/...`) are inlined,
//! `type: [T, "null"]` becomes `nullable`, `oneOf` becomes `anyOf`, `const` a
//! one-value `enum`. Depth is bounded, which also stops recursive `$ref`s.

use serde_json::{json, Map, Value};

use super::PROVIDER;
use crate::llm::translate::util::{invalid, unsupported};
use crate::llm::translate::TranslateError;

/// Keywords copied as they are.
const KEPT: [&str; 14] = [
    "description",
    "title",
    "nullable",
    "enum",
    "required",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "minProperties",
    "maxProperties",
];
/// String/number formats Gemini accepts; others (uri, email…) are dropped.
const FORMATS: [&str; 6] = ["enum", "date-time", "float", "double", "int32", "int64"];
const MAX_DEPTH: usize = 48;
/// Bound on the schema nodes produced: inlining `$ref`s can otherwise grow a small
/// recursive schema exponentially.
const MAX_NODES: usize = 10_000;

/// Converts `schema`; `what` names it in errors (e.g. `tools[0].function.parameters`).
pub(crate) fn to_gemini_schema(schema: &Value, what: &str) -> Result<Value, TranslateError> {
    let mut ctx = Ctx {
        root: schema,
        what,
        nodes: 0,
    };
    convert(schema, 0, &mut ctx)
}

struct Ctx<'a> {
    root: &'a Value,
    what: &'a str,
    nodes: usize,
}

fn convert(s: &Value, depth: usize, ctx: &mut Ctx<'_>) -> Result<Value, TranslateError> {
    let what = ctx.what;
    let root = ctx.root;
    ctx.nodes += 1;
    if depth > MAX_DEPTH || ctx.nodes > MAX_NODES {
        return Err(invalid(format!(
            "{what}: schema too large or nested deeper than {MAX_DEPTH} levels (recursive $ref?)"
        )));
    }
    let obj = match s {
        Value::Object(o) => o,
        Value::Bool(true) => return Ok(json!({})),
        _ => return Err(invalid(format!("{what}: a schema must be an object"))),
    };
    if let Some(r) = obj.get("$ref") {
        let target = r
            .as_str()
            .and_then(|r| resolve(root, r))
            .ok_or_else(|| unsupported(format!("{what}: $ref {r}"), PROVIDER))?;
        let mut out = convert(target, depth + 1, ctx)?;
        if let (Some(d), Some(o)) = (obj.get("description"), out.as_object_mut()) {
            o.insert("description".into(), d.clone());
        }
        return Ok(out);
    }
    let mut out = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "type" => set_type(v, &mut out),
            "format" if v.as_str().is_some_and(|f| FORMATS.contains(&f)) => {
                out.insert(k.clone(), v.clone());
            }
            "properties" => {
                let props = v
                    .as_object()
                    .ok_or_else(|| invalid(format!("{what}: `properties` must be an object")))?;
                let mut conv = Map::new();
                for (name, p) in props {
                    conv.insert(name.clone(), convert(p, depth + 1, ctx)?);
                }
                out.insert(k.clone(), Value::Object(conv));
            }
            "items" if v.is_object() => {
                out.insert(k.clone(), convert(v, depth + 1, ctx)?);
            }
            "anyOf" | "oneOf" => {
                let alts = v
                    .as_array()
                    .ok_or_else(|| invalid(format!("{what}: `{k}` must be an array")))?;
                let mut conv = Vec::with_capacity(alts.len());
                for a in alts {
                    if a.get("type").and_then(Value::as_str) == Some("null") {
                        out.insert("nullable".into(), Value::Bool(true));
                    } else {
                        conv.push(convert(a, depth + 1, ctx)?);
                    }
                }
                match conv.len() {
                    0 => {}
                    1 => {
                        if let Some(Value::Object(only)) = conv.pop() {
                            for (ok, ov) in only {
                                out.entry(ok).or_insert(ov);
                            }
                        }
                    }
                    _ => {
                        out.insert("anyOf".into(), Value::Array(conv));
                    }
                }
            }
            "allOf" => {
                for a in v.as_array().into_iter().flatten() {
                    if let Value::Object(part) = convert(a, depth + 1, ctx)? {
                        for (pk, pv) in part {
                            out.entry(pk).or_insert(pv);
                        }
                    }
                }
            }
            "const" => {
                out.entry("enum").or_insert_with(|| json!([v]));
            }
            _ if KEPT.contains(&k.as_str()) => {
                out.insert(k.clone(), v.clone());
            }
            _ => {} // additionalProperties, $schema, default, examples, strict, ...
        }
    }
    Ok(Value::Object(out))
}

/// `type: "string"` as is; `type: ["string", "null"]` → `"string"` + `nullable`.
fn set_type(v: &Value, out: &mut Map<String, Value>) {
    match v {
        Value::String(_) => {
            out.insert("type".into(), v.clone());
        }
        Value::Array(types) => {
            if types.iter().any(|t| t.as_str() == Some("null")) {
                out.insert("nullable".into(), Value::Bool(true));
            }
            if let Some(t) = types
                .iter()
                .find(|t| t.is_string() && t.as_str() != Some("null"))
            {
                out.insert("type".into(), t.clone());
            }
        }
        _ => {}
    }
}

/// A local JSON pointer reference (`#`, `#/$defs/Name`, `#/definitions/Name`).
fn resolve<'a>(root: &'a Value, r: &str) -> Option<&'a Value> {
    if r == "#" {
        return Some(root);
    }
    let mut cur = root;
    for seg in r.strip_prefix("#/")?.split('/') {
        cur = cur.get(seg.replace("~1", "/").replace("~0", "~"))?;
    }
    Some(cur)
}

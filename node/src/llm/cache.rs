//! The response cache: opt-in per model (`cache: {"ttl_secs": N}`), exact match on the
//! normalised request, per node, bounded in bytes, never shared across tenants.
//!
//! - [`CacheKey`] hashes (tenant, model, normalised request).
//! - [`ResponseCache`] holds whole answers (`chat.completion`, or an embeddings `list`)
//!   with an expiry, evicting the least recently used when over its byte budget.
//! - A streamed answer is cached whole: [`accumulate`] rebuilds the `chat.completion`
//!   from the chunks of a finished stream, and [`replay`] turns a cached answer back
//!   into chunks when a hit is requested as a stream.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Top-level request fields left out of the key: they change how (or to whom) the answer
/// is delivered or billed, not what it says.
///
/// - `stream`, `stream_options`: a cached answer is served whole or replayed as a stream,
///   so streamed and non-streamed calls share an entry.
/// - `user`: the end user's id, for the provider's abuse monitoring.
/// - `metadata`, `store`: OpenAI's stored-completions bookkeeping.
/// - `service_tier`: the provider's latency/price tier.
///
/// `n` is also left out when it is `1` (or `null`), its default, so that `n: 1` and no
/// `n` share an entry; any other `n` stays in the key.
const DROPPED_FIELDS: [&str; 6] = [
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "service_tier",
];

/// Identifies a cacheable request: SHA-256 over (tenant, model, normalised request).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// SHA-256 over the tenant, the model and the normalised request: the request
    /// without the fields in [`DROPPED_FIELDS`] (and without `n` when it is 1), with
    /// object keys sorted at every depth, so that two requests which differ only in key
    /// order or in the stream flag share a key. Tenant and model are length-prefixed, so
    /// no (tenant, model) pair can collide with another by shifting bytes between them.
    pub fn new(tenant: &str, model: &str, req: &Value) -> CacheKey {
        let mut h = Sha256::new();
        h.update(b"raftgate-response-cache-v1\0");
        for part in [tenant, model] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        let mut w = HashWriter(&mut h);
        match req {
            Value::Object(map) => {
                let kept = map.iter().filter(|(k, v)| !is_dropped(k, v)).collect();
                write_object(&mut w, kept);
            }
            other => write_canonical(&mut w, other),
        }
        CacheKey(h.finalize().into())
    }
}

fn is_dropped(key: &str, value: &Value) -> bool {
    DROPPED_FIELDS.contains(&key)
        || (key == "n" && (value.is_null() || value.as_f64() == Some(1.0)))
}

/// Feeds serialized JSON straight into the hash.
struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `v` as compact JSON with object keys sorted at every depth.
fn write_canonical(w: &mut HashWriter<'_>, v: &Value) {
    match v {
        Value::Array(items) => {
            w.0.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    w.0.update(b",");
                }
                write_canonical(w, item);
            }
            w.0.update(b"]");
        }
        Value::Object(map) => write_object(w, map.iter().collect()),
        // Scalars: serde_json's own encoding (string escapes, number format). Writing
        // into the hash cannot fail.
        scalar => {
            let _ = serde_json::to_writer(&mut *w, scalar);
        }
    }
}

fn write_object(w: &mut HashWriter<'_>, mut entries: Vec<(&String, &Value)>) {
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    w.0.update(b"{");
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            w.0.update(b",");
        }
        let _ = serde_json::to_writer(&mut *w, k);
        w.0.update(b":");
        write_canonical(w, v);
    }
    w.0.update(b"}");
}

/// Counts the bytes of a serialization without keeping them.
struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn serialized_len(v: &Value) -> usize {
    let mut c = ByteCounter(0);
    match serde_json::to_writer(&mut c, v) {
        Ok(()) => c.0,
        Err(_) => usize::MAX,
    }
}

/// Used when `now + ttl` does not fit in an `Instant`.
const LONGEST_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

struct Entry {
    answer: Arc<Value>,
    size: usize,
    expires: Instant,
    /// Unique per stored entry; orders the expiry index.
    seq: u64,
    /// The latest use; the recency queue's items with an older tick are stale.
    tick: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<CacheKey, Entry>,
    /// Uses in order, oldest first, as (tick, key); an item is current only while the
    /// entry's `tick` equals it (a later use pushes a newer item). Compacted when stale
    /// items outnumber live ones, so `get` stays O(1) amortised.
    recency: VecDeque<(u64, CacheKey)>,
    /// (expiry, seq) of every entry, soonest first.
    expiry: BTreeMap<(Instant, u64), CacheKey>,
    bytes: usize,
    next_tick: u64,
}

impl Inner {
    fn tick(&mut self) -> u64 {
        self.next_tick = self.next_tick.wrapping_add(1);
        self.next_tick
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(e) = self.entries.remove(key) {
            self.bytes = self.bytes.saturating_sub(e.size);
            self.expiry.remove(&(e.expires, e.seq));
        }
    }

    fn touch(&mut self, key: CacheKey, tick: u64) {
        self.recency.push_back((tick, key));
        if self.recency.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.recency
                .retain(|(t, k)| entries.get(k).is_some_and(|e| e.tick == *t));
        }
    }

    fn drop_expired(&mut self, now: Instant) {
        while let Some((&(expires, _), &key)) = self.expiry.first_key_value() {
            if expires > now {
                break;
            }
            self.remove(&key);
        }
    }

    /// Evicts least recently used entries until `incoming` more bytes fit in `max`.
    fn make_room(&mut self, incoming: usize, max: usize) {
        while self.bytes.saturating_add(incoming) > max {
            let Some((tick, key)) = self.recency.pop_front() else {
                break;
            };
            if self.entries.get(&key).is_some_and(|e| e.tick == tick) {
                self.remove(&key);
            }
        }
    }
}

/// Whole answers by [`CacheKey`], each until its expiry, within `max_bytes` (the sum of
/// the answers' serialized lengths) per node; least recently used evicted first.
pub struct ResponseCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

impl ResponseCache {
    pub fn new(max_bytes: usize) -> ResponseCache {
        ResponseCache {
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing under the lock panics; a poisoned lock still holds consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached whole answer (a `chat.completion`, or an embeddings `list`), if fresh
    /// at `now`. An expired entry found here is dropped.
    pub fn get(&self, key: &CacheKey, now: Instant) -> Option<Arc<Value>> {
        let mut inner = self.lock();
        let tick = inner.tick();
        let e = inner.entries.get_mut(key)?;
        if e.expires <= now {
            inner.remove(key);
            return None;
        }
        e.tick = tick;
        let answer = Arc::clone(&e.answer);
        inner.touch(*key, tick);
        Some(answer)
    }

    /// Stores `answer` for `ttl` from `now`, replacing any entry under `key`. Its size
    /// is its serialized length; an answer larger than `max_bytes / 8` (or with a zero
    /// `ttl`) is not stored, and leaves an existing entry under `key` alone. Expired
    /// entries are dropped first, then least recently used ones until the answer fits.
    pub fn put(&self, key: CacheKey, answer: Value, ttl: Duration, now: Instant) {
        let size = serialized_len(&answer);
        if size > self.max_bytes / 8 || ttl.is_zero() {
            return;
        }
        let expires = now
            .checked_add(ttl)
            .or_else(|| now.checked_add(LONGEST_TTL))
            .unwrap_or(now);
        if expires <= now {
            return;
        }
        let mut inner = self.lock();
        inner.remove(&key);
        inner.drop_expired(now);
        inner.make_room(size, self.max_bytes);
        let tick = inner.tick();
        inner.expiry.insert((expires, tick), key);
        inner.entries.insert(
            key,
            Entry {
                answer: Arc::new(answer),
                size,
                expires,
                seq: tick,
                tick,
            },
        );
        inner.bytes = inner.bytes.saturating_add(size);
        inner.touch(key, tick);
    }

    /// Entries held, including expired ones not dropped yet.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// The sum of the held answers' serialized lengths.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn is_empty(&self) -> bool {
        self.lock().entries.is_empty()
    }
}

#[derive(Default)]
struct ToolCallAcc {
    id: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    arguments: String,
}

#[derive(Default)]
struct ChoiceAcc {
    role: Option<String>,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: BTreeMap<u64, ToolCallAcc>,
    finish_reason: Option<Value>,
    logprobs_content: Option<Vec<Value>>,
    logprobs_refusal: Option<Vec<Value>>,
}

impl ChoiceAcc {
    fn on_delta(&mut self, delta: &Map<String, Value>) {
        if let Some(role) = delta.get("role").and_then(Value::as_str) {
            self.role = Some(role.to_string());
        }
        if let Some(s) = delta.get("content").and_then(Value::as_str) {
            self.content.get_or_insert_with(String::new).push_str(s);
        }
        if let Some(s) = delta.get("refusal").and_then(Value::as_str) {
            self.refusal.get_or_insert_with(String::new).push_str(s);
        }
        let calls = delta.get("tool_calls").and_then(Value::as_array);
        for call in calls.into_iter().flatten().filter_map(Value::as_object) {
            self.on_tool_call(call);
        }
    }

    fn on_tool_call(&mut self, call: &Map<String, Value>) {
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let index = match call.get("index").and_then(Value::as_u64) {
            Some(i) => i,
            // No index (not OpenAI-conformant): a new id starts the next call, anything
            // else continues the last one.
            None => {
                let last = self.tool_calls.last_key_value();
                match (last, id) {
                    (None, _) => 0,
                    (Some((&i, acc)), Some(id)) if acc.id.as_deref() != Some(id) => {
                        i.saturating_add(1)
                    }
                    (Some((&i, _)), _) => i,
                }
            }
        };
        let acc = self.tool_calls.entry(index).or_default();
        if acc.id.is_none() {
            acc.id = id.map(str::to_string);
        }
        if let Some(kind) = call.get("type").and_then(Value::as_str) {
            acc.kind.get_or_insert_with(|| kind.to_string());
        }
        if let Some(f) = call.get("function").and_then(Value::as_object) {
            if let Some(name) = f.get("name").and_then(Value::as_str) {
                acc.name.get_or_insert_with(String::new).push_str(name);
            }
            if let Some(args) = f.get("arguments").and_then(Value::as_str) {
                acc.arguments.push_str(args);
            }
        }
    }

    fn on_logprobs(&mut self, lp: &Map<String, Value>) {
        if let Some(items) = lp.get("content").and_then(Value::as_array) {
            self.logprobs_content
                .get_or_insert_with(Vec::new)
                .extend(items.iter().cloned());
        }
        if let Some(items) = lp.get("refusal").and_then(Value::as_array) {
            self.logprobs_refusal
                .get_or_insert_with(Vec::new)
                .extend(items.iter().cloned());
        }
    }

    fn into_choice(self, index: u64) -> Value {
        let mut message = Map::new();
        message.insert(
            "role".into(),
            json!(self.role.as_deref().unwrap_or("assistant")),
        );
        message.insert("content".into(), json!(self.content));
        if let Some(refusal) = self.refusal {
            message.insert("refusal".into(), json!(refusal));
        }
        if !self.tool_calls.is_empty() {
            let calls: Vec<Value> = self
                .tool_calls
                .into_values()
                .map(|c| {
                    let mut call = Map::new();
                    if let Some(id) = c.id {
                        call.insert("id".into(), json!(id));
                    }
                    call.insert(
                        "type".into(),
                        json!(c.kind.as_deref().unwrap_or("function")),
                    );
                    call.insert(
                        "function".into(),
                        json!({"name": c.name.unwrap_or_default(), "arguments": c.arguments}),
                    );
                    Value::Object(call)
                })
                .collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        let logprobs = if self.logprobs_content.is_none() && self.logprobs_refusal.is_none() {
            Value::Null
        } else {
            json!({"content": self.logprobs_content, "refusal": self.logprobs_refusal})
        };
        json!({
            "index": index,
            "message": message,
            "logprobs": logprobs,
            "finish_reason": self.finish_reason,
        })
    }
}

/// Top-level fields copied between a whole answer and its chunks.
const SHARED_FIELDS: [&str; 5] = [
    "id",
    "created",
    "model",
    "system_fingerprint",
    "service_tier",
];

/// Rebuilds a whole `chat.completion` from the chunks of a finished stream: per choice
/// index, `content` and `refusal` concatenated, `tool_calls` assembled by their index
/// (id and type from the first fragment carrying them, `function.name` and `arguments`
/// concatenated), the role, the finish reason and `logprobs` (content/refusal token
/// lists concatenated; `null` when no chunk carried any); `usage` from the usage chunk;
/// `id`, `created`, `model`, `system_fingerprint`, `service_tier` from the first chunk
/// carrying each. Choices come out sorted by index.
///
/// None if the stream did not finish: no choice at all, or some choice without a
/// `finish_reason`. Malformed chunks and fields are skipped.
pub fn accumulate(chunks: &[Value]) -> Option<Value> {
    let mut top = Map::new();
    let mut usage: Option<Value> = None;
    let mut choices: BTreeMap<u64, ChoiceAcc> = BTreeMap::new();
    for chunk in chunks.iter().filter_map(Value::as_object) {
        for field in SHARED_FIELDS {
            match chunk.get(field) {
                Some(v) if !v.is_null() && !top.contains_key(field) => {
                    top.insert(field.to_string(), v.clone());
                }
                _ => {}
            }
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            usage = Some(u.clone());
        }
        let listed = chunk.get("choices").and_then(Value::as_array);
        for choice in listed.into_iter().flatten().filter_map(Value::as_object) {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let acc = choices.entry(index).or_default();
            if let Some(delta) = choice.get("delta").and_then(Value::as_object) {
                acc.on_delta(delta);
            }
            if let Some(lp) = choice.get("logprobs").and_then(Value::as_object) {
                acc.on_logprobs(lp);
            }
            match choice.get("finish_reason") {
                Some(f) if !f.is_null() => acc.finish_reason = Some(f.clone()),
                _ => {}
            }
        }
    }
    if choices.is_empty() || choices.values().any(|c| c.finish_reason.is_none()) {
        return None;
    }
    top.insert("object".into(), json!("chat.completion"));
    let choices: Vec<Value> = choices.into_iter().map(|(i, c)| c.into_choice(i)).collect();
    top.insert("choices".into(), Value::Array(choices));
    if let Some(u) = usage {
        top.insert("usage".into(), u);
    }
    Some(Value::Object(top))
}

/// Longest content piece in a replayed stream, in bytes (text without whitespace, such
/// as CJK, is still cut up).
const MAX_PIECE: usize = 32;

/// Splits `text` after each run of whitespace (a word and the whitespace after it per
/// piece), and pieces longer than [`MAX_PIECE`] at char boundaries. The pieces
/// concatenate back to `text`.
fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_ws = false;
    for (i, ch) in text.char_indices() {
        let ws = ch.is_whitespace();
        if i > start && ((prev_ws && !ws) || i - start + ch.len_utf8() > MAX_PIECE) {
            out.push(&text[start..i]);
            start = i;
        }
        prev_ws = ws;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The text of a message's `content`: a string, or the `text` of its parts.
fn content_text(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
        ),
        _ => None,
    }
}

/// Turns a whole `chat.completion` back into stream chunks. Per choice, in order: a role
/// chunk (`content: ""` when the message has text, `null` otherwise), the content in
/// pieces of about a word, the refusal likewise, each tool call as a delta with `id`,
/// `type`, `function.name` and empty `arguments` followed by one with the arguments, and
/// a chunk with the `finish_reason` (`"stop"` if the answer has none) and the choice's
/// `logprobs`. Last, one usage-only chunk `{"choices": [], "usage": ...}` when the answer
/// has `usage`. Every chunk carries the answer's `id`, `created`, `model` (and
/// `system_fingerprint`, `service_tier` when present).
///
/// `accumulate(&replay(x)) == x` for a `chat.completion` `x` except for what streams do
/// not carry: top-level fields other than those above, `choices` and `usage` (e.g.
/// Azure's `prompt_filter_results`); message fields other than `role`, `content`,
/// `refusal`, `tool_calls` (e.g. `annotations`, `audio`, `function_call`); a `null`
/// `refusal` (dropped); tool call fields other than `id`, `type`, `function.name`,
/// `function.arguments`; a choice without `logprobs` gets `logprobs: null`; content given
/// as parts becomes their concatenated text; choices come back sorted by index.
/// Anything but a JSON object replays as no chunks.
pub fn replay(whole: &Value) -> Vec<Value> {
    let Some(obj) = whole.as_object() else {
        return Vec::new();
    };
    let mut base = Map::new();
    for field in SHARED_FIELDS {
        if let Some(v) = obj.get(field).filter(|v| !v.is_null()) {
            base.insert(field.to_string(), v.clone());
        }
    }
    base.insert("object".into(), json!("chat.completion.chunk"));
    let chunk = |index: u64, delta: Value, logprobs: Value, finish: Value| {
        let mut c = base.clone();
        c.insert(
            "choices".into(),
            json!([{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]),
        );
        Value::Object(c)
    };
    let mut out = Vec::new();
    let choices = obj.get("choices").and_then(Value::as_array);
    for (pos, choice) in choices.into_iter().flatten().enumerate() {
        let Some(choice) = choice.as_object() else {
            continue;
        };
        let index = choice
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(pos as u64);
        let empty = Map::new();
        let message = choice
            .get("message")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("assistant");
        let text = content_text(message.get("content"));
        let first_content = if text.is_some() {
            json!("")
        } else {
            Value::Null
        };
        out.push(chunk(
            index,
            json!({"role": role, "content": first_content}),
            Value::Null,
            Value::Null,
        ));
        for piece in pieces(text.as_deref().unwrap_or_default()) {
            out.push(chunk(
                index,
                json!({"content": piece}),
                Value::Null,
                Value::Null,
            ));
        }
        if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
            // An empty refusal still needs one delta to come back as `""`.
            let mut parts = pieces(refusal);
            if parts.is_empty() {
                parts.push("");
            }
            for piece in parts {
                out.push(chunk(
                    index,
                    json!({"refusal": piece}),
                    Value::Null,
                    Value::Null,
                ));
            }
        }
        let calls = message.get("tool_calls").and_then(Value::as_array);
        for (i, call) in calls.into_iter().flatten().enumerate() {
            let Some(call) = call.as_object() else {
                continue;
            };
            let function = call.get("function").and_then(Value::as_object);
            let field = |m: Option<&Map<String, Value>>, k: &str| {
                m.and_then(|m| m.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let mut head = Map::new();
            head.insert("index".into(), json!(i));
            if let Some(id) = field(Some(call), "id") {
                head.insert("id".into(), json!(id));
            }
            head.insert(
                "type".into(),
                json!(field(Some(call), "type").unwrap_or_else(|| "function".into())),
            );
            head.insert(
                "function".into(),
                json!({"name": field(function, "name").unwrap_or_default(), "arguments": ""}),
            );
            out.push(chunk(
                index,
                json!({"tool_calls": [head]}),
                Value::Null,
                Value::Null,
            ));
            let args = field(function, "arguments").unwrap_or_default();
            if !args.is_empty() {
                out.push(chunk(
                    index,
                    json!({"tool_calls": [{"index": i, "function": {"arguments": args}}]}),
                    Value::Null,
                    Value::Null,
                ));
            }
        }
        let finish = match choice.get("finish_reason") {
            Some(f) if !f.is_null() => f.clone(),
            _ => json!("stop"),
        };
        let logprobs = choice.get("logprobs").cloned().unwrap_or(Value::Null);
        out.push(chunk(index, json!({}), logprobs, finish));
    }
    if let Some(usage) = obj.get("usage").filter(|u| u.is_object()) {
        let mut c = base.clone();
        c.insert("choices".into(), json!([]));
        c.insert("usage".into(), usage.clone());
        out.push(Value::Object(c));
    }
    out
}

#[cfg(test)]
mod tests;

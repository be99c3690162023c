use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::*;

fn req() -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0.2,
        "tools": [{"type": "function", "function": {"name": "f", "parameters":
            {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}}}],
    })
}

/// The same value with every object's keys inserted in reverse order.
fn reversed(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m.iter().rev() {
                out.insert(k.clone(), reversed(v));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

fn key(tenant: &str, model: &str, r: &Value) -> CacheKey {
    CacheKey::new(tenant, model, r)
}

#[test]
fn key_ignores_key_order() {
    let a = req();
    let b = reversed(&a);
    assert_eq!(key("t", "m", &a), key("t", "m", &b));
    // Parsed from differently ordered text, too.
    let x: Value =
        serde_json::from_str(r#"{"a": 1, "b": {"c": 2, "d": [ {"e": 3, "f": 4} ]}}"#).unwrap();
    let y: Value =
        serde_json::from_str(r#"{"b": {"d": [{"f": 4, "e": 3}], "c": 2}, "a": 1}"#).unwrap();
    assert_eq!(key("t", "m", &x), key("t", "m", &y));
}

#[test]
fn key_ignores_delivery_fields() {
    let base = key("t", "m", &req());
    let mut r = req();
    r["stream"] = json!(true);
    r["stream_options"] = json!({"include_usage": true});
    r["user"] = json!("end-user-42");
    r["metadata"] = json!({"x": "y"});
    r["store"] = json!(true);
    r["service_tier"] = json!("flex");
    r["n"] = json!(1);
    assert_eq!(key("t", "m", &r), base);
    r["stream"] = json!(false);
    r["n"] = Value::Null;
    assert_eq!(key("t", "m", &r), base);
    r["n"] = json!(2);
    assert_ne!(key("t", "m", &r), base);
}

#[test]
fn key_drops_fields_only_at_top_level() {
    let mut a = req();
    a["messages"][0]["stream"] = json!(true);
    assert_ne!(key("t", "m", &a), key("t", "m", &req()));
}

#[test]
fn key_separates_tenants_models_and_requests() {
    let r = req();
    let base = key("t", "m", &r);
    assert_ne!(key("t2", "m", &r), base);
    assert_ne!(key("t", "m2", &r), base);
    // Length-prefixed: bytes can't shift between tenant and model.
    assert_ne!(key("ab", "c", &r), key("a", "bc", &r));
    let mut other = r.clone();
    other["messages"][0]["content"] = json!("Hello!");
    assert_ne!(key("t", "m", &other), base);
    let mut other = r.clone();
    other["temperature"] = json!(0.3);
    assert_ne!(key("t", "m", &other), base);
    let mut other = r.clone();
    other["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "user", "content": "again"}));
    assert_ne!(key("t", "m", &other), base);
    // Strings and numbers that print alike stay apart.
    assert_ne!(
        key("t", "m", &json!({"a": "1"})),
        key("t", "m", &json!({"a": 1}))
    );
    // Non-object requests hash without panicking.
    let _ = key("t", "m", &json!([1, {"b": null}]));
    let _ = key("t", "m", &Value::Null);
}

fn answer(text: &str) -> Value {
    json!({"object": "chat.completion", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})
}

fn size_of(v: &Value) -> usize {
    serde_json::to_vec(v).unwrap().len()
}

#[test]
fn get_and_ttl_expiry() {
    let c = ResponseCache::new(1 << 20);
    let t0 = Instant::now();
    let k = key("t", "m", &req());
    assert!(c.is_empty());
    assert!(c.get(&k, t0).is_none());
    let a = answer("hi");
    c.put(k, a.clone(), Duration::from_secs(10), t0);
    assert_eq!(c.len(), 1);
    assert_eq!(c.bytes(), size_of(&a));
    assert_eq!(*c.get(&k, t0 + Duration::from_secs(9)).unwrap(), a);
    assert!(c.get(&k, t0 + Duration::from_secs(10)).is_none());
    // Dropped on the failed get.
    assert_eq!(c.len(), 0);
    assert_eq!(c.bytes(), 0);
}

#[test]
fn put_drops_expired_entries_and_replaces() {
    let c = ResponseCache::new(1 << 20);
    let t0 = Instant::now();
    let k1 = key("t", "m", &json!({"a": 1}));
    let k2 = key("t", "m", &json!({"a": 2}));
    c.put(k1, answer("one"), Duration::from_secs(1), t0);
    c.put(k2, answer("two"), Duration::from_secs(100), t0);
    assert_eq!(c.len(), 2);
    // Replacing k2 later drops the expired k1.
    let newer = answer("two, newer");
    c.put(
        k2,
        newer.clone(),
        Duration::from_secs(100),
        t0 + Duration::from_secs(5),
    );
    assert_eq!(c.len(), 1);
    assert_eq!(c.bytes(), size_of(&newer));
    assert_eq!(*c.get(&k2, t0 + Duration::from_secs(6)).unwrap(), newer);
    // Zero TTL stores nothing; a huge TTL does not overflow.
    let k3 = key("t", "m", &json!({"a": 3}));
    c.put(k3, answer("x"), Duration::ZERO, t0);
    assert!(c.get(&k3, t0).is_none());
    c.put(k3, answer("x"), Duration::from_secs(u64::MAX), t0);
    assert!(c.get(&k3, t0 + Duration::from_secs(1_000_000)).is_some());
}

#[test]
fn lru_eviction_order() {
    let a = answer("aaaa");
    let s = size_of(&a);
    // Room for exactly 8 entries of this size; each is at most max/8.
    let c = ResponseCache::new(8 * s);
    let t0 = Instant::now();
    let ttl = Duration::from_secs(60);
    let keys: Vec<CacheKey> = (0..9).map(|i| key("t", "m", &json!({"i": i}))).collect();
    for k in &keys[..8] {
        c.put(*k, a.clone(), ttl, t0);
    }
    assert_eq!(c.len(), 8);
    assert_eq!(c.bytes(), 8 * s);
    // Use 0 and 1 so 2 is the least recently used.
    assert!(c.get(&keys[0], t0).is_some());
    assert!(c.get(&keys[1], t0).is_some());
    c.put(keys[8], a.clone(), ttl, t0);
    assert_eq!(c.len(), 8);
    assert!(c.get(&keys[2], t0).is_none());
    for i in [0, 1, 3, 4, 5, 6, 7, 8] {
        assert!(c.get(&keys[i], t0).is_some(), "{i}");
    }
    // Now 0 is the oldest use.
    c.put(keys[2], a.clone(), ttl, t0);
    assert!(c.get(&keys[0], t0).is_none());
    assert!(c.get(&keys[1], t0).is_some());
    assert_eq!(c.bytes(), 8 * s);
}

#[test]
fn many_gets_keep_working() {
    // Exercises the compaction of the recency queue.
    let a = answer("x");
    let c = ResponseCache::new(8 * size_of(&a));
    let t0 = Instant::now();
    let ttl = Duration::from_secs(60);
    let keys: Vec<CacheKey> = (0..3).map(|i| key("t", "m", &json!({"i": i}))).collect();
    for k in &keys {
        c.put(*k, a.clone(), ttl, t0);
    }
    for _ in 0..10_000 {
        assert!(c.get(&keys[0], t0).is_some());
        assert!(c.get(&keys[2], t0).is_some());
    }
    let more: Vec<CacheKey> = (3..9).map(|i| key("t", "m", &json!({"i": i}))).collect();
    for k in &more {
        c.put(*k, a.clone(), ttl, t0);
    }
    // keys[1] was the least recently used.
    assert!(c.get(&keys[1], t0).is_none());
    assert!(c.get(&keys[0], t0).is_some());
    let live = c.len();
    assert!(c.inner.lock().unwrap().recency.len() <= 2 * live + 64);
}

#[test]
fn oversize_entries_refused() {
    let small = answer("s");
    let max = 8 * size_of(&small);
    let c = ResponseCache::new(max);
    let t0 = Instant::now();
    let k = key("t", "m", &req());
    c.put(k, small.clone(), Duration::from_secs(60), t0);
    let big = answer(&"x".repeat(max));
    c.put(k, big, Duration::from_secs(60), t0);
    assert_eq!(*c.get(&k, t0).unwrap(), small);
    assert_eq!(c.bytes(), size_of(&small));
    // Exactly max/8 is accepted; one byte more is not.
    let fits = answer(&"y".repeat(max / 8 - size_of(&answer(""))));
    assert_eq!(size_of(&fits), max / 8);
    let k2 = key("t", "m", &json!({"k": 2}));
    c.put(k2, fits, Duration::from_secs(60), t0);
    assert!(c.get(&k2, t0).is_some());
    let zero = ResponseCache::new(0);
    zero.put(k, small, Duration::from_secs(60), t0);
    assert!(zero.is_empty());
}

/// xorshift64*: deterministic pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_operations_respect_the_byte_bound() {
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let max = 2_000 + rng.below(6_000) as usize;
        let c = ResponseCache::new(max);
        let t0 = Instant::now();
        let keys: Vec<CacheKey> = (0..40).map(|i| key("t", "m", &json!({"i": i}))).collect();
        for step in 0..3_000u64 {
            let now = t0 + Duration::from_millis(step * 10);
            let k = keys[rng.below(keys.len() as u64) as usize];
            if rng.below(3) == 0 {
                let text = "z".repeat(rng.below((max / 6) as u64) as usize);
                let a = answer(&text);
                let ttl = Duration::from_millis(rng.below(5_000));
                c.put(k, a.clone(), ttl, now);
                let stored = size_of(&a) <= max / 8 && !ttl.is_zero();
                if stored {
                    assert_eq!(*c.get(&k, now).unwrap(), a);
                }
            } else if let Some(v) = c.get(&k, now) {
                assert_eq!(v.get("object").unwrap(), "chat.completion");
            }
            assert!(c.bytes() <= max, "seed {seed} step {step}");
            // Exact accounting: the byte count is the sum of the held sizes.
            let inner = c.inner.lock().unwrap();
            let sum: usize = inner.entries.values().map(|e| size_of(&e.answer)).sum();
            assert_eq!(inner.bytes, sum);
            assert_eq!(inner.expiry.len(), inner.entries.len());
        }
    }
}

#[test]
fn concurrent_use() {
    let c = Arc::new(ResponseCache::new(4_000));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                for i in 0..500 {
                    let k = key("t", "m", &json!({"i": (i * 7 + t) % 50}));
                    if i % 2 == 0 {
                        c.put(k, answer(&"w".repeat(i % 300)), Duration::from_secs(5), t0);
                    } else {
                        let _ = c.get(&k, t0);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(c.bytes() <= 4_000);
}

// ---- accumulate / replay ----

fn whole(choices: Value, usage: Value) -> Value {
    json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1_700_000_000,
        "model": "gpt-4o-mini", "system_fingerprint": "fp_1",
        "choices": choices, "usage": usage,
    })
}

fn usage() -> Value {
    json!({"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 0}})
}

fn round_trip(x: &Value) {
    let chunks = replay(x);
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert_eq!(c["id"], x["id"]);
    }
    assert_eq!(accumulate(&chunks).as_ref(), Some(x), "{chunks:#?}");
}

#[test]
fn round_trip_text() {
    let x = whole(
        json!([{"index": 0, "message": {"role": "assistant",
            "content": "Hello there,  world!\nNew line\ttab — ünïcode 你好世界你好世界你好世界你好世界 end "},
            "logprobs": null, "finish_reason": "stop"}]),
        usage(),
    );
    round_trip(&x);
    let chunks = replay(&x);
    // Role chunk first, words in pieces, finish, then the usage-only chunk.
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hello ");
    assert_eq!(chunks[2]["choices"][0]["delta"]["content"], "there,  ");
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(chunks[n - 1]["usage"], usage());
    for c in &chunks {
        if let Some(s) = c["choices"][0]["delta"]["content"].as_str() {
            assert!(s.len() <= 32, "{s:?}");
        }
    }
}

#[test]
fn round_trip_empty_and_null_content() {
    round_trip(&whole(
        json!([{"index": 0, "message": {"role": "assistant", "content": ""},
            "logprobs": null, "finish_reason": "length"}]),
        usage(),
    ));
    round_trip(&whole(
        json!([{"index": 0, "message": {"role": "assistant", "content": null},
            "logprobs": null, "finish_reason": "stop"}]),
        usage(),
    ));
}

#[test]
fn round_trip_multiple_choices() {
    round_trip(&whole(
        json!([
            {"index": 0, "message": {"role": "assistant", "content": "First answer here."},
                "logprobs": null, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": "Second, different."},
                "logprobs": null, "finish_reason": "length"},
            {"index": 2, "message": {"role": "assistant", "content": "Third"},
                "logprobs": null, "finish_reason": "stop"},
        ]),
        usage(),
    ));
}

#[test]
fn round_trip_tool_calls() {
    round_trip(&whole(
        json!([{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
            {"id": "call_2", "type": "function",
                "function": {"name": "get_time", "arguments": "{\"tz\": \"CET\"}"}},
            {"id": "call_3", "type": "function",
                "function": {"name": "noop", "arguments": ""}},
        ]}, "logprobs": null, "finish_reason": "tool_calls"}]),
        usage(),
    ));
    // Text and a tool call in one message.
    round_trip(&whole(
        json!([{"index": 0, "message": {"role": "assistant", "content": "Let me check.",
            "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "f", "arguments": "{}"}}]},
            "logprobs": null, "finish_reason": "tool_calls"}]),
        usage(),
    ));
}

#[test]
fn round_trip_refusal_and_logprobs() {
    round_trip(&whole(
        json!([{"index": 0, "message": {"role": "assistant", "content": null,
            "refusal": "I can't help with that request."},
            "logprobs": null, "finish_reason": "stop"}]),
        usage(),
    ));
    round_trip(&whole(
        json!([{"index": 0, "message": {"role": "assistant", "content": "Hi there"},
            "logprobs": {"content": [
                {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []},
                {"token": " there", "logprob": -0.2, "bytes": null, "top_logprobs": []}],
                "refusal": null},
            "finish_reason": "stop"}]),
        usage(),
    ));
}

#[test]
fn round_trip_without_usage_or_ids() {
    let x = json!({"object": "chat.completion", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "ok"}, "logprobs": null,
        "finish_reason": "stop"}]});
    round_trip(&x);
    assert!(replay(&x).iter().all(|c| c.get("usage").is_none()));
}

#[test]
fn replay_mock_shaped_answer() {
    // The mock provider's whole answer lacks `logprobs`; it comes back as `null`.
    let x = json!({"id": "m", "object": "chat.completion", "created": 1, "model": "mock",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "a b c"},
            "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}});
    let mut expected = x.clone();
    expected["choices"][0]["logprobs"] = Value::Null;
    assert_eq!(accumulate(&replay(&x)), Some(expected));
}

fn chunk(choices: Value) -> Value {
    json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 5,
        "model": "gpt-4o", "choices": choices})
}

#[test]
fn accumulate_interleaved_tool_call_fragments() {
    let chunks = vec![
        chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": null,
            "tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                "function": {"name": "alpha", "arguments": ""}}]}, "finish_reason": null}]),
        ),
        chunk(json!([{"index": 0, "delta": {"tool_calls": [
            {"index": 1, "id": "call_b", "type": "function",
                "function": {"name": "beta", "arguments": "{\"y\""}}]}, "finish_reason": null}])),
        chunk(json!([{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "{\"x\""}},
            {"index": 1, "function": {"arguments": ": 2"}}]}, "finish_reason": null}])),
        chunk(json!([{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": ": 1}"}}]}, "finish_reason": null}])),
        chunk(json!([{"index": 0, "delta": {"tool_calls": [
            {"index": 1, "function": {"arguments": "}"}}]}, "finish_reason": null}])),
        chunk(json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])),
        json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 5,
            "model": "gpt-4o", "choices": [], "usage": usage()}),
    ];
    let w = accumulate(&chunks).unwrap();
    assert_eq!(
        w,
        json!({"id": "chatcmpl-s", "object": "chat.completion", "created": 5, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": [
                    {"id": "call_a", "type": "function",
                        "function": {"name": "alpha", "arguments": "{\"x\": 1}"}},
                    {"id": "call_b", "type": "function",
                        "function": {"name": "beta", "arguments": "{\"y\": 2}"}}]},
                "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": usage()})
    );
}

#[test]
fn accumulate_interleaved_choices() {
    let chunks = vec![
        chunk(
            json!([{"index": 1, "delta": {"role": "assistant", "content": "B1 "},
            "finish_reason": null}]),
        ),
        chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": "A1 "},
            "finish_reason": null}]),
        ),
        chunk(
            json!([{"index": 0, "delta": {"content": "A2"}, "finish_reason": null},
            {"index": 1, "delta": {"content": "B2"}, "finish_reason": "stop"}]),
        ),
        chunk(json!([{"index": 0, "delta": {"refusal": null}, "finish_reason": "length"}])),
    ];
    let w = accumulate(&chunks).unwrap();
    assert_eq!(w["choices"][0]["message"]["content"], "A1 A2");
    assert_eq!(w["choices"][0]["finish_reason"], "length");
    assert_eq!(w["choices"][1]["message"]["content"], "B1 B2");
    assert_eq!(w["choices"][1]["finish_reason"], "stop");
    assert!(w.get("usage").is_none());
    assert!(w["choices"][0]["message"].get("refusal").is_none());
}

#[test]
fn accumulate_tool_calls_without_index() {
    // Not OpenAI-conformant, but seen from some compatible servers.
    let chunks = vec![
        chunk(
            json!([{"index": 0, "delta": {"tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "f", "arguments": "{\"a\""}}]}}]),
        ),
        chunk(json!([{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": ":1}"}}]}}])),
        chunk(
            json!([{"index": 0, "delta": {"tool_calls": [{"id": "c2", "type": "function",
            "function": {"name": "g", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]),
        ),
    ];
    let w = accumulate(&chunks).unwrap();
    let calls = w["choices"][0]["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["function"]["arguments"], "{\"a\":1}");
    assert_eq!(calls[1]["function"]["name"], "g");
}

#[test]
fn accumulate_unfinished_is_none() {
    let x = whole(
        json!([
            {"index": 0, "message": {"role": "assistant", "content": "one two"},
                "logprobs": null, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": "three"},
                "logprobs": null, "finish_reason": "stop"},
        ]),
        usage(),
    );
    let chunks = replay(&x);
    // Drop the finish chunk of choice 1 (the one before the usage chunk).
    let mut cut = chunks.clone();
    cut.remove(cut.len() - 2);
    assert_eq!(accumulate(&cut), None);
    // Stopped mid-way.
    assert_eq!(accumulate(&chunks[..3]), None);
    assert_eq!(accumulate(&[]), None);
    // Only a usage chunk: nothing was answered.
    assert_eq!(accumulate(&chunks[chunks.len() - 1..]), None);
}

#[test]
fn garbage_does_not_panic() {
    let garbage = vec![
        Value::Null,
        json!(1),
        json!("data: [DONE]"),
        json!([]),
        json!({}),
        json!({"choices": null}),
        json!({"choices": "x"}),
        json!({"choices": [null, 1, "x", []]}),
        json!({"choices": [{"index": -1, "delta": "x", "finish_reason": 7}]}),
        json!({"choices": [{"index": "0", "delta": {"content": 5, "role": [],
            "refusal": {}, "tool_calls": "x"}}]}),
        json!({"choices": [{"index": u64::MAX, "delta": {"tool_calls": [null, 3,
            {"index": -2, "id": 4, "function": "f"},
            {"index": u64::MAX, "function": {"name": 1, "arguments": null}}]},
            "logprobs": {"content": "x", "refusal": 3}, "finish_reason": "stop"}]}),
        json!({"id": 3, "created": "x", "usage": [1]}),
    ];
    for i in 0..garbage.len() {
        let _ = accumulate(&garbage[i..]);
        let _ = replay(&garbage[i]);
        if let Some(w) = accumulate(&garbage[i..]) {
            let _ = accumulate(&replay(&w));
        }
    }
    let _ = replay(
        &json!({"choices": [null, {"message": "x", "finish_reason": null},
        {"message": {"content": [{"type": "text", "text": "hi"}, 3], "refusal": 1,
            "tool_calls": [1, {"function": 2}, {"id": null}]}, "logprobs": 5}],
        "usage": "x"}),
    );
}

#[test]
fn replay_content_parts_as_text() {
    let x = whole(
        json!([{"index": 0, "message": {"role": "assistant",
            "content": [{"type": "text", "text": "a b"}, {"type": "text", "text": " c"}]},
            "logprobs": null, "finish_reason": "stop"}]),
        usage(),
    );
    let w = accumulate(&replay(&x)).unwrap();
    assert_eq!(w["choices"][0]["message"]["content"], "a b c");
}

#[test]
fn pieces_concatenate_back() {
    for text in [
        "",
        " ",
        "a",
        "  lead",
        "trail  ",
        "a\n\nb c",
        "ééééééééééééééééééééééééé",
        "你好世界你好世界你好世界",
    ] {
        let p = pieces(text);
        assert_eq!(p.concat(), text);
        assert!(p.iter().all(|s| !s.is_empty() && s.len() <= MAX_PIECE));
    }
}

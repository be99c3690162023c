//! Usage, cost and token quotas: whole and streamed calls settle exactly the provider's
//! reported tokens with the model's quota (also eight streams at once), a client that
//! leaves mid-stream is billed for what was produced, a used-up quota is a 429 with
//! `Retry-After` and `RateLimit-*`, and a `hard` policy lowers `max_tokens` sent upstream.

use std::time::Duration;

use raftgate_chaos::llm_mock::Flavor;
use raftgate_chaos::MockOptions;
use serde_json::{json, Value};

use crate::{
    chat_body, delta_text, last_request, metric, mock, mock_with, serial, streaming, usage_chunks,
    words, Gateway,
};

const SYSTEM: &str = "count my tokens";

/// Input and output tokens the mock reports for `chat_body(_, SYSTEM, user)`.
fn mock_usage(user: &str) -> (u64, u64) {
    (
        words(SYSTEM) + words(user),
        words(&format!("mock reply to: {user}")),
    )
}

/// A total-tokens policy `id` per consumer, a minute window.
fn token_policy(id: &str, limit: u64) -> Value {
    json!({"id": id, "scope": ["consumer"], "metric": "total_tokens", "window": "minute",
        "limit": limit})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_and_streamed_calls_settle_the_reported_tokens() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let k1 = gw.consumer_with_key("c1").await;
    let k2 = gw.consumer_with_key("c2").await;
    let oa = mock(Flavor::OpenAi, "oa", "sk-oa").await;
    gw.provider_for("oa", &oa, "sk-oa").await;
    gw.create("quota_policies", token_policy("tok", 100_000))
        .await;
    gw.create(
        "models",
        json!({"id": "metered", "quotas": ["tok"],
            "deployments": [{"provider": "oa", "model": "gpt-4o-mini"}],
            "pricing": {"input": 2.0, "output": 3.0}}),
    )
    .await;
    gw.permit("c1", "metered").await;
    gw.permit("c2", "metered").await;

    // c1: two whole calls, a stream with usage, a stream without.
    let (mut expected, mut input, mut output) = (0, 0, 0);
    for user in ["one two three", "four five six seven eight"] {
        let a = gw
            .call(
                "/v1/chat/completions",
                &k1,
                &chat_body("metered", SYSTEM, user),
            )
            .await;
        let body = a.ok("metered call");
        let (i, o) = mock_usage(user);
        assert_eq!(
            body["usage"]["total_tokens"].as_u64(),
            Some(i + o),
            "{}",
            a.text
        );
        assert!(
            a.header("ratelimit-limit").is_some(),
            "RateLimit-Limit on an answer under a quota: {:?}",
            a.headers
        );
        expected += i + o;
        input += i;
        output += o;
    }
    for (user, with_usage) in [("stream with usage", true), ("stream without it", false)] {
        let s = gw
            .stream(
                "/v1/chat/completions",
                &k1,
                &streaming(chat_body("metered", SYSTEM, user), with_usage),
            )
            .await;
        s.ok(user);
        let chunks = s.openai_chunks(user);
        let (i, o) = mock_usage(user);
        if with_usage {
            let u = usage_chunks(&chunks);
            assert_eq!(u.len(), 1, "{user}: {}", s.text);
            assert_eq!(u[0]["usage"]["total_tokens"].as_u64(), Some(i + o));
        }
        assert_eq!(delta_text(&chunks), format!("mock reply to: {user}"));
        expected += i + o;
        input += i;
        output += o;
    }
    gw.expect_used("c1's tokens", "policy=tok&consumer=c1", expected)
        .await;

    // Cost and token metrics: pricing 2 and 3 micro-dollars per token.
    let m = gw.metrics().await;
    let tokens = |kind: &str| {
        metric(
            &m,
            "raftgate_llm_tokens_total",
            &[("model", "metered"), ("type", kind)],
        )
    };
    assert_eq!(tokens("input"), input as f64, "metrics:\n{m}");
    assert_eq!(tokens("output"), output as f64, "metrics:\n{m}");
    assert_eq!(
        metric(
            &m,
            "raftgate_llm_cost_microusd_total",
            &[("model", "metered")]
        ),
        (2 * input + 3 * output) as f64,
        "metrics:\n{m}"
    );

    // c2: eight streams at once settle exactly the same way.
    let users: Vec<String> = (0..8)
        .map(|i| format!("concurrent stream number {i} {}", "word ".repeat(i)))
        .collect();
    let calls = users.iter().map(|user| {
        let body = streaming(chat_body("metered", SYSTEM, user), false);
        let (gw, k2) = (&gw, &k2);
        async move {
            let s = gw.stream("/v1/chat/completions", k2, &body).await;
            s.ok("concurrent stream");
            let chunks = s.openai_chunks("concurrent stream");
            assert_eq!(
                delta_text(&chunks),
                format!("mock reply to: {}", user.trim())
            );
        }
    });
    futures::future::join_all(calls).await;
    let expected: u64 = users
        .iter()
        .map(|u| {
            let (i, _) = mock_usage(u);
            i + words(&format!("mock reply to: {}", u.trim()))
        })
        .sum();
    gw.expect_used(
        "c2's concurrent streams",
        "policy=tok&consumer=c2",
        expected,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaving_mid_stream_is_billed_for_what_was_produced() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let key = gw.consumer_with_key("c3").await;
    let reply = vec!["tok"; 40].join(" ");
    let slow = mock_with(
        MockOptions::new(Flavor::OpenAi)
            .name("slow")
            .api_key("sk-s")
            .reply(&reply)
            .chunk_delay(Duration::from_millis(50)),
    )
    .await;
    gw.provider_for("slow", &slow, "sk-s").await;
    gw.create("quota_policies", token_policy("tok", 100_000))
        .await;
    gw.create(
        "models",
        json!({"id": "slowm", "quotas": ["tok"],
            "deployments": [{"provider": "slow", "model": "gpt-4o-mini"}]}),
    )
    .await;
    gw.permit("c3", "slowm").await;
    let user = "tell me a long story";
    let prompt = words(SYSTEM) + words(user);
    let full = prompt + words(&reply);

    let mut resp = gw
        .post(
            "/v1/chat/completions",
            &key,
            &streaming(chat_body("slowm", SYSTEM, user), false),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let mut seen = String::new();
    while seen.matches("data:").count() < 3 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .expect("a chunk within 5 s")
            .expect("stream readable")
            .expect("stream not ended before 3 events");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(resp);

    // Billed: more than the prompt, less than the whole answer.
    let last = std::sync::Mutex::new(0);
    let billed = raftgate_chaos::wait::until(
        "the abandoned stream is settled",
        Duration::from_secs(8),
        || async {
            let (used, _) = gw.used("policy=tok&consumer=c3").await;
            *last.lock().unwrap() = used;
            if used > prompt && used < full {
                Ok(used)
            } else {
                Err(format!("used {used}, expected in ({prompt}, {full})"))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    println!("abandoned stream billed {billed} tokens (prompt {prompt}, whole answer {full})");
    // The upstream stream was stopped: the mock would still be sending otherwise.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (used, items) = gw.used("policy=tok&consumer=c3").await;
    assert_eq!(used, billed, "the bill did not move afterwards: {items}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_up_token_quota_is_a_429_with_rate_limit_headers() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let key = gw.consumer_with_key("c4").await;
    let oa = mock(Flavor::OpenAi, "oa", "sk-oa").await;
    gw.provider_for("oa", &oa, "sk-oa").await;
    gw.create("quota_policies", token_policy("tiny", 60)).await;
    gw.create(
        "models",
        json!({"id": "tinym", "quotas": ["tiny"], "default_max_tokens": 10,
            "deployments": [{"provider": "oa", "model": "gpt-4o-mini"}]}),
    )
    .await;
    gw.permit("c4", "tinym").await;

    let (mut ok, mut settled) = (0u64, 0u64);
    let refused = loop {
        assert!(ok < 30, "60 tokens never ran out after {ok} calls");
        let a = gw
            .call("/v1/chat/completions", &key, &chat_body("tinym", "s", "hi"))
            .await;
        if a.status == 429 {
            break a;
        }
        a.ok("under the quota");
        assert_eq!(a.header("ratelimit-limit"), Some("60"), "{:?}", a.headers);
        assert!(a.header("ratelimit-remaining").is_some(), "{:?}", a.headers);
        settled += a.body["usage"]["total_tokens"].as_u64().expect("usage");
        ok += 1;
    };
    assert!(ok >= 1, "the first call fits the quota");
    println!("limit 60 tokens: {ok} calls admitted ({settled} tokens), then 429");
    let e = refused.openai_error("quota used up", 429);
    assert_eq!(e["code"], "rate_limit_exceeded", "{}", refused.text);
    let retry = refused
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("Retry-After in seconds: {:?}", refused.headers));
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    for h in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        assert!(refused.header(h).is_some(), "{h}: {:?}", refused.headers);
    }
    assert_eq!(oa.hits(), ok, "the refused call did not reach the provider");
    gw.expect_used("tiny's tokens", "policy=tiny&consumer=c4", settled)
        .await;
    assert!(settled <= 60, "settled {settled} over the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_output_quota_lowers_max_tokens_sent_upstream() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let (key, oa) = hard_quota_gateway(&gw).await;
    let user = "tell me about the weather today please";

    let a = gw
        .call(
            "/v1/chat/completions",
            &key,
            &chat_body("capped", SYSTEM, user),
        )
        .await;
    let body = a.ok("hard quota");
    let sent = last_request(&oa).body;
    let max = sent
        .get("max_tokens")
        .or_else(|| sent.get("max_completion_tokens"));
    assert_eq!(
        max,
        Some(&json!(4)),
        "max_tokens sent upstream is what the reservation covers: {sent}"
    );
    assert_eq!(a.content(), "mock reply to: tell", "{}", a.text);
    assert_eq!(body["choices"][0]["finish_reason"], "length", "{}", a.text);
    assert_eq!(body["usage"]["completion_tokens"], 4, "{}", a.text);

    let s = gw
        .stream(
            "/v1/chat/completions",
            &key,
            &streaming(chat_body("capped", SYSTEM, user), false),
        )
        .await;
    s.ok("hard quota, stream");
    let chunks = s.openai_chunks("hard quota, stream");
    assert_eq!(delta_text(&chunks), "mock reply to: tell", "{}", s.text);
    assert_eq!(
        crate::finish_reason(&chunks).as_deref(),
        Some("length"),
        "{}",
        s.text
    );
    let sent = last_request(&oa).body;
    assert_eq!(
        sent.get("max_tokens")
            .or_else(|| sent.get("max_completion_tokens")),
        Some(&json!(4)),
        "stream: {sent}"
    );
}

/// A hard output quota with `default_max_tokens` 4 and one stream that the provider ends
/// at 4 tokens itself.
async fn hard_quota_gateway(gw: &Gateway) -> (String, raftgate_chaos::MockProvider) {
    let key = gw.consumer_with_key("c5").await;
    let oa = mock(Flavor::OpenAi, "oa", "sk-oa").await;
    gw.provider_for("oa", &oa, "sk-oa").await;
    gw.create(
        "quota_policies",
        json!({"id": "hardout", "scope": ["consumer"], "metric": "output_tokens",
            "window": "minute", "limit": 1000, "hard": true}),
    )
    .await;
    gw.create(
        "models",
        json!({"id": "capped", "quotas": ["hardout"], "default_max_tokens": 4,
            "deployments": [{"provider": "oa", "model": "gpt-4o-mini"}]}),
    )
    .await;
    gw.permit("c5", "capped").await;
    (key, oa)
}

/// The gateway's own cut (output estimated at 4 characters per token) fires on
/// "mock reply to: tell" (19 characters: 5 estimated tokens > 4) before the provider's
/// usage chunk is read, so the call is billed 5 estimated output tokens instead of the 4
/// the provider reported — more than the reservation a hard policy promises not to
/// exceed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_quota_stream_is_billed_the_reported_tokens_within_its_reservation() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let (key, _oa) = hard_quota_gateway(&gw).await;
    let user = "tell me about the weather today please";
    let s = gw
        .stream(
            "/v1/chat/completions",
            &key,
            &streaming(chat_body("capped", SYSTEM, user), true),
        )
        .await;
    s.ok("hard quota, stream");
    let chunks = s.openai_chunks("hard quota, stream");
    assert_eq!(delta_text(&chunks), "mock reply to: tell", "{}", s.text);
    let usage = usage_chunks(&chunks);
    assert_eq!(
        usage.len(),
        1,
        "the usage chunk asked for with include_usage: {}",
        s.text
    );
    assert_eq!(usage[0]["usage"]["completion_tokens"], 4, "{}", s.text);
    gw.expect_used("hard output tokens", "policy=hardout&consumer=c5", 4)
        .await;
}

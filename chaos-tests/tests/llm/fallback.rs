//! Fallback and retry: a primary deployment (priority 0) that is rate limited, fails,
//! hangs or resets is replaced by the secondary (priority 1) or by a fallback model;
//! streams fall back until their first chunk; the failed deployment cools down (the next
//! call goes straight to the secondary) and is probed again after its `Retry-After`; a
//! provider's own 400 is returned as is; when everything is rate limited the client gets
//! a 429 with the shortest `Retry-After`. Both mocks answer with their own text, so the
//! content names the mock that served.

use std::time::{Duration, Instant};

use raftgate_chaos::llm_mock::{Fault, Flavor};
use raftgate_chaos::{MockOptions, MockProvider};
use serde_json::{json, Value};

use crate::{
    chat_body, delta_text, metric, mock_with, serial, sse, streaming, Answer, Gateway, Streamed,
};

const PRIMARY: &str = "answer from primary";
const SECONDARY: &str = "answer from secondary";

/// Chat requests a mock received for the upstream model `model` (every case has its own).
fn hits(m: &MockProvider, model: &str) -> usize {
    m.requests()
        .iter()
        .filter(|r| r.body.get("model").and_then(Value::as_str) == Some(model))
        .count()
}

struct Setup {
    gw: Gateway,
    key: String,
    primary: MockProvider,
    secondary: MockProvider,
}

impl Setup {
    async fn start() -> Setup {
        let gw = Gateway::start().await;
        let key = gw.consumer_with_key("app").await;
        let primary = mock_with(
            MockOptions::new(Flavor::OpenAi)
                .name("primary")
                .api_key("sk-1")
                .reply(PRIMARY),
        )
        .await;
        let secondary = mock_with(
            MockOptions::new(Flavor::OpenAi)
                .name("secondary")
                .api_key("sk-2")
                .reply(SECONDARY),
        )
        .await;
        gw.provider_for("p-primary", &primary, "sk-1").await;
        gw.provider_for("p-secondary", &secondary, "sk-2").await;
        Setup {
            gw,
            key,
            primary,
            secondary,
        }
    }

    /// A model `id` on both providers (upstream model name `id` too), primary first.
    async fn pair(&self, id: &str, timeout_ms: Option<u64>) {
        let mut body = json!({"id": id, "deployments": [
            {"provider": "p-primary", "model": id, "priority": 0},
            {"provider": "p-secondary", "model": id, "priority": 1}]});
        if let Some(t) = timeout_ms {
            body["timeout_ms"] = json!(t);
        }
        self.gw.create("models", body).await;
        self.gw.permit("app", id).await;
    }

    async fn call(&self, model: &str) -> Answer {
        self.gw
            .call(
                "/v1/chat/completions",
                &self.key,
                &chat_body(model, "sys", "hello"),
            )
            .await
    }

    async fn stream(&self, model: &str) -> Streamed {
        self.gw
            .stream(
                "/v1/chat/completions",
                &self.key,
                &streaming(chat_body(model, "sys", "hello"), true),
            )
            .await
    }

    /// (primary, secondary) requests for `model`.
    fn hits(&self, model: &str) -> (usize, usize) {
        (hits(&self.primary, model), hits(&self.secondary, model))
    }
}

/// Served by the secondary: 200, its text, its provider id.
fn from_secondary(what: &str, a: &Answer) {
    a.ok(what);
    assert_eq!(a.content(), SECONDARY, "{what}: served by: {}", a.text);
    assert_eq!(
        a.header("x-raftgate-provider"),
        Some("p-secondary"),
        "{what}"
    );
}

fn from_primary(what: &str, a: &Answer) {
    a.ok(what);
    assert_eq!(a.content(), PRIMARY, "{what}: served by: {}", a.text);
    assert_eq!(a.header("x-raftgate-provider"), Some("p-primary"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_primary_falls_back_cools_down_and_is_probed_again() {
    let _serial = serial().await;
    let s = Setup::start().await;
    s.pair("rl", None).await;
    s.primary.set_fault(Fault::Status {
        status: 429,
        retry_after_secs: Some(1),
        times: Some(1),
    });
    let a = s.call("rl").await;
    from_secondary("429 primary", &a);
    assert_eq!(
        s.hits("rl"),
        (1, 1),
        "primary tried once, then the secondary"
    );

    let a = s.call("rl").await;
    from_secondary("during the cool-down", &a);
    assert_eq!(
        s.hits("rl"),
        (1, 2),
        "the cooling primary is not tried again"
    );

    // Retry-After: 1 s; then the primary is probed (and answers: the fault is spent).
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let a = s.call("rl").await;
    from_primary("after the cool-down", &a);
    assert_eq!(s.hits("rl"), (2, 2), "the primary is probed again");

    let m = s.gw.metrics().await;
    let attempts = |provider: &str, outcome: &str| {
        metric(
            &m,
            "raftgate_llm_attempts_total",
            &[
                ("model", "rl"),
                ("provider", provider),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(attempts("p-primary", "rate_limited"), 1.0, "metrics:\n{m}");
    assert_eq!(attempts("p-primary", "ok"), 1.0, "metrics:\n{m}");
    assert_eq!(attempts("p-secondary", "ok"), 2.0, "metrics:\n{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_or_resetting_primary_falls_back_whole_and_streamed() {
    let _serial = serial().await;
    let s = Setup::start().await;

    // 500: fall back, then the primary cools down (10 s without Retry-After).
    s.pair("e500", None).await;
    s.primary.set_fault(Fault::Status {
        status: 500,
        retry_after_secs: None,
        times: None,
    });
    from_secondary("500 primary", &s.call("e500").await);
    assert_eq!(s.hits("e500"), (1, 1));
    // The access log line of that call names both attempts, in order.
    let want = r#""attempts":["p-primary/e500:error","p-secondary/e500:ok"]"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(&s.gw.access_log).unwrap_or_default();
        if log
            .lines()
            .any(|l| l.contains(want) && l.contains(r#""model":"e500""#))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access log line with {want}:\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    from_secondary("500 primary, cooling", &s.call("e500").await);
    assert_eq!(s.hits("e500"), (1, 2), "the cooling primary is skipped");

    // Connection reset without an answer.
    s.pair("reset", None).await;
    s.primary.set_fault(Fault::Reset);
    from_secondary("reset primary", &s.call("reset").await);
    assert_eq!(s.hits("reset"), (1, 1));

    // Streams: a 500 before the stream, and a stream that breaks before its first chunk.
    for (model, fault) in [
        (
            "s500",
            Fault::Status {
                status: 500,
                retry_after_secs: None,
                times: None,
            },
        ),
        ("sdrop", Fault::DisconnectMidStream { after_chunks: 0 }),
    ] {
        s.pair(model, None).await;
        s.primary.set_fault(fault.clone());
        let st = s.stream(model).await;
        let what = format!("stream, primary {fault:?}");
        st.ok(&what);
        assert_eq!(
            st.header("x-raftgate-provider"),
            Some("p-secondary"),
            "{what}"
        );
        let chunks = st.openai_chunks(&what);
        assert_eq!(delta_text(&chunks), SECONDARY, "{what}: {}", st.text);
        assert_eq!(s.hits(model), (1, 1), "{what}");
    }
    // The Anthropic API in: the stream falls back as well, in Anthropic's events.
    s.pair("sdrop-msg", None).await;
    s.primary
        .set_fault(Fault::DisconnectMidStream { after_chunks: 0 });
    let resp = messages(&s, "sdrop-msg", true).await;
    assert_eq!(resp.status(), 200, "/v1/messages stream, primary dropped");
    let raw = resp.text().await.expect("stream body");
    let text: String = sse(&raw)
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_delta"))
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, SECONDARY, "/v1/messages stream fallback: {raw}");
    assert_eq!(
        sse(&raw).last().and_then(|e| e.event.clone()).as_deref(),
        Some("message_stop"),
        "{raw}"
    );
    assert_eq!(s.hits("sdrop-msg"), (1, 1));
    s.primary.set_fault(Fault::None);

    let m = s.gw.metrics().await;
    let attempts = |model: &str, provider: &str, outcome: &str| {
        metric(
            &m,
            "raftgate_llm_attempts_total",
            &[
                ("model", model),
                ("provider", provider),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(attempts("e500", "p-primary", "error"), 1.0, "metrics:\n{m}");
    assert_eq!(attempts("e500", "p-secondary", "ok"), 2.0, "metrics:\n{m}");
    assert_eq!(
        attempts("reset", "p-primary", "unreachable"),
        1.0,
        "metrics:\n{m}"
    );
    assert_eq!(attempts("reset", "p-secondary", "ok"), 1.0, "metrics:\n{m}");
}

/// The first attempt may take the model's whole `timeout_ms`, so a hanging primary
/// leaves no time for the secondary: 504 `provider did not answer within 1.5s`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_primary_falls_back_within_the_models_timeout() {
    let _serial = serial().await;
    let s = Setup::start().await;
    s.pair("hang", Some(1_500)).await;
    s.primary.set_fault(Fault::Hang);
    let started = Instant::now();
    let a = s.call("hang").await;
    let took = started.elapsed();
    from_secondary("hanging primary, timeout_ms 1500", &a);
    assert_eq!(s.hits("hang"), (1, 1));
    assert!(
        took < Duration::from_millis(2_500),
        "answered after {took:?}"
    );
    // Cooling: the next call does not wait for the primary.
    let started = Instant::now();
    from_secondary("hanging primary, cooling", &s.call("hang").await);
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(s.hits("hang"), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_model_serves_when_the_models_deployments_fail() {
    let _serial = serial().await;
    let s = Setup::start().await;
    s.gw.create(
        "models",
        json!({"id": "chain-backup",
            "deployments": [{"provider": "p-secondary", "model": "chain-backup"}]}),
    )
    .await;
    s.gw.create(
        "models",
        json!({"id": "chain", "fallbacks": ["chain-backup"],
            "deployments": [{"provider": "p-primary", "model": "chain"}]}),
    )
    .await;
    s.gw.permit("app", "chain").await;
    s.primary.set_fault(Fault::Status {
        status: 503,
        retry_after_secs: None,
        times: None,
    });
    let a = s.call("chain").await;
    from_secondary("fallback model", &a);
    assert_eq!(a.body["model"], "chain", "the public model asked for");
    assert_eq!(
        a.header("x-raftgate-upstream-model"),
        Some("chain-backup"),
        "fallback model"
    );
    assert_eq!(
        (
            hits(&s.primary, "chain"),
            hits(&s.secondary, "chain-backup")
        ),
        (1, 1)
    );
    // Streamed too.
    let st = s.stream("chain").await;
    st.ok("fallback model, stream");
    assert_eq!(
        delta_text(&st.openai_chunks("fallback model, stream")),
        SECONDARY
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_bad_request_is_returned_as_is_and_not_retried() {
    let _serial = serial().await;
    let s = Setup::start().await;
    s.pair("bad", None).await;
    s.primary.set_fault(Fault::Status {
        status: 400,
        retry_after_secs: None,
        times: Some(1),
    });
    let a = s.call("bad").await;
    a.openai_error("provider 400", 400);
    assert_eq!(s.hits("bad"), (1, 0), "a bad request is not sent elsewhere");
    // The primary did not cool down: the next call goes to it.
    from_primary("after a 400", &s.call("bad").await);
    assert_eq!(s.hits("bad"), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_deployment_rate_limited_is_a_429_with_the_shortest_retry_after() {
    let _serial = serial().await;
    let s = Setup::start().await;
    s.pair("allrl", None).await;
    s.primary.set_fault(Fault::Status {
        status: 429,
        retry_after_secs: Some(7),
        times: None,
    });
    s.secondary.set_fault(Fault::Status {
        status: 429,
        retry_after_secs: Some(3),
        times: None,
    });
    let a = s.call("allrl").await;
    a.openai_error("all rate limited", 429);
    assert_eq!(a.header("retry-after"), Some("3"), "{:?}", a.headers);
    assert_eq!(s.hits("allrl"), (1, 1));

    // The same through /v1/messages: Anthropic's rate_limit_error (both deployments are
    // cooling now, and are tried anyway as nothing else is left).
    s.pair("allrl-msg", None).await;
    let a = messages(&s, "allrl-msg", false).await;
    let a = Answer::read(a, "all rate limited, /v1/messages").await;
    a.anthropic_error("all rate limited, /v1/messages", 429, "rate_limit_error");
    assert!(a.header("retry-after").is_some(), "{:?}", a.headers);
}

/// `POST /v1/messages` for `model` as the Anthropic SDK sends it.
async fn messages(s: &Setup, model: &str, stream: bool) -> reqwest::Response {
    s.gw.http
        .post(s.gw.url("/v1/messages"))
        .header("x-api-key", &s.key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": model, "max_tokens": 100, "stream": stream,
            "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .expect("POST /v1/messages")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_breaking_after_its_first_chunks_ends_with_an_error_event() {
    let _serial = serial().await;
    let s = Setup::start().await;
    s.pair("sbreak", None).await;
    s.primary
        .set_fault(Fault::DisconnectMidStream { after_chunks: 2 });
    let st = s.stream("sbreak").await;
    let what = "stream broken after 2 chunks";
    st.ok(what);
    assert_eq!(
        st.header("x-raftgate-provider"),
        Some("p-primary"),
        "{what}"
    );
    let events = sse(&st.text);
    let last = events
        .last()
        .unwrap_or_else(|| panic!("{what}: empty stream"));
    let v: Value = serde_json::from_str(&last.data)
        .unwrap_or_else(|e| panic!("{what}: last event is not JSON ({e}): {}", st.text));
    assert!(
        v.pointer("/error/message").is_some(),
        "{what}: the stream ends with an error event: {}",
        st.text
    );
    assert!(
        !events.iter().any(|e| e.data == "[DONE]"),
        "{what}: no [DONE] after a broken stream: {}",
        st.text
    );
    assert_eq!(
        s.hits("sbreak"),
        (1, 0),
        "{what}: not retried once chunks reached the client"
    );

    // Through /v1/messages: an Anthropic `error` event, no message_stop.
    s.pair("sbreak-msg", None).await;
    s.primary
        .set_fault(Fault::DisconnectMidStream { after_chunks: 3 });
    let resp = messages(&s, "sbreak-msg", true).await;
    assert_eq!(resp.status(), 200);
    let raw = resp.text().await.expect("stream body");
    let events = sse(&raw);
    let last = events.last().unwrap_or_else(|| panic!("empty stream"));
    assert_eq!(last.event.as_deref(), Some("error"), "/v1/messages: {raw}");
    let v: Value = serde_json::from_str(&last.data).expect("error event JSON");
    assert_eq!(v["type"], "error", "{raw}");
    assert!(v["error"]["message"].is_string(), "{raw}");
    assert!(
        !events
            .iter()
            .any(|e| e.event.as_deref() == Some("message_stop")),
        "/v1/messages: no message_stop after a broken stream: {raw}"
    );
    assert_eq!(s.hits("sbreak-msg"), (1, 0));
}

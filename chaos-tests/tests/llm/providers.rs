//! `POST /v1/chat/completions` through each provider type: the OpenAI answer (whole and
//! streamed, with and without `stream_options.include_usage`) carries the mock's text
//! and word counts under the public model name, and the request that reached the
//! provider has its auth header, upstream model, path and version.

use raftgate_chaos::llm_mock::{Flavor, RecordedRequest};
use raftgate_chaos::MockProvider;
use serde_json::{json, Value};

use crate::{
    chat_body, chat_requests, delta_text, finish_reason, mock, serial, streaming, usage_chunks,
    words, Gateway, AZURE_API_VERSION,
};

const SYSTEM: &str = "You are terse.";
const USER: &str = "hello there gateway";

/// What the mock answers to [`chat_body`]`(SYSTEM, USER)`: text, input, output tokens.
fn expected() -> (String, u64, u64) {
    let text = format!("mock reply to: {USER}");
    let input = words(SYSTEM) + words(USER);
    let output = words(&text);
    (text, input, output)
}

/// The upstream model name each deployment uses.
fn upstream_model(flavor: Option<Flavor>) -> &'static str {
    match flavor {
        Some(Flavor::OpenAi) => "gpt-4o-mini",
        Some(Flavor::Azure) => "my-gpt4o-deployment",
        Some(Flavor::Anthropic) => "claude-3-5-haiku-latest",
        Some(Flavor::Gemini) => "gemini-2.0-flash",
        None => "mock-large",
    }
}

/// One gateway, one provider of `flavor` (`None`: the built-in mock), the model `chat`
/// on it; checks whole, streamed-with-usage and streamed-without-usage answers.
async fn check_provider(flavor: Option<Flavor>) {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let key = gw.consumer_with_key("app").await;
    let provider_key = "sk-upstream-secret-1";
    let upstream = match flavor {
        Some(f) => {
            let m = mock(f, f.as_str(), provider_key).await;
            gw.provider_for("prov", &m, provider_key).await;
            Some(m)
        }
        None => {
            gw.create("providers", json!({"id": "prov", "type": "mock"}))
                .await;
            None
        }
    };
    let up_model = upstream_model(flavor);
    gw.simple_model("chat", "prov", up_model, &["app"]).await;
    let what = format!("{flavor:?}");
    let (text, input, output) = expected();

    // Whole answer.
    let a = gw
        .call(
            "/v1/chat/completions",
            &key,
            &chat_body("chat", SYSTEM, USER),
        )
        .await;
    let body = a.ok(&what);
    assert_eq!(body["object"], "chat.completion", "{what}: {}", a.text);
    assert_eq!(
        body["model"], "chat",
        "{what}: the public model name: {}",
        a.text
    );
    assert_eq!(a.content(), text, "{what}: content: {}", a.text);
    assert_eq!(
        body.pointer("/choices/0/message/role"),
        Some(&json!("assistant")),
        "{what}: {}",
        a.text
    );
    assert_eq!(
        body.pointer("/choices/0/finish_reason"),
        Some(&json!("stop")),
        "{what}: {}",
        a.text
    );
    assert_usage(&what, &body["usage"], input, output);
    assert_eq!(a.header("x-raftgate-provider"), Some("prov"), "{what}");
    assert_eq!(
        a.header("x-raftgate-upstream-model"),
        Some(up_model),
        "{what}"
    );
    if let Some(m) = &upstream {
        let reqs = chat_requests(m);
        assert_eq!(reqs.len(), 1, "{what}: one upstream request per call");
        check_upstream(&what, m, &reqs[0], false, provider_key, &key);
    }

    // Stream with include_usage: a final usage-only chunk.
    let s = gw
        .stream(
            "/v1/chat/completions",
            &key,
            &streaming(chat_body("chat", SYSTEM, USER), true),
        )
        .await;
    s.ok(&what);
    assert_eq!(s.header("x-raftgate-provider"), Some("prov"), "{what}");
    assert_eq!(
        s.header("x-raftgate-upstream-model"),
        Some(up_model),
        "{what}"
    );
    let chunks = s.openai_chunks(&what);
    check_chunks(&what, &chunks, &text);
    let with_usage = usage_chunks(&chunks);
    assert_eq!(
        with_usage.len(),
        1,
        "{what}: exactly one chunk carries usage: {}",
        s.text
    );
    let last = chunks.last().expect("chunks");
    assert!(
        std::ptr::eq(with_usage[0], last),
        "{what}: the usage chunk is the last one before [DONE]: {}",
        s.text
    );
    assert_eq!(
        last.get("choices"),
        Some(&json!([])),
        "{what}: the usage chunk has no choices: {last}"
    );
    assert_usage(&what, &last["usage"], input, output);
    if let Some(m) = &upstream {
        let reqs = chat_requests(m);
        assert_eq!(reqs.len(), 2, "{what}: one upstream request per call");
        check_upstream(&what, m, &reqs[1], true, provider_key, &key);
    }

    // Stream without include_usage: no usage chunk reaches the client.
    let s = gw
        .stream(
            "/v1/chat/completions",
            &key,
            &streaming(chat_body("chat", SYSTEM, USER), false),
        )
        .await;
    s.ok(&what);
    let chunks = s.openai_chunks(&what);
    check_chunks(&what, &chunks, &text);
    assert!(
        usage_chunks(&chunks).is_empty(),
        "{what}: usage chunk sent although the client did not ask: {}",
        s.text
    );
    if let Some(m) = &upstream {
        let reqs = chat_requests(m);
        assert_eq!(reqs.len(), 3, "{what}: one upstream request per call");
        check_upstream(&what, m, &reqs[2], true, provider_key, &key);
    }
}

fn assert_usage(what: &str, usage: &Value, input: u64, output: u64) {
    assert_eq!(
        (
            usage.get("prompt_tokens").and_then(Value::as_u64),
            usage.get("completion_tokens").and_then(Value::as_u64),
            usage.get("total_tokens").and_then(Value::as_u64),
        ),
        (Some(input), Some(output), Some(input + output)),
        "{what}: usage (prompt, completion, total) = the mock's word counts: {usage}"
    );
}

/// Every chunk is a `chat.completion.chunk` of the public model; the deltas make the
/// text; the last finish reason is `stop`.
fn check_chunks(what: &str, chunks: &[Value], text: &str) {
    assert!(!chunks.is_empty(), "{what}: no chunk before [DONE]");
    for c in chunks {
        assert_eq!(c["model"], "chat", "{what}: chunk of the public model: {c}");
        if c["choices"].as_array().is_some_and(|a| !a.is_empty()) {
            assert_eq!(c["object"], "chat.completion.chunk", "{what}: {c}");
        }
    }
    assert_eq!(delta_text(chunks), text, "{what}: concatenated deltas");
    assert_eq!(
        finish_reason(chunks).as_deref(),
        Some("stop"),
        "{what}: finish reason"
    );
}

/// The request the gateway sent to the provider.
fn check_upstream(
    what: &str,
    m: &MockProvider,
    r: &RecordedRequest,
    stream: bool,
    provider_key: &str,
    client_key: &str,
) {
    let what = format!("{what} upstream request (stream {stream})");
    let up_model = upstream_model(Some(m.flavor()));
    assert_eq!(r.method, "POST", "{what}");
    for (name, value) in &r.headers {
        let v = value.to_str().unwrap_or_default();
        assert!(
            !v.contains(client_key),
            "{what}: the client's Raftgate key leaked upstream in {name}"
        );
    }
    match m.flavor() {
        Flavor::OpenAi => {
            assert_eq!(r.path, "/v1/chat/completions", "{what}");
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {provider_key}").as_str()),
                "{what}: Authorization"
            );
            assert_eq!(r.body["model"], up_model, "{what}: upstream model");
        }
        Flavor::Azure => {
            assert_eq!(
                r.path,
                format!("/openai/deployments/{up_model}/chat/completions"),
                "{what}"
            );
            assert_eq!(
                r.query_param("api-version"),
                Some(AZURE_API_VERSION),
                "{what}: api-version"
            );
            assert_eq!(r.header("api-key"), Some(provider_key), "{what}: api-key");
        }
        Flavor::Anthropic => {
            assert_eq!(r.path, "/v1/messages", "{what}");
            assert_eq!(
                r.header("x-api-key"),
                Some(provider_key),
                "{what}: x-api-key"
            );
            assert!(
                r.header("anthropic-version")
                    .is_some_and(|v| !v.trim().is_empty()),
                "{what}: anthropic-version header"
            );
            assert_eq!(r.body["model"], up_model, "{what}: upstream model");
            assert!(
                r.body["max_tokens"].as_u64().is_some_and(|n| n > 0),
                "{what}: max_tokens is required by Anthropic: {}",
                r.body
            );
            assert!(
                r.body["system"].to_string().contains(SYSTEM),
                "{what}: the system prompt goes to `system`: {}",
                r.body
            );
            let roles: Vec<&str> = r.body["messages"]
                .as_array()
                .map(|a| a.iter().filter_map(|m| m["role"].as_str()).collect())
                .unwrap_or_default();
            assert_eq!(roles, vec!["user"], "{what}: messages: {}", r.body);
        }
        Flavor::Gemini => {
            let verb = if stream {
                "streamGenerateContent"
            } else {
                "generateContent"
            };
            assert_eq!(
                r.path,
                format!("/v1beta/models/{up_model}:{verb}"),
                "{what}"
            );
            if stream {
                assert_eq!(r.query_param("alt"), Some("sse"), "{what}: ?alt=sse");
            }
            assert_eq!(
                r.header("x-goog-api-key"),
                Some(provider_key),
                "{what}: x-goog-api-key"
            );
            let system = r
                .body
                .get("systemInstruction")
                .or_else(|| r.body.get("system_instruction"));
            assert!(
                system.is_some_and(|s| s.to_string().contains(SYSTEM)),
                "{what}: systemInstruction: {}",
                r.body
            );
        }
    }
    if stream && matches!(m.flavor(), Flavor::OpenAi | Flavor::Azure) {
        assert_eq!(r.body["stream"], true, "{what}: {}", r.body);
        assert_eq!(
            r.body.pointer("/stream_options/include_usage"),
            Some(&json!(true)),
            "{what}: the gateway asks OpenAI-style streams for usage: {}",
            r.body
        );
    }
    if stream && m.flavor() == Flavor::Anthropic {
        assert_eq!(r.body["stream"], true, "{what}: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_through_openai() {
    check_provider(Some(Flavor::OpenAi)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_through_azure_openai() {
    check_provider(Some(Flavor::Azure)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_through_anthropic() {
    check_provider(Some(Flavor::Anthropic)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_through_gemini() {
    check_provider(Some(Flavor::Gemini)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_through_the_builtin_mock() {
    check_provider(None).await;
}

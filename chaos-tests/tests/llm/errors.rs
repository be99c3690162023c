//! Errors in the client API's own shape: OpenAI's `{"error": {"message", "type",
//! "param", "code"}}` on `/v1/chat/completions`, Anthropic's `{"type": "error", "error":
//! {"type", "message"}}` on `/v1/messages`; the status is what the SDKs map to their
//! exception classes. Nothing refused is sent to a provider.

use raftgate_chaos::llm_mock::Flavor;
use serde_json::{json, Value};

use crate::{chat_body, mock, serial, Answer, Gateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_in_the_client_apis_shapes() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let key = gw.consumer_with_key("app").await;
    gw.consumer_with_key("other").await;
    let oa = mock(Flavor::OpenAi, "oa", "sk-oa").await;
    let claude = mock(Flavor::Anthropic, "claude", "sk-cl").await;
    gw.provider_for("oa", &oa, "sk-oa").await;
    gw.provider_for("claude", &claude, "sk-cl").await;
    gw.simple_model("chat", "oa", "gpt-4o-mini", &["app"]).await;
    gw.simple_model("secret", "oa", "gpt-4o", &["other"]).await;
    gw.simple_model("claude", "claude", "claude-3-5-haiku-latest", &["app"])
        .await;
    let hello = chat_body("chat", "sys", "hi");

    // 401: a wrong key, no key, a wrong x-api-key.
    let a = gw
        .call("/v1/chat/completions", "rg_not_a_real_key", &hello)
        .await;
    let e = a.openai_error("wrong key", 401);
    assert_eq!(e["code"], "invalid_api_key", "wrong key: {}", a.text);
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .json(&hello)
        .send()
        .await
        .expect("answer");
    Answer::read(resp, "no key")
        .await
        .openai_error("no key", 401);
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .header("x-api-key", "rg_wrong")
        .json(&hello)
        .send()
        .await
        .expect("answer");
    Answer::read(resp, "wrong x-api-key")
        .await
        .openai_error("wrong x-api-key", 401);

    // 404: a model that does not exist.
    let a = gw
        .call(
            "/v1/chat/completions",
            &key,
            &chat_body("no-such-model", "sys", "hi"),
        )
        .await;
    let e = a.openai_error("unknown model", 404);
    assert_eq!(e["code"], "model_not_found", "unknown model: {}", a.text);

    // 403: a model this consumer holds no permission for.
    let a = gw
        .call(
            "/v1/chat/completions",
            &key,
            &chat_body("secret", "sys", "hi"),
        )
        .await;
    a.openai_error("model without permission", 403);

    // 400: not JSON; no messages.
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{\"model\": \"chat\", \"messages\": [")
        .send()
        .await
        .expect("answer");
    Answer::read(resp, "invalid JSON")
        .await
        .openai_error("invalid JSON", 400);
    let a = gw
        .call("/v1/chat/completions", &key, &json!({"model": "chat"}))
        .await;
    a.openai_error("no messages", 400);

    // 400 naming the parameter an Anthropic deployment cannot honour.
    let mut body = chat_body("claude", "sys", "hi");
    body["logit_bias"] = json!({"50256": -100});
    let a = gw.call("/v1/chat/completions", &key, &body).await;
    let e = a.openai_error("logit_bias to Anthropic", 400);
    assert_eq!(e["param"], "logit_bias", "logit_bias: {}", a.text);
    assert_eq!(oa.hits() + claude.hits(), 0, "nothing reached a provider");

    // /v1/messages: Anthropic's error shape.
    let msg = |model: &str| {
        json!({"model": model, "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}]})
    };
    let anthropic = |key: &str, body: Option<Value>, raw: Option<&'static str>| {
        let mut rb = gw
            .http
            .post(gw.url("/v1/messages"))
            .header("x-api-key", key.to_string())
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json");
        rb = match (body, raw) {
            (Some(b), _) => rb.body(b.to_string()),
            (None, Some(r)) => rb.body(r),
            (None, None) => rb,
        };
        async move { Answer::read(rb.send().await.expect("answer"), "/v1/messages").await }
    };
    anthropic("rg_wrong", Some(msg("claude")), None)
        .await
        .anthropic_error("messages: wrong key", 401, "authentication_error");
    anthropic(&key, Some(msg("no-such-model")), None)
        .await
        .anthropic_error("messages: unknown model", 404, "not_found_error");
    anthropic(&key, Some(msg("secret")), None)
        .await
        .anthropic_error("messages: no permission", 403, "permission_error");
    anthropic(&key, None, Some("{\"model\": "))
        .await
        .anthropic_error("messages: invalid JSON", 400, "invalid_request_error");
    assert_eq!(oa.hits() + claude.hits(), 0, "nothing reached a provider");
}

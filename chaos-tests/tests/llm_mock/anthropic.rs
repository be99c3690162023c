//! Anthropic Messages format.

use raftgate_chaos::llm_mock::{words, Flavor};
use reqwest::RequestBuilder;
use serde_json::{json, Value};

use super::{client, json_of, sse, start, KEY};

fn post(base: &str, path: &str, body: &Value) -> RequestBuilder {
    client()
        .post(format!("{base}{path}"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
}

fn tools() -> Value {
    json!([
        {"name": "lookup", "description": "d", "input_schema": {"type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}}},
        {"name": "second", "input_schema": {"type": "object", "properties": {}}}
    ])
}

#[tokio::test]
async fn messages_non_stream() {
    let mock = start(Flavor::Anthropic).await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "system": "Be brief",
        "messages": [{"role": "user", "content": "hi there"}]});
    let res = post(&mock.base_url(), "/v1/messages", &body)
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("request-id"));
    let (status, msg) = json_of(res).await;
    assert_eq!(status, 200, "{msg}");
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["role"], "assistant");
    assert_eq!(msg["model"], "claude-sonnet-4-5");
    assert_eq!(
        msg["content"],
        json!([{"type": "text", "text": "mock reply to: hi there"}])
    );
    assert_eq!(msg["stop_reason"], "end_turn");
    assert!(msg["stop_sequence"].is_null());
    assert_eq!(msg["usage"]["input_tokens"], 4);
    assert_eq!(msg["usage"]["output_tokens"], 5);

    let res = post(&mock.base_url(), "/v1/messages/count_tokens", &body).send();
    let (_, count) = json_of(res.await.unwrap()).await;
    assert_eq!(count, json!({"input_tokens": 4}));
}

/// Event names in order, checking each `data.type` equals its `event:` name.
fn event_names(text: &str) -> (Vec<String>, Vec<Value>) {
    let mut names = Vec::new();
    let mut data = Vec::new();
    for (name, payload) in sse(text) {
        let name = name.expect("every Anthropic event is named");
        let value: Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(value["type"], name.as_str());
        names.push(name);
        data.push(value);
    }
    (names, data)
}

#[tokio::test]
async fn stream_events_in_documented_order() {
    let mock = start(Flavor::Anthropic).await;
    let body = json!({"model": "claude-x", "max_tokens": 100, "stream": true,
        "system": [{"type": "text", "text": "one two"}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "go now please"}]}]});
    let res = post(&mock.base_url(), "/v1/messages", &body)
        .send()
        .await
        .unwrap();
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (names, data) = event_names(&res.text().await.unwrap());
    let reply = "mock reply to: go now please";
    let n = words(reply) as usize;
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", n));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    assert_eq!(data[0]["message"]["usage"]["input_tokens"], 5);
    assert_eq!(data[0]["message"]["content"], json!([]));
    assert_eq!(
        data[1]["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = data[3..3 + n]
        .iter()
        .map(|d| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, reply);
    let delta = &data[n + 4];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], n);
}

#[tokio::test]
async fn tool_use_non_stream_and_stream() {
    let mock = start(Flavor::Anthropic).await;
    let mut body = json!({"model": "claude-x", "max_tokens": 100, "tools": tools(),
        "messages": [{"role": "user", "content": "find it"}]});
    let (_, msg) = json_of(
        post(&mock.base_url(), "/v1/messages", &body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(msg["stop_reason"], "tool_use");
    let block = &msg["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "lookup");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(block["input"], json!({"limit": 1, "query": "mock"}));
    let args = r#"{"limit": 1, "query": "mock"}"#;
    assert_eq!(msg["usage"]["output_tokens"], words(args));

    body["tool_choice"] = json!({"type": "tool", "name": "second"});
    body["stream"] = json!(true);
    let res = post(&mock.base_url(), "/v1/messages", &body)
        .send()
        .await
        .unwrap();
    let (names, data) = event_names(&res.text().await.unwrap());
    assert_eq!(data[1]["content_block"]["type"], "tool_use");
    assert_eq!(data[1]["content_block"]["name"], "second");
    assert_eq!(data[1]["content_block"]["input"], json!({}));
    let partial: String = data
        .iter()
        .filter(|d| d["type"] == "content_block_delta")
        .map(|d| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert_eq!(partial, "{}");
    assert_eq!(names.last().unwrap(), "message_stop");
    let delta = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");

    body["tool_choice"] = json!({"type": "none"});
    body["stream"] = json!(false);
    let (_, msg) = json_of(
        post(&mock.base_url(), "/v1/messages", &body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(msg["content"][0]["type"], "text");
}

#[tokio::test]
async fn errors_have_the_anthropic_shape() {
    let mock = start(Flavor::Anthropic).await;
    let url = format!("{}/v1/messages", mock.base_url());
    let body =
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]});
    let check = |(status, err): (u16, Value), want_status: u16, kind: &str| {
        assert_eq!(status, want_status, "{err}");
        assert_eq!(err["type"], "error");
        assert_eq!(err["error"]["type"], kind);
        assert!(err["error"]["message"].is_string());
    };
    let res = client()
        .post(&url)
        .header("anthropic-version", "2023-06-01")
        .json(&body);
    check(
        json_of(res.send().await.unwrap()).await,
        401,
        "authentication_error",
    );
    let res = client()
        .post(&url)
        .header("x-api-key", "wrong")
        .header("anthropic-version", "2023-06-01")
        .json(&body);
    check(
        json_of(res.send().await.unwrap()).await,
        401,
        "authentication_error",
    );
    let res = client().post(&url).header("x-api-key", KEY).json(&body);
    check(
        json_of(res.send().await.unwrap()).await,
        400,
        "invalid_request_error",
    );
    let no_max = json!({"model": "m", "messages": []});
    let res = post(&mock.base_url(), "/v1/messages", &no_max).send();
    check(
        json_of(res.await.unwrap()).await,
        400,
        "invalid_request_error",
    );
    let res = post(&mock.base_url(), "/v1/complete", &body).send();
    check(json_of(res.await.unwrap()).await, 404, "not_found_error");
}

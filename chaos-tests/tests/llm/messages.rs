//! `POST /v1/messages` (the Anthropic Messages API in front of any provider): whole
//! answers in Anthropic's message shape, streams as Anthropic's exact event sequence,
//! `max_tokens` stop reasons and tool use, through an OpenAI and an Anthropic provider.

use raftgate_chaos::llm_mock::{tool_arguments, Flavor};
use serde_json::{json, Value};

use crate::{last_request, mock, serial, sse, words, Answer, Gateway, Sse};

const SYSTEM: &str = "Be brief.";
const USER: &str = "hello there";

fn request(model: &str, max_tokens: u64) -> Value {
    json!({"model": model, "max_tokens": max_tokens, "system": SYSTEM,
        "messages": [{"role": "user", "content": USER}]})
}

fn tool_request(model: &str) -> Value {
    json!({"model": model, "max_tokens": 512,
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "tools": [{"name": "get_weather", "description": "Current weather",
            "input_schema": schema()}]})
}

fn schema() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"},
        "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]})
}

/// `POST /v1/messages` as the Anthropic SDK sends it (`x-api-key`, `anthropic-version`).
async fn messages(gw: &Gateway, key: &str, body: &Value) -> reqwest::Response {
    gw.http
        .post(gw.url("/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /v1/messages {body}: {e:?}"))
}

async fn check_messages_api(flavor: Flavor) {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let key = gw.consumer_with_key("app").await;
    let m = mock(flavor, flavor.as_str(), "sk-msg").await;
    gw.provider_for("prov", &m, "sk-msg").await;
    gw.simple_model("claude-api", "prov", "upstream-x", &["app"])
        .await;
    let what = format!("/v1/messages via {flavor:?}");
    let text = format!("mock reply to: {USER}");
    let (input, output) = (words(SYSTEM) + words(USER), words(&text));

    // Whole answer.
    let a = Answer::read(
        messages(&gw, &key, &request("claude-api", 256)).await,
        &what,
    )
    .await;
    let body = a.ok(&what);
    assert!(
        body["id"].as_str().is_some_and(|s| !s.is_empty()),
        "{what}: id: {}",
        a.text
    );
    assert_eq!(body["type"], "message", "{what}: {}", a.text);
    assert_eq!(body["role"], "assistant", "{what}: {}", a.text);
    assert_eq!(body["model"], "claude-api", "{what}: {}", a.text);
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": text}]),
        "{what}: content: {}",
        a.text
    );
    assert_eq!(body["stop_reason"], "end_turn", "{what}: {}", a.text);
    assert_eq!(
        (
            body["usage"]["input_tokens"].as_u64(),
            body["usage"]["output_tokens"].as_u64()
        ),
        (Some(input), Some(output)),
        "{what}: usage: {}",
        a.text
    );
    assert_eq!(a.header("x-raftgate-provider"), Some("prov"), "{what}");
    let up = last_request(&m).body;
    match flavor {
        Flavor::Anthropic => {
            assert_eq!(up["max_tokens"], 256, "{what}: upstream body {up}");
            assert!(up["system"].to_string().contains(SYSTEM), "{what}: {up}");
            assert_eq!(up["model"], "upstream-x", "{what}: {up}");
        }
        Flavor::Gemini => {
            let config = up
                .get("generationConfig")
                .or_else(|| up.get("generation_config"))
                .unwrap_or(&Value::Null);
            let max = config
                .get("maxOutputTokens")
                .or_else(|| config.get("max_output_tokens"));
            assert_eq!(max, Some(&json!(256)), "{what}: upstream body {up}");
            assert!(up.to_string().contains(SYSTEM), "{what}: {up}");
        }
        _ => {
            let max = up
                .get("max_completion_tokens")
                .or_else(|| up.get("max_tokens"));
            assert_eq!(max, Some(&json!(256)), "{what}: upstream body {up}");
            assert_eq!(
                up["messages"],
                json!([{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": USER}]),
                "{what}: upstream messages: {up}"
            );
            assert_eq!(up["model"], "upstream-x", "{what}: {up}");
        }
    }

    // max_tokens reached: stop_reason max_tokens.
    let a = Answer::read(messages(&gw, &key, &request("claude-api", 2)).await, &what).await;
    let body = a.ok(&what);
    assert_eq!(body["stop_reason"], "max_tokens", "{what}: {}", a.text);
    assert_eq!(
        body["content"][0]["text"], "mock reply",
        "{what}: cut at 2 words: {}",
        a.text
    );
    assert_eq!(body["usage"]["output_tokens"], 2, "{what}: {}", a.text);

    // Stream: Anthropic's event sequence.
    let mut req = request("claude-api", 256);
    req["stream"] = json!(true);
    let resp = messages(&gw, &key, &req).await;
    assert_eq!(resp.status(), 200, "{what} stream");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("text/event-stream"), "{what}: {ct}");
    let raw = resp.text().await.expect("stream body");
    let events = sse(&raw);
    check_sequence(&what, &events, &raw, "text_delta");
    let data: Vec<Value> = events.iter().map(|e| parse(&what, e)).collect();
    let start = &data[0]["message"];
    assert_eq!(start["type"], "message", "{what}: message_start: {raw}");
    assert_eq!(start["role"], "assistant", "{what}: message_start: {raw}");
    assert_eq!(start["model"], "claude-api", "{what}: message_start: {raw}");
    assert_eq!(start["content"], json!([]), "{what}: message_start: {raw}");
    assert!(
        start["id"].as_str().is_some_and(|s| !s.is_empty()),
        "{what}: {raw}"
    );
    assert_eq!(
        data[1]["content_block"],
        json!({"type": "text", "text": ""}),
        "{what}: content_block_start: {raw}"
    );
    let streamed: String = data
        .iter()
        .filter(|d| d["type"] == "content_block_delta")
        .filter_map(|d| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(streamed, text, "{what}: concatenated text deltas");
    let delta = &data[data.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn", "{what}: {raw}");
    assert_eq!(
        delta["usage"]["output_tokens"].as_u64(),
        Some(output),
        "{what}: message_delta usage: {raw}"
    );
    let up = last_request(&m);
    match flavor {
        Flavor::Gemini => assert!(
            up.path.ends_with(":streamGenerateContent"),
            "{what}: upstream stream path {}",
            up.path
        ),
        _ => assert_eq!(
            up.body["stream"], true,
            "{what}: upstream stream flag: {}",
            up.body
        ),
    }

    // Tool use, whole and streamed.
    let args: Value = serde_json::from_str(&tool_arguments(&schema())).expect("args");
    let a = Answer::read(
        messages(&gw, &key, &tool_request("claude-api")).await,
        &what,
    )
    .await;
    let body = a.ok(&what);
    assert_eq!(body["stop_reason"], "tool_use", "{what} tools: {}", a.text);
    let block = body["content"]
        .as_array()
        .and_then(|c| c.iter().find(|b| b["type"] == "tool_use"))
        .unwrap_or_else(|| panic!("{what} tools: no tool_use block: {}", a.text));
    assert_eq!(block["name"], "get_weather", "{what} tools: {}", a.text);
    assert_eq!(block["input"], args, "{what} tools: input: {}", a.text);
    assert!(
        block["id"].as_str().is_some_and(|s| !s.is_empty()),
        "{what} tools: id: {}",
        a.text
    );
    let mut req = tool_request("claude-api");
    req["stream"] = json!(true);
    let raw = messages(&gw, &key, &req)
        .await
        .text()
        .await
        .expect("stream body");
    let events = sse(&raw);
    check_sequence(&format!("{what} tools"), &events, &raw, "input_json_delta");
    let data: Vec<Value> = events.iter().map(|e| parse(&what, e)).collect();
    assert_eq!(
        data[1]["content_block"]["type"], "tool_use",
        "{what} tools: {raw}"
    );
    assert_eq!(
        data[1]["content_block"]["name"], "get_weather",
        "{what} tools: {raw}"
    );
    let partial: String = data
        .iter()
        .filter(|d| d["type"] == "content_block_delta")
        .filter_map(|d| d["delta"]["partial_json"].as_str())
        .collect();
    let parsed: Value = serde_json::from_str(&partial)
        .unwrap_or_else(|e| panic!("{what} tools: partial_json not JSON ({e}): {partial:?}"));
    assert_eq!(parsed, args, "{what} tools: streamed input");
    assert_eq!(
        data[data.len() - 2]["delta"]["stop_reason"],
        "tool_use",
        "{what} tools: {raw}"
    );
}

fn parse(what: &str, e: &Sse) -> Value {
    serde_json::from_str(&e.data)
        .unwrap_or_else(|err| panic!("{what}: event data is not JSON ({err}): {:?}", e.data))
}

/// The exact Anthropic event sequence for one content block: `message_start`,
/// `content_block_start`, `content_block_delta` (of `delta_type`) at least once,
/// `content_block_stop`, `message_delta`, `message_stop`; every event's `type` is its
/// name and the block index is 0.
fn check_sequence(what: &str, events: &[Sse], raw: &str, delta_type: &str) {
    let names: Vec<&str> = events
        .iter()
        .map(|e| {
            e.event
                .as_deref()
                .unwrap_or_else(|| panic!("{what}: an event without a name: {raw}"))
        })
        .collect();
    let n = names.len();
    assert!(n >= 6, "{what}: too few events {names:?}: {raw}");
    let deltas = &names[2..n - 3];
    let expected: Vec<&str> = ["message_start", "content_block_start"]
        .into_iter()
        .chain(std::iter::repeat_n("content_block_delta", deltas.len()))
        .chain(["content_block_stop", "message_delta", "message_stop"])
        .collect();
    assert_eq!(names, expected, "{what}: event sequence: {raw}");
    for e in events {
        let v = parse(what, e);
        assert_eq!(
            v["type"].as_str(),
            e.event.as_deref(),
            "{what}: data.type is the event name: {raw}"
        );
        if e.event
            .as_deref()
            .is_some_and(|n| n.starts_with("content_block"))
        {
            assert_eq!(v["index"], 0, "{what}: block index: {raw}");
        }
        if e.event.as_deref() == Some("content_block_delta") {
            assert_eq!(v["delta"]["type"], delta_type, "{what}: delta type: {raw}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_api_through_openai() {
    check_messages_api(Flavor::OpenAi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_api_through_anthropic() {
    check_messages_api(Flavor::Anthropic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_api_through_gemini() {
    check_messages_api(Flavor::Gemini).await;
}

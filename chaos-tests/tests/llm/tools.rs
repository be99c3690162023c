//! Tool calls through OpenAI, Anthropic, Gemini and the built-in mock: a request with
//! `tools` gets `tool_calls` (whole and streamed; the arguments are JSON matching the
//! mock's), and the follow-up carrying the tool result reaches the provider in its own
//! format and gets a text answer.

use raftgate_chaos::llm_mock::{tool_arguments, Flavor};
use serde_json::{json, Value};

use crate::{chat_requests, finish_reason, last_request, mock, serial, streaming, Gateway};

const QUESTION: &str = "what is the weather in Paris";
const TOOL_RESULT: &str = "sunny and 21 degrees";

fn schema() -> Value {
    json!({"type": "object", "properties": {
        "city": {"type": "string", "description": "the city"},
        "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"]})
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Current weather in a city", "parameters": schema()}}])
}

fn first_call(model: &str) -> Value {
    json!({"model": model, "tools": tools(),
        "messages": [{"role": "user", "content": QUESTION}]})
}

/// The request answering the tool call `call` (as the client received it).
fn follow_up(model: &str, call: &Value) -> Value {
    json!({"model": model, "tools": tools(), "messages": [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": TOOL_RESULT}]})
}

/// The tool call of a whole answer; checks its shape and arguments.
fn whole_call(what: &str, body: &Value, args: &Value) -> Value {
    assert_eq!(
        body.pointer("/choices/0/finish_reason"),
        Some(&json!("tool_calls")),
        "{what}: finish reason: {body}"
    );
    let calls = body
        .pointer("/choices/0/message/tool_calls")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{what}: no tool_calls: {body}"));
    assert_eq!(calls.len(), 1, "{what}: one call: {body}");
    let call = &calls[0];
    assert_eq!(call["type"], "function", "{what}: {call}");
    assert!(
        call["id"].as_str().is_some_and(|s| !s.is_empty()),
        "{what}: call id: {call}"
    );
    assert_eq!(call["function"]["name"], "get_weather", "{what}: {call}");
    let raw = call["function"]["arguments"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: arguments is not a string: {call}"));
    let parsed: Value = serde_json::from_str(raw)
        .unwrap_or_else(|e| panic!("{what}: arguments are not JSON ({e}): {raw:?}"));
    assert_eq!(&parsed, args, "{what}: arguments");
    call.clone()
}

/// The tool call assembled from stream deltas: (id, name, arguments text).
fn streamed_call(what: &str, chunks: &[Value]) -> (String, String, String) {
    let (mut id, mut name, mut args) = (String::new(), String::new(), String::new());
    for c in chunks {
        let Some(calls) = c
            .pointer("/choices/0/delta/tool_calls")
            .and_then(Value::as_array)
        else {
            continue;
        };
        for tc in calls {
            assert_eq!(
                tc["index"].as_u64(),
                Some(0),
                "{what}: every delta is of call 0: {c}"
            );
            if let Some(s) = tc["id"].as_str() {
                id.push_str(s);
            }
            if let Some(s) = tc.pointer("/function/name").and_then(Value::as_str) {
                name.push_str(s);
            }
            if let Some(s) = tc.pointer("/function/arguments").and_then(Value::as_str) {
                args.push_str(s);
            }
        }
    }
    (id, name, args)
}

/// `flavor` `None`: the built-in mock. `follow_up`: also send the tool's result back.
async fn check_tools(flavor: Option<Flavor>, follow_up_too: bool) {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let key = gw.consumer_with_key("app").await;
    let upstream = match flavor {
        Some(f) => {
            let m = mock(f, f.as_str(), "sk-tools").await;
            gw.provider_for("prov", &m, "sk-tools").await;
            Some(m)
        }
        None => {
            gw.create("providers", json!({"id": "prov", "type": "mock"}))
                .await;
            None
        }
    };
    gw.simple_model("agent", "prov", "upstream-model", &["app"])
        .await;
    let what = format!("{flavor:?}");
    let args: Value = match flavor {
        Some(_) => serde_json::from_str(&tool_arguments(&schema())).expect("mock arguments"),
        None => json!({"mock": true}),
    };

    // Whole: a tool call.
    let a = gw
        .call("/v1/chat/completions", &key, &first_call("agent"))
        .await;
    let call = whole_call(&format!("{what} whole"), a.ok(&what), &args);
    if let Some(m) = &upstream {
        check_tools_sent(&what, m.flavor(), &last_request(m).body);
    }

    // Streamed: the same call in deltas.
    let s = gw
        .stream(
            "/v1/chat/completions",
            &key,
            &streaming(first_call("agent"), false),
        )
        .await;
    s.ok(&what);
    let chunks = s.openai_chunks(&what);
    let (id, name, raw) = streamed_call(&what, &chunks);
    assert!(!id.is_empty(), "{what} stream: no call id: {}", s.text);
    assert_eq!(name, "get_weather", "{what} stream: {}", s.text);
    let parsed: Value = serde_json::from_str(&raw)
        .unwrap_or_else(|e| panic!("{what} stream: arguments not JSON ({e}): {raw:?}"));
    assert_eq!(parsed, args, "{what} stream: arguments");
    assert_eq!(
        finish_reason(&chunks).as_deref(),
        Some("tool_calls"),
        "{what} stream: finish reason: {}",
        s.text
    );

    if !follow_up_too {
        return;
    }
    // The follow-up with the tool's result: a text answer.
    let a = gw
        .call("/v1/chat/completions", &key, &follow_up("agent", &call))
        .await;
    let body = a.ok(&format!("{what} follow-up"));
    assert_eq!(
        body.pointer("/choices/0/finish_reason"),
        Some(&json!("stop")),
        "{what} follow-up: {}",
        a.text
    );
    assert!(
        body.pointer("/choices/0/message/tool_calls")
            .is_none_or(|t| t.is_null() || t.as_array().is_some_and(Vec::is_empty)),
        "{what} follow-up: no tool call expected: {}",
        a.text
    );
    assert!(
        a.content().starts_with("mock reply to:"),
        "{what} follow-up: text answer: {}",
        a.text
    );
    if let Some(m) = &upstream {
        check_follow_up_sent(&what, m.flavor(), &last_request(m).body, &call);
    }

    // The same follow-up streamed.
    let s = gw
        .stream(
            "/v1/chat/completions",
            &key,
            &streaming(follow_up("agent", &call), false),
        )
        .await;
    s.ok(&what);
    let chunks = s.openai_chunks(&what);
    assert!(
        crate::delta_text(&chunks).starts_with("mock reply to:"),
        "{what} streamed follow-up: {}",
        s.text
    );
    assert_eq!(
        finish_reason(&chunks).as_deref(),
        Some("stop"),
        "{what} streamed follow-up: {}",
        s.text
    );
    if let Some(m) = &upstream {
        assert_eq!(chat_requests(m).len(), 4, "{what}: one upstream call each");
    }
}

/// The tool definition reached the provider in its format.
fn check_tools_sent(what: &str, flavor: Flavor, body: &Value) {
    let what = format!("{what}: tools sent upstream");
    match flavor {
        Flavor::OpenAi | Flavor::Azure => {
            assert_eq!(body["tools"], tools(), "{what}: {body}");
        }
        Flavor::Anthropic => {
            let t = &body["tools"][0];
            assert_eq!(t["name"], "get_weather", "{what}: {body}");
            assert_eq!(t["input_schema"]["type"], "object", "{what}: {body}");
            assert!(
                t["input_schema"]["properties"]["unit"]["enum"] == json!(["c", "f"]),
                "{what}: {body}"
            );
        }
        Flavor::Gemini => {
            let decls = body["tools"][0]
                .get("functionDeclarations")
                .or_else(|| body["tools"][0].get("function_declarations"))
                .unwrap_or_else(|| panic!("{what}: no functionDeclarations: {body}"));
            assert_eq!(decls[0]["name"], "get_weather", "{what}: {body}");
        }
    }
}

/// The follow-up reached the provider with the call and its result, linked.
fn check_follow_up_sent(what: &str, flavor: Flavor, body: &Value, call: &Value) {
    let what = format!("{what}: follow-up sent upstream");
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    match flavor {
        Flavor::OpenAi | Flavor::Azure => {
            let last = messages.last().unwrap_or_else(|| panic!("{what}: {body}"));
            assert_eq!(last["role"], "tool", "{what}: {body}");
            assert_eq!(last["tool_call_id"], call["id"], "{what}: {body}");
            assert_eq!(last["content"], TOOL_RESULT, "{what}: {body}");
            assert_eq!(
                messages[messages.len() - 2]["tool_calls"][0]["id"],
                call["id"],
                "{what}: {body}"
            );
        }
        Flavor::Anthropic => {
            let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
            assert_eq!(roles, vec!["user", "assistant", "user"], "{what}: {body}");
            let tool_use = messages[1]["content"]
                .as_array()
                .and_then(|b| b.iter().find(|b| b["type"] == "tool_use"))
                .unwrap_or_else(|| panic!("{what}: no tool_use block: {body}"));
            assert_eq!(tool_use["name"], "get_weather", "{what}: {body}");
            let args: Value =
                serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or("null"))
                    .unwrap_or(Value::Null);
            assert_eq!(tool_use["input"], args, "{what}: tool_use.input: {body}");
            let result = messages[2]["content"]
                .as_array()
                .and_then(|b| b.iter().find(|b| b["type"] == "tool_result"))
                .unwrap_or_else(|| panic!("{what}: no tool_result block: {body}"));
            assert_eq!(
                result["tool_use_id"], tool_use["id"],
                "{what}: tool_result answers the tool_use: {body}"
            );
            assert!(
                result["content"].to_string().contains(TOOL_RESULT),
                "{what}: tool_result content: {body}"
            );
        }
        Flavor::Gemini => {
            let contents = body["contents"].as_array().cloned().unwrap_or_default();
            let part = |key: &str, snake: &str| {
                contents
                    .iter()
                    .flat_map(|c| c["parts"].as_array().cloned().unwrap_or_default())
                    .find_map(|p| p.get(key).or_else(|| p.get(snake)).cloned())
            };
            let fcall = part("functionCall", "function_call")
                .unwrap_or_else(|| panic!("{what}: no functionCall part: {body}"));
            assert_eq!(fcall["name"], "get_weather", "{what}: {body}");
            let fresp = part("functionResponse", "function_response")
                .unwrap_or_else(|| panic!("{what}: no functionResponse part: {body}"));
            assert_eq!(fresp["name"], "get_weather", "{what}: {body}");
            assert!(
                fresp["response"].to_string().contains(TOOL_RESULT),
                "{what}: functionResponse.response: {body}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_through_openai() {
    check_tools(Some(Flavor::OpenAi), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_through_anthropic() {
    check_tools(Some(Flavor::Anthropic), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_through_gemini() {
    check_tools(Some(Flavor::Gemini), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_through_the_builtin_mock() {
    check_tools(None, false).await;
}

/// The built-in mock calls the first tool again when the last message is the tool's
/// result, so an agent loop against it never ends (the `llm_mock` providers answer with
/// text then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_mock_answers_a_tool_result_with_text() {
    check_tools(None, true).await;
}

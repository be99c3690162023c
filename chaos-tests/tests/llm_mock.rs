//! The mock LLM providers (`raftgate_chaos::llm_mock`) over real sockets with a real HTTP
//! client: each flavor's non-stream and stream formats, usage equal to the word counts,
//! tool calls, auth and routing errors, every fault, recorded requests, and the
//! `raftgate-llm-mock` binary. No gateway involved; the whole file takes a few seconds.
#![forbid(unsafe_code)]

#[path = "llm_mock/anthropic.rs"]
mod anthropic;
#[path = "llm_mock/faults.rs"]
mod faults;
#[path = "llm_mock/gemini.rs"]
mod gemini;
#[path = "llm_mock/openai.rs"]
mod openai;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use raftgate_chaos::llm_mock::{Flavor, MockOptions, MockProvider};
use reqwest::{Client, Response};
use serde_json::{json, Value};

pub const KEY: &str = "test-key-123";

/// A mock of `flavor` expecting [`KEY`].
pub async fn start(flavor: Flavor) -> MockProvider {
    MockProvider::start(MockOptions::new(flavor).api_key(KEY))
        .await
        .expect("starting the mock")
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("building the client")
}

/// Status, headers' `x-mock-name`, and the JSON body.
pub async fn json_of(res: Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let body = res.text().await.expect("reading the body");
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, value)
}

/// SSE events of a whole body as `(event name, data)`; accepts LF or CRLF framing and
/// checks that the body ends with a blank line.
pub fn sse(body: &str) -> Vec<(Option<String>, String)> {
    let body = body.replace("\r\n", "\n");
    assert!(body.ends_with("\n\n"), "unterminated SSE body: {body:?}");
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            (event, data)
        })
        .collect()
}

/// The `data` of each SSE event parsed as JSON (`[DONE]` excluded).
pub fn sse_json(body: &str) -> Vec<Value> {
    sse(body)
        .into_iter()
        .filter(|(_, data)| data != "[DONE]")
        .map(|(_, data)| serde_json::from_str(&data).expect("SSE data is JSON"))
        .collect()
}

/// Standard base64 decoding (the client side of OpenAI's `encoding_format: "base64"`).
pub fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    for group in s.as_bytes().chunks(4) {
        let data: Vec<u8> = group.iter().copied().filter(|&c| c != b'=').collect();
        let mut n = 0u32;
        for (i, &c) in data.iter().enumerate() {
            n |= u32::from(value(c)) << (18 - 6 * i);
        }
        for i in 0..data.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[tokio::test]
async fn binary_prints_its_address_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftgate-llm-mock"))
        .args([
            "--flavor",
            "anthropic",
            "--addr",
            "127.0.0.1:0",
            "--api-key",
            "k1",
        ])
        .args(["--name", "bench-mock"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning raftgate-llm-mock");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("reader task")
    .expect("reading the address line");
    let info: Value = serde_json::from_str(&line).expect("the first line is JSON");
    assert_eq!(info["flavor"], "anthropic");
    assert_eq!(info["name"], "bench-mock");
    let addr = info["addr"].as_str().expect("addr");
    assert_eq!(info["base_url"], format!("http://{addr}"));

    let client = client();
    for _ in 0..3 {
        // Several requests on one keep-alive connection.
        let res = client
            .post(format!("http://{addr}/v1/messages"))
            .header("x-api-key", "k1")
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model": "claude-x", "max_tokens": 64,
                "messages": [{"role": "user", "content": "ping"}]}))
            .send()
            .await
            .expect("request to the binary");
        assert_eq!(res.headers()["x-mock-name"], "bench-mock");
        let (status, body) = json_of(res).await;
        assert_eq!(status, 200);
        assert_eq!(body["content"][0]["text"], "mock reply to: ping");
    }
    child.kill().expect("killing the mock");
    let _ = child.wait();
}

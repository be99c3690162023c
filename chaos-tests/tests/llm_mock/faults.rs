//! Injected faults, latency and chunk delay.

use std::time::{Duration, Instant};

use futures::StreamExt;
use raftgate_chaos::llm_mock::{Fault, Flavor, MockOptions, MockProvider};
use reqwest::{Client, RequestBuilder};
use serde_json::{json, Value};

use super::{client, json_of, KEY};

/// A chat request for `mock`'s flavor, streamed or not.
fn chat(client: &Client, mock: &MockProvider, stream: bool) -> RequestBuilder {
    let base = mock.base_url();
    match mock.flavor() {
        Flavor::OpenAi => client
            .post(format!("{base}/chat/completions"))
            .bearer_auth(KEY)
            .json(&json!({"model": "m", "stream": stream,
                "messages": [{"role": "user", "content": "one two three"}]})),
        Flavor::Azure => client
            .post(format!(
                "{base}/openai/deployments/d/chat/completions?api-version=2024-10-21"
            ))
            .header("api-key", KEY)
            .json(&json!({"stream": stream,
                "messages": [{"role": "user", "content": "one two three"}]})),
        Flavor::Anthropic => client
            .post(format!("{base}/v1/messages"))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model": "m", "max_tokens": 50, "stream": stream,
                "messages": [{"role": "user", "content": "one two three"}]})),
        Flavor::Gemini => {
            let method = if stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            client
                .post(format!("{base}/v1beta/models/g:{method}"))
                .header("x-goog-api-key", KEY)
                .json(&json!({"contents": [{"parts": [{"text": "one two three"}]}]}))
        }
    }
}

async fn start(flavor: Flavor) -> MockProvider {
    MockProvider::start(MockOptions::new(flavor).api_key(KEY))
        .await
        .unwrap()
}

const FLAVORS: [Flavor; 4] = [
    Flavor::OpenAi,
    Flavor::Azure,
    Flavor::Anthropic,
    Flavor::Gemini,
];

#[tokio::test]
async fn status_faults_use_each_providers_error_format_then_clear() {
    for flavor in FLAVORS {
        let mock = start(flavor).await;
        mock.set_fault(Fault::Status {
            status: 429,
            retry_after_secs: Some(7),
            times: Some(2),
        });
        for _ in 0..2 {
            let res = chat(&client(), &mock, false).send().await.unwrap();
            assert_eq!(res.headers()["retry-after"], "7");
            if flavor == Flavor::Azure {
                assert_eq!(res.headers()["retry-after-ms"], "7000");
            }
            let (status, err) = json_of(res).await;
            assert_eq!(status, 429);
            match flavor {
                Flavor::OpenAi => assert_eq!(err["error"]["code"], "rate_limit_exceeded"),
                Flavor::Azure => assert_eq!(err["error"]["code"], "429"),
                Flavor::Anthropic => {
                    assert_eq!(err["type"], "error");
                    assert_eq!(err["error"]["type"], "rate_limit_error");
                }
                Flavor::Gemini => {
                    assert_eq!(err["error"]["status"], "RESOURCE_EXHAUSTED");
                    assert_eq!(err["error"]["details"][0]["retryDelay"], "7s");
                }
            }
        }
        assert_eq!(mock.fault(), Fault::None);
        let res = chat(&client(), &mock, false).send().await.unwrap();
        assert_eq!(res.status(), 200, "{flavor:?} recovers after `times`");

        mock.set_fault(Fault::Status {
            status: 500,
            retry_after_secs: None,
            times: None,
        });
        for _ in 0..2 {
            let res = chat(&client(), &mock, true).send().await.unwrap();
            assert!(res.headers().get("retry-after").is_none());
            let (status, err) = json_of(res).await;
            assert_eq!(status, 500);
            let kind = match flavor {
                Flavor::OpenAi | Flavor::Azure => err["error"]["type"].clone(),
                Flavor::Anthropic => err["error"]["type"].clone(),
                Flavor::Gemini => err["error"]["status"].clone(),
            };
            let want = match flavor {
                Flavor::OpenAi | Flavor::Azure => "server_error",
                Flavor::Anthropic => "api_error",
                Flavor::Gemini => "INTERNAL",
            };
            assert_eq!(kind, want, "{flavor:?}: {err}");
        }
        assert_eq!(mock.hits(), 5);
    }
}

#[tokio::test]
async fn hang_is_detected_by_a_client_timeout() {
    let mock = start(Flavor::OpenAi).await;
    mock.set_fault(Fault::Hang);
    let quick = Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = chat(&quick, &mock, false).send().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(mock.hits(), 1, "the request arrived");
    mock.set_fault(Fault::None);
    assert_eq!(
        chat(&quick, &mock, false).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn reset_closes_the_connection_without_an_answer() {
    let mock = start(Flavor::Anthropic).await;
    mock.set_fault(Fault::Reset);
    let err = chat(&client(), &mock, false).send().await.unwrap_err();
    assert!(!err.is_timeout(), "{err}");
    assert_eq!(mock.requests().len(), 1, "recorded before the reset");
}

/// The SSE events received before the body broke, and whether it broke.
async fn read_until_broken(req: RequestBuilder) -> (usize, bool) {
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let mut bytes = Vec::new();
    let mut broken = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(_) => {
                broken = true;
                break;
            }
        }
    }
    let text = String::from_utf8(bytes).unwrap().replace("\r\n", "\n");
    (text.matches("\n\n").count(), broken)
}

#[tokio::test]
async fn disconnect_mid_stream_after_n_chunks() {
    for flavor in FLAVORS {
        let mock = start(flavor).await;
        mock.set_fault(Fault::DisconnectMidStream { after_chunks: 3 });
        let (events, broken) = read_until_broken(chat(&client(), &mock, true)).await;
        assert_eq!((events, broken), (3, true), "{flavor:?}");
    }
    // A non-stream answer is cut after half of its announced length.
    let mock = start(Flavor::OpenAi).await;
    mock.set_fault(Fault::DisconnectMidStream { after_chunks: 0 });
    let res = chat(&client(), &mock, false).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.is_err());
}

#[tokio::test]
async fn latency_and_chunk_delay_are_applied() {
    let opts = MockOptions::new(Flavor::OpenAi)
        .latency(Duration::from_millis(150))
        .chunk_delay(Duration::from_millis(40))
        .reply("alpha beta gamma")
        .name("eu-1");
    let mock = MockProvider::start(opts).await.unwrap();
    let started = Instant::now();
    let res = chat(&client(), &mock, true).send().await.unwrap();
    let head = started.elapsed();
    assert!(head >= Duration::from_millis(150), "{head:?}");
    assert_eq!(res.headers()["x-mock-name"], "eu-1");
    let text = res.text().await.unwrap();
    // role, 3 words, finish, [DONE]: 6 events, 5 delays.
    assert!(
        started.elapsed() >= head + Duration::from_millis(190),
        "{:?}",
        started.elapsed()
    );
    let content: String = super::sse_json(&text)
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "alpha beta gamma");
    // Any key is accepted without `api_key`, but one must be sent.
    let res = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap();
    let (status, _): (u16, Value) = json_of(res).await;
    assert_eq!(status, 401);
}

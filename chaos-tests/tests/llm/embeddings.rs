//! `POST /v1/embeddings` through OpenAI, Azure OpenAI and Gemini providers: the OpenAI
//! `list` answer carries the mock's vectors (floats, or base64 as the OpenAI SDK asks by
//! default) under the public model name, and the provider got its own request format.
//! A model served only by Anthropic (no embeddings API) is a 400.

use raftgate_chaos::llm_mock::{embedding, Flavor};
use serde_json::{json, Value};

use crate::{last_request, mock, serial, Gateway, AZURE_API_VERSION};

const INPUTS: [&str; 2] = ["hello embedding world", "second input"];

/// Decodes standard base64 (with padding).
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {s:?}"),
        }
    };
    let mut out = Vec::new();
    for group in s.trim_end_matches('=').as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, c) in group.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    out
}

/// The floats of an `embedding` value: an array, or base64 of little-endian f32s.
fn vector(what: &str, v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_f64().unwrap_or_else(|| panic!("{what}: {v}")) as f32)
            .collect(),
        Value::String(s) => base64_decode(s)
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        other => panic!("{what}: embedding is neither floats nor base64: {other}"),
    }
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: dimensions");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-5, "{what}: component {i}: {g} != {w}");
    }
}

/// Checks the `list` answer: one embedding per input, in order, equal to the mock's.
fn check_list(what: &str, body: &Value, dims: usize, base64: bool) {
    assert_eq!(body["object"], "list", "{what}: {body}");
    assert_eq!(body["model"], "emb", "{what}: the public model: {body}");
    let data = body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no data: {body}"));
    assert_eq!(data.len(), INPUTS.len(), "{what}: {body}");
    for (i, (d, input)) in data.iter().zip(INPUTS).enumerate() {
        assert_eq!(d["object"], "embedding", "{what}: {d}");
        assert_eq!(d["index"], i, "{what}: {d}");
        assert_eq!(
            d["embedding"].is_string(),
            base64,
            "{what}: base64 encoding as asked: {d}"
        );
        let got = vector(what, &d["embedding"]);
        assert_close(&format!("{what} input {i}"), &got, &embedding(input, dims));
    }
}

async fn check_embeddings(flavor: Flavor) {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let key = gw.consumer_with_key("app").await;
    let m = mock(flavor, flavor.as_str(), "sk-emb").await;
    gw.provider_for("prov", &m, "sk-emb").await;
    gw.simple_model("emb", "prov", "text-embedding-3-small", &["app"])
        .await;
    let what = format!("embeddings via {flavor:?}");

    let a = gw
        .call(
            "/v1/embeddings",
            &key,
            &json!({"model": "emb", "input": INPUTS}),
        )
        .await;
    let body = a.ok(&what);
    check_list(&what, body, 8, false);
    assert_eq!(a.header("x-raftgate-provider"), Some("prov"), "{what}");
    assert_eq!(
        a.header("x-raftgate-upstream-model"),
        Some("text-embedding-3-small"),
        "{what}"
    );
    assert!(
        body["usage"]["prompt_tokens"].as_u64().is_some(),
        "{what}: usage: {body}"
    );
    if flavor != Flavor::Gemini {
        // OpenAI and Azure report usage: the mock's word counts.
        let words: u64 = INPUTS.iter().map(|s| crate::words(s)).sum();
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": words, "total_tokens": words}),
            "{what}: usage"
        );
    }
    let r = last_request(&m);
    match flavor {
        Flavor::OpenAi => {
            assert_eq!(r.path, "/v1/embeddings", "{what}");
            assert_eq!(r.header("authorization"), Some("Bearer sk-emb"), "{what}");
            assert_eq!(r.body["model"], "text-embedding-3-small", "{what}");
            assert_eq!(r.body["input"], json!(INPUTS), "{what}");
        }
        Flavor::Azure => {
            assert_eq!(
                r.path, "/openai/deployments/text-embedding-3-small/embeddings",
                "{what}"
            );
            assert_eq!(r.query_param("api-version"), Some(AZURE_API_VERSION));
            assert_eq!(r.header("api-key"), Some("sk-emb"), "{what}");
            assert_eq!(r.body["input"], json!(INPUTS), "{what}");
        }
        Flavor::Gemini => {
            assert_eq!(
                r.path, "/v1beta/models/text-embedding-3-small:batchEmbedContents",
                "{what}"
            );
            assert_eq!(r.header("x-goog-api-key"), Some("sk-emb"), "{what}");
            let texts: Vec<String> = r.body["requests"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: no requests: {}", r.body))
                .iter()
                .map(|q| {
                    q["content"]["parts"][0]["text"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
                .collect();
            assert_eq!(texts, INPUTS, "{what}: one request per input: {}", r.body);
        }
        Flavor::Anthropic => unreachable!(),
    }

    // base64, as the OpenAI SDK asks by default, and fewer dimensions.
    let a = gw
        .call(
            "/v1/embeddings",
            &key,
            &json!({"model": "emb", "input": INPUTS, "encoding_format": "base64",
                "dimensions": 4}),
        )
        .await;
    check_list(&format!("{what} (base64, 4 dims)"), a.ok(&what), 4, true);

    // One string.
    let a = gw
        .call(
            "/v1/embeddings",
            &key,
            &json!({"model": "emb", "input": INPUTS[0]}),
        )
        .await;
    let body = a.ok(&what);
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1), "{what}");
    assert_close(
        &format!("{what} (one string)"),
        &vector(&what, &body["data"][0]["embedding"]),
        &embedding(INPUTS[0], 8),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_through_openai() {
    check_embeddings(Flavor::OpenAi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_through_azure_openai() {
    check_embeddings(Flavor::Azure).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_through_gemini() {
    check_embeddings(Flavor::Gemini).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_of_an_anthropic_only_model_are_refused() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let key = gw.consumer_with_key("app").await;
    let m = mock(Flavor::Anthropic, "claude", "sk-a").await;
    gw.provider_for("claude", &m, "sk-a").await;
    gw.simple_model("claude-only", "claude", "claude-3-5-haiku-latest", &["app"])
        .await;
    let a = gw
        .call(
            "/v1/embeddings",
            &key,
            &json!({"model": "claude-only", "input": "hello"}),
        )
        .await;
    a.openai_error("embeddings of an Anthropic model", 400);
    assert_eq!(m.hits(), 0, "nothing is sent to Anthropic");
}

//! Gemini format.

use raftgate_chaos::llm_mock::{embedding, words, Flavor};
use reqwest::RequestBuilder;
use serde_json::{json, Value};

use super::{client, json_of, sse_json, start, KEY};

fn post(base: &str, path: &str, body: &Value) -> RequestBuilder {
    client()
        .post(format!("{base}{path}"))
        .header("x-goog-api-key", KEY)
        .json(body)
}

fn request() -> Value {
    json!({"systemInstruction": {"parts": [{"text": "be nice"}]},
        "contents": [{"role": "user", "parts": [{"text": "hello gemini friend"}]}]})
}

#[tokio::test]
async fn generate_content_with_header_or_query_key() {
    let mock = start(Flavor::Gemini).await;
    let path = "/v1beta/models/gemini-2.0-flash:generateContent";
    let (status, res) = json_of(
        post(&mock.base_url(), path, &request())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{res}");
    let candidate = &res["candidates"][0];
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(
        candidate["content"]["parts"],
        json!([{"text": "mock reply to: hello gemini friend"}])
    );
    assert_eq!(candidate["finishReason"], "STOP");
    let usage = &res["usageMetadata"];
    assert_eq!(usage["promptTokenCount"], 5);
    assert_eq!(usage["candidatesTokenCount"], 6);
    assert_eq!(usage["totalTokenCount"], 11);
    assert_eq!(res["modelVersion"], "gemini-2.0-flash");

    let res = client()
        .post(format!("{}{path}?key={KEY}", mock.base_url()))
        .json(&request())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(mock.requests()[1].query_param("key"), Some(KEY));
}

#[tokio::test]
async fn stream_generate_content_sse_and_json_array() {
    let mock = start(Flavor::Gemini).await;
    let path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent";
    let reply = "mock reply to: hello gemini friend";
    let res = post(&mock.base_url(), &format!("{path}?alt=sse"), &request())
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = res.text().await.unwrap();
    assert!(text.contains("\r\n\r\n"), "Gemini frames SSE with CRLF");
    let chunks = sse_json(&text);
    assert_eq!(chunks.len() as u64, words(reply));
    let streamed: String = chunks
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(streamed, reply);
    let (last, rest) = chunks.split_last().unwrap();
    assert!(rest
        .iter()
        .all(|c| c["candidates"][0].get("finishReason").is_none()
            && c["usageMetadata"].get("candidatesTokenCount").is_none()));
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 6);
    assert_eq!(last["usageMetadata"]["promptTokenCount"], 5);

    // Without alt=sse: a JSON array of the same responses.
    let res = post(&mock.base_url(), path, &request())
        .send()
        .await
        .unwrap();
    let array: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(array.as_array().unwrap().len(), chunks.len());
    assert_eq!(
        array[chunks.len() - 1]["usageMetadata"],
        last["usageMetadata"]
    );
}

#[tokio::test]
async fn function_calls_follow_the_tool_config() {
    let mock = start(Flavor::Gemini).await;
    let path = "/v1beta/models/gemini-2.0-flash:generateContent";
    let mut body = request();
    body["tools"] = json!([{"functionDeclarations": [
        {"name": "find", "parameters": {"type": "OBJECT",
            "properties": {"q": {"type": "STRING"}, "n": {"type": "NUMBER"}}}},
        {"name": "other", "parameters": {"type": "OBJECT", "properties": {}}}]}]);
    let (_, res) = json_of(post(&mock.base_url(), path, &body).send().await.unwrap()).await;
    let part = &res["candidates"][0]["content"]["parts"][0];
    assert_eq!(
        part["functionCall"],
        json!({"name": "find", "args": {"n": 1, "q": "mock"}})
    );
    assert_eq!(
        res["usageMetadata"]["candidatesTokenCount"],
        words(r#"{"n": 1, "q": "mock"}"#)
    );

    body["toolConfig"] = json!({"functionCallingConfig": {"mode": "ANY",
        "allowedFunctionNames": ["other"]}});
    let (_, res) = json_of(post(&mock.base_url(), path, &body).send().await.unwrap()).await;
    assert_eq!(
        res["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "other"
    );

    body["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
    let (_, res) = json_of(post(&mock.base_url(), path, &body).send().await.unwrap()).await;
    assert!(res["candidates"][0]["content"]["parts"][0]["text"].is_string());
}

#[tokio::test]
async fn embeddings_and_errors() {
    let mock = start(Flavor::Gemini).await;
    let base = mock.base_url();
    let one = json!({"content": {"parts": [{"text": "embed me"}]}});
    let res = post(
        &base,
        "/v1beta/models/text-embedding-004:embedContent",
        &one,
    )
    .send();
    let (status, res) = json_of(res.await.unwrap()).await;
    assert_eq!(status, 200, "{res}");
    let values: Vec<f32> = res["embedding"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(values, embedding("embed me", 8));
    let batch = json!({"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]},
         "outputDimensionality": 4}]});
    let res = post(
        &base,
        "/v1beta/models/text-embedding-004:batchEmbedContents",
        &batch,
    )
    .send();
    let (_, res) = json_of(res.await.unwrap()).await;
    assert_eq!(res["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(res["embeddings"][1]["values"].as_array().unwrap().len(), 4);

    let path = format!("{base}/v1beta/models/gemini-2.0-flash:generateContent");
    let res = client()
        .post(&path)
        .header("x-goog-api-key", "bad")
        .json(&request());
    let (status, err) = json_of(res.send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(err["error"]["details"][0]["reason"], "API_KEY_INVALID");
    let (status, err) = json_of(client().post(&path).json(&request()).send().await.unwrap()).await;
    assert_eq!((status, err["error"]["code"].clone()), (403, json!(403)));
    assert_eq!(err["error"]["status"], "PERMISSION_DENIED");
    let res = post(&base, "/v1beta/models/x:frobnicate", &request()).send();
    let (status, err) = json_of(res.await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["status"].clone()),
        (404, json!("NOT_FOUND"))
    );
}

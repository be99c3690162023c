//! OpenAI and Azure OpenAI formats.

use raftgate_chaos::llm_mock::{embedding, words, Flavor};
use serde_json::{json, Value};

use super::{base64_decode, client, json_of, sse, sse_json, start, KEY};

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {
            "type": "object", "properties": {"zone": {"type": "string"}}}}}
    ])
}

#[tokio::test]
async fn chat_non_stream_reports_word_usage_and_is_recorded() {
    let mock = start(Flavor::OpenAi).await;
    assert_eq!(mock.base_url(), format!("http://{}/v1", mock.addr()));
    let res = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth(KEY)
        .json(&json!({"model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": "You are terse"},
            {"role": "user", "content": [{"type": "text", "text": "hello there world"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-mock-name"], "openai");
    assert!(res.headers().contains_key("x-request-id"));
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        "mock reply to: hello there world"
    );
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 6);
    assert_eq!(body["usage"]["completion_tokens"], 6);
    assert_eq!(body["usage"]["total_tokens"], 12);

    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].path, "/v1/chat/completions");
    assert_eq!(
        recorded[0].header("authorization"),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(recorded[0].body["model"], "gpt-4o-mini");
    assert_eq!(mock.hits(), 1);
}

#[tokio::test]
async fn chat_stream_ends_with_usage_chunk_and_done() {
    let mock = start(Flavor::OpenAi).await;
    let url = format!("{}/chat/completions", mock.base_url());
    let request = |include_usage: bool| {
        let mut body = json!({"model": "gpt-4o", "stream": true,
            "messages": [{"role": "user", "content": "tell me a story"}]});
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        client().post(&url).bearer_auth(KEY).json(&body).send()
    };
    let res = request(true).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = res.text().await.unwrap();
    let events = sse(&text);
    assert!(events.iter().all(|(name, _)| name.is_none()));
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks = sse_json(&text);
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let reply = "mock reply to: tell me a story";
    let deltas: Vec<&str> = chunks[1..]
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        deltas.len() as u64,
        words(reply),
        "one word per chunk: {deltas:?}"
    );
    assert_eq!(deltas.concat(), reply);
    let (usage_chunk, rest) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 4);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 7);
    assert!(rest
        .iter()
        .all(|c| c["usage"].is_null() && c.get("usage").is_some()));
    assert_eq!(rest.last().unwrap()["choices"][0]["finish_reason"], "stop");

    // Without include_usage: no usage anywhere, no empty-choices chunk.
    let chunks = sse_json(&request(false).await.unwrap().text().await.unwrap());
    assert!(chunks
        .iter()
        .all(|c| c.get("usage").is_none() && c["choices"].as_array().unwrap().len() == 1));
}

#[tokio::test]
async fn tool_calls_non_stream_and_stream() {
    let mock = start(Flavor::OpenAi).await;
    let url = format!("{}/chat/completions", mock.base_url());
    let send = |extra: Value| {
        let mut body = json!({"model": "gpt-4o", "tools": weather_tools(),
            "messages": [{"role": "user", "content": "weather in Paris?"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        client().post(&url).bearer_auth(KEY).json(&body).send()
    };
    let (_, body) = json_of(send(json!({})).await.unwrap()).await;
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args = call["function"]["arguments"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(args).unwrap();
    assert_eq!(parsed, json!({"city": "mock", "unit": "celsius"}));
    assert_eq!(body["usage"]["completion_tokens"], words(args));

    let forced = json!({"tool_choice": {"type": "function", "function": {"name": "get_time"}}});
    let (_, body) = json_of(send(forced).await.unwrap()).await;
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_time"
    );
    let (_, body) = json_of(send(json!({"tool_choice": "none"})).await.unwrap()).await;
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // After a tool result, automatic choice answers with text.
    let after = json!({"messages": [{"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]});
    let (_, body) = json_of(send(after).await.unwrap()).await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: weather?"
    );

    let text = send(json!({"stream": true}))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let chunks = sse_json(&text);
    let first = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["index"], 0);
    assert!(first["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(first["type"], "function");
    assert_eq!(first["function"]["name"], "get_weather");
    assert_eq!(first["function"]["arguments"], "");
    let fragments: Vec<&str> = chunks[1..]
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(fragments.len() as u64, words(args));
    assert_eq!(fragments.concat(), args);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn embeddings_float_and_base64_and_models() {
    let mock = start(Flavor::OpenAi).await;
    let url = format!("{}/embeddings", mock.base_url());
    let post = |body: Value| client().post(&url).bearer_auth(KEY).json(&body).send();
    let (status, body) = json_of(
        post(json!({"model": "text-embedding-3-small", "input": ["a b", "c"]}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 3, "total_tokens": 3})
    );
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    let floats: Vec<f32> = data[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(floats, embedding("a b", 8));

    let (_, body) = json_of(
        post(json!({"model": "m", "input": "a b", "encoding_format": "base64", "dimensions": 16}))
            .await
            .unwrap(),
    )
    .await;
    let bytes = base64_decode(body["data"][0]["embedding"].as_str().unwrap());
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(decoded, embedding("a b", 16));

    let res = client()
        .get(format!("{}/models", mock.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let (_, body) = json_of(res).await;
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["object"], "model");
}

#[tokio::test]
async fn auth_errors_not_found_and_max_tokens() {
    let mock = start(Flavor::OpenAi).await;
    let url = format!("{}/chat/completions", mock.base_url());
    let body = json!({"model": "gpt-4o", "max_tokens": 2,
        "messages": [{"role": "user", "content": "hi"}]});
    let (status, err) = json_of(client().post(&url).json(&body).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["type"], "invalid_request_error");
    let res = client()
        .post(&url)
        .bearer_auth("sk-wrong-key")
        .json(&body)
        .send();
    let (status, err) = json_of(res.await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["code"], "invalid_api_key");
    assert!(err["error"]["param"].is_null());

    let res = client()
        .post(format!("{}/nope", mock.base_url()))
        .bearer_auth(KEY)
        .send();
    let (status, err) = json_of(res.await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["message"], "Invalid URL (POST /v1/nope)");

    let (_, ok) = json_of(
        client()
            .post(&url)
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ok["choices"][0]["message"]["content"], "mock reply");
    assert_eq!(ok["choices"][0]["finish_reason"], "length");
    assert_eq!(ok["usage"]["completion_tokens"], 2);
    assert_eq!(mock.hits(), 4);
}

#[tokio::test]
async fn azure_paths_key_and_content_filter_chunk() {
    let mock = start(Flavor::Azure).await;
    assert_eq!(mock.base_url(), format!("http://{}", mock.addr()));
    let url = format!(
        "{}/openai/deployments/gpt4o-eu/chat/completions?api-version=2024-10-21",
        mock.base_url()
    );
    let body = json!({"messages": [{"role": "user", "content": "hi azure"}]});
    let res = client()
        .post(&url)
        .header("api-key", KEY)
        .json(&body)
        .send();
    let (status, ok) = json_of(res.await.unwrap()).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["model"], "gpt4o-eu");
    assert_eq!(
        ok["choices"][0]["message"]["content"],
        "mock reply to: hi azure"
    );
    assert_eq!(ok["usage"]["prompt_tokens"], 2);
    assert!(ok["prompt_filter_results"].is_array());
    assert_eq!(
        mock.requests()[0].query_param("api-version"),
        Some("2024-10-21")
    );

    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let res = client()
        .post(&url)
        .header("api-key", KEY)
        .json(&stream)
        .send();
    let text = res.await.unwrap().text().await.unwrap();
    assert_eq!(sse(&text).last().unwrap().1, "[DONE]");
    let chunks = sse_json(&text);
    assert_eq!(chunks[0]["choices"], json!([]));
    assert!(chunks[0]["prompt_filter_results"].is_array());
    let content: String = chunks[1..]
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "mock reply to: hi azure");

    let emb = format!(
        "{}/openai/deployments/emb/embeddings?api-version=2024-10-21",
        mock.base_url()
    );
    let res = client()
        .post(&emb)
        .header("api-key", KEY)
        .json(&json!({"input": "x y"}));
    let (status, e) = json_of(res.send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(e["usage"]["prompt_tokens"], 2);

    // Bearer is not Azure's key header; no api-version is a 404.
    let res = client().post(&url).bearer_auth(KEY).json(&body).send();
    let (status, err) = json_of(res.await.unwrap()).await;
    assert_eq!((status, err["error"]["code"].clone()), (401, json!("401")));
    let bare = url.split('?').next().unwrap();
    let res = client()
        .post(bare)
        .header("api-key", KEY)
        .json(&body)
        .send();
    let (status, err) = json_of(res.await.unwrap()).await;
    assert_eq!((status, err["error"]["code"].clone()), (404, json!("404")));
}

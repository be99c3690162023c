//! The LLM format translators on fuzzed JSON, along the gateway's real chains:
//! an Anthropic-format client request → OpenAI → validation → each provider's request;
//! each provider's response → OpenAI → an Anthropic-format response; plus usage and
//! token estimates, embeddings and the OpenAI → Anthropic stream translator. Nothing
//! may panic. A provider response translated to OpenAI must translate on to an
//! Anthropic response (else an Anthropic-format client gets a 502 for a good answer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftgate_node::llm::translate::{anthropic, gemini, openai};
use raftgate_node::llm::translate::{
    estimate_prompt_tokens, openai_usage, text_of_openai_chunk, TranslateError,
};
use serde_json::Value;

/// Everything a translator produces is sent as JSON: it must serialize.
fn sent(r: Result<Value, TranslateError>) -> Option<Value> {
    let v = r.ok()?;
    serde_json::to_vec(&v).expect("translated JSON serializes");
    Some(v)
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };

    // Requests: OpenAI clients, and Anthropic clients translated to OpenAI first.
    let mut requests = vec![v.clone()];
    // (The gateway validates these again: an Anthropic turn with empty content becomes
    // no OpenAI message at all, so validation may refuse what translation accepted.)
    requests.extend(sent(anthropic::request_from_anthropic(&v)));
    for req in &requests {
        let _ = estimate_prompt_tokens(req);
        let valid = openai::validate_chat_request(req).is_ok();
        let _ = sent(anthropic::request_to_anthropic(req, "claude-fuzz"));
        let _ = sent(gemini::request_to_gemini(req));
        let prepared = openai::prepare_upstream(req, "gpt-fuzz", true);
        if valid {
            assert_eq!(prepared.body.get("model"), Some(&Value::from("gpt-fuzz")));
        }
    }
    let _ = sent(gemini::embeddings_request_to_gemini(&v, "embed-fuzz"));
    let _ = openai::wants_base64_embeddings(&v);

    // Responses: each provider's answer → OpenAI → an Anthropic-format client.
    let mut responses = vec![v.clone()];
    responses.extend(sent(anthropic::response_from_anthropic(&v, "m")));
    responses.extend(sent(gemini::response_from_gemini(&v, "m")));
    for (i, resp) in responses.iter().enumerate() {
        let back = anthropic::response_to_anthropic(resp);
        if i > 0 {
            if let Err(e) = back {
                panic!("a translated provider response cannot go on to Anthropic: {e}\n{resp}");
            }
        }
        let _ = openai_usage(resp);
    }
    if let Some(mut emb) = sent(gemini::embeddings_response_from_gemini(&v, "e", 7)) {
        openai::encode_embeddings_base64(&mut emb);
    }
    let mut raw = v.clone();
    openai::encode_embeddings_base64(&mut raw);

    // One OpenAI stream chunk, as the Anthropic-format stream sees it.
    let _ = text_of_openai_chunk(&v);
    let _ = openai::is_usage_only_chunk(&v);
    let mut stream = anthropic::OpenaiToAnthropicStream::new("m").with_input_tokens(3);
    let mut events = stream.on_chunk(&v);
    events.extend(stream.on_chunk(&v));
    events.extend(stream.finish());
    for (name, data) in &events {
        assert!(!name.is_empty() && !name.contains(['\r', '\n']));
        serde_json::to_vec(data).expect("stream event JSON serializes");
    }
    let _ = stream.usage();
});

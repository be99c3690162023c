//! `GET /v1/models` lists exactly the models the key may use: those it holds a
//! Permission for and those of its own tenant.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::{serial, Answer, Gateway, TENANT};

async fn listed(gw: &Gateway, key: &str) -> BTreeSet<String> {
    let resp = gw
        .http
        .get(gw.url("/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .expect("GET /v1/models");
    let a = Answer::read(resp, "GET /v1/models").await;
    let body = a.ok("GET /v1/models");
    assert_eq!(body["object"], "list", "{}", a.text);
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {}", a.text))
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model", "{}", a.text);
            m["id"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_exactly_the_permitted_models() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    gw.create("tenants", json!({"id": "beta"})).await;
    let a = gw.consumer_with_key("a").await;
    let b = gw.consumer_in("b", "beta").await;
    let c = gw.consumer_with_key("c").await;
    gw.create("providers", json!({"id": "mock", "type": "mock"}))
        .await;
    let model = |id: &str, tenant: Option<&str>| {
        let mut m = json!({"id": id, "deployments": [{"provider": "mock", "model": "m"}]});
        if let Some(t) = tenant {
            m["tenant"] = Value::from(t);
        }
        m
    };
    for (id, tenant) in [
        ("m1", None),
        ("m2", None),
        ("m3", None),
        ("m4-acme", Some(TENANT)),
        ("m5-beta", Some("beta")),
    ] {
        gw.create("models", model(id, tenant)).await;
    }
    gw.permit("a", "m1").await;
    gw.permit("a", "m2").await;
    gw.permit("b", "m3").await;

    assert_eq!(listed(&gw, &a).await, set(&["m1", "m2", "m4-acme"]), "a");
    assert_eq!(listed(&gw, &b).await, set(&["m3", "m5-beta"]), "b");
    assert_eq!(listed(&gw, &c).await, set(&["m4-acme"]), "c: its tenant's");

    // What is listed can be called, and what is not is refused.
    let call = |key: &str, model: &str| {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        let key = key.to_string();
        let gw = &gw;
        async move {
            gw.call("/v1/chat/completions", &key, &body)
                .await
                .status
                .as_u16()
        }
    };
    assert_eq!(call(&a, "m1").await, 200);
    assert_eq!(call(&a, "m4-acme").await, 200);
    assert_eq!(call(&a, "m3").await, 403);
    assert_eq!(call(&b, "m5-beta").await, 200);
    assert_eq!(call(&b, "m4-acme").await, 403);

    let resp = gw
        .http
        .get(gw.url("/v1/models"))
        .bearer_auth("rg_wrong")
        .send()
        .await
        .expect("GET /v1/models");
    Answer::read(resp, "models with a wrong key")
        .await
        .openai_error("models with a wrong key", 401);
}

//! The configuration a scenario runs against, written through the admin API before the
//! load starts: one tenant and consumer with an API key, a REST route without a quota
//! (`/chaos/open`) and one behind a strict per-minute quota (`/chaos/limited`) to the
//! suite's own upstream, an LLM model on the suite's mock OpenAI server behind a strict
//! per-second quota, a quota policy that only admin writes touch, and the register
//! resources of the linearizability check.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::client::AdminClient;
use crate::error::{ChaosError, Result};

/// Limit of the REST route's policy (`window: minute`).
pub const REST_LIMIT_PER_MINUTE: u64 = 600;
/// Limit of the LLM model's policy (`window: second`).
pub const LLM_LIMIT_PER_SECOND: u64 = 10;
/// The API key the mock LLM server expects (the nodes store it encrypted: they need a
/// secret key, `RAFTGATE_SECRET_KEY`, the same on every node).
pub const LLM_API_KEY: &str = "sk-chaos-suite-mock";
/// Number of register keys for the linearizability check.
pub const REGISTERS: usize = 3;

/// What the load needs to know about the configuration.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The consumer's API key (plaintext, as returned once at creation).
    pub api_key: String,
    /// Register id → its initial value.
    pub registers: BTreeMap<String, u64>,
}

/// A quota policy the suite checks: which traffic it limits and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub policy: &'static str,
    pub limit: u64,
    /// Window length in milliseconds (aligned on the epoch).
    pub window_ms: u64,
}

/// The two limits the quota checker verifies.
pub fn limits() -> [Limit; 2] {
    [
        Limit {
            policy: "chaos-rest",
            limit: REST_LIMIT_PER_MINUTE,
            window_ms: 60_000,
        },
        Limit {
            policy: "chaos-llm",
            limit: LLM_LIMIT_PER_SECOND,
            window_ms: 1_000,
        },
    ]
}

/// The register resource `id` holding `value` (a tenant whose `name` is the value).
pub fn register_body(id: &str, value: u64) -> Value {
    json!({"id": id, "name": value.to_string()})
}

/// The value a register resource holds.
pub fn register_value(stored: &Value) -> Option<u64> {
    stored.get("name")?.as_str()?.parse().ok()
}

/// Writes the configuration through `admin` (any node). `upstream` and `llm_base_url`
/// are where the nodes reach the suite's servers.
pub async fn apply(admin: &AdminClient, upstream: &str, llm_base_url: &str) -> Result<Setup> {
    let docs = [
        ("tenants", json!({"id": "chaos", "name": "Chaos suite"})),
        (
            "consumers",
            json!({"id": "chaos-app", "tenant": "chaos", "name": "Chaos load"}),
        ),
        (
            "upstreams",
            json!({"id": "chaos-echo", "targets": [{"address": upstream}]}),
        ),
        (
            "services",
            json!({"id": "chaos-svc", "tenant": "chaos", "name": "Chaos", "state": "published"}),
        ),
        (
            "quota_policies",
            json!({"id": "chaos-rest", "tenant": "chaos", "scope": ["route"], "metric": "requests",
                   "window": "minute", "limit": REST_LIMIT_PER_MINUTE}),
        ),
        (
            "quota_policies",
            json!({"id": "chaos-llm", "scope": ["model"], "metric": "requests",
                   "window": "second", "limit": LLM_LIMIT_PER_SECOND}),
        ),
        (
            "quota_policies",
            json!({"id": "chaos-churn", "tenant": "chaos", "scope": ["route"], "metric": "requests",
                   "window": "hour", "limit": 1000}),
        ),
        (
            "routes",
            json!({"id": "chaos-open", "tenant": "chaos", "service": "chaos-svc", "path": "/chaos/open",
                   "target": {"upstream": "chaos-echo"}, "policies": [{"key_auth": {}}]}),
        ),
        (
            "routes",
            json!({"id": "chaos-limited", "tenant": "chaos", "service": "chaos-svc", "path": "/chaos/limited",
                   "target": {"upstream": "chaos-echo"},
                   "policies": [{"key_auth": {}}, {"quota": "chaos-rest"}]}),
        ),
        (
            "providers",
            json!({"id": "chaos-mock", "type": "openai", "base_url": llm_base_url, "api_key": LLM_API_KEY}),
        ),
        (
            "models",
            json!({"id": "chaos-model", "deployments": [{"provider": "chaos-mock", "model": "mock-1"}],
                   "quotas": ["chaos-llm"]}),
        ),
        (
            "subscriptions",
            json!({"id": "chaos-app-svc", "consumer": "chaos-app", "service": "chaos-svc"}),
        ),
        (
            "permissions",
            json!({"id": "chaos-app-model", "consumer": "chaos-app", "target": {"model": "chaos-model"}}),
        ),
    ];
    for (collection, body) in docs {
        admin
            .create(collection, &body)
            .await
            .map_err(|e| ChaosError::Invariant(format!("setting up {collection} {body}: {e}")))?;
    }
    let mut registers = BTreeMap::new();
    for k in 0..REGISTERS {
        let id = format!("chaos-reg-{k}");
        admin
            .create("tenants", &register_body(&id, 0))
            .await
            .map_err(|e| ChaosError::Invariant(format!("creating register {id}: {e}")))?;
        registers.insert(id, 0);
    }
    let key = admin
        .create(
            "consumers/chaos-app/keys",
            &json!({"id": "chaos-key", "name": "load"}),
        )
        .await
        .map_err(|e| ChaosError::Invariant(format!("creating the load's API key: {e}")))?;
    let api_key = key
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| ChaosError::Invariant(format!("the key answer has no 'key': {key}")))?
        .to_string();
    Ok(Setup { api_key, registers })
}

/// Deletes what [`apply`] wrote (and what the load created), for a cluster the suite
/// does not throw away afterwards. Missing items are fine; other errors are returned.
pub async fn cleanup(admin: &AdminClient) -> Result<()> {
    use crate::client::Read;
    let fixed = [
        ("permissions", "chaos-app-model"),
        ("subscriptions", "chaos-app-svc"),
        ("models", "chaos-model"),
        ("providers", "chaos-mock"),
    ];
    for (collection, id) in fixed {
        delete(admin, collection, id).await?;
    }
    for collection in [
        "routes",
        "quota_policies",
        "api_keys",
        "services",
        "upstreams",
        "consumers",
        "tenants",
    ] {
        let list = admin
            .list(collection, Read::Consistent)
            .await
            .map_err(|e| ChaosError::Invariant(format!("listing {collection} for cleanup: {e}")))?;
        for item in list.items {
            if let Some(id) = item.get("id").and_then(Value::as_str) {
                if id == "chaos" || id.starts_with("chaos-") {
                    delete(admin, collection, id).await?;
                }
            }
        }
    }
    Ok(())
}

async fn delete(admin: &AdminClient, collection: &str, id: &str) -> Result<()> {
    match admin.delete(collection, id).await {
        Ok(_) => Ok(()),
        Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => Ok(()),
        Err(e) => Err(ChaosError::Invariant(format!(
            "cleanup: deleting {collection}/{id}: {e}"
        ))),
    }
}

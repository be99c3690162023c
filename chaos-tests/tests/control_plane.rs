//! Control-plane integration tests against real `raftgate serve` processes on loopback:
//! replication, leader failover, snapshot catch-up, wipe-and-rejoin, acknowledged-write
//! durability, bad input, and the CLI. Needs the binary (`cargo build -p raftgate-node`).
//!
//! Tests in this file run one at a time (a shared lock), so that a 2-core machine is not
//! asked to run several 3-node clusters at once; every wait has a deadline.
#![forbid(unsafe_code)]

#[path = "control_plane/bad_input.rs"]
mod bad_input;
#[path = "control_plane/cli.rs"]
mod cli;
#[path = "control_plane/failover.rs"]
mod failover;
#[path = "control_plane/replication.rs"]
mod replication;

use std::time::Duration;

use raftgate_chaos::{wait, AdminClient, Read};
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Held for the whole test: one cluster at a time.
pub async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Bound for replicas catching up.
pub const CATCH_UP: Duration = Duration::from_secs(30);

/// A tenant, a consumer, an upstream and a route referring to each other, ids prefixed
/// with `p`, in creation order.
pub fn resource_chain(p: &str) -> Vec<(&'static str, Value)> {
    vec![
        (
            "tenants",
            json!({"id": format!("{p}-tenant"), "name": "Acme", "labels": {"team": "chaos"}}),
        ),
        (
            "consumers",
            json!({"id": format!("{p}-consumer"), "tenant": format!("{p}-tenant"), "name": "app"}),
        ),
        (
            "upstreams",
            json!({"id": format!("{p}-upstream"), "targets": [{"address": "127.0.0.1:9", "weight": 1}]}),
        ),
        (
            "routes",
            json!({"id": format!("{p}-route"), "path": format!("/{p}"), "methods": ["GET"], "target": {"upstream": format!("{p}-upstream")}}),
        ),
    ]
}

/// The `id` of a request body.
pub fn id_of(body: &Value) -> String {
    body.get("id")
        .and_then(Value::as_str)
        .expect("fixture bodies have an id")
        .to_string()
}

/// Waits until `client`'s local replica holds `collection/id` equal to `expected`.
pub async fn wait_local_equal(client: &AdminClient, collection: &str, id: &str, expected: &Value) {
    let what = format!(
        "{collection}/{id} in the local replica of {}",
        client.base_url()
    );
    wait::until(&what, CATCH_UP, || async {
        match client.get(collection, id, Read::Local).await {
            Ok(v) if &v == expected => Ok(()),
            Ok(v) => Err(format!("differs: {v}")),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

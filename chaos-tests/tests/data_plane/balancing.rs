//! Load balancing: round robin, smooth weighted round robin (exact on one node), least
//! connections, and consistent hashing on a header, a cookie and the client address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::{json, Value};

use raftgate_chaos::TestUpstream;

use crate::{
    data_client, eventually, send, serial, served_by, upstream, upstream_body, with, Gateway,
};

/// Servers `name-0..n`, one upstream `u` over them with `balancer`, one route `/lb`.
async fn pool(gw: &Gateway, n: usize, balancer: Value) -> Vec<TestUpstream> {
    let mut servers = Vec::new();
    for i in 0..n {
        servers.push(upstream(&format!("s{i}")).await);
    }
    let refs: Vec<&TestUpstream> = servers.iter().collect();
    gw.create(
        "upstreams",
        with(upstream_body("u", &refs), "balancer", balancer),
    )
    .await;
    gw.create(
        "routes",
        json!({"id": "lb", "path": "/lb", "target": {"upstream": "u"}}),
    )
    .await;
    servers
}

fn counts(servers: &[TestUpstream]) -> Vec<u64> {
    servers.iter().map(TestUpstream::requests).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_splits_evenly() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let servers = pool(&gw, 3, json!("round_robin")).await;
    for i in 0..300 {
        let got = served_by(send("GET /lb", gw.get("/lb")).await).await;
        assert!(got.starts_with('s'), "request {i}: {got}");
    }
    let c = counts(&servers);
    assert_eq!(
        c.iter().sum::<u64>(),
        300,
        "every request reached exactly one server: {c:?}"
    );
    assert!(
        c.iter().all(|&n| (95..=105).contains(&n)),
        "uneven round robin over 300 requests: {c:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_is_exact() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let heavy = upstream("heavy").await;
    let light = upstream("light").await;
    gw.create(
        "upstreams",
        json!({"id": "u", "targets": [
            {"address": heavy.addr().to_string(), "weight": 3},
            {"address": light.addr().to_string(), "weight": 1},
        ]}),
    )
    .await;
    gw.create(
        "routes",
        json!({"id": "w", "path": "/w", "target": {"upstream": "u"}}),
    )
    .await;
    let mut order = String::new();
    for _ in 0..400 {
        let got = served_by(send("GET /w", gw.get("/w")).await).await;
        order.push(match got.as_str() {
            "heavy" => 'H',
            "light" => 'L',
            other => panic!("GET /w: {other}"),
        });
    }
    assert_eq!(
        (heavy.requests(), light.requests()),
        (300, 100),
        "weights 3:1 over 400 requests on one node"
    );
    // Smooth: never more than three heavy picks in a row once the cycle runs.
    assert!(!order.contains("HHHH"), "not smooth: {order}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_avoids_the_busy_target() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let servers = pool(&gw, 2, json!("least_connections")).await;
    gw.create(
        "routes",
        json!({"id": "delay", "path": "/delay", "target": {"upstream": "u"}}),
    )
    .await;
    // One slow request occupies one target...
    let slow = tokio::spawn(gw.get("/delay/3000").send());
    eventually(
        "the slow request to reach a target",
        Duration::from_secs(5),
        || {
            let c = counts(&servers);
            async move {
                if c.iter().sum::<u64>() == 1 {
                    Ok(())
                } else {
                    Err(format!("counts {c:?}"))
                }
            }
        },
    )
    .await;
    let busy = if servers[0].requests() == 1 { 0 } else { 1 };
    // ...so every quick request meanwhile goes to the other one (round robin would split).
    for i in 0..20 {
        let got = served_by(send("GET /lb/quick", gw.get("/lb/quick")).await).await;
        assert!(got.starts_with('s'), "quick request {i}: {got}");
    }
    let c = counts(&servers);
    assert_eq!(
        c[busy], 1,
        "the target busy with a 3 s request got more quick requests: counts {c:?}"
    );
    assert_eq!(c[1 - busy], 20, "counts {c:?}");
    let slow = slow
        .await
        .expect("join")
        .expect("the slow request is answered");
    assert_eq!(slow.status(), 200);
}

/// Which server each key went to, checking that every key always goes to the same one.
fn stick(map: &mut BTreeMap<String, String>, key: &str, server: String) {
    let first = map.entry(key.to_string()).or_insert_with(|| server.clone());
    assert_eq!(*first, server, "key {key} moved between targets");
}

fn assert_spread(what: &str, map: &BTreeMap<String, String>, servers: usize) {
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for s in map.values() {
        assert!(s.starts_with('s'), "{what}: a request failed: {s}");
        *per.entry(s.as_str()).or_default() += 1;
    }
    let max = per.values().copied().max().unwrap_or(0);
    assert!(
        per.len() >= servers.min(2) && max * 10 <= map.len() * 8,
        "{what}: {} keys are not spread over {servers} targets: {per:?}",
        map.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_on_a_header_sticks_and_spreads() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let _servers = pool(&gw, 3, json!({"consistent_hash": {"header": "x-user"}})).await;
    let mut map = BTreeMap::new();
    for round in 0..3 {
        for user in 0..30 {
            let key = format!("user-{user}");
            let got = served_by(send("GET /lb", gw.get("/lb").header("x-user", &key)).await).await;
            assert!(got.starts_with('s'), "round {round}, {key}: {got}");
            stick(&mut map, &key, got);
        }
    }
    assert_spread("x-user", &map, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_on_a_cookie_sticks_and_spreads() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let _servers = pool(&gw, 3, json!({"consistent_hash": {"cookie": "sid"}})).await;
    let mut map = BTreeMap::new();
    for round in 0..3 {
        for session in 0..30 {
            let key = format!("sess{session}");
            // Other cookies around it change from round to round; only `sid` counts.
            let cookie = format!("theme=t{round}; sid={key}; lang=l{round}");
            let got =
                served_by(send("GET /lb", gw.get("/lb").header("cookie", cookie)).await).await;
            assert!(got.starts_with('s'), "round {round}, {key}: {got}");
            stick(&mut map, &key, got);
        }
    }
    assert_spread("cookie sid", &map, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_on_the_client_address_sticks_and_spreads() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let _servers = pool(&gw, 3, json!({"consistent_hash": "client_ip"})).await;
    let mut map = BTreeMap::new();
    let mut seen_addrs = BTreeSet::new();
    for i in 0..20u8 {
        // Linux routes all of 127/8 to loopback: each client binds its own source address.
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i));
        for round in 0..3 {
            // A fresh client (connection) per round: stickiness must not come from reuse.
            let client = data_client().local_address(ip).build().expect("client");
            let resp = send(&format!("GET /lb from {ip}"), client.get(gw.url("/lb"))).await;
            let got = served_by(resp).await;
            assert!(got.starts_with('s'), "{ip} round {round}: {got}");
            stick(&mut map, &ip.to_string(), got);
        }
        seen_addrs.insert(ip);
    }
    assert_spread("client_ip", &map, 3);
}

//! Target health: active probes eject and restore a target, passive ejection after
//! consecutive failures (5xx, resets) and its cooldown, no healthy target → 503 at once,
//! and the circuit breaker.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use raftgate_chaos::upstream::Mode;
use raftgate_chaos::TestUpstream;

use crate::{
    eventually, expect_error, metric, send, serial, served_by, upstream, upstream_body, with,
    Gateway,
};

/// Upstream `id` over `servers` with extra fields, and route `/{id}` to it.
async fn upstream_and_route(gw: &Gateway, id: &str, servers: &[&TestUpstream], extra: Value) {
    let mut body = upstream_body(id, servers);
    for (k, v) in extra.as_object().expect("extra fields").clone() {
        body = with(body, &k, v);
    }
    gw.create("upstreams", body).await;
    gw.create(
        "routes",
        json!({"id": id, "path": format!("/{id}"), "target": {"upstream": id}}),
    )
    .await;
}

/// Sends `n` GETs to `path`; the answers as server names or `"STATUS code"`.
async fn burst(gw: &Gateway, path: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(served_by(send(&format!("GET {path}"), gw.get(path)).await).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_checks_eject_an_unhealthy_target_and_bring_it_back() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let a = upstream("a").await;
    let b = upstream("b").await;
    let active = json!({"path": "/health", "interval_ms": 200, "timeout_ms": 150,
        "healthy_threshold": 2, "unhealthy_threshold": 2});
    upstream_and_route(
        &gw,
        "hc",
        &[&a, &b],
        json!({"health_check": {"active": active}}),
    )
    .await;

    eventually(
        "both targets to take traffic",
        Duration::from_secs(5),
        || async {
            let got = burst(&gw, "/hc", 6).await;
            if got.iter().any(|s| s == "a") && got.iter().any(|s| s == "b") {
                Ok(())
            } else {
                Err(format!("answers {got:?}"))
            }
        },
    )
    .await;
    assert!(a.health_probes() > 0, "no probe reached target a");

    a.set_healthy(false);
    let t0 = Instant::now();
    // 200 ms × 2 failures, plus a probe in flight and slack for a loaded machine.
    eventually("target a to be ejected", Duration::from_secs(3), || async {
        let before = a.requests();
        let got = burst(&gw, "/hc", 6).await;
        if a.requests() == before && got.iter().all(|s| s == "b") {
            Ok(())
        } else {
            Err(format!("answers {got:?}"))
        }
    })
    .await;
    let ejected_after = t0.elapsed();
    let before = a.requests();
    let got = burst(&gw, "/hc", 20).await;
    assert!(got.iter().all(|s| s == "b"), "after ejection: {got:?}");
    assert_eq!(a.requests(), before, "an ejected target still got traffic");
    let target = a.addr().to_string();
    eventually(
        "the health gauge of a to read 0",
        Duration::from_secs(10),
        || async {
            let m = gw.metrics().await;
            let labels = [("upstream", "hc"), ("target", target.as_str())];
            let healthy = metric(&m, "raftgate_upstream_target_healthy", &labels);
            let present = m.contains(&format!("target=\"{target}\""));
            if present && healthy == 0.0 {
                Ok(())
            } else {
                Err(format!("present {present}, value {healthy}"))
            }
        },
    )
    .await;

    a.set_healthy(true);
    let t1 = Instant::now();
    eventually(
        "target a to take traffic again",
        Duration::from_secs(3),
        || async {
            let got = burst(&gw, "/hc", 6).await;
            if got.iter().any(|s| s == "a") {
                Ok(())
            } else {
                Err(format!("answers {got:?}"))
            }
        },
    )
    .await;
    eprintln!(
        "active health: ejected after {ejected_after:?}, back after {:?}",
        t1.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_checks_eject_after_consecutive_failures_until_the_cooldown() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let passive = json!({"passive": {"max_failures": 3, "cooldown_ms": 3000}});
    let no_retry = json!({"attempts": 0});
    let bad500 = upstream("bad500").await;
    let good1 = upstream("good1").await;
    let bad_reset = upstream("badreset").await;
    let good2 = upstream("good2").await;
    bad500.set_mode(Mode::Status(500));
    bad_reset.set_mode(Mode::Reset);
    for (id, bad, good) in [("p500", &bad500, &good1), ("preset", &bad_reset, &good2)] {
        upstream_and_route(
            &gw,
            id,
            &[bad, good],
            json!({"health_check": passive, "retries": no_retry}),
        )
        .await;
    }

    for (id, bad, good_name) in [("p500", &bad500, "good1"), ("preset", &bad_reset, "good2")] {
        let path = format!("/{id}");
        let t0 = Instant::now();
        let got = burst(&gw, &path, 20).await;
        let failures = got.iter().filter(|s| *s != good_name).count() as u64;
        assert!(
            (1..=3).contains(&bad.requests()),
            "{id}: the failing target got {} requests of 20 (max_failures 3): {got:?}",
            bad.requests()
        );
        assert_eq!(failures, bad.requests(), "{id}: answers {got:?}");
        let got = burst(&gw, &path, 10).await;
        assert!(
            t0.elapsed() < Duration::from_millis(2500),
            "too slow to check the cooldown"
        );
        assert!(
            got.iter().all(|s| s == good_name),
            "{id}: still failing during the cooldown: {got:?}"
        );
    }
    assert!(bad500.requests() <= 3 && bad_reset.requests() <= 3);

    // After the cooldown, a target that works again is back.
    bad500.set_mode(Mode::Normal);
    eventually(
        "bad500 back after its cooldown",
        Duration::from_secs(10),
        || async {
            let got = burst(&gw, "/p500", 4).await;
            if got.iter().any(|s| s == "bad500") {
                Ok(())
            } else {
                Err(format!("answers {got:?}"))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_healthy_target_answers_503_at_once() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let dead = upstream("dead").await;
    // Anything but /health would hang: a gateway that still tried the target would be slow.
    dead.set_mode(Mode::Hang);
    dead.set_healthy(false);
    let active = json!({"path": "/health", "interval_ms": 200, "timeout_ms": 150,
        "healthy_threshold": 1, "unhealthy_threshold": 1});
    upstream_and_route(
        &gw,
        "dead",
        &[&dead],
        json!({"health_check": {"active": active},
               "timeouts": {"connect_ms": 1000, "per_try_ms": 1000, "total_ms": 2000},
               "retries": {"attempts": 0}}),
    )
    .await;
    eventually(
        "the dead target to be ejected",
        Duration::from_secs(10),
        || async {
            match served_by(send("GET /dead", gw.get("/dead")).await)
                .await
                .as_str()
            {
                "503 no_healthy_upstream" => Ok(()),
                other => Err(other.to_string()),
            }
        },
    )
    .await;
    let before = dead.requests();
    for i in 0..5 {
        let t0 = Instant::now();
        let resp = send("GET /dead", gw.get("/dead")).await;
        expect_error(&format!("request {i}"), resp, 503, "no_healthy_upstream").await;
        assert!(
            t0.elapsed() < Duration::from_millis(300),
            "503 took {:?}",
            t0.elapsed()
        );
    }
    assert_eq!(
        dead.requests(),
        before,
        "requests reached an ejected target"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_opens_then_closes_after_a_good_trial() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let flaky = upstream("flaky").await;
    flaky.set_mode(Mode::Status(500));
    upstream_and_route(
        &gw,
        "cb",
        &[&flaky],
        json!({"circuit_breaker": {"failure_ratio": 0.5, "min_calls": 4, "window_ms": 10000, "open_ms": 1500},
               "retries": {"attempts": 0}}),
    )
    .await;
    let first = burst(&gw, "/cb", 4).await;
    assert!(first.iter().all(|s| s.starts_with("500")), "{first:?}");
    assert_eq!(flaky.requests(), 4);

    let t0 = Instant::now();
    let mut gateway_503 = 0;
    for _ in 0..10 {
        let resp = send("GET /cb", gw.get("/cb")).await;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status == 503 && body.pointer("/error/code").is_some() {
            gateway_503 += 1;
        }
    }
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "the open circuit was slow"
    );
    assert!(
        flaky.requests() <= 5 && gateway_503 >= 9,
        "the circuit did not open: the target got {} requests, {gateway_503} of 10 answers were the gateway's 503",
        flaky.requests()
    );

    // After open_ms one trial call decides; a healthy target closes the circuit.
    flaky.set_mode(Mode::Normal);
    eventually("the circuit to close", Duration::from_secs(10), || async {
        match served_by(send("GET /cb", gw.get("/cb")).await)
            .await
            .as_str()
        {
            "flaky" => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    let got = burst(&gw, "/cb", 5).await;
    assert!(got.iter().all(|s| s == "flaky"), "after closing: {got:?}");
}

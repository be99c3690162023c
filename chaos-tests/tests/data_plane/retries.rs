//! Retries and timeouts: idempotent requests retried on listed statuses, timeouts and
//! connect errors; POST only on connect errors; per-try and total timeouts; 502 when
//! nothing listens.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use raftgate_chaos::upstream::Mode;

use crate::{
    eventually, expect_error, metric, send, serial, served_by, upstream, upstream_body, with,
    Gateway,
};

async fn upstream_and_route(gw: &Gateway, id: &str, body: Value, extra: Value) {
    let mut body = with(body, "id", json!(id));
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

/// A loopback address where nothing listens (bound, then closed).
async fn closed_port() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    drop(l);
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_is_retried_on_503_and_post_is_not() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let bad = upstream("bad").await;
    let good = upstream("good").await;
    bad.set_mode(Mode::Status(503));
    upstream_and_route(
        &gw,
        "r",
        upstream_body("r", &[&bad, &good]),
        json!({"retries": {"attempts": 1, "on_statuses": [503], "backoff_ms": 10}}),
    )
    .await;

    for i in 0..10 {
        let got = served_by(send("GET /r", gw.get("/r")).await).await;
        assert_eq!(got, "good", "GET {i} was not retried on the other target");
    }
    let retried = bad.requests();
    assert!(
        retried >= 1,
        "no GET ever tried the failing target; the test proves nothing"
    );
    eventually("the retries counter to move", Duration::from_secs(5), || async {
        let n = metric(&gw.metrics().await, "raftgate_upstream_retries_total", &[("upstream", "r")]);
        if n >= retried as f64 {
            Ok(())
        } else {
            Err(format!("raftgate_upstream_retries_total{{upstream=\"r\"}} = {n}, {retried} retries made"))
        }
    })
    .await;

    let (bad0, good0) = (bad.requests(), good.requests());
    let (mut refused, mut served) = (0, 0);
    for i in 0..10 {
        let resp = send(
            "POST /r",
            gw.req(Method::POST, "/r").body(format!("order {i}")),
        )
        .await;
        match resp.status().as_u16() {
            503 => refused += 1,
            200 => served += 1,
            s => panic!("POST {i}: unexpected {s}"),
        }
    }
    assert!(
        refused >= 1,
        "no POST hit the failing target; the test proves nothing"
    );
    assert_eq!(
        (bad.requests() - bad0, good.requests() - good0),
        (refused, served),
        "each POST must reach exactly one target once (a 503 is not retried)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_are_retried_for_every_method_and_502_when_nothing_listens() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let good = upstream("good").await;
    let closed = closed_port().await;
    upstream_and_route(
        &gw,
        "conn",
        json!({"targets": [{"address": closed, "weight": 1}, {"address": good.addr().to_string(), "weight": 1}]}),
        json!({"retries": {"attempts": 1, "backoff_ms": 10}, "timeouts": {"connect_ms": 500, "per_try_ms": 5000, "total_ms": 10000}}),
    )
    .await;
    for i in 0..6 {
        let got = served_by(send("GET /conn", gw.get("/conn")).await).await;
        assert_eq!(got, "good", "GET {i}");
        let resp = send("POST /conn", gw.req(Method::POST, "/conn").body("x")).await;
        assert_eq!(
            served_by(resp).await,
            "good",
            "POST {i}: a connect error must be retried"
        );
    }
    assert_eq!(
        good.requests(),
        12,
        "every request reached the live target exactly once"
    );

    upstream_and_route(
        &gw,
        "nowhere",
        json!({"targets": [{"address": closed_port().await, "weight": 1}]}),
        json!({"retries": {"attempts": 0}}),
    )
    .await;
    let t0 = Instant::now();
    let resp = send("GET /nowhere", gw.get("/nowhere")).await;
    expect_error("GET /nowhere", resp, 502, "upstream_unavailable").await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_try_timeout_retries_to_a_healthy_target_and_504s_in_bounds() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let hang = upstream("hang").await;
    let good = upstream("good").await;
    let hang2 = upstream("hang2").await;
    let hang3 = upstream("hang3").await;
    for h in [&hang, &hang2, &hang3] {
        h.set_mode(Mode::Hang);
    }
    let timeouts = |per_try: u64, total: u64| json!({"connect_ms": 1000, "per_try_ms": per_try, "total_ms": total});
    upstream_and_route(
        &gw,
        "mix",
        upstream_body("mix", &[&hang, &good]),
        json!({"timeouts": timeouts(500, 5000), "retries": {"attempts": 1, "backoff_ms": 10}}),
    )
    .await;
    upstream_and_route(
        &gw,
        "only",
        upstream_body("only", &[&hang2]),
        json!({"timeouts": timeouts(500, 10000), "retries": {"attempts": 2, "backoff_ms": 10}}),
    )
    .await;
    upstream_and_route(
        &gw,
        "total",
        upstream_body("total", &[&hang3]),
        json!({"timeouts": timeouts(400, 1000), "retries": {"attempts": 5, "backoff_ms": 10}}),
    )
    .await;

    let mut slowest = Duration::ZERO;
    for i in 0..6 {
        let t0 = Instant::now();
        let got = served_by(send("GET /mix", gw.get("/mix")).await).await;
        let took = t0.elapsed();
        assert_eq!(got, "good", "GET {i} after {took:?}");
        assert!(took < Duration::from_secs(3), "GET {i} took {took:?}");
        slowest = slowest.max(took);
    }
    assert!(
        hang.requests() >= 1,
        "no try went to the hanging target; the test proves nothing"
    );
    assert!(
        slowest >= Duration::from_millis(450),
        "a timed-out try returned early: {slowest:?}"
    );

    let t0 = Instant::now();
    let resp = send("GET /only", gw.get("/only")).await;
    let took = t0.elapsed();
    expect_error("GET /only", resp, 504, "upstream_timeout").await;
    assert_eq!(hang2.requests(), 3, "GET: 1 try + 2 retries on timeout");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
        "3 tries of 500 ms took {took:?}"
    );

    let t0 = Instant::now();
    let resp = send("POST /only", gw.req(Method::POST, "/only").body("x")).await;
    let took = t0.elapsed();
    expect_error("POST /only", resp, 504, "upstream_timeout").await;
    assert_eq!(
        hang2.requests(),
        4,
        "a POST that timed out must not be retried"
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(2),
        "one try of 500 ms took {took:?}"
    );

    let t0 = Instant::now();
    let resp = send("GET /total", gw.get("/total")).await;
    let took = t0.elapsed();
    expect_error("GET /total", resp, 504, "upstream_timeout").await;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1800),
        "total_ms 1000 must bound 6 tries of 400 ms: took {took:?}"
    );
}

//! Protocols and streaming: WebSocket through the proxy, h2c prior knowledge downstream,
//! HTTP/2 to the upstream, and large bodies both ways without buffering them whole.

use std::time::{Duration, Instant};

use futures::{stream, SinkExt, StreamExt};
use reqwest::{Body, Method, Version};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

use crate::{data_client, echo, send, serial, upstream, upstream_body, Gateway};

async fn setup(gw: &Gateway, protocol: &str) -> raftgate_chaos::TestUpstream {
    let server = upstream("proto").await;
    let mut u = upstream_body("u", &[&server]);
    u["protocol"] = json!(protocol);
    gw.create("upstreams", u).await;
    gw.create(
        "routes",
        json!({"id": "all", "path": "/", "target": {"upstream": "u"}}),
    )
    .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_the_proxy() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let server = setup(&gw, "http1").await;
    let url = format!("ws://{}/ws", gw.http_addr());
    let (mut ws, resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(&url),
    )
    .await
    .expect("the WebSocket handshake finishes in time")
    .unwrap_or_else(|e| panic!("WebSocket handshake through {url}: {e}"));
    assert_eq!(resp.status(), 101);
    assert!(
        resp.headers().contains_key("x-request-id"),
        "the 101 carries a request id"
    );

    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sent = [
        Message::text("hello through raftgate"),
        Message::binary(big.clone()),
        Message::text("ünïcödé ✓"),
    ];
    for msg in sent {
        ws.send(msg.clone())
            .await
            .expect("send a WebSocket message");
        let back = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match ws.next().await {
                    Some(Ok(m)) if m.is_text() || m.is_binary() => return Some(m),
                    Some(Ok(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await
        .expect("the echo arrives in time");
        assert_eq!(
            back.as_ref(),
            Some(&msg),
            "echo of a {}-byte message",
            msg.len()
        );
    }
    ws.close(None).await.expect("close");
    assert_eq!(server.requests(), 1, "one upgrade request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_downstream_and_http2_upstream() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let server = setup(&gw, "http1").await;
    let h2 = data_client()
        .http2_prior_knowledge()
        .build()
        .expect("h2c client");

    let resp = send("h2c GET", h2.get(gw.url("/echo?q=1"))).await;
    assert_eq!(
        resp.version(),
        Version::HTTP_2,
        "the gateway answered h2c with HTTP/2"
    );
    let e = echo("h2c GET", resp).await;
    assert_eq!(e["version"], "HTTP/1.1", "protocol http1 upstream: {e}");
    assert_eq!(e["query"], "q=1");

    let resp = send(
        "h2c POST",
        h2.request(Method::POST, gw.url("/echo"))
            .body(vec![7u8; 100_000]),
    )
    .await;
    assert_eq!(echo("h2c POST", resp).await["body_bytes"], 100_000);

    // Many streams on one connection at once.
    let calls = (0..20).map(|i| {
        let req = h2.get(gw.url(&format!("/delay/100?i={i}")));
        async move { req.send().await.map(|r| (r.version(), r.status())) }
    });
    let t0 = Instant::now();
    for (i, r) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        let (version, status) = r.unwrap_or_else(|e| panic!("h2c stream {i}: {e}"));
        assert_eq!(
            (version, status.as_u16()),
            (Version::HTTP_2, 200),
            "stream {i}"
        );
    }
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "20 × 100 ms streams were serialised: {:?}",
        t0.elapsed()
    );
    drop(server);

    // The same over an HTTP/2 upstream.
    let server2 = upstream("h2up").await;
    let mut u = upstream_body("u2", &[&server2]);
    u["protocol"] = json!("http2");
    gw.create("upstreams", u).await;
    gw.create(
        "routes",
        json!({"id": "h2r", "path": "/h2", "target": {"upstream": "u2"}}),
    )
    .await;
    for (what, client) in [("HTTP/1.1 client", &gw.http), ("h2c client", &h2)] {
        let e = echo(what, send(what, client.get(gw.url("/h2/x"))).await).await;
        assert_eq!(
            e["version"], "HTTP/2.0",
            "{what}: the upstream should see HTTP/2: {e}"
        );
        assert_eq!(e["server"], "h2up");
    }
    let resp = send(
        "POST over h2 upstream",
        gw.req(Method::POST, "/h2/x").body(vec![1u8; 300_000]),
    )
    .await;
    assert_eq!(
        echo("POST over h2 upstream", resp).await["body_bytes"],
        300_000
    );
}

/// Peak resident set (`VmHWM`) of a process, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"))
}

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_in_bounded_memory() {
    let _serial = serial().await;
    // No default body limit (10 MiB): the upload below is 256 MiB.
    let nodes = raftgate_chaos::ClusterBuilder::new(1).env("RAFTGATE_MAX_REQUEST_BODY_BYTES", "0");
    let gw = Gateway::start_with(nodes).await;
    let _server = setup(&gw, "http1").await;
    let client = data_client()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client");
    // Warm up (first connection, compiled config) before taking the baseline.
    echo("warm-up", send("warm-up", gw.get("/echo")).await).await;
    let pid = gw.pid();
    let hwm0 = vm_hwm_kib(pid);

    let down = 512 * MIB;
    let t0 = Instant::now();
    let resp = send("download", client.get(gw.url(&format!("/bytes/{down}")))).await;
    assert_eq!(resp.status(), 200);
    let mut got = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("download broke off after {got} bytes: {e}"));
        got += chunk.len() as u64;
    }
    assert_eq!(got, down, "downloaded bytes");
    let download_took = t0.elapsed();

    let up = 256 * MIB;
    let chunk = 64 * 1024usize;
    let make = move |i: u64| vec![(i % 251) as u8; chunk];
    let mut hasher = Sha256::new();
    for i in 0..up / chunk as u64 {
        hasher.update(make(i));
    }
    let want = hex::encode(hasher.finalize());
    let pieces = stream::iter(0..up / chunk as u64).map(move |i| Ok::<_, std::io::Error>(make(i)));
    let t0 = Instant::now();
    let resp = send(
        "upload",
        client
            .request(Method::POST, gw.url("/upload"))
            .body(Body::wrap_stream(pieces)),
    )
    .await;
    let v: Value = {
        let status = resp.status();
        let text = resp.text().await.expect("upload answer");
        assert_eq!(status, 200, "upload: {text}");
        serde_json::from_str(&text).expect("upload answer is JSON")
    };
    assert_eq!(v["bytes"], up, "uploaded bytes: {v}");
    assert_eq!(v["sha256"], want.as_str(), "uploaded content: {v}");
    let upload_took = t0.elapsed();

    let hwm1 = vm_hwm_kib(pid);
    eprintln!(
        "streaming: download {down} B in {download_took:?}, upload {up} B in {upload_took:?}, \
         gateway VmHWM {hwm0} KiB -> {hwm1} KiB"
    );
    assert!(
        hwm1.saturating_sub(hwm0) < 64 * 1024,
        "the gateway's peak RSS grew by {} KiB while streaming 768 MiB",
        hwm1 - hwm0
    );
}

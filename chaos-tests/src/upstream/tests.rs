//! The test upstream against real clients: reqwest (HTTP/1.1, h2c, TLS with ALPN) and
//! tokio-tungstenite.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

use super::*;

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

async fn upstream(name: &str) -> TestUpstream {
    TestUpstream::start(UpstreamOptions::named(name))
        .await
        .expect("start upstream")
}

async fn json(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let body = res.json().await.expect("JSON body");
    (status, body)
}

#[tokio::test]
async fn echo_reports_the_request() {
    let up = upstream("echo-1").await;
    let res = client()
        .post(format!("{}/some/path?a=1&b=two", up.url()))
        .header("x-multi", "one")
        .header("X-Single", "v")
        .header("x-multi", "two")
        .body("hello")
        .send()
        .await
        .unwrap();
    let (status, v) = json(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["server"], "echo-1");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/some/path");
    assert_eq!(v["query"], "a=1&b=two");
    assert_eq!(v["version"], "HTTP/1.1");
    assert_eq!(v["headers"]["x-multi"], "one, two");
    assert_eq!(v["headers"]["x-single"], "v");
    assert_eq!(v["headers"]["host"], up.addr().to_string());
    assert_eq!(v["body_bytes"], 5);
    assert_eq!(up.requests(), 1);
    assert_eq!(up.name(), "echo-1");
}

#[tokio::test]
async fn status_bench_and_delay_endpoints() {
    let up = upstream("u").await;
    let c = client();
    let (status, v) = json(
        c.get(format!("{}/status/418", up.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status.as_u16(), 418);
    assert_eq!(v["status"], 418);
    let res = c
        .get(format!("{}/status/42", up.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    let res = c.get(format!("{}/bench", up.url())).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "ok");

    let start = Instant::now();
    let res = c
        .get(format!("{}/delay/150", up.url()))
        .send()
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(150));
    let (status, v) = json(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["path"], "/delay/150");
    assert_eq!(up.requests(), 4);
}

#[tokio::test]
async fn bytes_streams_the_requested_count() {
    let up = upstream("u").await;
    let c = client();
    for n in [0u64, 1, 65_536, 65_537, 3_000_001] {
        let res = c
            .get(format!("{}/bytes/{n}", up.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.content_length(),
            Some(n),
            "content-length of /bytes/{n}"
        );
        let body = res.bytes().await.unwrap();
        assert_eq!(body.len() as u64, n);
        assert!(body.iter().all(|&b| b == b'0'));
    }
}

#[tokio::test]
async fn upload_hashes_a_streamed_body() {
    let up = upstream("u").await;
    // 3 MiB + 7 in uneven chunks, sent with chunked encoding.
    let chunks: Vec<Vec<u8>> = (0..49u32)
        .map(|i| {
            (0..(64 * 1024 + i as usize % 3))
                .map(|j| (i as usize * 31 + j) as u8)
                .collect()
        })
        .collect();
    let mut hasher = Sha256::new();
    let mut total = 0usize;
    for c in &chunks {
        hasher.update(c);
        total += c.len();
    }
    let expected = hex::encode(hasher.finalize());
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let res = client()
        .post(format!("{}/upload", up.url()))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let (status, v) = json(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["bytes"], total as u64);
    assert_eq!(v["sha256"], expected);

    let res = client()
        .get(format!("{}/upload", up.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn h2c_prior_knowledge() {
    let up = upstream("h2").await;
    let c = Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let res = c
        .get(format!("{}/x?q=1", up.url()))
        .header("x-h", "a")
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    let (_, v) = json(res).await;
    assert_eq!(v["version"], "HTTP/2.0");
    assert_eq!(v["headers"]["x-h"], "a");
    let body = c
        .get(format!("{}/bytes/200000", up.url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), 200_000);
}

#[tokio::test]
async fn tls_with_self_signed_cert_negotiates_h2_and_http1() {
    let (cert, key) = self_signed(&["localhost", "127.0.0.1"]);
    let up = TestUpstream::start(UpstreamOptions::named("tls").tls(&cert, &key))
        .await
        .unwrap();
    assert!(up.url().starts_with("https://"));
    let root = reqwest::Certificate::from_pem(cert.as_bytes()).unwrap();
    let h2 = Client::builder()
        .add_root_certificate(root.clone())
        .build()
        .unwrap();
    let res = h2.get(format!("{}/e", up.url())).send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2, "ALPN h2");
    assert_eq!(json(res).await.1["version"], "HTTP/2.0");
    let h1 = Client::builder()
        .add_root_certificate(root)
        .http1_only()
        .build()
        .unwrap();
    let res = h1.get(format!("{}/e", up.url())).send().await.unwrap();
    assert_eq!(json(res).await.1["version"], "HTTP/1.1");

    // Without the root, verification fails.
    let untrusted = Client::new().get(format!("{}/e", up.url())).send().await;
    assert!(untrusted.is_err());
}

#[tokio::test]
async fn tls_with_a_custom_ca() {
    let pki = ca_and_leaf(&["localhost", "127.0.0.1"]);
    let up = TestUpstream::start(UpstreamOptions::named("ca").tls(&pki.cert_pem, &pki.key_pem))
        .await
        .unwrap();
    let c = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let (status, v) = json(c.get(format!("{}/e", up.url())).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["server"], "ca");
}

#[tokio::test]
async fn websocket_echo() {
    let up = upstream("ws").await;
    let (mut ws, res) = tokio_tungstenite::connect_async(format!("ws://{}/ws", up.addr()))
        .await
        .expect("websocket handshake");
    assert_eq!(res.status().as_u16(), 101);
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    ws.close(None).await.unwrap();

    // A plain GET is not a handshake.
    let res = client()
        .get(format!("{}/ws", up.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn modes_fail_every_request_but_health() {
    let up = upstream("m").await;
    let url = format!("{}/anything", up.url());
    let health = format!("{}/health", up.url());

    up.set_mode(Mode::Status(503));
    assert_eq!(up.mode(), Mode::Status(503));
    let (status, v) = json(client().get(&url).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["status"], 503);
    let res = client().get(&health).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    up.set_mode(Mode::Hang);
    let short = Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = short.get(&url).send().await.unwrap_err();
    assert!(err.is_timeout(), "hang: {err:?}");
    assert_eq!(
        short.get(&health).send().await.unwrap().status(),
        StatusCode::OK
    );

    up.set_mode(Mode::Reset);
    let err = client().get(&url).send().await.unwrap_err();
    assert!(!err.is_timeout(), "reset: {err:?}");
    let h2 = Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let err = h2.get(&url).send().await.unwrap_err();
    assert!(!err.is_timeout(), "reset over h2: {err:?}");

    up.set_mode(Mode::Normal);
    assert_eq!(
        client().get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(up.requests(), 5);
    assert_eq!(up.health_probes(), 2);
}

#[tokio::test]
async fn health_toggles_and_is_counted_apart() {
    let up = upstream("h").await;
    let c = client();
    let url = format!("{}/health", up.url());
    let (status, v) = json(c.get(&url).send().await.unwrap()).await;
    assert_eq!(
        (status, v["ok"].clone()),
        (StatusCode::OK, Value::Bool(true))
    );
    up.set_healthy(false);
    let (status, v) = json(c.get(&url).send().await.unwrap()).await;
    assert_eq!(
        (status, v["ok"].clone()),
        (StatusCode::SERVICE_UNAVAILABLE, Value::Bool(false))
    );
    up.set_healthy(true);
    assert_eq!(c.get(&url).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(up.health_probes(), 3);
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn stop_closes_the_port_and_it_can_be_bound_again() {
    let mut up = upstream("s").await;
    let addr = up.addr();
    // A hung request holds a connection open; stop must still finish.
    up.set_mode(Mode::Hang);
    let hung = tokio::spawn({
        let url = format!("{}/x", up.url());
        async move { client().get(url).send().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    up.stop().await;
    up.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert!(
        hung.await.unwrap().is_err(),
        "the hung request ends with an error"
    );

    let again = TestUpstream::start(UpstreamOptions::named("s2").addr(addr))
        .await
        .unwrap();
    let (_, v) = json(
        client()
            .get(format!("{}/x", again.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["server"], "s2");
}

#[test]
#[should_panic(expected = "not an HTTP status")]
fn status_mode_rejects_non_statuses() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let up = rt.block_on(upstream("p"));
    up.set_mode(Mode::Status(42));
}

//! Route policies and request decoration: IP restriction, CORS, body limits, header
//! rules both ways, forwarding headers and request ids, metrics and the access log.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures::stream;
use reqwest::header::{HeaderMap, AUTHORIZATION, HOST};
use reqwest::{Body, Method, StatusCode};
use serde_json::{json, Value};

use raftgate_chaos::ClusterBuilder;

use crate::{
    data_client, echo, eventually, expect_error, has_metric, metric, seen, send, serial, upstream,
    upstream_body, Gateway,
};

/// Route `id` at `/{id}` to upstream `u` with these policies.
async fn route(gw: &Gateway, id: &str, policies: Value) {
    gw.create(
        "routes",
        json!({"id": id, "path": format!("/{id}"), "target": {"upstream": "u"}, "policies": policies}),
    )
    .await;
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_restriction_allows_and_denies_by_client_address() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let server = upstream("ip").await;
    gw.create("upstreams", upstream_body("u", &[&server])).await;
    route(
        &gw,
        "deny-local",
        json!([{"ip_restriction": {"deny": ["127.0.0.1/32"]}}]),
    )
    .await;
    route(
        &gw,
        "allow-ten",
        json!([{"ip_restriction": {"allow": ["10.0.0.0/8"]}}]),
    )
    .await;
    route(
        &gw,
        "allow-lo",
        json!([{"ip_restriction": {"allow": ["127.0.0.0/8"], "deny": ["127.0.0.2/32"]}}]),
    )
    .await;

    // Headers claiming another address must not fool it.
    let spoof = |path: &str| {
        gw.get(path)
            .header("x-forwarded-for", "10.1.2.3")
            .header("x-real-ip", "10.1.2.3")
    };
    expect_error(
        "127.0.0.1 denied",
        send("deny", spoof("/deny-local")).await,
        403,
        "ip_denied",
    )
    .await;
    expect_error(
        "not in allow",
        send("allow", spoof("/allow-ten")).await,
        403,
        "ip_denied",
    )
    .await;
    echo(
        "127.0.0.1 allowed",
        send("allow-lo", gw.get("/allow-lo")).await,
    )
    .await;
    let from2 = data_client()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .expect("client");
    let resp = send("from 127.0.0.2", from2.get(gw.url("/allow-lo"))).await;
    expect_error(
        "127.0.0.2 denied inside an allowed range",
        resp,
        403,
        "ip_denied",
    )
    .await;
    let resp = send("from 127.0.0.2", from2.get(gw.url("/deny-local"))).await;
    echo("127.0.0.2 is not 127.0.0.1", resp).await;
    assert_eq!(
        server.requests(),
        2,
        "denied requests must not reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_actual_and_denied() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let server = upstream("cors").await;
    gw.create("upstreams", upstream_body("u", &[&server])).await;
    let cors = json!({"cors": {"allow_origins": ["https://app.example"], "allow_methods": ["GET", "POST"],
        "allow_headers": ["x-custom"], "expose_headers": ["x-trace"], "max_age_s": 600, "allow_credentials": true}});
    route(&gw, "c", json!([cors])).await;
    let app = "https://app.example";

    let preflight = gw
        .req(Method::OPTIONS, "/c/items")
        .header("origin", app)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-custom");
    let resp = send("preflight", preflight).await;
    assert!(
        matches!(resp.status(), StatusCode::NO_CONTENT | StatusCode::OK),
        "preflight: {}",
        resp.status()
    );
    let h = resp.headers();
    assert_eq!(
        header(h, "access-control-allow-origin").as_deref(),
        Some(app)
    );
    let methods = header(h, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "allow-methods: {methods:?}");
    let allowed = header(h, "access-control-allow-headers")
        .unwrap_or_default()
        .to_lowercase();
    assert!(allowed.contains("x-custom"), "allow-headers: {allowed:?}");
    assert_eq!(header(h, "access-control-max-age").as_deref(), Some("600"));
    assert_eq!(
        header(h, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert!(
        header(h, "x-request-id").is_some(),
        "a preflight has a request id too"
    );
    assert_eq!(
        server.requests(),
        0,
        "the gateway answers preflights itself"
    );

    let resp = send("actual", gw.get("/c/items").header("origin", app)).await;
    let h = resp.headers().clone();
    echo("actual CORS request", resp).await;
    assert_eq!(
        header(&h, "access-control-allow-origin").as_deref(),
        Some(app)
    );
    let expose = header(&h, "access-control-expose-headers")
        .unwrap_or_default()
        .to_lowercase();
    assert!(expose.contains("x-trace"), "expose-headers: {expose:?}");
    assert_eq!(
        header(&h, "access-control-allow-credentials").as_deref(),
        Some("true")
    );

    let evil = "https://evil.example";
    let preflight = gw
        .req(Method::OPTIONS, "/c/items")
        .header("origin", evil)
        .header("access-control-request-method", "POST");
    expect_error(
        "preflight from evil",
        send("evil preflight", preflight).await,
        403,
        "cors_denied",
    )
    .await;
    let resp = send("evil actual", gw.get("/c/items").header("origin", evil)).await;
    assert_eq!(header(resp.headers(), "access-control-allow-origin"), None);
    expect_error("actual from evil", resp, 403, "cors_denied").await;
    assert_eq!(
        server.requests(),
        1,
        "only the allowed actual request reached the upstream"
    );

    // No Origin: not a CORS request, served plainly.
    let resp = send("no origin", gw.get("/c/items")).await;
    assert_eq!(header(resp.headers(), "access-control-allow-origin"), None);
    echo("no origin", resp).await;
}

/// A chunked body (no Content-Length) of `n` bytes in 256-byte pieces.
fn chunked(n: usize) -> Body {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = (0..n.div_ceil(256))
        .map(|i| Ok(vec![b'x'; 256.min(n - i * 256)]))
        .collect();
    Body::wrap_stream(stream::iter(pieces))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limit_refuses_large_bodies_with_and_without_content_length() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let server = upstream("limit").await;
    gw.create("upstreams", upstream_body("u", &[&server])).await;
    route(&gw, "small", json!([{"body_limit": {"max_bytes": 1024}}])).await;

    let post = |body: Body| gw.req(Method::POST, "/small").body(body);
    let e = echo(
        "1024 bytes",
        send("at the limit", post(Body::from(vec![b'x'; 1024]))).await,
    )
    .await;
    assert_eq!(e["body_bytes"], 1024);
    let e = echo(
        "chunked under the limit",
        send("chunked 1000", post(chunked(1000))).await,
    )
    .await;
    assert_eq!(e["body_bytes"], 1000);
    let reached = server.requests();

    let resp = send("1025 bytes", post(Body::from(vec![b'x'; 1025]))).await;
    expect_error("Content-Length 1025", resp, 413, "body_too_large").await;
    assert_eq!(
        server.requests(),
        reached,
        "a body known to be too large reached the upstream"
    );

    match post(chunked(8192)).send().await {
        Ok(resp) => expect_error("chunked 8192 bytes", resp, 413, "body_too_large").await,
        Err(e) => panic!("chunked 8192 bytes: no 413 answer: {e:?}"),
    };
    // A long chunked body over HTTP/2 (an early 413 ends only the stream, so the client
    // surely reads it).
    let h2 = data_client()
        .http2_prior_knowledge()
        .build()
        .expect("h2c client");
    let req = h2.post(gw.url("/small")).body(chunked(1 << 20));
    let resp = send("chunked 1 MiB over h2c", req).await;
    expect_error("chunked 1 MiB over h2c", resp, 413, "body_too_large").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rules_add_remove_and_rename_both_ways() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let server = upstream("hdr").await;
    gw.create("upstreams", upstream_body("u", &[&server])).await;
    route(
        &gw,
        "h1",
        json!([{"headers": {
            "request_add": {"x-added": "by-gateway"},
            "request_remove": ["x-drop"],
            "request_rename": {"x-old": "x-new"},
            "response_add": {"x-resp-added": "yes"},
            "response_remove": ["content-type"],
        }}]),
    )
    .await;
    route(
        &gw,
        "h2",
        json!([{"headers": {"response_rename": {"content-type": "x-upstream-content-type"}}}]),
    )
    .await;

    let req = gw
        .get("/h1")
        .header("x-drop", "secret")
        .header("x-old", "value-1")
        .header("x-kept", "k");
    let resp = send("GET /h1", req).await;
    let h = resp.headers().clone();
    let e = echo("GET /h1", resp).await;
    assert_eq!(seen(&e, "x-added"), Some("by-gateway"), "{e}");
    assert_eq!(seen(&e, "x-drop"), None, "{e}");
    assert_eq!(seen(&e, "x-old"), None, "{e}");
    assert_eq!(seen(&e, "x-new"), Some("value-1"), "{e}");
    assert_eq!(seen(&e, "x-kept"), Some("k"), "{e}");
    assert_eq!(header(&h, "x-resp-added").as_deref(), Some("yes"));
    assert_eq!(
        header(&h, "content-type"),
        None,
        "response_remove content-type: {h:?}"
    );

    let resp = send("GET /h2", gw.get("/h2")).await;
    let h = resp.headers().clone();
    let _ = resp.text().await;
    assert_eq!(header(&h, "content-type"), None, "{h:?}");
    assert_eq!(
        header(&h, "x-upstream-content-type").as_deref(),
        Some("application/json"),
        "{h:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_request_ids_and_hop_by_hop() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let server = upstream("fwd").await;
    let target = server.addr().to_string();
    gw.create("upstreams", upstream_body("u", &[&server])).await;
    let mut keep_host = upstream_body("uh", &[&server]);
    keep_host["preserve_host"] = json!(true);
    gw.create("upstreams", keep_host).await;
    route(&gw, "fwd", json!([])).await;
    gw.create(
        "routes",
        json!({"id": "keep", "path": "/keep", "target": {"upstream": "uh"}}),
    )
    .await;

    let req = gw
        .get("/fwd")
        .header(HOST, "client.example")
        .header("connection", "x-hop-secret")
        .header("x-hop-secret", "must-not-pass")
        .header("keep-alive", "timeout=5")
        .header("x-consumer-id", "forged")
        .header("x-tenant-id", "forged");
    let resp = send("GET /fwd", req).await;
    let rid = header(resp.headers(), "x-request-id").expect("every response has x-request-id");
    let e = echo("GET /fwd", resp).await;
    assert_eq!(seen(&e, "x-forwarded-for"), Some("127.0.0.1"), "{e}");
    assert_eq!(seen(&e, "x-forwarded-proto"), Some("http"), "{e}");
    assert_eq!(seen(&e, "x-forwarded-host"), Some("client.example"), "{e}");
    // RFC 7239 allows quoted values (`host="client.example"`): compare unquoted.
    let forwarded = seen(&e, "forwarded")
        .unwrap_or_default()
        .to_lowercase()
        .replace('"', "");
    for part in ["for=127.0.0.1", "proto=http", "host=client.example"] {
        assert!(
            forwarded.contains(part),
            "Forwarded lacks {part}: {forwarded:?}"
        );
    }
    assert_eq!(
        seen(&e, "x-request-id"),
        Some(rid.as_str()),
        "upstream and client see one id"
    );
    assert_eq!(
        seen(&e, "host"),
        Some(target.as_str()),
        "Host = the target's address: {e}"
    );
    for h in ["x-hop-secret", "keep-alive", "x-consumer-id", "x-tenant-id"] {
        assert_eq!(seen(&e, h), None, "{h} reached the upstream: {e}");
    }
    let connection = seen(&e, "connection").unwrap_or_default();
    assert!(!connection.contains("x-hop-secret"), "{e}");

    // A second request gets another id; a client's valid id is kept; an invalid one replaced.
    let rid2 = header(
        send("again", gw.get("/fwd")).await.headers(),
        "x-request-id",
    )
    .expect("id");
    assert_ne!(rid, rid2, "request ids must be unique");
    let resp = send(
        "own id",
        gw.get("/fwd").header("x-request-id", "chaos-req-0001"),
    )
    .await;
    assert_eq!(
        header(resp.headers(), "x-request-id").as_deref(),
        Some("chaos-req-0001")
    );
    let e = echo("own id", resp).await;
    assert_eq!(seen(&e, "x-request-id"), Some("chaos-req-0001"));
    let resp = send(
        "bad id",
        gw.get("/fwd").header("x-request-id", "has spaces in it"),
    )
    .await;
    let replaced = header(resp.headers(), "x-request-id").unwrap_or_default();
    assert!(
        !replaced.is_empty() && replaced != "has spaces in it",
        "invalid id kept: {replaced:?}"
    );
    let e = echo("bad id", resp).await;
    assert_eq!(seen(&e, "x-request-id"), Some(replaced.as_str()));
    // Errors from the gateway itself carry one as well.
    let resp = send(
        "no route",
        gw.get("/nowhere").header("x-request-id", "chaos-404"),
    )
    .await;
    assert_eq!(
        header(resp.headers(), "x-request-id").as_deref(),
        Some("chaos-404")
    );
    expect_error("no route", resp, 404, "no_route").await;

    let e = echo(
        "preserve_host",
        send("keep", gw.get("/keep").header(HOST, "client.example")).await,
    )
    .await;
    assert_eq!(seen(&e, "host"), Some("client.example"), "{e}");

    let from2 = data_client()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .expect("client");
    let e = echo(
        "from 127.0.0.2",
        send("from .2", from2.get(gw.url("/fwd"))).await,
    )
    .await;
    assert_eq!(seen(&e, "x-forwarded-for"), Some("127.0.0.2"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_access_log_record_requests() {
    let _serial = serial().await;
    let gw = Gateway::start_with(ClusterBuilder::new(1).env("RAFTGATE_ACCESS_LOG", "1")).await;
    let server = upstream("m").await;
    gw.create("upstreams", upstream_body("u", &[&server])).await;
    gw.tenant("tm").await;
    let key = gw.consumer_with_key("cm", "tm").await;
    gw.create(
        "routes",
        json!({"id": "rm", "tenant": "tm", "path": "/rm", "target": {"upstream": "u"}, "policies": [{"key_auth": {}}]}),
    )
    .await;
    let count = |m: &str, class: &str| {
        metric(
            m,
            "raftgate_http_requests_total",
            &[("route", "rm"), ("status_class", class)],
        )
    };
    let m0 = gw.metrics().await;
    let (ok0, err0) = (count(&m0, "2xx"), count(&m0, "4xx"));
    for _ in 0..3 {
        echo(
            "GET /rm",
            send(
                "GET /rm",
                gw.get("/rm").header(AUTHORIZATION, format!("Bearer {key}")),
            )
            .await,
        )
        .await;
    }
    expect_error(
        "no key",
        send("no key", gw.get("/rm")).await,
        401,
        "unauthorized",
    )
    .await;
    let m = eventually(
        "the request counters to move",
        Duration::from_secs(5),
        || async {
            let m = gw.metrics().await;
            if count(&m, "2xx") - ok0 == 3.0 && count(&m, "4xx") - err0 == 1.0 {
                Ok(m)
            } else {
                Err(format!("2xx {} 4xx {}", count(&m, "2xx"), count(&m, "4xx")))
            }
        },
    )
    .await;
    let labels = [("route", "rm"), ("tenant", "tm"), ("status_class", "2xx")];
    assert!(
        metric(&m, "raftgate_http_requests_total", &labels) >= 3.0,
        "the 2xx series of route rm is labelled with tenant tm"
    );
    for name in [
        "raftgate_http_request_duration_seconds_count",
        "raftgate_http_active_connections",
    ] {
        assert!(has_metric(&m, name), "/metrics has no {name}");
    }
    assert!(
        metric(
            &m,
            "raftgate_http_request_duration_seconds_count",
            &[("route", "rm")]
        ) >= 4.0,
        "latency histogram of route rm"
    );

    let req = gw
        .get("/rm")
        .header(AUTHORIZATION, format!("Bearer {key}"))
        .header("x-request-id", "chaos-log-line-1");
    echo("logged request", send("logged", req).await).await;
    let line = eventually("the access log line", Duration::from_secs(5), || async {
        gw.cluster
            .log_tail(0, 400)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .find(|v| v["request_id"] == "chaos-log-line-1")
            .ok_or_else(|| "no JSON line with request_id chaos-log-line-1".to_string())
    })
    .await;
    let target = server.addr().to_string();
    for (field, want) in [
        ("route", json!("rm")),
        ("consumer", json!("cm")),
        ("tenant", json!("tm")),
        ("status", json!(200)),
        ("upstream", json!("u")),
        ("target", json!(target)),
    ] {
        assert_eq!(line[field], want, "access log field {field}: {line}");
    }
    assert!(
        line["bytes_out"].as_u64().is_some_and(|n| n > 0),
        "bytes_out: {line}"
    );
    assert!(line["latency_ms"].is_number(), "latency_ms: {line}");
}

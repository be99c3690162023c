//! The exporters against a real `raftgate serve`: the rotating JSON-lines access log file
//! (rotation, whole lines, SIGHUP reopen) and OTLP/HTTP JSON trace export to an in-test
//! collector (one span per call, attributes, `traceparent` continued and sent upstream).
//! Needs the binary (env RAFTGATE_BIN or the workspace build).
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use raftgate_chaos::{ClusterBuilder, LocalCluster, TestUpstream, UpstreamOptions};
use serde_json::{json, Value};
use tokio::sync::Mutex as AsyncMutex;

/// One gateway at a time on a 2-core machine.
static SERIAL: AsyncMutex<()> = AsyncMutex::const_new(());

/// Starts and initialises a one-node cluster with `env`, and a route `route` on `/x`
/// to an echo upstream: the cluster, the upstream, and `http://HTTP_ADDR`.
async fn gateway(env: &[(&str, String)], route: &str) -> (LocalCluster, TestUpstream, String) {
    let mut b = ClusterBuilder::new(1);
    for (k, v) in env {
        b = b.env(k, v);
    }
    let mut cluster = b.start().await.expect("the node starts");
    cluster.init().await.expect("cluster init");
    cluster.wait_leader().await.expect("a leader");
    let up = TestUpstream::start(UpstreamOptions::named("echo"))
        .await
        .expect("upstream");
    let admin = cluster.client(0).expect("admin client");
    admin
        .create(
            "upstreams",
            &json!({"id": "u1", "targets": [{"address": up.addr().to_string(), "weight": 1}]}),
        )
        .await
        .expect("create upstream");
    admin
        .create(
            "routes",
            &json!({"id": route, "path": "/x", "target": {"upstream": "u1"}}),
        )
        .await
        .expect("create route");
    let base = format!("http://{}", cluster.info(0).expect("info").http_addr);
    (cluster, up, base)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// `(file name, lines)` of every `access.log*` in `dir`.
fn log_files(dir: &Path) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = std::fs::read_dir(dir)
        .expect("read log dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("access.log"))
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(&n)).unwrap_or_default();
            assert!(text.is_empty() || text.ends_with('\n'), "{n} ends mid-line");
            (n, text.lines().map(str::to_string).collect())
        })
        .collect();
    out.sort();
    out
}

/// Polls `f` until it is `Some` or `within` passes.
async fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_rotates_by_size_and_reopens_on_sighup() {
    let _one = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let keep = 30u32;
    let env = [
        ("RAFTGATE_ACCESS_LOG", path.display().to_string()),
        ("RAFTGATE_ACCESS_LOG_MAX_BYTES", "2048".to_string()),
        ("RAFTGATE_ACCESS_LOG_KEEP", keep.to_string()),
    ];
    let (cluster, _up, base) = gateway(&env, "r-log").await;
    let http = client();
    let calls = 40usize;
    for i in 0..calls {
        let r = http
            .get(format!("{base}/x/{i}"))
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 200, "call {i}");
        r.bytes().await.expect("body");
    }
    let total = |files: &[(String, Vec<String>)]| files.iter().map(|f| f.1.len()).sum::<usize>();
    let files = eventually(Duration::from_secs(10), || {
        let f = log_files(dir.path());
        (total(&f) == calls).then_some(f)
    })
    .await
    .unwrap_or_else(|| panic!("expected {calls} lines, files: {:?}", log_files(dir.path())));
    assert!(
        files.len() >= 3,
        "2 KiB files should have rotated: {files:?}"
    );
    assert!(files.len() <= keep as usize + 1);
    let mut paths = Vec::new();
    for (name, lines) in &files {
        assert!(
            name == "access.log"
                || name
                    .strip_prefix("access.log.")
                    .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| (1..=keep).contains(&n))),
            "unexpected file {name}"
        );
        let size: usize = lines.iter().map(|l| l.len() + 1).sum();
        assert!(size <= 2048, "{name} has {size} bytes");
        for l in lines {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}"));
            assert_eq!(v["route"], "r-log");
            paths.push(v["path"].as_str().expect("path").to_string());
        }
    }
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), calls, "every call logged exactly once");

    // logrotate `create` mode: move the file away, SIGHUP, new lines go to a new file.
    let moved = dir.path().join("moved.log");
    std::fs::rename(&path, &moved).expect("move the log");
    let pid = cluster.info(0).expect("info").pid.expect("node pid");
    let st = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(st.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..3 {
        let r = http
            .get(format!("{base}/x/after-{i}"))
            .send()
            .await
            .expect("call after HUP");
        assert_eq!(r.status(), 200);
        r.bytes().await.expect("body");
    }
    let fresh = eventually(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&path).ok()?;
        (text.lines().count() == 3).then_some(text)
    })
    .await
    .expect("after SIGHUP the 3 new lines land in a new access.log");
    assert!(fresh.contains("/x/after-0"), "{fresh}");
    assert!(!std::fs::read_to_string(&moved)
        .unwrap_or_default()
        .contains("after-"));
    assert!(cluster.is_running(0), "SIGHUP must not stop the node");
}

/// A minimal OTLP/HTTP collector: every POST body (JSON) is kept.
async fn collector() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let store = got.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let store = store.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let ctype = req
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        let v: Value = body
                            .ok()
                            .and_then(|b| serde_json::from_slice(&b).ok())
                            .unwrap_or(Value::Null);
                        if let Ok(mut g) = store.lock() {
                            g.push((format!("{path} {ctype}"), v));
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    (url, got)
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_exports_one_span_per_call_and_propagates_traceparent() {
    let _one = SERIAL.lock().await;
    let (endpoint, got) = collector().await;
    let env = [
        ("RAFTGATE_OTLP_ENDPOINT", endpoint),
        ("RAFTGATE_OTLP_SERVICE_NAME", "gw-test".to_string()),
    ];
    let (_cluster, _up, base) = gateway(&env, "r-otlp").await;
    let http = client();
    let n = 5usize;
    // What the upstream saw: traceparent per call (the echo answers with its headers).
    let mut upstream_tp = Vec::new();
    for i in 0..n {
        let r = http
            .get(format!("{base}/x/{i}"))
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("echo JSON");
        let tp = v["headers"]["traceparent"]
            .as_str()
            .expect("upstream got a traceparent");
        upstream_tp.push(tp.to_string());
    }
    let incoming_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let incoming_parent = "00f067aa0ba902b7";
    let r = http
        .get(format!("{base}/x/continued"))
        .header(
            "traceparent",
            format!("00-{incoming_trace}-{incoming_parent}-01"),
        )
        .send()
        .await
        .expect("call with traceparent");
    let v: Value = r.json().await.expect("echo JSON");
    let continued_up = v["headers"]["traceparent"]
        .as_str()
        .expect("traceparent")
        .to_string();

    let spans = eventually(Duration::from_secs(10), || {
        let g = got.lock().ok()?;
        let spans: Vec<(String, Value)> = g
            .iter()
            .flat_map(|(what, body)| {
                let rs = &body["resourceSpans"][0];
                let service = attr(&rs["resource"], "service.name").cloned();
                assert_eq!(service, Some(json!({"stringValue": "gw-test"})));
                rs["scopeSpans"][0]["spans"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |s| (what.clone(), s))
            })
            .collect();
        (spans.len() > n).then_some(spans)
    })
    .await
    .expect("the collector received the spans");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let total: usize = got
        .lock()
        .map(|g| {
            g.iter()
                .map(|(_, b)| {
                    b["resourceSpans"][0]["scopeSpans"][0]["spans"]
                        .as_array()
                        .map_or(0, Vec::len)
                })
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(total, n + 1, "one span per call, no more");
    for (what, s) in &spans {
        assert!(what.starts_with("/v1/traces application/json"), "{what}");
        assert_eq!(s["name"], "GET r-otlp");
        assert_eq!(s["kind"], 2);
        assert_eq!(
            attr(s, "http.request.method"),
            Some(&json!({"stringValue": "GET"}))
        );
        assert_eq!(
            attr(s, "raftgate.route"),
            Some(&json!({"stringValue": "r-otlp"}))
        );
        assert_eq!(
            attr(s, "http.response.status_code"),
            Some(&json!({"intValue": "200"}))
        );
        assert!(attr(s, "url.path").is_some_and(|p| p["stringValue"]
            .as_str()
            .is_some_and(|p| p.starts_with("/x/"))));
        let start: u64 = s["startTimeUnixNano"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("start");
        let end: u64 = s["endTimeUnixNano"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("end");
        assert!(
            start > 1_600_000_000_000_000_000 && start <= end,
            "{start} {end}"
        );
    }
    let by_span = |trace: &str, span: &str| {
        spans
            .iter()
            .find(|(_, s)| s["traceId"] == trace && s["spanId"] == span)
            .map(|(_, s)| s.clone())
    };
    for tp in &upstream_tp {
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!((parts[0], parts[3]), ("00", "01"), "{tp}");
        let s = by_span(parts[1], parts[2])
            .unwrap_or_else(|| panic!("no span is the upstream's parent {tp}"));
        assert!(
            s.get("parentSpanId").is_none(),
            "a new trace has no parent: {s}"
        );
    }
    let parts: Vec<&str> = continued_up.split('-').collect();
    assert_eq!(
        parts[1], incoming_trace,
        "the caller's trace is continued upstream"
    );
    let s = by_span(incoming_trace, parts[2]).expect("the continued call's span");
    assert_eq!(s["parentSpanId"], incoming_parent);
    assert_eq!(
        attr(&s, "url.path"),
        Some(&json!({"stringValue": "/x/continued"}))
    );
}

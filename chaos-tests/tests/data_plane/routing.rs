//! Route matching (hosts, paths, parameters, methods, headers, priority), rewrites, query
//! strings, and config changes taking effect at once on the node that acknowledged them.

use reqwest::header::HOST;
use reqwest::Method;
use serde_json::{json, Value};

use raftgate_chaos::TestUpstream;

use crate::{echo, expect_error, send, serial, served_by, upstream, upstream_body, with, Gateway};

/// One test upstream per route, named like the route, so an answer says which route won.
#[derive(Default)]
pub struct Backends {
    servers: Vec<TestUpstream>,
}

impl Backends {
    /// Creates route `id` from `spec` (hosts, path, methods...) with its own upstream.
    pub async fn route(&mut self, gw: &Gateway, id: &str, spec: Value) {
        let server = upstream(id).await;
        let upstream_id = format!("u-{id}");
        gw.create("upstreams", upstream_body(&upstream_id, &[&server]))
            .await;
        let route = with(
            with(spec, "id", json!(id)),
            "target",
            json!({"upstream": upstream_id}),
        );
        gw.create("routes", route).await;
        self.servers.push(server);
    }
}

/// Which route served `method host path` with `headers`: a route id, or `"STATUS code"`.
async fn who(
    gw: &Gateway,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut req = gw.req(method.clone(), path).header(HOST, host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    served_by(send(&format!("{method} {host}{path}"), req).await).await
}

fn check(got: Vec<(String, String)>) {
    let wrong: Vec<String> = got
        .iter()
        .filter(|(case, _)| !case.is_empty())
        .filter(|(case, got)| !case.ends_with(&format!("-> {got}")))
        .map(|(case, got)| format!("{case}, got {got}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "wrong route chosen:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_exact_beats_wildcard_beats_any() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let mut b = Backends::default();
    b.route(&gw, "r-any", json!({"path": "/hosts"})).await;
    b.route(
        &gw,
        "r-wild",
        json!({"hosts": ["*.example.com"], "path": "/hosts"}),
    )
    .await;
    b.route(
        &gw,
        "r-exact",
        json!({"hosts": ["api.example.com"], "path": "/hosts"}),
    )
    .await;
    b.route(
        &gw,
        "r-only",
        json!({"hosts": ["only.test"], "path": "/only"}),
    )
    .await;

    let mut got = Vec::new();
    for (host, path, want) in [
        ("api.example.com", "/hosts", "r-exact"),
        ("api.example.com:8080", "/hosts/x", "r-exact"),
        ("API.Example.COM", "/hosts", "r-exact"),
        ("www.example.com", "/hosts", "r-wild"),
        ("a.b.example.com", "/hosts", "r-wild"),
        ("example.com", "/hosts", "r-any"),
        ("other.org", "/hosts", "r-any"),
        ("only.test", "/only", "r-only"),
        ("x.only.test", "/only", "404 no_route"),
        ("other.org", "/only", "404 no_route"),
    ] {
        let case = format!("GET {host}{path} -> {want}");
        got.push((case, who(&gw, Method::GET, host, path, &[]).await));
    }
    check(got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_exact_prefix_parameters_and_specificity() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let mut b = Backends::default();
    b.route(&gw, "api", json!({"path": "/api"})).await;
    b.route(
        &gw,
        "users-exact",
        json!({"path": "/api/users", "path_match": "exact"}),
    )
    .await;
    b.route(&gw, "user-param", json!({"path": "/api/users/{id}"}))
        .await;
    b.route(&gw, "user-me", json!({"path": "/api/users/me"}))
        .await;
    b.route(&gw, "files-one", json!({"path": "/files/{a}"}))
        .await;
    b.route(&gw, "files-two", json!({"path": "/files/{a}/{b}"}))
        .await;
    b.route(
        &gw,
        "exact-only",
        json!({"path": "/exact", "path_match": "exact"}),
    )
    .await;

    let mut got = Vec::new();
    for (path, want) in [
        ("/api", "api"),
        ("/api/orders", "api"),
        ("/apiary", "404 no_route"),
        ("/api/users", "users-exact"),
        ("/api/users/42", "user-param"),
        ("/api/users/42/orders", "user-param"),
        ("/api/users/me", "user-me"),
        ("/api/users/me/settings", "user-me"),
        ("/files/x", "files-one"),
        ("/files/x/y", "files-two"),
        ("/files/x/y/z", "files-two"),
        ("/files", "404 no_route"),
        ("/exact", "exact-only"),
        ("/exact/more", "404 no_route"),
        ("/nothing", "404 no_route"),
    ] {
        let case = format!("GET {path} -> {want}");
        got.push((case, who(&gw, Method::GET, "any.test", path, &[]).await));
    }
    check(got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_headers_and_priority() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let mut b = Backends::default();
    b.route(&gw, "m-any", json!({"path": "/m"})).await;
    b.route(
        &gw,
        "m-post",
        json!({"path": "/m", "methods": ["POST", "PUT"]}),
    )
    .await;
    b.route(
        &gw,
        "get-only",
        json!({"path": "/get-only", "methods": ["GET"]}),
    )
    .await;
    b.route(&gw, "h-plain", json!({"path": "/h"})).await;
    b.route(
        &gw,
        "h-beta",
        json!({"path": "/h", "headers": [{"name": "x-beta", "regex": "yes|true"}]}),
    )
    .await;
    // Created low first on /p and high first on /q: creation order must not decide.
    b.route(&gw, "p-low", json!({"path": "/p", "priority": 0}))
        .await;
    b.route(&gw, "p-high", json!({"path": "/p", "priority": 10}))
        .await;
    b.route(&gw, "q-high", json!({"path": "/q", "priority": 5}))
        .await;
    b.route(&gw, "q-low", json!({"path": "/q", "priority": -5}))
        .await;

    let mut got = Vec::new();
    for (method, path, headers, want) in [
        (Method::GET, "/m", vec![], "m-any"),
        (Method::POST, "/m", vec![], "m-post"),
        (Method::PUT, "/m/x", vec![], "m-post"),
        (Method::DELETE, "/m", vec![], "m-any"),
        (Method::GET, "/get-only", vec![], "get-only"),
        (Method::DELETE, "/get-only", vec![], "404 no_route"),
        (Method::GET, "/h", vec![], "h-plain"),
        (Method::GET, "/h", vec![("x-beta", "yes")], "h-beta"),
        (Method::GET, "/h", vec![("x-beta", "true")], "h-beta"),
        (Method::GET, "/h", vec![("x-beta", "yesterday")], "h-plain"),
        (Method::GET, "/h", vec![("x-beta", "no")], "h-plain"),
        (Method::GET, "/p", vec![], "p-high"),
        (Method::GET, "/q", vec![], "q-high"),
    ] {
        let case = format!("{method} {path} {headers:?} -> {want}");
        got.push((case, who(&gw, method, "any.test", path, &headers).await));
    }
    check(got);
}

/// Upstream `u` (one echo server) and one route per `(id, path, rewrite)`.
async fn rewrite_routes(gw: &Gateway, routes: &[(&str, &str, Option<Value>)]) -> TestUpstream {
    let server = upstream("rw").await;
    gw.create("upstreams", upstream_body("u", &[&server])).await;
    for (id, path, rewrite) in routes {
        let policies: Vec<Value> = rewrite.iter().map(|r| json!({"rewrite": r})).collect();
        gw.create(
            "routes",
            json!({"id": id, "path": path, "target": {"upstream": "u"}, "policies": policies}),
        )
        .await;
    }
    server
}

/// Each request's path and query as the upstream saw them.
async fn check_rewrites(gw: &Gateway, cases: &[(&str, &str, &str)]) {
    for (request, want_path, want_query) in cases {
        let e = echo(request, send(request, gw.get(request)).await).await;
        assert_eq!(
            (e["path"].as_str(), e["query"].as_str()),
            (Some(*want_path), Some(*want_query)),
            "GET {request}: the upstream saw {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_strip_replace_and_template_keep_the_query() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let _server = rewrite_routes(
        &gw,
        &[
            ("plain", "/plain", None),
            ("strip", "/svc", Some(json!("strip_prefix"))),
            ("replace", "/old", Some(json!({"replace_prefix": "/v2"}))),
            (
                "template",
                "/u/{id}/{kind}",
                Some(json!({"template": "/{kind}/by-id/{id}"})),
            ),
        ],
    )
    .await;
    check_rewrites(
        &gw,
        &[
            ("/plain/a/b?x=1&y=two", "/plain/a/b", "x=1&y=two"),
            ("/svc/a/b?x=1", "/a/b", "x=1"),
            ("/old/items/7?page=2", "/v2/items/7", "page=2"),
            ("/u/42/photo?size=big", "/photo/by-id/42", "size=big"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_rest_placeholder_carries_the_unmatched_path() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    // `{*}` is the unmatched rest of the path (the admin API must accept it).
    let _server = rewrite_routes(
        &gw,
        &[(
            "rest",
            "/u/{id}",
            Some(json!({"template": "/users/{id}/{*}"})),
        )],
    )
    .await;
    check_rewrites(
        &gw,
        &[(
            "/u/42/profile/photo?size=big",
            "/users/42/profile/photo",
            "size=big",
        )],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_changes_apply_at_once_on_the_acknowledging_node() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let one = upstream("one").await;
    let two = upstream("two").await;
    gw.create("upstreams", upstream_body("u1", &[&one])).await;
    gw.create("upstreams", upstream_body("u2", &[&two])).await;

    // No warm-up, no wait: each request is sent right after the write was acknowledged.
    let route = json!({"id": "live", "path": "/live", "target": {"upstream": "u1"}});
    gw.create("routes", route.clone()).await;
    assert_eq!(
        served_by(send("after create", gw.get("/live")).await).await,
        "one"
    );

    gw.update(
        "routes",
        "live",
        with(route.clone(), "target", json!({"upstream": "u2"})),
    )
    .await;
    assert_eq!(
        served_by(send("after retarget", gw.get("/live")).await).await,
        "two"
    );

    gw.update(
        "routes",
        "live",
        with(route.clone(), "path", json!("/moved")),
    )
    .await;
    expect_error(
        "old path after move",
        send("old path", gw.get("/live")).await,
        404,
        "no_route",
    )
    .await;
    assert_eq!(
        served_by(send("new path", gw.get("/moved")).await).await,
        "one"
    );

    // An upstream change (new target list) applies as fast as a route change.
    gw.update("upstreams", "u1", upstream_body("u1", &[&two]))
        .await;
    assert_eq!(
        served_by(send("after upstream update", gw.get("/moved")).await).await,
        "two"
    );

    gw.delete("routes", "live").await;
    expect_error(
        "after delete",
        send("deleted", gw.get("/moved")).await,
        404,
        "no_route",
    )
    .await;
}

/// Sends `GET path` as written (no client-side URL normalization, unlike reqwest) over
/// HTTP/1.1 and returns the status and body.
async fn raw_get(gw: &Gateway, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(gw.http_addr())
        .await
        .expect("connect");
    let head = format!("GET {path} HTTP/1.1\r\nHost: any.test\r\nConnection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut buf),
    )
    .await
    .expect("answer in time")
    .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return (status, body.to_string());
    }
    // De-chunk: size line, data, CRLF, until the 0-size chunk.
    let (mut rest, mut out) = (body, String::new());
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    (status, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_are_resolved_before_routing() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    // Only /public is routed; `..` must not reach past it to the upstream's other paths.
    let _server = rewrite_routes(
        &gw,
        &[
            ("public", "/public", None),
            (
                "files",
                "/files/{name}",
                Some(json!({"template": "/static/{name}"})),
            ),
        ],
    )
    .await;
    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/.%2E/admin",
        "/files/..",
    ] {
        let (status, body) = raw_get(&gw, path).await;
        assert_eq!(status, 404, "GET {path} must not be routed: {body}");
        assert!(body.contains("no_route"), "GET {path}: {body}");
    }
    for (path, want) in [
        ("/public/a/./b/../c?x=1", "/public/a/c"),
        ("/public/x/../../public/y", "/public/y"),
        ("/files/../files/report.txt", "/static/report.txt"),
    ] {
        let (status, body) = raw_get(&gw, path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        let e: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}"));
        assert_eq!(e["path"], want, "GET {path}: the upstream saw {e}");
    }
}

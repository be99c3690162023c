//! The web console (`/ui` on the admin port), tested for real:
//!
//! - `console_files_and_headers`: one node; the compiled-in files with their media
//!   types, the security headers (CSP without inline scripts, `nosniff`, no framing),
//!   ETag revalidation, JSON 404s, and `GET /admin/v1/whoami` for each kind of token.
//! - `console_in_a_browser`: a three-node cluster with two tenants, driven through
//!   headless Chromium by `tests/console/test_console.py` (Selenium WebDriver): sign in,
//!   the cluster page, a route created in the UI, a pending subscription approved in the
//!   UI, a consumer updated and a route deleted in the UI, charts drawn from live
//!   traffic, the call-log page, a viewer without write controls, and a tenant admin who
//!   does not see the other tenant. This test then checks through the admin API and the data
//!   plane that the UI's writes took effect. Screenshots land in
//!   `$CARGO_TARGET_DIR/console-screenshots/`.
//!
//! The browser test needs Debian's `chromium` and `chromium-driver` and a Python with
//! `selenium` (`scripts/test-deps.sh` installs all three; `RAFTGATE_PYTHON`,
//! `RAFTGATE_CHROMIUM`, `RAFTGATE_CHROMEDRIVER` override the paths). Without them it
//! fails saying what is missing, unless `RAFTGATE_CONSOLE_BROWSER=skip` is set, in which
//! case it prints `SKIP` and returns.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use raftgate_chaos::{ClusterBuilder, LocalCluster, TestUpstream, UpstreamOptions};
use reqwest::header::{HeaderMap, CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Bound for the browser script (it waits for 2 s refreshes and live samples).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client")
}

async fn one_node() -> LocalCluster {
    let mut cluster = ClusterBuilder::new(1).start().await.expect("node starts");
    cluster.init().await.expect("cluster init");
    cluster.wait_leader().await.expect("a leader");
    cluster
}

/// Admin call on node `i` with `token`: status and JSON answer (`Null` if not JSON).
async fn call(
    cluster: &LocalCluster,
    i: usize,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let url = format!("{}{path}", cluster.admin_url(i).expect("admin url"));
    let mut req = client().request(method.clone(), &url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn create(cluster: &LocalCluster, collection: &str, body: Value) -> Value {
    let token = cluster.token().map(str::to_string);
    let path = format!("/admin/v1/{collection}");
    let (status, answer) = call(
        cluster,
        0,
        token.as_deref(),
        Method::POST,
        &path,
        Some(body.clone()),
    )
    .await;
    assert!(
        status.is_success(),
        "creating {collection} {body}: {status} {answer}"
    );
    answer
}

/// A token minted by the admin API.
async fn mint(cluster: &LocalCluster, role: &str, tenant: Option<&str>) -> String {
    let client = cluster.client(0).expect("admin client");
    let token = client
        .mint_token(role, tenant, &format!("{role}-ui-test"))
        .await
        .unwrap_or_else(|e| panic!("minting a {role} token: {e}"));
    assert!(!token.is_empty(), "no token minted for {role}");
    token
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_files_and_headers() {
    let _serial = SERIAL.lock().await;
    let cluster = one_node().await;
    let base = cluster.admin_url(0).expect("admin url");
    let http = client();
    let files = [
        ("/ui", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/index.html", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/pages/resources.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ];
    for (path, media) in files {
        let resp = http.get(format!("{base}{path}")).send().await.expect("GET");
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        let h = resp.headers().clone();
        assert!(
            header(&h, "content-type").starts_with(media),
            "{path}: {h:?}"
        );
        let csp = header(&h, "content-security-policy");
        assert!(
            csp.contains("default-src 'self'")
                && csp.contains("script-src 'self'")
                && !csp.contains("unsafe-inline")
                && csp.contains("frame-ancestors 'none'"),
            "{path}: CSP {csp:?}"
        );
        assert_eq!(header(&h, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&h, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(&h, CACHE_CONTROL.as_str()), "no-cache", "{path}");
        let body = resp.text().await.expect("body");
        assert!(!body.is_empty(), "{path} is empty");
        if media == "text/html" {
            assert!(body.contains(r#"<script type="module" src="/ui/app.js"></script>"#));
            assert_eq!(
                body.matches("<script").count(),
                1,
                "inline script in {path}"
            );
        }
    }

    // Revalidation: the ETag answers 304 with no body.
    let first = http
        .get(format!("{base}/ui/app.js"))
        .send()
        .await
        .expect("GET");
    let etag = first.headers().get(ETAG).cloned().expect("an ETag");
    let again = http
        .get(format!("{base}/ui/app.js"))
        .header(IF_NONE_MATCH, etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // Unknown files: JSON 404 with the headers; traversal finds nothing.
    for path in [
        "/ui/nope.js",
        "/ui/..%5cCargo.toml",
        "/ui/pages/%2e%2e%2f%2e%2e%2fCargo.toml",
    ] {
        let resp = http.get(format!("{base}{path}")).send().await.expect("GET");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(resp.headers().contains_key("content-security-policy"));
        let v: Value = resp.json().await.expect("JSON 404");
        assert_eq!(v["error"]["code"], "not_found", "{path}: {v}");
    }
    // Only GET (and HEAD) on console files.
    let post = http
        .post(format!("{base}/ui/app.js"))
        .send()
        .await
        .expect("POST");
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);

    // whoami: what each token says, and 401 without one.
    let admin = cluster.token().expect("init token").to_string();
    let (s, me) = call(
        &cluster,
        0,
        Some(&admin),
        Method::GET,
        "/admin/v1/whoami",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(
        (me["role"].as_str(), me["tenant"].is_null()),
        (Some("admin"), true),
        "{me}"
    );
    create(&cluster, "tenants", json!({"id": "acme"})).await;
    let ta = mint(&cluster, "tenant-admin", Some("acme")).await;
    let (_, me) = call(
        &cluster,
        0,
        Some(&ta),
        Method::GET,
        "/admin/v1/whoami",
        None,
    )
    .await;
    assert_eq!(
        (
            me["role"].as_str(),
            me["tenant"].as_str(),
            me["subject"].as_str()
        ),
        (
            Some("tenant-admin"),
            Some("acme"),
            Some("tenant-admin-ui-test")
        ),
        "{me}"
    );
    let viewer = mint(&cluster, "viewer", None).await;
    let (_, me) = call(
        &cluster,
        0,
        Some(&viewer),
        Method::GET,
        "/admin/v1/whoami",
        None,
    )
    .await;
    assert_eq!(me["role"], "viewer", "{me}");
    let (s, err) = call(&cluster, 0, None, Method::GET, "/admin/v1/whoami", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{err}");
    let (s, _) = call(
        &cluster,
        0,
        Some("garbage"),
        Method::GET,
        "/admin/v1/whoami",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// What the browser test needs on this machine, or why it cannot run.
struct Browser {
    python: PathBuf,
    chromium: PathBuf,
    driver: PathBuf,
}

fn env_path(var: &str, default: &str) -> PathBuf {
    PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_string()))
}

fn find_browser() -> Result<Browser, String> {
    let python = env_path("RAFTGATE_PYTHON", "/root/.cache/raftgate-venv/bin/python");
    let chromium = env_path("RAFTGATE_CHROMIUM", "/usr/bin/chromium");
    let driver = env_path("RAFTGATE_CHROMEDRIVER", "/usr/bin/chromedriver");
    for (p, what) in [
        (&chromium, "chromium (apt-get install chromium)"),
        (&driver, "chromedriver (apt-get install chromium-driver)"),
        (&python, "the test venv's Python (scripts/test-deps.sh)"),
    ] {
        if !p.exists() {
            return Err(format!("{} is missing: {what}", p.display()));
        }
    }
    let probe = std::process::Command::new(&python)
        .args(["-c", "import selenium"])
        .output()
        .map_err(|e| format!("running {}: {e}", python.display()))?;
    if !probe.status.success() {
        return Err(format!(
            "{} cannot import selenium (scripts/test-deps.sh installs it)",
            python.display()
        ));
    }
    Ok(Browser {
        python,
        chromium,
        driver,
    })
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("console-screenshots")
}

/// `n` data-plane GETs of `path` with `key`; returns how many answered `want`.
async fn traffic(base: &str, path: &str, key: &str, n: usize, want: StatusCode) -> usize {
    let http = client();
    let mut hits = 0;
    for _ in 0..n {
        let resp = http
            .get(format!("{base}{path}"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        hits += usize::from(resp.status() == want);
    }
    hits
}

async fn key_for(cluster: &LocalCluster, consumer: &str) -> String {
    let answer = create(cluster, &format!("consumers/{consumer}/keys"), json!({})).await;
    answer["key"]
        .as_str()
        .unwrap_or_else(|| panic!("no key in {answer}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_browser() {
    let _serial = SERIAL.lock().await;
    let browser = match find_browser() {
        Ok(b) => b,
        Err(why) if std::env::var("RAFTGATE_CONSOLE_BROWSER").as_deref() == Ok("skip") => {
            eprintln!("SKIP console_in_a_browser (RAFTGATE_CONSOLE_BROWSER=skip): {why}");
            return;
        }
        Err(why) => panic!(
            "the console browser test cannot run: {why}. Run scripts/test-deps.sh, or set \
             RAFTGATE_CONSOLE_BROWSER=skip to skip it knowingly"
        ),
    };
    let cluster = ClusterBuilder::new(3)
        .form()
        .await
        .expect("three nodes form a cluster");
    let admin = cluster.token().expect("init token").to_string();
    let upstream = TestUpstream::start(UpstreamOptions::named("echo"))
        .await
        .expect("test upstream");

    // Tenant ta: an open route, a service that needs approval with a route, a consumer
    // with a pending subscription. Tenant tb: its own route and consumer, which ta's
    // admin must never see.
    for t in ["ta", "tb"] {
        create(
            &cluster,
            "tenants",
            json!({"id": t, "name": format!("Tenant {t}")}),
        )
        .await;
    }
    create(
        &cluster,
        "upstreams",
        json!({"id": "echo", "targets": [{"address": upstream.addr().to_string(), "weight": 1}]}),
    )
    .await;
    let key_auth = json!([{"key_auth": {}}]);
    create(
        &cluster,
        "routes",
        json!({"id": "ta-open", "tenant": "ta", "path": "/open",
        "target": {"upstream": "echo"}, "policies": key_auth}),
    )
    .await;
    create(
        &cluster,
        "services",
        json!({"id": "ta-svc", "tenant": "ta", "name": "Orders API",
        "state": "published", "approval_required": true}),
    )
    .await;
    create(
        &cluster,
        "routes",
        json!({"id": "ta-orders", "tenant": "ta", "service": "ta-svc",
        "path": "/orders", "target": {"upstream": "echo"}, "policies": key_auth}),
    )
    .await;
    create(
        &cluster,
        "consumers",
        json!({"id": "ta-app", "tenant": "ta", "name": "Shop"}),
    )
    .await;
    let key = key_for(&cluster, "ta-app").await;
    let sub = create(
        &cluster,
        "subscriptions",
        json!({"id": "ta-app-orders", "consumer": "ta-app", "service": "ta-svc"}),
    )
    .await;
    assert_eq!(sub["state"], "pending", "{sub}");
    create(
        &cluster,
        "routes",
        json!({"id": "tb-secret", "tenant": "tb", "path": "/tb",
        "target": {"upstream": "echo"}, "policies": key_auth}),
    )
    .await;
    create(
        &cluster,
        "consumers",
        json!({"id": "tb-hidden-app", "tenant": "tb"}),
    )
    .await;
    let tb_key = key_for(&cluster, "tb-hidden-app").await;
    let tenant_token = mint(&cluster, "tenant-admin", Some("ta")).await;
    let viewer_token = mint(&cluster, "viewer", None).await;

    // Traffic first, so call logs (where the node keeps them) have data for the charts.
    let data = format!("http://{}", cluster.info(0).expect("node info").http_addr);
    assert_eq!(traffic(&data, "/open", &key, 20, StatusCode::OK).await, 20);
    assert_eq!(traffic(&data, "/tb", &tb_key, 4, StatusCode::OK).await, 4);
    assert_eq!(
        traffic(&data, "/orders", &key, 3, StatusCode::FORBIDDEN).await,
        3,
        "a pending subscription must not let calls through"
    );

    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/test_console.py");
    let env = [
        ("RAFTGATE_ADMIN_URL", cluster.admin_url(0).expect("url")),
        ("RAFTGATE_ADMIN_TOKEN", admin.clone()),
        ("RAFTGATE_TENANT_TOKEN", tenant_token),
        ("RAFTGATE_VIEWER_TOKEN", viewer_token),
        ("RAFTGATE_TENANT", "ta".into()),
        ("RAFTGATE_NODES", cluster.len().to_string()),
        ("RAFTGATE_SUBSCRIPTION", "ta-app-orders".into()),
        ("RAFTGATE_UPSTREAM", "echo".into()),
        ("RAFTGATE_OWN_ROUTE", "ta-open".into()),
        ("RAFTGATE_OWN_CONSUMER", "ta-app".into()),
        ("RAFTGATE_OTHER_ROUTE", "tb-secret".into()),
        ("RAFTGATE_OTHER_CONSUMER", "tb-hidden-app".into()),
        ("RAFTGATE_DATA_URL", data.clone()),
        ("RAFTGATE_API_KEY", key.clone()),
        ("RAFTGATE_TRAFFIC_PATH", "/open".into()),
        ("RAFTGATE_SCREENSHOTS", shots.display().to_string()),
        ("RAFTGATE_CHROMIUM", browser.chromium.display().to_string()),
        (
            "RAFTGATE_CHROMEDRIVER",
            browser.driver.display().to_string(),
        ),
    ];
    let mut cmd = tokio::process::Command::new(&browser.python);
    cmd.arg(&script)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PYTHONUNBUFFERED", "1")
        .env("SE_OFFLINE", "true")
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .kill_on_drop(true);
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} did not finish within {SCRIPT_TIMEOUT:?}",
                script.display()
            )
        })
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("----- test_console.py stdout -----\n{stdout}");
    if !stderr.trim().is_empty() {
        println!("----- test_console.py stderr -----\n{stderr}");
    }
    assert!(
        out.status.success(),
        "test_console.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );

    // What the UI did, seen through the admin API of another node and the data plane.
    let (s, route) = call(
        &cluster,
        1,
        Some(&admin),
        Method::GET,
        "/admin/v1/routes/ui-route?consistent=true",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "the route created in the UI: {route}");
    assert_eq!(
        (route["path"].as_str(), route["tenant"].as_str()),
        (Some("/ui-created"), Some("ta")),
        "{route}"
    );
    let (s, sub) = call(
        &cluster,
        2,
        Some(&admin),
        Method::GET,
        "/admin/v1/subscriptions/ta-app-orders?consistent=true",
        None,
    )
    .await;
    assert_eq!(
        (s, sub["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{sub}"
    );
    assert_eq!(
        traffic(&data, "/ui-created", &key, 3, StatusCode::OK).await,
        3,
        "the UI's route serves"
    );
    assert_eq!(
        traffic(&data, "/orders", &key, 3, StatusCode::OK).await,
        3,
        "approved in the UI, so calls pass"
    );
    let pngs = std::fs::read_dir(&shots)
        .expect("screenshot dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count();
    assert!(
        pngs >= 5,
        "expected screenshots in {}, found {pngs}",
        shots.display()
    );
}

//! `raftgate dev`: a one-node playground. Starts a node with data in a local folder,
//! initializes it on first run, loads demo data, runs a built-in echo upstream, and
//! prints what to type next.

use std::convert::Infallible;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::cli::DevArgs;
use crate::config::NodeConfig;
use crate::server;

const TOKEN_FILE: &str = "admin-token";
const KEY_FILE: &str = "demo-api-key";
/// The key that encrypts secrets in the Raft log, generated on first run.
const SECRET_KEY_FILE: &str = "secret.key";

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    if args.reset && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("removing {}", args.data_dir.display()))?;
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let secret_key = args.data_dir.join(SECRET_KEY_FILE);
    crate::secrets::ensure_key_file(&secret_key)?;
    let mut cfg = NodeConfig {
        node_id: 1,
        data_dir: args.data_dir.clone(),
        http_addr: args.http_addr.clone(),
        admin_addr: args.admin_addr.clone(),
        raft_addr: args.raft_addr.clone(),
        advertise_host: Some("127.0.0.1".into()),
        join: None,
        snapshot_logs: 5000,
        log_level: "info".into(),
        secret_key_file: Some(secret_key),
        https_addr: None,
        access_log: None,
        ..NodeConfig::default()
    };
    args.limits.apply(&mut cfg.limits);
    cfg.validate()?;
    let echo = TcpListener::bind(&args.echo_addr)
        .await
        .with_context(|| format!("echo upstream: cannot listen on {}", args.echo_addr))?;
    let echo_addr = echo.local_addr()?;
    tokio::spawn(serve_echo(echo));

    let running = server::start(&cfg).await?;
    let admin = format!("http://{}", running.admin_addr);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let token = match read_secret(&cfg.data_dir, TOKEN_FILE) {
        Some(t) => t,
        None => first_run(&http, &admin, &cfg.data_dir, &echo_addr.to_string()).await?,
    };
    let key = read_secret(&cfg.data_dir, KEY_FILE)
        .unwrap_or_else(|| "(see the demo-api-key file)".into());
    println!(
        "\nRaftgate dev node is up (data in {dir}).\n\n  admin API   {admin}\n  data plane  http://{data}\n  echo        http://{echo_addr}  (the demo upstream)\n\n  export RAFTGATE_SERVER={admin}\n  export RAFTGATE_TOKEN={token}\n  demo API key: {key}\n\n  curl -H \"authorization: Bearer {key}\" http://{data}/echo/hello   # through the gateway\n  curl -H \"authorization: Bearer {key}\" http://{data}/v1/chat/completions -d '{{\"model\": \"demo-model\", \"messages\": [{{\"role\": \"user\", \"content\": \"hi\"}}]}}'\n  curl -H \"authorization: Bearer {key}\" http://{data}/prompts/summarize -d '{{\"text\": \"Raft keeps replicas in step.\"}}'\n  raftgate cluster status\n  raftgate get routes\n  curl -H \"authorization: Bearer $RAFTGATE_TOKEN\" {admin}/admin/v1/models\n\nCtrl-C stops the node; data stays for the next run (--reset starts over).",
        dir = cfg.data_dir.display(),
        data = running.http_addr,
    );
    server::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}

fn read_secret(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn write_secret(dir: &Path, name: &str, value: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(dir.join(name))
        .with_context(|| format!("writing {name}"))?;
    f.write_all(value.as_bytes())?;
    Ok(())
}

/// Initializes the cluster and loads the demo configuration through the admin API.
async fn first_run(
    http: &reqwest::Client,
    admin: &str,
    dir: &Path,
    echo: &str,
) -> anyhow::Result<String> {
    let init: Value = http
        .post(format!("{admin}/admin/v1/cluster/init"))
        .send()
        .await?
        .json()
        .await?;
    let Some(token) = init["admin_token"].as_str().map(String::from) else {
        bail!("cluster init failed: {init}");
    };
    write_secret(dir, TOKEN_FILE, &token)?;
    let demo = [
        ("tenants", json!({"id": "demo", "name": "Demo tenant"})),
        (
            "consumers",
            json!({"id": "demo-app", "tenant": "demo", "name": "Demo application"}),
        ),
        (
            "upstreams",
            json!({"id": "echo", "targets": [{"address": echo}]}),
        ),
        (
            "services",
            json!({"id": "echo-svc", "tenant": "demo", "name": "Echo", "state": "published"}),
        ),
        (
            "quota_policies",
            json!({"id": "demo-per-key", "tenant": "demo", "scope": ["api_key"], "metric": "requests", "window": "minute", "limit": 600}),
        ),
        (
            "routes",
            json!({"id": "echo", "tenant": "demo", "service": "echo-svc", "path": "/echo", "target": {"upstream": "echo"}, "policies": [{"key_auth": {}}, {"quota": "demo-per-key"}]}),
        ),
        ("providers", json!({"id": "mock", "type": "mock"})),
        (
            "models",
            json!({"id": "demo-model", "deployments": [{"provider": "mock", "model": "mock-1"}]}),
        ),
        (
            "prompt_templates",
            json!({"id": "summarize", "tenant": "demo", "versions": [{"version": 1, "model": "demo-model",
                "messages": [{"role": "system", "content": "You summarise texts in one sentence."},
                             {"role": "user", "content": "Summarise: {{text}}"}],
                "variables": ["text"]}]}),
        ),
        (
            "routes",
            json!({"id": "summarize", "tenant": "demo", "service": "echo-svc", "path": "/prompts/summarize", "methods": ["POST"], "target": {"prompt": {"template": "summarize"}}, "policies": [{"key_auth": {}}]}),
        ),
        (
            "subscriptions",
            json!({"id": "demo-app-echo", "consumer": "demo-app", "service": "echo-svc"}),
        ),
        (
            "permissions",
            json!({"id": "demo-app-model", "consumer": "demo-app", "target": {"model": "demo-model"}}),
        ),
    ];
    for (collection, body) in demo {
        let resp = http
            .post(format!("{admin}/admin/v1/{collection}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!(
                "loading demo {collection}: {}",
                resp.text().await.unwrap_or_default()
            );
        }
    }
    let key: Value = http
        .post(format!("{admin}/admin/v1/consumers/demo-app/keys"))
        .bearer_auth(&token)
        .json(&json!({"id": "demo-key", "name": "demo"}))
        .send()
        .await?
        .json()
        .await?;
    if let Some(k) = key["key"].as_str() {
        write_secret(dir, KEY_FILE, k)?;
    }
    Ok(token)
}

/// Echoes method, path, headers and body back as JSON: the demo upstream.
async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("<binary>"))))
        .collect();
    let out = json!({
        "method": parts.method.as_str(), "path": parts.uri.path(), "query": parts.uri.query(),
        "headers": headers, "body": String::from_utf8_lossy(&body),
    });
    let mut resp = Response::new(Full::new(Bytes::from(out.to_string())));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

pub async fn serve_echo(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(echo))
                .await;
        });
    }
}

//! The official Python SDKs against the gateway, as applications run them:
//! `chaos-tests/sdk/openai_compat.py` (the `openai` package: chat, streams, tool calls,
//! embeddings, models, and its exception classes) and `chaos-tests/sdk/anthropic_compat.py`
//! (the `anthropic` package: `messages.create`, `messages.stream`, tool use, exception
//! classes). The scripts print one line per check and exit non-zero on the first failure.
//!
//! The interpreter is `RAFTGATE_PYTHON`, else [`DEFAULT_PYTHON`]; it needs `openai` and
//! `anthropic` from PyPI.

use std::path::{Path, PathBuf};
use std::time::Duration;

use raftgate_chaos::llm_mock::{embedding, Flavor};
use serde_json::json;

use crate::{mock, serial, Gateway};

/// The virtualenv `.ci/run` creates.
pub const DEFAULT_PYTHON: &str = "/root/.cache/raftgate-venv/bin/python";

/// Bound for one script run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

const EMBED_INPUTS: [&str; 2] = ["hello embedding world", "second input"];

/// The Python to run the scripts with; panics saying how to create it when missing.
fn python() -> PathBuf {
    let path = PathBuf::from(
        std::env::var("RAFTGATE_PYTHON").unwrap_or_else(|_| DEFAULT_PYTHON.to_string()),
    );
    let how = format!(
        "create it with: python3 -m venv {venv} && {venv}/bin/pip install openai anthropic \
         (or point RAFTGATE_PYTHON at a Python that has both packages)",
        venv = path
            .parent()
            .and_then(Path::parent)
            .map_or("/root/.cache/raftgate-venv".into(), |p| p
                .display()
                .to_string())
    );
    assert!(
        path.exists(),
        "no Python for the SDK compatibility checks at {}: {how}",
        path.display()
    );
    let probe = std::process::Command::new(&path)
        .args(["-c", "import openai, anthropic"])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}: {how}", path.display()));
    assert!(
        probe.status.success(),
        "{} cannot import openai and anthropic ({}): {how}",
        path.display(),
        String::from_utf8_lossy(&probe.stderr).trim()
    );
    path
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk").join(name)
}

/// One gateway with what both scripts use; returns the scripts' environment.
async fn setup(gw: &Gateway) -> (Vec<(String, String)>, Vec<raftgate_chaos::MockProvider>) {
    let key = gw.consumer_with_key("sdk").await;
    gw.consumer_with_key("other").await;
    let oa = mock(Flavor::OpenAi, "oa", "sk-oa").await;
    let claude = mock(Flavor::Anthropic, "claude", "sk-claude").await;
    gw.provider_for("oa", &oa, "sk-oa").await;
    gw.provider_for("claude", &claude, "sk-claude").await;
    gw.simple_model("sdk-chat", "oa", "gpt-4o-mini", &["sdk"])
        .await;
    gw.simple_model("sdk-claude", "claude", "claude-3-5-haiku-latest", &["sdk"])
        .await;
    gw.simple_model("sdk-embed", "oa", "text-embedding-3-small", &["sdk"])
        .await;
    gw.simple_model("sdk-forbidden", "oa", "gpt-4o", &["other"])
        .await;
    gw.create(
        "quota_policies",
        json!({"id": "one-call", "scope": ["consumer", "model"], "metric": "requests",
            "window": "hour", "limit": 1}),
    )
    .await;
    for (id, provider) in [("sdk-limited-oa", "oa"), ("sdk-limited-an", "claude")] {
        gw.create(
            "models",
            json!({"id": id, "quotas": ["one-call"],
                "deployments": [{"provider": provider, "model": "claude-or-gpt"}]}),
        )
        .await;
        gw.permit("sdk", id).await;
    }
    let vectors: Vec<Vec<f32>> = EMBED_INPUTS.iter().map(|s| embedding(s, 8)).collect();
    let env = [
        ("RAFTGATE_URL", gw.base().to_string()),
        ("RAFTGATE_KEY", key),
        ("RAFTGATE_MODEL_CHAT", "sdk-chat".into()),
        ("RAFTGATE_MODEL_CLAUDE", "sdk-claude".into()),
        ("RAFTGATE_MODEL_EMBED", "sdk-embed".into()),
        ("RAFTGATE_MODEL_FORBIDDEN", "sdk-forbidden".into()),
        (
            "RAFTGATE_EXPECTED_MODELS",
            "sdk-chat,sdk-claude,sdk-embed,sdk-limited-oa,sdk-limited-an".into(),
        ),
        (
            "RAFTGATE_EMBEDDINGS",
            json!({"inputs": EMBED_INPUTS, "vectors": vectors}).to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    (env, vec![oa, claude])
}

/// Runs `name` with `env`; prints its output; panics unless it exits 0.
async fn run_script(name: &str, env: &[(String, String)]) {
    let python = python();
    let path = script(name);
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(&path)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PYTHONUNBUFFERED", "1")
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ANTHROPIC_BASE_URL")
        .kill_on_drop(true);
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("running {} {}: {e}", python.display(), path.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("----- {name} stdout -----\n{stdout}");
    if !stderr.trim().is_empty() {
        println!("----- {name} stderr -----\n{stderr}");
    }
    assert!(
        out.status.success(),
        "{name} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_sdk() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let (mut env, _mocks) = setup(&gw).await;
    env.push(("RAFTGATE_MODEL_LIMITED".into(), "sdk-limited-oa".into()));
    run_script("openai_compat.py", &env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_python_sdk() {
    let _serial = serial().await;
    let gw = Gateway::start().await;
    let (mut env, _mocks) = setup(&gw).await;
    env.push(("RAFTGATE_MODEL_LIMITED".into(), "sdk-limited-an".into()));
    run_script("anthropic_compat.py", &env).await;
}

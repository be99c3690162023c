//! Runs the `raftgate` CLI as a subprocess, as an operator would: bounded in time, with
//! the caller's `RAFTGATE_*` environment cleared so only the given flags and env apply.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::error::{ChaosError, Result};

/// Default bound for one CLI invocation.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// What a CLI invocation did.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// Exit code, stdout and stderr in one string, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `bin args...` with `env` added; killed and reported as a timeout after `timeout`.
pub async fn run(
    bin: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<CliOutput> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RAFTGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    let what = format!("`{} {}` to exit", bin.display(), args.join(" "));
    let child = cmd
        .spawn()
        .map_err(|e| ChaosError::io(format!("spawning {}", bin.display()), e))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => Ok(CliOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
        Ok(Err(e)) => Err(ChaosError::io(what, e)),
        Err(_) => Err(ChaosError::Timeout {
            what,
            after: timeout,
            last: "still running; killed".into(),
        }),
    }
}

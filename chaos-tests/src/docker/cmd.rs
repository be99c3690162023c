//! Running `docker`, `nsenter` and `ldd` with a deadline: a wedged daemon must fail a test,
//! not hang it. Output goes to unnamed temp files rather than pipes, so a large answer
//! (`docker logs`) cannot block the child while we wait for it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bound for an ordinary `docker` command (run, start, kill, inspect, network ...).
pub(super) const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound for one `nsenter ... iptables` call.
pub(super) const IPTABLES_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `program args`; Ok(stdout, trimmed) on exit status 0, else Err naming the
/// command, its status and stderr. Killed when it outlives `timeout`.
pub(super) fn run(program: &str, args: &[String], timeout: Duration) -> Result<String, String> {
    let (status, stdout, stderr) = spawn_and_wait(program, args, timeout, false)?;
    if status {
        Ok(stdout.trim().to_string())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            stderr.trim()
        ))
    }
}

/// Like [`run`], with stdout and stderr interleaved in one text (for logs).
pub(super) fn run_merged(
    program: &str,
    args: &[String],
    timeout: Duration,
) -> Result<String, String> {
    let (status, out, _) = spawn_and_wait(program, args, timeout, true)?;
    if status {
        Ok(out)
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            out.trim()
        ))
    }
}

/// [`run`] on a blocking thread, for the async fault methods.
pub(super) async fn run_async(
    program: &'static str,
    args: Vec<String>,
    timeout: Duration,
) -> Result<String, String> {
    tokio::task::spawn_blocking(move || run(program, &args, timeout))
        .await
        .map_err(|e| format!("`{program}` task failed: {e}"))?
}

/// `docker ARGS` with [`DOCKER_TIMEOUT`].
pub(super) fn docker(args: &[&str]) -> Result<String, String> {
    run("docker", &owned(args), DOCKER_TIMEOUT)
}

/// `docker ARGS` with [`DOCKER_TIMEOUT`], on a blocking thread.
pub(super) async fn docker_async(args: &[&str]) -> Result<String, String> {
    run_async("docker", owned(args), DOCKER_TIMEOUT).await
}

pub(super) fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// (exit status 0, stdout, stderr); with `merged`, both streams land in the second field.
fn spawn_and_wait(
    program: &str,
    args: &[String],
    timeout: Duration,
    merged: bool,
) -> Result<(bool, String, String), String> {
    let what = || format!("`{program} {}`", args.join(" "));
    let temp = || tempfile::tempfile().map_err(|e| format!("{}: temp file: {e}", what()));
    let mut out = temp()?;
    let mut err = if merged {
        out.try_clone()
            .map_err(|e| format!("{}: dup: {e}", what()))?
    } else {
        temp()?
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            out.try_clone()
                .map_err(|e| format!("{}: dup: {e}", what()))?,
        ))
        .stderr(Stdio::from(
            err.try_clone()
                .map_err(|e| format!("{}: dup: {e}", what()))?,
        ))
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", what()))?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} did not finish within {timeout:?}", what()));
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(format!("waiting for {}: {e}", what())),
        }
    };
    let stdout = read_all(&mut out);
    let stderr = if merged {
        String::new()
    } else {
        read_all(&mut err)
    };
    Ok((status.success(), stdout, stderr))
}

fn read_all(file: &mut File) -> String {
    let mut bytes = Vec::new();
    let _ = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes));
    String::from_utf8_lossy(&bytes).into_owned()
}

//! One `raftgate serve` process: locate the binary, spawn it, learn its ports from
//! `DATA_DIR/node.json`, wait for `/healthz`, kill it with SIGKILL.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::{http_client, AdminClient};
use crate::error::{ChaosError, Result};
use crate::wait;

/// How long a node gets to bind its listeners and answer `/healthz`.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the `raftgate` binary is: `RAFTGATE_BIN`, else `$CARGO_TARGET_DIR/debug/raftgate`,
/// else `target/debug/raftgate` under the workspace root.
pub fn binary_path() -> Result<PathBuf> {
    let path = if let Some(bin) = std::env::var_os("RAFTGATE_BIN") {
        PathBuf::from(bin)
    } else if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        PathBuf::from(target).join("debug").join("raftgate")
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("debug")
            .join("raftgate")
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(ChaosError::BinaryMissing {
            path: path.display().to_string(),
            hint: "build it with `cargo build -p raftgate-node` or set RAFTGATE_BIN".into(),
        })
    }
}

/// The listeners a node bound, as written to `node.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct NodeInfo {
    pub node_id: u64,
    pub http_addr: String,
    pub admin_addr: String,
    pub raft_addr: String,
    pub admin_url: String,
    #[serde(default)]
    pub pid: Option<u32>,
}

/// What to start: one node's id, directories, and extra flags / environment.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub node_id: u64,
    pub data_dir: PathBuf,
    /// Stdout and stderr of every run are appended here.
    pub log_path: PathBuf,
    /// Listen on these addresses (a restart keeps its ports); `None`: port 0 everywhere.
    pub addrs: Option<NodeInfo>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Run the process with this group id (needs root; root keeps its file access), so
    /// that firewall rules can match its packets by owner (see `LocalCluster::partition`).
    pub gid: Option<u32>,
    /// Preload libfaketime with this control file, whose content (`+0`, `-30`...) offsets
    /// the node's wall clock (see `LocalCluster::set_clock_offset`).
    pub faketime_file: Option<PathBuf>,
}

/// A running node. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    child: Child,
    info: NodeInfo,
    node_id: u64,
    log_path: PathBuf,
}

impl NodeProcess {
    /// Spawns `raftgate serve` for `spec` and waits until it wrote `node.json` and answers
    /// `/healthz` with 200, or fails naming the node, with the tail of its log.
    pub async fn start(bin: &Path, spec: &NodeSpec) -> Result<NodeProcess> {
        std::fs::create_dir_all(&spec.data_dir)
            .map_err(|e| ChaosError::io(format!("creating {}", spec.data_dir.display()), e))?;
        let node_json = spec.data_dir.join("node.json");
        match std::fs::remove_file(&node_json) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ChaosError::io(
                    format!("removing stale {}", node_json.display()),
                    e,
                ))
            }
        }
        let mut log = open_log(&spec.log_path)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .args(["--node-id", &spec.node_id.to_string()])
            .arg("--data-dir")
            .arg(&spec.data_dir);
        let (http, admin, raft) = match &spec.addrs {
            Some(a) => (
                a.http_addr.as_str(),
                a.admin_addr.as_str(),
                a.raft_addr.as_str(),
            ),
            None => ("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"),
        };
        cmd.args([
            "--http-addr",
            http,
            "--admin-addr",
            admin,
            "--raft-addr",
            raft,
            "--advertise-host",
            "127.0.0.1",
        ]);
        cmd.args(&spec.args);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RAFTGATE_") {
                cmd.env_remove(key);
            }
        }
        // Test clusters on loopback run plain text unless a spec configures TLS (and sets
        // RAFTGATE_INSECURE itself to test the secure default).
        cmd.env("RAFTGATE_INSECURE", "true");
        cmd.envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(file) = &spec.faketime_file {
            if !file.exists() {
                std::fs::write(file, "+0\n")
                    .map_err(|e| ChaosError::io(format!("writing {}", file.display()), e))?;
            }
            cmd.env("LD_PRELOAD", crate::cluster::FAKETIME_LIB)
                .env("FAKETIME_TIMESTAMP_FILE", file)
                .env("FAKETIME_CACHE_DURATION", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        if let Some(gid) = spec.gid {
            std::os::unix::process::CommandExt::gid(&mut cmd, gid);
        }
        let _ = writeln!(log, "=== chaos harness: starting {cmd:?}");
        let stderr = log
            .try_clone()
            .map_err(|e| ChaosError::io("duplicating the log handle", e))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr));
        let child = cmd
            .spawn()
            .map_err(|e| ChaosError::io(format!("spawning {}", bin.display()), e))?;
        let pid = child.id();
        let mut proc = NodeProcess {
            child,
            info: NodeInfo {
                node_id: spec.node_id,
                http_addr: String::new(),
                admin_addr: String::new(),
                raft_addr: String::new(),
                admin_url: String::new(),
                pid: Some(pid),
            },
            node_id: spec.node_id,
            log_path: spec.log_path.clone(),
        };
        let what = format!(
            "node {} (pid {pid}) to write {}",
            spec.node_id,
            node_json.display()
        );
        proc.info = wait::until(&what, START_TIMEOUT, || {
            let alive = proc.check_alive("while starting");
            let info = read_node_json(&node_json);
            async move {
                alive.map_err(|e| e.to_string())?;
                info
            }
        })
        .await
        .map_err(|e| proc.explain(e))?;
        let client = AdminClient::with_http(&proc.info.admin_url, health_client(spec)?);
        let what = format!(
            "node {} at {} to answer GET /healthz with 200",
            spec.node_id, proc.info.admin_url
        );
        wait::until(&what, START_TIMEOUT, || {
            let alive = proc.check_alive("while starting");
            let client = client.clone();
            async move {
                alive.map_err(|e| e.to_string())?;
                match client.healthz().await {
                    Ok(s) if s.is_success() => Ok(()),
                    Ok(s) => Err(format!("status {s}")),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await
        .map_err(|e| proc.explain(e))?;
        Ok(proc)
    }

    /// The listeners this run bound.
    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    /// The process id of this run.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a name `kill` knows: `STOP`, `CONT`, ...) with `kill(1)`, so the
    /// crate needs no unsafe code. Err when the process has exited or `kill` failed.
    pub fn signal(&mut self, signal: &str) -> Result<()> {
        self.check_alive(&format!("before SIG{signal}"))?;
        let pid = self.child.id().to_string();
        let out = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(&pid)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| ChaosError::io(format!("running kill -{signal} {pid}"), e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ChaosError::io(
                format!("kill -{signal} {pid} (node {})", self.node_id),
                std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            ))
        }
    }

    /// Err when the process has exited.
    pub fn check_alive(&mut self, during: &str) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(ChaosError::NodeExited {
                node_id: self.node_id,
                during: during.to_string(),
                status: status.to_string(),
                log_tail: log_tail(&self.log_path, 40),
            }),
            Err(e) => Err(ChaosError::io(format!("checking node {}", self.node_id), e)),
        }
    }

    /// SIGKILL (what `kill -9` sends), then reap the process.
    pub fn kill9(&mut self) -> Result<()> {
        if let Ok(Some(_)) = self.child.try_wait() {
            return Ok(());
        }
        self.child
            .kill()
            .map_err(|e| ChaosError::io(format!("killing node {}", self.node_id), e))?;
        self.child
            .wait()
            .map_err(|e| ChaosError::io(format!("reaping node {}", self.node_id), e))?;
        Ok(())
    }

    /// A failed start says more with the process's fate and its log attached.
    fn explain(&mut self, e: ChaosError) -> ChaosError {
        if let Err(exited) = self.check_alive("while starting") {
            return exited;
        }
        let tail = log_tail(&self.log_path, 40);
        let _ = self.kill9();
        match e {
            ChaosError::Timeout { what, after, last } => ChaosError::Timeout {
                what,
                after,
                last: format!(
                    "{last}
last log lines of node {}:
{tail}",
                    self.node_id
                ),
            },
            other => other,
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// The client that waits for `/healthz`: it trusts the node's `RAFTGATE_TLS_CA` when
/// the spec sets one (the admin port then serves HTTPS with a certificate from that CA).
fn health_client(spec: &NodeSpec) -> Result<reqwest::Client> {
    let Some((_, ca)) = spec.env.iter().find(|(k, _)| k == "RAFTGATE_TLS_CA") else {
        return Ok(http_client());
    };
    let pem = std::fs::read(ca).map_err(|e| ChaosError::io(format!("reading {ca}"), e))?;
    let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
        ChaosError::io(
            format!("parsing {ca}"),
            std::io::Error::other(e.to_string()),
        )
    })?;
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .add_root_certificate(cert)
        .build()
        .map_err(|e| {
            ChaosError::io(
                "building an HTTPS client",
                std::io::Error::other(e.to_string()),
            )
        })
}

fn open_log(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ChaosError::io(format!("creating {}", dir.display()), e))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| ChaosError::io(format!("opening {}", path.display()), e))
}

fn read_node_json(path: &Path) -> Result<NodeInfo, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // The node may be halfway through writing it; a parse error just means "not yet".
    let info: NodeInfo =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}: {text:?}", path.display()))?;
    if info.admin_url.is_empty() || info.raft_addr.is_empty() {
        return Err(format!("{}: incomplete: {text}", path.display()));
    }
    Ok(info)
}

/// The last `lines` lines of a log file (a note instead when it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

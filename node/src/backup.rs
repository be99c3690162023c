//! `raftgate backup --out FILE` and `raftgate restore --from FILE`: the client side of
//! `GET /admin/v1/backup` and `POST /admin/v1/restore` (see `docs/backup.md`).
//!
//! A downloaded backup is verified (magic, version, checksum) before it is kept, and
//! written atomically: a temporary file in the same directory, fsynced, renamed over
//! FILE, then the directory fsynced. A crash leaves the old FILE or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use raftgate_store::backup::{self, BackupHeader};
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use crate::admin::backup::MAX_RESTORE_BODY;
use crate::client::{CliError, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE};

/// Where to reach a node and how to authenticate (from the shared client flags).
pub struct Target<'a> {
    pub http: &'a reqwest::Client,
    pub server: &'a str,
    pub token: Option<&'a str>,
}

fn fail(code: i32, message: impl Into<String>) -> CliError {
    CliError {
        code,
        message: message.into(),
    }
}

impl Target<'_> {
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, CliError> {
        let req = match self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(|e| {
            fail(
                EXIT_UNREACHABLE,
                format!("cannot reach {}: {e}", self.server),
            )
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let code = if matches!(status.as_u16(), 502..=504) {
            EXIT_UNREACHABLE
        } else {
            EXIT_REFUSED
        };
        let message = match body["error"]["message"].as_str() {
            Some(m) => format!(
                "{status}: {m} ({})",
                body["error"]["code"].as_str().unwrap_or("error")
            ),
            None => format!("{status} from {}", self.server),
        };
        Err(fail(code, message))
    }
}

/// Downloads a consistent backup into `out` and prints what it holds.
pub async fn save(target: Target<'_>, out: &Path) -> Result<(), CliError> {
    let url = format!("{}/admin/v1/backup", target.server);
    let resp = target.send(target.http.get(&url)).await?;
    let restore_max = resp
        .headers()
        .get("x-raftgate-restore-max-bytes")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = resp.bytes().await.map_err(|e| {
        fail(
            EXIT_UNREACHABLE,
            format!("reading the backup from {}: {e}", target.server),
        )
    })?;
    let (h, _) = backup::decode(&bytes).map_err(|e| {
        fail(
            EXIT_UNREACHABLE,
            format!("the backup received from {} is damaged: {e}", target.server),
        )
    })?;
    write_atomically(out, &bytes)
        .map_err(|e| fail(EXIT_USAGE, format!("writing {}: {e}", out.display())))?;
    println!(
        "backup of cluster {} at index {} (term {}) written to {}: {} bytes, sha256 {}",
        h.cluster_id,
        h.index,
        h.term,
        out.display(),
        bytes.len(),
        h.sha256_hex()
    );
    if restore_max.is_some_and(|max| h.payload_len > max) {
        eprintln!(
            "warning: this state ({} bytes) is larger than an online restore accepts ({} bytes); see docs/backup.md",
            h.payload_len,
            restore_max.unwrap_or_default()
        );
    }
    Ok(())
}

/// Verifies `from` locally, then has the cluster replace its state with it.
pub async fn restore(target: Target<'_>, from: &Path) -> Result<(), CliError> {
    let bad_file = |m: String| fail(EXIT_USAGE, format!("{}: {m}", from.display()));
    let len = std::fs::metadata(from)
        .map_err(|e| bad_file(e.to_string()))?
        .len();
    if len > MAX_RESTORE_BODY as u64 {
        return Err(bad_file(format!(
            "{len} bytes; an online restore takes at most {MAX_RESTORE_BODY} bytes \
             (one Raft entry, bounded by the Raft message limit); see docs/backup.md"
        )));
    }
    let bytes = std::fs::read(from).map_err(|e| bad_file(e.to_string()))?;
    let h: BackupHeader = backup::decode(&bytes)
        .map_err(|e| bad_file(format!("refused, nothing was changed: {e}")))?
        .0;
    let url = format!("{}/admin/v1/restore", target.server);
    let req = target
        .http
        .post(&url)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(bytes);
    let resp = target.send(req).await?;
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    let total: u64 = v["resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    println!(
        "restored the backup of cluster {} at index {} as revision {}: {total} resources, sha256 {}",
        h.cluster_id,
        h.index,
        v["revision"],
        h.sha256_hex()
    );
    if v["token_secret_replaced"].as_bool() == Some(true) {
        eprintln!(
            "note: admin tokens are now those of the backed-up cluster; tokens minted by this \
             cluster before the restore (including the one just used) no longer authenticate"
        );
    }
    Ok(())
}

/// `out` replaced by `bytes` or left as it was, never half-written; mode 0600 (a backup
/// holds the admin-token secret).
fn write_atomically(out: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = out
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file path"))?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, out)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("b.backup");
        std::fs::write(&out, b"old").expect("old file");
        write_atomically(&out, b"new contents").expect("write");
        assert_eq!(std::fs::read(&out).expect("read"), b"new contents");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "a temporary file was left: {names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

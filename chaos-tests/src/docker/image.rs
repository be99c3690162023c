//! The node image, built locally because this machine pulls nothing: `FROM scratch` with
//! the `raftgate` binary, the shared libraries `ldd` lists (and the dynamic loader) at the
//! same paths, an empty `/tmp` and a `/data` mount point. Tagged by the binary's hash, so
//! an unchanged binary reuses the image and a rebuilt one gets a new image.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::cmd::{docker, owned, run};
use crate::error::{ChaosError, Result};

/// Label on every image, container and network of the harness (for manual clean-up:
/// `docker rm -f $(docker ps -aq --filter label=raftgate-chaos)`).
pub const LABEL: &str = "raftgate-chaos";

/// Bound for `docker build` (sending a debug binary of a few hundred MB to the daemon).
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// The image to run for `bin`: `tag` when given, else `raftgate-chaos:<first 12 hex
/// digits of the binary's sha256>`; built when `docker image inspect` does not find it.
/// Blocking (hashing and building take seconds).
pub fn prepare(bin: &Path, tag: Option<&str>) -> Result<String> {
    let stat = stat_key(bin)?;
    let tag = match tag {
        Some(t) => t.to_string(),
        // An image labelled with this very file's identity was built from it: no need
        // to hash 500 MB again (seconds per test process).
        None => match find_by_label(&format!("{LABEL}.binary-stat={stat}")) {
            Some(t) => {
                eprintln!("chaos docker: reusing image {t}");
                return Ok(t);
            }
            None => format!("raftgate-chaos:{}", &sha256_hex(bin)?[..12]),
        },
    };
    if docker(&["image", "inspect", "--format", "{{.Id}}", &tag]).is_ok() {
        eprintln!("chaos docker: reusing image {tag}");
    } else {
        build(bin, &tag, &stat)?;
    }
    Ok(tag)
}

/// Path, size, mtime and inode of `bin`: changes whenever cargo writes a new binary.
fn stat_key(bin: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let path = std::fs::canonicalize(bin)
        .map_err(|e| ChaosError::io(format!("resolving {}", bin.display()), e))?;
    let m = std::fs::metadata(&path)
        .map_err(|e| ChaosError::io(format!("reading {}", path.display()), e))?;
    let id = format!(
        "{}:{}:{}.{}:{}:{}",
        path.display(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.dev(),
        m.ino()
    );
    // Label values are free text, but a short hex key keeps `docker inspect` readable.
    Ok(hex::encode(&Sha256::digest(id.as_bytes())[..8]))
}

/// `repository:tag` of an image carrying `label` (`key=value`), if any.
fn find_by_label(label: &str) -> Option<String> {
    let filter = format!("label={label}");
    let out = docker(&[
        "images",
        "--filter",
        &filter,
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ])
    .ok()?;
    out.lines()
        .map(str::trim)
        .find(|t| !t.is_empty() && !t.contains("<none>"))
        .map(str::to_string)
}

/// Assembles the context in a temp dir and runs `docker build -q`.
fn build(bin: &Path, tag: &str, stat: &str) -> Result<()> {
    let started = Instant::now();
    let ctx = tempfile::Builder::new()
        .prefix("raftgate-chaos-image-")
        .tempdir()
        .map_err(|e| ChaosError::io("creating the image build context", e))?;
    let hash = sha256_hex(bin)?;
    assemble(bin, ctx.path())?;
    let mut args = owned(&[
        "build",
        "-q",
        "--label",
        LABEL,
        "--label",
        &format!("{LABEL}.binary-sha256={hash}"),
        "--label",
        &format!("{LABEL}.binary-stat={stat}"),
        "-t",
        tag,
    ]);
    args.push(ctx.path().display().to_string());
    run("docker", &args, BUILD_TIMEOUT).map_err(|e| ChaosError::Io {
        what: format!("building image {tag}"),
        source: std::io::Error::other(e),
    })?;
    // Each rebuilt binary makes a new ~500 MB image: drop the harness's images older than
    // an hour that no container uses (best effort; the one just built is kept).
    let _ = docker(&[
        "image",
        "prune",
        "-a",
        "-f",
        "--filter",
        &format!("label={LABEL}"),
        "--filter",
        "until=1h",
    ]);
    let size = docker(&["image", "inspect", "--format", "{{.Size}}", tag])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or_else(
            || "size unknown".into(),
            |b| format!("{} MB", b / 1_000_000),
        );
    eprintln!(
        "chaos docker: built image {tag} ({size}) in {:.1?}",
        started.elapsed()
    );
    Ok(())
}

/// Writes `ctx/Dockerfile` and `ctx/rootfs/` (binary, libraries, loader, `tmp`, `data`).
fn assemble(bin: &Path, ctx: &Path) -> Result<()> {
    let rootfs = ctx.join("rootfs");
    copy_into(bin, &rootfs.join("raftgate"))?;
    for lib in shared_libraries(bin)? {
        let rel = lib.strip_prefix("/").unwrap_or(&lib);
        copy_into(&lib, &rootfs.join(rel))?;
    }
    for dir in ["tmp", "data"] {
        let path = rootfs.join(dir);
        std::fs::create_dir_all(&path)
            .map_err(|e| ChaosError::io(format!("creating {}", path.display()), e))?;
    }
    let tmp = rootfs.join("tmp");
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
        .map_err(|e| ChaosError::io(format!("chmod {}", tmp.display()), e))?;
    let dockerfile = "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/raftgate\"]\n";
    std::fs::write(ctx.join("Dockerfile"), dockerfile)
        .map_err(|e| ChaosError::io("writing the Dockerfile", e))
}

/// Absolute paths `ldd` resolves for `bin`, the loader included; none for a static binary.
fn shared_libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = match run("ldd", &[bin.display().to_string()], Duration::from_secs(30)) {
        Ok(out) => out,
        // ldd exits 1 with "not a dynamic executable" for a static binary.
        Err(e) if e.contains("not a dynamic executable") => return Ok(Vec::new()),
        Err(e) => {
            return Err(ChaosError::Io {
                what: format!("listing the libraries of {}", bin.display()),
                source: std::io::Error::other(e),
            })
        }
    };
    let mut libs = Vec::new();
    for line in out.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, `/lib64/ld-linux-x86-64.so.2 (0x...)`,
        // `linux-vdso.so.1 (0x...)` (in the kernel, nothing to copy).
        let target = line.split_once("=>").map_or(line, |(_, t)| t).trim();
        if target.starts_with("not found") {
            return Err(ChaosError::Invariant(format!(
                "ldd cannot resolve a library of {}: {line}",
                bin.display()
            )));
        }
        if let Some(path) = target
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Copies `from` (following symlinks) to `to`, creating the parent directories.
fn copy_into(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ChaosError::io(format!("creating {}", dir.display()), e))?;
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| ChaosError::io(format!("copying {} to {}", from.display(), to.display()), e))
}

/// The binary's sha256 in hex, remembered per (path, size, mtime): a suite starts a
/// cluster per scenario, and hashing a debug binary of 500 MB takes seconds.
fn sha256_hex(path: &Path) -> Result<String> {
    type Key = (PathBuf, u64, Option<SystemTime>);
    static SEEN: Mutex<BTreeMap<Key, String>> = Mutex::new(BTreeMap::new());
    let meta = std::fs::metadata(path)
        .map_err(|e| ChaosError::io(format!("reading {}", path.display()), e))?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some(hash) = SEEN.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(hash);
    }
    // coreutils is several times faster than sha2 in an unoptimised test build.
    let native = run("sha256sum", &[path.display().to_string()], BUILD_TIMEOUT)
        .ok()
        .and_then(|out| out.split_whitespace().next().map(str::to_string))
        .filter(|h| h.len() == 64);
    let hash = match native {
        Some(h) => h,
        None => {
            let mut file = File::open(path)
                .map_err(|e| ChaosError::io(format!("opening {}", path.display()), e))?;
            let mut hasher = Sha256::new();
            std::io::copy(&mut file, &mut hasher)
                .map_err(|e| ChaosError::io(format!("hashing {}", path.display()), e))?;
            hex::encode(hasher.finalize())
        }
    };
    if let Ok(mut m) = SEEN.lock() {
        m.insert(key, hash.clone());
    }
    Ok(hash)
}

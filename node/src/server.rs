//! The composition root of a node: binds the three listeners, starts Raft, the admin API
//! and the data plane, publishes `node.json`, joins on first start, and shuts down cleanly.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use raftgate_raft::{RaftNode, RaftSettings};
use raftgate_store::Node;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, AppState};
use crate::certs::NodeTls;
use crate::config::{ConfigError, NodeConfig};
use crate::metrics::Metrics;
use crate::secrets::SecretBox;

/// A running node, as `serve` and `dev` use it.
pub struct Running {
    pub state: AppState,
    pub admin_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The data-plane TLS listener, when configured.
    pub https_addr: Option<SocketAddr>,
    pub raft_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Refuses a data dir that belongs to another node id (exit 64 via `ConfigError`).
fn check_identity(data_dir: &Path, node_id: u64) -> Result<(), ConfigError> {
    let err = |m: String| ConfigError {
        key: "data_dir".into(),
        message: m,
    };
    std::fs::create_dir_all(data_dir)
        .map_err(|e| err(format!("cannot create {}: {e}", data_dir.display())))?;
    let path = data_dir.join("identity.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| err(format!("{} is corrupt: {e}", path.display())))?;
            match v["node_id"].as_u64() {
                Some(id) if id == node_id => Ok(()),
                Some(id) => Err(err(format!(
                    "{} belongs to node {id}, not node {node_id}",
                    data_dir.display()
                ))),
                None => Err(err(format!("{} has no node_id", path.display()))),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_durably(&path, &serde_json::json!({"node_id": node_id}).to_string())
                .map_err(|e| err(e.to_string()))
        }
        Err(e) => Err(err(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Writes via a temporary file, fsync and rename, so readers never see half a file.
fn write_durably(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

async fn bind(key: &str, addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{key}: cannot listen on {addr}"))
}

/// Starts every part of a node and returns once all listeners are bound.
pub async fn start(cfg: &NodeConfig) -> anyhow::Result<Running> {
    check_identity(&cfg.data_dir, cfg.node_id)?;
    let secrets = SecretBox::from_config(cfg)?.map(Arc::new);
    crate::secrets::check_policy(cfg, secrets.as_deref())?;
    let oidc = crate::admin::oidc::OidcVerifier::from_config(cfg)?;
    let tls = NodeTls::load(cfg)?;
    if tls.is_none() && cfg.join_token.is_some() {
        tracing::warn!("join_token is set without TLS: it crosses the network in clear text (see docs/security.md)");
    }
    let admin_l = bind("admin_addr", &cfg.admin_addr).await?;
    let http_l = bind("http_addr", &cfg.http_addr).await?;
    let https_l = match &cfg.https_addr {
        Some(a) => Some(bind("https_addr", a).await?),
        None => None,
    };
    let https_addr = https_l.as_ref().map(|l| l.local_addr()).transpose()?;
    let raft_l = bind("raft_addr", &cfg.raft_addr).await?;
    let (admin_addr, http_addr, raft_addr) = (
        admin_l.local_addr()?,
        http_l.local_addr()?,
        raft_l.local_addr()?,
    );
    let host = |a: &SocketAddr| cfg.advertised_host(a);
    let admin_scheme = if tls.is_some() { "https" } else { "http" };
    let me = Node {
        raft_addr: format!("{}:{}", host(&raft_addr), raft_addr.port()),
        admin_url: format!(
            "{admin_scheme}://{}:{}",
            host(&admin_addr),
            admin_addr.port()
        ),
        http_addr: format!("{}:{}", host(&http_addr), http_addr.port()),
    };
    let settings = RaftSettings {
        snapshot_logs_since_last: cfg.snapshot_logs,
        tls: tls.as_ref().map(|t| t.peer.clone()),
        ..RaftSettings::default()
    };
    let (raft, config) = RaftNode::start(cfg.node_id, me.clone(), &cfg.data_dir, settings)
        .await
        .with_context(|| format!("cannot start Raft with data dir {}", cfg.data_dir.display()))?;

    let metrics = Arc::new(Metrics::new());
    let mut http = reqwest::Client::builder().timeout(Duration::from_secs(90));
    if let Some(t) = &tls {
        http = t.admin_client(http)?;
    }
    let http = http.build().context("HTTP client")?;
    let state = AppState {
        raft: raft.clone(),
        config,
        metrics: metrics.clone(),
        http,
        secrets,
        join_token: cfg.join_token.as_deref().map(|t| Arc::from(t.trim())),
        oidc,
    };
    let (stop, stopped) = watch::channel(false);
    let until = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let mut tasks = Vec::new();
    let r = raft.clone();
    let s = until(stopped.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = r.serve(raft_l, s).await {
            tracing::error!(error = %e, "raft gRPC server stopped");
        }
    }));
    // Hostile-input limits for every port (docs/data-plane.md, "Limits on hostile input").
    let shield = crate::shield::Shield::new(cfg.limits.clone(), metrics.registry());
    let app = admin::router(state.clone()).layer(axum::middleware::from_fn_with_state(
        shield.clone(),
        crate::shield::admin::guard,
    ));
    let s = until(stopped.clone());
    let admin_tls = tls
        .as_ref()
        .map(|t| Arc::new(arc_swap::ArcSwap::new(t.admin.clone())));
    if let (Some(t), Some(admin)) = (&tls, &admin_tls) {
        let live = crate::tls_reload::LiveTls {
            raft: raft.clone(),
            admin: admin.clone(),
            loaded: t.peer.clone(),
        };
        tasks.push(tokio::spawn(live.watch(cfg.clone(), stopped.clone())));
    }
    tasks.push(tokio::spawn(crate::shield::admin::serve(
        admin_l,
        app,
        shield.clone(),
        admin_tls,
        s,
    )));
    let access_log = match &cfg.access_log {
        Some(dest) => {
            let rotation = crate::telemetry::rotate::Rotation {
                max_bytes: cfg.access_log_max_bytes,
                keep: cfg.access_log_keep,
            };
            let log = crate::proxy::access::AccessLog::start(dest, rotation)
                .with_context(|| format!("access_log: cannot open {dest}"))?;
            tasks.push(tokio::spawn(reopen_on_sighup(log.clone(), stopped.clone())));
            Some(log)
        }
        None => None,
    };
    let call_log = if cfg.call_log {
        let keep = raftgate_store::calllog::Retention {
            max_age_us: cfg.call_log_max_age_secs.saturating_mul(1_000_000),
            max_bytes: cfg.call_log_max_bytes,
        };
        let log = crate::calllog::CallLog::start(
            raft.call_logs().clone(),
            raft.rollups().clone(),
            cfg.node_id,
            keep,
            metrics.registry(),
        )
        .context("starting the call log writer")?;
        tasks.push(tokio::spawn(log.clone().stop_on(stopped.clone())));
        Some(log)
    } else {
        None
    };
    let quotas = crate::quota::Quotas::new(Some(raft.clone()), metrics.registry());
    tasks.push(tokio::spawn(quotas.clone().run(stopped.clone())));
    let llm = crate::llm::Llm::new(metrics.registry(), state.secrets.clone(), quotas.clone());
    let dp = crate::proxy::DataPlane::new(
        state.config.clone(),
        metrics.registry(),
        state.secrets.clone(),
        access_log,
        call_log,
        quotas,
        llm,
    );
    let _ = dp.shield.set(shield);
    if let Some(endpoint) = &cfg.otlp_endpoint {
        let otlp = crate::telemetry::otlp::OtlpConfig {
            endpoint: endpoint.clone(),
            service_name: cfg.otlp_service_name.clone(),
            sample_ratio: cfg.otlp_sample_ratio,
            node_id: cfg.node_id,
        };
        let (tracer, export) =
            crate::telemetry::otlp::Tracer::start(otlp, metrics.registry(), stopped.clone())
                .context("starting the OTLP exporter")?;
        let _ = dp.tracer.set(tracer);
        tasks.push(tokio::spawn(export));
    }
    tasks.push(tokio::spawn(dp.clone().refresh_loop(stopped.clone())));
    tasks.push(tokio::spawn(crate::dataplane::serve(
        http_l,
        dp.clone(),
        until(stopped.clone()),
    )));
    if let Some(l) = https_l {
        tasks.push(tokio::spawn(crate::dataplane::serve_tls(
            l,
            dp.clone(),
            until(stopped.clone()),
        )));
    }
    tasks.push(tokio::spawn(watch_snapshots(raft.clone(), metrics)));

    let info = serde_json::json!({
        "node_id": cfg.node_id, "pid": std::process::id(),
        "http_addr": http_addr.to_string(), "https_addr": https_addr.map(|a| a.to_string()), "admin_addr": admin_addr.to_string(), "raft_addr": raft_addr.to_string(),
        "admin_url": me.admin_url, "advertised_raft_addr": me.raft_addr,
    });
    write_durably(&cfg.data_dir.join("node.json"), &info.to_string())
        .context("writing node.json")?;
    tracing::info!(node_id = cfg.node_id, admin = %admin_addr, http = %http_addr, raft = %raft_addr, "node listening");
    Ok(Running {
        state,
        admin_addr,
        http_addr,
        https_addr,
        raft_addr,
        stop,
        tasks,
    })
}

/// `bootstrap = true`: a data dir without a cluster becomes a one-node cluster, and the
/// first admin token goes to `DATA_DIR/admin-token` (mode 0600; the path is logged, the
/// token never). A data dir that already holds a cluster is left alone.
pub async fn bootstrap(state: &AppState, data_dir: &Path) -> anyhow::Result<()> {
    let has_cluster = state.config.load().state.cluster().is_some()
        || state
            .raft
            .raft()
            .is_initialized()
            .await
            .context("bootstrap: reading Raft state")?;
    if has_cluster {
        tracing::info!("bootstrap: the data dir already holds a cluster; nothing to do");
        return Ok(());
    }
    let path = data_dir.join("admin-token");
    // Prove the token can be written before the cluster exists: afterwards it is too late.
    let tmp = path.with_extension("tmp");
    write_private(&tmp, "")
        .with_context(|| format!("bootstrap: cannot write {}", tmp.display()))?;
    let (cluster_id, token) = admin::cluster::init_cluster(state)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap: {} ({})", e.message, e.code))?;
    write_private(
        &tmp,
        &format!(
            "{token}
"
        ),
    )
    .and_then(|()| std::fs::rename(&tmp, &path))
    .with_context(|| format!("bootstrap: cannot write {}", path.display()))?;
    tracing::info!(%cluster_id, path = %path.display(), "bootstrap: new cluster; first admin token written");
    Ok(())
}

/// Creates or truncates `path` with mode 0600 and writes `contents` durably.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // A file left by an earlier run keeps its mode; force it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

/// Counts snapshots for `/metrics` by watching the snapshot log id move.
async fn watch_snapshots(raft: RaftNode, metrics: Arc<Metrics>) {
    let mut rx = raft.metrics();
    let mut last = rx.borrow().snapshot;
    while rx.changed().await.is_ok() {
        let now = rx.borrow().snapshot;
        if now != last {
            metrics.snapshot_taken();
            last = now;
        }
    }
}

/// Joins the cluster at `via` unless this node already belongs to it; retries while the
/// cluster cannot answer (the first nodes of a deployment often start together). Returns
/// an error when joining can never succeed: refused token, or a data dir that belongs to
/// another cluster.
pub async fn join_on_first_start(
    state: AppState,
    via: String,
    token: Option<String>,
    learner: bool,
) -> anyhow::Result<()> {
    if token.is_none() && state.join_token.is_none() {
        anyhow::bail!(
            "--join needs the cluster's join token (--join-token or RAFTGATE_JOIN_TOKEN) or an admin token (--token or RAFTGATE_TOKEN)"
        );
    }
    let token = token.as_deref();
    let member = state.config.load().state.cluster().is_some();
    let mut pause = Duration::from_millis(500);
    loop {
        let attempt = if member {
            admin::cluster::check_same_cluster(&state, via.trim_end_matches('/'), token)
                .await
                .map(|_| ())
        } else {
            admin::cluster::join_cluster(&state, &via, token, learner)
                .await
                .map(|_| ())
        };
        match attempt {
            Ok(()) if member => {
                tracing::info!(
                    "already a member of the cluster at {via}; --join has nothing to do"
                );
                return Ok(());
            }
            Ok(()) => return Ok(()),
            Err(e) if e.status.is_client_error() || e.code == "tls_error" => {
                anyhow::bail!(
                    "cannot join the cluster at {via}: {} ({})",
                    e.message,
                    e.code
                )
            }
            Err(e) => {
                tracing::warn!(code = e.code, message = %e.message, "join attempt failed; retrying")
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

impl Running {
    /// Stops listeners and Raft, waiting for in-flight work to drain (bounded).
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        self.state.raft.shutdown().await;
        // One deadline for all listeners to drain; whatever is left is cut off.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        for t in self.tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// `raftgate serve`: runs until SIGINT or SIGTERM.
pub async fn serve(cfg: NodeConfig, token: Option<String>) -> anyhow::Result<()> {
    let running = start(&cfg).await?;
    if cfg.bootstrap {
        if let Err(e) = bootstrap(&running.state, &cfg.data_dir).await {
            running.shutdown().await;
            return Err(e);
        }
    }
    let join = async {
        match cfg.join.clone() {
            Some(via) => join_on_first_start(running.state.clone(), via, token, false).await,
            None => Ok(()),
        }
    };
    // A join that can never succeed stops the node with an error; otherwise run until a signal.
    let outcome = tokio::select! {
        _ = shutdown_signal() => Ok(()),
        joined = join => match joined {
            Ok(()) => {
                shutdown_signal().await;
                Ok(())
            }
            Err(e) => Err(e),
        },
    };
    tracing::info!("shutting down");
    running.shutdown().await;
    outcome
}

/// SIGHUP makes the access log reopen its file (after logrotate moved it away).
async fn reopen_on_sighup(
    log: crate::proxy::access::AccessLog,
    mut stopped: watch::Receiver<bool>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; the access log will not reopen");
            return;
        }
    };
    loop {
        tokio::select! {
            Some(()) = hup.recv() => {
                tracing::info!("SIGHUP: reopening the access log");
                log.reopen();
            }
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

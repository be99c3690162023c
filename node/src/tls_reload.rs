//! Certificate rotation without downtime: the node re-reads `tls_ca`, `tls_cert` and
//! `tls_key` every few seconds and on SIGHUP, and when their bytes changed and form a
//! usable set, swaps them in for new handshakes on the Raft port, new connections to
//! peers and the admin port's HTTPS. A half-written or mismatched set (certificate
//! copied, key not yet) is refused with a warning and the current material stays; the
//! next poll tries again.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use raftgate_raft::{PeerTls, RaftNode};
use tokio::sync::watch;

use crate::certs::NodeTls;
use crate::config::NodeConfig;

/// How often the files are compared with what is loaded.
pub const POLL: Duration = Duration::from_secs(5);

/// What the running node serves with; swapped as a whole.
pub struct LiveTls {
    pub raft: RaftNode,
    pub admin: Arc<ArcSwap<rustls::ServerConfig>>,
    pub loaded: PeerTls,
}

impl LiveTls {
    /// Loads the files again; swaps when they changed and are usable. `Ok(true)`: new
    /// material in use; `Ok(false)`: unchanged; `Err`: refused (message names the key).
    pub fn reload(&mut self, cfg: &NodeConfig) -> Result<bool, String> {
        let (Some(ca), Some(cert), Some(key)) = (&cfg.tls_ca, &cfg.tls_cert, &cfg.tls_key) else {
            return Err("TLS settings are gone from the config".into());
        };
        let unchanged = |path: &std::path::Path, loaded: &[u8]| {
            std::fs::read(path).is_ok_and(|bytes| bytes == loaded)
        };
        if unchanged(ca, &self.loaded.ca_pem)
            && unchanged(cert, &self.loaded.cert_pem)
            && unchanged(key, &self.loaded.key_pem)
        {
            return Ok(false);
        }
        let Some(next) = NodeTls::load(cfg).map_err(|e| e.to_string())? else {
            return Err("TLS settings are gone from the config".into());
        };
        if next.peer == self.loaded {
            return Ok(false);
        }
        self.raft
            .reload_tls(&next.peer)
            .map_err(|e| e.to_string())?;
        self.admin.store(next.admin);
        self.loaded = next.peer;
        Ok(true)
    }

    /// Polls every [`POLL`] and on SIGHUP until `stopped`.
    pub async fn watch(mut self, cfg: NodeConfig, mut stopped: watch::Receiver<bool>) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error: Option<String> = None;
        loop {
            let hupped = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => {}
                _ = hupped => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            match self.reload(&cfg) {
                Ok(true) => {
                    last_error = None;
                    tracing::info!("TLS: new certificate material in use for new connections");
                }
                Ok(false) => last_error = None,
                // Say it once per distinct problem, not every poll.
                Err(e) if last_error.as_deref() != Some(e.as_str()) => {
                    tracing::warn!(error = %e, "TLS: changed files are not usable; keeping the current certificate");
                    last_error = Some(e);
                }
                Err(_) => {}
            }
        }
    }
}

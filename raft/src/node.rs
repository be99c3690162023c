//! `RaftNode`: one member of the cluster — openraft over the RocksDB store, plus its gRPC server.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::{Raft, RaftMetrics};
use raftgate_store::{CallLogStore, ConfigHandle, RollupStore, Storage};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;

use crate::error::{from_fatal, from_init_error, RaftGateError, StartError};
use crate::network::NetworkFactory;
use crate::peers::Peers;
use crate::server;
use crate::settings::RaftSettings;
use crate::tls::{PeerTls, ProbeError, ProbedPeer, TlsFileError};
use crate::tls_live::LiveServerTls;
use crate::{Node, NodeId, TypeConfig};

/// A running Raft member. Cheap to clone; all clones drive the same node.
#[derive(Clone)]
pub struct RaftNode {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) id: NodeId,
    pub(crate) me: Node,
    pub(crate) raft: Raft<TypeConfig>,
    pub(crate) config: ConfigHandle,
    pub(crate) peers: Peers,
    pub(crate) settings: RaftSettings,
    /// This node's call log (node-local), served to peers by `QueryCallLogs`.
    pub(crate) calllog: CallLogStore,
    /// This node's analytics rollups (node-local), served to peers by `QueryRollups`.
    pub(crate) rollup: RollupStore,
    /// The Raft port's TLS material, replaceable at run time; `None` without TLS.
    live_tls: Option<Arc<LiveServerTls>>,
    /// Flipped by [`RaftNode::shutdown`] to stop the gRPC server too.
    stopped: watch::Sender<bool>,
}

impl RaftNode {
    /// Opens the store under `data_dir` and starts Raft. The node does nothing until it is
    /// initialized ([`RaftNode::initialize`]) or added to a cluster by its leader; a node
    /// that was a member before a restart resumes on its own.
    ///
    /// Returns the handle to the replicated configuration the state machine publishes.
    pub async fn start(
        id: NodeId,
        me: Node,
        data_dir: &Path,
        cfg: RaftSettings,
    ) -> Result<(RaftNode, ConfigHandle), StartError> {
        let storage = raftgate_store::open(data_dir)?;
        let config = storage.config.clone();
        let node = RaftNode::start_with_storage(id, me, storage, cfg).await?;
        Ok((node, config))
    }

    /// Like [`RaftNode::start`], for callers that opened the store themselves (e.g. to keep
    /// its node-local part). Takes the log and state machine out of `storage`.
    pub async fn start_with_storage(
        id: NodeId,
        me: Node,
        storage: Storage,
        cfg: RaftSettings,
    ) -> Result<RaftNode, StartError> {
        cfg.validate().map_err(StartError::Settings)?;
        let raft_config = Arc::new(cfg.openraft_config().map_err(StartError::Settings)?);
        let peers = Peers::with_tls(cfg.connect_timeout(), cfg.tls.as_ref());
        let live_tls = match &cfg.tls {
            Some(tls) => Some(Arc::new(
                LiveServerTls::new(tls).map_err(|e| StartError::Settings(e.to_string()))?,
            )),
            None => None,
        };
        let network = NetworkFactory {
            peers: peers.clone(),
            id,
        };
        let raft = Raft::new(id, raft_config, network, storage.log, storage.sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        let (stopped, _) = watch::channel(false);
        let inner = Inner {
            id,
            me,
            raft,
            config: storage.config,
            calllog: storage.calllog,
            rollup: storage.rollup,
            peers,
            settings: cfg,
            live_tls,
            stopped,
        };
        Ok(RaftNode {
            inner: Arc::new(inner),
        })
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// This node's advertised addresses.
    pub fn me(&self) -> &Node {
        &self.inner.me
    }

    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.inner.raft
    }

    pub fn settings(&self) -> &RaftSettings {
        &self.inner.settings
    }

    /// The latest replicated configuration, as published by this node's state machine.
    pub fn config(&self) -> &ConfigHandle {
        &self.inner.config
    }

    /// openraft's metrics channel: role, term, leader, log and apply progress, membership.
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics<NodeId, Node>> {
        self.inner.raft.metrics()
    }

    /// The current leader as this node knows it (may be stale by one election).
    pub fn current_leader(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow().current_leader
    }

    /// Resolves once the leader this node knows differs from `from`: a caller waiting on
    /// an answer from (or for) `from` stops waiting when leadership moves. Never resolves
    /// once the node shuts down.
    pub async fn leader_changed_from(&self, from: Option<NodeId>) {
        let mut metrics = self.inner.raft.metrics();
        if metrics
            .wait_for(|m| m.current_leader != from)
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }

    /// Both gRPC services (Raft + cluster management), for callers composing their own server.
    pub fn grpc_routes(&self) -> Routes {
        server::routes(self.clone())
    }

    /// Serves the gRPC services on `listener` until `shutdown` resolves or
    /// [`RaftNode::shutdown`] is called, then drains in-flight calls.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let mut stopped = self.inner.stopped.subscribe();
        let signal = async move {
            tokio::select! {
                _ = shutdown => {}
                _ = stopped.wait_for(|s| *s) => {}
            }
        };
        let builder = server::builder().add_routes(self.grpc_routes());
        match &self.inner.live_tls {
            Some(live) => {
                // Our own acceptor, so certificates can be replaced without a restart.
                let (done, done_rx) = tokio::sync::oneshot::channel();
                let incoming = live.clone().incoming(listener, done_rx);
                let res = builder.serve_with_incoming_shutdown(incoming, signal).await;
                let _ = done.send(());
                res
            }
            None => {
                let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                builder.serve_with_incoming_shutdown(incoming, signal).await
            }
        }
    }

    /// Replaces this node's TLS material (after a certificate rotation): new handshakes
    /// on the Raft port and new connections to peers use it; established connections
    /// finish with the old. Refused, keeping the current material, when `tls` is not
    /// usable or the node runs without TLS (TLS cannot be switched on at run time).
    pub fn reload_tls(&self, tls: &PeerTls) -> Result<(), TlsFileError> {
        let Some(live) = &self.inner.live_tls else {
            return Err(TlsFileError {
                key: "tls_cert",
                message: "this node was started without TLS; restart it to turn TLS on".into(),
            });
        };
        live.replace(tls)?;
        self.inner.peers.set_tls(tls.client_config());
        Ok(())
    }

    /// True when the Raft port and outgoing RPCs use mutual TLS.
    pub fn tls_enabled(&self) -> bool {
        self.inner.settings.tls.is_some()
    }

    /// Dials `raft_addr` the way Raft will (mutual TLS when configured) on a fresh
    /// connection and asks who it is. Run before adding a member, so a node whose
    /// certificate the cluster does not trust (or that does not trust ours) is refused
    /// up front instead of becoming a member nobody can talk to.
    pub async fn probe_peer(&self, raft_addr: &str) -> Result<ProbedPeer, ProbeError> {
        let timeout = self.inner.settings.connect_timeout() + Duration::from_secs(3);
        self.inner.peers.probe(raft_addr, timeout).await
    }

    /// Bootstraps a new one-node cluster with this node as its only voter.
    ///
    /// Fails with [`RaftGateError::AlreadyInitialized`] on a node that already has a
    /// membership. Waits (briefly) until this node leads, so a first write goes straight in.
    pub async fn initialize(&self) -> Result<(), RaftGateError> {
        let raft = &self.inner.raft;
        if raft.is_initialized().await.map_err(from_fatal)? {
            return Err(RaftGateError::AlreadyInitialized);
        }
        let members = BTreeMap::from([(self.inner.id, self.inner.me.clone())]);
        raft.initialize(members).await.map_err(from_init_error)?;
        let wait = raft.wait(Some(self.inner.settings.write_timeout()));
        if let Err(e) = wait.current_leader(self.inner.id, "initialize").await {
            tracing::warn!(error = %e, "initialized, but not yet leader");
        }
        Ok(())
    }

    /// True once this node belongs to a cluster (initialized here or joined by a leader).
    pub fn is_initialized(&self) -> bool {
        self.inner
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .next()
            .is_some()
    }

    /// Stops Raft and the gRPC server started by [`RaftNode::serve`]. Idempotent.
    pub async fn shutdown(&self) {
        self.inner.stopped.send_replace(true);
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft core ended abnormally");
        }
    }

    /// Time left until `deadline`, never negative.
    pub(crate) fn remaining(deadline: tokio::time::Instant) -> Duration {
        deadline.saturating_duration_since(tokio::time::Instant::now())
    }
}

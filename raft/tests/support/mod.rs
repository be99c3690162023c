//! Test harness: real RaftNodes (RocksDB in temp dirs, gRPC on 127.0.0.1 port 0) in one process.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raftgate_raft::{Node, NodeId, RaftNode, RaftSettings, StartError};
use raftgate_store::model::{Kind, Resource, Tenant};
use raftgate_store::{Command, ConfigHandle, Op};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Generous upper bound for anything that should happen "soon" on a loaded 2-core CI box.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub struct TestNode {
    pub id: NodeId,
    pub raft: RaftNode,
    pub config: ConfigHandle,
    pub me: Node,
    pub dir: PathBuf,
    server: JoinHandle<()>,
}

impl TestNode {
    /// Starts node `id` with its data in `dir`, serving on `addr` (port 0: any free port).
    pub async fn start(id: NodeId, dir: &Path, addr: &str, settings: RaftSettings) -> TestNode {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let raft_addr = listener.local_addr().expect("local addr").to_string();
        let me = Node {
            raft_addr: raft_addr.clone(),
            admin_url: format!("http://{raft_addr}"),
            http_addr: raft_addr,
        };
        // A node restarted in-process may find RocksDB still locked while the previous
        // instance's tasks wind down: retry opening until the deadline.
        let deadline = Instant::now() + PATIENCE;
        let (raft, config) = loop {
            match RaftNode::start(id, me.clone(), dir, settings.clone()).await {
                Ok(started) => break started,
                Err(StartError::Open(e)) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("start node {id}: {e}"),
            }
        };
        let serving = raft.clone();
        let server = tokio::spawn(async move {
            serving
                .serve(listener, std::future::pending())
                .await
                .expect("grpc server");
        });
        TestNode {
            id,
            raft,
            config,
            me,
            dir: dir.to_path_buf(),
            server,
        }
    }

    /// Stops Raft and the gRPC server, waiting until the port is closed.
    pub async fn stop(self) -> (PathBuf, String) {
        self.raft.shutdown().await;
        let mut server = self.server;
        if tokio::time::timeout(PATIENCE, &mut server).await.is_err() {
            server.abort();
        }
        (self.dir, self.me.raft_addr)
    }

    pub fn has_tenant(&self, id: &str) -> bool {
        self.config.load().state.get(Kind::Tenant, id).is_some()
    }
}

/// Nodes 1..=n started (not yet joined), each with its own temp data dir.
pub struct Cluster {
    pub nodes: BTreeMap<NodeId, TestNode>,
    pub settings: RaftSettings,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    pub async fn start(n: u64, settings: RaftSettings) -> Cluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            let dir = tmp.path().join(format!("node{id}"));
            nodes.insert(
                id,
                TestNode::start(id, &dir, "127.0.0.1:0", settings.clone()).await,
            );
        }
        Cluster {
            nodes,
            settings,
            _tmp: tmp,
        }
    }

    /// Initializes node 1, applies InitCluster, and joins every other node as a voter.
    pub async fn form(n: u64, settings: RaftSettings) -> Cluster {
        let cluster = Cluster::start(n, settings).await;
        let first = cluster.node(1);
        first.raft.initialize().await.expect("initialize");
        let resp = first
            .raft
            .write(init_cluster())
            .await
            .expect("init cluster write");
        assert!(resp.result.is_ok(), "{resp:?}");
        for id in 2..=n {
            let me = cluster.node(id).me.clone();
            first.raft.add_member(id, me).await.expect("add member");
        }
        cluster
    }

    pub fn node(&self, id: NodeId) -> &TestNode {
        self.nodes.get(&id).expect("no such node")
    }

    /// The leader all running nodes agree on, waiting for one to emerge.
    pub async fn leader(&self) -> NodeId {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        eventually("a leader all nodes agree on", || {
            let leaders: Vec<Option<NodeId>> = ids
                .iter()
                .map(|id| self.node(*id).raft.current_leader())
                .collect();
            let agreed =
                leaders[0].filter(|l| ids.contains(l) && leaders.iter().all(|x| *x == Some(*l)));
            async move { agreed }
        })
        .await
    }
}

/// Polls `probe` until it yields `Some`, failing the test after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn init_cluster() -> Command {
    Command::new(
        "test",
        Op::InitCluster {
            cluster_id: "test-cluster".into(),
            token_secret: vec![7; 32],
        },
    )
}

pub fn tenant(id: &str) -> Command {
    let tenant = Tenant {
        id: id.into(),
        name: format!("tenant {id}"),
        description: String::new(),
        labels: BTreeMap::new(),
        guardrails: None,
    };
    Command::new("test", Op::Create(Resource::Tenant(tenant)))
}

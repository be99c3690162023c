//! Hostile or broken input on the Raft port is rejected with an error; the node keeps serving.

mod support;

use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, SnapshotMeta, StoredMembership, Vote,
};
use raftgate_proto::cluster_service_client::ClusterServiceClient;
use raftgate_proto::raft_service_client::RaftServiceClient;
use raftgate_proto::{AddMemberRequest, ForwardRequest, RaftRequest, SnapshotChunk};
use raftgate_raft::{RaftSettings, TypeConfig};
use raftgate_store::codec;
use support::{tenant, Cluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

fn invalid<T>(r: Result<T, tonic::Status>) -> bool {
    matches!(r, Err(s) if s.code() == Code::InvalidArgument)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_rejected_and_the_node_keeps_serving() {
    let cluster = Cluster::form(1, RaftSettings::default()).await;
    let node = cluster.node(1);
    let addr = node.me.raft_addr.clone();

    // Not HTTP/2 at all: the connection is dropped, nothing else happens.
    let mut raw = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\xfe garbage \x01\x02\x03")
        .await
        .expect("send");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(support::PATIENCE, raw.read_to_end(&mut sink))
        .await
        .expect("server closes");

    let url = format!("http://{addr}");
    let mut raft = RaftServiceClient::connect(url.clone())
        .await
        .expect("grpc connect");
    let mut cluster_api = ClusterServiceClient::connect(url)
        .await
        .expect("grpc connect");

    // Valid protobuf, payloads that do not decode: empty, unknown version, junk, trailing bytes.
    let vote = VoteRequest::<u64>::new(Vote::new(0, 99), None);
    let mut trailing = codec::encode(&vote).unwrap();
    trailing.push(0);
    for data in [
        vec![],
        vec![42, 1, 2],
        vec![1, 0xff, 0xff, 0xff, 0xff],
        trailing,
    ] {
        assert!(invalid(raft.vote(RaftRequest { data: data.clone() }).await));
        assert!(invalid(
            raft.append_entries(RaftRequest { data: data.clone() })
                .await
        ));
        assert!(invalid(
            cluster_api
                .forward(ForwardRequest {
                    command: data.clone()
                })
                .await
        ));
        let add = AddMemberRequest {
            id: 9,
            node: data,
            voter: true,
        };
        assert!(invalid(cluster_api.add_member(add).await));
    }

    // Decodable but invalid: entries with a gap after prev_log_id.
    let gap = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(1, 99),
        prev_log_id: None,
        leader_commit: None,
        entries: vec![Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 99), 5),
            payload: EntryPayload::Blank,
        }],
    };
    let data = codec::encode(&gap).unwrap();
    assert!(invalid(raft.append_entries(RaftRequest { data }).await));

    // A snapshot chunk far beyond anything received (would make us allocate terabytes).
    let meta = SnapshotMeta::<u64, raftgate_raft::Node> {
        last_log_id: None,
        last_membership: StoredMembership::default(),
        snapshot_id: "evil".into(),
    };
    let chunk = |meta_bytes: Vec<u8>, offset| SnapshotChunk {
        vote: codec::encode(&Vote::new_committed(99, 99)).unwrap(),
        meta: meta_bytes,
        offset,
        data: vec![0; 16],
        done: false,
    };
    assert!(invalid(
        raft.install_snapshot(chunk(codec::encode(&meta).unwrap(), 1 << 40))
            .await
    ));
    assert!(invalid(
        raft.install_snapshot(chunk(vec![1, 2, 3], 0)).await
    ));

    // A well-formed vote from a stranger with a stale term is answered, and changes nothing.
    let reply = raft
        .vote(RaftRequest {
            data: codec::encode(&vote).unwrap(),
        })
        .await
        .expect("vote answered");
    assert!(reply.into_inner().result.is_some());

    // Still the leader, still writing.
    assert_eq!(node.raft.current_leader(), Some(1));
    let resp = node
        .raft
        .write(tenant("still-here"))
        .await
        .expect("write after garbage");
    assert!(resp.result.is_ok(), "{resp:?}");
    assert!(node.raft.status().await.members.iter().all(|m| m.reachable));
}

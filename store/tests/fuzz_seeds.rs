//! One realistic value of every type the `raft_decode` fuzz target decodes: each must
//! round-trip through the codec, and with `RAFTGATE_FUZZ_SEEDS=<dir>` they are written
//! as that target's seed corpus (`[selector][encoded value]`, selectors as in the
//! target's `SELECTORS` table), so the fuzzer starts from valid encodings instead of
//! having to discover bincode layouts. Regenerate after a format change:
//! `RAFTGATE_FUZZ_SEEDS=$PWD/fuzz/corpus/raft_decode cargo test --workspace --test fuzz_seeds`
//! (absolute: the test runs in `store/`).

use std::collections::{BTreeMap, BTreeSet};

use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{CommittedLeaderId, EntryPayload, LogId, Membership, StoredMembership};
use raftgate_store::calllog::{CallFilter, CallPage, CallQuery, CallRecord, Pos};
use raftgate_store::model::{Kind, Resource};
use raftgate_store::rollup::{Dimension, GroupBy, RollupGroup, RollupPage, RollupQuery, Stats};
use raftgate_store::state::{ClusterMeta, State};
use raftgate_store::types::{Entry, SnapshotMeta, Vote};
use raftgate_store::{backup, codec, Command, Node, Op, Response, TypeConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

fn command(op: Op) -> Command {
    Command::new("admin", op)
}

fn resource(kind: Kind, body: serde_json::Value) -> Resource {
    Resource::from_json(kind, body).expect("sample resource parses")
}

fn sample_ops() -> Vec<Op> {
    vec![
        Op::InitCluster {
            cluster_id: "c-1".into(),
            token_secret: vec![7; 32],
        },
        Op::Create(resource(
            Kind::Tenant,
            json!({"id": "acme", "name": "Acme"}),
        )),
        Op::Create(resource(
            Kind::Upstream,
            json!({"id": "echo", "targets": [{"address": "10.0.0.5:8080"}]}),
        )),
        Op::Create(resource(
            Kind::Route,
            json!({"id": "users", "hosts": ["api.example.com"], "path": "/users/{id}",
                   "methods": ["GET"], "target": {"upstream": "echo"},
                   "policies": [{"rewrite": {"template": "/v2/users/{id}"}}]}),
        )),
        Op::Delete {
            kind: Kind::Route,
            id: "users".into(),
        },
    ]
}

fn node(i: u64) -> Node {
    Node {
        raft_addr: format!("10.0.0.{i}:9090"),
        admin_url: format!("http://10.0.0.{i}:9080"),
        http_addr: format!("10.0.0.{i}:8080"),
    }
}

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(2, 1), index)
}

fn membership() -> StoredMembership<u64, Node> {
    let voters: BTreeSet<u64> = [1, 2, 3].into();
    let nodes: BTreeMap<u64, Node> = (1..=3).map(|i| (i, node(i))).collect();
    StoredMembership::new(Some(log_id(1)), Membership::new(vec![voters], nodes))
}

fn record() -> CallRecord {
    CallRecord {
        time_us: 1_700_000_000_000_000,
        seq: 4,
        node_id: 1,
        request_id: "req-1".into(),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        model: Some("gpt-4o".into()),
        status: 200,
        latency_us: 120_000,
        tokens_in: Some(12),
        tokens_out: Some(30),
        ..CallRecord::default()
    }
}

/// `[selector][encoding]` of every sample; selectors index the target's table.
fn seeds() -> Vec<(u8, String, Vec<u8>)> {
    fn enc<T: Serialize + DeserializeOwned>(v: &T) -> Vec<u8> {
        let bytes = codec::encode(v).expect("encodes");
        let back: T = codec::decode(&bytes).expect("decodes");
        assert_eq!(codec::encode(&back).expect("encodes"), bytes, "round trip");
        bytes
    }
    let ops = sample_ops();
    let mut state = State::default();
    for (i, op) in ops.iter().take(4).enumerate() {
        let applied = state.apply(i as u64 + 1, &command(op.clone()), &mut Vec::new());
        applied.expect("sample command applies");
    }
    let image = state.to_image();
    let entries: Vec<Entry> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| Entry {
            log_id: log_id(i as u64 + 1),
            payload: EntryPayload::Normal(command(op.clone())),
        })
        .chain([Entry {
            log_id: log_id(9),
            payload: EntryPayload::Membership(membership().membership().clone()),
        }])
        .collect();
    let mut stats = Stats::default();
    stats.add_record(&record());
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        out.push((0, format!("entry-{i}"), enc(e)));
    }
    for (i, op) in ops.iter().enumerate() {
        out.push((1, format!("command-{i}"), enc(&command(op.clone()))));
    }
    out.push((2, "response".into(), enc(&Response::none(3))));
    out.push((3, "state-image".into(), enc(&image)));
    let meta = ClusterMeta {
        cluster_id: "c-1".into(),
        token_secret: vec![7; 32],
        created_at_ms: 1_000,
    };
    out.push((4, "cluster-meta".into(), enc(&(Some(meta), 4u64))));
    out.push((
        5,
        "membership".into(),
        enc(&(Some(log_id(9)), membership())),
    ));
    out.push((6, "vote".into(), enc(&Vote::new(2, 1))));
    let snap = SnapshotMeta {
        last_log_id: Some(log_id(9)),
        last_membership: membership(),
        snapshot_id: "2-9-1".into(),
    };
    out.push((7, "snapshot-meta".into(), enc(&snap)));
    out.push((8, "node".into(), enc(&node(1))));
    let payload = enc(&image);
    let (_, file) = backup::encode("c-1", 9, 2, 1_000, &payload).expect("backup encodes");
    out.push((9, "backup".into(), file));
    out.push((10, "call-record".into(), enc(&record())));
    let rollup = RollupPage {
        groups: vec![RollupGroup {
            minute_ms: 1_700_000_040_000,
            key: "gpt-4o".into(),
            stats,
        }],
        truncated: false,
    };
    out.push((11, "rollup-page".into(), enc(&rollup)));
    let pos = Pos {
        time_us: 1_700_000_000_000_000,
        node: 1,
        seq: 4,
    };
    let calls = CallPage {
        items: vec![record()],
        resume: Some(pos),
    };
    out.push((12, "call-page".into(), enc(&calls)));
    let append = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(2, 1),
        prev_log_id: Some(log_id(3)),
        entries: entries[3..].to_vec(),
        leader_commit: Some(log_id(3)),
    };
    out.push((13, "append-entries".into(), enc(&append)));
    let vote = VoteRequest::new(Vote::new(3, 2), Some(log_id(9)));
    out.push((14, "vote-request".into(), enc(&vote)));
    let rq = RollupQuery {
        from_ms: 1_700_000_000_000,
        to_ms: 1_700_000_600_000,
        dimension: Dimension::Model,
        key: None,
        tenant: Some("acme".into()),
        group: GroupBy::Key,
    };
    out.push((15, "rollup-query".into(), enc(&rq)));
    let cq = CallQuery {
        filter: CallFilter {
            from_us: 1,
            status_class: Some(5),
            ..CallFilter::default()
        },
        limit: 50,
        cursor: Some(pos),
    };
    out.push((16, "call-query".into(), enc(&cq)));
    out
}

#[test]
fn every_fuzzed_type_round_trips_and_seeds_are_written_on_request() {
    let seeds = seeds();
    assert_eq!(
        seeds.iter().map(|s| s.0).collect::<BTreeSet<_>>().len(),
        17,
        "one seed per selector at least"
    );
    let Ok(dir) = std::env::var("RAFTGATE_FUZZ_SEEDS") else {
        return;
    };
    std::fs::create_dir_all(&dir).expect("seed dir");
    for (selector, name, bytes) in seeds {
        let mut file = vec![selector];
        file.extend(bytes);
        std::fs::write(format!("{dir}/{selector:02}-{name}"), file).expect("seed written");
    }
}

//! The store's codec on fuzzed bytes, for everything a node reads from disk or from a
//! peer: log entries, commands, snapshots (state images), metadata, backups, Raft RPCs
//! and the call-log and analytics pages of the cluster-wide queries. The first byte
//! picks the type (the [`SELECTORS`] table; store/tests/fuzz_seeds.rs writes the seed
//! corpus with the same numbers), the rest is the encoded value with its version byte.
//!
//! Decoding must return errors: never panic, and never allocate much more than the
//! input could hold (a hostile length prefix must not reserve memory: [`Capped`]
//! aborts on any single allocation above 1 MiB + 64 × the input). What decodes must
//! re-encode to bytes that decode and encode to themselves, and must survive being
//! used: a state image loads into a state, a command applies to an empty state, pages
//! merge.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use raftgate_store::calllog::{self, CallPage, CallQuery};
use raftgate_store::codec;
use raftgate_store::legacy::EntryV3;
use raftgate_store::rollup::{self, RollupPage, RollupQuery};
use raftgate_store::state::{self, ClusterMeta, State, StateImage};
use raftgate_store::types::{Entry, LogId, SnapshotMeta, StoredMembership, Vote};
use raftgate_store::{backup, Command, Node, NodeId, Response, TypeConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest single allocation allowed while the current input runs.
static MAX_ALLOC: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The system allocator, aborting (a crash libFuzzer records) on an allocation above
/// [`MAX_ALLOC`].
struct Capped;

impl Capped {
    fn check(size: usize) {
        if size > MAX_ALLOC.load(Ordering::Relaxed) {
            let _ = std::io::stderr().write_all(b"raft_decode: allocation above the cap\n");
            std::process::abort();
        }
    }
}

// SAFETY: forwards every call to `System` unchanged; only adds a size check.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::check(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;

/// Selector byte → type; the seed writer uses the same numbers.
const SELECTORS: [&str; 17] = [
    "Entry",
    "Command",
    "Response",
    "StateImage",
    "(Option<ClusterMeta>, u64)",
    "(Option<LogId>, StoredMembership)",
    "Vote",
    "SnapshotMeta",
    "Node",
    "backup file",
    "CallRecord",
    "RollupPage",
    "CallPage",
    "AppendEntriesRequest",
    "VoteRequest",
    "RollupQuery",
    "CallQuery",
];

/// Decodes `bytes` as `T`; if that works, checks the re-encoding is stable.
fn round_trip<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let value: T = codec::decode(bytes).ok()?;
    let once = codec::encode(&value).expect("a decoded value encodes");
    let again: T = codec::decode(&once).expect("a re-encoded value decodes");
    let twice = codec::encode(&again).expect("encodes");
    assert_eq!(once, twice, "re-encoding is not stable");
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    MAX_ALLOC.store((1 << 20) + 64 * data.len(), Ordering::Relaxed);
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    match usize::from(selector) % SELECTORS.len() {
        0 => {
            let _ = round_trip::<Entry>(bytes);
            // The log store's read path, which also reads the previous release's layout.
            if let Ok(entry) = codec::decode_upgrading::<Entry, EntryV3>(bytes) {
                if let openraft::EntryPayload::Normal(cmd) = &entry.payload {
                    apply_to_empty(cmd);
                }
            }
        }
        1 => {
            if let Some(cmd) = round_trip::<Command>(bytes) {
                apply_to_empty(&cmd);
            }
        }
        2 => drop(round_trip::<Response>(bytes)),
        3 => {
            let _ = round_trip::<StateImage>(bytes);
            // The snapshot and backup read path (this format version or the last).
            if let Ok(image) = state::decode_image(bytes) {
                load_image(image);
            }
        }
        4 => drop(round_trip::<(Option<ClusterMeta>, u64)>(bytes)),
        5 => drop(round_trip::<(Option<LogId>, StoredMembership)>(bytes)),
        6 => drop(round_trip::<Vote>(bytes)),
        7 => drop(round_trip::<SnapshotMeta>(bytes)),
        8 => drop(round_trip::<Node>(bytes)),
        9 => {
            // A real file, and the fuzzed bytes wrapped as a valid file's payload.
            if let Ok((_, payload)) = backup::decode(bytes) {
                if let Ok(image) = state::decode_image(payload) {
                    load_image(image);
                }
            }
            let (_, file) = backup::encode("c", 1, 1, 0, bytes).expect("any payload encodes");
            let (_, payload) = backup::decode(&file).expect("an encoded backup decodes");
            assert_eq!(payload, bytes);
        }
        10 => {
            if let Ok(record) = calllog::decode_record(bytes) {
                let mut stats = rollup::Stats::default();
                stats.add_record(&record);
            }
        }
        11 => {
            if let Some(page) = round_trip::<RollupPage>(bytes) {
                let (merged, _) = rollup::merge_pages(vec![page.clone(), page]);
                for stats in merged.values() {
                    for q in [0.0, 0.5, 0.99, 1.0, f64::NAN] {
                        let _ = stats.latency.quantile(q);
                    }
                }
            }
        }
        12 => {
            if let Some(page) = round_trip::<CallPage>(bytes) {
                let _ = calllog::merge_pages(vec![page.clone(), page], 50);
            }
        }
        13 => drop(round_trip::<openraft::raft::AppendEntriesRequest<TypeConfig>>(bytes)),
        14 => drop(round_trip::<openraft::raft::VoteRequest<NodeId>>(bytes)),
        15 => drop(round_trip::<RollupQuery>(bytes)),
        _ => drop(round_trip::<CallQuery>(bytes)),
    }
});

/// What a follower does with a committed command: apply must reject, not panic.
fn apply_to_empty(cmd: &Command) {
    let mut state = State::default();
    let mut changes = Vec::new();
    let _ = state.apply(1, cmd, &mut changes);
}

/// What installing a snapshot does with its image.
fn load_image(image: StateImage) {
    let state = State::from_image(image);
    let _ = codec::encode(&state.to_image()).expect("a loaded state encodes");
}

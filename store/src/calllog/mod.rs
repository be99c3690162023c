//! Node-local call logs: one record per data-plane call, in the `calllog` column family.
//!
//! Not replicated: each node keeps the calls it served, bounded by age and size, and a
//! cluster-wide search asks every node (see `raftgate_raft`'s fan-out) and merges the
//! answers with [`merge_pages`].
//!
//! Keys are `[time µs, big-endian][per-node sequence, big-endian]`, so keys are unique,
//! sort by time, and retention deletes one range from the oldest key. Values are
//! [`crate::codec`]-encoded [`CallRecord`]s.
//!
//! The cluster-wide order is (time, node id, sequence) descending. A [`Pos`] names one
//! record in that order; cursors are positions, so pagination is stable across nodes.

mod store;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};

pub use store::{CallLogError, CallLogStore, Retention, Trimmed, MAX_SCAN};

/// One data-plane call, as the node that served it saw it. Names only (ids, categories),
/// never credentials or guardrail-matched values; payloads only as the redacted,
/// size-capped prefixes of a route's opt-in `capture` policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Wall-clock Unix time in µs when the call started.
    pub time_us: u64,
    /// Per-node sequence: with `time_us` and `node_id`, unique in the cluster.
    pub seq: u64,
    pub node_id: u64,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub route: Option<String>,
    pub service: Option<String>,
    pub tenant: Option<String>,
    pub consumer: Option<String>,
    /// LLM calls: the public model name asked for.
    pub model: Option<String>,
    /// LLM calls: provider and upstream model (deployment) of the attempt that answered.
    pub provider: Option<String>,
    pub deployment: Option<String>,
    /// Upstream tries (REST) or provider attempts (LLM).
    pub attempts: u32,
    /// LLM calls: providers tried before the one that answered, in order.
    pub fallbacks: Vec<String>,
    pub status: u16,
    /// From the request's arrival to the end of the response body.
    pub latency_us: u64,
    /// LLM streams: time to the first token.
    pub ttft_us: Option<u64>,
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    /// Cost in micro-units of the model's price currency, as the usage code computes it.
    pub cost_micros: Option<u64>,
    pub cache_hit: bool,
    /// Guardrail finding categories (names only).
    pub guardrails: Vec<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The gateway's error code when it answered itself (e.g. `no_route`, `upstream_timeout`).
    pub error: Option<String>,
    /// The client left before the response body ended.
    pub aborted: bool,
    // Payload capture (routes with a `capture` policy). Appended after every older field:
    // see [`decode_record`] for records written before these existed.
    /// The first bytes of the request body, redacted; `base64:…` when not UTF-8.
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    /// The body was longer than what was kept, or did not finish.
    pub request_truncated: bool,
    pub response_truncated: bool,
}

/// Decodes a stored record. bincode writes struct fields back to back, so a record
/// written before the payload-capture fields existed is exactly a current record
/// without their encoding at the end: it is read by appending the encoding of empty
/// capture fields (no body, not truncated).
pub fn decode_record(bytes: &[u8]) -> Result<CallRecord, CodecError> {
    codec::decode_stored(bytes).or_else(|e| {
        let tail = codec::encode(&(None::<String>, None::<String>, false, false))?;
        let mut old = bytes.to_vec();
        old.extend_from_slice(tail.get(1..).unwrap_or_default());
        codec::decode_stored(&old).map_err(|_| e)
    })
}

impl CallRecord {
    /// This record's place in the cluster-wide order.
    pub fn pos(&self) -> Pos {
        Pos {
            time_us: self.time_us,
            node: self.node_id,
            seq: self.seq,
        }
    }
}

/// A record's place in the cluster-wide order: (time, node, seq), compared in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pos {
    pub time_us: u64,
    pub node: u64,
    pub seq: u64,
}

impl Pos {
    /// The opaque cursor string: three lowercase hex numbers joined by `-`.
    pub fn to_cursor(self) -> String {
        format!("{:x}-{:x}-{:x}", self.time_us, self.node, self.seq)
    }

    /// Parses [`Pos::to_cursor`]'s output; `None` for anything else.
    pub fn from_cursor(s: &str) -> Option<Pos> {
        let mut it = s.split('-');
        let mut next = || u64::from_str_radix(it.next()?, 16).ok();
        let pos = Pos {
            time_us: next()?,
            node: next()?,
            seq: next()?,
        };
        it.next().is_none().then_some(pos)
    }
}

/// What to search for. Every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallFilter {
    /// Inclusive lower bound, Unix µs.
    pub from_us: u64,
    /// Exclusive upper bound, Unix µs; unbounded when unset.
    pub to_us: Option<u64>,
    pub tenant: Option<String>,
    pub consumer: Option<String>,
    pub route: Option<String>,
    pub model: Option<String>,
    /// 1..=5: the first digit of the status.
    pub status_class: Option<u8>,
    pub min_latency_us: Option<u64>,
}

impl CallFilter {
    /// True when `r` passes every non-time condition (the key range handles time).
    pub fn matches(&self, r: &CallRecord) -> bool {
        fn eq(want: &Option<String>, have: &Option<String>) -> bool {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        }
        eq(&self.tenant, &r.tenant)
            && eq(&self.consumer, &r.consumer)
            && eq(&self.route, &r.route)
            && eq(&self.model, &r.model)
            && self
                .status_class
                .is_none_or(|c| r.status / 100 == u16::from(c))
            && self.min_latency_us.is_none_or(|m| r.latency_us >= m)
    }
}

/// One node's part of a search: the filter, how many items at most, and the cursor
/// (records strictly after it in the descending order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallQuery {
    pub filter: CallFilter,
    pub limit: u32,
    pub cursor: Option<Pos>,
}

/// One node's answer: matching records, newest first, and how far it looked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallPage {
    pub items: Vec<CallRecord>,
    /// `None`: the node scanned its whole range. `Some(p)`: it stopped (limit reached or
    /// scan budget spent) after examining `p`; records before `p` were not looked at.
    pub resume: Option<Pos>,
}

/// A merged, cluster-wide page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merged {
    pub items: Vec<CallRecord>,
    /// Where the next page starts; `None` when every answering node is exhausted.
    pub next: Option<Pos>,
}

/// Merges nodes' pages into the first `limit` records of the cluster-wide order.
///
/// A node that stopped early at `p` has not looked below `p`, so nothing below the
/// highest such stop can be returned yet (another node's older record could come
/// before one of its unseen ones). That stop becomes the next cursor when the page is
/// not full, so paging visits every record exactly once.
pub fn merge_pages(pages: Vec<CallPage>, limit: usize) -> Merged {
    let cutoff = pages.iter().filter_map(|p| p.resume).max();
    let mut items: Vec<CallRecord> = pages
        .into_iter()
        .flat_map(|p| p.items)
        .filter(|r| cutoff.is_none_or(|c| r.pos() >= c))
        .collect();
    items.sort_unstable_by_key(|r| std::cmp::Reverse(r.pos()));
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(CallRecord::pos);
        return Merged { items, next };
    }
    let next = match (items.last(), cutoff) {
        (_, None) => None,
        // Full page ending exactly at the cutoff, or items above it: continue below.
        (Some(last), Some(c)) if items.len() == limit => Some(last.pos().min(c)),
        (_, Some(c)) => Some(c),
    };
    Merged { items, next }
}

//! The record of a run: every operation a load client did, with its invoke and complete
//! times on one monotonic clock, the node it went to and what came back. Checkers read
//! only this (and the cluster's state at the end), never the clients' internals.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// What an operation was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum OpKind {
    /// A data-plane REST call to a route (`open`: no quota; `limited`: the strict quota).
    Rest { route: String },
    /// An LLM chat completion against the mock provider's model.
    Llm { model: String },
    /// An admin create of a fresh resource.
    Create { collection: String, id: String },
    /// An admin delete of a resource created earlier.
    Delete { collection: String, id: String },
    /// An admin update of a field of a quota policy nobody's traffic uses.
    QuotaChange { id: String, limit: u64 },
    /// A register write: a PUT of `value` into a register resource.
    RegWrite { key: String, value: u64 },
    /// A register read with `consistent=true`; `value` is what it returned.
    RegRead { key: String, value: Option<u64> },
}

impl OpKind {
    /// Whether this is data-plane traffic (vs admin).
    pub fn is_data_plane(&self) -> bool {
        matches!(self, OpKind::Rest { .. } | OpKind::Llm { .. })
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum Outcome {
    /// An HTTP answer: its status and, for errors, the JSON error code.
    Status { status: u16, code: Option<String> },
    /// No answer: connection refused/reset, or the client's timeout.
    NoAnswer { error: String },
}

impl Outcome {
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Status { status, .. } => Some(*status),
            Outcome::NoAnswer { .. } => None,
        }
    }

    pub fn is_success(&self) -> bool {
        self.status().is_some_and(|s| (200..300).contains(&s))
    }

    /// A definite "no, nothing changed" answer: a 4xx (the admin API validates before it
    /// proposes, so a 4xx write never reached the log).
    pub fn is_definite_failure(&self) -> bool {
        self.status().is_some_and(|s| (400..500).contains(&s))
    }

    /// Short form for tables: `200`, `429 rate_limited`, `no answer`.
    pub fn short(&self) -> String {
        match self {
            Outcome::Status { status, code: None } => status.to_string(),
            Outcome::Status {
                status,
                code: Some(c),
            } => format!("{status} {c}"),
            Outcome::NoAnswer { .. } => "no answer".into(),
        }
    }
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Op {
    /// The load client that did it; a client that lost an answer continues under a new id.
    pub client: u64,
    /// Index of the node it was sent to.
    pub node: usize,
    pub kind: OpKind,
    /// Microseconds since the run's start when the request was sent.
    pub invoke_us: u64,
    /// When the outcome was known.
    pub complete_us: u64,
    pub outcome: Outcome,
}

/// The shared, append-only history of a run, and its clock. Cheap to clone.
#[derive(Debug, Clone)]
pub struct History {
    start: Instant,
    /// Wall-clock milliseconds since the epoch at `start` (quota windows are wall-clock).
    wall_start_ms: u64,
    ops: Arc<Mutex<Vec<Op>>>,
}

impl History {
    pub fn new() -> History {
        let wall_start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        History {
            start: Instant::now(),
            wall_start_ms,
            ops: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn ops(&self) -> MutexGuard<'_, Vec<Op>> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Microseconds since the run's start.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Wall-clock milliseconds since the epoch at run time `us`.
    pub fn wall_ms(&self, us: u64) -> u64 {
        self.wall_start_ms + us / 1000
    }

    pub fn push(&self, op: Op) {
        self.ops().push(op);
    }

    /// A copy of every operation so far, in completion order.
    pub fn snapshot(&self) -> Vec<Op> {
        self.ops().clone()
    }

    pub fn len(&self) -> usize {
        self.ops().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for History {
    fn default() -> History {
        History::new()
    }
}

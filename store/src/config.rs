//! The immutable configuration snapshot the data plane reads per request.
//!
//! Published by the state machine after every apply through an atomic pointer swap:
//! readers `load()` it without locks, Raft or disk.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::state::State;
use crate::types::LogId;

/// The shared pointer to the latest published [`ConfigSnapshot`].
pub type ConfigHandle = Arc<ArcSwap<ConfigSnapshot>>;

/// Everything replicated, as of one applied log index.
#[derive(Debug, Clone, Default)]
pub struct ConfigSnapshot {
    pub state: State,
    pub applied: Option<LogId>,
}

impl ConfigSnapshot {
    pub fn new(state: State, applied: Option<LogId>) -> ConfigSnapshot {
        ConfigSnapshot { state, applied }
    }

    /// Log index of the last applied entry (0 before the first). Moves with every entry;
    /// [`crate::state::State::revision`] moves only when the configuration changed.
    pub fn applied_index(&self) -> u64 {
        self.applied.map_or(0, |l| l.index)
    }
}

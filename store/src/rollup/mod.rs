//! Node-local per-minute analytics rollups, in the `rollup` column family.
//!
//! Fed by the call log writer: every stored [`CallRecord`] is added to one row per
//! (dimension, minute, tenant, key) — requests, 4xx/5xx errors, tokens, cost and a
//! latency [`Sketch`]. Not replicated: a cluster-wide query asks every node for its rows
//! already grouped by minute or by key and merges them ([`merge_pages`]); counts add up
//! exactly and sketches merge without losing their error bound.
//!
//! Every row carries the tenant of the calls it counts, so a tenant admin's query is a
//! filter, not an approximation.

mod agg;
mod sketch;
mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::calllog::CallRecord;
pub use agg::{Rollups, MAX_KEYS_PER_MINUTE, OTHER_KEY};
pub use sketch::{Sketch, ALPHA, MAX_LATENCY_US};
pub use store::{RollupError, RollupStore, RowKey, MAX_GROUPS, MAX_SCAN_ROWS};

/// Rollup granularity.
pub const MINUTE_MS: u64 = 60_000;

/// The start of the minute `ms` falls in.
pub fn minute_of(ms: u64) -> u64 {
    ms - ms % MINUTE_MS
}

/// What a row is keyed by besides the minute. `All` has one row per (minute, tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Dimension {
    All,
    Tenant,
    Consumer,
    Route,
    Model,
    Provider,
}

impl Dimension {
    pub const EVERY: [Dimension; 6] = [
        Dimension::All,
        Dimension::Tenant,
        Dimension::Consumer,
        Dimension::Route,
        Dimension::Model,
        Dimension::Provider,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dimension::All => "all",
            Dimension::Tenant => "tenant",
            Dimension::Consumer => "consumer",
            Dimension::Route => "route",
            Dimension::Model => "model",
            Dimension::Provider => "provider",
        }
    }

    pub fn parse(s: &str) -> Option<Dimension> {
        Dimension::EVERY.into_iter().find(|d| d.name() == s)
    }

    /// The first byte of this dimension's row keys.
    pub(crate) fn tag(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_tag(t: u8) -> Option<Dimension> {
        Dimension::EVERY.get(usize::from(t)).copied()
    }

    /// The key `r` is counted under in this dimension; `None` when `r` has no such id
    /// (e.g. a REST call has no model). `All` counts every call under `""`.
    pub fn key_of(self, r: &CallRecord) -> Option<&str> {
        match self {
            Dimension::All => Some(""),
            Dimension::Tenant => r.tenant.as_deref(),
            Dimension::Consumer => r.consumer.as_deref(),
            Dimension::Route => r.route.as_deref(),
            Dimension::Model => r.model.as_deref(),
            Dimension::Provider => r.provider.as_deref(),
        }
    }
}

/// The counters and latency sketch of one row (or of merged rows).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub requests: u64,
    pub errors_4xx: u64,
    pub errors_5xx: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Micro-units of the models' price currency.
    pub cost_micros: u64,
    /// Call latency in µs (request arrival to the end of the response body).
    pub latency: Sketch,
}

impl Stats {
    pub fn add_record(&mut self, r: &CallRecord) {
        self.requests += 1;
        match r.status / 100 {
            4 => self.errors_4xx += 1,
            5 => self.errors_5xx += 1,
            _ => {}
        }
        self.tokens_in = self.tokens_in.saturating_add(r.tokens_in.unwrap_or(0));
        self.tokens_out = self.tokens_out.saturating_add(r.tokens_out.unwrap_or(0));
        self.cost_micros = self.cost_micros.saturating_add(r.cost_micros.unwrap_or(0));
        self.latency.record(r.latency_us);
    }

    pub fn merge(&mut self, o: &Stats) {
        self.requests = self.requests.saturating_add(o.requests);
        self.errors_4xx = self.errors_4xx.saturating_add(o.errors_4xx);
        self.errors_5xx = self.errors_5xx.saturating_add(o.errors_5xx);
        self.tokens_in = self.tokens_in.saturating_add(o.tokens_in);
        self.tokens_out = self.tokens_out.saturating_add(o.tokens_out);
        self.cost_micros = self.cost_micros.saturating_add(o.cost_micros);
        self.latency.merge(&o.latency);
    }
}

/// How a node groups the rows it found before answering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupBy {
    /// One group per minute (a time series); `key` is empty.
    #[default]
    Minute,
    /// One group per key over the whole range (a top list); `minute_ms` is 0.
    Key,
}

/// One node's part of an analytics query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollupQuery {
    /// Inclusive, Unix ms (rounded down to its minute).
    pub from_ms: u64,
    /// Exclusive, Unix ms: minutes starting before it are included.
    pub to_ms: u64,
    pub dimension: Dimension,
    /// Only this key of the dimension.
    pub key: Option<String>,
    /// Only calls of this tenant (tenant-admin scoping).
    pub tenant: Option<String>,
    pub group: GroupBy,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RollupGroup {
    pub minute_ms: u64,
    pub key: String,
    pub stats: Stats,
}

/// One node's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RollupPage {
    pub groups: Vec<RollupGroup>,
    /// The node hit [`MAX_SCAN_ROWS`] or [`MAX_GROUPS`]: its part is incomplete.
    pub truncated: bool,
}

/// Merges nodes' pages: groups with the same (minute, key) add up.
pub fn merge_pages(pages: Vec<RollupPage>) -> (BTreeMap<(u64, String), Stats>, bool) {
    let mut out: BTreeMap<(u64, String), Stats> = BTreeMap::new();
    let mut truncated = false;
    for p in pages {
        truncated |= p.truncated;
        for g in p.groups {
            out.entry((g.minute_ms, g.key)).or_default().merge(&g.stats);
        }
    }
    (out, truncated)
}

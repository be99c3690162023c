//! Linearizability checker for the register histories that chaos clients record.
//!
//! Model: every key is an independent register (linearizability is compositional, so each
//! key's sub-history is checked alone) holding a `u64`, starting at the caller's initial value.
//! `write(v)` sets it, `read` returns it. An op is an interval `[invoke_us, complete_us]`; a
//! history is linearizable when every op can be given one instant inside its interval such
//! that the reads see the register as those instants order the writes.
//!
//! - Unknown outcomes: a read that never answered is dropped (it constrains nothing). A write
//!   that never answered may take effect at any instant after its invoke, or never. Such a
//!   write whose value nobody read is dropped (putting it after everything else is always
//!   valid); one whose value was read and that is the only write of that value must precede
//!   those reads, so its interval is closed at the last of them, which is sound and keeps the
//!   search window small. Any other stays open-ended.
//! - Ties: A precedes B only when `A.complete_us < B.invoke_us`, strictly; equal timestamps
//!   are concurrent, so clock granularity can never produce a false violation.
//! - Budget: the search is exponential in the worst case, so it stops after a budget of work
//!   (steps plus memo words, which bounds time and memory alike) and reports the key
//!   `inconclusive` (with `linearizable: false`, so a caller ignoring the flag stays safe).
//!
//! Algorithm: Wing & Gong's search with Lowe's memo, as in Porcupine: the invoke and return
//! events sit in one time-ordered linked list; the search linearizes some op whose invoke
//! precedes the first pending return, restarts from the head, and backtracks when it reaches
//! a return; a memo of visited (linearized-ops bitset, register value) states prunes
//! re-exploration. Linear-ish on well-behaved histories; a violation only explores the
//! states of the prefix before it. The furthest return at which the search got stuck names
//! the op reported as evidence.
//!
//! Why not `stateright::semantics::LinearizabilityTester` (0.31): it backtracks recursively
//! with no memo and no budget, cloning the remaining history at each step, and gives no
//! evidence. On simulated 4-client histories (release), one thread id per client: 200
//! linearizable ops, or one stale read among 100, ran over 30 s; one id per op (which ties
//! and unknown outcomes need: a thread has one op in flight and its ops are totally ordered):
//! 100 ops took 3.6 s, 200 over 30 s. The tests use it as an oracle on tiny histories.

use std::collections::{BTreeMap, HashMap, HashSet};

/// One register operation as a client saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegOp {
    /// The client that issued it (informational; ops of one client never overlap).
    pub client: u64,
    pub key: String,
    /// Microseconds since the run began when the request was sent.
    pub invoke_us: u64,
    /// When the answer arrived; `None` when the outcome is unknown (timeout, connection
    /// reset, 5xx after possible forwarding): the op may or may not have taken effect,
    /// at any time after `invoke_us`.
    pub complete_us: Option<u64>,
    pub kind: RegKind,
}

/// What the op did; `Read(v)` carries the value the read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RegKind {
    Write(u64),
    Read(u64),
}

/// The verdict for one key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyVerdict {
    pub key: String,
    /// Ops checked (after dropping unknown-outcome reads).
    pub ops: usize,
    /// Writes with unknown outcome.
    pub indeterminate: usize,
    pub linearizable: bool,
    /// For a violation: the op that cannot be linearized, why (when a simple reason exists) and
    /// the ops around it, each with its index in the input slice (`#i`), client, times and value.
    pub evidence: String,
    /// True when the search gave up (budget exhausted): reported as neither pass nor fail.
    pub inconclusive: bool,
}

/// Work budget per key used by [`check`]: a step costs 1 unit, a memo entry about one unit per
/// 8 bytes it takes, so this bounds a key to ~20 M steps or ~160 MB of memo (seconds, not hours).
pub const DEFAULT_BUDGET: u64 = 20_000_000;

/// Budget units for a memo entry besides its words: allocator and hash-table overhead.
const MEMO_UNITS: u64 = 8;

/// Checks every key's sub-history separately (registers compose: P-compositionality).
/// `initial` gives each key's value before the history (keys missing from it start at 0).
pub fn check(history: &[RegOp], initial: &BTreeMap<String, u64>) -> Vec<KeyVerdict> {
    check_with_budget(history, initial, DEFAULT_BUDGET)
}

/// [`check`] with an explicit work budget per key (see [`DEFAULT_BUDGET`]).
pub fn check_with_budget(
    history: &[RegOp],
    initial: &BTreeMap<String, u64>,
    budget: u64,
) -> Vec<KeyVerdict> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        by_key.entry(op.key.as_str()).or_default().push(i);
    }
    by_key
        .into_iter()
        .map(|(key, idx)| {
            let init = initial.get(key).copied().unwrap_or(0);
            check_key(key, history, &idx, init, budget)
        })
        .collect()
}

/// An op of one key as the search sees it.
struct Op {
    /// Index in the caller's history, used to name the op in evidence.
    id: usize,
    client: u64,
    invoke: u64,
    /// As recorded (clamped to `>= invoke`); `None` = unknown outcome.
    complete: Option<u64>,
    write: bool,
    value: u64,
}

enum Outcome {
    Linearizable,
    /// Holds the op (index into the key's ops) whose return the search could not pass.
    Violation(Option<usize>),
    Exhausted(u64),
}

fn check_key(key: &str, history: &[RegOp], idx: &[usize], init: u64, budget: u64) -> KeyVerdict {
    let ops: Vec<Op> = idx
        .iter()
        .filter_map(|&i| {
            let h = &history[i];
            let complete = h.complete_us.map(|c| c.max(h.invoke_us));
            let (write, value) = match h.kind {
                RegKind::Write(v) => (true, v),
                RegKind::Read(_) if complete.is_none() => return None,
                RegKind::Read(v) => (false, v),
            };
            let (id, client, invoke) = (i, h.client, h.invoke_us);
            Some(Op {
                id,
                client,
                invoke,
                complete,
                write,
                value,
            })
        })
        .collect();
    let part = close_unknown_writes(&ops, init);
    let (linearizable, inconclusive, evidence) = match search(&ops, &part, init, budget) {
        Outcome::Linearizable => (true, false, String::new()),
        Outcome::Violation(Some(c)) => (false, false, explain(&ops, c, init)),
        Outcome::Violation(None) => (false, false, "no valid order exists".into()),
        Outcome::Exhausted(spent) => {
            let why = format!("search budget exhausted after {spent} work units");
            (false, true, why)
        }
    };
    KeyVerdict {
        key: key.to_string(),
        ops: ops.len(),
        indeterminate: ops.iter().filter(|o| o.complete.is_none()).count(),
        linearizable,
        evidence,
        inconclusive,
    }
}

/// Returns the ops that take part in the search, each with the time of its return event
/// (`None` = open-ended): unknown-outcome writes are dropped or closed as the module doc says.
fn close_unknown_writes(ops: &[Op], init: u64) -> Vec<(usize, Option<u64>)> {
    let mut last_read: HashMap<u64, u64> = HashMap::new();
    let mut writes_of: HashMap<u64, usize> = HashMap::new();
    for o in ops {
        if o.write {
            *writes_of.entry(o.value).or_default() += 1;
        } else {
            let e = last_read.entry(o.value).or_default();
            *e = (*e).max(o.complete.unwrap_or(o.invoke)); // reads here all answered
        }
    }
    let mut part = Vec::with_capacity(ops.len());
    for (i, o) in ops.iter().enumerate() {
        if !o.write || o.complete.is_some() {
            part.push((i, o.complete));
        } else if let Some(&last) = last_read.get(&o.value) {
            let unique = writes_of.get(&o.value) == Some(&1) && o.value != init;
            part.push((i, unique.then_some(last.max(o.invoke))));
        }
    }
    part
}

const NIL: usize = usize::MAX;

/// The doubly linked event list; node 0 is the head, node `k + 1` is `events[k]`.
/// Lifting and unlifting in LIFO order restores it exactly (dancing links).
struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl List {
    fn unlink(&mut self, n: usize) {
        let (p, q) = (self.prev[n], self.next[n]);
        self.next[p] = q;
        if q != NIL {
            self.prev[q] = p;
        }
    }
    fn relink(&mut self, n: usize) {
        let (p, q) = (self.prev[n], self.next[n]);
        self.next[p] = n;
        if q != NIL {
            self.prev[q] = n;
        }
    }
}

fn search(ops: &[Op], part: &[(usize, Option<u64>)], init: u64, budget: u64) -> Outcome {
    // (time, is_return, local op): invokes sort before returns at equal times (ties concurrent).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * part.len());
    for (l, &(i, ret)) in part.iter().enumerate() {
        events.push((ops[i].invoke, false, l));
        if let Some(r) = ret {
            events.push((r, true, l));
        }
    }
    events.sort_unstable();
    let nodes = events.len() + 1;
    let mut list = List {
        next: (1..=nodes)
            .map(|n| if n == nodes { NIL } else { n })
            .collect(),
        prev: (0..nodes).map(|n| n.saturating_sub(1)).collect(),
    };
    let (mut call_node, mut ret_node) = (vec![0; part.len()], vec![None; part.len()]);
    for (k, &(_, is_ret, l)) in events.iter().enumerate() {
        if is_ret {
            ret_node[l] = Some(k + 1);
        } else {
            call_node[l] = k + 1;
        }
    }
    let mut returns_left = ret_node.iter().flatten().count();
    let words = part.len().div_ceil(64);
    // Linearized-ops bitset plus one trailing word for the register value: the memo key.
    let mut state = vec![0u64; words + 1];
    let mut memo: HashSet<Box<[u64]>> = HashSet::new();
    let mut stack: Vec<(usize, u64)> = Vec::new();
    let (mut value, mut spent, mut stuck) = (init, 0u64, None::<usize>);
    let mut node = list.next[0];
    // Open-ended writes still pending can always go last, so only returns must be passed.
    while returns_left > 0 {
        spent += 1;
        if spent > budget {
            return Outcome::Exhausted(spent);
        }
        if node == NIL || events[node - 1].1 {
            if node != NIL && stuck.is_none_or(|s| node > s) {
                stuck = Some(node);
            }
            let Some((l, old)) = stack.pop() else {
                return Outcome::Violation(stuck.map(|s| part[events[s - 1].2].0));
            };
            state[l / 64] &= !(1 << (l % 64));
            value = old;
            if let Some(r) = ret_node[l] {
                list.relink(r);
                returns_left += 1;
            }
            list.relink(call_node[l]);
            node = list.next[call_node[l]];
            continue;
        }
        let l = events[node - 1].2;
        let op = &ops[part[l].0];
        if op.write || op.value == value {
            state[l / 64] |= 1 << (l % 64);
            state[words] = op.value;
            if !memo.contains(state.as_slice()) {
                memo.insert(state.as_slice().into());
                spent += MEMO_UNITS + words as u64;
                stack.push((l, value));
                value = op.value;
                list.unlink(call_node[l]);
                if let Some(r) = ret_node[l] {
                    list.unlink(r);
                    returns_left -= 1;
                }
                node = list.next[0];
                continue;
            }
            state[l / 64] &= !(1 << (l % 64));
        }
        node = list.next[node];
    }
    Outcome::Linearizable
}

fn secs(us: u64) -> String {
    format!("{}.{:06}s", us / 1_000_000, us % 1_000_000)
}

fn describe(o: &Op) -> String {
    let end = o.complete.map_or_else(|| "?".to_string(), secs);
    let span = format!("by client {} [{}–{}]", o.client, secs(o.invoke), end);
    match (o.write, o.complete) {
        (true, Some(_)) => format!("write #{} of {} {span}", o.id, o.value),
        (true, None) => format!("write #{} of {} {span} (outcome unknown)", o.id, o.value),
        (false, _) => format!("read #{} {span} returned {}", o.id, o.value),
    }
}

/// A completed before B began, by the strict real-time order the checker uses.
fn before(a: &Op, b: &Op) -> bool {
    a.complete.is_some_and(|t| t < b.invoke)
}

/// Evidence for op `c`: why each possible source of its value is ruled out (when a one-step
/// reason exists), then the ops around it.
fn explain(ops: &[Op], c: usize, init: u64) -> String {
    let r = &ops[c];
    let mut cited = vec![c];
    let mut reasons = Vec::new();
    let mut unexplained = r.write;
    // Something else was in the register, seen by a write or a read that ended before `r`
    // began and began after `src` (if any) ended.
    let superseded = |src: Option<usize>, cited: &mut Vec<usize>| {
        let other = |k: &Op| k.value != r.value && before(k, r);
        let between = |k: &Op| other(k) && src.is_none_or(|s| before(&ops[s], k));
        // The latest such op is the most telling; writes prove it more directly than reads.
        let latest = |write: bool| {
            let found = (0..ops.len()).filter(|&k| ops[k].write == write && between(&ops[k]));
            found.max_by_key(|&k| ops[k].complete)
        };
        let k = latest(true).or_else(|| latest(false));
        k.inspect(|&k| cited.push(k))
    };
    if !r.write {
        let v = r.value;
        if v == init {
            match superseded(None, &mut cited) {
                Some(k) => reasons.push(format!(
                    "the initial value {v} was replaced: {} completed before the read began",
                    describe(&ops[k])
                )),
                None => unexplained = true,
            }
        }
        let is_source = |s: &usize| ops[*s].write && ops[*s].value == v;
        let sources: Vec<usize> = (0..ops.len()).filter(is_source).collect();
        if sources.is_empty() && v != init {
            reasons.push(format!("no write of {v} exists (initial value {init})"));
        }
        for s in sources {
            cited.push(s);
            let w = describe(&ops[s]);
            if before(r, &ops[s]) {
                reasons.push(format!("{w} began after the read ended"));
            } else if let Some(k) = superseded(Some(s), &mut cited) {
                let how = ["superseded, as seen by", "overwritten by"][usize::from(ops[k].write)];
                let k = describe(&ops[k]);
                reasons.push(format!(
                    "{w} was {how} {k}, which completed before the read began"
                ));
            } else {
                unexplained = true;
            }
        }
    }
    let mut text = format!("{} cannot be linearized", describe(r));
    if !reasons.is_empty() {
        text += &format!(": {}", reasons.join("; "));
    }
    if unexplained {
        text += "; no single op explains it: the ops around it admit no valid order";
    }
    text + "\n" + &window(ops, c, cited)
}

/// The cited ops, the answered ops overlapping `c`, the last few that completed before it
/// began, then the unanswered writes whose value someone read, in that priority.
fn window(ops: &[Op], c: usize, mut pick: Vec<usize>) -> String {
    const MAX: usize = 16;
    let r = &ops[c];
    // Unanswered writes nobody read never matter; they would only crowd the window.
    let read: HashSet<u64> = ops.iter().filter(|o| !o.write).map(|o| o.value).collect();
    let near = |k: &usize| !before(&ops[*k], r) && !before(r, &ops[*k]);
    let pending = |k: &usize| ops[*k].complete.is_none();
    let mut prior: Vec<usize> = (0..ops.len()).filter(|&k| before(&ops[k], r)).collect();
    prior.sort_by_key(|&k| std::cmp::Reverse(ops[k].complete));
    pick.extend((0..ops.len()).filter(|k| near(k) && !pending(k)));
    pick.extend(prior.into_iter().take(4));
    pick.extend((0..ops.len()).filter(|k| near(k) && pending(k) && read.contains(&ops[*k].value)));
    let mut seen = HashSet::new();
    pick.retain(|k| seen.insert(*k));
    let more = pick.len().saturating_sub(MAX);
    pick.truncate(MAX);
    pick.sort_by_key(|&k| (ops[k].invoke, ops[k].id));
    let mut text = String::from("  ops around it:");
    for k in pick {
        let mark = if k == c { "  <--" } else { "" };
        text += &format!("\n    {}{mark}", describe(&ops[k]));
    }
    if more > 0 {
        text += &format!("\n    ... and {more} more");
    }
    text
}

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::model::{QuotaMetric, QuotaScope, QuotaWindow};

fn policy(id: &str, limit: u64, mode: QuotaMode) -> QuotaPolicy {
    QuotaPolicy {
        id: id.into(),
        tenant: None,
        scope: vec![QuotaScope::ApiKey],
        metric: QuotaMetric::Requests,
        window: QuotaWindow::Minute,
        limit,
        mode,
        fail_open: false,
        hard: false,
    }
}

fn counter(policy: &str, key: &str, start: u64, end: u64) -> CounterId {
    CounterId {
        policy: policy.into(),
        key: key.into(),
        window_start_ms: start,
        window_end_ms: end,
    }
}

fn sync(node: u64, serial: u64, voters: u32, asks: &[(&CounterId, u64)]) -> QuotaSync {
    QuotaSync {
        node,
        epoch: 7,
        serial,
        voters,
        asks: asks
            .iter()
            .map(|(c, units)| Units {
                counter: (*c).clone(),
                units: *units,
            })
            .collect(),
        returns: Vec::new(),
        usage: Vec::new(),
    }
}

struct Fixture {
    ledger: Ledger,
    policies: HashMap<String, QuotaPolicy>,
}

impl Fixture {
    fn new(policies: &[QuotaPolicy]) -> Fixture {
        Fixture {
            ledger: Ledger::default(),
            policies: policies.iter().map(|p| (p.id.clone(), p.clone())).collect(),
        }
    }

    fn apply(&mut self, s: &QuotaSync, at_ms: u64) -> Result<QuotaReply, SyncError> {
        let policies = &self.policies;
        let mut changes = Vec::new();
        self.ledger
            .apply_sync(s, at_ms, |id| policies.get(id), &mut changes)
    }
}

#[test]
fn grants_the_fair_share_of_what_remains() {
    let mut f = Fixture::new(&[policy("q", 100, QuotaMode::Strict)]);
    let c = counter("q", "api_key=k", 0, 60_000);
    // 3 voters: one ask gets at most ceil(100 / 3) = 34.
    let r = f.apply(&sync(1, 1, 3, &[(&c, 1_000)]), 10).unwrap();
    assert_eq!(
        r.grants,
        vec![Grant {
            units: 34,
            limit: 100,
            remaining: 66
        }]
    );
    // A small ask gets what it asked for.
    let r = f.apply(&sync(2, 1, 3, &[(&c, 5)]), 11).unwrap();
    assert_eq!((r.grants[0].units, r.grants[0].remaining), (5, 61));
    // Asks keep getting a share of what remains, down to the last unit.
    let mut total = 39;
    for serial in 2..200 {
        let g = f
            .apply(&sync(1, serial, 3, &[(&c, 1_000)]), 12)
            .unwrap()
            .grants[0];
        total += g.units;
        assert_eq!(g.remaining, 100 - total);
    }
    assert_eq!(total, 100);
    let stored = f.ledger.counter(&c).unwrap();
    assert_eq!(stored.total_granted(), 100);
    assert_eq!(stored.granted[&2], 5);
}

#[test]
fn a_repeated_serial_gets_the_same_reply_and_changes_nothing() {
    let mut f = Fixture::new(&[policy("q", 10, QuotaMode::Strict)]);
    let c = counter("q", "", 0, 60_000);
    let first = f.apply(&sync(1, 5, 1, &[(&c, 4)]), 1).unwrap();
    let before = f.ledger.clone();
    let again = f.apply(&sync(1, 5, 1, &[(&c, 4)]), 2).unwrap();
    assert_eq!(first, again);
    assert_eq!(f.ledger, before, "a retry must not grant twice");
    // An older serial of the same epoch is a late retry: refused, nothing changes.
    assert_eq!(
        f.apply(&sync(1, 4, 1, &[(&c, 4)]), 3),
        Err(SyncError::Stale { last: 5 })
    );
    assert_eq!(f.ledger, before);
    // A restarted node (new epoch) starts its serials over.
    let mut restarted = sync(1, 1, 1, &[(&c, 4)]);
    restarted.epoch = 8;
    assert_eq!(f.apply(&restarted, 4).unwrap().grants[0].units, 4);
    assert_eq!(f.ledger.counter(&c).unwrap().total_granted(), 8);
}

#[test]
fn a_late_sync_of_an_earlier_epoch_is_refused_and_frees_nothing() {
    // Found by the property test below: a hand-back sent by a process that then crashed,
    // delivered after its successor took units, would free units the successor holds.
    let mut f = Fixture::new(&[policy("q", 1, QuotaMode::Strict)]);
    let c = counter("q", "", 0, 60_000);
    let mut old_take = sync(1, 1, 1, &[(&c, 1)]);
    old_take.epoch = 7;
    f.apply(&old_take, 1).unwrap();
    let mut old_return = sync(1, 2, 1, &[]);
    old_return.epoch = 7;
    old_return.returns.push(Units {
        counter: c.clone(),
        units: 1,
    });
    f.apply(&old_return, 2).unwrap();
    // The successor (epoch 8) takes the one unit.
    let mut new_take = sync(1, 1, 1, &[(&c, 1)]);
    new_take.epoch = 8;
    assert_eq!(f.apply(&new_take, 3).unwrap().grants[0].units, 1);
    let before = f.ledger.clone();
    assert_eq!(
        f.apply(&old_return, 4),
        Err(SyncError::OldEpoch { last_epoch: 8 })
    );
    assert_eq!(f.ledger, before);
    assert_eq!(f.ledger.counter(&c).unwrap().total_granted(), 1);
}

#[test]
fn returns_usage_and_policies_that_do_not_grant() {
    let mut f = Fixture::new(&[
        policy("q", 10, QuotaMode::Strict),
        policy("local", 10, QuotaMode::Local),
    ]);
    let c = counter("q", "", 0, 60_000);
    f.apply(&sync(1, 1, 1, &[(&c, 10)]), 1).unwrap();
    assert_eq!(
        f.apply(&sync(2, 1, 1, &[(&c, 1)]), 1).unwrap().grants[0].units,
        0
    );
    // Node 1 hands back 4 unused units and reports 6 used: node 2 can get the 4.
    let mut s = sync(1, 2, 1, &[]);
    s.returns.push(Units {
        counter: c.clone(),
        units: 4,
    });
    s.usage.push(Units {
        counter: c.clone(),
        units: 6,
    });
    f.apply(&s, 2).unwrap();
    assert_eq!(f.ledger.counter(&c).unwrap().used, 6);
    let g = f.apply(&sync(2, 2, 1, &[(&c, 9)]), 3).unwrap().grants[0];
    assert_eq!((g.units, g.remaining), (4, 0));
    // Returning more than was granted cannot make units out of nothing.
    let mut s = sync(2, 3, 1, &[]);
    s.returns.push(Units {
        counter: c.clone(),
        units: 1_000,
    });
    f.apply(&s, 4).unwrap();
    assert_eq!(f.ledger.counter(&c).unwrap().total_granted(), 6);
    // Local-mode and unknown policies are never granted from the ledger.
    let l = counter("local", "", 0, 60_000);
    let gone = counter("gone", "", 0, 60_000);
    let r = f.apply(&sync(3, 1, 1, &[(&l, 5), (&gone, 5)]), 5).unwrap();
    assert_eq!(r.grants, vec![Grant::default(), Grant::default()]);
    // Local-mode usage is still counted (usage queries), unknown policies' is not.
    let mut s = sync(3, 2, 1, &[]);
    s.usage.push(Units {
        counter: l.clone(),
        units: 3,
    });
    s.usage.push(Units {
        counter: gone.clone(),
        units: 3,
    });
    f.apply(&s, 6).unwrap();
    assert_eq!(f.ledger.counter(&l).unwrap().used, 3);
    assert!(f.ledger.counter(&gone).is_none());
}

#[test]
fn malformed_syncs_are_refused_whole() {
    let mut f = Fixture::new(&[policy("q", 10, QuotaMode::Strict)]);
    let good = counter("q", "", 0, 60_000);
    let bad = counter("q", "", 60_000, 60_000);
    let before = f.ledger.clone();
    assert!(matches!(
        f.apply(&sync(1, 1, 1, &[(&good, 1), (&bad, 1)]), 1),
        Err(SyncError::Invalid(_))
    ));
    let huge = sync(1, 1, 1, &vec![(&good, 1); MAX_SYNC_ITEMS + 1]);
    assert!(matches!(f.apply(&huge, 1), Err(SyncError::Invalid(_))));
    assert_eq!(f.ledger, before);
}

#[test]
fn old_windows_expire_after_the_grace_a_batch_at_a_time() {
    let mut f = Fixture::new(&[policy("q", 1_000_000, QuotaMode::Strict)]);
    let fixed = counter("q", "fixed", 0, u64::MAX);
    f.apply(&sync(9, 1, 1, &[(&fixed, 1)]), 0).unwrap();
    let n = GC_PER_SYNC as u64 + 10;
    for i in 0..n {
        let c = counter("q", &format!("k{i}"), 0, 60_000);
        f.apply(&sync(1, i + 1, 1, &[(&c, 1)]), 100).unwrap();
    }
    assert_eq!(f.ledger.len() as u64, n + 1);
    // A sync from a node whose clock runs up to the grace ahead forgets nothing: the
    // others may still be admitting in these windows.
    let end = 60_000 + EXPIRY_GRACE_MS;
    f.apply(&sync(2, 1, 1, &[]), end - 1).unwrap();
    assert_eq!(f.ledger.len() as u64, n + 1);
    // After that, at most GC_PER_SYNC counters go per sync.
    f.apply(&sync(2, 2, 1, &[]), end + 1).unwrap();
    assert_eq!(f.ledger.len() as u64, n + 1 - GC_PER_SYNC as u64);
    f.apply(&sync(2, 3, 1, &[]), end + 2).unwrap();
    assert_eq!(f.ledger.len(), 1);
    // A fixed budget never expires.
    f.apply(&sync(2, 4, 1, &[]), u64::MAX - 1).unwrap();
    assert!(f.ledger.counter(&fixed).is_some());
}

#[test]
fn image_round_trip_keeps_dedup_state() {
    let mut f = Fixture::new(&[policy("q", 10, QuotaMode::Strict)]);
    let c = counter("q", "", 0, 60_000);
    let reply = f.apply(&sync(1, 3, 1, &[(&c, 4)]), 1).unwrap();
    let mut restored = Fixture {
        ledger: Ledger::from_image(f.ledger.to_image()),
        policies: f.policies.clone(),
    };
    assert_eq!(restored.ledger, f.ledger);
    // A retry that reaches a node restored from a snapshot is still recognized.
    assert_eq!(
        restored.apply(&sync(1, 3, 1, &[(&c, 4)]), 2).unwrap(),
        reply
    );
    assert_eq!(restored.ledger.counter(&c).unwrap().total_granted(), 4);
}

/// The counters' on-disk and snapshot bytes are the plain layout: the shared id inside
/// [`Counter`] must encode exactly as an owned `CounterId` field did.
#[test]
fn counters_encode_as_the_plain_layout() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Plain {
        id: CounterId,
        granted: BTreeMap<u64, u64>,
        used: u64,
        updated_at_ms: u64,
    }
    let id = counter("q", "api_key=k", 60_000, 120_000);
    let shared = Counter {
        id: Arc::new(id.clone()),
        granted: BTreeMap::from([(1, 5), (3, 9)]),
        used: 4,
        updated_at_ms: 77,
    };
    let plain = Plain {
        id,
        granted: shared.granted.clone(),
        used: 4,
        updated_at_ms: 77,
    };
    let bytes = crate::codec::encode(&shared).unwrap();
    assert_eq!(bytes, crate::codec::encode(&plain).unwrap());
    assert_eq!(crate::codec::decode::<Counter>(&bytes).unwrap(), shared);
    assert_eq!(crate::codec::decode::<Plain>(&bytes).unwrap(), plain);
}

/// A clone of the ledger (what the published snapshot holds) never sees a later apply:
/// counters are shared between the two until one of them changes.
#[test]
fn an_apply_leaves_earlier_clones_untouched() {
    let mut f = Fixture::new(&[policy("q", 100, QuotaMode::Strict)]);
    let ids: Vec<CounterId> = (0..300)
        .map(|i| counter("q", &format!("api_key=k{i}"), 0, 60_000))
        .collect();
    let asks: Vec<(&CounterId, u64)> = ids.iter().map(|c| (c, 10)).collect();
    f.apply(&sync(1, 1, 2, &asks), 1).unwrap();
    let published = f.ledger.clone();
    let mut usage = sync(1, 2, 2, &asks);
    usage.usage = std::mem::take(&mut usage.asks);
    usage.returns = vec![Units {
        counter: ids[7].clone(),
        units: 4,
    }];
    f.apply(&usage, 2).unwrap();
    for c in &ids {
        let old = published.counter(c).unwrap();
        assert_eq!((old.used, old.updated_at_ms), (0, 1));
        assert_eq!(f.ledger.counter(c).unwrap().used, 10);
    }
    assert_eq!(published.counter(&ids[7]).unwrap().granted[&1], 10);
    assert_eq!(f.ledger.counter(&ids[7]).unwrap().granted[&1], 6);
}

/// What a node does in one step of the property test.
#[derive(Debug, Clone)]
enum Step {
    /// Node asks for units on a counter; its reply may be lost (then it retries).
    Ask {
        node: usize,
        counter: usize,
        units: u64,
        lose_reply: bool,
    },
    /// Node admits up to `units` from what it holds.
    Admit {
        node: usize,
        counter: usize,
        units: u64,
    },
    /// Node hands back part of what it holds.
    Return {
        node: usize,
        counter: usize,
        units: u64,
    },
    /// A stale copy of some earlier sync of this node arrives again.
    Replay { node: usize, back: usize },
    /// The node crashes: it loses what it holds and starts a new epoch.
    Restart { node: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..4usize, 0..3usize, 0..60u64, any::<bool>()).prop_map(|(node, counter, units, l)| {
            Step::Ask {
                node,
                counter,
                units,
                lose_reply: l,
            }
        }),
        (0..4usize, 0..3usize, 0..40u64).prop_map(|(node, counter, units)| Step::Admit {
            node,
            counter,
            units
        }),
        (0..4usize, 0..3usize, 0..20u64).prop_map(|(node, counter, units)| Step::Return {
            node,
            counter,
            units
        }),
        (0..4usize, 0..5usize).prop_map(|(node, back)| Step::Replay { node, back }),
        (0..4usize).prop_map(|node| Step::Restart { node }),
    ]
}

#[derive(Default, Clone)]
struct SimNode {
    epoch: u64,
    serial: u64,
    held: [u64; 3],
    sent: Vec<QuotaSync>,
    /// A sync whose reply was lost: sent again (same serial) before anything else.
    pending: Option<QuotaSync>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever nodes ask, lose, retry, replay, return or crash, no counter is ever granted
    /// more than its limit, and the units nodes admitted plus what they hold never exceed it.
    #[test]
    fn grants_never_exceed_the_limit(
        limit in 1..200u64,
        voters in 1..5u32,
        steps in proptest::collection::vec(step(), 1..200),
    ) {
        let mut f = Fixture::new(&[policy("q", limit, QuotaMode::Strict)]);
        let counters: Vec<CounterId> =
            (0..3).map(|i| counter("q", &format!("k{i}"), 0, 60_000)).collect();
        let mut nodes: Vec<SimNode> = (0..4)
            .map(|i| SimNode { epoch: i as u64 * 1000, ..SimNode::default() })
            .collect();
        let mut admitted = [0u64; 3];
        for (t, s) in steps.into_iter().enumerate() {
            let at = t as u64;
            match s {
                Step::Ask { node, counter, units, lose_reply } => {
                    let n = &mut nodes[node];
                    let msg = match n.pending.take() {
                        Some(retry) => retry,
                        None => {
                            n.serial += 1;
                            let mut m = sync(node as u64, n.serial, voters, &[(&counters[counter], units)]);
                            m.epoch = n.epoch;
                            m
                        }
                    };
                    n.sent.push(msg.clone());
                    let reply = f.apply(&msg, at);
                    if lose_reply {
                        n.pending = Some(msg);
                    } else if let Ok(r) = reply {
                        for (ask, g) in msg.asks.iter().zip(&r.grants) {
                            let i = counters.iter().position(|c| *c == ask.counter).unwrap();
                            n.held[i] += g.units;
                        }
                    }
                }
                Step::Admit { node, counter, units } => {
                    let take = units.min(nodes[node].held[counter]);
                    nodes[node].held[counter] -= take;
                    admitted[counter] += take;
                }
                Step::Return { node, counter, units } => {
                    let n = &mut nodes[node];
                    if n.pending.is_some() {
                        continue;
                    }
                    let give = units.min(n.held[counter]);
                    n.held[counter] -= give;
                    n.serial += 1;
                    let mut m = sync(node as u64, n.serial, voters, &[]);
                    m.epoch = n.epoch;
                    m.returns.push(Units { counter: counters[counter].clone(), units: give });
                    n.sent.push(m.clone());
                    let _ = f.apply(&m, at);
                }
                Step::Replay { node, back } => {
                    let n = &nodes[node];
                    if let Some(m) = n.sent.iter().rev().nth(back).cloned() {
                        let before = f.ledger.clone();
                        let last = f.ledger.last_sync(node as u64).cloned();
                        let _ = f.apply(&m, at);
                        // Only a first delivery of the current epoch may change anything.
                        if last.is_some_and(|l| l.epoch > m.epoch || (l.epoch == m.epoch && l.serial >= m.serial)) {
                            prop_assert_eq!(&f.ledger, &before);
                        }
                    }
                }
                Step::Restart { node } => {
                    let n = &mut nodes[node];
                    n.epoch += 1;
                    n.serial = 0;
                    n.held = [0; 3];
                    n.pending = None;
                }
            }
            for (i, c) in counters.iter().enumerate() {
                let granted = f.ledger.counter(c).map_or(0, |c| c.total_granted());
                prop_assert!(granted <= limit, "granted {} > limit {}", granted, limit);
                let held: u64 = nodes.iter().map(|n| n.held[i]).sum();
                prop_assert!(admitted[i] + held <= limit,
                    "admitted {} + held {} > limit {}", admitted[i], held, limit);
            }
        }
    }
}

use super::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::time::Instant;

fn op(client: u64, key: &str, invoke_us: u64, complete_us: Option<u64>, kind: RegKind) -> RegOp {
    let key = key.to_string();
    RegOp {
        client,
        key,
        invoke_us,
        complete_us,
        kind,
    }
}

fn w(client: u64, inv: u64, comp: Option<u64>, v: u64) -> RegOp {
    op(client, "k", inv, comp, RegKind::Write(v))
}

fn r(client: u64, inv: u64, comp: Option<u64>, v: u64) -> RegOp {
    op(client, "k", inv, comp, RegKind::Read(v))
}

/// Checks a one-key history (key "k", initial value 0).
fn one(history: &[RegOp]) -> KeyVerdict {
    let verdicts = check(history, &BTreeMap::new());
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    verdicts.into_iter().next().expect("one verdict")
}

#[test]
fn sequential_history_is_linearizable() {
    let v = one(&[
        r(1, 0, Some(5), 0),
        w(1, 10, Some(15), 7),
        r(2, 20, Some(25), 7),
        w(2, 30, Some(35), 9),
        r(1, 40, Some(45), 9),
    ]);
    assert!(v.linearizable && !v.inconclusive, "{v:?}");
    assert_eq!((v.ops, v.indeterminate), (5, 0));
    assert!(v.evidence.is_empty());
}

#[test]
fn stale_read_after_completed_overwrite_is_not_linearizable() {
    let h = [
        w(1, 900_000, Some(910_000), 7),
        w(2, 1_000_000, Some(1_010_000), 9),
        r(3, 1_204_000, Some(1_206_000), 7),
    ];
    let v = one(&h);
    assert!(!v.linearizable && !v.inconclusive, "{v:?}");
    let e = &v.evidence;
    assert!(
        e.starts_with("read #2 by client 3 [1.204000s–1.206000s] returned 7"),
        "{e}"
    );
    assert!(
        e.contains(
            "write #0 of 7 by client 1 [0.900000s–0.910000s] was overwritten by write #1 of 9"
        ),
        "{e}"
    );
}

#[test]
fn concurrent_write_and_read_may_go_either_way() {
    for seen in [0, 7] {
        let v = one(&[w(1, 10, Some(30), 7), r(2, 15, Some(25), seen)]);
        assert!(v.linearizable, "read of {seen}: {v:?}");
    }
}

#[test]
fn unknown_write_whose_value_is_read_is_linearizable() {
    let v = one(&[
        w(1, 10, None, 7),
        r(2, 100, Some(110), 7),
        r(1, 120, Some(130), 7),
    ]);
    assert!(v.linearizable, "{v:?}");
    assert_eq!((v.ops, v.indeterminate), (3, 1));
}

#[test]
fn value_nobody_wrote_is_not_linearizable() {
    let v = one(&[w(1, 10, None, 7), r(2, 100, Some(110), 42)]);
    assert!(!v.linearizable && !v.inconclusive, "{v:?}");
    assert!(
        v.evidence.contains("no write of 42 exists"),
        "{}",
        v.evidence
    );
}

#[test]
fn unknown_write_not_seen_leaves_old_value() {
    let v = one(&[
        w(1, 10, Some(20), 5),
        w(1, 30, None, 7),
        r(2, 100, Some(110), 5),
    ]);
    assert!(v.linearizable, "{v:?}");
}

#[test]
fn unknown_write_takes_effect_at_most_once() {
    // Read #1 proves write 7 landed before 110; write 8 then completed, so #3 cannot see 7.
    let h = [
        w(1, 0, None, 7),
        r(2, 100, Some(110), 7),
        w(3, 120, Some(130), 8),
    ];
    let v = one(&[&h[..], &[r(2, 140, Some(150), 7)]].concat());
    assert!(!v.linearizable && !v.inconclusive, "{v:?}");
    assert!(v.evidence.starts_with("read #3"), "{}", v.evidence);
    // With no earlier read of 7 the same write may land late, after write 8.
    let v = one(&[h[0].clone(), h[2].clone(), r(2, 140, Some(150), 7)]);
    assert!(v.linearizable, "{v:?}");
}

#[test]
fn unknown_write_of_a_repeated_value_stays_open_ended() {
    // 5 is written twice, so the unknown write is not closed early; it may land after 7.
    let h = [
        w(1, 0, Some(10), 5),
        w(2, 20, None, 5),
        w(3, 30, Some(40), 7),
    ];
    let v = one(&[&h[..], &[r(4, 50, Some(60), 5)]].concat());
    assert!(v.linearizable, "{v:?}");
    let v = one(&[h[0].clone(), h[2].clone(), r(4, 50, Some(60), 5)]);
    assert!(
        !v.linearizable,
        "without the unknown write 5 is overwritten: {v:?}"
    );
}

#[test]
fn unanswered_reads_are_dropped() {
    let v = one(&[
        w(1, 0, Some(10), 7),
        r(2, 20, None, 12345),
        r(2, 30, Some(40), 7),
    ]);
    assert!(v.linearizable, "{v:?}");
    assert_eq!((v.ops, v.indeterminate), (2, 0));
}

#[test]
fn reads_contradicting_real_time_are_not_linearizable() {
    // Write 2 is slow; read A sees it, then read B (after A ended) sees the older 1.
    let h = [
        w(1, 0, Some(10), 1),
        w(2, 20, Some(100), 2),
        r(3, 30, Some(40), 2),
        r(4, 50, Some(60), 1),
    ];
    let v = one(&h);
    assert!(!v.linearizable && !v.inconclusive, "{v:?}");
    assert!(
        v.evidence.starts_with("read #3 by client 4"),
        "{}",
        v.evidence
    );
    assert!(
        v.evidence.contains("superseded, as seen by read #2"),
        "{}",
        v.evidence
    );
    // Overlapping reads may see the two values in either order.
    let v = one(&[
        h[0].clone(),
        h[1].clone(),
        r(3, 30, Some(55), 2),
        h[3].clone(),
    ]);
    assert!(v.linearizable, "{v:?}");
}

#[test]
fn keys_are_checked_independently() {
    let h = [
        op(1, "a", 0, Some(10), RegKind::Write(1)),
        op(2, "b", 0, Some(10), RegKind::Write(2)),
        op(1, "a", 20, Some(30), RegKind::Read(100)),
        op(2, "b", 20, Some(30), RegKind::Read(2)),
        op(3, "c", 20, Some(30), RegKind::Read(50)),
    ];
    let initial = BTreeMap::from([("a".to_string(), 100), ("c".to_string(), 50)]);
    let v = check(&h, &initial);
    let got: Vec<(&str, bool)> = v.iter().map(|v| (v.key.as_str(), v.linearizable)).collect();
    assert_eq!(got, [("a", false), ("b", true), ("c", true)], "{v:?}");
    assert!(
        v[0].evidence.contains("initial value 100 was replaced"),
        "{}",
        v[0].evidence
    );
}

#[test]
fn equal_timestamps_are_concurrent() {
    // The write's answer and the read's request carry the same microsecond: either order.
    let v = one(&[w(1, 10, Some(20), 7), r(2, 20, Some(30), 0)]);
    assert!(v.linearizable, "{v:?}");
    let v = one(&[
        w(1, 10, Some(20), 7),
        r(2, 20, Some(30), 7),
        r(3, 20, Some(20), 0),
    ]);
    assert!(v.linearizable, "{v:?}");
    // One microsecond later the order is real and the stale read is caught.
    let v = one(&[w(1, 10, Some(20), 7), r(2, 21, Some(30), 0)]);
    assert!(!v.linearizable, "{v:?}");
}

#[test]
fn exhausted_budget_is_inconclusive() {
    let mut rng = StdRng::seed_from_u64(7);
    let (h, initial) = simulate(&mut rng, 4, 1, 50);
    let v = check_with_budget(&h, &initial, 10);
    assert!(v[0].inconclusive && !v[0].linearizable, "{v:?}");
    assert!(check(&h, &initial)[0].linearizable);
}

/// Runs clients against a simulated linearizable store: each op takes effect at a random
/// instant inside its interval; some answers are lost (a lost write may apply or not, even
/// after the client gave up). Small integer times make ties common. Returns the history and
/// the initial values.
fn simulate(
    rng: &mut StdRng,
    clients: u64,
    keys: usize,
    per_client: usize,
) -> (Vec<RegOp>, BTreeMap<String, u64>) {
    let initial: BTreeMap<String, u64> = (0..keys)
        .map(|k| (format!("k{k}"), 1000 + k as u64))
        .collect();
    let (mut h, mut effects, mut next) = (Vec::new(), Vec::new(), 0);
    for client in 0..clients {
        let mut t = rng.random_range(0..20);
        for _ in 0..per_client {
            let key = format!("k{}", rng.random_range(0..keys));
            let invoke = t + rng.random_range(0..4);
            let lat = if rng.random_bool(0.02) {
                rng.random_range(100..400)
            } else {
                rng.random_range(0..30)
            };
            let write = rng.random_bool(0.5);
            next += 1;
            let kind = if write {
                RegKind::Write(next)
            } else {
                RegKind::Read(u64::MAX)
            };
            let complete = if rng.random_bool(0.04) {
                if write && rng.random_bool(0.5) {
                    effects.push((
                        invoke + rng.random_range(0..200),
                        rng.random::<u32>(),
                        h.len(),
                    ));
                }
                t = invoke + 50;
                None
            } else {
                effects.push((
                    rng.random_range(invoke..=invoke + lat),
                    rng.random::<u32>(),
                    h.len(),
                ));
                t = invoke + lat;
                Some(invoke + lat)
            };
            h.push(op(client, &key, invoke, complete, kind));
        }
    }
    effects.sort_unstable();
    let mut current = initial.clone();
    for (_, _, i) in effects {
        let cur = current.get_mut(&h[i].key).expect("simulated key");
        match &mut h[i].kind {
            RegKind::Write(v) => *cur = *v,
            RegKind::Read(v) => *v = *cur,
        }
    }
    (h, initial)
}

#[test]
fn simulated_histories_pass_and_mutated_reads_are_caught() {
    let (mut detected, mut mutated) = (0, 0);
    for seed in 0..150 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (clients, keys) = (rng.random_range(2..=6), rng.random_range(1..=3));
        let per_client = rng.random_range(5..60);
        let (mut h, initial) = simulate(&mut rng, clients, keys, per_client);
        for v in check(&h, &initial) {
            assert!(
                v.linearizable && !v.inconclusive,
                "seed {seed}: false positive {v:?}"
            );
        }
        // Replace one answered read's value by another value its key held at some point.
        let reads: Vec<usize> = (0..h.len())
            .filter(|&i| matches!(h[i].kind, RegKind::Read(_)) && h[i].complete_us.is_some())
            .collect();
        if reads.is_empty() {
            continue;
        }
        let i = reads[rng.random_range(0..reads.len())];
        let key = h[i].key.clone();
        let mut held: Vec<u64> = h
            .iter()
            .filter(|o| o.key == key)
            .filter_map(|o| match o.kind {
                RegKind::Write(v) => Some(v),
                RegKind::Read(_) => None,
            })
            .collect();
        held.push(initial[&key]);
        let RegKind::Read(old) = h[i].kind else {
            unreachable!()
        };
        held.retain(|&v| v != old);
        if held.is_empty() {
            continue;
        }
        h[i].kind = RegKind::Read(held[rng.random_range(0..held.len())]);
        mutated += 1;
        for v in check(&h, &initial) {
            assert!(!v.inconclusive, "seed {seed}: {v:?}");
            if v.key != key {
                assert!(v.linearizable, "seed {seed}: untouched key failed: {v:?}");
            } else if !v.linearizable {
                detected += 1;
                assert!(v.evidence.contains("<--"), "{}", v.evidence);
            }
        }
    }
    eprintln!("detected {detected} of {mutated} mutated reads");
    assert!(
        detected >= 1 && detected * 2 >= mutated,
        "only {detected} of {mutated}"
    );
}

#[test]
fn agrees_with_stateright_on_tiny_histories() {
    use stateright::semantics::register::{Register, RegisterOp, RegisterRet};
    use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
    let (mut yes, mut no) = (0, 0);
    for seed in 0..3000 {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = rng.random_range(1..=7);
        let h: Vec<RegOp> = (0..n)
            .map(|i| {
                let inv = rng.random_range(0..20);
                let comp = (!rng.random_bool(0.2)).then(|| inv + rng.random_range(0..10));
                let v = rng.random_range(0..=3);
                let kind = if rng.random_bool(0.5) {
                    RegKind::Write(v)
                } else {
                    RegKind::Read(v)
                };
                op(i, "k", inv, comp, kind)
            })
            .collect();
        // Oracle: one thread id per op (ties and unknown outcomes need it), invokes first.
        let mut events = Vec::new();
        for (t, o) in h.iter().enumerate() {
            if let (RegKind::Read(_), None) = (o.kind, o.complete_us) {
                continue;
            }
            events.push((o.invoke_us, false, t));
            if let Some(c) = o.complete_us {
                events.push((c, true, t));
            }
        }
        events.sort_unstable();
        let mut tester = LinearizabilityTester::new(Register(0u64));
        for (_, ret, t) in events {
            let res = match (h[t].kind, ret) {
                (RegKind::Write(v), false) => tester.on_invoke(t, RegisterOp::Write(v)),
                (RegKind::Read(_), false) => tester.on_invoke(t, RegisterOp::Read),
                (RegKind::Write(_), true) => tester.on_return(t, RegisterRet::WriteOk),
                (RegKind::Read(v), true) => tester.on_return(t, RegisterRet::ReadOk(v)),
            };
            res.expect("well-formed history");
        }
        let expected = tester.is_consistent();
        let got = one(&h);
        assert_eq!(got.linearizable, expected, "seed {seed}: {h:?}\n{got:?}");
        if expected {
            yes += 1
        } else {
            no += 1
        }
    }
    assert!(
        yes > 300 && no > 300,
        "too one-sided to mean much: {yes} vs {no}"
    );
}

#[test]
fn two_thousand_ops_on_one_key_finish() {
    let mut rng = StdRng::seed_from_u64(2000);
    let (mut h, initial) = simulate(&mut rng, 4, 1, 500);
    let start = Instant::now();
    let v = check(&h, &initial);
    let ok_time = start.elapsed();
    assert!(v[0].linearizable && !v[0].inconclusive, "{v:?}");
    assert!(v[0].ops > 1900 && v[0].indeterminate > 10, "{v:?}");
    // A stale read near the end: the search must exhaust the prefix and still finish.
    let last = (0..h.len())
        .rev()
        .find(|&i| {
            matches!(h[i].kind, RegKind::Read(x) if x != 1000)
                && h[i].complete_us.is_some_and(|c| c > 5000)
        })
        .expect("a late read");
    h[last].kind = RegKind::Read(1000);
    let start = Instant::now();
    let v = check(&h, &initial);
    let bad_time = start.elapsed();
    assert!(!v[0].linearizable && !v[0].inconclusive, "{v:?}");
    eprintln!(
        "2000 ops: linearizable in {ok_time:?}, stale read caught in {bad_time:?}\n{}",
        v[0].evidence
    );
}

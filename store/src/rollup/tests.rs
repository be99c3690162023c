use proptest::prelude::*;

use super::*;
use crate::codec;

/// The exact `q` quantile as the sketch defines it: the sample of rank max(1, ceil(q·n)).
fn exact(sorted: &[u64], q: f64) -> u64 {
    let n = sorted.len() as u64;
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
    sorted[(rank - 1) as usize]
}

fn within_bound(got: f64, want: u64) -> bool {
    // 1% relative, plus a hair for floating point at bucket edges.
    (got - want as f64).abs() <= want as f64 * (ALPHA + 1e-9)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Samples spread over several "nodes", each with its own sketch, merged in any
    /// order: every percentile is within 1% of the exact one over all samples.
    #[test]
    fn merged_sketch_quantiles_are_within_one_percent(
        parts in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![0u64..2_000, 1_000u64..200_000, 0u64..=MAX_LATENCY_US],
                0..300,
            ),
            1..6,
        ),
        qs in prop::collection::vec(0.0f64..=1.0, 1..8),
    ) {
        let mut merged = Sketch::default();
        for p in &parts {
            let mut s = Sketch::default();
            for v in p {
                s.record(*v);
            }
            // Through the wire format, as a peer's answer would come.
            let s: Sketch = codec::decode(&codec::encode(&s).unwrap()).unwrap();
            merged.merge(&s);
        }
        let mut all: Vec<u64> = parts.concat();
        all.sort_unstable();
        prop_assert_eq!(merged.count(), all.len() as u64);
        if all.is_empty() {
            prop_assert_eq!(merged.quantile(0.5), None);
            return Ok(());
        }
        for q in qs.into_iter().chain([0.0, 0.5, 0.95, 0.99, 1.0]) {
            let got = merged.quantile(q).unwrap();
            let want = exact(&all, q);
            prop_assert!(within_bound(got, want), "q={} got={} exact={}", q, got, want);
        }
    }
}

#[test]
fn large_latencies_are_clamped_not_lost() {
    let mut s = Sketch::default();
    s.record(u64::MAX);
    assert_eq!(s.count(), 1);
    assert!(within_bound(s.quantile(1.0).unwrap(), MAX_LATENCY_US));
}

fn open() -> (tempfile::TempDir, RollupStore) {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::db::open_db(dir.path()).unwrap();
    (dir, RollupStore::new(db))
}

const T0: u64 = 1_700_000_040_000; // a minute boundary

fn rec(ms: u64, tenant: &str, route: &str, status: u16, latency_ms: u64) -> CallRecord {
    CallRecord {
        time_us: ms * 1000,
        tenant: Some(tenant.into()),
        route: Some(route.into()),
        consumer: Some(format!("{tenant}-app")),
        status,
        latency_us: latency_ms * 1000,
        tokens_in: Some(3),
        tokens_out: Some(5),
        cost_micros: Some(7),
        ..CallRecord::default()
    }
}

fn q(d: Dimension, group: GroupBy) -> RollupQuery {
    RollupQuery {
        from_ms: T0,
        to_ms: T0 + 10 * MINUTE_MS,
        dimension: d,
        key: None,
        tenant: None,
        group,
    }
}

#[test]
fn row_keys_round_trip_and_sort_by_dimension_then_minute() {
    let a = RowKey {
        dimension: Dimension::Route,
        minute_ms: T0,
        tenant: "t\u{e9}".into(),
        key: "r/1".into(),
    };
    assert_eq!(RowKey::decode(&a.encode()), Some(a.clone()));
    let later = RowKey {
        minute_ms: T0 + MINUTE_MS,
        tenant: String::new(),
        ..a.clone()
    };
    assert!(a.encode() < later.encode());
    let model = RowKey {
        dimension: Dimension::Model,
        minute_ms: 0,
        ..a.clone()
    };
    assert!(later.encode() < model.encode());
    assert_eq!(RowKey::decode(&[1, 2]), None);
}

#[test]
fn calls_roll_up_per_minute_and_key_with_tenant_scoping() {
    let (_d, store) = open();
    let mut agg = Rollups::new(store.clone(), u64::MAX);
    let now = T0 + 2 * MINUTE_MS;
    for r in [
        rec(T0 + 1, "ta", "r1", 200, 10),
        rec(T0 + 2, "ta", "r1", 404, 20),
        rec(T0 + 3, "tb", "r2", 503, 30),
        rec(T0 + MINUTE_MS + 5, "ta", "r2", 200, 40),
    ] {
        agg.add(&r, now).unwrap();
    }
    agg.persist(now, true).unwrap();

    let page = store.query(&q(Dimension::All, GroupBy::Minute)).unwrap();
    assert!(!page.truncated);
    let per_min: Vec<(u64, u64, u64, u64)> = page
        .groups
        .iter()
        .map(|g| {
            let s = &g.stats;
            (g.minute_ms, s.requests, s.errors_4xx, s.errors_5xx)
        })
        .collect();
    assert_eq!(per_min, vec![(T0, 3, 1, 1), (T0 + MINUTE_MS, 1, 0, 0)]);
    assert_eq!(page.groups[0].stats.tokens_in, 9);
    assert_eq!(page.groups[0].stats.cost_micros, 21);
    assert!(within_bound(
        page.groups[0].stats.latency.quantile(1.0).unwrap(),
        30_000
    ));

    let mut by_route = q(Dimension::Route, GroupBy::Key);
    let page = store.query(&by_route).unwrap();
    let counts: Vec<(&str, u64)> = page
        .groups
        .iter()
        .map(|g| (g.key.as_str(), g.stats.requests))
        .collect();
    assert_eq!(counts, vec![("r1", 2), ("r2", 2)]);

    by_route.tenant = Some("tb".into());
    let page = store.query(&by_route).unwrap();
    let counts: Vec<(&str, u64)> = page
        .groups
        .iter()
        .map(|g| (g.key.as_str(), g.stats.requests))
        .collect();
    assert_eq!(counts, vec![("r2", 1)], "only tb's calls");

    let mut one = q(Dimension::Route, GroupBy::Minute);
    one.key = Some("r2".into());
    one.from_ms = T0 + MINUTE_MS;
    let page = store.query(&one).unwrap();
    assert_eq!(page.groups.len(), 1);
    assert_eq!(
        (page.groups[0].minute_ms, page.groups[0].stats.requests),
        (T0 + MINUTE_MS, 1)
    );
}

#[test]
fn a_late_record_adds_to_the_stored_row_of_an_evicted_minute() {
    let (_d, store) = open();
    let mut agg = Rollups::new(store.clone(), u64::MAX);
    agg.add(&rec(T0, "ta", "r1", 200, 1), T0).unwrap();
    agg.persist(T0, false).unwrap();
    // Ten minutes on: T0's rows leave memory.
    let later = T0 + 10 * MINUTE_MS;
    agg.persist(later, false).unwrap();
    assert_eq!(agg.open_rows(), 0);
    agg.add(&rec(T0 + 7, "ta", "r1", 500, 2), later).unwrap();
    agg.persist(later, false).unwrap();
    let page = store.query(&q(Dimension::Route, GroupBy::Key)).unwrap();
    assert_eq!(page.groups.len(), 1);
    assert_eq!(page.groups[0].stats.requests, 2);
    assert_eq!(page.groups[0].stats.errors_5xx, 1);
    assert_eq!(page.groups[0].stats.latency.count(), 2);
}

#[test]
fn keys_beyond_the_cap_count_as_other_and_retention_deletes_old_minutes() {
    let (_d, store) = open();
    let max_age = 5 * MINUTE_MS;
    let mut agg = Rollups::new(store.clone(), max_age);
    for i in 0..MAX_KEYS_PER_MINUTE + 10 {
        agg.add(&rec(T0, "ta", &format!("r{i}"), 200, 1), T0)
            .unwrap();
    }
    agg.persist(T0, true).unwrap();
    let page = store.query(&q(Dimension::Route, GroupBy::Key)).unwrap();
    assert_eq!(page.groups.len(), MAX_KEYS_PER_MINUTE + 1);
    let other = page.groups.iter().find(|g| g.key == OTHER_KEY).unwrap();
    assert_eq!(other.stats.requests, 10);
    let all = store.query(&q(Dimension::All, GroupBy::Minute)).unwrap();
    assert_eq!(
        all.groups[0].stats.requests,
        MAX_KEYS_PER_MINUTE as u64 + 10
    );

    // A fresh aggregator trims on its first persist; T0 is past retention by then.
    let mut agg = Rollups::new(store.clone(), max_age);
    agg.persist(T0 + max_age + MINUTE_MS, false).unwrap();
    assert!(store
        .query(&q(Dimension::All, GroupBy::Minute))
        .unwrap()
        .groups
        .is_empty());
    // Records already past retention are not counted.
    agg.add(&rec(T0, "ta", "r1", 200, 1), T0 + 2 * max_age)
        .unwrap();
    assert_eq!(agg.open_rows(), 0);
}

#[test]
fn pages_from_nodes_merge_by_minute_and_key() {
    let page = |n: u64, lat: u64, truncated| {
        let mut stats = Stats::default();
        for _ in 0..n {
            stats.add_record(&rec(T0, "t", "r", 200, lat));
        }
        RollupPage {
            groups: vec![RollupGroup {
                minute_ms: T0,
                key: String::new(),
                stats,
            }],
            truncated,
        }
    };
    let (merged, truncated) = merge_pages(vec![page(3, 10, false), page(1, 1000, true)]);
    assert!(truncated);
    let s = &merged[&(T0, String::new())];
    assert_eq!(s.requests, 4);
    assert!(within_bound(s.latency.quantile(0.75).unwrap(), 10_000));
    assert!(within_bound(s.latency.quantile(1.0).unwrap(), 1_000_000));
}

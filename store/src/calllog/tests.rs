use std::collections::HashSet;

use super::store::now_us;
use super::*;
use crate::codec;

fn open() -> (tempfile::TempDir, CallLogStore) {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::db::open_db(dir.path()).unwrap();
    (dir, CallLogStore::new(db))
}

fn rec(time_us: u64, node: u64, tenant: &str, status: u16, latency_us: u64) -> CallRecord {
    CallRecord {
        time_us,
        node_id: node,
        request_id: format!("req-{time_us}"),
        method: "GET".into(),
        path: "/x".into(),
        route: Some(format!("r-{}", time_us % 3)),
        tenant: Some(tenant.into()),
        consumer: Some(format!("{tenant}-app")),
        status,
        latency_us,
        ..CallRecord::default()
    }
}

fn query(filter: CallFilter, limit: u32, cursor: Option<Pos>) -> CallQuery {
    CallQuery {
        filter,
        limit,
        cursor,
    }
}

#[test]
fn record_round_trips_through_the_codec() {
    let r = CallRecord {
        time_us: 1_700_000_000_123_456,
        seq: 42,
        node_id: 3,
        request_id: "abc".into(),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        route: Some("r".into()),
        service: Some("s".into()),
        tenant: Some("t".into()),
        consumer: Some("c".into()),
        model: Some("gpt".into()),
        provider: Some("openai".into()),
        deployment: Some("gpt-4o".into()),
        attempts: 2,
        fallbacks: vec!["azure".into()],
        status: 200,
        latency_us: 1234,
        ttft_us: Some(99),
        tokens_in: Some(10),
        tokens_out: Some(20),
        cost_micros: Some(7),
        cache_hit: true,
        guardrails: vec!["pii.email".into()],
        bytes_in: 100,
        bytes_out: 200,
        error: Some("upstream_timeout".into()),
        aborted: true,
        request_body: Some("{\"a\":1}".into()),
        response_body: Some("base64:AAE=".into()),
        request_truncated: true,
        response_truncated: false,
    };
    let bytes = codec::encode(&r).unwrap();
    assert_eq!(codec::decode::<CallRecord>(&bytes).unwrap(), r);
    assert_eq!(decode_record(&bytes).unwrap(), r);
    assert!(codec::decode::<CallRecord>(&bytes[..bytes.len() - 1]).is_err());
    assert!(decode_record(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn records_from_before_payload_capture_still_decode() {
    // The layout before the capture fields: every older field, nothing after `aborted`.
    let old = CallRecord {
        aborted: true,
        ..rec(5_000, 1, "t", 200, 7)
    };
    let current = codec::encode(&old).unwrap();
    let legacy = &current[..current.len() - 4];
    assert!(
        codec::decode::<CallRecord>(legacy).is_err(),
        "really the old layout"
    );
    assert_eq!(decode_record(legacy).unwrap(), old);

    // And through the store, next to a new record with a captured body.
    let (_d, s) = open();
    let db = s.db_handle();
    let cf = crate::db::cf(&db, crate::db::CF_CALLLOG);
    db.put_cf(cf, super::store::key(5_000, 0), legacy).unwrap();
    let s = CallLogStore::new(db);
    let mut new = vec![CallRecord {
        request_body: Some("x".into()),
        response_truncated: true,
        ..rec(6_000, 1, "t", 200, 7)
    }];
    s.append(&mut new).unwrap();
    let page = s
        .query(1, &query(CallFilter::default(), 10, None), MAX_SCAN)
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.items[0].request_body.as_deref(), Some("x"));
    assert!(page.items[0].response_truncated);
    assert_eq!(page.items[1].request_body, None);
    assert!(page.items[1].aborted && !page.items[1].request_truncated);
}

#[test]
fn cursors_round_trip_and_reject_garbage() {
    let p = Pos {
        time_us: 1_700_000_000_000_000,
        node: 2,
        seq: 77,
    };
    assert_eq!(Pos::from_cursor(&p.to_cursor()), Some(p));
    for bad in ["", "x", "1-2", "1-2-3-4", "1--3", "zz-1-1", "-1-2-3"] {
        assert_eq!(Pos::from_cursor(bad), None, "{bad}");
    }
}

#[test]
fn scans_newest_first_with_filters() {
    let (_d, s) = open();
    let mut rs: Vec<CallRecord> = (0..100u64)
        .map(|i| {
            let tenant = if i % 2 == 0 { "a" } else { "b" };
            let status = [200, 404, 502][(i % 3) as usize];
            // Pairs of records share a timestamp: the sequence keeps them apart.
            rec(1_000 + i / 2, 1, tenant, status, i * 10)
        })
        .collect();
    s.append(&mut rs).unwrap();
    let all = s
        .query(1, &query(CallFilter::default(), 1000, None), MAX_SCAN)
        .unwrap();
    assert_eq!(all.items.len(), 100);
    assert_eq!(all.resume, None);
    assert!(all.items.windows(2).all(|w| w[0].pos() > w[1].pos()));

    let f = CallFilter {
        tenant: Some("a".into()),
        status_class: Some(5),
        min_latency_us: Some(300),
        ..CallFilter::default()
    };
    let got = s.query(1, &query(f.clone(), 1000, None), MAX_SCAN).unwrap();
    let want = rs.iter().filter(|r| f.matches(r)).count();
    assert!(want > 0);
    assert_eq!(got.items.len(), want);
    assert!(got
        .items
        .iter()
        .all(|r| r.tenant.as_deref() == Some("a") && r.status == 502 && r.latency_us >= 300));

    let window = CallFilter {
        from_us: 1_010,
        to_us: Some(1_020),
        ..CallFilter::default()
    };
    let got = s.query(1, &query(window, 1000, None), MAX_SCAN).unwrap();
    assert_eq!(got.items.len(), 20);
    assert!(got
        .items
        .iter()
        .all(|r| (1_010..1_020).contains(&r.time_us)));

    // Paging within one node: every record once, in order.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .query(1, &query(CallFilter::default(), 7, cursor), MAX_SCAN)
            .unwrap();
        let merged = merge_pages(vec![page], 7);
        seen.extend(merged.items);
        match merged.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, all.items);
}

/// Three nodes' stores, paged through with small pages and a tiny scan budget: the
/// merged pages list every matching record exactly once, in the cluster-wide order.
#[test]
fn merged_paging_across_nodes_is_exact() {
    let stores: Vec<_> = (1..=3u64).map(|n| (n, open())).collect();
    let mut expected = Vec::new();
    for (n, (_, s)) in &stores {
        let mut rs: Vec<CallRecord> = (0..300u64)
            // Heavy timestamp collisions across nodes, different per node.
            .map(|i| {
                rec(
                    5_000 + (i * (n + 1)) % 97,
                    *n,
                    ["a", "b"][(i % 2) as usize],
                    200,
                    i,
                )
            })
            .collect();
        s.append(&mut rs).unwrap();
        expected.extend(rs.into_iter().filter(|r| r.tenant.as_deref() == Some("b")));
    }
    expected.sort_by_key(|r| std::cmp::Reverse(r.pos()));
    let filter = CallFilter {
        tenant: Some("b".into()),
        ..CallFilter::default()
    };
    for (limit, budget) in [(10u32, 5usize), (25, 1000), (1000, 3), (1, 1)] {
        let mut seen = Vec::new();
        let mut cursor = None;
        for _ in 0..100_000 {
            let pages = stores
                .iter()
                .map(|(n, (_, s))| {
                    s.query(*n, &query(filter.clone(), limit, cursor), budget)
                        .unwrap()
                })
                .collect();
            let merged = merge_pages(pages, limit as usize);
            assert!(merged.items.len() <= limit as usize);
            seen.extend(merged.items);
            match merged.next {
                Some(n) => {
                    assert!(cursor.is_none_or(|c| n < c), "the cursor must move down");
                    cursor = Some(n);
                }
                None => break,
            }
        }
        assert_eq!(seen.len(), expected.len(), "limit {limit} budget {budget}");
        assert_eq!(seen, expected, "limit {limit} budget {budget}");
        let unique: HashSet<Pos> = seen.iter().map(CallRecord::pos).collect();
        assert_eq!(unique.len(), seen.len());
    }
}

#[test]
fn sequences_continue_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::db::open_db(dir.path()).unwrap();
    let s = CallLogStore::new(db.clone());
    let mut a = vec![rec(10, 1, "a", 200, 1), rec(10, 1, "a", 200, 1)];
    s.append(&mut a).unwrap();
    s.flush().unwrap();
    drop(s);
    let s = CallLogStore::new(db);
    let mut b = vec![rec(10, 1, "a", 200, 1)];
    s.append(&mut b).unwrap();
    assert!(b[0].seq > a[1].seq);
    assert_eq!(s.count(), 3);
}

/// Records older than the age limit are never returned; their file goes once its newest
/// record is older than the limit (RocksDB's FIFO TTL, checked when a flush lands).
#[test]
fn retention_by_age_hides_old_records_then_drops_their_file() {
    let (_d, s) = open();
    s.set_retention(&Retention {
        max_age_us: 1_000_000,
        max_bytes: u64::MAX,
    })
    .unwrap();
    let now = now_us();
    let mut rs: Vec<CallRecord> = (0..100u64)
        .map(|i| rec(now - 10_000_000 + i, 1, "a", 200, 1))
        .chain((0..100u64).map(|i| rec(now + i, 1, "a", 200, 1)))
        .collect();
    s.append(&mut rs).unwrap();
    let page = s
        .query(1, &query(CallFilter::default(), 1000, None), MAX_SCAN)
        .unwrap();
    assert_eq!(page.items.len(), 100, "only the fresh records are visible");
    assert!(page.items.iter().all(|r| r.time_us >= now));
    s.settle().unwrap();
    assert_eq!(s.sweep().unwrap(), Trimmed::default(), "the file is new");
    assert_eq!(s.count(), 200, "still on disk until the file expires");
    assert!(s.bytes() > 0);

    std::thread::sleep(std::time::Duration::from_millis(2_200));
    let mut later = vec![rec(now_us(), 1, "a", 200, 1)];
    s.append(&mut later).unwrap();
    s.settle().unwrap();
    let t = s.sweep().unwrap();
    assert_eq!(t.records, 200, "the expired file went whole");
    assert!(t.bytes > 0);
    assert_eq!(s.count(), 1);
}

/// A flood of 200k records against a 1 MiB limit: after each settled flush the files
/// on disk fit the limit, the records kept are the newest (contiguous up to the last
/// written), and what the sweeps report as deleted plus what is kept is exactly what
/// was written — FIFO's merges of small files are not mistaken for deletions.
#[test]
fn retention_by_size_drops_the_oldest_files_under_a_flood() {
    let (_d, s) = open();
    let max_bytes = 1 << 20;
    s.set_retention(&Retention {
        max_age_us: u64::MAX,
        max_bytes,
    })
    .unwrap();
    let mut newest = 0;
    let mut trimmed = 0;
    for batch in 0..200u64 {
        let mut rs: Vec<CallRecord> = (0..1000u64)
            .map(|i| {
                let t = 1_000_000 + batch * 1000 + i;
                newest = t;
                let mut r = rec(t, 1, "tenant-with-a-longer-name", 200, i);
                r.request_id = format!("{:032x}", t.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                r
            })
            .collect();
        s.append(&mut rs).unwrap();
        if batch % 10 == 9 {
            s.settle().unwrap();
            trimmed += s.sweep().unwrap().records;
            assert!(
                s.bytes() <= max_bytes,
                "batch {batch}: {} bytes on disk",
                s.bytes()
            );
        }
    }
    assert!(trimmed > 100_000, "the flood must have forced deletions");
    let kept = s.count() as u64;
    assert_eq!(kept + trimmed, 200_000);
    assert_eq!(s.oldest_us(), Some(newest + 1 - kept));
}

/// A quiet node flushes a few records every 5 s: once 64 small files pile up, FIFO's
/// joining is turned on until they are joined, and the join is not counted as a deletion.
#[test]
fn small_files_are_joined_then_joining_stops() {
    let (_d, s) = open();
    s.set_retention(&Retention {
        max_age_us: u64::MAX,
        max_bytes: u64::MAX,
    })
    .unwrap();
    for i in 0..70u64 {
        let mut rs: Vec<CallRecord> = (0..5)
            .map(|j| rec(1_000 + i * 10 + j, 1, "a", 200, 1))
            .collect();
        s.append(&mut rs).unwrap();
        s.flush().unwrap();
    }
    assert_eq!(s.sweep().unwrap(), Trimmed::default());
    assert!(s.merging(), "70 small files turn joining on");
    let mut one = vec![rec(5_000, 1, "a", 200, 1)];
    s.append(&mut one).unwrap();
    s.settle().unwrap();
    assert_eq!(
        s.sweep().unwrap(),
        Trimmed::default(),
        "joined, not deleted"
    );
    assert!(
        !s.merging(),
        "joined down to a few files, joining is off again"
    );
    assert_eq!(s.count(), 351);
}

/// A call log written by a release with levelled compaction (files in the bottom level)
/// opens under FIFO with every record readable, and is drained oldest first by size.
#[test]
fn a_levelled_call_log_opens_under_fifo_and_drains_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_target_file_size_base(64 * 1024); // several bottom-level files
        let db = rocksdb::DB::open_cf(&o, dir.path().join("db"), [crate::db::CF_CALLLOG]).unwrap();
        let cf = db.cf_handle(crate::db::CF_CALLLOG).unwrap();
        for batch in 0..20u64 {
            let mut wb = rocksdb::WriteBatch::default();
            for i in 0..2000u64 {
                let t = 1_000_000 + batch * 2000 + i;
                let mut r = rec(t, 1, "a", 200, i);
                r.request_id = format!("{:032x}", t.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                wb.put_cf(cf, super::store::key(t, t), codec::encode(&r).unwrap());
            }
            db.write(wb).unwrap();
            db.flush_cf(cf).unwrap();
        }
        db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
        let levels: Vec<i32> = db.live_files().unwrap().iter().map(|f| f.level).collect();
        assert!(levels.iter().all(|l| *l > 0), "levelled files: {levels:?}");
    }
    let db = crate::db::open_db(dir.path()).unwrap();
    let s = CallLogStore::new(db);
    assert_eq!(s.count(), 40_000);
    s.sweep().unwrap();
    let before = s.bytes();
    assert!(before > 0);
    s.set_retention(&Retention {
        max_age_us: u64::MAX,
        max_bytes: before / 2,
    })
    .unwrap();
    let mut fresh = vec![rec(2_000_000, 1, "a", 200, 1)];
    s.append(&mut fresh).unwrap();
    s.settle().unwrap();
    let t = s.sweep().unwrap();
    assert!(t.records > 0, "over the limit: old files dropped");
    assert!(s.bytes() <= before / 2, "{} > {}", s.bytes(), before / 2);
    let kept = s.count() as u64;
    assert_eq!(kept + t.records, 40_001);
    // The records that went are the oldest: what is left is contiguous up to the newest.
    assert_eq!(s.oldest_us(), Some(1_000_000 + 40_000 - (kept - 1)));
    // By age too: every levelled record is decades old, so all those files go. The
    // fresh record's file is FIFO's (level 0) and expires by its flush time, later.
    s.set_retention(&Retention {
        max_age_us: 1_000_000,
        max_bytes: u64::MAX,
    })
    .unwrap();
    assert_eq!(s.sweep().unwrap().records, kept - 1);
    assert_eq!(s.count(), 1);
}

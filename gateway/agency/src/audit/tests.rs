//! Tests of the whole log: appends, recovery, tampering, anchors, queries.

use super::*;
use std::path::Path;
use std::time::Instant;

fn rec(i: u64) -> AuditRecord {
    AuditRecord {
        request_id: format!("req-{i}"),
        licensee: Some(if i.is_multiple_of(2) { "acme" } else { "globex" }.to_owned()),
        dataset: Some(if i.is_multiple_of(3) { "hydrants" } else { "roads" }.to_owned()),
        decision: if i.is_multiple_of(4) { "deny" } else { "allow" }.to_owned(),
        reason: i.is_multiple_of(4).then(|| "no-licence".to_owned()),
        status: if i.is_multiple_of(4) { 403 } else { 200 },
        records_out: i,
        latency_ms: 0.1 * i as f64,
        method: "GET".into(),
        path: "/v1/datasets/roads/records".into(),
        ..AuditRecord::default()
    }
}

async fn write_log(dir: &Path, n: u64, options: AuditOptions) -> Head {
    let log = AuditLog::open(dir, options).await.unwrap();
    for i in 1..=n {
        log.append(rec(i)).await.unwrap();
    }
    let head = log.head();
    log.close().await.unwrap();
    head
}

fn segment_path(dir: &Path, index: u32) -> std::path::PathBuf {
    dir.join(format!("audit-{index:06}.jsonl"))
}

fn edit_lines(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    f(&mut lines);
    let mut out = lines.join("\n");
    out.push('\n');
    std::fs::write(path, out).unwrap();
}

fn first_bad(dir: &Path) -> BadRecord {
    verify_dir(dir).unwrap().first_bad.expect("the chain is broken")
}

#[tokio::test]
async fn append_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), AuditOptions::default()).await.unwrap();
    assert_eq!(
        log.head(),
        Head {
            seq: 0,
            hash: GENESIS_PREV.to_owned()
        }
    );
    for i in 1..=10 {
        assert_eq!(log.append(rec(i)).await.unwrap(), i);
    }
    assert!(log.health().is_ok());
    let head = log.head();
    assert_eq!(head.seq, 10);
    log.close().await.unwrap();
    assert!(matches!(log.append(rec(11)).await, Err(AuditError::Closed)));
    assert!(log.health().is_err());

    let report = verify_dir(dir.path()).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(
        (report.records, report.segments, report.head),
        (10, 1, Some(head))
    );
    let records = tail(dir.path(), 100).unwrap();
    assert_eq!(records.len(), 10);
    assert_eq!(records[0].prev, GENESIS_PREV);
    assert!(records.windows(2).all(|w| w[1].prev == w[0].hash));
    assert!(records
        .iter()
        .all(|r| r.timestamp().is_some() && r.time.ends_with('Z') && r.time.len() == 24));
}

#[tokio::test]
async fn invalid_records_are_refused_without_using_a_seq() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), AuditOptions::default()).await.unwrap();
    let bad = AuditRecord {
        decision: "perhaps".into(),
        ..rec(1)
    };
    assert!(matches!(log.append(bad).await, Err(AuditError::InvalidRecord(_))));
    let timed = AuditRecord {
        time: "2025-01-02T03:04:05.678Z".into(),
        ..rec(2)
    };
    assert_eq!(log.append(timed).await.unwrap(), 1);
    let offset = AuditRecord {
        time: "2025-01-02T05:04:05+02:00".into(),
        ..rec(3)
    };
    assert_eq!(log.append(offset).await.unwrap(), 2);
    log.close().await.unwrap();
    let records = tail(dir.path(), 5).unwrap();
    assert_eq!(records[0].time, "2025-01-02T03:04:05.678Z");
    assert_eq!(records[1].time, "2025-01-02T03:04:05.000Z");
    assert!(verify_dir(dir.path()).unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_get_contiguous_seqs_that_survive_reopen() {
    const TASKS: u64 = 64;
    const EACH: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(AuditLog::open(dir.path(), AuditOptions::default()).await.unwrap());
    let started = Instant::now();
    for i in 0..50 {
        log.append(rec(i)).await.unwrap();
    }
    let elapsed = started.elapsed();
    eprintln!(
        "one appender: 50 durable appends in {elapsed:?} = {:.0} appends/s",
        50.0 / elapsed.as_secs_f64()
    );
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                seqs.push(log.append(rec(t * EACH + i)).await.unwrap());
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for h in handles {
        seqs.extend(h.await.unwrap());
    }
    let elapsed = started.elapsed();
    eprintln!(
        "group commit: {} durable appends by {TASKS} concurrent appenders in {elapsed:?} = {:.0} appends/s",
        seqs.len(),
        seqs.len() as f64 / elapsed.as_secs_f64()
    );
    seqs.sort_unstable();
    assert_eq!(seqs, (51..=50 + TASKS * EACH).collect::<Vec<_>>());
    log.close().await.unwrap();

    let log = AuditLog::open(dir.path(), AuditOptions::default()).await.unwrap();
    assert_eq!(log.head().seq, 50 + TASKS * EACH);
    assert_eq!(log.append(rec(0)).await.unwrap(), 51 + TASKS * EACH);
    log.close().await.unwrap();
    let report = verify_dir(dir.path()).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, 51 + TASKS * EACH);
    let mut ids: Vec<String> = tail(dir.path(), usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, TASKS * EACH);
}

#[tokio::test]
async fn an_edited_field_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10, AuditOptions::default()).await;
    edit_lines(&segment_path(dir.path(), 1), |lines| {
        lines[4] = lines[4].replace("\"status\":200", "\"status\":500");
    });
    let bad = first_bad(dir.path());
    assert_eq!(
        (bad.segment.as_str(), bad.line, bad.seq),
        ("audit-000001.jsonl", 5, Some(5))
    );
    assert!(bad.problem.contains("hash mismatch"), "{}", bad.problem);
    assert_eq!(verify_dir(dir.path()).unwrap().records, 4);
}

#[tokio::test]
async fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10, AuditOptions::default()).await;
    edit_lines(&segment_path(dir.path(), 1), |lines| {
        let mut r: AuditRecord = serde_json::from_str(&lines[4]).unwrap();
        r.status = 500;
        let (line, _) = line::encode(&r).unwrap();
        lines[4] = String::from_utf8(line).unwrap().trim_end().to_owned();
    });
    let bad = first_bad(dir.path());
    assert_eq!((bad.line, bad.seq), (6, Some(6)));
    assert!(bad.problem.contains("prev"), "{}", bad.problem);
}

#[tokio::test]
async fn a_deleted_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10, AuditOptions::default()).await;
    edit_lines(&segment_path(dir.path(), 1), |lines| {
        lines.remove(3);
    });
    let bad = first_bad(dir.path());
    assert_eq!((bad.line, bad.seq), (4, Some(5)));
    assert!(bad.problem.contains("where 4 was expected"), "{}", bad.problem);
}

#[tokio::test]
async fn swapped_lines_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10, AuditOptions::default()).await;
    edit_lines(&segment_path(dir.path(), 1), |lines| lines.swap(6, 7));
    let bad = first_bad(dir.path());
    assert_eq!((bad.line, bad.seq), (7, Some(8)));
}

#[tokio::test]
async fn a_torn_final_line_is_truncated_at_reopen() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5, AuditOptions::default()).await;
    let seg = segment_path(dir.path(), 1);
    let good_len = std::fs::metadata(&seg).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, b"{\"seq\":6,\"time\":\"2025-").unwrap();
    drop(f);
    let report = verify_dir(dir.path()).unwrap();
    assert!(report.is_ok() && report.torn_tail, "{report:?}");
    assert_eq!(tail(dir.path(), 10).unwrap().len(), 5);

    let log = AuditLog::open(dir.path(), AuditOptions::default()).await.unwrap();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good_len);
    assert_eq!(log.append(rec(6)).await.unwrap(), 6);
    log.close().await.unwrap();
    let report = verify_dir(dir.path()).unwrap();
    assert!(report.is_ok() && !report.torn_tail, "{report:?}");
    assert_eq!(report.records, 6);
}

#[tokio::test]
async fn a_corrupt_last_record_stops_the_writer_from_extending_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3, AuditOptions::default()).await;
    edit_lines(&segment_path(dir.path(), 1), |lines| {
        lines[2] = lines[2].replace("req-3", "req-X")
    });
    let e = AuditLog::open(dir.path(), AuditOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, AuditError::Corrupt { line: 3, .. }), "{e}");
}

#[tokio::test]
async fn the_chain_continues_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let small = AuditOptions {
        segment_bytes: 1500,
        ..AuditOptions::default()
    };
    write_log(dir.path(), 12, small.clone()).await;
    // Concurrent appends (one batch) also roll where needed.
    let log = std::sync::Arc::new(AuditLog::open(dir.path(), small.clone()).await.unwrap());
    let appends: Vec<_> = (13..=30).map(|i| tokio::spawn(log.append(rec(i)))).collect();
    for a in appends {
        a.await.unwrap().unwrap();
    }
    log.close().await.unwrap();
    write_log(dir.path(), 5, small).await;

    let segments = segment::list(dir.path()).unwrap();
    assert!(segments.len() > 5, "{segments:?}");
    for s in &segments {
        let data = std::fs::read(&s.path).unwrap();
        assert!(data.len() <= 1500 || data.iter().filter(|b| **b == b'\n').count() == 1);
    }
    let report = verify_dir(dir.path()).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.records, report.segments as usize), (35, segments.len()));

    // A missing middle segment is named.
    std::fs::remove_file(segment_path(dir.path(), 2)).unwrap();
    let bad = first_bad(dir.path());
    assert_eq!((bad.segment.as_str(), bad.line), ("audit-000003.jsonl", 0));
    assert!(bad.problem.contains("audit-000002.jsonl"), "{}", bad.problem);
}

#[tokio::test]
async fn an_anchor_detects_a_truncated_tail() {
    let dir = tempfile::tempdir().unwrap();
    let head = write_log(dir.path(), 10, AuditOptions::default()).await;
    assert_eq!(head.seq, 10);
    assert!(verify_dir_with_anchor(dir.path(), head.seq, &head.hash)
        .unwrap()
        .is_ok());
    // More records after the anchor are fine.
    write_log(dir.path(), 2, AuditOptions::default()).await;
    assert!(verify_dir_with_anchor(dir.path(), head.seq, &head.hash)
        .unwrap()
        .is_ok());
    // A wrong hash at the anchor's seq is named.
    let bad = verify_dir_with_anchor(dir.path(), head.seq, GENESIS_PREV)
        .unwrap()
        .first_bad
        .unwrap();
    assert_eq!((bad.line, bad.seq), (10, Some(10)));

    edit_lines(&segment_path(dir.path(), 1), |lines| lines.truncate(8));
    assert!(
        verify_dir(dir.path()).unwrap().is_ok(),
        "undetectable without the anchor"
    );
    let report = verify_dir_with_anchor(dir.path(), head.seq, &head.hash).unwrap();
    let bad = report.first_bad.unwrap();
    assert_eq!(
        (bad.segment.as_str(), bad.line, bad.seq),
        ("audit-000001.jsonl", 9, Some(10))
    );
    assert!(bad.problem.contains("removed from the end"), "{}", bad.problem);
}

#[tokio::test]
async fn queries_filter_by_licensee_dataset_decision_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(
        dir.path(),
        AuditOptions {
            segment_bytes: 4000,
            ..AuditOptions::default()
        },
    )
    .await
    .unwrap();
    for i in 1..=24u64 {
        let time = format!("2025-03-{i:02}T12:00:00.000Z");
        log.append(AuditRecord { time, ..rec(i) }).await.unwrap();
    }
    log.close().await.unwrap();
    let q = |f: Filter| {
        query(dir.path(), &f)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>()
    };
    let acme = Some("acme".to_owned());
    assert_eq!(
        q(Filter {
            licensee: acme.clone(),
            ..Filter::default()
        }),
        (1..=12).map(|i| i * 2).collect::<Vec<_>>()
    );
    let hydrants = Some("hydrants".to_owned());
    assert_eq!(
        q(Filter {
            licensee: acme.clone(),
            dataset: hydrants,
            ..Filter::default()
        }),
        [6, 12, 18, 24]
    );
    assert_eq!(
        q(Filter {
            decision: Some("deny".into()),
            ..Filter::default()
        }),
        [4, 8, 12, 16, 20, 24]
    );
    let since = Some(time::macros::datetime!(2025-03-10 0:00 UTC));
    let until = Some(time::macros::datetime!(2025-03-14 12:00 UTC));
    assert_eq!(
        q(Filter {
            since,
            until,
            ..Filter::default()
        }),
        [10, 11, 12, 13]
    );
    assert_eq!(
        q(Filter {
            licensee: acme,
            limit: Some(3),
            ..Filter::default()
        }),
        [20, 22, 24]
    );
    assert_eq!(
        tail(dir.path(), 2)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        [23, 24]
    );
    assert!(tail(dir.path(), 0).unwrap().is_empty());
}

#[tokio::test]
async fn follower_sees_new_records_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let small = AuditOptions {
        segment_bytes: 1500,
        ..AuditOptions::default()
    };
    write_log(dir.path(), 3, small.clone()).await;
    let mut f = Follower::at_end(dir.path()).unwrap();
    assert!(f.poll().unwrap().is_empty());
    write_log(dir.path(), 6, small).await;
    let seqs: Vec<u64> = f.poll().unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (4..=9).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_second_writer_on_the_same_folder_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = AuditLog::open(dir.path(), AuditOptions::default()).await.unwrap();
    first.append(rec(1)).await.unwrap();
    match AuditLog::open(dir.path(), AuditOptions::default()).await {
        Err(AuditError::InUse { dir: d, .. }) => assert_eq!(d, dir.path()),
        other => panic!("second writer: {other:?}"),
    }
    first.close().await.unwrap();
    let second = AuditLog::open(dir.path(), AuditOptions::default()).await.unwrap();
    assert_eq!(second.append(rec(2)).await.unwrap(), 2);
    second.close().await.unwrap();
    assert_eq!(verify::verify_dir(dir.path()).unwrap().records, 2);
}

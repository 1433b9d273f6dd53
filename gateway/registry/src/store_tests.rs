//! The store suite, run against SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::model::{LicenseeRecord, Measure};
use super::pgtest;
use super::store::{Action, Change, Store, StoreError};
use sluice_policy::catalog::{DatasetSpec, FieldSpec};
use sluice_policy::licence::{Licence, LicenceStatus};

fn change(action: Action) -> Change<'static> {
    Change {
        admin: "alice",
        action,
        target: "t",
        reason: "test",
    }
}

fn dataset(id: &str) -> DatasetSpec {
    DatasetSpec {
        record_key: None,
        id: id.into(),
        title: "Hydrants".into(),
        owner: "fire-bureau".into(),
        update_frequency: "daily".into(),
        version: 1,
        grades: Default::default(),
        fields: vec![FieldSpec {
            name: "district".into(),
            grades: Default::default(),
            scan: true,
            description: String::new(),
            fingerprint: None,
        }],
    }
}

fn licence(id: &str) -> Licence {
    serde_json::from_value(serde_json::json!({
        "id": id, "licensee": "acme", "dataset": "hydrants", "scenario": "s",
        "fields": { "district": { "rule": "clear" } },
        "valid_from": "2025-01-01T00:00:00Z", "valid_until": "2035-01-01T00:00:00Z",
    }))
    .unwrap()
}

async fn suite(store: Store) {
    assert_eq!(store.revision().await.unwrap(), 0);
    let acme = LicenseeRecord {
        id: "acme".into(),
        name: "Acme".into(),
        credit_code: "91350100M000100Y43".into(),
        created_at: String::new(),
    };
    let (_, r1) = store
        .add_licensee(&acme, &change(Action::LicenseeAdd))
        .await
        .unwrap();
    // Change 1 is recorded; licensees are not in the snapshot, so its revision stays 0.
    assert_eq!((r1.change, r1.revision), (1, 0));
    assert!(matches!(
        store.add_licensee(&acme, &change(Action::LicenseeAdd)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.last_change().await.unwrap(),
        1,
        "a refused change does not count"
    );
    assert_eq!(store.licensees().await.unwrap().len(), 1);
    let (d, r2) = store
        .put_dataset(&dataset("hydrants"), None, &change(Action::DatasetRegister))
        .await
        .unwrap();
    assert_eq!((r2.change, r2.revision, d.closed), (2, 0, false));
    let r3 = store
        .insert_licence(&licence("l1"), &change(Action::LicenceGrant))
        .await
        .unwrap();
    assert_eq!((r3.change, r3.revision), (3, 3));
    assert!(matches!(
        store
            .insert_licence(&licence("l1"), &change(Action::LicenceGrant))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let suspended = LicenceStatus::Suspended {
        reason: "audit".into(),
    };
    let (l, r4) = store
        .set_licence_status("l1", suspended.clone(), &change(Action::LicenceSuspend))
        .await
        .unwrap();
    assert_eq!((l.status, r4.change, r4.revision), (suspended.clone(), 4, 4));
    assert!(matches!(
        store
            .set_licence_status("l1", suspended, &change(Action::LicenceSuspend))
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .set_licence_status("l1", LicenceStatus::Active, &change(Action::LicenceResume))
        .await
        .unwrap();
    let revoked = LicenceStatus::Revoked { reason: "x".into() };
    store
        .set_licence_status("l1", revoked, &change(Action::LicenceRevoke))
        .await
        .unwrap();
    assert!(matches!(
        store
            .set_licence_status("l1", LicenceStatus::Active, &change(Action::LicenceResume))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .set_licence_status("nope", LicenceStatus::Active, &change(Action::LicenceResume))
            .await,
        Err(StoreError::NotFound(_))
    ));
    store
        .set_dataset_closed("hydrants", true, &change(Action::DatasetClose))
        .await
        .unwrap();
    assert!(matches!(
        store
            .set_dataset_closed("nope", true, &change(Action::DatasetClose))
            .await,
        Err(StoreError::NotFound(_))
    ));
    store
        .set_all_closed(true, &change(Action::DatasetCloseAll))
        .await
        .unwrap();
    let (_, warned) = store
        .add_violation(
            "acme",
            "bulk scraping",
            Measure::Warn,
            &change(Action::ViolationRecord),
        )
        .await
        .unwrap();
    assert_eq!(
        (warned.change, warned.revision),
        (9, 8),
        "a warning restricts nobody"
    );
    let c = Change {
        reason: "repeated",
        ..change(Action::ViolationRecord)
    };
    let (_, closed) = store
        .add_violation("acme", "resale", Measure::Close, &c)
        .await
        .unwrap();
    assert_eq!((closed.change, closed.revision), (10, 10));
    store
        .revoke_serial("0abc", &change(Action::CertRevoke))
        .await
        .unwrap();
    let state = store.snapshot_state().await.unwrap();
    assert_eq!(state.revision, store.revision().await.unwrap());
    assert_eq!(state.revision, 11);
    assert_eq!(state.licences.len(), 1);
    assert!(matches!(state.licences[0].status, LicenceStatus::Revoked { .. }));
    assert_eq!(state.closed_datasets, ["hydrants"]);
    assert!(state.all_conditional_closed);
    assert_eq!(state.restricted_licensees["acme"], "close: repeated");
    assert_eq!(state.revoked_serials, ["0abc"]);
    let changes = store.changes().await.unwrap();
    assert_eq!(changes.len(), 11);
    assert_eq!(
        changes.iter().map(|c| c.revision).collect::<Vec<_>>(),
        (1..=11).collect::<Vec<_>>()
    );
    assert!(changes.iter().all(|c| c.admin == "alice" && !c.at.is_empty()));
    // Re-registering keeps the closed flag (and the snapshot revision).
    let (d, again) = store
        .put_dataset(&dataset("hydrants"), None, &change(Action::DatasetRegister))
        .await
        .unwrap();
    assert!(d.closed);
    assert_eq!((again.change, again.revision), (12, 11));
    assert_eq!(store.violations().await.unwrap().len(), 2);
    store.close().await;
}

#[tokio::test]
async fn store_suite_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    suite(Store::open(&url).await.unwrap()).await;
    // Reopening keeps state, the change number and the snapshot revision.
    let again = Store::open(&url).await.unwrap();
    assert_eq!(again.last_change().await.unwrap(), 12);
    assert_eq!(again.revision().await.unwrap(), 11);
    assert!(dir.path().join("registry.db").exists());
}

#[tokio::test]
async fn store_suite_on_postgres() {
    let (schema, url) = pgtest::create_schema("store").await.unwrap();
    suite(Store::open(&url).await.unwrap()).await;
    let again = Store::open(&url).await.unwrap();
    assert_eq!(again.last_change().await.unwrap(), 12);
    assert_eq!(again.revision().await.unwrap(), 11);
    again.close().await;
    pgtest::drop_schema(&schema).await.unwrap();
}

/// Registers licensee `acme<round>`; returns its id.
async fn add_round_licensee(store: &Store, round: usize) -> String {
    let rec = LicenseeRecord {
        id: format!("acme{round}"),
        name: "Acme".into(),
        credit_code: format!("code{round}"),
        created_at: String::new(),
    };
    store
        .add_licensee(&rec, &change(Action::LicenseeAdd))
        .await
        .unwrap();
    rec.id
}

/// [`licence`] `id` for `licensee` on `dataset`.
fn licence_of(id: &str, licensee: &str, dataset: &str) -> Licence {
    Licence {
        aggregate: None,
        licensee: licensee.into(),
        dataset: dataset.into(),
        ..licence(id)
    }
}

/// Two replicas grant the two halves of a fusion rule to one licensee at the same time,
/// round after round: exactly one grant completes, the other is refused.
async fn concurrent_grants_cannot_both_complete_a_rule(a: Store, b: Store) {
    a.put_dataset(&dataset("hydrants"), None, &change(Action::DatasetRegister))
        .await
        .unwrap();
    a.put_dataset(&dataset("parks"), None, &change(Action::DatasetRegister))
        .await
        .unwrap();
    let rule: super::fusion::FusionRule = serde_json::from_value(serde_json::json!({
        "id": "r", "members": [{ "dataset": "hydrants" }, { "dataset": "parks" }],
    }))
    .unwrap();
    a.add_fusion_rule(&rule, &change(Action::FusionRuleAdd))
        .await
        .unwrap();
    for round in 0..20 {
        let who = add_round_licensee(&a, round).await;
        let h = licence_of(&format!("h{round}"), &who, "hydrants");
        let p = licence_of(&format!("p{round}"), &who, "parks");
        let grant = change(Action::LicenceGrant);
        let (x, y) = tokio::join!(a.insert_licence(&h, &grant), b.insert_licence(&p, &grant));
        let refused = [&x, &y]
            .iter()
            .filter(|r| matches!(r, Err(StoreError::FusionConflict(_))))
            .count();
        assert_eq!(
            (x.is_ok() as u8 + y.is_ok() as u8, refused),
            (1, 1),
            "round {round}: {x:?} {y:?}"
        );
    }
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn concurrent_grants_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    let (a, b) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    concurrent_grants_cannot_both_complete_a_rule(a, b).await;
}

#[tokio::test]
async fn concurrent_grants_on_postgres() {
    let (schema, url) = pgtest::create_schema("fusion").await.unwrap();
    let (a, b) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    concurrent_grants_cannot_both_complete_a_rule(a, b).await;
    pgtest::drop_schema(&schema).await.unwrap();
}

/// A rule is declared while a grant that completes it runs on another replica, round after
/// round: the grant may only succeed if it committed before the rule (a lower revision).
async fn a_rule_declared_during_a_grant_is_not_missed(a: Store, b: Store) {
    a.put_dataset(&dataset("hydrants"), None, &change(Action::DatasetRegister))
        .await
        .unwrap();
    a.put_dataset(&dataset("parks"), None, &change(Action::DatasetRegister))
        .await
        .unwrap();
    let (mut granted_first, mut refused) = (0, 0);
    for round in 0..20 {
        let who = add_round_licensee(&a, round).await;
        let h = licence_of(&format!("h{round}"), &who, "hydrants");
        a.insert_licence(&h, &change(Action::LicenceGrant)).await.unwrap();
        let p = licence_of(&format!("p{round}"), &who, "parks");
        let rule: super::fusion::FusionRule = serde_json::from_value(serde_json::json!({
            "id": format!("r{round}"), "members": [{ "dataset": "hydrants" }, { "dataset": "parks" }],
        }))
        .unwrap();
        let grant = change(Action::LicenceGrant);
        let rule_change = change(Action::FusionRuleAdd);
        let (g, r) = tokio::join!(
            b.insert_licence(&p, &grant),
            a.add_fusion_rule(&rule, &rule_change)
        );
        let rule_rev = r.unwrap().change;
        match g {
            Ok(grant) => {
                let grant_rev = grant.change;
                assert!(
                    grant_rev < rule_rev,
                    "round {round}: granted at {grant_rev} after the rule at {rule_rev}"
                );
                granted_first += 1;
            }
            Err(StoreError::FusionConflict(_)) => refused += 1,
            Err(e) => panic!("round {round}: {e}"),
        }
    }
    assert_eq!(granted_first + refused, 20);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn rule_during_grant_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    let (a, b) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    a_rule_declared_during_a_grant_is_not_missed(a, b).await;
}

#[tokio::test]
async fn rule_during_grant_on_postgres() {
    let (schema, url) = pgtest::create_schema("fusionrace").await.unwrap();
    let (a, b) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    a_rule_declared_during_a_grant_is_not_missed(a, b).await;
    pgtest::drop_schema(&schema).await.unwrap();
}

#[tokio::test]
async fn a_store_from_before_violation_lifts_gains_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TABLE violations (id TEXT PRIMARY KEY, licensee TEXT NOT NULL, what TEXT NOT NULL, \
         at TEXT NOT NULL, measure TEXT NOT NULL, reason TEXT NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO violations VALUES ('v1', 'acme', 'resale', '2026-01-01T00:00:00Z', 'close', 'breach')",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let store = Store::open(&url).await.unwrap();
    let v = store.violations().await.unwrap();
    assert_eq!((v[0].id.as_str(), v[0].lifted_at.as_deref()), ("v1", None));
    assert!(store
        .snapshot_state()
        .await
        .unwrap()
        .restricted_licensees
        .contains_key("acme"));
    let (v, _) = store
        .lift_violation("v1", &change(Action::ViolationLift))
        .await
        .unwrap();
    assert_eq!(v.lifted_reason.as_deref(), Some("test"));
    assert!(store
        .snapshot_state()
        .await
        .unwrap()
        .restricted_licensees
        .is_empty());
    assert!(matches!(
        store.lift_violation("v1", &change(Action::ViolationLift)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.lift_violation("nope", &change(Action::ViolationLift)).await,
        Err(StoreError::NotFound(_))
    ));
    store.close().await;
}

/// Issue 12, item 5: while admin changes stream in, every snapshot read succeeds (no
/// "changing too fast") and is consistent: a licence suspended and resumed on every change is
/// suspended exactly at the revisions where it should be.
async fn snapshots_stay_consistent_under_a_stream_of_changes(writer: Store, reader: Store) {
    let acme = LicenseeRecord {
        id: "acme".into(),
        name: "Acme".into(),
        credit_code: "91350100M000100Y43".into(),
        created_at: String::new(),
    };
    writer
        .add_licensee(&acme, &change(Action::LicenseeAdd))
        .await
        .unwrap();
    writer
        .put_dataset(&dataset("hydrants"), None, &change(Action::DatasetRegister))
        .await
        .unwrap();
    let base = writer
        .insert_licence(&licence("l1"), &change(Action::LicenceGrant))
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let changes = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 5_000 {
                let status = if n.is_multiple_of(2) {
                    LicenceStatus::Suspended {
                        reason: "drill".into(),
                    }
                } else {
                    LicenceStatus::Active
                };
                writer
                    .set_licence_status("l1", status, &change(Action::LicenceSuspend))
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let started = std::time::Instant::now();
    let mut reads = 0;
    let mut seen = std::collections::BTreeSet::new();
    while started.elapsed() < std::time::Duration::from_secs(3) {
        let state = reader.snapshot_state().await.unwrap();
        let suspended = matches!(state.licences[0].status, LicenceStatus::Suspended { .. });
        // Change k (1-based) after `base` suspends when k is odd.
        let k = state.revision - base.revision;
        assert_eq!(
            suspended,
            k % 2 == 1,
            "revision {} shows the licence {}",
            state.revision,
            if suspended { "suspended" } else { "active" }
        );
        seen.insert(state.revision);
        reads += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let changes = changes.await.unwrap();
    assert!(changes > 20 && reads > 20, "{changes} changes, {reads} reads");
    assert!(seen.len() > 5, "the reads saw the revisions move: {seen:?}");
}

#[tokio::test]
async fn snapshots_under_changes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    let (a, b) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    snapshots_stay_consistent_under_a_stream_of_changes(a, b).await;
}

#[tokio::test]
async fn snapshots_under_changes_on_postgres() {
    let (schema, url) = pgtest::create_schema("snapstream").await.unwrap();
    let (a, b) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    snapshots_stay_consistent_under_a_stream_of_changes(a, b).await;
    pgtest::drop_schema(&schema).await.unwrap();
}

/// A replica's distributor, with both ways it learns of other replicas' changes running (the
/// once-a-second revision check and, on PostgreSQL, LISTEN/NOTIFY): changes outside the
/// snapshot, made through another store, keep the revision and wake no long-poll for longer
/// than two checks; a change the snapshot carries wakes it with its own number.
async fn changes_outside_the_snapshot_wake_no_replica(writer: Store, reader: Store) {
    use super::snapshot::Distributor;
    use std::time::Duration;
    let dist = Distributor::new(reader.clone(), ed25519_dalek::SigningKey::from_bytes(&[7; 32]))
        .await
        .unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let tasks = [
        tokio::spawn(dist.clone().poll_store(rx.clone())),
        tokio::spawn(dist.clone().listen_store(rx)),
    ];
    let acme = LicenseeRecord {
        id: "acme".into(),
        name: "Acme".into(),
        credit_code: "91350100M000100Y43".into(),
        created_at: String::new(),
    };
    writer
        .add_licensee(&acme, &change(Action::LicenseeAdd))
        .await
        .unwrap();
    writer
        .put_dataset(&dataset("hydrants"), None, &change(Action::DatasetRegister))
        .await
        .unwrap();
    let granted = writer
        .insert_licence(&licence("l1"), &change(Action::LicenceGrant))
        .await
        .unwrap();
    assert!(
        dist.wait_after(granted.revision - 1, Duration::from_secs(10))
            .await
    );
    let (rev, before) = dist.signed().await.unwrap();
    assert_eq!(rev, granted.revision);

    let waiter = {
        let dist = dist.clone();
        tokio::spawn(async move { dist.wait_after(rev, Duration::from_millis(2_500)).await })
    };
    let mut numbers = Vec::new();
    let (_, c) = writer
        .put_dataset(&dataset("parks"), None, &change(Action::DatasetRegister))
        .await
        .unwrap();
    numbers.push(c);
    let beta = LicenseeRecord {
        id: "beta".into(),
        credit_code: "91110000600037341L".into(),
        ..acme.clone()
    };
    numbers.push(
        writer
            .add_licensee(&beta, &change(Action::LicenseeAdd))
            .await
            .unwrap()
            .1,
    );
    let (_, c) = writer
        .add_violation("acme", "late", Measure::Warn, &change(Action::ViolationRecord))
        .await
        .unwrap();
    numbers.push(c);
    let rule: super::fusion::FusionRule = serde_json::from_value(serde_json::json!({
        "id": "r", "members": [{ "dataset": "hydrants" }, { "dataset": "parks" }],
    }))
    .unwrap();
    numbers.push(
        writer
            .add_fusion_rule(&rule, &change(Action::FusionRuleAdd))
            .await
            .unwrap(),
    );
    numbers.push(
        writer
            .remove_fusion_rule("r", &change(Action::FusionRuleRemove))
            .await
            .unwrap(),
    );
    for (i, c) in numbers.iter().enumerate() {
        assert_eq!((c.change, c.revision), (rev + 1 + i as u64, rev), "change {i}");
    }
    assert!(
        !waiter.await.unwrap(),
        "a change outside the snapshot woke a long-poll"
    );
    assert_eq!(dist.current(), rev);
    let (again, bytes) = dist.signed().await.unwrap();
    assert_eq!(again, rev);
    assert_eq!(
        bytes.as_ptr(),
        before.as_ptr(),
        "the signed snapshot was not remade"
    );
    let log = writer.changes().await.unwrap();
    assert_eq!(
        log.iter().map(|c| c.revision).collect::<Vec<_>>(),
        (1..=rev + numbers.len() as u64).collect::<Vec<_>>()
    );

    let waiter = {
        let dist = dist.clone();
        tokio::spawn(async move { dist.wait_after(rev, Duration::from_secs(10)).await })
    };
    let (_, c) = writer
        .add_violation("acme", "resale", Measure::Close, &change(Action::ViolationRecord))
        .await
        .unwrap();
    assert_eq!(c.revision, c.change);
    assert!(
        waiter.await.unwrap(),
        "a restricting violation did not wake the long-poll"
    );
    let (now, _) = dist.signed().await.unwrap();
    assert_eq!(now, c.revision);
    assert!(reader
        .snapshot_state()
        .await
        .unwrap()
        .restricted_licensees
        .contains_key("acme"));

    stop.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    writer.close().await;
    reader.close().await;
}

#[tokio::test]
async fn outside_changes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    let (a, b) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    changes_outside_the_snapshot_wake_no_replica(a, b).await;
}

#[tokio::test]
async fn outside_changes_on_postgres() {
    let (schema, url) = pgtest::create_schema("outside").await.unwrap();
    let (a, b) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    changes_outside_the_snapshot_wake_no_replica(a, b).await;
    pgtest::drop_schema(&schema).await.unwrap();
}

/// A store made before the snapshot revision had its own counter (every change moved the
/// snapshot then) starts it at its last change, so gateways keep the revision they hold.
#[tokio::test]
async fn a_store_from_before_the_snapshot_counter_starts_it_at_its_last_change() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    let store = Store::open(&url).await.unwrap();
    store
        .put_dataset(&dataset("hydrants"), None, &change(Action::DatasetRegister))
        .await
        .unwrap();
    store
        .put_dataset(&dataset("parks"), None, &change(Action::DatasetRegister))
        .await
        .unwrap();
    sqlx::query("DELETE FROM registry_meta WHERE k = 'snapshot_revision'")
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    let store = Store::open(&url).await.unwrap();
    assert_eq!(
        (
            store.last_change().await.unwrap(),
            store.revision().await.unwrap()
        ),
        (2, 2)
    );
    assert_eq!(store.snapshot_state().await.unwrap().revision, 2);
    store.close().await;
}

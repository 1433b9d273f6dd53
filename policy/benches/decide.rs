//! The decision with 100,000 licences loaded: target under 2 µs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sluice_policy::catalog::{DatasetSpec, FieldSpec};
use sluice_policy::classify::{Grades, PersonalGrade, RuleTable};
use sluice_policy::decide::{FixedClock, Measures};
use sluice_policy::licence::{Licence, LicenceStatus, Mode, Quota, RateLimit};
use sluice_policy::mask::MaskRule;
use sluice_policy::{Decision, PolicySet, Request};
use std::collections::BTreeMap;
use time::macros::datetime;

fn datasets() -> Vec<DatasetSpec> {
    (0..50)
        .map(|d| DatasetSpec {
            record_key: None,
            id: format!("dataset-{d}"),
            title: String::new(),
            owner: String::new(),
            update_frequency: String::new(),
            version: 1,
            grades: Grades {
                personal: PersonalGrade::NonAnonymousNonSensitive,
                ..Grades::default()
            },
            fields: (0..10)
                .map(|f| FieldSpec {
                    name: format!("f{f}"),
                    grades: Grades::default(),
                    scan: true,
                    description: String::new(),
                    fingerprint: None,
                })
                .collect(),
        })
        .collect()
}

fn licences(n: usize) -> Vec<Licence> {
    (0..n)
        .map(|i| {
            let fields: BTreeMap<String, MaskRule> =
                (0..8).map(|f| (format!("f{f}"), MaskRule::Clear)).collect();
            Licence {
                aggregate: None,
                id: format!("lic-{i}"),
                licensee: format!("licensee-{}", i / 5),
                dataset: format!("dataset-{}", i % 50),
                scenario: format!("scenario-{}", i % 3),
                fields,
                row_filter: None,
                rate: RateLimit::default(),
                quota: Quota::default(),
                valid_from: datetime!(2026-01-01 0:00 UTC),
                valid_until: datetime!(2027-01-01 0:00 UTC),
                mode: Mode::Records,
                status: LicenceStatus::Active,
                expert_review: None,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let set = PolicySet::compile(
        &datasets(),
        licences(100_000),
        &RuleTable::default(),
        Measures::default(),
        b"k",
    );
    assert_eq!(set.licence_count(), 100_000);
    let clock = FixedClock(datetime!(2026-06-01 0:00 UTC));
    let mut g = c.benchmark_group("decide_100k_licences");
    g.bench_function("allow", |b| {
        let r = Request {
            licensee: Some("licensee-12345"),
            dataset: "dataset-25",
            scenario: Some("scenario-0"),
            fields: None,
        };
        assert!(matches!(set.decide(&r, &clock), Decision::Allow(_)));
        b.iter(|| black_box(set.decide(black_box(&r), &clock)))
    });
    g.bench_function("deny_no_licence", |b| {
        let r = Request {
            licensee: Some("nobody"),
            dataset: "dataset-1",
            scenario: Some("scenario-0"),
            fields: None,
        };
        b.iter(|| black_box(set.decide(black_box(&r), &clock)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

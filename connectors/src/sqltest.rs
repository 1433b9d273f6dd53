//! What the tests of every SQL server connector share: the register's rows, the plan, reading a
//! page through the masker, and the client filters checked against the masker's own
//! evaluation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::source::{Connector, Fetch, PageEnd, SourceData};
use crate::table::{DeclaredType, TableConfig};
use sluice_policy::mask::{MaskRule, PseudonymKey};
use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
use sluice_policy::query::ClientQuery;
use sluice_policy::stream::{Masker, MaskerLimits, OutputFormat};
use std::sync::Arc;

/// A unique table name for this process and test.
pub fn table_name(prefix: &str) -> String {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// One row of the register: id, district, reading, active, age, owner_id.
pub type Meter = (
    String,
    Option<String>,
    Option<f64>,
    Option<bool>,
    Option<i64>,
    String,
);

/// Districts, with the awkward ones: case, trailing space, quotes, wildcards, backslash,
/// non-ASCII, and nulls.
const DISTRICTS: [Option<&str>; 12] = [
    Some("Huangpu"),
    Some("Xuhui"),
    Some("huangpu"),
    Some("Xuhui "),
    Some("O'Brien"),
    Some("50%"),
    Some("a_b"),
    Some("back\\slash"),
    Some("Zürich"),
    None,
    Some("Xuhui"),
    Some("'; DROP TABLE x; --"),
];

/// `n` rows of the register.
pub fn meters(n: i64) -> Vec<Meter> {
    (0..n)
        .map(|i| {
            let idx = usize::try_from(i).unwrap() % DISTRICTS.len();
            (
                format!("M{i:05}"),
                DISTRICTS[idx].map(str::to_owned),
                (i % 7 != 3).then(|| i as f64 / 4.0),
                (i % 5 != 4).then_some(i % 3 == 0),
                (i % 6 != 5).then_some(i % 40),
                format!("3101011990010{i:05}"),
            )
        })
        .collect()
}

/// The register's declared table.
pub fn table(name: &str) -> TableConfig {
    let columns = [
        ("id", DeclaredType::Text),
        ("district", DeclaredType::Text),
        ("reading", DeclaredType::Float),
        ("active", DeclaredType::Bool),
        ("age", DeclaredType::Integer),
        ("owner_id", DeclaredType::Text),
    ];
    TableConfig {
        schema: None,
        name: name.into(),
        key: "id".into(),
        columns: columns.iter().map(|(n, t)| ((*n).into(), *t)).collect(),
    }
}

/// Every column in clear but the owner, pseudonymised.
pub fn plan() -> FieldPlan {
    let f = |name: &str, action| PlannedField {
        name: name.into(),
        action,
    };
    FieldPlan {
        record_key: None,
        fields: vec![
            f("id", FieldAction::Emit { scan: false }),
            f("district", FieldAction::Emit { scan: false }),
            f("reading", FieldAction::Emit { scan: false }),
            f("active", FieldAction::Emit { scan: false }),
            f("age", FieldAction::Emit { scan: false }),
            f("owner_id", FieldAction::Mask(MaskRule::Pseudonym)),
        ],
        row_filter: None,
        key: PseudonymKey::derive(b"master", "acme", "meters"),
    }
}

/// A page as JSON records through the masker (filtering again with `masker_query`), the
/// number of batches and where the page ends.
pub async fn page(
    source: &dyn Connector,
    fetch: &Fetch<'_>,
    masker_query: Option<&ClientQuery>,
) -> (Vec<serde_json::Value>, u64, PageEnd) {
    let plan = Arc::new(fetch.plan.cloned().unwrap());
    let SourceData::Rows(mut rows) = source.fetch(fetch).await.unwrap() else {
        panic!("rows expected")
    };
    let mut m = Masker::typed(
        plan,
        masker_query.cloned().map(Arc::new),
        &rows.columns,
        OutputFormat::Json,
        MaskerLimits::default(),
    );
    let mut out = Vec::new();
    let mut batches = 0;
    while let Some(b) = std::future::poll_fn(|cx| rows.batches.as_mut().poll_next(cx)).await {
        m.push_rows(&b.unwrap(), &mut out).unwrap();
        batches += 1;
    }
    m.finish(&mut out).unwrap();
    (serde_json::from_slice(&out).unwrap(), batches, rows.end)
}

/// Client queries over every operator, negated and not, on every column type, with operands
/// that try to break out of their parameter.
pub const QUERIES: &[&[(&str, &str)]] = &[
    &[("district", "eq.Xuhui")],
    &[("district", "neq.Xuhui")],
    &[("district", "not.eq.Xuhui")],
    &[("district", "eq.huangpu")],
    &[("district", "lt.Xuhui")],
    &[("district", "lte.Xuhui")],
    &[("district", "gt.Xuhui")],
    &[("district", "gte.Xuhui ")],
    &[("district", "in.(Xuhui,Zürich,\"a,b\")")],
    &[("district", "not.in.(Xuhui,huangpu)")],
    &[("district", "like.X*")],
    &[("district", "like.*u*")],
    &[("district", "not.like.*u*")],
    &[("district", "like.*%*")],
    &[("district", "like.a_b")],
    &[("district", "like.a*b")],
    &[("district", "is.null")],
    &[("district", "not.is.null")],
    &[("district", "eq.'; DROP TABLE x; --")],
    &[("district", "eq.O'Brien")],
    &[("district", "eq.\\'")],
    &[("district", "eq.back\\slash")],
    &[("district", "like.*\\*")],
    &[("district", "eq.%")],
    &[("district", "eq._")],
    &[("district", "like.%")],
    &[("district", "eq.Zürich")],
    &[("district", "in.(\"'\",\"\\\\\")")],
    &[("age", "eq.7")],
    &[("age", "neq.7")],
    &[("age", "lt.10")],
    &[("age", "lte.10")],
    &[("age", "gt.30")],
    &[("age", "gte.30")],
    &[("age", "in.(1,2,3)")],
    &[("age", "not.in.(1,2,3)")],
    &[("age", "not.lt.10")],
    &[("age", "is.null")],
    &[("age", "eq.abc")],
    &[("age", "not.eq.abc")],
    &[("age", "like.1*")],
    &[("age", "gte.5"), ("age", "lt.12")],
    &[("reading", "gt.2.5")],
    &[("reading", "lte.1.25")],
    &[("reading", "eq.0.75")],
    &[("reading", "not.gt.2.5")],
    &[("reading", "is.null")],
    &[("active", "eq.true")],
    &[("active", "neq.false")],
    &[("active", "not.eq.true")],
    &[("active", "is.null")],
    &[("active", "lt.true")],
    &[("active", "eq.yes")],
    &[("id", "gt.M00030")],
    &[("id", "in.(M00001,M00002,m00003)")],
    &[
        ("district", "eq.Xuhui"),
        ("active", "eq.true"),
        ("age", "not.is.null"),
    ],
];

/// For each query: the page fetched with the query pushed down (read through a masker that
/// does not filter) equals the masker's own evaluation of the query over all rows.
pub async fn pushdown_matches_the_masker(source: &dyn Connector, total: usize) {
    let plan = plan();
    let all = Fetch {
        limit: 10_000,
        plan: Some(&plan),
        ..Fetch::default()
    };
    let (unfiltered, _, _) = page(source, &all, None).await;
    assert_eq!(unfiltered.len(), total);
    for pairs in QUERIES {
        let q = ClientQuery::from_pairs(pairs.iter().copied()).unwrap();
        let (want, _, _) = page(source, &all, Some(&q)).await;
        let fetch = Fetch {
            limit: 10_000,
            plan: Some(&plan),
            query: Some(&q),
            ..Fetch::default()
        };
        let (got, _, end) = page(source, &fetch, None).await;
        assert_eq!(got, want, "{pairs:?}");
        assert_eq!(end, PageEnd::Last, "{pairs:?}");
    }
}

/// A table of decimals and dates: `id` text (key), `amount` decimal, `day` date, `at`
/// timestamp. Each test creates it with its dialect's types and these rows: `a` 10.50
/// 2025-07-01 2025-07-01 00:30:00, `b` 9.99 2025-06-30 2025-06-30 23:59:59, `c` 100.00 null
/// null, `d` null 2025-12-31 2025-12-31 00:00:00.
pub fn dated_table(name: &str) -> TableConfig {
    let columns = [
        ("id", DeclaredType::Text),
        ("amount", DeclaredType::Decimal),
        ("day", DeclaredType::Date),
        ("at", DeclaredType::Timestamp),
    ];
    TableConfig {
        schema: None,
        name: name.into(),
        key: "id".into(),
        columns: columns.iter().map(|(n, t)| ((*n).into(), *t)).collect(),
    }
}

/// Decimals keep their digits and compare as decimals, dates and times read and compare as
/// their ISO text, in filters, order and keyset pages, exactly as the masker evaluates them.
pub async fn decimals_and_dates_behave(source: &dyn Connector) {
    let f = |name: &str| PlannedField {
        name: name.into(),
        action: FieldAction::Emit { scan: false },
    };
    let plan = FieldPlan {
        record_key: None,
        fields: vec![f("id"), f("amount"), f("day"), f("at")],
        row_filter: None,
        key: PseudonymKey::derive(b"m", "l", "d"),
    };
    let raw = |q: &[(&str, &str)], after: Option<Vec<Option<String>>>, limit: u64| {
        let q = ClientQuery::from_pairs(q.iter().copied()).unwrap();
        let plan = plan.clone();
        async move {
            let fetch = Fetch {
                limit,
                plan: Some(&plan),
                query: Some(&q),
                after,
                ..Fetch::default()
            };
            let SourceData::Rows(mut rows) = source.fetch(&fetch).await.unwrap() else {
                panic!("rows expected")
            };
            let end = rows.end.clone();
            let mut m = Masker::typed(
                Arc::new(plan.clone()),
                Some(Arc::new(q.clone())),
                &rows.columns,
                OutputFormat::Json,
                MaskerLimits::default(),
            );
            let mut out = Vec::new();
            while let Some(b) = std::future::poll_fn(|cx| rows.batches.as_mut().poll_next(cx)).await {
                m.push_rows(&b.unwrap(), &mut out).unwrap();
            }
            m.finish(&mut out).unwrap();
            (String::from_utf8(out).unwrap(), end)
        }
    };
    let ids = |text: &str| -> Vec<String> {
        let v: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
        v.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
    };
    let (all, _) = raw(&[], None, 10).await;
    assert!(
        all.starts_with(r#"[{"id":"a","amount":10.50,"day":"2025-07-01","at":"2025-07-01 00:30:00"}"#),
        "{all}"
    );
    assert!(all.contains(r#""amount":100.00,"day":null"#), "{all}");
    for (q, want) in [
        (("amount", "gt.10"), vec!["a", "c"]),
        (("amount", "eq.10.5"), vec!["a"]),
        (("amount", "lt.100"), vec!["a", "b"]),
        (("amount", "eq.abc"), vec![]),
        (("amount", "not.is.null"), vec!["a", "b", "c"]),
        (("day", "gte.2025-07-01"), vec!["a", "d"]),
        (("day", "like.2025-06*"), vec!["b"]),
        (("at", "lt.2025-07-01 00:30:00"), vec!["b"]),
    ] {
        let (text, _) = raw(&[q], None, 10).await;
        assert_eq!(ids(&text), want, "{q:?}: {text}");
    }
    // Keyset pages by amount descending (nulls first), one row a page.
    let mut after = None;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let (text, end) = raw(&[("order", "amount.desc")], after.clone(), 1).await;
        seen.extend(ids(&text));
        match end {
            PageEnd::After(v) => after = Some(v),
            _ => break,
        }
    }
    assert_eq!(seen, ["d", "c", "a", "b"]);
    // By day ascending (nulls last): the keyset compares the text the rows show.
    let mut after = None;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let (text, end) = raw(&[("order", "day.asc")], after.clone(), 1).await;
        seen.extend(ids(&text));
        match end {
            PageEnd::After(v) => after = Some(v),
            _ => break,
        }
    }
    assert_eq!(seen, ["b", "a", "d", "c"]);
}

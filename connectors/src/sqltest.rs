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
        marks: None,
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
        marks: None,
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

/// One row of the observations table: id, district (text), age (integer), level (float),
/// active (boolean), amount (decimal text, two places), note (text).
pub type Obs = (
    String,
    Option<String>,
    Option<i64>,
    Option<f64>,
    Option<bool>,
    Option<String>,
    String,
);

/// Float group values whose text the masker and the databases write differently (`1e+21`,
/// `1400.0`), one beyond a measure's 10¹⁸, one that is not a short decimal.
const LEVELS: [f64; 5] = [-0.1, 0.30000000000000004, 1e21, 1400.0, 2.5];

/// `n` observations: every column has nulls, amounts are negative and positive.
pub fn observations(n: i64) -> Vec<Obs> {
    let districts = [
        Some("Huangpu"),
        Some("huangpu"),
        Some("Xuhui"),
        Some("Xuhui "),
        Some("O'Brien"),
        Some("Zürich"),
        None,
        Some("'; DROP TABLE x; --"),
    ];
    (0..n)
        .map(|i| {
            let u = usize::try_from(i).unwrap();
            let cents = (i * 37) % 2001 - 700;
            let amount = format!(
                "{}{}.{:02}",
                if cents < 0 { "-" } else { "" },
                cents.abs() / 100,
                cents.abs() % 100
            );
            (
                format!("O{i:05}"),
                districts[u % districts.len()].map(str::to_owned),
                (i % 9 != 8).then_some(i % 5 - 1),
                (i % 13 != 0).then_some(LEVELS[(u / 3) % LEVELS.len()]),
                (i % 11 != 0).then_some(i % 2 == 0),
                (i % 10 != 0).then_some(amount),
                if i % 4 == 0 {
                    format!("{}", i % 7)
                } else {
                    format!("note {i}")
                },
            )
        })
        .collect()
}

/// The observations table's declared columns.
pub fn obs_table(name: &str) -> TableConfig {
    let columns = [
        ("id", DeclaredType::Text),
        ("district", DeclaredType::Text),
        ("age", DeclaredType::Integer),
        ("level", DeclaredType::Float),
        ("active", DeclaredType::Bool),
        ("amount", DeclaredType::Decimal),
        ("note", DeclaredType::Text),
    ];
    TableConfig {
        schema: None,
        name: name.into(),
        key: "id".into(),
        columns: columns.iter().map(|(n, t)| ((*n).into(), *t)).collect(),
    }
}

/// A base plan: the allowance's `group_by`, the query's metric, an optional clamp.
pub fn base_plan(
    group_by: &[&str],
    metric: &str,
    max_groups: usize,
    clamp: Option<(&str, &str)>,
) -> sluice_policy::aggregate::BasePlan {
    use sluice_policy::aggregate::{AggregateAllowance, AggregateQuery, BasePlan, Clamp};
    let allowance = AggregateAllowance {
        max_groups,
        ..AggregateAllowance::new(
            group_by.iter().map(|s| (*s).to_owned()).collect(),
            ["amount", "level", "age", "note"].map(str::to_owned).to_vec(),
        )
    };
    let q = AggregateQuery::parse(None, Some(metric)).unwrap();
    let plan = BasePlan::new(&q, &allowance).unwrap();
    match clamp {
        None => plan,
        Some((lo, hi)) => plan.with_clamp(Clamp {
            lower: lo.parse().unwrap(),
            upper: hi.parse().unwrap(),
        }),
    }
}

/// A JSON value of a masked record as the streaming path hands it to the aggregator: a
/// string as itself, a number as its JSON text, a boolean as `true`/`false`, null as `None`.
fn streamed_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The base table built the streaming way: every record fetched and masked (the licence's
/// row filter applied by the masker, not in SQL), the filters applied to each record's group
/// values, the records pushed through an [`Aggregator`](sluice_policy::aggregate::Aggregator).
pub async fn streamed_base_table(
    source: &dyn Connector,
    table: &TableConfig,
    plan: &sluice_policy::aggregate::BasePlan,
    row_filter: Option<&sluice_policy::rowfilter::RowFilter>,
    filters: &[sluice_policy::aggregate::EqFilter],
) -> Result<sluice_policy::aggregate::BaseTable, sluice_policy::aggregate::AggregateError> {
    let fplan = FieldPlan {
        record_key: None,
        marks: None,
        fields: table
            .columns
            .keys()
            .map(|name| PlannedField {
                name: name.clone(),
                action: FieldAction::Emit { scan: false },
            })
            .collect(),
        row_filter: row_filter.cloned(),
        key: PseudonymKey::derive(b"m", "l", "d"),
    };
    let fetch = Fetch {
        limit: 100_000,
        plan: Some(&fplan),
        ..Fetch::default()
    };
    let (records, _, _) = page(source, &fetch, None).await;
    let mut agg = sluice_policy::aggregate::Aggregator::new(plan);
    for r in &records {
        let key: Vec<Option<String>> = plan.fields().iter().map(|f| streamed_text(&r[f])).collect();
        let selected = filters.iter().all(|f| {
            let at = plan.fields().iter().position(|x| *x == f.field).unwrap();
            key[at] == f.value
        });
        if !selected {
            continue;
        }
        let measure = plan.measure().and_then(|m| streamed_text(&r[m]));
        let refs: Vec<Option<&str>> = key.iter().map(Option::as_deref).collect();
        agg.push(&refs, measure.as_deref())?;
    }
    Ok(agg.finish())
}

/// The push-down of `plan` (which must be pushed down).
pub async fn pushed_base_table(
    source: &dyn Connector,
    plan: &sluice_policy::aggregate::BasePlan,
    row_filter: Option<&sluice_policy::rowfilter::RowFilter>,
    filters: &[sluice_policy::aggregate::EqFilter],
) -> Result<sluice_policy::aggregate::BaseTable, crate::FetchError> {
    let req = crate::AggregateFetch {
        plan,
        row_filter,
        filters,
        request_id: "test",
    };
    source.aggregate(&req).expect("a SQL source pushes down").await
}

/// The push-down's base tables equal the streamed ones: groupings by text, integer, float
/// and boolean fields; count, and sum/min/max of decimal, float and integer measures, with
/// and without a clamp, a row filter and equality filters; the cap; a text measure refused;
/// hostile filter values inert; a row filter SQL cannot express left to streaming.
pub async fn aggregates_match_streaming(source: &dyn Connector, table: &TableConfig, total: u64) {
    use sluice_policy::aggregate::EqFilter;
    use sluice_policy::rowfilter::RowFilter;
    let rf = RowFilter::parse("district != 'Xuhui'").unwrap();
    let plans = [
        base_plan(&["district", "age"], "count", 1_000, None),
        base_plan(&["district", "age"], "sum(amount)", 1_000, None),
        base_plan(&["district", "age"], "sum(amount)", 1_000, Some(("-3.5", "4.25"))),
        base_plan(&["district"], "sum(level)", 1_000, None),
        base_plan(&["district"], "max(level)", 1_000, Some(("-0.05", "3"))),
        base_plan(&["level", "active"], "min(age)", 1_000, None),
        base_plan(&["active", "age"], "avg(amount)", 1_000, Some(("1", "-2"))),
        base_plan(&[], "sum(amount)", 1_000, None),
    ];
    let filter_sets: [Vec<EqFilter>; 4] = [
        vec![],
        vec![EqFilter::new("district", Some("huangpu"))],
        vec![
            EqFilter::new("age", Some("2")),
            EqFilter::new("district", None::<String>),
        ],
        vec![
            EqFilter::new("active", Some("true")),
            EqFilter::new("level", Some("1e+21")),
        ],
    ];
    let mut checked = 0;
    for plan in &plans {
        for row_filter in [None, Some(&rf)] {
            for filters in &filter_sets {
                if filters.iter().any(|f| !plan.fields().contains(&f.field)) {
                    continue;
                }
                let want = streamed_base_table(source, table, plan, row_filter, filters)
                    .await
                    .unwrap();
                let got = pushed_base_table(source, plan, row_filter, filters)
                    .await
                    .unwrap();
                // A source may leave a filter to `release` (which applies every filter to the
                // cells' keys): the cells the filters select agree, and none is split.
                let picked = |t: &sluice_policy::aggregate::BaseTable| -> Vec<_> {
                    t.cells()
                        .filter(|(k, _)| {
                            filters.iter().all(|f| {
                                let at = plan.fields().iter().position(|x| *x == f.field).unwrap();
                                k[at] == f.value
                            })
                        })
                        .map(|(k, c)| (k.to_vec(), *c))
                        .collect()
                };
                assert_eq!(picked(&got), picked(&want), "{plan:?} {row_filter:?} {filters:?}");
                assert_eq!(got.plan(), want.plan());
                if filters.is_empty() {
                    assert_eq!(got, want, "{plan:?} {row_filter:?}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "{checked}");
    // The data exercises what it should: negative measures, non-numeric measures, float texts.
    let whole = pushed_base_table(source, &plans[1], None, &[]).await.unwrap();
    assert_eq!(whole.cells().map(|(_, c)| c.count).sum::<u64>(), total);
    assert!(whole
        .cells()
        .any(|(_, c)| c.min < Some(sluice_policy::aggregate::Decimal::ZERO)));
    assert!(whole.cells().any(|(_, c)| c.non_numeric() > 0));
    let levels = pushed_base_table(source, &plans[5], None, &[]).await.unwrap();
    let texts: Vec<Option<&str>> = levels.cells().map(|(k, _)| k[0].as_deref()).collect();
    for t in ["1e+21", "1400.0", "0.30000000000000004", "-0.1"] {
        assert!(texts.contains(&Some(t)), "{t} in {texts:?}");
    }
    let sums = pushed_base_table(source, &plans[3], None, &[]).await.unwrap();
    assert!(
        sums.cells().all(|(_, c)| c.max < Some("1e18".parse().unwrap())),
        "1e21 is beyond a measure"
    );

    // The cap.
    for cap in [1, 5, 10] {
        let plan = base_plan(&["district", "age"], "count", cap, None);
        let e = pushed_base_table(source, &plan, None, &[]).await.unwrap_err();
        assert!(
            matches!(e, crate::FetchError::TooManyGroups { cap: c } if c == cap),
            "{e:?}"
        );
        assert!(streamed_base_table(source, table, &plan, None, &[])
            .await
            .is_err());
    }
    let exact = whole.len();
    let plan = base_plan(&["district", "age"], "count", exact, None);
    assert_eq!(
        pushed_base_table(source, &plan, None, &[]).await.unwrap().len(),
        exact
    );
    let plan = base_plan(&["district", "age"], "count", exact - 1, None);
    assert!(matches!(
        pushed_base_table(source, &plan, None, &[]).await,
        Err(crate::FetchError::TooManyGroups { .. })
    ));

    // A text measure is refused; a row filter on a float is left to streaming.
    let e = pushed_base_table(
        source,
        &base_plan(&["district"], "sum(note)", 100, None),
        None,
        &[],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, crate::FetchError::Query(ref m) if m.contains("\"note\"")),
        "{e}"
    );
    let float_rf = RowFilter::parse("level = 2.5").unwrap();
    let req = crate::AggregateFetch {
        plan: &plans[0],
        row_filter: Some(&float_rf),
        filters: &[],
        request_id: "t",
    };
    assert!(source.aggregate(&req).is_none());

    // Hostile filter values are values: they select their own cell or nothing.
    let plan = &plans[1];
    for h in [
        "'; DROP TABLE x; --",
        "Xuhui' OR '1'='1",
        "\" OR 1=1 --",
        "` OR 1=1 #",
        "$1",
        "?",
        "\\'",
        "huangpu%",
        "Xuhui",
    ] {
        let filters = [EqFilter::new("district", Some(h))];
        let got = pushed_base_table(source, plan, None, &filters).await.unwrap();
        let want = streamed_base_table(source, table, plan, None, &filters)
            .await
            .unwrap();
        assert_eq!(got, want, "{h:?}");
        assert!(got.cells().all(|(k, _)| k[0].as_deref() == Some(h)), "{h:?}");
    }
    let after = pushed_base_table(source, &plans[0], None, &[]).await.unwrap();
    assert_eq!(
        after.cells().map(|(_, c)| c.count).sum::<u64>(),
        total,
        "the table is whole"
    );
}

/// `sum(amount)` by district, released at `k` from the push-down's base table grouped by
/// district and age: (district, count, sum) of each released cell, and how many were
/// suppressed.
pub async fn released_sums(source: &dyn Connector, k: u32) -> (Vec<(Option<String>, u64, String)>, u64) {
    use sluice_policy::aggregate::{AggregateQuery, Totals};
    let plan = base_plan(&["district", "age"], "sum(amount)", 1_000, None);
    let table = pushed_base_table(source, &plan, None, &[]).await.unwrap();
    let q = AggregateQuery::parse(Some("district"), Some("sum(amount)")).unwrap();
    let r = table.release(&q, &[], k, Totals::ReleasedCells).unwrap();
    let mut cells: Vec<_> = r
        .cells
        .iter()
        .map(|c| {
            let sum: sluice_policy::aggregate::Decimal = c.value.unwrap().to_string().parse().unwrap();
            (c.key[0].clone(), c.count, sum.to_string())
        })
        .collect();
    cells.sort();
    (cells, r.suppressed)
}

/// Direct SQL rows (district, count, sum text) made comparable with [`released_sums`].
pub fn direct_sums(rows: Vec<(Option<String>, i64, String)>) -> Vec<(Option<String>, u64, String)> {
    let mut out: Vec<_> = rows
        .into_iter()
        .map(|(d, n, s)| {
            let sum: sluice_policy::aggregate::Decimal = s.parse().unwrap();
            (d, u64::try_from(n).unwrap(), sum.to_string())
        })
        .collect();
    out.sort();
    out
}

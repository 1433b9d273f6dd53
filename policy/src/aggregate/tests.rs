//! Tests of the aggregate module: parsing and allowances, exact decimals, suppression and
//! its differencing guarantee, complementary suppression, the aggregator's cap and the
//! noise.

use super::noise::{bernoulli_exp, discrete_laplace, Scale};
use super::*;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------------------
// Helpers

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn allowance(group_by: &[&str], measures: &[&str], k: u32) -> AggregateAllowance {
    AggregateAllowance {
        group_by: strings(group_by),
        measures: strings(measures),
        k,
        max_groups: 10_000,
        dp: None,
    }
}

fn query(group_by: &str, metric: &str) -> AggregateQuery {
    AggregateQuery::parse(Some(group_by), Some(metric)).expect("valid query")
}

/// A raw record: base-field values and the measure's text.
#[derive(Debug, Clone)]
struct Record {
    key: Vec<Option<String>>,
    measure: Option<String>,
}

fn record(key: &[Option<&str>], measure: Option<&str>) -> Record {
    Record {
        key: key.iter().map(|v| v.map(str::to_owned)).collect(),
        measure: measure.map(str::to_owned),
    }
}

/// Streams `records` through an aggregator for `query` under `allowance`.
fn aggregate(records: &[Record], query: &AggregateQuery, allowance: &AggregateAllowance) -> BaseTable {
    let plan = BasePlan::new(query, allowance).expect("allowed");
    let mut agg = Aggregator::new(&plan);
    for r in records {
        let key: Vec<Option<&str>> = r.key.iter().map(Option::as_deref).collect();
        agg.push(&key, r.measure.as_deref()).expect("push");
    }
    agg.finish()
}

fn release(table: &BaseTable, q: &AggregateQuery, filters: &[EqFilter], k: u32) -> Released {
    table
        .release(q, filters, k, Totals::ReleasedCells)
        .expect("release")
}

fn json(released: &Released) -> String {
    serde_json::to_string(released).expect("serialise")
}

// ---------------------------------------------------------------------------------------
// Query parsing and the allowance

#[test]
fn parses_group_by_and_metric() {
    let q = AggregateQuery::parse(Some("district,type"), Some("sum(flow)")).expect("valid");
    assert_eq!(q.group_by, strings(&["district", "type"]));
    assert_eq!(q.metric, Metric::Sum("flow".into()));
    assert_eq!(q.metric.to_string(), "sum(flow)");
    let q = AggregateQuery::parse(None, None).expect("valid");
    assert!(q.group_by.is_empty());
    assert_eq!(q.metric, Metric::Count);
    assert!(AggregateQuery::parse(Some(""), Some("count"))
        .expect("valid")
        .group_by
        .is_empty());
    for (text, metric) in [
        ("avg(a.b)", Metric::Avg("a.b".into())),
        ("min(x-1)", Metric::Min("x-1".into())),
        ("max(Y_2)", Metric::Max("Y_2".into())),
    ] {
        assert_eq!(Metric::parse(text).expect(text), metric);
        assert_eq!(metric.to_string(), text);
    }
}

#[test]
fn refuses_bad_group_by_and_metric() {
    let err = |g: &str, m: &str| AggregateQuery::parse(Some(g), Some(m)).expect_err(g);
    assert_eq!(err("a,b,c,d,e", "count"), QueryError::TooManyFields { count: 5 });
    assert_eq!(err("a,,b", "count"), QueryError::EmptyField);
    assert_eq!(err("a,", "count"), QueryError::EmptyField);
    assert!(matches!(err("a b", "count"), QueryError::BadField { .. }));
    assert!(matches!(
        err(&"x".repeat(65), "count"),
        QueryError::BadField { .. }
    ));
    assert_eq!(
        err("a,b,a", "count"),
        QueryError::DuplicateField { field: "a".into() }
    );
    assert_eq!(
        err("count", "count"),
        QueryError::ReservedField {
            field: "count".into()
        }
    );
    for m in [
        "sum",
        "sum()",
        "SUM(a)",
        "count(a)",
        "median(a)",
        "sum(a",
        "sum(a))",
        "sum(a b)",
        "",
        " count",
    ] {
        assert!(
            matches!(
                err("a", m),
                QueryError::UnknownMetric { .. } | QueryError::BadMetricField { .. }
            ),
            "{m}"
        );
    }
    let message = err("a", "mean(x)").to_string();
    assert!(
        message.contains("mean(x)") && message.contains("sum(field)"),
        "{message}"
    );
}

#[test]
fn allowance_check_names_the_first_field_not_allowed() {
    let a = allowance(&["district", "type"], &["flow"], 11);
    a.validate().expect("valid allowance");
    a.check(
        &query("type", "avg(flow)"),
        &[EqFilter::new("district", Some("Huangpu"))],
    )
    .expect("allowed");
    assert_eq!(
        a.check(&query("type,owner,colour", "count"), &[]),
        Err(Refusal::NotAggregable {
            field: "owner".into(),
            role: FieldRole::GroupBy
        })
    );
    assert_eq!(
        a.check(&query("type", "sum(pressure)"), &[]),
        Err(Refusal::NotAggregable {
            field: "pressure".into(),
            role: FieldRole::Measure
        })
    );
    // A group field is not a measure unless listed as one.
    assert!(a.check(&query("", "sum(type)"), &[]).is_err());
    assert_eq!(
        a.check(&query("", "count"), &[EqFilter::new("owner", None::<String>)]),
        Err(Refusal::NotAggregable {
            field: "owner".into(),
            role: FieldRole::Filter
        })
    );
    assert_eq!(
        a.check(
            &query("", "count"),
            &[EqFilter::new("type", Some("a")), EqFilter::new("type", Some("b"))]
        ),
        Err(Refusal::DuplicateFilter { field: "type".into() })
    );
    assert_eq!(
        Refusal::NotAggregable {
            field: "owner".into(),
            role: FieldRole::GroupBy
        }
        .to_string(),
        "field `owner` may not be grouped by under this licence"
    );
}

#[test]
fn allowance_validation_and_defaults() {
    let a: AggregateAllowance =
        serde_json::from_str(r#"{"group_by":["district"],"measures":["flow"]}"#).expect("json");
    assert_eq!((a.k, a.max_groups), (DEFAULT_K, DEFAULT_MAX_GROUPS));
    a.validate().expect("valid");
    assert_eq!(
        allowance(&["a"], &[], 2).validate(),
        Err(AllowanceError::KTooSmall { k: 2 })
    );
    assert!(matches!(
        allowance(&["a", "a"], &[], 5).validate(),
        Err(AllowanceError::DuplicateField { .. })
    ));
    assert!(matches!(
        allowance(&["value"], &[], 5).validate(),
        Err(AllowanceError::BadField { .. })
    ));
    assert!(matches!(
        allowance(&["a"], &["b c"], 5).validate(),
        Err(AllowanceError::BadField { .. })
    ));
    let many: Vec<String> = (0..9).map(|i| format!("f{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(matches!(
        allowance(&many, &[], 5).validate(),
        Err(AllowanceError::TooManyBaseFields { .. })
    ));
    let mut zero = allowance(&["a"], &[], 5);
    zero.max_groups = 0;
    assert_eq!(zero.validate(), Err(AllowanceError::NoGroups));
    assert!(serde_json::from_str::<AggregateAllowance>(r#"{"group_by":[],"kk":3}"#).is_err());
}

// ---------------------------------------------------------------------------------------
// Exact decimals

#[test]
fn decimals_parse_exactly_and_round_half_to_even() {
    let units = |s: &str| Decimal::parse(s).map(Decimal::units);
    assert_eq!(units("1234.5"), Some(1_234_500_000_000));
    assert_eq!(units(" -0.1 "), Some(-100_000_000));
    assert_eq!(units("+2"), Some(2_000_000_000));
    assert_eq!(units("1e3"), Some(1_000_000_000_000));
    assert_eq!(units("1.5E-3"), Some(1_500_000));
    assert_eq!(units(".5"), Some(500_000_000));
    assert_eq!(units("-0"), Some(0));
    assert_eq!(units("0.0000000005"), Some(0)); // half, to even (0)
    assert_eq!(units("0.0000000015"), Some(2)); // half, to even (2)
    assert_eq!(units("0.0000000025"), Some(2));
    assert_eq!(units("0.00000000250001"), Some(3));
    assert_eq!(units("0.00000000049"), Some(0));
    assert_eq!(units("1e-30"), Some(0));
    assert_eq!(units("1e18"), Some(Decimal::MAX_MEASURE.units()));
    assert_eq!(units("-1e18"), Some(-Decimal::MAX_MEASURE.units()));
    assert_eq!(units("1000000000000000000.000000001"), None);
    assert_eq!(units("1e19"), None);
    assert_eq!(
        units("0000000000000000000000000000000000000000012"),
        Some(12_000_000_000)
    );
    for bad in [
        "",
        "-",
        ".",
        "abc",
        "NaN",
        "inf",
        "Infinity",
        "1,5",
        "0x10",
        "--1",
        "1e",
        "1e+",
        "1e1000000",
        "1.2.3",
        "١",
    ] {
        assert_eq!(units(bad), None, "{bad:?}");
    }
    // Ten times 0.1 is exactly 1, unlike in f64.
    let mut sum = Decimal::ZERO;
    for _ in 0..10 {
        sum = sum
            .checked_add(Decimal::parse("0.1").expect("0.1"))
            .expect("no overflow");
    }
    assert_eq!(sum, Decimal::from_int(1));
    assert_eq!(Decimal::parse("-12.340").expect("d").to_string(), "-12.34");
    assert_eq!(Decimal::parse("1234.5").expect("d").to_f64(), 1234.5);
    let d: Decimal = serde_json::from_str("2.75").expect("number");
    assert_eq!(d, Decimal::parse("2.75").expect("d"));
    assert_eq!(serde_json::to_string(&d).expect("json"), "\"2.75\"");
}

// ---------------------------------------------------------------------------------------
// Suppression

/// One record per key: every base cell has one record.
fn unique_records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let id = format!("id-{i}");
            let district = if i % 2 == 0 { "Huangpu" } else { "Xuhui" };
            let m = format!("{}", 1000 + i * 7);
            record(&[Some(district), Some(&id)], Some(&m))
        })
        .collect()
}

#[test]
fn unique_keys_release_nothing_for_any_metric() {
    let records = unique_records(40);
    let a = allowance(&["district", "id"], &["flow"], 3);
    for metric in ["count", "sum(flow)", "avg(flow)", "min(flow)", "max(flow)"] {
        for group_by in ["district,id", "district", "id", ""] {
            let q = query(group_by, metric);
            let table = aggregate(&records, &q, &a);
            let r = release(&table, &q, &[], 3);
            assert!(r.cells.is_empty(), "{metric} by {group_by}: {:?}", r.cells);
            let expected = match group_by {
                "district,id" | "id" => 40,
                "district" => 2,
                _ => 1,
            };
            assert_eq!(r.suppressed, expected, "{metric} by {group_by}");
        }
    }
}

#[test]
fn min_and_max_of_unique_values_never_appear() {
    // 40 records, each alone in its base cell, plus a released cell of 5 ordinary records.
    let mut records = unique_records(40);
    for _ in 0..5 {
        records.push(record(&[Some("Jingan"), Some("shared")], Some("1")));
    }
    let a = allowance(&["district", "id"], &["flow"], 3);
    for metric in ["min(flow)", "max(flow)", "sum(flow)", "avg(flow)"] {
        for group_by in ["district,id", "district", ""] {
            let q = query(group_by, metric);
            let r = release(&aggregate(&records, &q, &a), &q, &[], 5);
            let out = json(&r);
            for i in 0..40 {
                let unique = (1000 + i * 7).to_string();
                assert!(
                    !out.contains(&unique),
                    "{metric} by {group_by} leaks {unique}: {out}"
                );
            }
            assert_eq!(r.cells.len(), 1, "{out}");
            assert_eq!(r.cells[0].count, 5);
        }
    }
}

#[test]
fn answer_serialises_as_documented() {
    let mut records = Vec::new();
    for flow in ["1000", "200.5", "34"] {
        records.push(record(&[Some("Huangpu")], Some(flow)));
    }
    records.push(record(&[Some("Xuhui")], Some("5")));
    records.push(record(&[None], Some("1")));
    records.push(record(&[None], Some("2")));
    records.push(record(&[None], Some("3")));
    let a = allowance(&["district"], &["flow"], 3);
    let q = query("district", "sum(flow)");
    let r = release(&aggregate(&records, &q, &a), &q, &[], 3);
    assert_eq!(
        json(&r),
        r#"{"group_by":["district"],"metric":"sum(flow)","k":3,"totals":"released-cells","cells":[{"district":null,"count":3,"value":6.0},{"district":"Huangpu","count":3,"value":1234.5}],"suppressed":1}"#
    );
    let q = query("", "count");
    let r = release(&aggregate(&records, &q, &a), &q, &[], 3);
    assert_eq!(
        json(&r),
        r#"{"group_by":[],"metric":"count","k":3,"totals":"released-cells","cells":[{"count":6}],"suppressed":0}"#
    );
}

#[test]
fn non_numeric_measures_count_but_are_not_measured() {
    let mut records = Vec::new();
    for m in [
        Some("10"),
        Some("n/a"),
        None,
        Some(""),
        Some("20"),
        Some("30"),
        Some("1e400"),
    ] {
        records.push(record(&[Some("A")], m));
    }
    // Cell B: many records, only two numbers: its sum would expose those two.
    for m in [Some("7"), Some("8"), None, None, None, None] {
        records.push(record(&[Some("B")], m));
    }
    let a = allowance(&["g"], &["m"], 3);
    let q = query("g", "sum(m)");
    let table = aggregate(&records, &q, &a);
    let cell_a = table.cells().next().expect("cell A").1;
    assert_eq!((cell_a.count, cell_a.measured, cell_a.non_numeric()), (7, 3, 4));
    let r = release(&table, &q, &[], 3);
    assert_eq!(r.cells.len(), 1);
    assert_eq!((r.cells[0].count, r.cells[0].value), (7, Some(60.0)));
    assert_eq!((r.suppressed, r.non_numeric), (1, 4));
    let avg = release(&table, &query("g", "avg(m)"), &[], 3);
    assert_eq!(avg.cells[0].value, Some(20.0));
    // Counting does not need numbers: both cells are released.
    let counts = release(&table, &query("g", "count"), &[], 3);
    assert_eq!(
        counts.cells.iter().map(|c| c.count).collect::<Vec<_>>(),
        vec![7, 6]
    );
    assert_eq!(counts.non_numeric, 0);
}

#[test]
fn release_refuses_what_the_table_cannot_answer() {
    let a = allowance(&["g", "h"], &["m", "n"], 3);
    let q = query("g", "sum(m)");
    let table = aggregate(&[record(&[Some("x"), Some("y")], Some("1"))], &q, &a);
    let err = |q: &AggregateQuery, f: &[EqFilter], k, t| table.release(q, f, k, t).expect_err("refused");
    assert_eq!(
        err(&q, &[], 2, Totals::ReleasedCells),
        AggregateError::KTooSmall { k: 2 }
    );
    assert!(matches!(
        err(&query("g", "sum(n)"), &[], 3, Totals::ReleasedCells),
        AggregateError::MeasureMismatch { .. }
    ));
    assert!(matches!(
        err(&query("z", "sum(m)"), &[], 3, Totals::ReleasedCells),
        AggregateError::NotInTable { .. }
    ));
    assert!(matches!(
        err(&q, &[EqFilter::new("z", Some("1"))], 3, Totals::ReleasedCells),
        AggregateError::NotInTable { .. }
    ));
    let q_min = query("g", "min(m)");
    let table_min = aggregate(&[], &q_min, &a);
    assert!(matches!(
        table_min.release(&q_min, &[], 3, Totals::AllRecords),
        Err(AggregateError::TotalsUnsupportedMetric { .. })
    ));
    let a3 = allowance(&["g", "h", "i"], &["m"], 3);
    let q3 = query("g", "count");
    assert_eq!(
        aggregate(&[], &q3, &a3).release(&q3, &[], 3, Totals::AllRecords),
        Err(AggregateError::TotalsNeedOneOrTwoFields { fields: 3 })
    );
}

// ---------------------------------------------------------------------------------------
// The differencing property

/// The naive reference: from the raw records, keep the base groups with at least `k`
/// (numeric) records, restrict to the filters, and aggregate the kept records per requested
/// key. Returns the released cells (key → exact aggregates) and the suppressed count.
fn reference(
    records: &[Record],
    metric: &Metric,
    group_at: &[usize],
    filters: &[(usize, Option<String>)],
    k: u64,
) -> (BTreeMap<Vec<Option<String>>, BaseCell>, u64) {
    let measured = metric.field().is_some();
    let protect = |c: &BaseCell| if measured { c.measured } else { c.count };
    let mut base: BTreeMap<Vec<Option<String>>, Vec<Option<Decimal>>> = BTreeMap::new();
    for r in records {
        if filters.iter().all(|(at, v)| r.key[*at] == *v) {
            let m = if measured {
                r.measure.as_deref().and_then(Decimal::parse)
            } else {
                None
            };
            base.entry(r.key.clone()).or_default().push(m);
        }
    }
    let mut requested: BTreeMap<Vec<Option<String>>, BaseCell> = BTreeMap::new();
    for (key, values) in &base {
        let rk: Vec<Option<String>> = group_at.iter().map(|&at| key[at].clone()).collect();
        let mut group = BaseCell::default();
        for v in values {
            group.merge(&BaseCell::of_record(*v)).expect("no overflow");
        }
        let slot = requested.entry(rk).or_default();
        if protect(&group) >= k {
            for v in values {
                slot.merge(&BaseCell::of_record(*v)).expect("no overflow");
            }
        }
    }
    let suppressed = requested.values().filter(|c| protect(c) < k).count() as u64;
    requested.retain(|_, c| protect(c) >= k);
    (requested, suppressed)
}

/// Every subset of `0..n`, in order.
fn subsets(n: usize) -> Vec<Vec<usize>> {
    (0..1usize << n)
        .map(|mask| (0..n).filter(|i| mask >> i & 1 == 1).collect())
        .collect()
}

fn value_strategy(domain: u8) -> impl Strategy<Value = Option<String>> {
    (0..=domain).prop_map(move |v| (v < domain).then(|| format!("v{v}")))
}

fn measure_strategy() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        8 => (-100_000i64..100_000).prop_map(|v| Some(format!("{}.{:02}", v / 100, (v % 100).abs()))),
        1 => Just(None),
        1 => Just(Some("n/a".to_owned())),
    ]
}

fn records_strategy(fields: usize) -> impl Strategy<Value = Vec<Record>> {
    let key = proptest::collection::vec(value_strategy(3), fields);
    proptest::collection::vec(
        (key, measure_strategy()).prop_map(|(key, measure)| Record { key, measure }),
        0..300,
    )
}

fn case_strategy() -> impl Strategy<Value = (usize, Vec<Record>, u32)> {
    (2usize..=3).prop_flat_map(|fields| (Just(fields), records_strategy(fields), 3u32..=11))
}

const FIELDS: [&str; 3] = ["a", "b", "c"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Every released cell, for every grouping (the total included), every metric and a
    /// filter or none, equals the naive reference computed from the raw records restricted
    /// to base cells of at least k; no released count is below k; and a coarser answer is
    /// exactly the sum of the finer one's released cells, so differencing answers yields
    /// nothing that is not itself released.
    #[test]
    fn released_cells_are_rollups_of_released_base_cells(
        (fields, records, k) in case_strategy(),
        filter_field in 0usize..3,
        filter_value in value_strategy(3),
    ) {
        let base = &FIELDS[..fields];
        let a = allowance(base, &["m"], k);
        let filter_field = filter_field % fields;
        for metric in ["count", "sum(m)", "avg(m)", "min(m)", "max(m)"] {
            let table = aggregate(&records, &query("", metric), &a);
            for with_filter in [false, true] {
                let filters = if with_filter {
                    vec![EqFilter { field: base[filter_field].to_owned(), value: filter_value.clone() }]
                } else {
                    Vec::new()
                };
                let ref_filters: Vec<(usize, Option<String>)> =
                    filters.iter().map(|_| (filter_field, filter_value.clone())).collect();
                let mut answers: BTreeMap<Vec<usize>, Released> = BTreeMap::new();
                for group_at in subsets(fields) {
                    let names: Vec<&str> = group_at.iter().map(|&i| base[i]).collect();
                    let q = query(&names.join(","), metric);
                    let r = release(&table, &q, &filters, k);
                    let (expected, suppressed) = reference(&records, &q.metric, &group_at, &ref_filters, u64::from(k));
                    prop_assert_eq!(r.suppressed, suppressed);
                    prop_assert_eq!(r.cells.len(), expected.len());
                    for (cell, (key, exact)) in r.cells.iter().zip(&expected) {
                        prop_assert_eq!(&cell.key, key);
                        prop_assert_eq!(cell.count, exact.count);
                        prop_assert!(cell.count >= u64::from(k));
                        if q.metric.field().is_some() {
                            prop_assert!(exact.measured >= u64::from(k));
                        }
                        prop_assert_eq!(cell.value, release::metric_value(&q.metric, exact));
                    }
                    answers.insert(group_at, r);
                }
                // Differencing: each coarser cell is the sum of the finer released cells.
                for (fine_at, fine) in &answers {
                    for (coarse_at, coarse) in &answers {
                        if coarse_at.len() >= fine_at.len() || !coarse_at.iter().all(|i| fine_at.contains(i)) {
                            continue;
                        }
                        let project: Vec<usize> =
                            coarse_at.iter().map(|i| fine_at.iter().position(|f| f == i).unwrap_or(0)).collect();
                        let mut rolled: BTreeMap<Vec<Option<String>>, BaseCell> = BTreeMap::new();
                        for cell in &fine.cells {
                            let key = project.iter().map(|&p| cell.key[p].clone()).collect();
                            rolled.entry(key).or_default().merge(&cell.exact).expect("no overflow");
                        }
                        prop_assert_eq!(rolled.len(), coarse.cells.len());
                        for (cell, (key, sum)) in coarse.cells.iter().zip(&rolled) {
                            prop_assert_eq!(&cell.key, key);
                            prop_assert_eq!((cell.exact.count, cell.exact.sum), (sum.count, sum.sum));
                            prop_assert_eq!((cell.exact.min, cell.exact.max), (sum.min, sum.max));
                        }
                    }
                }
            }
        }
    }

    /// A table built from pre-aggregated rows answers exactly as the streamed one.
    #[test]
    fn rows_and_stream_build_the_same_table((fields, records, _k) in case_strategy()) {
        let base = &FIELDS[..fields];
        let a = allowance(base, &["m"], 3);
        let q = query("", "sum(m)");
        let streamed = aggregate(&records, &q, &a);
        let rows: Vec<BaseRow> = streamed
            .cells()
            .map(|(key, cell)| BaseRow { key: key.to_vec(), cell: *cell })
            .collect();
        // Split each row in two to check that rows with the same key add up.
        let mut split = Vec::new();
        for row in rows {
            let mut one = row.clone();
            if row.cell.count > 1 && row.cell.measured == 0 {
                one.cell.count = 1;
                let mut rest = row.clone();
                rest.cell.count -= 1;
                split.push(rest);
            }
            split.push(one);
        }
        let plan = BasePlan::new(&q, &a).expect("plan");
        let from_rows = BaseTable::from_rows(&plan, split).expect("rows");
        prop_assert_eq!(from_rows.len(), streamed.len());
        for group_by in ["", "a", "a,b"] {
            let q = query(group_by, "sum(m)");
            prop_assert_eq!(release(&from_rows, &q, &[], 3), release(&streamed, &q, &[], 3));
        }
    }
}

#[test]
fn filters_select_whole_base_cells() {
    let mut records = Vec::new();
    for (d, t, n) in [("H", "x", 5), ("H", "y", 2), ("X", "x", 4), ("X", "y", 6)] {
        for _ in 0..n {
            records.push(record(&[Some(d), Some(t)], None));
        }
    }
    let a = allowance(&["district", "type"], &[], 4);
    let q = query("type", "count");
    let table = aggregate(&records, &q, &a);
    // Unfiltered: x = 5 + 4, y = 6 (the (H, y) cell of 2 is not in any number).
    let all = release(&table, &q, &[], 4);
    assert_eq!(all.cells.iter().map(|c| c.count).collect::<Vec<_>>(), vec![9, 6]);
    // District H: x = 5, y suppressed; subtracting it from the total gives X's released 4.
    let h = release(&table, &q, &[EqFilter::new("district", Some("H"))], 4);
    assert_eq!(h.cells.iter().map(|c| c.count).collect::<Vec<_>>(), vec![5]);
    assert_eq!(h.suppressed, 1);
    let total = release(&table, &query("", "count"), &[], 4);
    assert_eq!(total.cells[0].count, 15);
    let none = release(&table, &q, &[EqFilter::new("district", None::<String>)], 4);
    assert!(none.cells.is_empty() && none.suppressed == 0);
}

// ---------------------------------------------------------------------------------------
// Complementary suppression

/// A table from `counts[row][col]` (0 = empty) with margins; entries below `k` suppressed.
fn two_way(counts: &[Vec<u64>], k: u64) -> MarginTable {
    let mut entries = Vec::new();
    let mut col_totals = vec![0u64; counts.first().map_or(0, Vec::len)];
    let mut total = 0;
    for (i, row) in counts.iter().enumerate() {
        let row_total: u64 = row.iter().sum();
        for (j, &c) in row.iter().enumerate() {
            col_totals[j] += c;
            if c > 0 {
                entries.push(MarginEntry {
                    pos: [Some(i), Some(j)],
                    count: c,
                    suppressed: c < k,
                });
            }
        }
        if row_total > 0 {
            entries.push(MarginEntry {
                pos: [Some(i), None],
                count: row_total,
                suppressed: row_total < k,
            });
        }
        total += row_total;
    }
    for (j, &c) in col_totals.iter().enumerate() {
        if c > 0 {
            entries.push(MarginEntry {
                pos: [None, Some(j)],
                count: c,
                suppressed: c < k,
            });
        }
    }
    if total > 0 {
        entries.push(MarginEntry {
            pos: [None, None],
            count: total,
            suppressed: total < k,
        });
    }
    MarginTable {
        dims: Dims::Two,
        entries,
    }
}

fn one_way(counts: &[u64], k: u64) -> MarginTable {
    let mut entries: Vec<MarginEntry> = counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(i, &c)| MarginEntry {
            pos: [Some(i), None],
            count: c,
            suppressed: c < k,
        })
        .collect();
    let total: u64 = counts.iter().sum();
    if total > 0 {
        entries.push(MarginEntry {
            pos: [None, None],
            count: total,
            suppressed: total < k,
        });
    }
    MarginTable {
        dims: Dims::One,
        entries,
    }
}

fn suppressed_at(table: &MarginTable) -> BTreeSet<[Option<usize>; 2]> {
    table
        .entries
        .iter()
        .filter(|e| e.suppressed)
        .map(|e| e.pos)
        .collect()
}

#[test]
fn complementary_suppression_textbook_two_way() {
    // Region × activity, k = 10: (South, A) = 8 is the one primary suppression. Protecting it
    // needs a second cell in its row (South, B = 19, the smallest), in its column (West, A =
    // 17), and then in column B (West, B = 32): the classic rectangle.
    //            A    B    C   total
    //   North   20   50   10     80
    //   South    8   19   32     59
    //   West    17   32   12     61
    //   total   45  101   54    200
    let mut t = two_way(&[vec![20, 50, 10], vec![8, 19, 32], vec![17, 32, 12]], 10);
    assert!(!t.is_protected());
    assert_eq!(complementary(&mut t), 3);
    assert!(t.is_protected());
    let expected: BTreeSet<_> = [
        [Some(1), Some(0)],
        [Some(1), Some(1)],
        [Some(2), Some(0)],
        [Some(2), Some(1)],
    ]
    .into_iter()
    .collect();
    assert_eq!(suppressed_at(&t), expected);
    // (South, A) can no longer be solved for: the row gives only (S,A) + (S,B) = 27.
}

#[test]
fn complementary_suppression_one_way_and_margins() {
    // One way: 3 is suppressed, so the smallest other category (12) goes too; the total stays.
    let mut t = one_way(&[3, 12, 40, 25], 5);
    assert_eq!(complementary(&mut t), 1);
    assert_eq!(
        suppressed_at(&t),
        [[Some(0), None], [Some(1), None]].into_iter().collect()
    );
    // A row whose only cell is small: cell and row total are both suppressed, and the column
    // and the margin line need complements of their own.
    let mut t = two_way(&[vec![3, 0], vec![20, 30], vec![25, 40]], 5);
    complementary(&mut t);
    assert!(t.is_protected(), "{:?}", suppressed_at(&t));
    // Nothing to protect: nothing changes.
    let mut t = two_way(&[vec![20, 30], vec![25, 40]], 5);
    assert_eq!(complementary(&mut t), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For random one- and two-way tables, after complementary suppression no line has
    /// exactly one suppressed entry, and every primary suppression is still suppressed.
    #[test]
    fn complementary_suppression_protects_every_line(
        counts in proptest::collection::vec(proptest::collection::vec(0u64..30, 1..6), 1..6),
        k in 3u64..=11,
    ) {
        let width = counts[0].len();
        let counts: Vec<Vec<u64>> = counts.into_iter().map(|mut r| { r.resize(width, 1); r }).collect();
        for mut t in [two_way(&counts, k), one_way(&counts[0], k)] {
            let primary = suppressed_at(&t);
            complementary(&mut t);
            prop_assert!(t.is_protected());
            prop_assert!(primary.is_subset(&suppressed_at(&t)));
        }
    }

    /// Through a release with totals over all records: the answer and its margins are one
    /// protected table (no line with exactly one suppressed entry), the margins count all
    /// records, and a coarser or filtered query is a slice of that same table.
    #[test]
    fn all_records_release_is_one_protected_table(
        records in records_strategy(2),
        k in 3u32..=11,
    ) {
        let a = allowance(&["a", "b"], &["m"], k);
        let table = aggregate(&records, &query("", "count"), &a);
        let full = table.release(&query("a,b", "count"), &[], k, Totals::AllRecords).expect("release");
        prop_assert_eq!(full.margins.len(), 3);
        // Rebuild presence from the raw records and suppression from what was released.
        let mut cells: BTreeMap<[Option<Option<String>>; 2], u64> = BTreeMap::new();
        for r in &records {
            let (x, y) = (Some(r.key[0].clone()), Some(r.key[1].clone()));
            for pos in [[x.clone(), y.clone()], [x, None], [None, y], [None, None]] {
                *cells.entry(pos).or_default() += 1;
            }
        }
        let mut released: BTreeMap<[Option<Option<String>>; 2], u64> = BTreeMap::new();
        for c in &full.cells {
            released.insert([Some(c.key[0].clone()), Some(c.key[1].clone())], c.count);
        }
        for m in &full.margins {
            for c in &m.cells {
                let pos = match m.group_by.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                    ["a"] => [Some(c.key[0].clone()), None],
                    ["b"] => [None, Some(c.key[0].clone())],
                    _ => [None, None],
                };
                released.insert(pos, c.count);
            }
        }
        for (pos, count) in &released {
            prop_assert_eq!(Some(count), cells.get(pos));
            prop_assert!(*count >= u64::from(k));
        }
        for axis in 0..2 {
            let mut lines: BTreeMap<Option<Option<String>>, (usize, usize)> = BTreeMap::new();
            for pos in cells.keys() {
                let line = lines.entry(pos[axis].clone()).or_default();
                line.0 += 1;
                line.1 += usize::from(released.contains_key(pos));
            }
            for (at, (present, shown)) in lines {
                prop_assert!(present - shown != 1, "axis {} line {:?}", axis, at);
            }
        }
        // Coarser queries and filters are slices of the same table.
        let by_a = table.release(&query("a", "count"), &[], k, Totals::AllRecords).expect("release");
        prop_assert_eq!(&by_a.cells, &full.margins[0].cells);
        let total = table.release(&query("", "count"), &[], k, Totals::AllRecords).expect("release");
        prop_assert_eq!(&total.cells, &full.margins[2].cells);
        if let Some(first) = records.first() {
            let f = [EqFilter { field: "b".into(), value: first.key[1].clone() }];
            let column = table.release(&query("a", "count"), &f, k, Totals::AllRecords).expect("release");
            let expected: Vec<(Option<String>, u64)> = full
                .cells
                .iter()
                .filter(|c| c.key[1] == first.key[1])
                .map(|c| (c.key[0].clone(), c.count))
                .collect();
            let got: Vec<(Option<String>, u64)> = column.cells.iter().map(|c| (c.key[0].clone(), c.count)).collect();
            prop_assert_eq!(got, expected);
        }
    }
}

#[test]
fn all_records_textbook_example_through_release() {
    let mut records = Vec::new();
    let table = [
        ("North", [20, 50, 10]),
        ("South", [8, 19, 32]),
        ("West", [17, 32, 12]),
    ];
    for (region, counts) in table {
        for (activity, n) in ["A", "B", "C"].into_iter().zip(counts) {
            for _ in 0..n {
                records.push(record(&[Some(region), Some(activity)], Some("2")));
            }
        }
    }
    let a = allowance(&["region", "activity"], &["amount"], 10);
    let q = query("region,activity", "sum(amount)");
    let base = aggregate(&records, &q, &a);
    let r = base.release(&q, &[], 10, Totals::AllRecords).expect("release");
    let released: Vec<(String, String)> = r
        .cells
        .iter()
        .map(|c| {
            (
                c.key[0].clone().unwrap_or_default(),
                c.key[1].clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(r.suppressed, 4);
    assert_eq!(released.len(), 5);
    for hidden in [("South", "A"), ("South", "B"), ("West", "A"), ("West", "B")] {
        assert!(
            !released.contains(&(hidden.0.into(), hidden.1.into())),
            "{hidden:?}"
        );
    }
    let out = json(&r);
    assert!(out.contains(r#""totals":"all-records""#), "{out}");
    assert!(
        out.contains(r#"{"group_by":[],"cells":[{"count":200,"value":400.0}],"suppressed":0}"#),
        "{out}"
    );
    assert!(
        out.contains(r#"{"region":"South","count":59,"value":118.0}"#),
        "{out}"
    );
    // In the default mode the total is of released base cells only: 200 − 8 = 192.
    let total = release(&base, &query("", "sum(amount)"), &[], 10);
    assert_eq!(total.cells[0].count, 192);
}

// ---------------------------------------------------------------------------------------
// The aggregator

#[test]
fn aggregator_caps_distinct_groups() {
    let mut a = allowance(&["g"], &["m"], 3);
    a.max_groups = 3;
    let plan = BasePlan::new(&query("g", "sum(m)"), &a).expect("plan");
    let mut agg = Aggregator::new(&plan);
    for g in ["a", "b", "c", "a", "c"] {
        agg.push(&[Some(g)], Some("1")).expect("within the cap");
    }
    assert_eq!(agg.groups(), 3);
    assert_eq!(
        agg.push(&[Some("d")], Some("1")),
        Err(AggregateError::TooManyGroups { cap: 3 })
    );
    assert_eq!(
        agg.push(&[None], None),
        Err(AggregateError::TooManyGroups { cap: 3 })
    );
    agg.push(&[Some("b")], Some("1"))
        .expect("an existing group is fine");
    assert_eq!(
        agg.push(&[Some("a"), Some("b")], None),
        Err(AggregateError::Arity { expected: 1, got: 2 })
    );
    let long = "x".repeat(MAX_GROUP_VALUE_LEN + 1);
    assert!(matches!(
        agg.push(&[Some(&long)], None),
        Err(AggregateError::GroupValueTooLong { .. })
    ));
    let rows = (0..4).map(|i| BaseRow {
        key: vec![Some(format!("g{i}"))],
        cell: BaseCell {
            count: 3,
            ..BaseCell::default()
        },
    });
    assert_eq!(
        BaseTable::from_rows(&plan, rows),
        Err(AggregateError::TooManyGroups { cap: 3 })
    );
    // Values that would collide under a naive concatenation stay apart.
    let a2 = allowance(&["g", "h"], &[], 3);
    let plan2 = BasePlan::new(&query("", "count"), &a2).expect("plan");
    let mut agg2 = Aggregator::new(&plan2);
    agg2.push(&[Some("ab"), Some("c")], None).expect("push");
    agg2.push(&[Some("a"), Some("bc")], None).expect("push");
    agg2.push(&[None, Some("")], None).expect("push");
    agg2.push(&[Some(""), None], None).expect("push");
    assert_eq!(agg2.finish().len(), 4);
}

#[test]
fn from_rows_rejects_impossible_rows() {
    let a = allowance(&["g"], &["m"], 3);
    let plan = BasePlan::new(&query("g", "sum(m)"), &a).expect("plan");
    let bad = |cell: BaseCell| {
        BaseTable::from_rows(
            &plan,
            [BaseRow {
                key: vec![Some("x".into())],
                cell,
            }],
        )
    };
    let d = |s: &str| Decimal::parse(s).expect("decimal");
    assert!(matches!(
        bad(BaseCell {
            count: 1,
            measured: 2,
            ..BaseCell::default()
        }),
        Err(AggregateError::BadRow(_))
    ));
    assert!(matches!(
        bad(BaseCell {
            count: 2,
            measured: 2,
            ..BaseCell::default()
        }),
        Err(AggregateError::BadRow(_))
    ));
    assert!(matches!(
        bad(BaseCell {
            count: 2,
            measured: 1,
            sum: d("1"),
            min: Some(d("2")),
            max: Some(d("1"))
        }),
        Err(AggregateError::BadRow(_))
    ));
    assert!(matches!(
        BaseTable::from_rows(
            &plan,
            [BaseRow {
                key: vec![],
                cell: BaseCell::default()
            }]
        ),
        Err(AggregateError::Arity { .. })
    ));
    let ok = bad(BaseCell {
        count: 2,
        measured: 1,
        sum: d("1"),
        min: Some(d("1")),
        max: Some(d("1")),
    });
    assert_eq!(ok.map(|t| t.len()), Ok(1));
}

#[test]
fn clamped_plans_clamp_each_measure() {
    let a = allowance(&["g"], &["m"], 3);
    let clamp = Clamp {
        lower: Decimal::from_int(0),
        upper: Decimal::from_int(100),
    };
    let plan = BasePlan::new(&query("g", "sum(m)"), &a)
        .expect("plan")
        .with_clamp(clamp);
    let mut agg = Aggregator::new(&plan);
    for m in ["-50", "50", "5000"] {
        agg.push(&[Some("x")], Some(m)).expect("push");
    }
    let table = agg.finish();
    let cell = table.cells().next().expect("cell").1;
    assert_eq!(
        (cell.sum, cell.min, cell.max),
        (
            Decimal::from_int(150),
            Some(Decimal::ZERO),
            Some(Decimal::from_int(100))
        )
    );
    let r = release(&table, &query("g", "sum(m)"), &[], 3);
    assert_eq!(r.clamp(), Some(clamp));
}

// ---------------------------------------------------------------------------------------
// Noise

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Mean absolute value of a discrete Laplace of scale s: 2p / (1 − p²), p = exp(−1/s).
fn expected_mad(scale: f64) -> f64 {
    let p = (-1.0 / scale).exp();
    2.0 * p / (1.0 - p * p)
}

#[test]
fn discrete_laplace_has_the_right_scale() {
    let mut r = rng(7);
    for (num, den, n, tolerance) in [
        (4u128, 1u128, 40_000, 0.03),
        (1_000_000, 300_000, 40_000, 0.03),
        (3, 1_000_000, 20_000, 0.05),
        // A sum's scale in nano-units: 2 × 10⁹ (Δ = 1, ε = 1/2 of 1).
        (2_000_000_000_000_000, 1_000_000, 4_000, 0.08),
    ] {
        let scale = num as f64 / den as f64;
        let samples: Vec<i128> = (0..n)
            .map(|_| discrete_laplace(&mut r, Scale { num, den }).expect("sample"))
            .collect();
        let mad = samples.iter().map(|y| y.unsigned_abs() as f64).sum::<f64>() / n as f64;
        let mean = samples.iter().map(|&y| y as f64).sum::<f64>() / n as f64;
        let want = expected_mad(scale);
        assert!(
            (mad - want).abs() <= tolerance * want.max(0.01) + 0.005,
            "scale {scale}: mad {mad}, want {want}"
        );
        // The mean's standard error is about √2·scale/√n; allow five of them.
        assert!(
            mean.abs() <= 5.0 * (2f64.sqrt() * scale.max(0.1)) / (n as f64).sqrt(),
            "scale {scale}: mean {mean}"
        );
        // The shape, not only the spread: P(Y = 0) = (1 − p) / (1 + p), p = exp(−1/scale),
        // within five standard errors.
        let p = (-1.0 / scale).exp();
        let p0 = (1.0 - p) / (1.0 + p);
        let zeros = samples.iter().filter(|&&y| y == 0).count() as f64 / n as f64;
        let se = (p0 * (1.0 - p0) / n as f64).sqrt();
        assert!(
            (zeros - p0).abs() <= 5.0 * se + 1e-9,
            "scale {scale}: P(0) {zeros}, want {p0}"
        );
    }
    assert_eq!(discrete_laplace(&mut r, Scale { num: 0, den: 1 }), Ok(0));
}

#[test]
fn bernoulli_exp_is_exact() {
    let mut r = rng(11);
    for (n, d) in [(1u128, 2u128), (3, 2), (0, 5), (7, 3), (999, 1000)] {
        let trials = 40_000;
        let hits = (0..trials)
            .filter(|_| bernoulli_exp(&mut r, n, d).expect("sample"))
            .count();
        let p = hits as f64 / trials as f64;
        let want = (-(n as f64) / d as f64).exp();
        assert!((p - want).abs() < 0.012, "exp(-{n}/{d}): {p} vs {want}");
    }
}

fn dp(epsilon: f64, clamp: Option<Clamp>) -> DpParams {
    DpParams { epsilon, clamp }
}

#[test]
fn noise_keeps_counts_non_negative_and_reports_itself() {
    let mut records = Vec::new();
    for g in 0..40 {
        for _ in 0..3 {
            records.push(record(&[Some(&format!("g{g:02}"))], Some("1")));
        }
    }
    let a = allowance(&["g"], &["m"], 3);
    let q = query("g", "count");
    let table = aggregate(&records, &q, &a);
    let mut zeros = 0;
    let mut r = rng(3);
    for _ in 0..20 {
        let mut answer = release(&table, &q, &[], 3);
        add_noise(&mut answer, &dp(0.05, None), &mut r).expect("noise");
        // Counts are u64 by type; the floor at zero must have been used with noise this large.
        zeros += answer.cells.iter().filter(|c| c.count == 0).count();
        assert!(answer.cells.iter().all(|c| c.value.is_none()));
        assert_eq!(answer.noise.map(|n| n.count_scale), Some(20.0));
        assert_eq!(
            add_noise(&mut answer, &dp(0.05, None), &mut r),
            Err(NoiseError::AlreadyNoised)
        );
    }
    assert!(zeros > 0);
    let mut answer = release(&table, &q, &[], 3);
    add_noise(&mut answer, &dp(1.0, None), &mut r).expect("noise");
    assert!(
        json(&answer).contains(r#""noise":{"mechanism":"discrete-laplace","epsilon":1.0,"count_scale":1.0}"#)
    );
}

#[test]
fn noise_on_sums_needs_the_licence_clamp_and_splits_epsilon() {
    let clamp = Clamp {
        lower: Decimal::from_int(-10),
        upper: Decimal::from_int(100),
    };
    let a = allowance(&["g"], &["m"], 3);
    let records: Vec<Record> = (0..500)
        .map(|i| record(&[Some("x")], Some(&format!("{}", i % 50))))
        .collect();
    let q = query("g", "sum(m)");
    let unclamped = aggregate(&records, &q, &a);
    let mut answer = release(&unclamped, &q, &[], 3);
    assert_eq!(
        add_noise(&mut answer, &dp(1.0, Some(clamp)), &mut rng(1)),
        Err(NoiseError::NotClamped)
    );
    assert_eq!(
        add_noise(&mut answer, &dp(1.0, None), &mut rng(1)),
        Err(NoiseError::NotClamped)
    );

    let plan = BasePlan::new(&q, &a).expect("plan").with_clamp(clamp);
    let mut agg = Aggregator::new(&plan);
    for r in &records {
        agg.push(&[Some("x")], r.measure.as_deref()).expect("push");
    }
    let table = agg.finish();
    let exact = release(&table, &q, &[], 3).cells[0].value.expect("sum");
    let mut r = rng(5);
    let mut deviations = Vec::new();
    for _ in 0..400 {
        let mut answer = release(&table, &q, &[], 3);
        add_noise(&mut answer, &dp(2.0, Some(clamp)), &mut r).expect("noise");
        let info = answer.noise.expect("info");
        // Sum: sensitivity 100, half of ε = 1 → scale 100; count: scale 1.
        assert_eq!((info.count_scale, info.sum_scale), (1.0, Some(100.0)));
        deviations.push((answer.cells[0].value.expect("noisy sum") - exact).abs());
    }
    let mad = deviations.iter().sum::<f64>() / deviations.len() as f64;
    assert!((mad - 100.0).abs() < 15.0, "mean absolute deviation {mad}");
    // Averages: thirds; the average is the noisy sum over the noisy numeric count.
    let qa = query("g", "avg(m)");
    let mut answer = release(&table, &qa, &[], 3);
    add_noise(&mut answer, &dp(3.0, Some(clamp)), &mut r).expect("noise");
    assert_eq!(answer.noise.and_then(|n| n.sum_scale), Some(100.0));
    let avg = answer.cells[0].value.expect("avg");
    assert!((avg - 24.5).abs() < 5.0, "{avg}");
    // Min and max, and totals over all records, are refused.
    let mut answer = release(&table, &query("g", "min(m)"), &[], 3);
    assert!(matches!(
        add_noise(&mut answer, &dp(1.0, Some(clamp)), &mut r),
        Err(NoiseError::UnsupportedMetric { .. })
    ));
    let mut answer = table.release(&q, &[], 3, Totals::AllRecords).expect("release");
    assert_eq!(
        add_noise(&mut answer, &dp(1.0, Some(clamp)), &mut r),
        Err(NoiseError::AllRecords)
    );
    let mut answer = release(&table, &q, &[], 3);
    assert_eq!(
        add_noise(&mut answer, &dp(0.0, Some(clamp)), &mut r),
        Err(NoiseError::BadEpsilon)
    );
    assert_eq!(
        add_noise(&mut answer, &dp(f64::NAN, Some(clamp)), &mut r),
        Err(NoiseError::BadEpsilon)
    );
    let upside_down = Clamp {
        lower: clamp.upper,
        upper: clamp.lower,
    };
    assert_eq!(
        add_noise(&mut answer, &dp(1.0, Some(upside_down)), &mut r),
        Err(NoiseError::BadClamp)
    );
}

#[test]
fn cost_budget_and_fingerprint() {
    let params = dp(0.25, None);
    assert_eq!(cost(&params), 0.25);
    let mut budget = Budget::new(1.0, 0.0);
    for _ in 0..4 {
        budget.charge(cost(&params)).expect("within budget");
    }
    assert_eq!(budget.remaining(), 0.0);
    assert_eq!(budget.spent(), 1.0);
    let err = budget.charge(cost(&params)).expect_err("exhausted");
    assert_eq!((err.remaining, err.asked), (0.0, 0.25));
    let mut budget = Budget::new(1.0, 0.0);
    for _ in 0..10 {
        budget.charge(0.1).expect("ten tenths fit exactly");
    }
    assert!(budget.charge(0.000_001).is_err());

    let q = query("district,type", "sum(flow)");
    let f1 = EqFilter::new("district", Some("Huangpu"));
    let f2 = EqFilter::new("type", None::<String>);
    let fp = query_fingerprint(&q, &[f1.clone(), f2.clone()]);
    assert_eq!(fp, query_fingerprint(&q, &[f2.clone(), f1.clone()]));
    let different = [
        query_fingerprint(&q, std::slice::from_ref(&f1)),
        query_fingerprint(&q, &[f1.clone(), EqFilter::new("type", Some(""))]),
        query_fingerprint(&query("type,district", "sum(flow)"), &[f1.clone(), f2.clone()]),
        query_fingerprint(&query("district,type", "avg(flow)"), &[f1.clone(), f2.clone()]),
        query_fingerprint(&query("district", "sum(flow)"), &[f1, f2]),
    ];
    let mut all: BTreeSet<[u8; 32]> = different.into_iter().collect();
    all.insert(fp);
    assert_eq!(all.len(), 6);
}

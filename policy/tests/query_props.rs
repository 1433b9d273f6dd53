//! Properties of the licensee query interface (`sluice_policy::query`): parse/print round
//! trips, a client query never widens the licence's row filter, `authorize` refuses every
//! query touching a field not emitted in clear, and no input panics the parser.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use sluice_policy::mask::{MaskRule, PseudonymKey};
use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
use sluice_policy::query::{
    admits, ClientQuery, Direction, FieldValue, Filter, FilterOp, OrderBy, QueryRefusal,
};
use sluice_policy::rowfilter::{Condition, Op, RowFilter};
use std::collections::BTreeMap;

/// Field names: few, so that filters, row filters and records collide.
const NAMES: [&str; 5] = ["a", "b", "c", "district", "id_number"];

/// Literals chosen to confuse types: numbers in several spellings, strings that look like
/// numbers, booleans and null, case variants, wildcards, quoting characters.
const LITS: [&str; 22] = [
    "1", "1.0", "01", "1e0", "-0", "0", "2", "10", "abc", "ABC", "", "null", "true", "false", "Huangpu",
    "huangpu", "*", "a*", "%", "\"", "a,b", "(x)",
];

/// A record's value (owned), `Absent` for a missing field.
#[derive(Debug, Clone)]
enum Val {
    Absent,
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Composite,
}

impl Val {
    fn as_field(&self) -> Option<FieldValue<'_>> {
        match self {
            Val::Absent => None,
            Val::Null => Some(FieldValue::Null),
            Val::Bool(b) => Some(FieldValue::Bool(*b)),
            Val::Num(n) => Some(FieldValue::Number(n)),
            Val::Str(s) => Some(FieldValue::String(s)),
            Val::Composite => Some(FieldValue::Composite),
        }
    }
}

type Record = BTreeMap<&'static str, Val>;

fn name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&NAMES[..])
}

fn lit() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&LITS[..]).prop_map(str::to_owned),
        1 => "[-0-9.eE]{0,4}",
        1 => ".{0,6}",
    ]
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        Just(Val::Absent),
        Just(Val::Null),
        any::<bool>().prop_map(Val::Bool),
        prop::sample::select(&["1", "1.0", "-0", "0", "2", "10", "1e0", "0.5"][..])
            .prop_map(|s| Val::Num(s.into())),
        lit().prop_map(Val::Str),
        Just(Val::Composite),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    prop::collection::vec(val(), NAMES.len()).prop_map(|vs| NAMES.iter().copied().zip(vs).collect())
}

fn row_filter() -> impl Strategy<Value = RowFilter> {
    let cond = (
        name(),
        prop::sample::select(&[Op::Eq, Op::Ne, Op::In][..]),
        prop::collection::vec(lit(), 1..4),
    )
        .prop_map(|(field, op, mut values)| {
            if op != Op::In {
                values.truncate(1);
            }
            Condition {
                field: field.into(),
                op,
                values,
            }
        });
    prop::collection::vec(cond, 1..4).prop_map(|conditions| RowFilter { conditions })
}

fn filter_op(lit: BoxedStrategy<String>) -> impl Strategy<Value = FilterOp> {
    prop_oneof![
        lit.clone().prop_map(FilterOp::Eq),
        lit.clone().prop_map(FilterOp::Neq),
        lit.clone().prop_map(FilterOp::Lt),
        lit.clone().prop_map(FilterOp::Lte),
        lit.clone().prop_map(FilterOp::Gt),
        lit.clone().prop_map(FilterOp::Gte),
        prop::collection::vec(lit.clone(), 1..6).prop_map(FilterOp::In),
        lit.prop_map(FilterOp::Like),
        Just(FilterOp::IsNull),
    ]
}

fn filter_on(column: BoxedStrategy<String>, lit: BoxedStrategy<String>) -> impl Strategy<Value = Filter> {
    (column, any::<bool>(), filter_op(lit)).prop_map(|(column, negated, op)| Filter { column, negated, op })
}

fn order_on(column: BoxedStrategy<String>) -> impl Strategy<Value = Vec<OrderBy>> {
    prop::collection::vec((column, any::<bool>()), 0..4).prop_map(|v| {
        let mut out: Vec<OrderBy> = Vec::new();
        for (column, desc) in v {
            if !out.iter().any(|o| o.column == column) {
                let dir = if desc { Direction::Desc } else { Direction::Asc };
                out.push(OrderBy { column, dir });
            }
        }
        out
    })
}

/// Queries over [`NAMES`], with repeated columns and `in` lists of mixed types.
fn query() -> impl Strategy<Value = ClientQuery> {
    let col = || name().prop_map(str::to_owned).boxed();
    (
        prop::collection::vec(filter_on(col(), lit().boxed()), 0..6),
        order_on(col()),
        prop::option::of(prop::collection::btree_set(name(), 1..4)),
    )
        .prop_map(|(filters, order, select)| ClientQuery {
            select: select.map(|s| s.into_iter().map(str::to_owned).collect()),
            filters,
            order,
            after: None,
        })
}

/// Any query [`ClientQuery::from_pairs`] accepts: arbitrary columns (ids that are not
/// reserved), arbitrary values.
fn printable_query() -> impl Strategy<Value = ClientQuery> {
    let col = || {
        "[A-Za-z0-9._-]{1,12}"
            .prop_filter("reserved", |c| {
                ![
                    "select", "order", "after", "or", "and", "not", "limit", "offset", "cursor", "format",
                    "fields",
                ]
                .contains(&c.as_str())
            })
            .boxed()
    };
    let value = || ".{0,12}".boxed();
    (
        prop::collection::vec(filter_on(col(), value()), 0..8),
        order_on(col()),
        prop::option::of(prop::collection::btree_set(col(), 1..4)),
        prop::option::of(".{1,20}"),
    )
        .prop_map(|(filters, order, select, after)| {
            let mut seen: Vec<(String, String)> = Vec::new();
            let filters = filters
                .into_iter()
                .filter(|f| {
                    let pair = (f.column.clone(), f.value_text());
                    let new = !seen.contains(&pair);
                    seen.push(pair);
                    new
                })
                .collect();
            ClientQuery {
                select: select.map(|s| s.into_iter().collect()),
                filters,
                order,
                after,
            }
        })
}

fn plan_action() -> impl Strategy<Value = Option<FieldAction>> {
    prop_oneof![
        Just(None),
        Just(Some(FieldAction::Emit { scan: false })),
        Just(Some(FieldAction::Emit { scan: true })),
        Just(Some(FieldAction::Mask(MaskRule::Redact))),
        Just(Some(FieldAction::Mask(MaskRule::Pseudonym))),
    ]
}

fn plan() -> impl Strategy<Value = FieldPlan> {
    prop::collection::vec(plan_action(), NAMES.len()).prop_map(|actions| FieldPlan {
        record_key: None,
        marks: None,
        fields: NAMES
            .iter()
            .zip(actions)
            .filter_map(|(n, a)| {
                a.map(|action| PlannedField {
                    name: (*n).into(),
                    action,
                })
            })
            .collect(),
        row_filter: None,
        key: PseudonymKey::derive(b"master", "acme", "hydrants"),
    })
}

fn reparse(pairs: &[(String, String)]) -> Result<ClientQuery, sluice_policy::query::QueryError> {
    ClientQuery::from_pairs(pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Printing a query and parsing it back gives the same query.
    #[test]
    fn print_then_parse_round_trips(q in printable_query()) {
        let pairs = q.to_pairs();
        prop_assert_eq!(reparse(&pairs), Ok(q));
    }

    /// Whatever parses prints to something that parses to the same query.
    #[test]
    fn parse_then_print_round_trips(pairs in prop::collection::vec((
        prop_oneof![name().prop_map(str::to_owned), Just("order".to_owned()), Just("select".to_owned())],
        "(not\\.)?(eq|neq|lt|in|like|is)\\.[(),\"\\\\a-c.*]{0,10}|[a-c.,]{1,8}",
    ), 0..5)) {
        if let Ok(q) = reparse(&pairs) {
            prop_assert_eq!(reparse(&q.to_pairs()), Ok(q));
        }
    }

    /// The licence's row filter ANDed to any client query: what passes is a subset of what
    /// the row filter alone lets through, and of what the client query alone lets through.
    #[test]
    fn a_client_query_never_widens_the_row_filter(rf in row_filter(), q in query(), rec in record()) {
        let value_of = |k: &str| rec.get(k).and_then(Val::as_field);
        let both = admits(Some(&rf), &q, value_of);
        let licensed = rf.matches(|k| value_of(k).and_then(|v| v.filter_text()));
        prop_assert!(!both || licensed, "widened: {} / {:?} / {:?}", rf, q.to_pairs(), rec);
        prop_assert!(!both || q.matches(value_of));
        prop_assert_eq!(admits(None, &q, value_of), q.matches(value_of));
    }

    /// Filters are a conjunction: adding a filter (a repeated column, an `in` list, a
    /// negation) never lets more records through.
    #[test]
    fn adding_a_filter_only_narrows(q in query(), extra in filter_on(name().prop_map(str::to_owned).boxed(), lit().boxed()), rec in record()) {
        let value_of = |k: &str| rec.get(k).and_then(Val::as_field);
        let mut more = q.clone();
        more.filters.push(extra);
        prop_assert!(!more.matches(value_of) || q.matches(value_of));
    }

    /// Null and absent values match no filter but `is.null`; composites only `not.is.null`;
    /// a number never matches an operand that is not a number, negated or not.
    #[test]
    fn nulls_and_type_mismatches_never_match(f in filter_on(name().prop_map(str::to_owned).boxed(), lit().boxed())) {
        let is_null = f.op == FilterOp::IsNull;
        prop_assert_eq!(f.matches(FieldValue::Null), is_null && !f.negated);
        prop_assert_eq!(f.matches(FieldValue::Composite), is_null && f.negated);
        let operands: Vec<&String> = match &f.op {
            FilterOp::Eq(v) | FilterOp::Neq(v) | FilterOp::Lt(v) | FilterOp::Lte(v)
            | FilterOp::Gt(v) | FilterOp::Gte(v) | FilterOp::Like(v) => vec![v],
            FilterOp::In(items) => items.iter().collect(),
            FilterOp::IsNull => vec![],
        };
        let numeric = |s: &str| sluice_policy::query::Decimal::parse(s).is_some();
        if !is_null && !operands.iter().any(|o| numeric(o)) {
            prop_assert!(!f.matches(FieldValue::Number("1")), "{:?}", f);
        }
        if !is_null && !operands.iter().any(|o| *o == "true" || *o == "false") {
            prop_assert!(!f.matches(FieldValue::Bool(true)), "{:?}", f);
        }
    }

    /// `not.op` is the complement of `op` exactly where `op` is defined (a non-null value of
    /// a comparable type), and false elsewhere.
    #[test]
    fn negation_is_sql_not(f in filter_on(name().prop_map(str::to_owned).boxed(), lit().boxed()), v in val()) {
        let mut neg = f.clone();
        neg.negated = !f.negated;
        let fv = v.as_field().unwrap_or(FieldValue::Null);
        prop_assert!(!(f.matches(fv) && neg.matches(fv)), "both {:?} and its negation match {:?}", f, v);
    }

    /// `authorize` accepts a query exactly when `select` names plan fields and every filter and
    /// order column is emitted in clear and unscanned; a refusal names a field that breaks it.
    #[test]
    fn authorize_refuses_every_non_clear_field(p in plan(), q in query()) {
        let in_plan = |c: &str| p.fields.iter().any(|f| f.name == c);
        let clear = |c: &str| p.fields.iter().any(|f| f.name == c && f.action == FieldAction::Emit { scan: false });
        let select_ok = q.select.iter().flatten().all(|s| in_plan(s));
        let touched: Vec<&String> = q.filters.iter().map(|f| &f.column).chain(q.order.iter().map(|o| &o.column)).collect();
        let filter_ok = touched.iter().all(|c| clear(c));
        match q.authorize(&p) {
            Ok(()) => prop_assert!(select_ok && filter_ok),
            Err(QueryRefusal::FieldNotAllowed { field }) => prop_assert!(!in_plan(&field)),
            Err(QueryRefusal::FieldNotFilterable { field }) => {
                prop_assert!(select_ok);
                prop_assert!(touched.contains(&&field) && !clear(&field));
            }
        }
    }

    /// No input panics the parser; whatever parses can be authorised and evaluated.
    #[test]
    fn random_input_never_panics(pairs in prop::collection::vec((".{0,10}", "(not\\.)?[a-z]{0,5}\\..{0,40}|.{0,40}"), 0..8), p in plan(), rec in record()) {
        if let Ok(q) = reparse(&pairs) {
            let _ = q.authorize(&p);
            let _ = q.matches(|k| rec.get(k).and_then(Val::as_field));
        }
    }
}

/// A JSON document of `records`, each with an `id` (its index) and its present values.
fn json_doc(records: &[Record]) -> String {
    let mut doc = String::from("[");
    for (i, rec) in records.iter().enumerate() {
        if i > 0 {
            doc.push(',');
        }
        doc.push_str(&format!("{{\"id\":\"r{i}\""));
        for (name, v) in rec {
            let text = match v {
                Val::Absent => continue,
                Val::Null => "null".to_owned(),
                Val::Bool(b) => b.to_string(),
                Val::Num(n) => n.clone(),
                Val::Str(s) => serde_json::to_string(s).unwrap(),
                Val::Composite => "[1,{\"x\":null}]".to_owned(),
            };
            doc.push_str(&format!(",\"{name}\":{text}"));
        }
        doc.push('}');
    }
    doc.push(']');
    doc
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The streaming masker with a client query (`Masker::filtered`) lets through exactly the
    /// records [`admits`] admits — the row filter AND the query on the original typed values —
    /// at any chunking.
    #[test]
    fn the_filtered_masker_keeps_exactly_what_admits_admits(
        rf in prop::option::of(row_filter()),
        q in query(),
        records in prop::collection::vec(record(), 0..12),
        cut in any::<usize>(),
    ) {
        use sluice_policy::stream::{InputFormat, Masker, MaskerLimits, OutputFormat};
        let plan = std::sync::Arc::new(FieldPlan {
            record_key: None,
            marks: None,
            fields: vec![PlannedField { name: "id".into(), action: FieldAction::Emit { scan: false } }],
            row_filter: rf.clone(),
            key: PseudonymKey::derive(b"k", "l", "d"),
        });
        let doc = json_doc(&records);
        let mut m = Masker::filtered(
            plan,
            Some(std::sync::Arc::new(q.clone())),
            InputFormat::JsonArray,
            OutputFormat::Ndjson,
            MaskerLimits::default(),
        );
        let mut out = Vec::new();
        let cut = cut % (doc.len() + 1);
        m.feed(&doc.as_bytes()[..cut], &mut out).unwrap();
        m.feed(&doc.as_bytes()[cut..], &mut out).unwrap();
        m.finish(&mut out).unwrap();
        let got: Vec<String> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_owned())
            .collect();
        let want: Vec<String> = records
            .iter()
            .enumerate()
            .filter(|(_, rec)| admits(rf.as_ref(), &q, |n| rec.get(n).and_then(Val::as_field)))
            .map(|(i, _)| format!("r{i}"))
            .collect();
        prop_assert_eq!(got, want, "{}", doc);
    }
}

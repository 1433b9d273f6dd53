//! Typed rows (`Masker::typed`, `RowBatch`) against the byte masker: the same values as
//! database rows and as a JSON array of objects give byte-identical output and the same
//! counts, under every plan, row filter, client filter and output format, however the rows
//! are split into batches. This is what makes a SQL source and an HTTP source of the same
//! data indistinguishable to a licensee.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use proptest::prelude::*;
use sluice_policy::mask::{MaskRule, PseudonymKey};
use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
use sluice_policy::query::{ClientQuery, Filter, FilterOp};
use sluice_policy::rowfilter::{Condition, Op, RowFilter};
use sluice_policy::stream::{InputFormat, Masker, MaskerLimits, OutputFormat, RowBatch};
use std::sync::Arc;

/// Column names: `c` is never planned (dropped), `id_number` carries identifiers.
const COLS: [&str; 5] = ["a", "b", "c", "district", "id_number"];

/// A typed cell.
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Number(String),
    Text(String),
}

impl Cell {
    fn push(&self, b: &mut RowBatch) {
        match self {
            Cell::Null => b.push_null(),
            Cell::Bool(v) => b.push_bool(*v),
            Cell::Int(i) => b.push_int(*i),
            Cell::Float(f) => b.push_float(*f),
            Cell::Number(n) => b.push_number(n).unwrap(),
            Cell::Text(t) => b.push_text(t),
        }
    }

    /// The cell as the JSON an HTTP source would send.
    fn json(&self) -> String {
        match self {
            Cell::Null => "null".into(),
            Cell::Bool(v) => v.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) if f.is_finite() => serde_json::to_string(f).unwrap(),
            Cell::Float(_) => "null".into(),
            Cell::Number(n) => n.clone(),
            Cell::Text(t) => serde_json::to_string(t).unwrap(),
        }
    }
}

const LITS: [&str; 14] = [
    "1", "1.0", "-0", "0", "2", "10", "abc", "", "null", "true", "Huangpu", "a\"b", "x\\y", "é\n",
];

fn lit() -> impl Strategy<Value = String> {
    prop_oneof![3 => prop::sample::select(&LITS[..]).prop_map(str::to_owned), 1 => ".{0,6}"]
}

fn cell() -> impl Strategy<Value = Cell> {
    prop_oneof![
        Just(Cell::Null),
        any::<bool>().prop_map(Cell::Bool),
        prop_oneof![any::<i64>(), -3i64..12].prop_map(Cell::Int),
        prop_oneof![
            any::<f64>(),
            prop::sample::select(&[0.5, 1.0, -0.0, 1e21, 1e-7, 2.5e-300, f64::NAN, f64::INFINITY][..])
        ]
        .prop_map(Cell::Float),
        prop::sample::select(&["1", "1.0", "-0", "10.25", "1e3", "0.000"][..])
            .prop_map(|s| Cell::Number(s.into())),
        prop_oneof![
            lit(),
            common::resident_id(),
            common::mobile().prop_map(|m| format!("call {m} now")),
            "\\PC{0,20}",
            "[\\x00-\\x1f\"\\\\/\u{7f}\u{2028}]{0,4}",
        ]
        .prop_map(Cell::Text),
    ]
}

fn action() -> impl Strategy<Value = Option<FieldAction>> {
    prop_oneof![
        Just(None),
        Just(Some(FieldAction::Emit { scan: false })),
        Just(Some(FieldAction::Emit { scan: true })),
        Just(Some(FieldAction::Mask(MaskRule::Redact))),
        Just(Some(FieldAction::Mask(MaskRule::Pseudonym))),
        Just(Some(FieldAction::Mask(MaskRule::Drop))),
    ]
}

fn plan() -> impl Strategy<Value = FieldPlan> {
    let cond = (
        prop::sample::select(&COLS[..]),
        prop::sample::select(&[Op::Eq, Op::Ne, Op::In][..]),
        prop::collection::vec(lit(), 1..3),
    )
        .prop_map(|(field, op, values)| Condition {
            field: field.into(),
            op,
            values,
        });
    (
        prop::collection::vec(action(), COLS.len()),
        prop::option::of(prop::collection::vec(cond, 1..3)),
    )
        .prop_map(|(actions, conds)| FieldPlan {
            record_key: None,
            marks: None,
            fields: COLS
                .iter()
                .zip(actions)
                .filter(|(n, _)| **n != "c")
                .filter_map(|(n, a)| {
                    a.map(|action| PlannedField {
                        name: (*n).into(),
                        action,
                    })
                })
                .collect(),
            row_filter: conds.map(|conditions| RowFilter { conditions }),
            key: PseudonymKey::derive(b"master", "acme", "register"),
        })
}

fn query() -> impl Strategy<Value = Option<ClientQuery>> {
    let op = prop_oneof![
        lit().prop_map(FilterOp::Eq),
        lit().prop_map(FilterOp::Lt),
        lit().prop_map(FilterOp::Gte),
        prop::collection::vec(lit(), 1..4).prop_map(FilterOp::In),
        lit().prop_map(FilterOp::Like),
        Just(FilterOp::IsNull),
    ];
    let filter = (prop::sample::select(&COLS[..]), any::<bool>(), op).prop_map(|(c, negated, op)| Filter {
        column: c.into(),
        negated,
        op,
    });
    prop::option::of(
        prop::collection::vec(filter, 1..3).prop_map(|filters| ClientQuery {
            filters,
            ..ClientQuery::default()
        }),
    )
}

fn output() -> impl Strategy<Value = OutputFormat> {
    prop::sample::select(&[OutputFormat::Json, OutputFormat::Ndjson, OutputFormat::Csv][..])
}

fn limits(max: Option<u64>) -> MaskerLimits {
    MaskerLimits {
        max_records: max,
        ..MaskerLimits::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn typed_rows_mask_exactly_as_the_same_json_records(
        rows in prop::collection::vec(prop::collection::vec(cell(), COLS.len()), 0..8),
        order in Just(COLS).prop_shuffle(),
        plan in plan(),
        query in query(),
        out_fmt in output(),
        max in prop::option::of(0u64..6),
        batch_rows in 1usize..4,
    ) {
        let plan = Arc::new(plan);
        let query = query.map(Arc::new);
        // The HTTP source's body: the columns as members, in the database's column order.
        let mut doc = String::from("[");
        for (r, row) in rows.iter().enumerate() {
            if r > 0 { doc.push(','); }
            doc.push('{');
            for (k, name) in order.iter().enumerate() {
                if k > 0 { doc.push(','); }
                doc.push_str(&format!("\"{name}\":{}", row[COLS.iter().position(|c| c == name).unwrap()].json()));
            }
            doc.push('}');
        }
        doc.push(']');
        let mut bytes = Masker::filtered(plan.clone(), query.clone(), InputFormat::JsonArray, out_fmt, limits(max));
        let mut want = Vec::new();
        bytes.feed(doc.as_bytes(), &mut want).unwrap();
        let want_stats = bytes.finish(&mut want).unwrap();

        let mut typed = Masker::typed(plan, query, &order, out_fmt, limits(max));
        let mut got = Vec::new();
        let mut batch = RowBatch::new(COLS.len());
        for chunk in rows.chunks(batch_rows) {
            batch.clear();
            for row in chunk {
                for name in &order {
                    row[COLS.iter().position(|c| c == name).unwrap()].push(&mut batch);
                }
            }
            typed.push_rows(&batch, &mut got).unwrap();
        }
        let got_stats = typed.finish(&mut got).unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want), "doc {}", doc);
        prop_assert_eq!(got_stats.records_out, want_stats.records_out);
        prop_assert_eq!(got_stats.records_filtered, want_stats.records_filtered);
        prop_assert_eq!(got_stats.fields_masked, want_stats.fields_masked);
        prop_assert_eq!(got_stats.detector_hits, want_stats.detector_hits);
    }
}

#[test]
fn a_row_of_the_wrong_width_or_a_byte_masker_is_refused() {
    let plan = Arc::new(FieldPlan {
        record_key: None,
        marks: None,
        fields: vec![PlannedField {
            name: "a".into(),
            action: FieldAction::Emit { scan: false },
        }],
        row_filter: None,
        key: PseudonymKey::derive(b"m", "l", "d"),
    });
    let mut out = Vec::new();
    let mut m = Masker::typed(plan.clone(), None, &["a", "b"], OutputFormat::Json, limits(None));
    let mut b = RowBatch::new(2);
    b.push_int(1);
    assert!(m.push_rows(&b, &mut out).is_err(), "half a row");
    let mut m = Masker::typed(plan.clone(), None, &["a"], OutputFormat::Json, limits(None));
    assert!(
        m.push_rows(&b, &mut out).is_err(),
        "two cells per row for one column"
    );
    let mut m = Masker::new(plan, InputFormat::JsonArray, OutputFormat::Json, limits(None));
    let mut one = RowBatch::new(1);
    one.push_int(1);
    assert!(
        m.push_rows(&one, &mut out).is_err(),
        "rows given to a byte masker"
    );
    assert!(RowBatch::new(1).push_number("NaN").is_err());
    assert!(RowBatch::new(1).push_number("+1").is_err());
}

#[test]
fn typed_rows_stop_at_the_page_and_emit_only_planned_fields() {
    let plan = Arc::new(FieldPlan {
        record_key: None,
        marks: None,
        fields: vec![
            PlannedField {
                name: "id".into(),
                action: FieldAction::Emit { scan: false },
            },
            PlannedField {
                name: "name".into(),
                action: FieldAction::Mask(MaskRule::Redact),
            },
        ],
        row_filter: None,
        key: PseudonymKey::derive(b"m", "l", "d"),
    });
    let mut m = Masker::typed(
        plan,
        None,
        &["secret", "id", "name"],
        OutputFormat::Json,
        limits(Some(2)),
    );
    let mut b = RowBatch::new(3);
    for i in 0..5 {
        b.push_text("31010119900101123X");
        b.push_int(i);
        b.push_text("Zhang \"San\"");
    }
    let mut out = Vec::new();
    m.push_rows(&b, &mut out).unwrap();
    assert!(m.is_full());
    let stats = m.finish(&mut out).unwrap();
    assert_eq!(stats.records_out, 2);
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("31010119900101123X"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["id"], 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Pages made by skipping `offset` passing records are the slices of the whole filtered
    /// output: every passing record once, in order, whatever the filters drop.
    #[test]
    fn skipped_pages_tile_the_filtered_records(
        rows in prop::collection::vec(prop::collection::vec(cell(), COLS.len()), 0..12),
        plan in plan(),
        query in query(),
        page in 1u64..5,
    ) {
        let plan = Arc::new(plan);
        let query = query.map(Arc::new);
        let mut ndjson = String::new();
        for row in &rows {
            let members: Vec<String> = COLS.iter().zip(row).map(|(n, c)| format!("\"{n}\":{}", c.json())).collect();
            ndjson.push_str(&format!("{{{}}}\n", members.join(",")));
        }
        let run = |skip: u64, max: Option<u64>| {
            let mut m = Masker::filtered(plan.clone(), query.clone(), InputFormat::Ndjson, OutputFormat::Ndjson, limits(max))
                .skip_records(skip);
            let mut out = Vec::new();
            m.feed(ndjson.as_bytes(), &mut out).unwrap();
            let stats = m.finish(&mut out).unwrap();
            (String::from_utf8(out).unwrap(), stats)
        };
        let (whole, all) = run(0, None);
        let mut tiled = String::new();
        let mut offset = 0;
        for _ in 0..20 {
            let (p, stats) = run(offset, Some(page));
            prop_assert!(stats.records_out <= page);
            prop_assert_eq!(stats.records_skipped, offset.min(all.records_out));
            tiled.push_str(&p);
            offset += page;
            if stats.records_out < page { break; }
        }
        prop_assert_eq!(tiled, whole);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Records sent as several documents (an API's pages) mask exactly as one document of
    /// them all, in every input format: the output is one document.
    #[test]
    fn several_documents_mask_as_one(
        rows in prop::collection::vec(prop::collection::vec(cell(), COLS.len()), 0..12),
        cuts in prop::collection::vec(0usize..12, 0..4),
        plan in plan(),
        query in query(),
        input in 0usize..4,
        out_fmt in output(),
    ) {
        let plan = Arc::new(plan);
        let query = query.map(Arc::new);
        let (fmt, doc): (InputFormat, Render) = match input {
            0 => (InputFormat::JsonArray, |rows| {
                let recs: Vec<String> = rows.iter().map(|r| json_record(r)).collect();
                format!("[{}]", recs.join(","))
            }),
            1 => (InputFormat::JsonAt(vec!["data".into()]), |rows| {
                let recs: Vec<String> = rows.iter().map(|r| json_record(r)).collect();
                format!("{{\"data\":[{}],\"next\":null}}", recs.join(","))
            }),
            2 => (InputFormat::Ndjson, |rows| rows.iter().map(|r| json_record(r) + "\n").collect()),
            _ => (InputFormat::Csv, |rows| {
                let mut out = COLS.join(",") + "\n";
                for r in rows {
                    let cells: Vec<String> = r.iter().map(|c| match c {
                        Cell::Null => String::new(),
                        Cell::Text(t) => format!("\"{}\"", t.replace('"', "\"\"")),
                        other => other.json(),
                    }).collect();
                    out.push_str(&cells.join(","));
                    out.push('\n');
                }
                out
            }),
        };
        let mut whole = Masker::filtered(plan.clone(), query.clone(), fmt.clone(), out_fmt, limits(None));
        let mut want = Vec::new();
        let one = doc(&rows);
        let w = whole.feed(one.as_bytes(), &mut want).and_then(|()| whole.finish(&mut want));
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (rows.len() + 1)).collect();
        bounds.sort_unstable();
        bounds.push(rows.len());
        let mut paged = Masker::filtered(plan, query, fmt, out_fmt, limits(None));
        let mut got = Vec::new();
        let mut at = 0;
        let mut g = Ok(());
        for (k, b) in bounds.iter().enumerate() {
            if k > 0 {
                g = g.and_then(|()| paged.next_document(&mut got));
            }
            g = g.and_then(|()| paged.feed(doc(&rows[at..*b]).as_bytes(), &mut got));
            at = *b;
        }
        let g = g.and_then(|()| paged.finish(&mut got));
        prop_assert_eq!(g.is_ok(), w.is_ok(), "{:?} vs {:?}", g, w);
        if let (Ok(gs), Ok(ws)) = (g, w) {
            prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
            prop_assert_eq!(gs.records_out, ws.records_out);
        }
    }
}

/// Renders rows as one input document.
type Render = fn(&[Vec<Cell>]) -> String;

fn json_record(row: &[Cell]) -> String {
    let members: Vec<String> = COLS
        .iter()
        .zip(row)
        .map(|(n, c)| format!("\"{n}\":{}", c.json()))
        .collect();
    format!("{{{}}}", members.join(","))
}

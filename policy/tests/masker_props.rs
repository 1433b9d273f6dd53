//! Property tests of the streaming masker: random records, plans and chunkings.
//!
//! (a) the output parses and each record holds exactly the planned fields present in the input
//!     record (first occurrence), emitted values unchanged;
//! (b) no value of a dropped or masked field appears verbatim in the output;
//! (c) the output is the same for every chunking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{json_str, read_csv, run};
use proptest::prelude::*;
use serde_json::Value;
use sluice_policy::mask::{MaskRule, PseudonymKey};
use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
use sluice_policy::stream::{InputFormat, OutputFormat};
use std::sync::Arc;

/// Field names, some needing escapes in JSON.
const KEYS: &[&str] = &[
    "id",
    "name",
    "k\"q",
    "back\\slash",
    "ké",
    "tab\there",
    "😀",
    "a_rather_long_field_name",
    "",
];

/// A distinctive string: a marker core of 12 alphanumerics, maybe wrapped in characters that
/// need escaping.
fn distinct() -> impl Strategy<Value = String> {
    (
        "[a-z0-9]{12}",
        prop::sample::select(vec!["", "\"", "\\", "\n", "é", "😀", ",", "\u{1}"]),
    )
        .prop_map(|(core, wrap)| format!("{wrap}MK{core}{wrap}"))
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        4 => distinct().prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::from),
        1 => (-1_000_000i64..1_000_000).prop_map(|n| Value::from(n as f64 / 64.0)),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((distinct(), inner), 0..3)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

type Rec = Vec<(usize, Value)>;

fn record() -> impl Strategy<Value = Rec> {
    prop::collection::vec((0..KEYS.len(), value()), 0..8)
}

fn rule() -> impl Strategy<Value = FieldAction> {
    prop_oneof![
        3 => Just(FieldAction::Emit { scan: false }),
        1 => Just(FieldAction::Mask(MaskRule::Redact)),
        1 => Just(FieldAction::Mask(MaskRule::Null)),
        1 => Just(FieldAction::Mask(MaskRule::Pseudonym)),
        1 => (0usize..3, 0usize..3).prop_map(|(first, last)| FieldAction::Mask(MaskRule::Partial { first, last })),
    ]
}

/// A plan over a random subset of the keys, in random order.
fn plan() -> impl Strategy<Value = Vec<(usize, FieldAction)>> {
    (
        Just((0..KEYS.len()).collect::<Vec<_>>()).prop_shuffle(),
        prop::collection::vec((any::<bool>(), rule()), KEYS.len()),
    )
        .prop_map(|(order, picks)| {
            order
                .into_iter()
                .zip(picks)
                .filter(|(_, (keep, _))| *keep)
                .map(|(k, (_, a))| (k, a))
                .collect()
        })
}

fn field_plan(p: &[(usize, FieldAction)]) -> Arc<FieldPlan> {
    Arc::new(FieldPlan {
        record_key: None,
        marks: None,
        fields: p
            .iter()
            .map(|(k, a)| PlannedField {
                name: KEYS[*k].to_owned(),
                action: a.clone(),
            })
            .collect(),
        row_filter: None,
        key: PseudonymKey::derive(b"props", "licensee", "dataset"),
    })
}

/// Writes records as a JSON array or NDJSON, with duplicate keys kept and optional escapes
/// and whitespace.
fn json_doc(recs: &[Rec], ndjson: bool, esc: bool, ws: bool) -> String {
    let sp = if ws { " " } else { "" };
    let mut s = String::new();
    if !ndjson {
        s.push('[');
        s.push_str(sp);
    }
    for (n, r) in recs.iter().enumerate() {
        if n > 0 {
            s.push_str(if ndjson { "\n" } else { "," });
            s.push_str(sp);
        }
        s.push('{');
        for (m, (k, v)) in r.iter().enumerate() {
            if m > 0 {
                s.push(',');
            }
            s.push_str(sp);
            s.push_str(&json_str(KEYS[*k], esc && m % 2 == 0));
            s.push_str(sp);
            s.push(':');
            s.push_str(sp);
            if ws {
                s.push_str(&serde_json::to_string_pretty(v).unwrap());
            } else {
                s.push_str(&v.to_string());
            }
        }
        s.push_str(sp);
        s.push('}');
    }
    if !ndjson {
        s.push(']');
    }
    s
}

/// The first value of each planned field in a record.
fn first_values<'a>(r: &'a Rec, plan: &[(usize, FieldAction)]) -> Vec<Option<&'a Value>> {
    plan.iter()
        .map(|(k, _)| r.iter().find(|(rk, _)| rk == k).map(|(_, v)| v))
        .collect()
}

/// The marker cores of every string in a value.
fn markers(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(p) = s.find("MK") {
                out.push(s[p..p + 14].to_owned());
            }
        }
        Value::Array(a) => a.iter().for_each(|v| markers(v, out)),
        Value::Object(o) => o.iter().for_each(|(k, v)| {
            markers(&Value::String(k.clone()), out);
            markers(v, out);
        }),
        _ => {}
    }
}

fn csv_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn json_inputs(
        recs in prop::collection::vec(record(), 0..6),
        p in plan(),
        ndjson in any::<bool>(),
        esc in any::<bool>(),
        ws in any::<bool>(),
        out_fmt in prop::sample::select(vec![OutputFormat::Json, OutputFormat::Ndjson, OutputFormat::Csv]),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let doc = json_doc(&recs, ndjson, esc, ws);
        let input = if ndjson { InputFormat::Ndjson } else { InputFormat::JsonArray };
        let plan = field_plan(&p);
        let whole = run(&plan, &input, out_fmt, doc.as_bytes(), &[]).unwrap().0;
        // (c) every chunking gives the same output.
        prop_assert_eq!(&run(&plan, &input, out_fmt, doc.as_bytes(), &cuts).unwrap().0, &whole);
        let text = String::from_utf8(whole).unwrap();

        // (a) the output parses; each record holds the planned fields present in the input.
        let out_recs: Vec<Vec<Option<Value>>> = match out_fmt {
            OutputFormat::Json | OutputFormat::Ndjson => {
                let objs: Vec<serde_json::Map<String, Value>> = if out_fmt == OutputFormat::Json {
                    serde_json::from_str(&text).unwrap()
                } else {
                    prop_assert!(text.is_empty() || text.ends_with('\n'));
                    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
                };
                for o in &objs {
                    prop_assert!(o.keys().all(|k| p.iter().any(|(pk, _)| KEYS[*pk] == k)));
                }
                objs.into_iter().map(|o| p.iter().map(|(k, _)| o.get(KEYS[*k]).cloned()).collect()).collect()
            }
            OutputFormat::Csv => {
                let rows = read_csv(&text);
                let header: Vec<String> = if p.is_empty() {
                    vec![String::new()]
                } else {
                    p.iter().map(|(k, _)| KEYS[*k].to_owned()).collect()
                };
                prop_assert_eq!(&rows[0], &header);
                rows[1..].iter().map(|r| {
                    assert_eq!(r.len(), p.len().max(1));
                    r.iter().map(|c| Some(Value::String(c.clone()))).collect()
                }).collect()
            }
        };
        prop_assert_eq!(out_recs.len(), recs.len());
        let mut hidden = Vec::new();
        for (r, o) in recs.iter().zip(&out_recs) {
            for (((_, action), input), output) in p.iter().zip(first_values(r, &p)).zip(o) {
                match (input, output, action) {
                    (None, None, _) => {}
                    (None, Some(Value::String(c)), _) if out_fmt == OutputFormat::Csv => prop_assert_eq!(c, ""),
                    (Some(v), Some(w), FieldAction::Emit { .. }) => {
                        if out_fmt == OutputFormat::Csv {
                            prop_assert_eq!(&csv_text(v), w.as_str().unwrap());
                        } else {
                            prop_assert_eq!(v, w);
                        }
                    }
                    (Some(v), Some(_), FieldAction::Mask(_)) => markers(v, &mut hidden),
                    (i, o, a) => prop_assert!(false, "input {:?} output {:?} for {:?}", i, o, a),
                }
            }
            // Values of fields the plan does not hold, and later duplicates.
            for (n, (k, v)) in r.iter().enumerate() {
                let first = r.iter().position(|(rk, _)| rk == k) == Some(n);
                if !first || !p.iter().any(|(pk, _)| pk == k) {
                    markers(v, &mut hidden);
                }
            }
        }
        // (b) no dropped or masked value appears verbatim.
        for m in hidden {
            prop_assert!(!text.contains(&m), "{} leaked in {}", m, text);
        }
    }

    #[test]
    fn csv_inputs(
        rows in prop::collection::vec(prop::collection::vec(distinct(), 4), 0..6),
        p in plan(),
        crlf in any::<bool>(),
        out_fmt in prop::sample::select(vec![OutputFormat::Json, OutputFormat::Ndjson, OutputFormat::Csv]),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        // Columns: the first four keys; the plan may name others (absent everywhere).
        let cell = |s: &str| if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() };
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut doc = KEYS[..4].iter().map(|k| cell(k)).collect::<Vec<_>>().join(",") + nl;
        for r in &rows {
            doc.push_str(&(r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(",") + nl));
        }
        let plan = field_plan(&p);
        let whole = run(&plan, &InputFormat::Csv, out_fmt, doc.as_bytes(), &[]).unwrap().0;
        prop_assert_eq!(&run(&plan, &InputFormat::Csv, out_fmt, doc.as_bytes(), &cuts).unwrap().0, &whole);
        let text = String::from_utf8(whole).unwrap();
        let out_rows: Vec<Vec<Option<String>>> = match out_fmt {
            OutputFormat::Csv => read_csv(&text)[1..].iter().map(|r| r.iter().map(|c| Some(c.clone())).collect()).collect(),
            _ => {
                let objs: Vec<serde_json::Map<String, Value>> = if out_fmt == OutputFormat::Json {
                    serde_json::from_str(&text).unwrap()
                } else {
                    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
                };
                objs.iter().map(|o| p.iter().map(|(k, _)| o.get(KEYS[*k]).map(|v| v.as_str().unwrap_or("?").to_owned())).collect()).collect()
            }
        };
        prop_assert_eq!(out_rows.len(), rows.len());
        for (r, o) in rows.iter().zip(&out_rows) {
            for ((k, action), got) in p.iter().zip(o) {
                let src = (*k < 4).then(|| &r[*k]);
                match (src, action) {
                    (None, _) => prop_assert!(got.is_none() || got.as_deref() == Some("")),
                    (Some(v), FieldAction::Emit { .. }) => prop_assert_eq!(got.as_deref(), Some(v.as_str())),
                    (Some(_), FieldAction::Mask(_) | FieldAction::Fingerprint { .. }) => {}
                }
            }
            for (c, v) in r.iter().enumerate() {
                let emitted = p.iter().any(|(k, a)| *k == c && matches!(a, FieldAction::Emit { .. }));
                if !emitted {
                    let m = &v[v.find("MK").unwrap()..][..14];
                    prop_assert!(!text.contains(m), "{} leaked in {}", m, text);
                }
            }
        }
    }
}

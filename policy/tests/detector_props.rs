//! Property tests of the detector safety net in the streaming masker (issue 11, item 5), and of
//! the body shapes found with it: invalid UTF-8 in envelope member names, a BOM before a
//! quoted CSV header.
//!
//! (a) Identifiers planted in a `scan = true` field — in strings, member names and numbers at
//!     any depth, next to decimals, dashes, CJK text — leave exactly as the documented masked
//!     text, in JSON, NDJSON and CSV output from JSON, NDJSON, enveloped JSON and CSV input,
//!     at any chunking; the output stays valid JSON / CSV and counts one hit per identifier.
//! (b) A body with invalid UTF-8 in a member name — on the envelope before or after the
//!     records, nested in a skipped member, inside a record — is refused with the same
//!     `invalid UTF-8` error at every split, and no record leaves before it when it comes first.
//! (c) A CSV body with a BOM before its (quoted) header gives the output it gives without.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{csv_cell, json_str, read_csv, read_json, run, run_at_every_split, text, tree};
use proptest::prelude::*;
use serde_json::Value;
use sluice_policy::mask::{MaskRule, PseudonymKey};
use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
use sluice_policy::stream::{InputFormat, MaskError, OutputFormat};
use std::sync::Arc;

/// `id` in the clear, `notes` scanned, `memo` masked; anything else (`secret`) is dropped.
fn plan() -> Arc<FieldPlan> {
    let f = |name: &str, action: FieldAction| PlannedField {
        name: name.to_owned(),
        action,
    };
    Arc::new(FieldPlan {
        record_key: None,
        marks: None,
        fields: vec![
            f("id", FieldAction::Emit { scan: false }),
            f("notes", FieldAction::Emit { scan: true }),
            f("memo", FieldAction::Mask(MaskRule::Redact)),
        ],
        row_filter: None,
        key: PseudonymKey::derive(b"props", "licensee", "dataset"),
    })
}

fn outputs() -> impl Strategy<Value = OutputFormat> {
    prop::sample::select(vec![OutputFormat::Json, OutputFormat::Ndjson, OutputFormat::Csv])
}

/// The expected id, `notes` value and `notes` CSV cell (`None`: compare as JSON) of a record.
type Expected = (String, Value, Option<String>);

/// Checks one successful output against the expected records.
fn check_output(text: &str, out_fmt: OutputFormat, expected: &[Expected]) -> Result<(), TestCaseError> {
    if out_fmt == OutputFormat::Csv {
        let rows = read_csv(text);
        prop_assert_eq!(&rows[0], &vec!["id".to_owned(), "notes".into(), "memo".into()]);
        prop_assert_eq!(rows.len() - 1, expected.len());
        for (row, (id, notes, cell)) in rows[1..].iter().zip(expected) {
            prop_assert_eq!(&row[0], id);
            match cell {
                Some(cell) => prop_assert_eq!(&row[1], cell),
                // A composite is written as its compact JSON text.
                None => {
                    let got: Value = serde_json::from_str(&row[1]).expect("a composite cell is JSON");
                    prop_assert_eq!(&got, notes);
                }
            }
            prop_assert_eq!(&row[2], "***");
        }
    } else {
        let recs = read_json(text, out_fmt);
        prop_assert_eq!(recs.len(), expected.len());
        for (r, (id, notes, _)) in recs.iter().zip(expected) {
            prop_assert_eq!(r.get("id"), Some(&Value::String(id.clone())));
            prop_assert_eq!(r.get("notes"), Some(notes));
            prop_assert_eq!(r.get("memo"), Some(&Value::String("***".into())));
            prop_assert_eq!(r.len(), 3);
        }
    }
    Ok(())
}

/// Asserts that no planted identifier is in the output as written.
fn check_no_leak(text: &str, planted: &[String]) -> Result<(), TestCaseError> {
    for p in planted {
        prop_assert!(!text.contains(p.as_str()), "{} left unmasked in {}", p, text);
    }
    Ok(())
}

/// Invalid UTF-8 sequences: a surrogate, bytes never valid, an overlong form, a stray
/// continuation byte, sequences cut short by ASCII.
const BAD: &[&[u8]] = &[
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xff",
    b"\xfe",
    b"\xc0\x80",
    b"\xe0\x80\x80",
    b"\x80",
    b"\xf5\x80\x80\x80",
    b"\xe4\xb8",
    b"\xf0\x9f\x98",
    b"\xc3",
];

/// Where the bad member name goes.
#[derive(Debug, Clone, Copy)]
enum Where {
    /// An envelope member before the records.
    Before,
    /// An envelope member after the records.
    After,
    /// A name inside the value of a skipped envelope member, before the records.
    NestedBefore,
    /// A sibling of the record array inside the enveloping object (`data.items`).
    Sibling,
    /// A member name of the first record.
    InRecord,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// (a) JSON, NDJSON and enveloped input: every planted identifier is masked as documented.
    #[test]
    fn scanned_json_values_mask_every_identifier(
        recs in prop::collection::vec((tree(), text(), text()), 0..5),
        shape in 0u8..3,
        esc in any::<bool>(),
        out_fmt in outputs(),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut doc = String::new();
        let mut expected = Vec::new();
        let mut planted = Vec::new();
        let mut sep = "";
        for (n, (notes, memo, secret)) in recs.iter().enumerate() {
            doc.push_str(sep);
            sep = if shape == 1 { "\n" } else { "," };
            let id = format!("R{n}");
            doc.push_str(&format!("{{\"id\":\"{id}\",\"notes\":"));
            notes.json(esc, &mut doc);
            doc.push_str(&format!(",\"memo\":{},\"secret\":{}}}", json_str(&memo.raw, esc), json_str(&secret.raw, esc)));
            expected.push((id, notes.expected(), notes.cell()));
            notes.idents(&mut planted);
            planted.extend(memo.idents.iter().chain(&secret.idents).cloned());
        }
        let (doc, input) = match shape {
            0 => (format!("[{doc}]"), InputFormat::JsonArray),
            1 => (doc, InputFormat::Ndjson),
            _ => (
                format!("{{\"meta\":{{\"n\":1}},\"data\":[{doc}],\"tail\":[]}}"),
                InputFormat::JsonAt(vec!["data".into()]),
            ),
        };
        let plan = plan();
        let (out, stats) = run(&plan, &input, out_fmt, doc.as_bytes(), &[]).expect("valid input");
        prop_assert_eq!(run(&plan, &input, out_fmt, doc.as_bytes(), &cuts), Ok((out.clone(), stats)));
        let text = String::from_utf8(out).unwrap();
        check_output(&text, out_fmt, &expected)?;
        check_no_leak(&text, &planted)?;
        let mut scanned = Vec::new();
        recs.iter().for_each(|(notes, _, _)| notes.idents(&mut scanned));
        prop_assert_eq!(stats.detector_hits, scanned.len() as u64);
    }

    /// (a) CSV input (with or without a BOM, header cells quoted or not): every planted
    /// identifier in a scanned cell is masked as documented.
    #[test]
    fn scanned_csv_cells_mask_every_identifier(
        rows in prop::collection::vec((text(), text(), text()), 0..5),
        bom in any::<bool>(),
        quote in any::<bool>(),
        crlf in any::<bool>(),
        out_fmt in outputs(),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut doc = String::from(if bom { "\u{feff}" } else { "" });
        doc.push_str(&["secret", "notes", "id", "memo"].map(|h| csv_cell(h, quote)).join(","));
        doc.push_str(nl);
        let mut expected = Vec::new();
        let mut planted = Vec::new();
        for (n, (notes, memo, secret)) in rows.iter().enumerate() {
            let id = format!("R{n}");
            doc.push_str(&[&secret.raw, &notes.raw, &id, &memo.raw].map(|c| csv_cell(c, false)).join(","));
            doc.push_str(nl);
            expected.push((id, Value::String(notes.masked.clone()), Some(notes.masked.clone())));
            planted.extend(notes.idents.iter().chain(&memo.idents).chain(&secret.idents).cloned());
        }
        let plan = plan();
        let (out, stats) = run(&plan, &InputFormat::Csv, out_fmt, doc.as_bytes(), &[]).expect("valid input");
        prop_assert_eq!(run(&plan, &InputFormat::Csv, out_fmt, doc.as_bytes(), &cuts), Ok((out.clone(), stats)));
        let text = String::from_utf8(out).unwrap();
        check_output(&text, out_fmt, &expected)?;
        check_no_leak(&text, &planted)?;
        prop_assert_eq!(stats.detector_hits, rows.iter().map(|(n, _, _)| n.idents.len() as u64).sum::<u64>());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// (b) Invalid UTF-8 in a member name is an upstream error at every split.
    #[test]
    fn invalid_utf8_in_a_member_name_is_refused_at_every_split(
        bad in prop::sample::select(BAD),
        at in prop::sample::select(vec![Where::Before, Where::After, Where::NestedBefore, Where::Sibling, Where::InRecord]),
        before in "[a-z]{0,3}",
        after in "[a-z]{0,3}",
        n in 1usize..3,
        out_fmt in outputs(),
    ) {
        let mut name = before.into_bytes();
        name.extend_from_slice(bad);
        name.extend_from_slice(after.as_bytes());
        let member = |value: &str| [b"\"".as_slice(), &name, b"\":", value.as_bytes()].concat();
        let recs: Vec<Vec<u8>> = (0..n)
            .map(|k| {
                let rec = format!("{{\"id\":\"REC{k}\",\"notes\":\"x\"}}").into_bytes();
                if k == 0 && matches!(at, Where::InRecord) {
                    [b"{".as_slice(), &member("1"), b",", &rec[1..]].concat()
                } else {
                    rec
                }
            })
            .collect();
        let array = [b"[".as_slice(), &recs.join(b",".as_slice()), b"]"].concat();
        let sibling = matches!(at, Where::Sibling);
        let inner = if sibling {
            [b"{\"items\":".as_slice(), &array, b",", &member("true"), b"}"].concat()
        } else {
            array
        };
        let doc = match at {
            Where::Before => [b"{".as_slice(), &member("1"), b",\"data\":", &inner, b"}"].concat(),
            Where::After => [b"{\"data\":".as_slice(), &inner, b",", &member("[]"), b"}"].concat(),
            Where::NestedBefore => {
                [b"{\"meta\":{\"a\":[{".as_slice(), &member("null"), b"}]},\"data\":", &inner, b"}"].concat()
            }
            Where::Sibling | Where::InRecord => [b"{\"data\":".as_slice(), &inner, b"}"].concat(),
        };
        let path: Vec<String> = if sibling { vec!["data".into(), "items".into()] } else { vec!["data".into()] };
        let input = InputFormat::JsonAt(path);
        let res = run_at_every_split(&plan(), &input, out_fmt, &doc)?;
        let Err((out, err)) = res else {
            return Err(TestCaseError::fail(format!("accepted {:?}", String::from_utf8_lossy(&doc))));
        };
        prop_assert!(matches!(err, MaskError::InvalidJson { msg: "invalid UTF-8", .. }), "{:?}", err);
        if matches!(at, Where::Before | Where::NestedBefore | Where::InRecord) {
            prop_assert!(!String::from_utf8_lossy(&out).contains("REC"), "a record left before the error");
        }
    }

    /// (c) A BOM before the header changes nothing, at every split.
    #[test]
    fn bom_before_a_quoted_header_is_accepted(
        rows in prop::collection::vec(prop::collection::vec("[a-z ,\"]{0,4}", 4), 0..3),
        quoted in prop::collection::vec(any::<bool>(), 4),
        crlf in any::<bool>(),
        out_fmt in outputs(),
    ) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let header = ["id", "notes", "memo", "secret"];
        // The first header cell is always quoted: the shape of the finding.
        let mut doc = header.iter().zip(&quoted).enumerate()
            .map(|(n, (h, q))| csv_cell(h, n == 0 || *q))
            .collect::<Vec<_>>()
            .join(",");
        doc.push_str(nl);
        for r in &rows {
            doc.push_str(&r.iter().map(|c| csv_cell(c, c.is_empty())).collect::<Vec<_>>().join(","));
            doc.push_str(nl);
        }
        let with_bom = format!("\u{feff}{doc}");
        let plan = plan();
        let plain = run(&plan, &InputFormat::Csv, out_fmt, doc.as_bytes(), &[]);
        prop_assert!(plain.is_ok(), "{:?}", plain);
        let bom = run_at_every_split(&plan, &InputFormat::Csv, out_fmt, with_bom.as_bytes())?;
        // Stats count the BOM's three input bytes.
        let strip = |r: common::RunResult| r.map(|(o, mut s)| { s.bytes_in = 0; (o, s) });
        prop_assert_eq!(strip(bom), strip(plain));
    }
}

/// The shapes of issue 11, item 5, as written there.
#[test]
fn the_item_5_examples() {
    let plan = plan();
    for (doc, leak) in [
        (r#"[{"id":"R1","notes":[13800138000]}]"#, "13800138000"),
        (r#"[{"id":"R2","notes":{"13800138000":"x"}}]"#, "13800138000"),
        (r#"[{"id":"R3","notes":"tel 13800138000 3.5"}]"#, "13800138000"),
        (r#"[{"id":"R4","notes":"3.5 13800138000"}]"#, "13800138000"),
        (
            r#"[{"id":"R5","notes":"联系13800138000-2.5米处"}]"#,
            "13800138000",
        ),
        (
            r#"[{"id":"R6","notes":"v1.2 11010519491231002X"}]"#,
            "11010519491231002X",
        ),
    ] {
        for out_fmt in [OutputFormat::Json, OutputFormat::Csv] {
            let (out, _) = run(&plan, &InputFormat::JsonArray, out_fmt, doc.as_bytes(), &[]).unwrap();
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains(leak), "{doc} → {out}");
        }
    }
}

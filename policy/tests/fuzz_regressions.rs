//! Regression tests for inputs found by the cargo-fuzz targets in `policy/fuzz/`.
//!
//! Each test replays a minimised crashing input with the same check the target runs. Tests of
//! findings not fixed yet are `#[ignore]`d with the reason; remove the `ignore` with the fix
//! (and the matching tolerance in `policy/fuzz/src/masker.rs`, see `KNOWN_ISSUES`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_policy::mask::{MaskRule, PseudonymKey};
use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
use sluice_policy::stream::{InputFormat, MaskError, MaskStats, Masker, MaskerLimits, OutputFormat};
use std::sync::Arc;

/// A small plan with a clear, a masked and a scanned field.
fn plan() -> Arc<FieldPlan> {
    let f = |name: &str, action: FieldAction| PlannedField {
        name: name.to_owned(),
        action,
    };
    Arc::new(FieldPlan {
        fields: vec![
            f("id", FieldAction::Emit { scan: false }),
            f("adopter_mobile", FieldAction::Mask(MaskRule::Pseudonym)),
            f("notes", FieldAction::Emit { scan: true }),
        ],
        row_filter: None,
        key: PseudonymKey::derive(b"fuzz master secret", "acme", "hydrants"),
    })
}

/// Feeds `chunks` then finishes; returns the output and the result.
fn run(
    input: &InputFormat,
    output: OutputFormat,
    chunks: &[&[u8]],
) -> (Vec<u8>, Result<MaskStats, MaskError>) {
    let mut m = Masker::new(plan(), input.clone(), output, MaskerLimits::default());
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = m.feed(c, &mut out) {
            return (out, Err(e));
        }
    }
    let res = m.finish(&mut out);
    (out, res)
}

/// The fuzz targets' chunking invariant: the same output and the same result (errors included)
/// whole, split at every position, and byte by byte.
fn assert_same_at_all_splits(input: InputFormat, doc: &[u8]) {
    let whole = run(&input, OutputFormat::Json, &[doc]);
    for k in 0..=doc.len() {
        let split = run(&input, OutputFormat::Json, &[&doc[..k], &doc[k..]]);
        assert_eq!(
            split,
            whole,
            "{input:?} {:?} split at {k}",
            String::from_utf8_lossy(doc)
        );
    }
    let bytes: Vec<&[u8]> = doc.chunks(1).collect();
    assert_eq!(
        run(&input, OutputFormat::Json, &bytes),
        whole,
        "{input:?} byte by byte"
    );
}

/// Found by `masker_json` (NDJSON body `n":"x",…`). A record that does not start with `{` is
/// classified by `Masker::not_object`, which scans the value in the current slice only: when
/// the chunk ends inside the value the scan reports "more input needed" and the error is
/// `Shape { "a record is not a JSON object" }`; when the chunk holds enough to see it is not a
/// value at all it is `InvalidJson { "expected a JSON object" }`. The error (kind and message)
/// then depends on where the body was split. Output is unaffected; the error reported to the
/// audit is not deterministic.
///
/// Fix (policy/src/stream/mod.rs): decide only on a complete unit — in `Masker::run`, where a
/// record start is not `{` (`ArrFirst`/`ArrItem`, `LineStart`), call `json::scan_value` first
/// and `break` on `PErr::More` so the unit is carried to the next chunk (at `finish` it then
/// ends as `Truncated`), or make `not_object` return one error kind without probing.
#[test]
#[ignore = "fuzz crash: record-start error kind (InvalidJson vs Shape) depends on chunking"]
fn record_start_error_kind_depends_on_chunking() {
    for input in [InputFormat::Ndjson, InputFormat::JsonArray] {
        let doc: &[u8] = if input == InputFormat::Ndjson {
            b"nx"
        } else {
            b"[nx]"
        };
        assert_same_at_all_splits(input, doc);
    }
}

/// Found by `masker_json` (body at `results`, a skipped member named `"ad\u006fpter_na\xede"`).
/// Member names on the way to the record array (`Top::NavKeyOrEnd` / `Top::NavKey` in
/// `Masker::run`) are scanned without `check_utf8`. Invalid UTF-8 there is only caught when a
/// later unit in the same slice is checked (its end lies past `utf8_to`); when the chunk ends
/// after the name, the next slice starts clean and the invalid byte is never reported. So the
/// same body is rejected whole and accepted (or rejected elsewhere) in chunks: the masker
/// accepts a body that is not UTF-8, depending on the chunking.
///
/// Fix (policy/src/stream/mod.rs): after `json::scan_str` for a navigated member name, call
/// `self.check_utf8(end)?` before using the name, as the value branch already does.
#[test]
#[ignore = "fuzz crash: invalid UTF-8 in a member name outside the records is missed at chunk ends"]
fn invalid_utf8_in_a_navigated_member_name() {
    let input = InputFormat::JsonAt(vec!["results".into()]);
    let doc: &[u8] = b"{\"a\xff\":1,\"results\":[{\"id\":1}]}";
    let (_, whole) = run(&input, OutputFormat::Json, &[doc]);
    assert!(whole.is_err(), "the body is not UTF-8: {whole:?}");
    assert_same_at_all_splits(input, doc);
}

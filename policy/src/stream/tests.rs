//! Unit tests of the streaming masker.

use super::*;
use crate::mask::{MaskRule, PseudonymKey};
use crate::plan::{FieldAction, PlannedField};
use crate::rowfilter::RowFilter;

const EMIT: FieldAction = FieldAction::Emit { scan: false };

fn plan(fields: &[(&str, FieldAction)], filter: Option<&str>) -> Arc<FieldPlan> {
    Arc::new(FieldPlan {
        record_key: None,
        marks: None,
        fields: fields
            .iter()
            .map(|(n, a)| PlannedField {
                name: (*n).to_owned(),
                action: a.clone(),
            })
            .collect(),
        row_filter: filter.map(|f| RowFilter::parse(f).unwrap()),
        key: PseudonymKey::derive(b"master", "acme", "hydrants"),
    })
}

fn simple() -> Arc<FieldPlan> {
    plan(&[("id", EMIT), ("name", EMIT), ("tags", EMIT)], None)
}

struct Run {
    out: Vec<u8>,
    res: Result<MaskStats, MaskError>,
}

impl Run {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.out).unwrap()
    }
    fn ok(&self) -> &str {
        if let Err(e) = &self.res {
            panic!("unexpected error {e}; output {}", self.text());
        }
        self.text()
    }
    fn err(&self) -> &MaskError {
        match &self.res {
            Ok(_) => panic!("expected an error; output {}", self.text()),
            Err(e) => e,
        }
    }
}

fn run_chunks(
    plan: &Arc<FieldPlan>,
    input: &InputFormat,
    output: OutputFormat,
    limits: MaskerLimits,
    chunks: &[&[u8]],
) -> Run {
    let mut m = Masker::new(plan.clone(), input.clone(), output, limits);
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = m.feed(c, &mut out) {
            // After an error nothing more is written.
            let len = out.len();
            assert_eq!(m.feed(b"{}", &mut out), Err(e.clone()));
            assert_eq!(m.finish(&mut out), Err(e.clone()));
            assert_eq!(out.len(), len);
            return Run { out, res: Err(e) };
        }
    }
    let res = m.finish(&mut out);
    Run { out, res }
}

fn run(plan: &Arc<FieldPlan>, input: InputFormat, output: OutputFormat, doc: &str) -> Run {
    run_chunks(plan, &input, output, MaskerLimits::default(), &[doc.as_bytes()])
}

/// Runs `doc` in one chunk, split at every position, in three pieces around every position,
/// and byte by byte; every run must give the same output and the same result.
fn run_all_splits(plan: &Arc<FieldPlan>, input: InputFormat, output: OutputFormat, doc: &str) -> Run {
    let d = doc.as_bytes();
    let lim = MaskerLimits::default();
    let whole = run_chunks(plan, &input, output, lim, &[d]);
    let check = |r: Run, what: &str| {
        assert_eq!(r.text(), whole.text(), "{what}");
        assert_eq!(r.res.is_ok(), whole.res.is_ok(), "{what}");
        if let (Ok(a), Ok(b)) = (&r.res, &whole.res) {
            assert_eq!(a, b, "{what}");
        }
    };
    for k in 0..=d.len() {
        check(
            run_chunks(plan, &input, output, lim, &[&d[..k], &d[k..]]),
            &format!("split at {k}"),
        );
        let k2 = (k + 3).min(d.len());
        check(
            run_chunks(plan, &input, output, lim, &[&d[..k], &d[k..k2], &d[k2..]]),
            &format!("split at {k}, {k2}"),
        );
    }
    let bytes: Vec<&[u8]> = d.chunks(1).collect();
    check(run_chunks(plan, &input, output, lim, &bytes), "bytewise");
    whole
}

#[test]
fn json_array_in_plan_order_drops_unplanned() {
    let doc = r#"[{"secret":"s1","name":"Ann","id":1,"tags":["a",{"b" : null}]},
                  {"id":2.5e3,"other":{"x":[1,2]}},{}]"#;
    let r = run_all_splits(&simple(), InputFormat::JsonArray, OutputFormat::Json, doc);
    assert_eq!(
        r.ok(),
        r#"[{"id":1,"name":"Ann","tags":["a",{"b":null}]},{"id":2.5e3},{}]"#
    );
    let s = r.res.unwrap();
    assert_eq!(
        (s.records_in, s.records_out, s.fields_emitted, s.fields_dropped),
        (3, 3, 4, 2)
    );
    assert_eq!(s.bytes_in, doc.len() as u64);
    assert_eq!(s.bytes_out, r.out.len() as u64);
}

#[test]
fn empty_inputs() {
    let p = simple();
    assert_eq!(
        run(&p, InputFormat::JsonArray, OutputFormat::Json, " [ ] ").ok(),
        "[]"
    );
    assert_eq!(run(&p, InputFormat::Ndjson, OutputFormat::Json, "").ok(), "[]");
    assert_eq!(
        run(&p, InputFormat::Ndjson, OutputFormat::Csv, "\n\n").ok(),
        "id,name,tags\n"
    );
    assert_eq!(run(&p, InputFormat::Csv, OutputFormat::Ndjson, "x,id\n").ok(), "");
    assert!(matches!(
        run(&p, InputFormat::JsonArray, OutputFormat::Json, "").err(),
        MaskError::Truncated
    ));
    assert!(matches!(
        run(&p, InputFormat::Csv, OutputFormat::Json, "").err(),
        MaskError::InvalidCsv { .. }
    ));
}

#[test]
fn json_at_path() {
    let doc = r#"{"meta":{"items":[{"id":"no"}],"n":[1,{"a":"b"}]},"data":{"total":2,
        "items":[{"id":1},{"id":2}],"items":[{"id":"dup"}],"more":"x"},"data":{"items":[{"id":"dup2"}]},"z":null}"#;
    let input = InputFormat::JsonAt(vec!["data".into(), "items".into()]);
    let r = run_all_splits(&simple(), input.clone(), OutputFormat::Ndjson, doc);
    assert_eq!(r.ok(), "{\"id\":1}\n{\"id\":2}\n");
    // Escaped member names on the path match by their decoded value.
    let r = run(
        &simple(),
        input.clone(),
        OutputFormat::Json,
        r#"{"d\u0061ta":{"items":[{"id":3}]}}"#,
    );
    assert_eq!(r.ok(), r#"[{"id":3}]"#);
    let r = run(
        &simple(),
        input.clone(),
        OutputFormat::Json,
        r#"{"data":{"other":[]}}"#,
    );
    assert!(matches!(r.err(), MaskError::Shape { .. }));
    let r = run(
        &simple(),
        input.clone(),
        OutputFormat::Json,
        r#"{"data":{"items":{}}}"#,
    );
    assert!(matches!(r.err(), MaskError::Shape { .. }));
    let r = run(&simple(), input.clone(), OutputFormat::Json, r#"[{"id":1}]"#);
    assert!(matches!(r.err(), MaskError::Shape { .. }));
    let r = run(
        &simple(),
        input,
        OutputFormat::Json,
        r#"{"data":{"items":[{"id":1}]}} x"#,
    );
    assert!(matches!(r.err(), MaskError::InvalidJson { .. }));
}

#[test]
fn ndjson_lines() {
    let doc = "\n{\"id\":1,\"name\":\"a\"}\r\n\n  {\"name\":\"b\\n\"} \n{\"id\":3}";
    let r = run_all_splits(&simple(), InputFormat::Ndjson, OutputFormat::Ndjson, doc);
    assert_eq!(
        r.ok(),
        "{\"id\":1,\"name\":\"a\"}\n{\"name\":\"b\\n\"}\n{\"id\":3}\n"
    );
    let r = run(
        &simple(),
        InputFormat::Ndjson,
        OutputFormat::Ndjson,
        "{\"id\":1} {\"id\":2}\n",
    );
    assert!(matches!(r.err(), MaskError::InvalidJson { .. }));
    assert_eq!(r.text(), "{\"id\":1}\n");
    let r = run(
        &simple(),
        InputFormat::Ndjson,
        OutputFormat::Ndjson,
        "{\"id\":1}\n[1]\n",
    );
    assert!(matches!(r.err(), MaskError::Shape { .. }));
}

#[test]
fn escapes_in_keys_and_values() {
    let p = plan(&[("name", EMIT), ("q\"k", EMIT), ("é", EMIT)], None);
    let doc = r#"[{"na\u006de":"x\u00e9\ud83d\ude00\/\"\t","q\"k":1,"\u00e9":"\u0000"}]"#;
    let r = run_all_splits(&p, InputFormat::JsonArray, OutputFormat::Json, doc);
    assert_eq!(r.ok(), r#"[{"name":"xé😀/\"\t","q\"k":1,"é":"\u0000"}]"#);
    let v: serde_json::Value = serde_json::from_str(r.ok()).unwrap();
    assert_eq!(v[0]["name"], "xé😀/\"\t");
    // A canonical member whose value has escapes is re-encoded canonically, not copied.
    let r = run_all_splits(
        &p,
        InputFormat::JsonArray,
        OutputFormat::Json,
        r#"[{"name":"\u0041\/b"}]"#,
    );
    assert_eq!(r.ok(), r#"[{"name":"A/b"}]"#);
    for bad in [
        r#"[{"name":"\ud83d"}]"#,
        r#"[{"name":"\udc00x"}]"#,
        r#"[{"name":"\x"}]"#,
        "[{\"name\":\"a\nb\"}]",
    ] {
        let r = run(&p, InputFormat::JsonArray, OutputFormat::Json, bad);
        assert!(matches!(r.err(), MaskError::InvalidJson { .. }), "{bad}");
        assert_eq!(r.text(), "");
    }
}

#[test]
fn duplicate_keys_first_wins() {
    let p = plan(&[("id", EMIT), ("d", EMIT)], Some("d = 'a'"));
    let doc = r#"[{"id":1,"d":"a","id":2,"d":"b","i\u0064":3},{"d":"b","d":"a","id":4}]"#;
    let r = run_all_splits(&p, InputFormat::JsonArray, OutputFormat::Json, doc);
    assert_eq!(r.ok(), r#"[{"id":1,"d":"a"}]"#);
    let s = r.res.unwrap();
    assert_eq!(
        (s.records_in, s.records_out, s.records_filtered, s.fields_dropped),
        (2, 1, 1, 3)
    );
}

#[test]
fn nested_values_and_depth() {
    let p = plan(&[("n", EMIT)], None);
    let doc = "[{\"n\" : { \"a\" : [ 1 , -0.5E-3 , true , false , null , \"\\u0041\" , [ ] , { } ] } }]";
    let r = run_all_splits(&p, InputFormat::JsonArray, OutputFormat::Json, doc);
    assert_eq!(r.ok(), r#"[{"n":{"a":[1,-0.5E-3,true,false,null,"A",[],{}]}}]"#);
    let r = run(&p, InputFormat::JsonArray, OutputFormat::Csv, doc);
    assert_eq!(
        r.ok(),
        "n\n\"{\"\"a\"\":[1,-0.5E-3,true,false,null,\"\"A\"\",[],{}]}\"\n"
    );
    let ok = format!("[{{\"n\":{}1{}}}]", "[".repeat(100), "]".repeat(100));
    assert!(run(&p, InputFormat::JsonArray, OutputFormat::Json, &ok)
        .res
        .is_ok());
    let deep = format!("[{{\"x\":{}1{}}}]", "[".repeat(500), "]".repeat(500));
    let r = run(&p, InputFormat::JsonArray, OutputFormat::Json, &deep);
    assert!(matches!(
        r.err(),
        MaskError::InvalidJson {
            msg: "nesting too deep",
            ..
        }
    ));
}

/// Issue 11, item 1: numbers and member names at any depth inside a scanned composite go
/// through the detectors (a number holding an identifier becomes the scrubbed string, as a
/// scanned number on its own does); clear fields are untouched.
#[test]
fn scanned_composites_are_scrubbed_at_every_depth() {
    let scan = FieldAction::Emit { scan: true };
    let p = plan(&[("id", EMIT), ("notes", scan)], None);
    let cases = [
        (
            r#"[{"id":"R1","notes":[13800138000]}]"#,
            r#"[{"id":"R1","notes":["138****8000"]}]"#,
        ),
        (
            r#"[{"id":"R2","notes":{"13800138000":"x"}}]"#,
            r#"[{"id":"R2","notes":{"138****8000":"x"}}]"#,
        ),
        (
            r#"[{"id":"R3","notes":{"a":[{"b":13800138000.5,"c":[11010519491231002]}],"tel 13800138000":1}}]"#,
            r#"[{"id":"R3","notes":{"a":[{"b":13800138000.5,"c":[11010519491231002]}],"tel 138****8000":1}}]"#,
        ),
        (
            r#"[{"id":13800138000,"notes":[1,2.5,"x"]}]"#,
            r#"[{"id":13800138000,"notes":[1,2.5,"x"]}]"#,
        ),
    ];
    for (doc, want) in cases {
        let r = run_all_splits(&p, InputFormat::JsonArray, OutputFormat::Json, doc);
        assert_eq!(r.ok(), want, "{doc}");
    }
}

/// Issue 11, item 4: a byte-order mark is legal before a quoted header cell (it was refused as
/// a quote inside an unquoted cell), at every split, even one inside the mark.
#[test]
fn csv_bom_before_a_quoted_header() {
    let p = plan(&[("id", EMIT), ("name", EMIT)], None);
    let doc = "\u{feff}\"id\",\"name\"\r\n1,\"Ann\"\r\n2,Bob\r\n";
    let r = run_all_splits(&p, InputFormat::Csv, OutputFormat::Csv, doc);
    assert_eq!(r.ok(), "id,name\n1,Ann\n2,Bob\n");
    // A mark that is not at the start is data, not skipped: the first column is unknown.
    let doc = "id,name\r\n\u{feff}1,Ann\r\n";
    let r = run(&p, InputFormat::Csv, OutputFormat::Json, doc);
    assert_eq!(r.ok(), "[{\"id\":\"\u{feff}1\",\"name\":\"Ann\"}]");
}

#[test]
fn csv_in_and_out() {
    let p = plan(&[("id", EMIT), ("name", EMIT), ("note", EMIT)], None);
    let doc =
        "\u{feff}name,skip,id,note\r\n\"Ann, \"\"A\"\"\",x,1,\"multi\nline\"\r\nBob,\"\",2,\n\n\"\",y,,é";
    let r = run_all_splits(&p, InputFormat::Csv, OutputFormat::Csv, doc);
    assert_eq!(
        r.ok(),
        "id,name,note\n1,\"Ann, \"\"A\"\"\",\"multi\nline\"\n2,Bob,\n,,é\n"
    );
    let r = run(&p, InputFormat::Csv, OutputFormat::Json, doc);
    assert_eq!(
        r.ok(),
        r#"[{"id":"1","name":"Ann, \"A\"","note":"multi\nline"},{"id":"2","name":"Bob","note":""},{"id":"","name":"","note":"é"}]"#
    );
    let s = r.res.unwrap();
    assert_eq!((s.records_out, s.fields_dropped), (3, 3));
    // JSON to CSV: numbers as text, null empty, strings quoted only when needed.
    let doc = r#"[{"id":1.5,"name":"a,b","note":null},{"name":"say \"hi\"","note":true},{"id":"x\ny"}]"#;
    let r = run(&p, InputFormat::JsonArray, OutputFormat::Csv, doc);
    assert_eq!(
        r.ok(),
        "id,name,note\n1.5,\"a,b\",\n,\"say \"\"hi\"\"\",true\n\"x\ny\",,\n"
    );
    // A single column: empty values stay visible.
    let p1 = plan(&[("name", EMIT)], None);
    let r = run(
        &p1,
        InputFormat::JsonArray,
        OutputFormat::Csv,
        r#"[{"name":""},{}]"#,
    );
    assert_eq!(r.ok(), "name\n\"\"\n\"\"\n");
}

#[test]
fn csv_errors() {
    let p = plan(&[("a", EMIT), ("b", EMIT)], None);
    for bad in [
        "a,b\n1,2\n1,2,3\n",
        "a,b\n1,2\n\"BROKEN,2\n",
        "a,b\n1,2\nx\"y,2\n",
        "a,b\n1,2\n\"x\"y,2\n",
        "a,b\n1,2\n1\r2,3\n",
    ] {
        let r = run_chunks(
            &p,
            &InputFormat::Csv,
            OutputFormat::Csv,
            MaskerLimits::default(),
            &[bad.as_bytes()],
        );
        assert!(matches!(r.err(), MaskError::InvalidCsv { .. }), "{bad:?}");
        assert_eq!(r.text(), "a,b\n1,2\n", "{bad:?}");
    }
    let bad = b"a,b\n1,2\n\xff,2\n";
    let r = run_chunks(
        &p,
        &InputFormat::Csv,
        OutputFormat::Csv,
        MaskerLimits::default(),
        &[bad],
    );
    assert!(matches!(
        r.err(),
        MaskError::InvalidCsv {
            msg: "invalid UTF-8",
            ..
        }
    ));
}

#[test]
fn invalid_json_stops_after_the_last_complete_record() {
    let p = simple();
    let good = r#"[{"id":1,"name":"ok"}"#;
    let bad_tails = [
        r#",{"name":"BROKEN""#,
        r#",{"name":"BROKEN",}]"#,
        r#",{"name":"BROKEN" "id":1}]"#,
        r#",{"name":"BROKEN","id":01}]"#,
        r#",{"name":"BROKEN","id":1.}]"#,
        r#",{"name":"BROKEN","id":tru}]"#,
        r#",{"name":"BROKEN","id":[1,]}]"#,
        r#",{"name":"BROKEN","id":"\u12"}]"#,
        r#",{"name":"BROKEN",id:1}]"#,
        r#",["BROKEN"]]"#,
        r#","BROKEN"]"#,
        r#",{"name":"BROKEN"]"#,
        r#"{"name":"BROKEN"}]"#,
    ];
    for tail in bad_tails {
        let doc = format!("{good}{tail}");
        for k in [0, 1, 7, doc.len() / 2, doc.len() - 1] {
            let d = doc.as_bytes();
            let r = run_chunks(
                &p,
                &InputFormat::JsonArray,
                OutputFormat::Json,
                MaskerLimits::default(),
                &[&d[..k], &d[k..]],
            );
            r.err();
            assert!(!r.text().contains("BROKEN"), "{doc}");
            assert!(
                r.text().is_empty() || r.text() == r#"[{"id":1,"name":"ok"}"#,
                "{doc}: {}",
                r.text()
            );
        }
    }
    // Errors after a complete record: the record was valid and is written, nothing after it.
    for tail in [
        r#",{"name":"two"}]]"#,
        r#",{"name":"two"}] x"#,
        r#",{"name":"two"}}"#,
        r#",{"name":"two"},]"#,
    ] {
        let doc = format!("{good}{tail}");
        let r = run(&p, InputFormat::JsonArray, OutputFormat::Json, &doc);
        r.err();
        assert_eq!(r.text(), r#"[{"id":1,"name":"ok"},{"name":"two"}"#);
    }
    let mut d = br#"[{"id":1,"name":"ok"},{"name":"BROKEN"#.to_vec();
    d.extend_from_slice(b"\xc3\x28\"}]");
    let r = run_chunks(
        &p,
        &InputFormat::JsonArray,
        OutputFormat::Json,
        MaskerLimits::default(),
        &[&d],
    );
    assert!(matches!(
        r.err(),
        MaskError::InvalidJson {
            msg: "invalid UTF-8",
            ..
        }
    ));
    assert_eq!(r.text(), r#"[{"id":1,"name":"ok"}"#);
    // A UTF-8 sequence split across chunks is fine.
    let doc = "[{\"name\":\"é中😀\"}]".as_bytes();
    for k in 0..doc.len() {
        let r = run_chunks(
            &p,
            &InputFormat::JsonArray,
            OutputFormat::Json,
            MaskerLimits::default(),
            &[&doc[..k], &doc[k..]],
        );
        assert_eq!(r.ok(), "[{\"name\":\"é中😀\"}]");
    }
}

#[test]
fn offsets_are_absolute() {
    let p = simple();
    let d = br#"[{"id":1},{"id":x}]"#;
    let r = run_chunks(
        &p,
        &InputFormat::JsonArray,
        OutputFormat::Json,
        MaskerLimits::default(),
        &[&d[..12], &d[12..]],
    );
    assert_eq!(
        r.err(),
        &MaskError::InvalidJson {
            offset: 16,
            msg: "expected a value"
        }
    );
}

#[test]
fn row_filter_on_hidden_and_escaped_fields() {
    let p = plan(
        &[("id", EMIT)],
        Some("district in ('Huangpu', 'Jing''an') and ok = 'true'"),
    );
    let doc = r#"[{"id":1,"district":"Huangpu","ok":true},{"id":2,"district":"Jing'an","ok":false},
        {"id":3,"district":"Jing\u0027an","ok":true},{"id":4,"ok":true},{"id":5,"district":"Xuhui","ok":true}]"#;
    let r = run_all_splits(&p, InputFormat::JsonArray, OutputFormat::Json, doc);
    assert_eq!(r.ok(), r#"[{"id":1},{"id":3}]"#);
    let s = r.res.unwrap();
    assert_eq!((s.records_in, s.records_out, s.records_filtered), (5, 2, 3));
    let p = plan(&[("id", EMIT)], Some("n = 5"));
    let r = run(&p, InputFormat::Csv, OutputFormat::Csv, "id,n\n1,5\n2,6\n");
    assert_eq!(r.ok(), "id\n1\n");
}

#[test]
fn max_records_closes_the_document() {
    let p = simple();
    let lim = MaskerLimits {
        max_records: Some(2),
        ..MaskerLimits::default()
    };
    let doc = br#"[{"id":1},{"id":2},{"id":3},{"id":4}, garbage"#;
    let mut m = Masker::new(p.clone(), InputFormat::JsonArray, OutputFormat::Json, lim);
    let mut out = Vec::new();
    m.feed(&doc[..5], &mut out).unwrap();
    assert!(!m.is_full());
    m.feed(&doc[5..], &mut out).unwrap();
    assert!(m.is_full());
    m.feed(b"more garbage", &mut out).unwrap();
    let s = m.finish(&mut out).unwrap();
    assert_eq!(out, br#"[{"id":1},{"id":2}]"#);
    assert_eq!((s.records_in, s.records_out), (2, 2));
    let lim0 = MaskerLimits {
        max_records: Some(0),
        ..MaskerLimits::default()
    };
    let r = run_chunks(&p, &InputFormat::Csv, OutputFormat::Csv, lim0, &[b"id\n1\n"]);
    assert_eq!(r.ok(), "id,name,tags\n");
}

#[test]
fn record_too_large() {
    let p = simple();
    let lim = MaskerLimits {
        max_records: None,
        max_record_bytes: 64,
    };
    let big = format!(r#"[{{"id":1}},{{"name":"{}"}}]"#, "x".repeat(100));
    for chunks in [vec![big.as_bytes()], big.as_bytes().chunks(7).collect()] {
        let r = run_chunks(&p, &InputFormat::JsonArray, OutputFormat::Json, lim, &chunks);
        assert_eq!(r.err(), &MaskError::RecordTooLarge(64));
        assert_eq!(r.text(), r#"[{"id":1}"#);
    }
    let big = format!("id\n1\n{}\n", "x".repeat(100));
    let r = run_chunks(&p, &InputFormat::Csv, OutputFormat::Csv, lim, &[big.as_bytes()]);
    assert_eq!(r.err(), &MaskError::RecordTooLarge(64));
}

#[test]
fn truncated_input() {
    let p = simple();
    for doc in [
        r#"[{"id":1}"#,
        r#"[{"id":1},"#,
        r#"[{"id":1},{"id""#,
        "[",
        r#"[{"id":12"#,
    ] {
        let r = run(&p, InputFormat::JsonArray, OutputFormat::Json, doc);
        assert_eq!(r.err(), &MaskError::Truncated, "{doc}");
    }
    let r = run(
        &p,
        InputFormat::Ndjson,
        OutputFormat::Json,
        "{\"id\":1}\n{\"id\":",
    );
    assert_eq!(r.err(), &MaskError::Truncated);
    let r = run(&p, InputFormat::Csv, OutputFormat::Json, "id\n\"1");
    assert!(matches!(r.err(), MaskError::InvalidCsv { .. }));
}

#[test]
fn masks_and_scan() {
    let p = plan(
        &[
            ("id", FieldAction::Mask(MaskRule::Redact)),
            ("name", FieldAction::Mask(MaskRule::Null)),
            ("tags", FieldAction::Mask(MaskRule::Redact)),
        ],
        None,
    );
    let doc = r#"[{"id":12345,"name":"Ann","tags":[1,2]}]"#;
    let r = run_all_splits(&p, InputFormat::JsonArray, OutputFormat::Json, doc);
    assert_eq!(r.ok(), r#"[{"id":"***","name":null,"tags":"***"}]"#);
    let s = r.res.unwrap();
    assert_eq!((s.fields_emitted, s.fields_masked), (3, 3));
    let r = run(&p, InputFormat::JsonArray, OutputFormat::Csv, doc);
    assert_eq!(r.ok(), "id,name,tags\n***,,***\n");
}

#[test]
fn scan_scrubs_strings_nested_leaves_and_numbers() {
    let p = plan(
        &[
            ("notes", FieldAction::Emit { scan: true }),
            ("n", FieldAction::Emit { scan: true }),
        ],
        None,
    );
    let doc = r#"[{"notes":"call 13812345678 now","n":{"a":["x 13812345678"]}},{"notes":13812345678},{"notes":"fine","n":1}]"#;
    let r = run_all_splits(&p, InputFormat::JsonArray, OutputFormat::Json, doc);
    let text = r.ok();
    assert!(!text.contains("13812345678"), "{text}");
    assert!(text.ends_with(r#"{"notes":"fine","n":1}]"#), "{text}");
    serde_json::from_str::<serde_json::Value>(text).unwrap();
    assert!(r.res.unwrap().detector_hits >= 3);
    let r = run(
        &p,
        InputFormat::Csv,
        OutputFormat::Csv,
        "notes\n\"13812345678, ok\"\n",
    );
    assert!(!r.ok().contains("13812345678"));
}

#[test]
fn pseudonym_and_partial_on_escaped_strings() {
    let p = plan(
        &[
            ("m", FieldAction::Mask(MaskRule::Partial { first: 3, last: 4 })),
            ("p", FieldAction::Mask(MaskRule::Pseudonym)),
        ],
        None,
    );
    let a = run(
        &p,
        InputFormat::JsonArray,
        OutputFormat::Json,
        r#"[{"m":"13812345678","p":"abc"}]"#,
    );
    let b = run(
        &p,
        InputFormat::JsonArray,
        OutputFormat::Json,
        r#"[{"m":"\u0031\u00338\u0031\u0032345678","p":"a\u0062c"}]"#,
    );
    assert_eq!(a.ok(), b.ok());
    assert!(a.ok().starts_with(r#"[{"m":"138****5678","p":"#), "{}", a.ok());
}

/// Runs raw bytes whole and split at every position (two and three pieces); every run must
/// give the same output and exactly the same result, errors included.
fn same_at_all_splits(plan: &Arc<FieldPlan>, input: InputFormat, output: OutputFormat, d: &[u8]) -> Run {
    let lim = MaskerLimits::default();
    let whole = run_chunks(plan, &input, output, lim, &[d]);
    for k in 0..=d.len() {
        for k2 in [
            k,
            (k + 1).min(d.len()),
            (k + 2).min(d.len()),
            (k + 3).min(d.len()),
        ] {
            let r = run_chunks(plan, &input, output, lim, &[&d[..k], &d[k..k2], &d[k2..]]);
            assert_eq!(r.out, whole.out, "split at {k}, {k2}");
            assert_eq!(r.res, whole.res, "split at {k}, {k2}");
        }
    }
    whole
}

#[test]
fn utf8_at_chunk_ends_and_invalid_sequences() {
    let p = plan(
        &[
            ("a", EMIT),
            ("b", FieldAction::Mask(MaskRule::Partial { first: 1, last: 0 })),
            ("c", FieldAction::Mask(MaskRule::Pseudonym)),
        ],
        None,
    );
    let good = "[{\"a\":\"张三丰\",\"b\":\"欧阳娜娜\",\"c\":\"😀x\"},{\"a\":\"é\",\"b\":\"ü\",\"c\":1}]";
    let r = same_at_all_splits(&p, InputFormat::JsonArray, OutputFormat::Json, good.as_bytes());
    assert!(r.ok().contains("\"欧***\""), "{}", r.text());
    let csv = "a,b,c\n张三丰,欧阳娜娜,😀x\né,ü,\"1,2\"\n";
    let r = same_at_all_splits(&p, InputFormat::Csv, OutputFormat::Csv, csv.as_bytes());
    assert!(r.ok().starts_with("a,b,c\n张三丰,欧***,p_"), "{}", r.text());
    // Invalid sequences: a stray continuation byte, a truncated sequence before ASCII, an
    // overlong lead, a lead byte at the very end; in the first record or a later one.
    for bad in [&b"\x80"[..], b"\xe4\xb8", b"\xc0\xaf", b"\xf0\x9f\x98", b"\xff"] {
        for input in [InputFormat::JsonArray, InputFormat::Csv] {
            let mut d = Vec::new();
            if input == InputFormat::Csv {
                d.extend_from_slice("a,b,c\n张,x,y\n".as_bytes());
                d.extend_from_slice(b"1,");
                d.extend_from_slice(bad);
                d.extend_from_slice(b",3\n");
            } else {
                d.extend_from_slice("[{\"a\":\"张\"},{\"a\":\"".as_bytes());
                d.extend_from_slice(bad);
                d.extend_from_slice(b"\"}]");
            }
            let r = same_at_all_splits(&p, input.clone(), OutputFormat::Json, &d);
            assert!(r.res.is_err(), "{bad:?} {input:?}");
            // The first record was written; the invalid one was not.
            assert!(r.text().contains("张"), "{}", r.text());
            let at = d.len() - bad.len() - 3;
            match r.err() {
                MaskError::InvalidJson { offset, msg } | MaskError::InvalidCsv { offset, msg } => {
                    assert_eq!((*offset, *msg), (at as u64, "invalid UTF-8"), "{bad:?} {input:?}")
                }
                e => panic!("{e:?}"),
            }
        }
        // At the very end of the input.
        let mut d = "a,b,c\n1,2,".as_bytes().to_vec();
        d.extend_from_slice(bad);
        let r = same_at_all_splits(&p, InputFormat::Csv, OutputFormat::Csv, &d);
        assert!(r.res.is_err(), "{bad:?}");
    }
}

#[test]
fn csv_runs_of_adjacent_cells() {
    let scan = FieldAction::Emit { scan: true };
    let p = plan(
        &[
            ("a", EMIT),
            ("b", EMIT),
            ("d", EMIT),
            ("c", EMIT),
            ("e", scan),
            ("f", EMIT),
            ("g", EMIT),
            ("h", EMIT),
        ],
        None,
    );
    let doc = "a,b,c,d,e,f,x,g,h\n1,2,3,4,13812345678,\"6,6\",x,7,\"8\"\n,,,,,,,,\n1,\"\",3,4,5,6,x,7,8\n";
    let r = run_all_splits(&p, InputFormat::Csv, OutputFormat::Csv, doc);
    assert_eq!(
        r.ok(),
        "a,b,d,c,e,f,g,h\n1,2,4,3,138****5678,\"6,6\",7,8\n,,,,,,,\n1,,4,3,5,6,7,8\n"
    );
    // A column the input does not have is an empty cell.
    let r = run_all_splits(&p, InputFormat::Csv, OutputFormat::Csv, "a,c,b\n1,3,2\n");
    assert_eq!(r.ok(), "a,b,d,c,e,f,g,h\n1,2,,3,,,,\n");
    let r = run_all_splits(&p, InputFormat::Csv, OutputFormat::Json, "a,b,c\n1,2,3\n");
    assert_eq!(r.ok(), r#"[{"a":"1","b":"2","c":"3"}]"#);
}

#[test]
fn member_names_that_change_at_a_remembered_position() {
    // Each position remembers its last name (planned or not); the next record's name there
    // may be the same, a prefix or extension of it, the same name escaped, or another field.
    let p = plan(&[("id", EMIT), ("street", EMIT)], None);
    let doc = r#"[{"id":1,"stree":"a","street":"b"},
                  {"id":2,"stree":"c","street":"d"},
                  {"id":3,"street":"e","stree":"f"},
                  {"id":4,"streets":"g","street":"h"},
                  {"id":5,"str\u0065e":"i","street":"j"},
                  {"id":6,"stree\"":"k","str\u0065et":"l"},
                  {"id":7,"a_name_longer_than_thirty_bytes_x":"m","street":"n"},
                  {"id":8,"a_name_longer_than_thirty_bytes_x":"o","street":"p"},
                  {"id":9,"a_name_longer_than_thirty_bytes_y":"q","street":"r"}]"#;
    let r = run_all_splits(&p, InputFormat::JsonArray, OutputFormat::Json, doc);
    assert_eq!(
        r.ok(),
        r#"[{"id":1,"street":"b"},{"id":2,"street":"d"},{"id":3,"street":"e"},{"id":4,"street":"h"},{"id":5,"street":"j"},{"id":6,"street":"l"},{"id":7,"street":"n"},{"id":8,"street":"p"},{"id":9,"street":"r"}]"#
    );
    let stats = r.res.as_ref().unwrap();
    assert_eq!(stats.fields_dropped, 9);
    assert_eq!(stats.fields_emitted, 18);
}

/// Runs `doc` through a masker with the client's query (`pairs`), at every split.
fn run_query(
    plan: &Arc<FieldPlan>,
    pairs: &[(&str, &str)],
    input: InputFormat,
    output: OutputFormat,
    doc: &str,
) -> String {
    let query = Arc::new(crate::query::ClientQuery::from_pairs(pairs.iter().copied()).unwrap());
    let d = doc.as_bytes();
    let once = |chunks: &[&[u8]]| {
        let mut m = Masker::filtered(
            plan.clone(),
            Some(query.clone()),
            input.clone(),
            output,
            MaskerLimits::default(),
        );
        let mut out = Vec::new();
        for c in chunks {
            m.feed(c, &mut out).unwrap();
        }
        m.finish(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    let whole = once(&[d]);
    for k in 0..=d.len() {
        assert_eq!(once(&[&d[..k], &d[k..]]), whole, "split at {k}");
    }
    whole
}

#[test]
fn client_filters_compare_typed_original_values() {
    let p = plan(&[("id", EMIT), ("district", EMIT)], None);
    let doc = r#"[{"id":1,"district":"Huangpu","age":17},{"id":2,"district":"Xuhui","age":18},
        {"id":3,"district":"Huangpu","age":"18"},{"id":4,"district":"Huangpu","age":null},
        {"id":5,"district":"Huangpu","age":18.000},{"id":6,"district":"Huangpu"}]"#;
    let out = run_query(
        &p,
        &[("age", "gte.18")],
        InputFormat::JsonArray,
        OutputFormat::Json,
        doc,
    );
    // The literal takes the value's type: numbers compare as exact decimals (18.000 = 18),
    // the string "18" as a string; a null or absent age matches no comparison.
    assert_eq!(
        out,
        r#"[{"id":2,"district":"Xuhui"},{"id":3,"district":"Huangpu"},{"id":5,"district":"Huangpu"}]"#
    );
    let out = run_query(
        &p,
        &[("district", "eq.Huangpu"), ("age", "not.is.null")],
        InputFormat::JsonArray,
        OutputFormat::Ndjson,
        doc,
    );
    assert_eq!(out, "{\"id\":1,\"district\":\"Huangpu\"}\n{\"id\":3,\"district\":\"Huangpu\"}\n{\"id\":5,\"district\":\"Huangpu\"}\n");
}

#[test]
fn client_filters_never_widen_the_row_filter() {
    let p = plan(
        &[("id", EMIT), ("district", EMIT)],
        Some("district in ('Huangpu', 'Xuhui')"),
    );
    let doc = r#"[{"id":1,"district":"Huangpu"},{"id":2,"district":"Xuhui"},{"id":3,"district":"Minhang"},
        {"id":4,"district":null}]"#;
    let ids = |pairs: &[(&str, &str)]| {
        let out = run_query(&p, pairs, InputFormat::JsonArray, OutputFormat::Csv, doc);
        out.lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&[("district", "eq.Minhang")]), Vec::<String>::new());
    assert_eq!(ids(&[("district", "in.(Minhang,Huangpu)")]), ["1"]);
    assert_eq!(ids(&[("district", "not.eq.Huangpu")]), ["2"]);
    assert_eq!(ids(&[("district", "is.null")]), Vec::<String>::new());
    assert_eq!(ids(&[("district", "like.*")]), ["1", "2"]);
}

#[test]
fn client_filters_on_csv_cells_compare_numbers_as_numbers() {
    let p = plan(&[("id", EMIT)], None);
    let doc = "id,age,district\n1,17,a\n2,18,b\n3,x,c\n4,018.0,d\n5,,e\n";
    let out = run_query(&p, &[("age", "gte.18")], InputFormat::Csv, OutputFormat::Csv, doc);
    // 018.0 reads as a number (≥ 18); "x" is text and compares bytewise ("x" > "18"); an
    // empty cell is empty text.
    assert_eq!(out, "id\n2\n3\n4\n");
    // The filtered field is not in the plan: it is read for the filter, never written.
    let out = run_query(
        &p,
        &[("district", "in.(b,e)")],
        InputFormat::Csv,
        OutputFormat::Json,
        doc,
    );
    assert_eq!(out, r#"[{"id":"2"},{"id":"5"}]"#);
}

/// The layout path ([`Shape`]) against the general parser and writer: the same bytes, stats
/// and errors for records that repeat, change and break their layout.
mod layout {
    use super::*;
    use proptest::prelude::*;

    /// Member names: plain, needing escapes, long, and one the plan never names.
    const NAMES: &[&str] = &["id", "name", "k\"q", "a_rather_long_field_name", "other", "lat"];

    /// One value's JSON text: canonical strings, escaped strings, numbers, literals, composites.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-zA-Z0-9 @.-]{0,16}".prop_map(|s| format!("\"{s}\"")),
            1 => "[a-z]{0,4}".prop_map(|s| format!("\"{s}\\n\\\"{s}\"")),
            1 => "[a-z]{0,4}".prop_map(|s| format!("\"\\u0041{s}\\/\"")),
            2 => (-100_000i64..100_000).prop_map(|n| n.to_string()),
            1 => (0u32..100_000).prop_map(|n| format!("{}.{:03}", n / 1000, n % 1000)),
            1 => "20[0-2][0-9]-[01][0-9]-[0-3][0-9]".prop_map(|s| format!("\"{s}\"")),
            1 => Just("13812345678".to_owned()),
            1 => prop::sample::select(vec!["true", "false", "null"]).prop_map(str::to_owned),
            1 => Just(r#"{"a":[1,"x\u00e9"],"b":null}"#.to_owned()),
            1 => Just("[ 1 , 2 ]".to_owned()),
        ]
    }

    fn action() -> impl Strategy<Value = FieldAction> {
        prop_oneof![
            4 => Just(EMIT),
            1 => Just(FieldAction::Emit { scan: true }),
            1 => Just(FieldAction::Mask(MaskRule::Pseudonym)),
            1 => Just(FieldAction::Mask(MaskRule::Partial { first: 1, last: 1 })),
            1 => Just(FieldAction::Mask(MaskRule::Month)),
            1 => Just(FieldAction::Mask(MaskRule::Drop)),
            1 => Just(FieldAction::Mask(MaskRule::Null)),
            1 => any::<bool>().prop_map(|scan| FieldAction::Fingerprint {
                marker: Arc::new(crate::mask::fingerprint::Marker {
                    key: crate::mask::fingerprint::FingerprintKey::derive(b"m", "acme", "d"),
                    tolerance: crate::mask::fingerprint::Tolerance::parse("0.01").unwrap(),
                    record_key: "id".to_owned(),
                }),
                scan,
            }),
        ]
    }

    /// A record: members (name index, value) and whether it is written with whitespace.
    type Rec = (Vec<(usize, String)>, bool);

    /// Records that mostly repeat one member order (so a layout is learnt and reused), now and
    /// then with a member changed, added, dropped or duplicated, or written non-canonically.
    fn records() -> impl Strategy<Value = Vec<Rec>> {
        let order =
            prop::sample::subsequence((0..NAMES.len()).collect::<Vec<_>>(), 0..=NAMES.len()).prop_shuffle();
        let change = prop_oneof![
            8 => Just(None),
            1 => (0..NAMES.len()).prop_map(Some),
        ];
        (
            order,
            prop::collection::vec(
                (prop::collection::vec(value(), NAMES.len() + 1), change, 0..10u8),
                1..12,
            ),
        )
            .prop_map(|(order, recs)| {
                recs.into_iter()
                    .map(|(vals, change, odd)| {
                        let mut names = order.clone();
                        match change {
                            Some(_) if odd == 8 => names.clear(),
                            Some(n) if names.contains(&n) && odd % 2 == 0 => names.retain(|m| *m != n),
                            Some(n) if odd % 3 == 0 && !names.is_empty() => names[0] = n,
                            Some(n) => names.push(n),
                            None => {}
                        }
                        let members = names.iter().zip(vals).map(|(n, v)| (*n, v)).collect();
                        (members, odd == 9)
                    })
                    .collect()
            })
    }

    fn json_doc(recs: &[Rec], ndjson: bool) -> String {
        let mut s = String::new();
        if !ndjson {
            s.push('[');
        }
        for (k, (members, spaced)) in recs.iter().enumerate() {
            if k > 0 && !ndjson {
                s.push(',');
            }
            s.push('{');
            for (m, (n, v)) in members.iter().enumerate() {
                if m > 0 {
                    s.push(',');
                }
                let name = serde_json::to_string(NAMES[*n]).unwrap();
                if *spaced {
                    s.push_str(&format!(" {name} : {v} "));
                } else {
                    s.push_str(&format!("{name}:{v}"));
                }
            }
            s.push('}');
            if ndjson {
                s.push('\n');
            }
        }
        if !ndjson {
            s.push(']');
        }
        s
    }

    fn masked(
        plan: &Arc<FieldPlan>,
        input: &InputFormat,
        output: OutputFormat,
        d: &[u8],
        cut: usize,
        general: bool,
    ) -> Run {
        let mut m = Masker::new(plan.clone(), input.clone(), output, MaskerLimits::default());
        if general {
            m = m.general_only();
        }
        let mut out = Vec::new();
        for c in [&d[..cut], &d[cut..]] {
            if let Err(e) = m.feed(c, &mut out) {
                return Run { out, res: Err(e) };
            }
        }
        let res = m.finish(&mut out);
        Run { out, res }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn the_layout_path_writes_what_the_general_path_writes(
            recs in records(),
            actions in prop::collection::vec(action(), NAMES.len()),
            planned in prop::sample::subsequence((0..NAMES.len()).collect::<Vec<_>>(), 1..=NAMES.len()).prop_shuffle(),
            filter in prop::option::of(prop::sample::select(vec!["lat = '1'", "name != 'x' and id in ('5', '7')"])),
            ndjson in any::<bool>(),
            out_fmt in prop::sample::select(vec![OutputFormat::Json, OutputFormat::Ndjson, OutputFormat::Csv]),
            cut in any::<prop::sample::Index>(),
            corrupt in prop::option::of(any::<prop::sample::Index>()),
        ) {
            let fields: Vec<(&str, FieldAction)> =
                planned.iter().map(|n| (NAMES[*n], actions[*n].clone())).collect();
            let plan = plan(&fields, filter);
            let input = if ndjson { InputFormat::Ndjson } else { InputFormat::JsonArray };
            let mut doc = json_doc(&recs, ndjson).into_bytes();
            if let Some(at) = corrupt {
                // Now and then one byte that breaks the document somewhere.
                let k = at.index(doc.len());
                doc[k] = b"{}\",:\\x \x01"[k % 9];
            }
            let cut = cut.index(doc.len() + 1);
            let fast = masked(&plan, &input, out_fmt, &doc, cut, false);
            let general = masked(&plan, &input, out_fmt, &doc, cut, true);
            prop_assert_eq!(fast.text(), general.text());
            prop_assert_eq!(&fast.res, &general.res);
        }
    }

    #[test]
    fn a_learnt_layout_is_used() {
        let plan = plan(
            &[("id", EMIT), ("name", FieldAction::Mask(MaskRule::Pseudonym))],
            None,
        );
        let doc = br#"[{"id":1,"x":2,"name":"a"},{"id":3,"x":4,"name":"b"}]"#;
        let mut m = Masker::new(
            plan,
            InputFormat::JsonArray,
            OutputFormat::Json,
            MaskerLimits::default(),
        );
        let mut out = Vec::new();
        m.feed(doc, &mut out).unwrap();
        assert_eq!(m.shape.program(OutputFormat::Json).map(|p| p.ops.len()), Some(2));
    }
}

mod fingerprints {
    use super::*;
    use crate::mask::fingerprint::{FingerprintKey, Marker, Tolerance};

    fn marker(licensee: &str) -> Arc<Marker> {
        Arc::new(Marker {
            key: FingerprintKey::derive(b"master", licensee, "hydrants"),
            tolerance: Tolerance::parse("0.00001").unwrap(),
            record_key: "id".to_owned(),
        })
    }

    #[test]
    fn tolerant_fields_carry_the_licensees_marks_and_the_rest_is_untouched() {
        let m = marker("acme");
        // The record key is read even when the plan does not emit it.
        let p = plan(
            &[
                (
                    "lat",
                    FieldAction::Fingerprint {
                        marker: m.clone(),
                        scan: false,
                    },
                ),
                ("district", EMIT),
            ],
            None,
        );
        let doc = r#"[{"id":"HY-1","lat":31.123456,"district":"Xuhui"},{"id":"HY-2","lat":"31.5","district":"Putuo"},{"lat":31.2,"district":"Pudong"},{"id":"HY-4","lat":"n/a"}]"#;
        let out = run_all_splits(&p, InputFormat::JsonArray, OutputFormat::Json, doc);
        let lat1 = m.mark(b"HY-1", "lat", "31.123456").unwrap();
        let lat2 = m.mark(b"HY-2", "lat", "31.5").unwrap();
        assert_ne!(lat1, "31.123456");
        assert_eq!(
            out.ok(),
            format!(
                r#"[{{"lat":{lat1},"district":"Xuhui"}},{{"lat":"{lat2}","district":"Putuo"}},{{"lat":31.2,"district":"Pudong"}},{{"lat":"n/a"}}]"#
            ),
            "a number stays a number, a string a string; without a key or a number, no mark"
        );
        // Another licensee's copy of the same records differs; CSV carries the same marks.
        let other = plan(
            &[(
                "lat",
                FieldAction::Fingerprint {
                    marker: marker("globex"),
                    scan: false,
                },
            )],
            None,
        );
        assert_ne!(
            run(&other, InputFormat::JsonArray, OutputFormat::Json, doc).ok(),
            out.ok()
        );
        let csv = run_all_splits(
            &p,
            InputFormat::Csv,
            OutputFormat::Csv,
            "id,lat,district\nHY-1,31.123456,Xuhui\n",
        );
        assert_eq!(csv.ok(), format!("lat,district\n{lat1},Xuhui\n"));
    }

    #[test]
    fn marked_and_unmarked_values_still_pass_the_safety_net() {
        let m = Arc::new(Marker {
            key: FingerprintKey::derive(b"master", "acme", "meters"),
            tolerance: Tolerance::parse("1").unwrap(),
            record_key: "id".to_owned(),
        });
        let p = plan(
            &[(
                "reading",
                FieldAction::Fingerprint {
                    marker: m.clone(),
                    scan: true,
                },
            )],
            None,
        );
        // A mobile number in a tolerant field: marked by at most 0.5, it is still a mobile
        // number, and the detector must catch it marked or not.
        let doc = r#"[{"id":"M-1","reading":"13812345678"},{"reading":"13812345678"}]"#;
        let marked = m.mark(b"M-1", "reading", "13812345678").unwrap();
        let out = run_all_splits(&p, InputFormat::JsonArray, OutputFormat::Json, doc);
        let scrubbed = crate::mask::detect::scrub("13812345678").into_owned();
        assert_ne!(scrubbed, "13812345678");
        assert_ne!(marked, "13812345678");
        assert_eq!(
            out.ok(),
            format!(r#"[{{"reading":"{scrubbed}"}},{{"reading":"{scrubbed}"}}]"#)
        );
        // A clean reading is marked as usual.
        let clean = r#"[{"id":"M-1","reading":1234.5}]"#;
        let marked = m.mark(b"M-1", "reading", "1234.5").unwrap();
        assert_eq!(
            run(&p, InputFormat::JsonArray, OutputFormat::Json, clean).ok(),
            format!(r#"[{{"reading":{marked}}}]"#)
        );
    }

    #[test]
    fn the_digest_holds_the_keys_of_the_records_written_and_no_others() {
        use crate::stream::RowBatch;
        let mut p = (*plan(&[("district", EMIT)], Some("district = 'Xuhui'"))).clone();
        p.record_key = Some("id".to_owned());
        let p = Arc::new(p);
        let check = |m: &Masker, what: &str| {
            let d = m.served().unwrap_or_else(|| panic!("{what}: no digest"));
            // HY-1 was skipped, HY-2 filtered, HY-5 had no key; HY-3 (a number key) and HY-4
            // were written.
            assert_eq!(d.keys(), 2, "{what}");
            assert!(d.contains(b"3") && d.contains(b"HY-4"), "{what}");
            for absent in ["HY-1", "HY-2", "HY-5", "3.0"] {
                assert!(!d.contains(absent.as_bytes()), "{what}: {absent}");
            }
        };
        let json = r#"[{"id":"HY-1","district":"Xuhui"},{"id":"HY-2","district":"Putuo"},{"id":3,"district":"Xuhui"},{"district":"Xuhui","id":"HY-4"},{"district":"Xuhui"}]"#;
        let csv = "id,district\nHY-1,Xuhui\nHY-2,Putuo\n3,Xuhui\nHY-4,Xuhui\n,Xuhui\n";
        for (input, doc) in [(InputFormat::JsonArray, json), (InputFormat::Csv, csv)] {
            let mut m = Masker::new(
                p.clone(),
                input.clone(),
                OutputFormat::Json,
                MaskerLimits::default(),
            )
            .skip_records(1);
            let mut out = Vec::new();
            m.feed(doc.as_bytes(), &mut out).unwrap();
            m.finish(&mut out).unwrap();
            // An empty CSV key is a key: only JSON's missing one is not.
            if input == InputFormat::Csv {
                assert_eq!(m.served().unwrap().keys(), 3);
                continue;
            }
            check(&m, "json");
        }
        let mut m = Masker::typed(
            p.clone(),
            None,
            &["district", "id"],
            OutputFormat::Json,
            MaskerLimits::default(),
        )
        .skip_records(1);
        let mut b = RowBatch::new(2);
        for (d, id) in [
            ("Xuhui", Some("HY-1")),
            ("Putuo", Some("HY-2")),
            ("Xuhui", None),
            ("Xuhui", Some("HY-4")),
            ("Xuhui", None),
        ] {
            b.push_text(d);
            match id {
                Some(id) => b.push_text(id),
                None => b.push_null(),
            }
        }
        let mut third = RowBatch::new(2);
        third.push_text("Xuhui");
        third.push_int(3);
        let mut out = Vec::new();
        m.push_rows(&b, &mut out).unwrap();
        m.push_rows(&third, &mut out).unwrap();
        m.finish(&mut out).unwrap();
        check(&m, "rows");
        // Without a record key in the plan there is no digest.
        let mut m = Masker::new(
            plan(&[("district", EMIT)], None),
            InputFormat::JsonArray,
            OutputFormat::Json,
            MaskerLimits::default(),
        );
        m.feed(json.as_bytes(), &mut out).unwrap();
        assert!(m.served().is_none());
    }

    #[test]
    fn marked_fields_cannot_be_filtered_on() {
        use crate::query::ClientQuery;
        let p = plan(
            &[
                ("id", EMIT),
                (
                    "lat",
                    FieldAction::Fingerprint {
                        marker: marker("acme"),
                        scan: false,
                    },
                ),
            ],
            None,
        );
        // A filter or an order on the original value would let the licensee test it and strip
        // the mark: refused like a masked field.
        for pairs in [[("lat", "eq.31.123456")], [("order", "lat.asc")]] {
            let q = ClientQuery::from_pairs(pairs).unwrap();
            assert!(q.authorize(&p).is_err(), "{pairs:?}");
        }
        assert!(ClientQuery::from_pairs([("id", "eq.HY-1")])
            .unwrap()
            .authorize(&p)
            .is_ok());
    }
}

/// Issue 14: upheld objections suppress records and upheld corrections mark them.
mod record_marks {
    use super::*;
    use crate::objection::RecordMarks;
    use crate::stream::RowBatch;

    fn marked(filter: Option<&str>) -> Arc<FieldPlan> {
        let mut p = (*plan(&[("id", EMIT), ("name", EMIT)], filter)).clone();
        p.record_key = Some("id".to_owned());
        let mut m = RecordMarks::default();
        m.suppressed.insert("2".to_owned());
        m.suppressed.insert("HY-9".to_owned());
        m.disputed.insert("3".to_owned(), "obj-1".to_owned());
        p.marks = Some(Arc::new(m));
        Arc::new(p)
    }

    const JSON: &str = r#"[{"id":1,"name":"a"},{"name":"b","id":2},{"id":3,"name":"c"},{"id":"HY-9","name":"d"},{"name":"e"}]"#;

    #[test]
    fn suppressed_records_never_leave_and_disputed_ones_carry_the_objection() {
        let p = marked(None);
        let r = run_all_splits(&p, InputFormat::JsonArray, OutputFormat::Json, JSON);
        assert_eq!(
            r.ok(),
            r#"[{"id":1,"name":"a"},{"id":3,"name":"c","_sluice_disputed":"obj-1"},{"name":"e"}]"#
        );
        let stats = r.res.as_ref().unwrap();
        assert_eq!(
            (
                stats.records_out,
                stats.records_suppressed,
                stats.records_disputed
            ),
            (3, 2, 1)
        );
        let nd = run(&p, InputFormat::JsonArray, OutputFormat::Ndjson, JSON);
        assert_eq!(
            nd.ok(),
            "{\"id\":1,\"name\":\"a\"}\n{\"id\":3,\"name\":\"c\",\"_sluice_disputed\":\"obj-1\"}\n{\"name\":\"e\"}\n"
        );
        // CSV in and out: the mark is a column of every row, empty where there is none.
        let csv = "id,name\n1,a\n2,b\n3,c\nHY-9,d\n";
        let c = run_all_splits(&p, InputFormat::Csv, OutputFormat::Csv, csv);
        assert_eq!(c.ok(), "id,name,_sluice_disputed\n1,a,\n3,c,obj-1\n");
        // A plan that emits only the name still finds the key, and a record whose only
        // planned field is absent still carries its mark.
        let narrow = Arc::new(p.narrowed(&["name"]).unwrap());
        assert_eq!(
            run(
                &narrow,
                InputFormat::JsonArray,
                OutputFormat::Json,
                r#"[{"id":2,"name":"b"},{"id":3}]"#
            )
            .ok(),
            r#"[{"_sluice_disputed":"obj-1"}]"#
        );
    }

    #[test]
    fn suppressed_records_are_not_counted_by_offsets_limits_or_filters() {
        let p = marked(Some("name != 'c'"));
        let lim = MaskerLimits {
            max_records: Some(2),
            ..MaskerLimits::default()
        };
        let mut m = Masker::new(p.clone(), InputFormat::JsonArray, OutputFormat::Json, lim).skip_records(1);
        let mut out = Vec::new();
        let doc = r#"[{"id":2,"name":"b"},{"id":1,"name":"a"},{"id":3,"name":"c"},{"id":"HY-9","name":"d"},{"id":4,"name":"e"},{"id":5,"name":"f"},{"id":6,"name":"g"}]"#;
        m.feed(doc.as_bytes(), &mut out).unwrap();
        let stats = m.finish(&mut out).unwrap();
        // 2 and HY-9 suppressed, 3 filtered, 1 skipped, then 4 and 5 fill the limit.
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"[{"id":4,"name":"e"},{"id":5,"name":"f"}]"#
        );
        assert_eq!(
            (
                stats.records_suppressed,
                stats.records_filtered,
                stats.records_skipped
            ),
            (2, 1, 1)
        );
    }

    #[test]
    fn typed_rows_are_marked_like_json() {
        let p = marked(None);
        let mut m = Masker::typed(
            p.clone(),
            None,
            &["name", "id"],
            OutputFormat::Json,
            MaskerLimits::default(),
        );
        let mut b = RowBatch::new(2);
        for (n, id) in [("a", 1), ("b", 2), ("c", 3)] {
            b.push_text(n);
            b.push_int(id);
        }
        b.push_text("d");
        b.push_text("HY-9");
        let mut out = Vec::new();
        m.push_rows(&b, &mut out).unwrap();
        let stats = m.finish(&mut out).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"[{"id":1,"name":"a"},{"id":3,"name":"c","_sluice_disputed":"obj-1"}]"#
        );
        assert_eq!(stats.records_suppressed, 2);
    }

    #[test]
    fn marks_without_a_record_key_or_without_entries_change_nothing() {
        let mut p = (*marked(None)).clone();
        p.marks = Some(Arc::new(RecordMarks::default()));
        let csv = "id,name\n2,b\n";
        assert_eq!(
            run(&Arc::new(p.clone()), InputFormat::Csv, OutputFormat::Csv, csv).ok(),
            "id,name\n2,b\n"
        );
    }
}

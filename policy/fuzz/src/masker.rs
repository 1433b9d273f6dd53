//! The masker harness shared by `masker_json` and `masker_csv`.
//!
//! One case is a fixed plan, a format pair, an optional row filter and record limit, and a
//! body split into chunks. [`check`] runs the masker and panics on any violated invariant:
//!
//! 1. no panic inside the masker;
//! 2. the output and the result (stats or error, offsets included) are identical whether the
//!    body is fed whole, in the fuzzed chunk sizes, or byte by byte; after an error every call
//!    returns the same error and writes nothing;
//! 3. a successful output re-parses (JSON / NDJSON / CSV, cross-checked with `serde_json`),
//!    its records hold only planned fields, in plan order, and equal what an independent
//!    non-streaming oracle ([`crate::jsonref`], [`crate::csvref`]) computes from the body with
//!    the public masking functions; after an error the output is exactly the records before it;
//! 4. no value of a dropped field (not in the plan, a later duplicate, a filtered record) or
//!    original of a masked field appears in the output unless the expected output holds it too;
//! 5. the masker accepts exactly the bodies the oracle accepts (except nesting near the
//!    masker's depth bound).

use crate::csvref::CsvReader;
use crate::jsonref::{self, compact, leaves, Bad, Reader, J};
use sluice_policy::mask::detect::scrub;
use sluice_policy::mask::{MaskRule, Masked, PseudonymKey, Scalar};
use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
use sluice_policy::rowfilter::RowFilter;
use sluice_policy::stream::{InputFormat, MaskError, MaskStats, Masker, MaskerLimits, OutputFormat};
use std::borrow::Cow;
use std::sync::Arc;

/// The row filter of the filtered plan: reads `status`, a field the plan does not emit.
pub const FILTER: &str = "status != 'decommissioned'";

/// Bytes of the case header in front of the body.
pub const HEADER: usize = 8;

/// The fixed, hydrant-like plan: clear, partial, pseudonym, redact, generalisations, a scanned
/// free-text field and a non-ASCII name. Fields such as `street`, `status` and `secret` are
/// dropped by omission, as a licence's `drop` rule compiles (see `decide.rs`).
pub fn plan(filter: bool) -> Arc<FieldPlan> {
    let f = |name: &str, action: FieldAction| PlannedField {
        name: name.to_owned(),
        action,
    };
    let clear = FieldAction::Emit { scan: false };
    let mask = FieldAction::Mask;
    Arc::new(FieldPlan {
        record_key: None,
        marks: None,
        fields: vec![
            f("id", clear.clone()),
            f("district", clear.clone()),
            f("lat", mask(MaskRule::Grid { cell: 0.01 })),
            f("lon", mask(MaskRule::Decimals { places: 2 })),
            f("last_inspection", mask(MaskRule::Month)),
            f("adopter_name", mask(MaskRule::Partial { first: 1, last: 0 })),
            f("adopter_mobile", mask(MaskRule::Pseudonym)),
            f("id_number", mask(MaskRule::Redact)),
            f("age", mask(MaskRule::AgeBand { width: 10 })),
            f("notes", FieldAction::Emit { scan: true }),
            f("备注", clear),
        ],
        row_filter: filter.then(|| RowFilter::parse(FILTER).expect("the filter parses")),
        key: PseudonymKey::derive(b"fuzz master secret", "acme", "hydrants"),
    })
}

/// One fuzz case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Input format.
    pub input: InputFormat,
    /// Output format.
    pub output: OutputFormat,
    /// Whether the plan has the row filter.
    pub filter: bool,
    /// `MaskerLimits::max_records`.
    pub max_records: Option<u64>,
    /// Chunk sizes, cycled (0: an empty chunk).
    pub chunks: Vec<usize>,
}

impl Case {
    /// Decodes the 8-byte header: `[input, output, flags, c0..c4]`.
    ///
    /// * `input % 4`: JSON array, JSON at `data.items`, JSON at `results`, NDJSON (ignored when
    ///   `csv`: the input is CSV);
    /// * `output % 3`: JSON, NDJSON, CSV;
    /// * `flags`: bit 0 the row filter; `flags >> 1` below 6 sets `max_records` to it;
    /// * `c0..c4`: chunk sizes in bytes, cycled (0 feeds an empty chunk).
    pub fn decode(data: &[u8], csv: bool) -> Option<(Case, &[u8])> {
        let (h, body) = data.split_at_checked(HEADER)?;
        let input = if csv {
            InputFormat::Csv
        } else {
            match h[0] % 4 {
                0 => InputFormat::JsonArray,
                1 => InputFormat::JsonAt(vec!["data".into(), "items".into()]),
                2 => InputFormat::JsonAt(vec!["results".into()]),
                _ => InputFormat::Ndjson,
            }
        };
        let output = match h[1] % 3 {
            0 => OutputFormat::Json,
            1 => OutputFormat::Ndjson,
            _ => OutputFormat::Csv,
        };
        let lim = u64::from(h[2] >> 1);
        let mut chunks: Vec<usize> = h[3..].iter().map(|&b| usize::from(b)).collect();
        if chunks.iter().all(|&c| c == 0) {
            chunks = vec![1];
        }
        Some((
            Case {
                input,
                output,
                filter: h[2] & 1 == 1,
                max_records: (lim < 6).then_some(lim),
                chunks,
            },
            body,
        ))
    }
}

/// What one masking run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The output bytes.
    pub out: Vec<u8>,
    /// Stats or the error.
    pub res: Result<MaskStats, MaskError>,
}

/// Runs the masker over `chunks`, checking that an error sticks and writes nothing more.
pub fn run_chunks<'a>(plan: &Arc<FieldPlan>, case: &Case, chunks: impl IntoIterator<Item = &'a [u8]>) -> Run {
    let limits = MaskerLimits {
        max_records: case.max_records,
        ..MaskerLimits::default()
    };
    let mut m = Masker::new(plan.clone(), case.input.clone(), case.output, limits);
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = m.feed(c, &mut out) {
            let len = out.len();
            assert_eq!(m.feed(b"{}\n", &mut out), Err(e.clone()), "feed after an error");
            assert_eq!(m.finish(&mut out), Err(e.clone()), "finish after an error");
            assert_eq!(out.len(), len, "output written after an error");
            assert_eq!(m.error(), Some(&e));
            return Run { out, res: Err(e) };
        }
    }
    let res = m.finish(&mut out);
    if let Ok(s) = &res {
        // finish is idempotent.
        let len = out.len();
        assert_eq!(m.finish(&mut out).as_ref(), Ok(s));
        assert_eq!(out.len(), len, "a second finish wrote output");
    }
    Run { out, res }
}

/// Splits `doc` into chunks of the cycled sizes.
pub fn split<'a>(doc: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut v = Vec::new();
    let mut at = 0;
    let mut k = 0;
    loop {
        let n = sizes[k % sizes.len()].min(doc.len() - at);
        v.push(&doc[at..at + n]);
        at += n;
        k += 1;
        if at == doc.len() && k >= sizes.len() {
            return v;
        }
    }
}

/// Runs one case and checks every invariant (panics on a violation).
pub fn check(case: &Case, doc: &[u8]) {
    let plan = plan(case.filter);
    let whole = run_chunks(&plan, case, [doc]);
    let chunked = run_chunks(&plan, case, split(doc, &case.chunks));
    assert_runs_eq(case, &whole, &chunked, "fuzzed chunk sizes");
    // Byte by byte re-scans a carried record from its start: quadratic, so small bodies only.
    if doc.len() <= 1024 {
        let bytewise = run_chunks(&plan, case, doc.chunks(1));
        assert_runs_eq(case, &whole, &bytewise, "byte by byte");
    }
    Oracle::new(&plan, case).check(doc, &whole);
}

fn assert_runs_eq(case: &Case, whole: &Run, other: &Run, what: &str) {
    // Once `max_records` is reached the masker stops counting input, so `bytes_in` is the
    // bytes fed until then: it depends on where the chunks end (by design, not a finding).
    let full = case
        .max_records
        .is_some_and(|m| matches!(&whole.res, Ok(s) if s.records_out >= m));
    let norm = |r: &Run| {
        let mut r = r.clone();
        match &mut r.res {
            Ok(s) if full => s.bytes_in = 0,
            _ => {}
        }
        r
    };
    assert!(
        norm(whole) == norm(other),
        "chunking changed the result ({what}):\n whole:   {:?} {:?}\n chunked: {:?} {:?}",
        String::from_utf8_lossy(&whole.out),
        whole.res,
        String::from_utf8_lossy(&other.out),
        other.res
    );
}

/// A record as the oracle reads it: members in input order, duplicates kept.
type Rec = Vec<(String, J)>;

/// What the oracle read: records in order, then how the input ended.
struct Read {
    recs: Vec<Rec>,
    /// `Ok`: complete (or stopped at the record limit).
    end: Result<(), Bad>,
    /// The input nests close to the masker's depth bound: it may reject it.
    deep: bool,
}

/// Control flow of the oracle's readers.
enum Flow {
    Go,
    /// The record limit was reached: stop reading, successfully.
    Stop,
}

struct Oracle<'p> {
    plan: &'p FieldPlan,
    case: &'p Case,
}

impl<'p> Oracle<'p> {
    fn new(plan: &'p FieldPlan, case: &'p Case) -> Self {
        Self { plan, case }
    }

    /// The row filter on a record's original values (first occurrence of each field).
    fn passes(&self, rec: &Rec) -> bool {
        let Some(f) = &self.plan.row_filter else {
            return true;
        };
        f.matches(|name| match first(rec, name) {
            Some(J::Str(s) | J::Num(s)) => Some(s.as_str()),
            Some(J::Bool(true)) => Some("true"),
            Some(J::Bool(false)) => Some("false"),
            _ => None,
        })
    }

    /// Adds a record; `Stop` once the record limit of passing records is reached.
    fn push(&self, recs: &mut Vec<Rec>, rec: Rec) -> Flow {
        recs.push(rec);
        let passed = recs.iter().filter(|r| self.passes(r)).count() as u64;
        if self.case.max_records.is_some_and(|m| passed >= m) {
            Flow::Stop
        } else {
            Flow::Go
        }
    }

    fn read(&self, doc: &[u8]) -> Read {
        let mut recs = Vec::new();
        if self.case.max_records == Some(0) {
            return Read {
                recs,
                end: Ok(()),
                deep: false,
            };
        }
        if self.case.input == InputFormat::Csv {
            let end = self.read_csv(doc, &mut recs);
            return Read {
                recs,
                end,
                deep: false,
            };
        }
        let mut r = Reader::new(doc);
        let end = match &self.case.input {
            InputFormat::JsonArray => self.read_array(&mut r, &mut recs).and_then(|f| match f {
                Flow::Stop => Ok(()),
                Flow::Go => end_of_doc(&mut r),
            }),
            InputFormat::JsonAt(path) => {
                let mut found = false;
                r.ws();
                match self.read_nav(&mut r, path, 0, &mut found, &mut recs) {
                    Ok(Flow::Stop) => Ok(()),
                    Ok(Flow::Go) if !found => Err(r.bad("no array at the member path")),
                    Ok(Flow::Go) => end_of_doc(&mut r),
                    Err(e) => Err(e),
                }
            }
            InputFormat::Ndjson => self.read_ndjson(&mut r, &mut recs),
            InputFormat::Csv | InputFormat::Rows => unreachable!(),
        };
        Read {
            recs,
            end,
            deep: r.max_depth >= 120,
        }
    }

    /// A record: an object.
    fn record(r: &mut Reader<'_>, depth: usize) -> Result<Rec, Bad> {
        if r.peek() != Some(b'{') {
            return Err(r.bad("a record is not an object"));
        }
        match r.object(depth + 1)? {
            J::Obj(o) => Ok(o),
            _ => unreachable!(),
        }
    }

    /// The record array at `[`, whose enclosing nesting is `depth`.
    fn read_records(&self, r: &mut Reader<'_>, depth: usize, recs: &mut Vec<Rec>) -> Result<Flow, Bad> {
        r.expect(b'[', "expected a JSON array")?;
        r.ws();
        if r.peek() == Some(b']') {
            r.i += 1;
            return Ok(Flow::Go);
        }
        loop {
            r.ws();
            let rec = Self::record(r, depth + 1)?;
            if let Flow::Stop = self.push(recs, rec) {
                return Ok(Flow::Stop);
            }
            r.ws();
            match r.peek() {
                Some(b',') => r.i += 1,
                Some(b']') => {
                    r.i += 1;
                    return Ok(Flow::Go);
                }
                _ => return Err(r.bad("expected `,` or `]`")),
            }
        }
    }

    fn read_array(&self, r: &mut Reader<'_>, recs: &mut Vec<Rec>) -> Result<Flow, Bad> {
        r.ws();
        self.read_records(r, 0, recs)
    }

    /// The object at `depth` of the path; enters the first member named by the path.
    fn read_nav(
        &self,
        r: &mut Reader<'_>,
        path: &[String],
        depth: usize,
        found: &mut bool,
        recs: &mut Vec<Rec>,
    ) -> Result<Flow, Bad> {
        r.expect(b'{', "expected a JSON object")?;
        let mut entered = false;
        r.ws();
        if r.peek() == Some(b'}') {
            r.i += 1;
            return Ok(Flow::Go);
        }
        loop {
            r.ws();
            if r.peek() != Some(b'"') {
                return Err(r.bad("expected a member name"));
            }
            let k = r.string()?;
            r.ws();
            r.expect(b':', "expected `:`")?;
            r.ws();
            if !entered && k == path[depth] {
                entered = true;
                let flow = if depth + 1 == path.len() {
                    *found = true;
                    self.read_records(r, depth + 1, recs)?
                } else {
                    self.read_nav(r, path, depth + 1, found, recs)?
                };
                if let Flow::Stop = flow {
                    return Ok(Flow::Stop);
                }
            } else {
                r.value(depth + 1)?;
            }
            r.ws();
            match r.peek() {
                Some(b',') => r.i += 1,
                Some(b'}') => {
                    r.i += 1;
                    return Ok(Flow::Go);
                }
                _ => return Err(r.bad("expected `,` or `}`")),
            }
        }
    }

    fn read_ndjson(&self, r: &mut Reader<'_>, recs: &mut Vec<Rec>) -> Result<(), Bad> {
        loop {
            r.ws();
            if r.at_end() {
                return Ok(());
            }
            let rec = Self::record(r, 0)?;
            if let Flow::Stop = self.push(recs, rec) {
                return Ok(());
            }
            // The rest of the line: spaces, tabs and CRs only.
            while matches!(r.peek(), Some(b' ' | b'\t' | b'\r')) {
                r.i += 1;
            }
            match r.peek() {
                None => return Ok(()),
                Some(b'\n') => r.i += 1,
                Some(_) => return Err(r.bad("expected the end of the line")),
            }
        }
    }

    fn read_csv(&self, doc: &[u8], recs: &mut Vec<Rec>) -> Result<(), Bad> {
        // A byte-order mark may open the body, also before a quoted header cell (issue 11,
        // item 4); anywhere else it is data.
        let doc = doc.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(doc);
        let mut rd = CsvReader::new(doc);
        let header = match rd.next() {
            None => {
                return Err(Bad {
                    at: doc.len(),
                    msg: "missing header row",
                })
            }
            Some(h) => h?,
        };
        while let Some(row) = rd.next() {
            let row = row?;
            if row.len() != header.len() {
                return Err(Bad {
                    at: 0,
                    msg: "row has a different number of cells than the header",
                });
            }
            let rec: Rec = header.iter().cloned().zip(row.into_iter().map(J::Str)).collect();
            if let Flow::Stop = self.push(recs, rec) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The expected output value of the planned field `field` of `rec`, `None` when it is left
    /// out.
    fn expected_value(&self, field: &str, action: &FieldAction, v: &J, rec: &Rec) -> Option<J> {
        match action {
            FieldAction::Fingerprint { marker: m, scan } => {
                // The safety net reads the source's value first: a hit there is emitted scrubbed,
                // unmarked.
                let scanned = self.expected_value(field, &FieldAction::Emit { scan: *scan }, v, rec);
                if scanned.as_ref() != Some(v) {
                    return scanned;
                }
                let key = match first(rec, &m.record_key) {
                    Some(J::Str(k) | J::Num(k)) => Some(k.clone()),
                    _ => None,
                };
                let marked = match (key, v) {
                    (Some(k), J::Num(t)) => m.mark(k.as_bytes(), field, t).map_or_else(|| v.clone(), J::Num),
                    (Some(k), J::Str(t)) => m.mark(k.as_bytes(), field, t).map_or_else(|| v.clone(), J::Str),
                    _ => v.clone(),
                };
                // Marked or not, the value then passes the safety net as an emitted one does.
                self.expected_value(field, &FieldAction::Emit { scan: *scan }, &marked, rec)
            }
            FieldAction::Emit { scan: false } => Some(v.clone()),
            FieldAction::Emit { scan: true } => Some(match v {
                J::Num(t) => match scrub(t) {
                    Cow::Owned(s) => J::Str(s),
                    Cow::Borrowed(_) => v.clone(),
                },
                other => scan_leaves(other),
            }),
            FieldAction::Mask(rule) => {
                let text;
                let scalar = match v {
                    J::Str(s) => Scalar::Str(s),
                    J::Num(t) => Scalar::Num(t),
                    J::Bool(b) => Scalar::Bool(*b),
                    J::Null => Scalar::Null,
                    J::Arr(_) | J::Obj(_) => {
                        text = compact(v);
                        Scalar::Composite(&text)
                    }
                };
                match rule.apply(scalar, &self.plan.key) {
                    Masked::Keep => Some(v.clone()),
                    Masked::Omit => None,
                    Masked::Null => Some(J::Null),
                    Masked::Str(s) => Some(J::Str(s)),
                    Masked::Num(t) if jsonref::is_number(&t) => Some(J::Num(t)),
                    Masked::Num(t) => Some(J::Str(t)),
                }
            }
        }
    }

    /// The expected output record of an input record.
    fn expected(&self, rec: &Rec) -> Rec {
        self.plan
            .fields
            .iter()
            .filter_map(|f| {
                let v = first(rec, &f.name)?;
                Some((f.name.clone(), self.expected_value(&f.name, &f.action, v, rec)?))
            })
            .collect()
    }

    /// Values that must not leave unless the expected output holds them too: every value of a
    /// filtered record; in the others, unplanned members, later duplicates and the originals
    /// of masked fields.
    fn hidden(&self, read: &[Rec]) -> Vec<String> {
        let mut h = Vec::new();
        for rec in read {
            let pass = self.passes(rec);
            for (n, (k, v)) in rec.iter().enumerate() {
                let field = self.plan.fields.iter().find(|f| &f.name == k);
                let dup = rec.iter().position(|(rk, _)| rk == k) != Some(n);
                let masked = matches!(field, Some(f) if matches!(f.action, FieldAction::Mask(_)));
                if !pass || field.is_none() || dup || masked {
                    if field.is_none() {
                        h.push(k.clone());
                    }
                    leaves(v, &mut h);
                }
            }
        }
        h.retain(|s| s.chars().count() >= 4);
        h.sort();
        h.dedup();
        h
    }

    fn check(&self, doc: &[u8], run: &Run) {
        let read = self.read(doc);
        let ctx = || {
            format!(
                "\ncase {:?}\nbody {:?}\nmasker {:?}\noutput {:?}",
                self.case,
                String::from_utf8_lossy(doc),
                run.res,
                String::from_utf8_lossy(&run.out)
            )
        };
        match (&run.res, &read.end) {
            (Ok(_), Err(e)) => panic!("the masker accepted input the oracle rejects ({e:?}){}", ctx()),
            (Err(e), Ok(())) if !read.deep => {
                panic!("the masker rejected input the oracle accepts ({e}){}", ctx())
            }
            (Err(_), Ok(())) => return,
            _ => {}
        }
        let passing: Vec<&Rec> = read.recs.iter().filter(|r| self.passes(r)).collect();
        if let Ok(s) = &run.res {
            assert_eq!(s.records_in, read.recs.len() as u64, "records_in{}", ctx());
            assert_eq!(s.records_out, passing.len() as u64, "records_out{}", ctx());
            assert_eq!(
                s.records_filtered,
                s.records_in - s.records_out,
                "records_filtered{}",
                ctx()
            );
        } else if run.out.is_empty() && self.case.output != OutputFormat::Ndjson {
            // JSON and CSV output is opened by the first record read (NDJSON has no opening).
            assert!(read.recs.is_empty(), "records read but no output{}", ctx());
            return;
        }
        let complete = run.res.is_ok();
        let expected: Vec<Rec> = passing.iter().map(|r| self.expected(r)).collect();
        let names: Vec<String> = self.plan.names().map(str::to_owned).collect();
        match self.case.output {
            OutputFormat::Json | OutputFormat::Ndjson => {
                let actual = self.parse_json_out(&run.out, complete).unwrap_or_else(|e| {
                    panic!("the output does not re-parse: {e}{}", ctx());
                });
                for r in &actual {
                    for (k, _) in r {
                        assert!(names.contains(k), "unplanned field {k:?} in the output{}", ctx());
                    }
                }
                if actual != expected {
                    self.diagnose_leak(&read.recs, &actual, &expected, &ctx);
                    panic!(
                        "output records differ from the oracle:\n actual   {actual:?}\n expected {expected:?}{}",
                        ctx()
                    );
                }
            }
            OutputFormat::Csv => {
                let rows = crate::csvref::read_all(&run.out)
                    .unwrap_or_else(|e| panic!("the CSV output does not re-parse: {e:?}{}", ctx()));
                assert!(
                    run.out.is_empty() || run.out.ends_with(b"\n"),
                    "CSV output must end with a newline{}",
                    ctx()
                );
                let (header, body) = rows
                    .split_first()
                    .unwrap_or_else(|| panic!("no CSV header{}", ctx()));
                assert_eq!(header, &names, "CSV header{}", ctx());
                let exp_rows: Vec<Vec<String>> = expected
                    .iter()
                    .map(|r| {
                        names
                            .iter()
                            .map(|n| first(r, n).map(csv_text).unwrap_or_default())
                            .collect()
                    })
                    .collect();
                if body != exp_rows.as_slice() {
                    let as_recs = |rows: &[Vec<String>]| -> Vec<Rec> {
                        rows.iter()
                            .map(|row| {
                                names
                                    .iter()
                                    .cloned()
                                    .zip(row.iter().cloned().map(J::Str))
                                    .collect()
                            })
                            .collect()
                    };
                    let (act, exp) = (as_recs(body), as_recs(&exp_rows));
                    self.diagnose_leak(&read.recs, &act, &exp, &ctx);
                    panic!(
                        "CSV rows differ from the oracle:\n actual   {body:?}\n expected {exp_rows:?}{}",
                        ctx()
                    );
                }
            }
        }
    }

    /// Parses JSON or NDJSON output (an unfinished document when `!complete`) into records.
    fn parse_json_out(&self, out: &[u8], complete: bool) -> Result<Vec<Rec>, String> {
        let objs = |v: Vec<J>| -> Result<Vec<Rec>, String> {
            v.into_iter()
                .map(|x| match x {
                    J::Obj(o) => Ok(o),
                    other => Err(format!("output record is not an object: {other:?}")),
                })
                .collect()
        };
        if self.case.output == OutputFormat::Json {
            let mut text = out.to_vec();
            if !complete {
                text.push(b']');
            }
            serde_json::from_slice::<serde::de::IgnoredAny>(&text).map_err(|e| format!("serde_json: {e}"))?;
            match jsonref::parse_doc(&text).map_err(|e| format!("{e:?}"))? {
                J::Arr(a) => objs(a),
                other => Err(format!("output is not an array: {other:?}")),
            }
        } else {
            if !out.is_empty() && !out.ends_with(b"\n") {
                return Err("NDJSON output does not end with a newline".into());
            }
            let mut v = Vec::new();
            for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                serde_json::from_slice::<serde::de::IgnoredAny>(line)
                    .map_err(|e| format!("serde_json: {e}"))?;
                v.push(jsonref::parse_doc(line).map_err(|e| format!("{e:?}"))?);
            }
            objs(v)
        }
    }

    /// Panics with a specific message when a hidden value appears in the actual output but in
    /// no expected value.
    fn diagnose_leak(&self, read: &[Rec], actual: &[Rec], expected: &[Rec], ctx: &dyn Fn() -> String) {
        let pieces = |recs: &[Rec]| {
            let mut p = Vec::new();
            for r in recs {
                for (k, v) in r {
                    p.push(k.clone());
                    leaves(v, &mut p);
                }
            }
            p
        };
        let (act, exp) = (pieces(actual), pieces(expected));
        for h in self.hidden(read) {
            if act.iter().any(|a| a.contains(&h)) && !exp.iter().any(|e| e.contains(&h)) {
                panic!(
                    "LEAK: dropped or masked value {h:?} appears in the output{}",
                    ctx()
                );
            }
        }
    }
}

/// The first value of `name` in a record.
fn first<'r>(rec: &'r Rec, name: &str) -> Option<&'r J> {
    rec.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The detector over every string, member name and number of a value at any depth; a number
/// holding an identifier becomes the scrubbed string (issue 11, item 1).
fn scan_leaves(v: &J) -> J {
    match v {
        J::Str(s) => J::Str(scrub(s).into_owned()),
        J::Num(t) => match scrub(t) {
            Cow::Owned(s) => J::Str(s),
            Cow::Borrowed(_) => v.clone(),
        },
        J::Arr(a) => J::Arr(a.iter().map(scan_leaves).collect()),
        J::Obj(o) => J::Obj(
            o.iter()
                .map(|(k, x)| (scrub(k).into_owned(), scan_leaves(x)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A value as a CSV cell: strings decoded, `null` empty, composites compact.
fn csv_text(v: &J) -> String {
    match v {
        J::Str(s) | J::Num(s) => s.clone(),
        J::Null => String::new(),
        J::Bool(b) => b.to_string(),
        J::Arr(_) | J::Obj(_) => compact(v),
    }
}

/// Checks that the input was read to its end (only whitespace after the document).
fn end_of_doc(r: &mut Reader<'_>) -> Result<(), Bad> {
    r.ws();
    if r.at_end() {
        Ok(())
    } else {
        Err(r.bad("trailing bytes after the document"))
    }
}

/// Builds a fuzz input from a header and a body (for seeds and regression tests).
pub fn encode(header: [u8; HEADER], body: &[u8]) -> Vec<u8> {
    let mut v = header.to_vec();
    v.extend_from_slice(body);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_cases(csv: bool, body: &[u8]) {
        for input in 0..4u8 {
            for output in 0..3u8 {
                for flags in [0u8, 1, 2, 5, 6] {
                    let data = encode([input, output, flags, 3, 0, 7, 1, 64], body);
                    let (case, doc) = Case::decode(&data, csv).unwrap();
                    check(&case, doc);
                }
            }
        }
    }

    #[test]
    fn seeds_pass() {
        let json = r#"{"data":{"items":[{"id":"HY-1","district":"Huangpu","street":"Siping Rd 12","lat":31.234567,"lon":121.47,"status":"in_service","last_inspection":"2024-03-15","adopter_name":"Wang Wei","adopter_mobile":"13812345678","id_number":"110105194912310025","age":37,"notes":"call 13812345678 first","备注":"ok"}]},"results":[{"id":1,"status":"decommissioned","secret":"TOPSECRET"}]}"#;
        all_cases(false, json.as_bytes());
        all_cases(false, b"[{\"id\":1,\"status\":\"ok\"},\n{\"id\":2}]");
        all_cases(
            false,
            b"{\"id\":1,\"status\":\"ok\",\"notes\":[\"a@b.cn\",{\"13812345678\":1}]}\n{\"id\":2}\n",
        );
        all_cases(false, b"[1]");
        all_cases(false, b"");
        all_cases(
            true,
            "\u{feff}id,street,status,adopter_mobile,notes,备注\r\nHY-1,Siping Rd,ok,13812345678,\"a, \"\"b\"\"\",x\r\n\r\nHY-2,,decommissioned,,,\n"
                .as_bytes(),
        );
        all_cases(true, b"id,id\n1,2\n");
        // The committed seeds, as the targets run them.
        for (target, csv) in [("masker_json", false), ("masker_csv", true)] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("seeds")
                .join(target);
            for e in std::fs::read_dir(&dir).unwrap() {
                let data = std::fs::read(e.unwrap().path()).unwrap();
                let (case, body) = Case::decode(&data, csv).unwrap();
                check(&case, body);
            }
        }
        all_cases(true, b"id\n\"1\"x\n");
    }
}

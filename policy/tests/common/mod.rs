//! Shared by the property tests: planted identifiers in free text with the text the detectors
//! must turn them into (an independent model, not the detectors), a masker runner and a small
//! CSV reader.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use serde_json::Value;
use sluice_policy::plan::FieldPlan;
use sluice_policy::stream::{InputFormat, MaskError, MaskStats, Masker, MaskerLimits, OutputFormat};
use std::ops::Range;
use std::sync::Arc;

/// An identifier as written in text, and the digits the detectors must star.
#[derive(Debug, Clone)]
pub struct Ident {
    /// As written (`138 0013 8000`, `+8613800138000`, `11010519491231002X`, …).
    pub text: String,
    /// The starred digits, as indices over the digits of `text`.
    pub starred: Range<usize>,
    /// `text` is a JSON number (digits only).
    pub numeric: bool,
}

impl Ident {
    /// The text with the documented digits starred (separators and length kept).
    pub fn masked(&self) -> String {
        let mut n = 0;
        self.text
            .chars()
            .map(|c| {
                if !c.is_ascii_digit() {
                    return c;
                }
                n += 1;
                if self.starred.contains(&(n - 1)) {
                    '*'
                } else {
                    c
                }
            })
            .collect()
    }
}

fn days_in(y: u32, m: u32) -> u32 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A mainland mobile number, 11 digits.
pub fn mobile() -> impl Strategy<Value = String> {
    "1[3-9][0-9]{9}"
}

/// A valid resident ID (GB 11643): area, birth date 1900–2099, sequence, check character.
pub fn resident_id() -> impl Strategy<Value = String> {
    ("[1-9][0-9]{5}", 1900u32..=2099, 1u32..=12, 1u32..=31, "[0-9]{3}").prop_map(|(area, y, m, d, seq)| {
        let id17 = format!("{area}{y:04}{m:02}{:02}{seq}", d.min(days_in(y, m)));
        const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = id17.bytes().zip(W).map(|(c, w)| u32::from(c - b'0') * w).sum();
        format!("{id17}{}", char::from(b"10X98765432"[(sum % 11) as usize]))
    })
}

/// A 16-digit card number starting with 4–6, valid Luhn.
pub fn card() -> impl Strategy<Value = String> {
    "[4-6][0-9]{14}".prop_map(|d15| {
        let sum: u32 = d15
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, c)| {
                let v = u32::from(c - b'0');
                match i % 2 {
                    0 if v * 2 > 9 => v * 2 - 9,
                    0 => v * 2,
                    _ => v,
                }
            })
            .sum();
        format!("{d15}{}", (10 - sum % 10) % 10)
    })
}

/// One identifier in one of the documented written forms.
pub fn ident() -> impl Strategy<Value = Ident> {
    let sep = prop::sample::select(vec![" ", "-"]);
    let id = |text: String, starred: Range<usize>, numeric: bool| Ident {
        text,
        starred,
        numeric,
    };
    prop_oneof![
        3 => mobile().prop_map(move |m| id(m, 3..7, true)),
        1 => (mobile(), sep.clone()).prop_map(move |(m, s)| id(format!("{}{s}{}{s}{}", &m[..3], &m[3..7], &m[7..]), 3..7, false)),
        1 => (mobile(), prop::sample::select(vec!["+86 ", "+86", "86", "+86 3-4-4"])).prop_map(move |(m, p)| match p {
            "+86 3-4-4" => id(format!("+86 {} {} {}", &m[..3], &m[3..7], &m[7..]), 5..9, false),
            p => id(format!("{p}{m}"), 5..9, p == "86"),
        }),
        3 => resident_id().prop_map(move |i| {
            let numeric = !i.ends_with('X');
            id(i, 3..17, numeric)
        }),
        1 => (resident_id(), sep.clone(), any::<bool>()).prop_map(move |(i, s, six_eight)| {
            let t = if six_eight {
                format!("{}{s}{}{s}{}", &i[..6], &i[6..14], &i[14..])
            } else {
                format!("{}{s}{}{s}{}{s}{}", &i[..6], &i[6..10], &i[10..14], &i[14..])
            };
            id(t, 3..17, false)
        }),
        1 => card().prop_map(move |c| id(c, 6..12, true)),
    ]
}

/// Text next to identifiers: words, CJK, characters JSON or CSV must escape, decimals and
/// short numbers. No `@`, no digit run longer than three, nothing starting with `.`, no `x`.
const NOISE: &[&str] = &[
    "tel",
    "联系",
    "米处",
    "v",
    "abc",
    "号码：",
    "No.",
    "处理",
    "(",
    ")",
    "\"",
    "\\",
    "\n",
    ",",
    "é",
    "😀",
    "\t",
    "\u{1}",
    "，",
    "/",
    ":",
    " ",
    "3.5",
    "-2.5",
    "0.125",
    "12.25",
    "v1.2",
    "1.2.3",
    "7",
    "12",
    "345",
    "86",
    "-1",
    "2.50",
];

/// Free text, what the detectors must make of it, and the identifiers planted in it.
#[derive(Debug, Clone, Default)]
pub struct Text {
    /// As written.
    pub raw: String,
    /// With every planted identifier masked as documented.
    pub masked: String,
    /// The planted identifiers, as written.
    pub idents: Vec<String>,
}

#[derive(Debug, Clone)]
enum Seg {
    Noise(&'static str),
    Ident(Ident),
}

/// Free text of noise and planted identifiers. Two digits never meet at a joint (a single
/// space or dash goes between them: the documented loose forms), so every identifier is a
/// whole number and the model is exact.
pub fn text() -> impl Strategy<Value = Text> {
    let seg = prop_oneof![
        3 => prop::sample::select(NOISE).prop_map(Seg::Noise),
        2 => ident().prop_map(Seg::Ident),
    ];
    prop::collection::vec((seg, 0usize..3), 0..7).prop_map(|segs| {
        let mut t = Text::default();
        for (s, pick) in segs {
            let (raw, masked) = match &s {
                Seg::Noise(n) => (n.to_string(), n.to_string()),
                Seg::Ident(i) => (i.text.clone(), i.masked()),
            };
            let digits = t.raw.ends_with(|c: char| c.is_ascii_digit())
                && raw.starts_with(|c: char| c.is_ascii_digit());
            let sep = if digits {
                [" ", "-", " "][pick]
            } else {
                ["", " ", "-"][pick]
            };
            if !t.raw.is_empty() {
                t.raw.push_str(sep);
                t.masked.push_str(sep);
            }
            t.raw.push_str(&raw);
            t.masked.push_str(&masked);
            if let Seg::Ident(i) = s {
                t.idents.push(i.text);
            }
        }
        t
    })
}

/// A value of a scanned field: text, numbers, booleans, null, arrays and objects at depth
/// (member names are text too).
#[derive(Debug, Clone)]
pub enum Tree {
    /// A string.
    Text(Text),
    /// A number: its JSON text and the expected value (a string when it holds an identifier).
    Num(String, Value),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An array.
    Arr(Vec<Tree>),
    /// An object.
    Obj(Vec<(Text, Tree)>),
}

/// A JSON number: an identifier (maybe negative), or a decimal the detectors leave alone.
pub fn number() -> impl Strategy<Value = Tree> {
    prop_oneof![
        (ident().prop_filter("numeric", |i| i.numeric), any::<bool>()).prop_map(|(i, neg)| {
            let sign = if neg { "-" } else { "" };
            Tree::Num(
                format!("{sign}{}", i.text),
                Value::String(format!("{sign}{}", i.masked())),
            )
        }),
        prop::sample::select(vec![
            "3.5", "-2.5", "0", "12", "1.5e3", "345", "2.50", "-0.125", "1E2"
        ])
        .prop_map(|t| Tree::Num(t.to_owned(), serde_json::from_str(t).unwrap())),
    ]
}

/// A scanned value, composites up to depth 3.
pub fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        4 => text().prop_map(Tree::Text),
        2 => number(),
        1 => any::<bool>().prop_map(Tree::Bool),
        1 => Just(Tree::Null),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Tree::Arr),
            prop::collection::vec((text(), inner), 0..4).prop_map(Tree::Obj),
        ]
    })
}

impl Tree {
    /// The JSON text; with `esc`, strings and names are written with `\u` escapes only.
    pub fn json(&self, esc: bool, out: &mut String) {
        match self {
            Tree::Text(t) => out.push_str(&json_str(&t.raw, esc)),
            Tree::Num(n, _) => out.push_str(n),
            Tree::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Tree::Null => out.push_str("null"),
            Tree::Arr(a) => {
                out.push('[');
                for (n, v) in a.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    v.json(esc, out);
                }
                out.push(']');
            }
            Tree::Obj(o) => {
                out.push_str("{ ");
                for (n, (k, v)) in o.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(&json_str(&k.raw, esc));
                    out.push_str(" : ");
                    v.json(esc, out);
                }
                out.push('}');
            }
        }
    }

    /// The value the masker must emit for it in a scanned field.
    pub fn expected(&self) -> Value {
        match self {
            Tree::Text(t) => Value::String(t.masked.clone()),
            Tree::Num(_, v) => v.clone(),
            Tree::Bool(b) => Value::Bool(*b),
            Tree::Null => Value::Null,
            Tree::Arr(a) => Value::Array(a.iter().map(Tree::expected).collect()),
            Tree::Obj(o) => Value::Object(o.iter().map(|(k, v)| (k.masked.clone(), v.expected())).collect()),
        }
    }

    /// The CSV cell the masker must write for it (`None`: a composite, written as JSON).
    pub fn cell(&self) -> Option<String> {
        match self {
            Tree::Text(t) => Some(t.masked.clone()),
            Tree::Num(_, Value::String(s)) => Some(s.clone()),
            Tree::Num(raw, _) => Some(raw.clone()),
            Tree::Bool(b) => Some(b.to_string()),
            Tree::Null => Some(String::new()),
            Tree::Arr(_) | Tree::Obj(_) => None,
        }
    }

    /// Every identifier planted in it, names included.
    pub fn idents(&self, out: &mut Vec<String>) {
        match self {
            Tree::Text(t) => out.extend(t.idents.iter().cloned()),
            Tree::Num(n, Value::String(_)) => out.push(n.trim_start_matches('-').to_owned()),
            Tree::Num(..) | Tree::Bool(_) | Tree::Null => {}
            Tree::Arr(a) => a.iter().for_each(|v| v.idents(out)),
            Tree::Obj(o) => o.iter().for_each(|(k, v)| {
                out.extend(k.idents.iter().cloned());
                v.idents(out);
            }),
        }
    }
}

/// A JSON string, every character as a `\u` escape when `esc`.
pub fn json_str(s: &str, esc: bool) -> String {
    if !esc {
        return serde_json::to_string(s).unwrap();
    }
    let mut o = String::from("\"");
    for c in s.chars() {
        let mut buf = [0u16; 2];
        for u in c.encode_utf16(&mut buf) {
            o.push_str(&format!("\\u{u:04x}"));
        }
    }
    o.push('"');
    o
}

/// A CSV cell, quoted when it must be (or when `force`).
pub fn csv_cell(s: &str, force: bool) -> String {
    if force || s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// What one masking run gave.
pub type RunResult = Result<(Vec<u8>, MaskStats), (Vec<u8>, MaskError)>;

/// Runs the masker over `doc` split at `cuts` (taken modulo the length, sorted).
pub fn run(
    plan: &Arc<FieldPlan>,
    input: &InputFormat,
    output: OutputFormat,
    doc: &[u8],
    cuts: &[usize],
) -> RunResult {
    let mut m = Masker::new(plan.clone(), input.clone(), output, MaskerLimits::default());
    let mut out = Vec::new();
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (doc.len() + 1)).collect();
    cuts.sort_unstable();
    let mut at = 0;
    for c in cuts.into_iter().chain([doc.len()]) {
        if let Err(e) = m.feed(&doc[at..c], &mut out) {
            return Err((out, e));
        }
        at = c;
    }
    match m.finish(&mut out) {
        Ok(s) => Ok((out, s)),
        Err(e) => Err((out, e)),
    }
}

/// Runs whole, split at every position, and byte by byte; fails unless every run gives what
/// the whole run gives.
pub fn run_at_every_split(
    plan: &Arc<FieldPlan>,
    input: &InputFormat,
    output: OutputFormat,
    doc: &[u8],
) -> Result<RunResult, TestCaseError> {
    let whole = run(plan, input, output, doc, &[]);
    for k in 0..=doc.len() {
        prop_assert_eq!(&run(plan, input, output, doc, &[k]), &whole, "split at {}", k);
    }
    let bytes: Vec<usize> = (1..doc.len()).collect();
    prop_assert_eq!(&run(plan, input, output, doc, &bytes), &whole, "byte by byte");
    Ok(whole)
}

/// A small RFC 4180 reader for checking CSV output (every row ends with LF).
pub fn read_csv(s: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        !quoted && cell.is_empty() && row.is_empty(),
        "CSV must end with a newline"
    );
    rows
}

/// The records of a JSON or NDJSON output.
pub fn read_json(text: &str, output: OutputFormat) -> Vec<serde_json::Map<String, Value>> {
    match output {
        OutputFormat::Json => serde_json::from_str(text).expect("the output is a JSON array of objects"),
        OutputFormat::Ndjson => {
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "NDJSON ends with a newline"
            );
            text.lines()
                .map(|l| serde_json::from_str(l).expect("each line is a JSON object"))
                .collect()
        }
        OutputFormat::Csv => panic!("not JSON"),
    }
}

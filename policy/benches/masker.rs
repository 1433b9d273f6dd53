//! The streaming masker on ~100 MB of hydrant-like records, fed in 64 KiB chunks:
//! JSON array → JSON array, CSV → CSV, and the naive baseline (serde_json::Value parse →
//! mask → serialize) on the same JSON. Target: ≥ 1 GB/s per core and ≥ 5× the baseline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{Map, Value};
use sluice_policy::mask::{detect, MaskRule, Masked, PseudonymKey, Scalar};
use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
use sluice_policy::stream::{InputFormat, Masker, MaskerLimits, OutputFormat};
use std::sync::Arc;

const TARGET_BYTES: usize = 100 << 20;
const CHUNK: usize = 64 << 10;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const DISTRICTS: &[&str] = &[
    "Huangpu",
    "Xuhui",
    "Changning",
    "Jing'an",
    "Putuo",
    "Hongkou",
    "Yangpu",
    "Pudong",
];
const STREETS: &[&str] = &[
    "Zhongshan East 1st Rd",
    "Nanjing West Rd",
    "Huaihai Middle Rd",
    "Century Ave",
    "Siping Rd",
];
const STATUS: &[&str] = &[
    "in_service",
    "out_of_service",
    "needs_inspection",
    "decommissioned",
];
const SURNAMES: &[&str] = &[
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu",
];
const GIVEN: &[&str] = &[
    "Wei", "Fang", "Na", "Xiuying", "Min", "Jing", "Li", "Qiang", "Lei", "Jun",
];
const NOTES: &[&str] = &[
    "Checked valve, cap replaced",
    "Paint peeling; schedule repaint before summer",
    "Access blocked by parked cars on weekdays",
    "Pressure fine",
    "",
    "Adopter reports a slow leak at the base",
];

struct Rec {
    id: u64,
    district: &'static str,
    street: String,
    lat: String,
    lon: String,
    status: &'static str,
    inspected: String,
    name: String,
    mobile: String,
    notes: String,
}

fn records() -> Vec<Rec> {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut v = Vec::new();
    let mut size = 0;
    let mut id = 100_000;
    while size < TARGET_BYTES {
        id += 1 + rng.below(3);
        let mobile = format!("13{}{:08}", rng.below(10), rng.below(100_000_000));
        let mut notes = rng.pick(NOTES).to_owned();
        if rng.below(20) == 0 {
            notes.push_str(&format!("; call {mobile} first"));
        }
        let r = Rec {
            id,
            district: rng.pick(DISTRICTS),
            street: format!("{} {}", rng.pick(STREETS), 1 + rng.below(900)),
            lat: format!("31.{:06}", rng.below(1_000_000)),
            lon: format!("121.{:06}", rng.below(1_000_000)),
            status: rng.pick(STATUS),
            inspected: format!(
                "20{:02}-{:02}-{:02}",
                18 + rng.below(7),
                1 + rng.below(12),
                1 + rng.below(28)
            ),
            name: format!("{} {}", rng.pick(SURNAMES), rng.pick(GIVEN)),
            mobile,
            notes,
        };
        size += 230 + r.street.len() + r.notes.len();
        v.push(r);
    }
    v
}

fn json_body(recs: &[Rec]) -> Vec<u8> {
    let mut s = String::with_capacity(TARGET_BYTES + (1 << 20));
    s.push('[');
    for (n, r) in recs.iter().enumerate() {
        if n > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"id":"HY-{}","district":{},"street":"{}","lat":{},"lon":{},"status":"{}","last_inspection":"{}","adopter_name":"{}","adopter_mobile":"{}","notes":"{}"}}"#,
            r.id,
            serde_json::to_string(r.district).unwrap(),
            r.street,
            r.lat,
            r.lon,
            r.status,
            r.inspected,
            r.name,
            r.mobile,
            r.notes
        ));
    }
    s.push(']');
    s.into_bytes()
}

fn csv_body(recs: &[Rec]) -> Vec<u8> {
    let mut s = String::with_capacity(TARGET_BYTES);
    s.push_str("id,district,street,lat,lon,status,last_inspection,adopter_name,adopter_mobile,notes\n");
    for r in recs {
        let notes = if r.notes.contains([',', ';']) {
            format!("\"{}\"", r.notes)
        } else {
            r.notes.clone()
        };
        s.push_str(&format!(
            "HY-{},{},{},{},{},{},{},{},{},{}\n",
            r.id, r.district, r.street, r.lat, r.lon, r.status, r.inspected, r.name, r.mobile, notes
        ));
    }
    s.into_bytes()
}

/// 10 source fields: 3 masked (partial, pseudonym, month), 1 dropped (street), notes scanned.
fn plan() -> Arc<FieldPlan> {
    let f = |name: &str, action: FieldAction| PlannedField {
        name: name.to_owned(),
        action,
    };
    let emit = FieldAction::Emit { scan: false };
    Arc::new(FieldPlan {
        fields: vec![
            f("id", emit.clone()),
            f("district", emit.clone()),
            f("lat", emit.clone()),
            f("lon", emit.clone()),
            f("status", emit.clone()),
            f("last_inspection", FieldAction::Mask(MaskRule::Month)),
            f(
                "adopter_name",
                FieldAction::Mask(MaskRule::Partial { first: 1, last: 0 }),
            ),
            f("adopter_mobile", FieldAction::Mask(MaskRule::Pseudonym)),
            f("notes", FieldAction::Emit { scan: true }),
        ],
        row_filter: None,
        key: PseudonymKey::derive(b"bench master secret", "acme", "hydrants"),
    })
}

fn stream(plan: &Arc<FieldPlan>, input: InputFormat, output: OutputFormat, body: &[u8]) -> usize {
    let mut m = Masker::new(plan.clone(), input, output, MaskerLimits::default());
    let mut out = Vec::with_capacity(2 * CHUNK);
    let mut total = 0;
    for chunk in body.chunks(CHUNK) {
        m.feed(chunk, &mut out).unwrap();
        total += out.len();
        black_box(&out);
        out.clear();
    }
    m.finish(&mut out).unwrap();
    total + out.len()
}

/// The naive baseline: parse the whole body into `Value`s, mask, serialize.
fn naive(plan: &FieldPlan, body: &[u8]) -> usize {
    let recs: Vec<Map<String, Value>> = serde_json::from_slice(body).unwrap();
    let mut res = Vec::with_capacity(recs.len());
    for r in &recs {
        let mut o = Map::new();
        for f in &plan.fields {
            let Some(v) = r.get(&f.name) else { continue };
            let text;
            let scalar = match v {
                Value::String(s) => Scalar::Str(s),
                Value::Number(n) => {
                    text = n.to_string();
                    Scalar::Num(&text)
                }
                Value::Bool(b) => Scalar::Bool(*b),
                Value::Null => Scalar::Null,
                other => {
                    text = other.to_string();
                    Scalar::Composite(&text)
                }
            };
            let value = match &f.action {
                FieldAction::Emit { scan: true } => match scalar {
                    Scalar::Str(s) => Value::String(detect::scrub_counted(s).0.into_owned()),
                    _ => v.clone(),
                },
                FieldAction::Emit { scan: false } => v.clone(),
                FieldAction::Mask(rule) => match rule.apply(scalar, &plan.key) {
                    Masked::Keep => v.clone(),
                    Masked::Omit => continue,
                    Masked::Null => Value::Null,
                    Masked::Str(s) => Value::String(s),
                    Masked::Num(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
                },
            };
            o.insert(f.name.clone(), value);
        }
        res.push(Value::Object(o));
    }
    serde_json::to_vec(&res).unwrap().len()
}

fn bench(c: &mut Criterion) {
    let recs = records();
    let json = json_body(&recs);
    let csv = csv_body(&recs);
    drop(recs);
    let plan = plan();
    let mut g = c.benchmark_group("masker");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("json_array_to_json", |b| {
        b.iter(|| stream(&plan, InputFormat::JsonArray, OutputFormat::Json, &json))
    });
    g.bench_function("naive_serde_value_baseline", |b| b.iter(|| naive(&plan, &json)));
    g.throughput(Throughput::Bytes(csv.len() as u64));
    g.bench_function("csv_to_csv", |b| {
        b.iter(|| stream(&plan, InputFormat::Csv, OutputFormat::Csv, &csv))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The streaming masker on ~100 MB of hydrant-like records, fed in 64 KiB chunks:
//! JSON array → JSON array, CSV → CSV, and the naive baseline (serde_json::Value parse →
//! mask → serialize) on the same JSON. Target: ≥ 1 GB/s per core and ≥ 5× the baseline.
//! `json_page_10k` masks one 10 KB page with a fresh masker each time, as the gateway masks an
//! API page: the costs of a response (setting up, caches) count there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{Map, Value};
use sluice_policy::mask::{detect, Masked, Scalar};
use sluice_policy::plan::{FieldAction, FieldPlan};
use sluice_policy::stream::{InputFormat, Masker, MaskerLimits, OutputFormat};
use std::sync::Arc;

#[path = "support/hydrants.rs"]
mod hydrants;

use hydrants::{csv_body, json_body, plan, records};

const TARGET_BYTES: usize = 100 << 20;
const CHUNK: usize = 64 << 10;

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
                FieldAction::Fingerprint { marker: m, .. } => {
                    let key = match r.get(&m.record_key) {
                        Some(Value::String(k)) => Some(k.clone()),
                        Some(Value::Number(n)) => Some(n.to_string()),
                        _ => None,
                    };
                    match (key, scalar) {
                        (Some(key), Scalar::Num(t)) => m
                            .mark(key.as_bytes(), &f.name, t)
                            .and_then(|t| serde_json::from_str(&t).ok())
                            .unwrap_or_else(|| v.clone()),
                        (Some(key), Scalar::Str(t)) => m
                            .mark(key.as_bytes(), &f.name, t)
                            .map_or_else(|| v.clone(), Value::String),
                        _ => v.clone(),
                    }
                }
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
    let recs = records(TARGET_BYTES);
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
    let page = json_body(&records(10 << 10));
    g.throughput(Throughput::Bytes(page.len() as u64));
    g.bench_function("json_page_10k", |b| {
        b.iter(|| stream(&plan, InputFormat::JsonArray, OutputFormat::Json, &page))
    });
    g.throughput(Throughput::Bytes(csv.len() as u64));
    g.bench_function("csv_to_csv", |b| {
        b.iter(|| stream(&plan, InputFormat::Csv, OutputFormat::Csv, &csv))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

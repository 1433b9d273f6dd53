//! Runs the streaming masker once over the bench's hydrant records, for profilers that count
//! instructions (callgrind) or sample (perf): the bytes are generated first, then masked in
//! 64 KiB chunks by [`mask`], which a profiler can isolate by name.
//!
//! `cargo run --release -p sluice-policy --example masker_profile -- json|csv [MiB]`
//! (default: json, 8 MiB).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../benches/support/hydrants.rs"]
mod hydrants;

use sluice_policy::plan::FieldPlan;
use sluice_policy::stream::{InputFormat, Masker, MaskerLimits, OutputFormat};
use std::sync::Arc;

/// Masks `body` in 64 KiB chunks; returns the output size.
#[inline(never)]
fn mask(plan: &Arc<FieldPlan>, input: InputFormat, output: OutputFormat, body: &[u8]) -> usize {
    let mut m = Masker::new(plan.clone(), input, output, MaskerLimits::default());
    let mut out = Vec::with_capacity(128 << 10);
    let mut total = 0;
    for chunk in body.chunks(64 << 10) {
        m.feed(chunk, &mut out).unwrap();
        total += out.len();
        std::hint::black_box(&out);
        out.clear();
    }
    m.finish(&mut out).unwrap();
    total + out.len()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let format = args.next().unwrap_or_else(|| "json".to_owned());
    let mib: usize = args.next().map_or(8, |a| a.parse().expect("MiB: a number"));
    let recs = hydrants::records(mib << 20);
    let plan = hydrants::plan();
    let (body, input, output) = match format.as_str() {
        "json" => (
            hydrants::json_body(&recs),
            InputFormat::JsonArray,
            OutputFormat::Json,
        ),
        "csv" => (hydrants::csv_body(&recs), InputFormat::Csv, OutputFormat::Csv),
        other => panic!("unknown format {other}: json or csv"),
    };
    drop(recs);
    let out = mask(&plan, input, output, &body);
    println!("{format}: {} bytes in, {out} bytes out", body.len());
}

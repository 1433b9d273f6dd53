//! Runs the streaming masker once over the bench's hydrant records, for profilers that count
//! instructions (callgrind) or sample (perf): the bytes are generated first, then masked in
//! 64 KiB chunks by [`mask`], which a profiler can isolate by name. Prints the masking time
//! (wall clock: compare builds by running them alternately on the same machine).
//!
//! `cargo run --release -p sluice-policy --example masker_profile -- json|csv|pages [MiB] [OUT]`
//! (default: json, 8 MiB). `pages` masks 10 KB JSON pages, each with a fresh masker, as the
//! gateway masks an API page (the costs of a response count). With `OUT` the masked body is also written there (to compare the
//! output of two builds byte for byte; the time then includes the writes). `REPEAT=n` masks the
//! body n times and prints the fastest run (the machines are noisy; the best run is the one
//! least disturbed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../benches/support/hydrants.rs"]
mod hydrants;

use sluice_policy::plan::FieldPlan;
use sluice_policy::stream::{InputFormat, Masker, MaskerLimits, OutputFormat};
use std::io::Write;
use std::sync::Arc;

/// Masks `body` in 64 KiB chunks; returns the output size.
#[inline(never)]
fn mask(
    plan: &Arc<FieldPlan>,
    input: InputFormat,
    output: OutputFormat,
    body: &[u8],
    mut save: Option<&mut dyn Write>,
) -> usize {
    let mut m = Masker::new(plan.clone(), input, output, MaskerLimits::default());
    let mut out = Vec::with_capacity(128 << 10);
    let mut total = 0;
    for chunk in body.chunks(64 << 10) {
        m.feed(chunk, &mut out).unwrap();
        total += out.len();
        std::hint::black_box(&out);
        if let Some(w) = save.as_mut() {
            w.write_all(&out).unwrap();
        }
        out.clear();
    }
    m.finish(&mut out).unwrap();
    if let Some(w) = save.as_mut() {
        w.write_all(&out).unwrap();
    }
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
        "pages" => (
            hydrants::json_body(&hydrants::records(10 << 10)),
            InputFormat::JsonArray,
            OutputFormat::Json,
        ),
        other => panic!("unknown format {other}: json, csv or pages"),
    };
    drop(recs);
    let mut file = args
        .next()
        .map(|p| std::io::BufWriter::new(std::fs::File::create(p).unwrap()));
    let repeat: usize = std::env::var("REPEAT").map_or(1, |r| r.parse().expect("REPEAT: a number"));
    // The same page again and again for `pages`; the body once otherwise.
    let times = if format == "pages" {
        (mib << 20) / body.len()
    } else {
        1
    };
    let mut best = f64::INFINITY;
    let mut out = 0;
    for _ in 0..repeat.max(1) {
        let t = std::time::Instant::now();
        out = 0;
        for _ in 0..times {
            out += mask(
                &plan,
                input.clone(),
                output,
                &body,
                file.as_mut().map(|f| f as &mut dyn Write),
            );
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{format}: {} bytes in, {out} bytes out, {:.1} ms, {:.0} MB/s",
        body.len() * times,
        best * 1e3,
        (body.len() * times) as f64 / best / 1e6
    );
}

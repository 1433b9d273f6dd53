//! `sluice trace`: name the licensee a leaked copy of a dataset came from, or say that it
//! cannot tell (exit code 3).

use anyhow::Context;
use sluice_agency::config::Config;
use sluice_agency::trace::{originals, read_master_key, trace_leak, Leak, Originals, TraceReport};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `sluice trace`'s arguments.
#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// The gateway's config file (its datasets, licences, state folder and master key).
    #[arg(long, short)]
    pub config: PathBuf,
    /// The dataset the leak is from; told from the leak's columns when not given.
    #[arg(long)]
    pub dataset: Option<String>,
    /// `text` or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// The leaked file: JSON (an array of records, or an object holding one), NDJSON or CSV.
    pub file: PathBuf,
}

/// Exit code of a trace that cannot tell.
pub const CANNOT_TELL: u8 = 3;

/// Runs `sluice trace`: 0 when a licensee is named, 3 when the evidence cannot tell.
pub fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let key = read_master_key(&config)?;
    let leak = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let leak = Leak::read(&config, args.dataset.as_deref(), &leak)?;
    // Rows holding pseudonyms are traced through the source's values behind them, read here
    // from the dataset's source; without the source, tracing goes on with the marks alone.
    let keys = leak.pseudonymised_keys();
    let originals = if keys.is_empty() {
        Originals::new()
    } else {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        match runtime.block_on(originals(&config, leak.dataset(), &keys)) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("warning: pseudonyms not traced: {e}");
                Originals::new()
            }
        }
    };
    let report = trace_leak(&config, &key, &leak, &originals)?;
    let mut out = std::io::stdout().lock();
    if args.format == "json" {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &report)?;
    }
    Ok(if report.licensee.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CANNOT_TELL)
    })
}

fn write_text(out: &mut impl Write, r: &TraceReport) -> std::io::Result<()> {
    match (&r.licensee, r.p_value) {
        (Some(l), Some(p)) => writeln!(
            out,
            "named: {l} (p = {p:.3e} for \"not from {l}\", adjusted for {} candidates; {} marks read)",
            r.candidates.len(),
            r.marks_used
        )?,
        _ => writeln!(
            out,
            "cannot tell: no candidate's marks reach p ≤ {:e} ({} candidates, {} marks at best)",
            r.alpha,
            r.candidates.len(),
            r.marks_used
        )?,
    }
    writeln!(out, "dataset {}, {} records read", r.dataset, r.records)?;
    writeln!(
        out,
        "{:<24} {:>7} {:>7} {:>12} {:>9}",
        "licensee", "marks", "match", "p", "responses"
    )?;
    for c in &r.candidates {
        writeln!(
            out,
            "{:<24} {:>7} {:>7} {:>12.3e} {:>9}",
            c.licensee, c.marks, c.matches, c.p_value, c.responses
        )?;
    }
    Ok(())
}

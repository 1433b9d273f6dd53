//! `sluice audit …`: verify the chain, show the last records, query.

use anyhow::Context;
use sluice_agency::audit::{query, tail, verify_dir, verify_dir_with_anchor, AuditRecord, Filter, Follower};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The `audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Verify the chain (hashes, links, seq, segment order); exits 1 naming the first bad
    /// record when it is broken.
    Verify {
        /// The audit folder.
        dir: PathBuf,
        /// Seq of a head published earlier: the chain must still reach it.
        #[arg(long, requires = "anchor_hash")]
        anchor_seq: Option<u64>,
        /// Hash of that head.
        #[arg(long, requires = "anchor_seq")]
        anchor_hash: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the last records.
    Tail {
        /// The audit folder.
        dir: PathBuf,
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        n: usize,
        /// Keep printing records as they are appended.
        #[arg(short = 'f', long)]
        follow: bool,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the records matching a filter, oldest first.
    Query {
        /// The audit folder.
        dir: PathBuf,
        /// Only this licensee.
        #[arg(long)]
        licensee: Option<String>,
        /// Only this dataset.
        #[arg(long)]
        dataset: Option<String>,
        /// At or after this time (RFC 3339, or a date meaning its UTC midnight).
        #[arg(long, value_parser = parse_time)]
        since: Option<OffsetDateTime>,
        /// Before this time (RFC 3339, or a date meaning its UTC midnight).
        #[arg(long, value_parser = parse_time)]
        until: Option<OffsetDateTime>,
        /// Only this decision.
        #[arg(long, value_parser = ["allow", "deny"])]
        decision: Option<String>,
        /// At most this many records (the newest matches).
        #[arg(long)]
        limit: Option<usize>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| format!("{s:?} is neither an RFC 3339 time nor a YYYY-MM-DD date"))
}

/// Runs an `audit` subcommand, printing to stdout.
pub fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    match run_to(cmd, &mut stdout.lock()) {
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Runs an `audit` subcommand, printing to `out`.
pub fn run_to(cmd: AuditCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify {
            dir,
            anchor_seq,
            anchor_hash,
            json,
        } => {
            let report = match (anchor_seq, &anchor_hash) {
                (Some(seq), Some(hash)) => verify_dir_with_anchor(&dir, seq, hash),
                _ => verify_dir(&dir),
            }
            .with_context(|| format!("verifying {}", dir.display()))?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&report)?)?;
            } else {
                writeln!(
                    out,
                    "{}: {} records verified in {} segments",
                    dir.display(),
                    report.records,
                    report.segments
                )?;
                if let Some(head) = &report.head {
                    writeln!(out, "head: {head}")?;
                }
                if report.torn_tail {
                    writeln!(
                        out,
                        "note: the newest segment ends with an incomplete, unacknowledged line"
                    )?;
                }
                match &report.first_bad {
                    Some(bad) => writeln!(out, "CHAIN BROKEN at {bad}")?,
                    None if anchor_seq.is_some() => writeln!(out, "chain OK, reaches the anchor")?,
                    None => writeln!(out, "chain OK")?,
                }
            }
            Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Tail { dir, n, follow, json } => {
            let mut follower = if follow {
                Some(Follower::at_end(&dir)?)
            } else {
                None
            };
            let records = tail(&dir, n).with_context(|| format!("reading {}", dir.display()))?;
            print_records(out, &records, json, true)?;
            let mut last = records.last().map_or(0, |r| r.seq);
            if let Some(f) = follower.as_mut() {
                loop {
                    out.flush()?;
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    let new: Vec<_> = f.poll()?.into_iter().filter(|r| r.seq > last).collect();
                    print_records(out, &new, json, false)?;
                    last = new.last().map_or(last, |r| r.seq);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Query {
            dir,
            licensee,
            dataset,
            since,
            until,
            decision,
            limit,
            json,
        } => {
            let filter = Filter {
                licensee,
                dataset,
                since,
                until,
                decision,
                limit,
            };
            let records = query(&dir, &filter).with_context(|| format!("reading {}", dir.display()))?;
            print_records(out, &records, json, true)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_records(
    out: &mut dyn Write,
    records: &[AuditRecord],
    json: bool,
    header: bool,
) -> anyhow::Result<()> {
    if json {
        for r in records {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
        return Ok(());
    }
    if header {
        writeln!(
            out,
            "{:>8}  {:<24}  {:<5}  {:>3}  {:<22}  {:<16}  {:<20}  {:>7}  {:>9}  REQUEST",
            "SEQ", "TIME", "DEC", "ST", "REASON", "LICENSEE", "DATASET", "RECORDS", "MS"
        )?;
    }
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".to_owned());
    for r in records {
        writeln!(
            out,
            "{:>8}  {:<24}  {:<5}  {:>3}  {:<22}  {:<16}  {:<20}  {:>7}  {:>9.1}  {} {}",
            r.seq,
            r.time,
            r.decision,
            r.status,
            opt(&r.reason),
            opt(&r.licensee),
            opt(&r.dataset),
            r.records_out,
            r.latency_ms,
            r.method,
            r.path
        )?;
    }
    Ok(())
}

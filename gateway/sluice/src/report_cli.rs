//! `sluice admin report usage --month YYYY-MM` and `sluice admin report annual --year YYYY`:
//! the registry's usage reports (`GET /reports/usage`, see `sluice_registry::report`) printed
//! as text tables (the default), or as the registry's CSV or JSON (`--format csv|json`).
//!
//! `usage` prints the month's figures: totals, per licensee, per dataset (with the objections
//! and corrections filed against it), per licence, refusals by reason, the violations
//! recorded, the objections and corrections filed per dataset and kind by status now.
//! `annual` prints the evaluation for renewal decisions: per licensee its use against each
//! licence's declared scenario, its refusals by reason and its violations (objections are
//! filed against datasets, not licensees: their total is in the header).

use crate::admin::Output;
use clap::{Subcommand, ValueEnum};
use sluice_net::registry_client::RegistryClient;
use sluice_registry::report::svg::group;
use sluice_registry::report::{epsilon, Figures, ObjectionCount, Report};

/// `sluice admin report …`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Usage for one UTC month: per licensee, dataset and licence, refusals by reason, masked
    /// fields, violations.
    Usage {
        /// `YYYY-MM` (UTC).
        #[arg(long)]
        month: String,
        /// `text` (tables), `csv` or `json` (as the registry serves them).
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// The annual evaluation: per licensee, its use against each licence's declared scenario,
    /// refusals by reason and violations.
    Annual {
        /// `YYYY`.
        #[arg(long)]
        year: String,
        /// `text` (tables), `csv` or `json` (as the registry serves them).
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
}

/// Output format of `sluice admin report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Text tables.
    Text,
    /// The registry's CSV (one table, a `section` column).
    Csv,
    /// The registry's JSON.
    Json,
}

/// Why a report command line could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum ReportCliError {
    /// A malformed `--month`.
    #[error("--month {0:?}: expected YYYY-MM")]
    Month(String),
    /// A malformed `--year`.
    #[error("--year {0:?}: expected YYYY")]
    Year(String),
    /// The registry's JSON is not a report.
    #[error("the registry's report does not parse: {0}")]
    Parse(#[from] serde_json::Error),
}

/// Fetches the report and returns what the command prints.
pub async fn execute(c: &RegistryClient, cmd: ReportCommand) -> anyhow::Result<Output> {
    let (query, format, annual) = match cmd {
        ReportCommand::Usage { month, format } => {
            if !sluice_registry::usage::valid_month(&month) {
                return Err(ReportCliError::Month(month).into());
            }
            (format!("month={month}"), format, false)
        }
        ReportCommand::Annual { year, format } => {
            if !sluice_registry::report::valid_year(&year) {
                return Err(ReportCliError::Year(year).into());
            }
            (format!("year={year}"), format, true)
        }
    };
    let wire = match format {
        ReportFormat::Csv => "csv",
        ReportFormat::Text | ReportFormat::Json => "json",
    };
    let reply = c.get(&format!("/reports/usage?{query}&format={wire}")).await?;
    if !reply.status.is_success() {
        let body = serde_json::to_string_pretty(&reply.json())
            .unwrap_or_else(|_| String::from_utf8_lossy(&reply.body).into_owned());
        return Ok(Output {
            ok: false,
            text: format!("{}: {body}", reply.status),
        });
    }
    let text = match format {
        ReportFormat::Csv => String::from_utf8_lossy(&reply.body).into_owned(),
        ReportFormat::Json => {
            let v: serde_json::Value = serde_json::from_slice(&reply.body).map_err(ReportCliError::from)?;
            serde_json::to_string_pretty(&v)?
        }
        ReportFormat::Text => {
            let r: Report = serde_json::from_slice(&reply.body).map_err(ReportCliError::from)?;
            if annual {
                annual_text(&r)
            } else {
                usage_text(&r)
            }
        }
    };
    Ok(Output { ok: true, text })
}

/// A text table: columns two spaces apart, numbers right-aligned, a dashed rule under the
/// head; `(none)` for no rows.
pub fn table(head: &[(&str, bool)], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "(none)\n".to_owned();
    }
    let mut widths: Vec<usize> = head.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, ((cell, (_, numeric)), w)) in cells.iter().zip(head).zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = w.saturating_sub(cell.chars().count());
            if *numeric {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(head.iter().map(|(h, _)| *h).collect());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(rule.iter().map(String::as_str).collect()));
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn header(r: &Report, title: &str) -> String {
    format!(
        "{title} {} (UTC months {} to {}), generated {}\n\nTotals: {} requests, {} records, {} refusals, {} \
         masked fields, epsilon {}, {} violations, {} objections\n\n",
        r.period,
        r.first_month,
        r.last_month,
        r.generated_at,
        group(r.totals.requests),
        group(r.totals.records),
        group(r.totals.refusals),
        group(r.totals.masked_fields),
        epsilon(r.totals.epsilon_micros),
        group(r.violation_count),
        group(r.objection_count),
    )
}

const FIGURES: [(&str, bool); 5] = [
    ("requests", true),
    ("records", true),
    ("refusals", true),
    ("masked fields", true),
    ("epsilon", true),
];

fn figures(f: &Figures) -> [String; 5] {
    [
        group(f.requests),
        group(f.records),
        group(f.refusals),
        group(f.masked_fields),
        epsilon(f.epsilon_micros),
    ]
}

fn violations_table(r: &Report) -> String {
    let rows: Vec<Vec<String>> = r
        .violations
        .iter()
        .map(|v| {
            vec![
                v.at.clone(),
                v.licensee.clone(),
                v.measure.as_str().to_owned(),
                v.what.clone(),
                v.lifted_at.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            ("recorded", false),
            ("licensee", false),
            ("measure", false),
            ("what", false),
            ("lifted", false),
        ],
        &rows,
    )
}

/// `sluice admin report usage` as text.
pub fn usage_text(r: &Report) -> String {
    let mut out = header(r, "Usage report");
    out.push_str("Per licensee\n");
    let mut head = vec![("licensee", false), ("name", false)];
    head.extend(FIGURES);
    head.push(("violations", true));
    let rows: Vec<Vec<String>> = r
        .licensees
        .iter()
        .map(|l| {
            let mut row = vec![l.licensee.clone(), l.name.clone().unwrap_or_default()];
            row.extend(figures(&l.figures));
            row.push(group(l.violations));
            row
        })
        .collect();
    out.push_str(&table(&head, &rows));
    out.push_str("\nPer dataset\n");
    let mut head = vec![("dataset", false)];
    head.extend(FIGURES);
    head.push(("objections", true));
    let rows: Vec<Vec<String>> = r
        .datasets
        .iter()
        .map(|d| {
            let mut row = vec![d.dataset.clone()];
            row.extend(figures(&d.figures));
            row.push(group(d.objections));
            row
        })
        .collect();
    out.push_str(&table(&head, &rows));
    out.push_str("\nPer licence\n");
    let mut head = vec![
        ("licensee", false),
        ("dataset", false),
        ("licence", false),
        ("scenario", false),
    ];
    head.extend(FIGURES);
    let rows: Vec<Vec<String>> = r
        .licensees
        .iter()
        .flat_map(|l| {
            l.licences.iter().map(move |u| {
                let mut row = vec![
                    l.licensee.clone(),
                    u.dataset.clone(),
                    u.licence.clone().unwrap_or_else(|| "(none found)".into()),
                    u.scenario.clone().unwrap_or_default(),
                ];
                row.extend(figures(&u.figures));
                row
            })
        })
        .collect();
    out.push_str(&table(&head, &rows));
    out.push_str("\nRefusals by reason\n");
    let rows: Vec<Vec<String>> = r
        .refusals_by_reason
        .iter()
        .map(|c| vec![c.code.clone(), group(c.refusals)])
        .collect();
    out.push_str(&table(&[("code", false), ("refusals", true)], &rows));
    out.push_str("\nViolations recorded\n");
    out.push_str(&violations_table(r));
    out.push_str("\nObjections and corrections filed, by status now\n");
    let rows: Vec<Vec<String>> = r.objections.iter().map(ObjectionCount::cells).collect();
    out.push_str(&table(&ObjectionCount::HEAD, &rows));
    out.push_str("\nApplications per agency\n");
    out.push_str(&applications_table(r));
    out
}

/// The applications per agency: filed and decided in the period, waiting and overdue now.
fn applications_table(r: &Report) -> String {
    let rows: Vec<Vec<String>> = r.applications.iter().map(|a| a.cells("-")).collect();
    table(
        &[
            ("agency", false),
            ("filed", true),
            ("decided", true),
            ("approved", true),
            ("rejected", true),
            ("waiting", true),
            ("overdue", true),
            ("median days", true),
        ],
        &rows,
    )
}

/// `sluice admin report annual` as text: the evaluation per licensee.
pub fn annual_text(r: &Report) -> String {
    let mut out = header(r, "Annual evaluation");
    if r.licensees.is_empty() {
        out.push_str("No licensee used data, held a licence or had a violation recorded in this period.\n");
    }
    for l in &r.licensees {
        out.push_str(&format!(
            "{} ({})\n",
            l.licensee,
            l.name.as_deref().unwrap_or("not registered")
        ));
        let reasons: Vec<String> = l
            .refusals_by_reason
            .iter()
            .map(|(c, n)| format!("{c} {}", group(*n)))
            .collect();
        out.push_str(&format!(
            "  {} requests, {} records, {} refusals{}, {} masked fields, {} violations",
            group(l.figures.requests),
            group(l.figures.records),
            group(l.figures.refusals),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(", "))
            },
            group(l.figures.masked_fields),
            group(l.violations),
        ));
        out.push('\n');
        let rows: Vec<Vec<String>> = l
            .licences
            .iter()
            .map(|u| {
                vec![
                    u.licence.clone().unwrap_or_else(|| "(none found)".into()),
                    u.scenario.clone().unwrap_or_default(),
                    u.dataset.clone(),
                    u.status.clone().unwrap_or_default(),
                    u.valid_until.clone().unwrap_or_default(),
                    group(u.figures.requests),
                    group(u.figures.records),
                    group(u.figures.refusals),
                ]
            })
            .collect();
        let t = table(
            &[
                ("licence", false),
                ("scenario", false),
                ("dataset", false),
                ("status", false),
                ("valid until", false),
                ("requests", true),
                ("records", true),
                ("refusals", true),
            ],
            &rows,
        );
        for line in t.lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str("Violations recorded\n");
    out.push_str(&violations_table(r));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_numbers_right_and_say_none() {
        let t = table(
            &[("name", false), ("n", true)],
            &[vec!["acme".into(), "1,000".into()], vec!["b".into(), "7".into()]],
        );
        assert_eq!(t, "name      n\n----  -----\nacme  1,000\nb         7\n");
        assert_eq!(table(&[("x", false)], &[]), "(none)\n");
    }
}

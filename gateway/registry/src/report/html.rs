//! The report as one HTML page: totals; a chart ([`super::svg`]) with a table of the same
//! figures beside it for requests and records per licensee and per dataset, refusals by
//! reason, masked fields per dataset, violations per licensee, objections and corrections
//! filed per dataset; a table of those cases per dataset and kind by where they stand now;
//! the evaluation per licensee and licence against the declared scenario; the violations
//! recorded. Inline CSS only: no scripts, fonts, images or links to load.

use super::svg::{bar_chart, group, Bar};
use super::{epsilon, ObjectionCount, PeriodKind, Report};
use crate::public::esc;

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1f24;background:#fff;\
margin:24px auto;max-width:1240px;padding:0 16px}\
h1{font-size:24px;margin:0 0 4px}\
h2{font-size:17px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid #d0d7de}\
.meta{color:#57606a;margin:0 0 16px}\
dl.totals{display:flex;flex-wrap:wrap;gap:12px;margin:0}\
dl.totals div{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:120px}\
dl.totals dt{color:#57606a;font-size:12px}\
dl.totals dd{margin:0;font-size:20px;font-weight:600}\
.pair{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}\
table{border-collapse:collapse;font-size:13px}\
table+table{margin-top:16px}\
caption{text-align:left;color:#57606a;font-size:12px;padding-bottom:2px}\
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}\
thead th{background:#f6f8fa}\
.n{text-align:right;font-variant-numeric:tabular-nums}\
.none{color:#57606a;font-style:italic}\
svg.chart text{fill:#1b1f24}";

/// Bar colours, one per kind of figure.
const REQUESTS: &str = "#3566a8";
const RECORDS: &str = "#2f855a";
const REFUSALS: &str = "#c0392b";
const MASKED: &str = "#7d4fb0";
const VIOLATIONS: &str = "#c77800";
const OBJECTIONS: &str = "#8a6d3b";

/// One chart and the table of its figures: `id` (unique in the page), heading, the label
/// column's name, the unit (bar titles and the value column), the colour and the bars.
fn figure(out: &mut String, id: &str, heading: &str, what: &str, unit: &str, colour: &str, bars: &[Bar]) {
    out.push_str(&format!(
        "<section aria-labelledby=\"{id}-h\"><h2 id=\"{id}-h\">{h}</h2>",
        h = esc(heading)
    ));
    if bars.is_empty() {
        out.push_str("<p class=\"none\">None in this period.</p></section>");
        return;
    }
    out.push_str("<div class=\"pair\">");
    out.push_str(&bar_chart(id, heading, unit, colour, bars));
    out.push_str(&format!(
        "<table><caption>{h}</caption><thead><tr><th scope=\"col\">{w}</th><th scope=\"col\" class=\"n\">{u}</th></tr></thead><tbody>",
        h = esc(heading),
        w = esc(what),
        u = esc(unit)
    ));
    for b in super::svg::sorted(bars) {
        out.push_str(&format!(
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(&b.label),
            group(b.value)
        ));
    }
    out.push_str("</tbody></table></div></section>");
}

fn table(out: &mut String, caption: &str, head: &[(&str, bool)], rows: &[Vec<String>]) {
    out.push_str(&format!("<table><caption>{}</caption><thead><tr>", esc(caption)));
    for (h, numeric) in head {
        let class = if *numeric { " class=\"n\"" } else { "" };
        out.push_str(&format!("<th scope=\"col\"{class}>{}</th>", esc(h)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for (cell, (_, numeric)) in row.iter().zip(head) {
            let class = if *numeric { " class=\"n\"" } else { "" };
            out.push_str(&format!("<td{class}>{}</td>", esc(cell)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

/// The page's title: `Usage report 2026-11` or `Annual evaluation 2026`.
pub fn title(r: &Report) -> String {
    match r.kind {
        PeriodKind::Month => format!("Usage report {}", r.period),
        PeriodKind::Year => format!("Annual evaluation {}", r.period),
    }
}

/// Renders the page.
pub fn render(r: &Report) -> String {
    let title = title(r);
    let param = match r.kind {
        PeriodKind::Month => "month",
        PeriodKind::Year => "year",
    };
    let mut out = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>sluice: {t}</title><style>{STYLE}</style></head><body><header><h1>{t}</h1>\
         <p class=\"meta\">Months {first} to {last} (UTC), as the gateways reported them; generated {at}. \
         The same figures as <a href=\"?{param}={p}&amp;format=csv\">CSV</a> and \
         <a href=\"?{param}={p}&amp;format=json\">JSON</a>.</p></header><main>",
        t = esc(&title),
        first = esc(&r.first_month),
        last = esc(&r.last_month),
        at = esc(&r.generated_at),
        p = esc(&r.period),
    );
    // Totals.
    let totals = [
        ("Requests", group(r.totals.requests)),
        ("Records delivered", group(r.totals.records)),
        ("Refusals", group(r.totals.refusals)),
        ("Masked fields", group(r.totals.masked_fields)),
        ("ε spent", epsilon(r.totals.epsilon_micros)),
        ("Violations", group(r.violation_count)),
        ("Objections", group(r.objection_count)),
        ("Licensees", group(r.licensees.len() as u64)),
    ];
    out.push_str("<section aria-label=\"Totals\"><dl class=\"totals\">");
    for (k, v) in totals {
        out.push_str(&format!("<div><dt>{}</dt><dd>{}</dd></div>", esc(k), esc(&v)));
    }
    out.push_str("</dl></section>");

    let used = |f: fn(&super::Figures) -> u64| -> (Vec<Bar>, Vec<Bar>) {
        let licensees = r
            .licensees
            .iter()
            .filter(|l| f(&l.figures) > 0)
            .map(|l| Bar {
                label: l.licensee.clone(),
                value: f(&l.figures),
            })
            .collect();
        let datasets = r
            .datasets
            .iter()
            .filter(|d| f(&d.figures) > 0)
            .map(|d| Bar {
                label: d.dataset.clone(),
                value: f(&d.figures),
            })
            .collect();
        (licensees, datasets)
    };
    let (req_l, req_d) = used(|f| f.requests);
    let (rec_l, rec_d) = used(|f| f.records);
    let (_, masked_d) = used(|f| f.masked_fields);
    figure(
        &mut out,
        "requests-licensee",
        "Requests per licensee",
        "licensee",
        "requests",
        REQUESTS,
        &req_l,
    );
    figure(
        &mut out,
        "records-licensee",
        "Records per licensee",
        "licensee",
        "records",
        RECORDS,
        &rec_l,
    );
    figure(
        &mut out,
        "requests-dataset",
        "Requests per dataset",
        "dataset",
        "requests",
        REQUESTS,
        &req_d,
    );
    figure(
        &mut out,
        "records-dataset",
        "Records per dataset",
        "dataset",
        "records",
        RECORDS,
        &rec_d,
    );
    let reasons: Vec<Bar> = r
        .refusals_by_reason
        .iter()
        .map(|c| Bar {
            label: c.code.clone(),
            value: c.refusals,
        })
        .collect();
    figure(
        &mut out,
        "refusals-reason",
        "Refusals by reason",
        "problem code",
        "refusals",
        REFUSALS,
        &reasons,
    );
    figure(
        &mut out,
        "masked-dataset",
        "Masked fields per dataset",
        "dataset",
        "masked or dropped values",
        MASKED,
        &masked_d,
    );
    let violations: Vec<Bar> = r
        .licensees
        .iter()
        .filter(|l| l.violations > 0)
        .map(|l| Bar {
            label: l.licensee.clone(),
            value: l.violations,
        })
        .collect();
    figure(
        &mut out,
        "violations-licensee",
        "Violations per licensee",
        "licensee",
        "violations",
        VIOLATIONS,
        &violations,
    );
    let objections: Vec<Bar> = r
        .datasets
        .iter()
        .filter(|d| d.objections > 0)
        .map(|d| Bar {
            label: d.dataset.clone(),
            value: d.objections,
        })
        .collect();
    figure(
        &mut out,
        "objections-dataset",
        "Objections per dataset",
        "dataset",
        "objections and corrections filed",
        OBJECTIONS,
        &objections,
    );
    objection_status(&mut out, r);
    application_deadlines(&mut out, r);
    evaluation(&mut out, r);
    violation_list(&mut out, r);
    out.push_str("</main></body></html>\n");
    out
}

/// The cases filed in the period per dataset and kind, by where they stand now.
fn objection_status(out: &mut String, r: &Report) {
    out.push_str(
        "<section aria-labelledby=\"objection-status-h\"><h2 id=\"objection-status-h\">Objections and \
         corrections by status</h2>",
    );
    if r.objections.is_empty() {
        out.push_str("<p class=\"none\">None filed in this period.</p></section>");
        return;
    }
    let rows: Vec<Vec<String>> = r.objections.iter().map(ObjectionCount::cells).collect();
    out.push_str(
        "<p class=\"meta\">Cases filed in the period against a dataset's records, by where they stand \
         now. Counted per dataset: the registry does not know which licensee was served a record.</p>",
    );
    table(
        out,
        "Objections and corrections by status",
        &ObjectionCount::HEAD,
        &rows,
    );
    out.push_str("</section>");
}

/// Applications per agency: filed and decided in the period, waiting and overdue now, the
/// median decision time.
fn application_deadlines(out: &mut String, r: &Report) {
    out.push_str(
        "<section aria-labelledby=\"applications-h\"><h2 id=\"applications-h\">Applications and \
         review deadlines</h2>",
    );
    if r.applications.is_empty() {
        out.push_str("<p class=\"none\">No applications.</p></section>");
        return;
    }
    let head = [
        ("agency", false),
        ("filed", true),
        ("decided", true),
        ("approved", true),
        ("rejected", true),
        ("waiting", true),
        ("overdue", true),
        ("median days to decide", true),
    ];
    let rows: Vec<Vec<String>> = r.applications.iter().map(|a| a.cells("–")).collect();
    out.push_str(
        "<p class=\"meta\">Filed and decided: in the period. Waiting and overdue (open past the \
         agency's deadline in working days): when the report was made.</p>",
    );
    table(out, "Applications per agency", &head, &rows);
    out.push_str("</section>");
}

/// Per licensee, and per licence against its declared scenario.
fn evaluation(out: &mut String, r: &Report) {
    out.push_str(
        "<section aria-labelledby=\"evaluation-h\"><h2 id=\"evaluation-h\">Per licensee: use against the \
         declared scenario</h2>",
    );
    if r.licensees.is_empty() {
        out.push_str("<p class=\"none\">No licensee used data, held a licence or had a violation recorded in this period.</p></section>");
        return;
    }
    let head = [
        ("licensee", false),
        ("name", false),
        ("requests", true),
        ("records", true),
        ("refusals", true),
        ("refusals by reason", false),
        ("masked fields", true),
        ("violations", true),
    ];
    let rows: Vec<Vec<String>> = r
        .licensees
        .iter()
        .map(|l| {
            vec![
                l.licensee.clone(),
                l.name.clone().unwrap_or_else(|| "(not registered)".into()),
                group(l.figures.requests),
                group(l.figures.records),
                group(l.figures.refusals),
                l.refusals_by_reason
                    .iter()
                    .map(|(c, n)| format!("{c} {}", group(*n)))
                    .collect::<Vec<_>>()
                    .join(", "),
                group(l.figures.masked_fields),
                group(l.violations),
            ]
        })
        .collect();
    table(out, "Per licensee", &head, &rows);
    let head = [
        ("licensee", false),
        ("licence", false),
        ("scenario", false),
        ("dataset", false),
        ("status", false),
        ("valid until", false),
        ("requests", true),
        ("records", true),
        ("refusals", true),
        ("masked fields", true),
    ];
    let rows: Vec<Vec<String>> = r
        .licensees
        .iter()
        .flat_map(|l| {
            l.licences.iter().map(move |u| {
                vec![
                    l.licensee.clone(),
                    u.licence.clone().unwrap_or_else(|| "(none found)".into()),
                    u.scenario.clone().unwrap_or_default(),
                    u.dataset.clone(),
                    u.status.clone().unwrap_or_default(),
                    u.valid_until.clone().unwrap_or_default(),
                    group(u.figures.requests),
                    group(u.figures.records),
                    group(u.figures.refusals),
                    group(u.figures.masked_fields),
                ]
            })
        })
        .collect();
    table(out, "Per licence and declared scenario", &head, &rows);
    out.push_str("</section>");
}

fn violation_list(out: &mut String, r: &Report) {
    out.push_str(
        "<section aria-labelledby=\"violations-h\"><h2 id=\"violations-h\">Violations recorded</h2>",
    );
    if r.violations.is_empty() {
        out.push_str("<p class=\"none\">None in this period.</p></section>");
        return;
    }
    let rows: Vec<Vec<String>> = r
        .violations
        .iter()
        .map(|v| {
            vec![
                v.at.clone(),
                v.licensee.clone(),
                v.measure.as_str().to_owned(),
                v.what.clone(),
                v.reason.clone(),
                match &v.lifted_at {
                    Some(at) => format!("{at}: {}", v.lifted_reason.as_deref().unwrap_or("")),
                    None => String::new(),
                },
            ]
        })
        .collect();
    let head = [
        ("recorded", false),
        ("licensee", false),
        ("measure", false),
        ("what", false),
        ("reason", false),
        ("lifted", false),
    ];
    table(out, "From the violation register", &head, &rows);
    out.push_str("</section>");
}

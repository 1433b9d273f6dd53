#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;
use crate::application::Status as AppStatus;
use crate::model::Measure;
use crate::objection::Kind;
use crate::store::{RefusalFigures, UsageFigures};

fn licence(id: &str, licensee: &str, dataset: &str, scenario: &str, from: &str, until: &str) -> Licence {
    serde_json::from_value(serde_json::json!({
        "id": id, "licensee": licensee, "dataset": dataset, "scenario": scenario, "fields": {},
        "valid_from": from, "valid_until": until,
    }))
    .unwrap()
}

fn usage(licensee: &str, dataset: &str, licence: Option<&str>, n: [u64; 5]) -> UsageFigures {
    UsageFigures {
        licensee: licensee.into(),
        dataset: dataset.into(),
        licence: licence.map(str::to_owned),
        requests: n[0],
        records: n[1],
        refusals: n[2],
        masked_fields: n[3],
        epsilon_micros: n[4],
    }
}

fn refusal(licensee: &str, licence: Option<&str>, code: &str, refusals: u64) -> RefusalFigures {
    RefusalFigures {
        licensee: licensee.into(),
        dataset: "hydrants".into(),
        licence: licence.map(str::to_owned),
        code: code.into(),
        refusals,
    }
}

/// Cases of `kind` filed against `dataset`: `[open, upheld, rejected, withdrawn, resolved]`.
fn objections(dataset: &str, kind: Kind, n: [u64; 5]) -> ObjectionCount {
    ObjectionCount {
        dataset: dataset.into(),
        kind,
        filed: n.iter().sum(),
        open: n[0],
        upheld: n[1],
        rejected: n[2],
        withdrawn: n[3],
        resolved: n[4],
    }
}

fn violation(licensee: &str, at: &str) -> ViolationRecord {
    ViolationRecord {
        id: format!("v-{licensee}-{at}"),
        licensee: licensee.into(),
        what: "resold <records> & more".into(),
        at: at.into(),
        measure: Measure::Warn,
        reason: "first".into(),
        lifted_at: None,
        lifted_reason: None,
    }
}

/// An application to the fire bureau, filed and decided when given.
fn application(
    id: &str,
    filed_at: &str,
    decided_at: Option<&str>,
    status: AppStatus,
    due_by: Option<&str>,
) -> crate::application::ApplicationRecord {
    crate::application::ApplicationRecord {
        id: id.into(),
        licensee: "acme".into(),
        dataset: "hydrants".into(),
        agency: Some("fire-bureau".into()),
        scenario: "fire-hydrant-adoption".into(),
        purpose: "p".into(),
        fields: vec!["id".into()],
        valid_from: None,
        valid_until: "2028-01-01T00:00:00Z".into(),
        volume: 1,
        renews: None,
        agreement: crate::application::Acceptance {
            licensee: "acme".into(),
            version: 1,
            digest: String::new(),
            accepted_at: filed_at.into(),
        },
        status,
        filed_at: filed_at.into(),
        due_by: due_by.map(Into::into),
        decided_at: decided_at.map(Into::into),
        decided_by: decided_at.map(|_| "alice".into()),
        decision_reason: None,
        licence: None,
        messages: vec![],
    }
}

/// acme used l1 (hydrants) and was refused before a licence was found; beta holds l2 in force
/// but unused, and a violation; l-old ended before the period; gamma is not registered. Four
/// cases were filed against hydrants, two against parks (which nobody used).
fn data() -> ReportData {
    ReportData {
        usage: vec![
            usage("acme", "hydrants", None, [3, 0, 3, 0, 0]),
            usage("acme", "hydrants", Some("l1"), [10, 1000, 1, 2000, 0]),
            usage("gamma", "utilities", Some("l9"), [2, 20, 0, 0, 500_000]),
        ],
        refusals: vec![
            refusal("acme", None, "scenario-not-licensed", 3),
            refusal("acme", Some("l1"), "quota-exceeded", 1),
        ],
        violations: vec![violation("beta", "2026-11-03T10:00:00Z")],
        objections: vec![
            objections("hydrants", Kind::Correction, [0, 0, 0, 0, 1]),
            objections("hydrants", Kind::Objection, [1, 1, 1, 0, 0]),
            objections("parks", Kind::Objection, [1, 0, 0, 1, 0]),
        ],
        applications: vec![
            application(
                "a1",
                "2026-10-30T09:00:00Z",
                Some("2026-11-02T09:00:00Z"),
                AppStatus::Approved,
                None,
            ),
            application(
                "a2",
                "2026-11-05T09:00:00Z",
                Some("2026-11-10T09:00:00Z"),
                AppStatus::Rejected,
                None,
            ),
            application(
                "a3",
                "2026-11-16T09:00:00Z",
                None,
                AppStatus::Open,
                Some("2026-11-30"),
            ),
        ],
        licences: vec![
            licence(
                "l1",
                "acme",
                "hydrants",
                "fire-hydrant-adoption",
                "2025-01-01T00:00:00Z",
                "2035-01-01T00:00:00Z",
            ),
            licence(
                "l2",
                "beta",
                "utilities",
                "underwriting",
                "2026-11-30T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            licence(
                "l-old",
                "delta",
                "hydrants",
                "x",
                "2020-01-01T00:00:00Z",
                "2026-11-01T00:00:00Z",
            ),
        ],
        licensee_names: BTreeMap::from([
            ("acme".to_owned(), "Acme Data Ltd".to_owned()),
            ("beta".to_owned(), "Beta & Co".to_owned()),
            ("delta".to_owned(), "Delta".to_owned()),
        ]),
    }
}

fn november() -> Report {
    build(
        &Period::Month("2026-11".into()),
        data(),
        "2026-12-01T00:00:00Z".into(),
    )
}

#[test]
fn queries_name_one_period_and_maybe_a_format() {
    let q = |s: &str| ReportQuery::parse(Some(s));
    assert_eq!(
        q("month=2026-11"),
        Ok(ReportQuery {
            period: Period::Month("2026-11".into()),
            format: None
        })
    );
    assert_eq!(
        q("year=2026&format=csv"),
        Ok(ReportQuery {
            period: Period::Year("2026".into()),
            format: Some(Format::Csv)
        })
    );
    assert_eq!(q("format=html&month=2026-01").unwrap().format, Some(Format::Html));
    assert_eq!(ReportQuery::parse(None), Err(QueryError::NoPeriod));
    assert_eq!(q("format=json"), Err(QueryError::NoPeriod));
    assert_eq!(q("month=2026-11&year=2026"), Err(QueryError::BothPeriods));
    assert_eq!(q("month=2026-13"), Err(QueryError::Month));
    assert_eq!(q("month=2026-1"), Err(QueryError::Month));
    assert_eq!(q("year=26"), Err(QueryError::Year));
    assert_eq!(q("year=2026%0A"), Err(QueryError::Year));
    assert_eq!(q("month=2026-11&format=pdf"), Err(QueryError::Format));
    assert_eq!(q("month=2026-11&month=2026-12"), Err(QueryError::Twice("month")));
    assert_eq!(q("month=2026-11&x=1"), Err(QueryError::Unknown("x".into())));
    let p = Period::Year("2026".into());
    assert_eq!(
        (p.first_month(), p.last_month()),
        ("2026-01".into(), "2026-12".into())
    );
    let (start, end) = p.bounds().unwrap();
    assert_eq!(start.format(&Rfc3339).unwrap(), "2026-01-01T00:00:00Z");
    assert_eq!(end.format(&Rfc3339).unwrap(), "2027-01-01T00:00:00Z");
    let (start, end) = Period::Month("2026-12".into()).bounds().unwrap();
    assert_eq!(start.format(&Rfc3339).unwrap(), "2026-12-01T00:00:00Z");
    assert_eq!(end.format(&Rfc3339).unwrap(), "2027-01-01T00:00:00Z");
}

#[test]
fn the_form_is_the_format_parameter_or_the_best_accepted_type() {
    for (accept, want) in [
        (None, Format::Json),
        (Some(""), Format::Json),
        (Some("*/*"), Format::Json),
        (Some("application/json"), Format::Json),
        (
            Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            Format::Html,
        ),
        (Some("text/csv"), Format::Csv),
        (Some("TEXT/CSV; charset=utf-8"), Format::Csv),
        (Some("application/json, text/html;q=0.1"), Format::Json),
        (Some("text/html;q=0.5, text/csv"), Format::Csv),
        (Some("text/*;q=0.9, application/json;q=0.5"), Format::Html),
        (Some("text/*, text/html;q=0"), Format::Csv),
        (Some("text/html;q=0"), Format::Json),
        (Some("image/png"), Format::Json),
        (Some("text/html;q=bad, text/csv;q=0.2"), Format::Csv),
    ] {
        assert_eq!(negotiate(accept), want, "{accept:?}");
    }
}

#[test]
fn the_report_has_use_per_licence_refusals_by_reason_and_violations() {
    let r = november();
    assert_eq!((r.kind, r.period.as_str()), (PeriodKind::Month, "2026-11"));
    assert_eq!(
        r.totals,
        Figures {
            requests: 15,
            records: 1020,
            refusals: 4,
            masked_fields: 2000,
            epsilon_micros: 500_000
        }
    );
    assert_eq!(r.violation_count, 1);
    // delta's only licence ended before November: delta is left out.
    let ids: Vec<&str> = r.licensees.iter().map(|l| l.licensee.as_str()).collect();
    assert_eq!(ids, ["acme", "beta", "gamma"]);
    let acme = &r.licensees[0];
    assert_eq!(acme.name.as_deref(), Some("Acme Data Ltd"));
    assert_eq!(
        (acme.figures.requests, acme.figures.records, acme.figures.refusals),
        (13, 1000, 4)
    );
    assert_eq!(
        acme.refusals_by_reason,
        BTreeMap::from([
            ("quota-exceeded".to_owned(), 1),
            ("scenario-not-licensed".to_owned(), 3)
        ])
    );
    assert_eq!(acme.licences.len(), 2);
    assert_eq!(
        acme.licences[0].licence, None,
        "refused before a licence was found"
    );
    assert_eq!(acme.licences[0].scenario, None);
    let l1 = &acme.licences[1];
    assert_eq!(l1.licence.as_deref(), Some("l1"));
    assert_eq!(l1.scenario.as_deref(), Some("fire-hydrant-adoption"));
    assert_eq!(l1.status.as_deref(), Some("active"));
    assert_eq!(l1.valid_until.as_deref(), Some("2035-01-01T00:00:00Z"));
    assert_eq!(
        (l1.figures.requests, l1.figures.records, l1.figures.masked_fields),
        (10, 1000, 2000)
    );
    // beta: a licence in force from 30 November, unused, and a violation.
    let beta = &r.licensees[1];
    assert_eq!(beta.figures, Figures::default());
    assert_eq!(beta.violations, 1);
    assert_eq!(beta.licences[0].licence.as_deref(), Some("l2"));
    assert_eq!(beta.licences[0].scenario.as_deref(), Some("underwriting"));
    // gamma: not registered, a licence the registry does not know.
    let gamma = &r.licensees[2];
    assert_eq!(gamma.name, None);
    assert_eq!(gamma.licences[0].scenario, None);
    assert_eq!(gamma.figures.epsilon_micros, 500_000);
    assert_eq!(
        r.refusals_by_reason,
        [
            ReasonCount {
                code: "scenario-not-licensed".into(),
                refusals: 3
            },
            ReasonCount {
                code: "quota-exceeded".into(),
                refusals: 1
            }
        ]
    );
    let datasets: Vec<(&str, u64)> = r
        .datasets
        .iter()
        .map(|d| (d.dataset.as_str(), d.figures.requests))
        .collect();
    assert_eq!(datasets, [("hydrants", 13), ("parks", 0), ("utilities", 2)]);
    let json = serde_json::to_value(&r).unwrap();
    assert!(
        json["licensees"][0].get("objections").is_none(),
        "objections are not per licensee"
    );
    assert_eq!(json["licensees"][0]["requests"], 13, "figures are flattened");
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
    // A year counts licences in force at any time in it: delta's l-old is.
    let year = build(&Period::Year("2026".into()), data(), String::new());
    assert_eq!(year.kind, PeriodKind::Year);
    assert!(year.licensees.iter().any(|l| l.licensee == "delta"));
}

#[test]
fn objections_are_counted_per_dataset_and_kind_by_status() {
    let r = november();
    assert_eq!(r.objection_count, 6);
    let count = |dataset: &str, kind, n: [u64; 6]| ObjectionCount {
        dataset: dataset.into(),
        kind,
        filed: n[0],
        open: n[1],
        upheld: n[2],
        rejected: n[3],
        withdrawn: n[4],
        resolved: n[5],
    };
    assert_eq!(
        r.objections,
        [
            count("hydrants", Kind::Correction, [1, 0, 0, 0, 0, 1]),
            count("hydrants", Kind::Objection, [3, 1, 1, 1, 0, 0]),
            count("parks", Kind::Objection, [2, 1, 0, 0, 1, 0]),
        ]
    );
    // Filed against a dataset: counted there, a dataset nobody used included; no licensee
    // gains a row or a figure.
    let per_dataset: Vec<(&str, u64)> = r
        .datasets
        .iter()
        .map(|d| (d.dataset.as_str(), d.objections))
        .collect();
    assert_eq!(per_dataset, [("hydrants", 4), ("parks", 2), ("utilities", 0)]);
    assert_eq!(r.datasets[1].figures, Figures::default());
    assert_eq!(r.licensees.len(), 3);
    // The store's rows in any order, one kind split over two rows: summed and sorted.
    let mut d = data();
    d.objections.reverse();
    d.objections
        .push(objections("hydrants", Kind::Objection, [0, 2, 0, 0, 0]));
    let r2 = build(&Period::Month("2026-11".into()), d, String::new());
    assert_eq!(r2.objection_count, 8);
    assert_eq!(r2.objections[0], r.objections[0]);
    assert_eq!(
        r2.objections[1],
        count("hydrants", Kind::Objection, [5, 1, 3, 1, 0, 0])
    );
    assert_eq!(r2.datasets[0].objections, 6);

    // JSON.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["objection_count"], 6);
    assert_eq!(
        json["objections"][1],
        serde_json::json!({ "dataset": "hydrants", "kind": "objection", "filed": 3, "open": 1,
                            "upheld": 1, "rejected": 1, "withdrawn": 0, "resolved": 0 })
    );
    assert_eq!(json["datasets"][1]["objections"], 2);

    // CSV: the total, each dataset's, and six rows per dataset and kind.
    let csv = to_csv(&r);
    assert!(csv.contains("\ntotal,,,,,,15,1020,4,2000,0.5,1,6,,\n"), "{csv}");
    assert!(
        csv.contains("\nlicensee,acme,,,,,13,1000,4,2000,0,0,,,\n"),
        "{csv}"
    );
    assert!(csv.contains("\ndataset,,parks,,,,0,0,0,0,0,,2,,\n"), "{csv}");
    let rows: Vec<&str> = csv.lines().filter(|l| l.starts_with("objection,")).collect();
    assert_eq!(
        rows[6..12],
        [
            "objection,,hydrants,,,objection.filed,,,,,,,3,,",
            "objection,,hydrants,,,objection.open,,,,,,,1,,",
            "objection,,hydrants,,,objection.upheld,,,,,,,1,,",
            "objection,,hydrants,,,objection.rejected,,,,,,,1,,",
            "objection,,hydrants,,,objection.withdrawn,,,,,,,0,,",
            "objection,,hydrants,,,objection.resolved,,,,,,,0,,",
        ]
    );
    assert_eq!(rows.len(), 18);
    assert!(rows.contains(&"objection,,hydrants,,,correction.resolved,,,,,,,1,,"));
    assert!(rows.contains(&"objection,,parks,,,objection.withdrawn,,,,,,,1,,"));

    // The page: the tile, the chart per dataset and the table by status.
    let page = html::render(&r);
    assert!(
        page.contains("<div><dt>Objections</dt><dd>6</dd></div>"),
        "{page}"
    );
    assert!(page.contains("<title>hydrants: 4 objections and corrections filed</title>"));
    assert!(page.contains("<caption>Objections and corrections by status</caption>"));
    assert!(page.contains(
        "<tr><td>hydrants</td><td>objection</td><td class=\"n\">3</td><td class=\"n\">1</td>\
         <td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">0</td><td class=\"n\">0</td></tr>"
    ));
    // The evaluation per licensee has no objections column.
    assert!(
        page.contains("<th scope=\"col\" class=\"n\">violations</th></tr></thead><tbody><tr><td>acme</td>")
    );
    assert!(!page.contains("Objections per licensee"));
    // None filed: the tile says 0, the sections say none.
    let mut d = data();
    d.objections.clear();
    let page = html::render(&build(&Period::Month("2026-11".into()), d, String::new()));
    assert!(page.contains("<div><dt>Objections</dt><dd>0</dd></div>"));
    assert!(page.contains("None filed in this period."));
    assert!(!page.contains("<caption>Objections per dataset</caption>"));
}

#[test]
fn the_csv_has_every_figure_under_one_header() {
    let csv = to_csv(&november());
    let want = "\
section,licensee,dataset,licence,scenario,code,requests,records,refusals,masked_fields,epsilon,violations,objections,agency,applications
total,,,,,,15,1020,4,2000,0.5,1,6,,
licensee,acme,,,,,13,1000,4,2000,0,0,,,
licensee,beta,,,,,0,0,0,0,0,1,,,
licensee,gamma,,,,,2,20,0,0,0.5,0,,,
licence,acme,hydrants,,,,3,0,3,0,0,,,,
licence,acme,hydrants,l1,fire-hydrant-adoption,,10,1000,1,2000,0,,,,
licence,beta,utilities,l2,underwriting,,0,0,0,0,0,,,,
licence,gamma,utilities,l9,,,2,20,0,0,0.5,,,,
dataset,,hydrants,,,,13,1000,4,2000,0,,4,,
dataset,,parks,,,,0,0,0,0,0,,2,,
dataset,,utilities,,,,2,20,0,0,0.5,,0,,
refusal,,,,,scenario-not-licensed,,,3,,,,,,
refusal,,,,,quota-exceeded,,,1,,,,,,
licensee-refusal,acme,,,,quota-exceeded,,,1,,,,,,
licensee-refusal,acme,,,,scenario-not-licensed,,,3,,,,,,
objection,,hydrants,,,correction.filed,,,,,,,1,,
objection,,hydrants,,,correction.open,,,,,,,0,,
objection,,hydrants,,,correction.upheld,,,,,,,0,,
objection,,hydrants,,,correction.rejected,,,,,,,0,,
objection,,hydrants,,,correction.withdrawn,,,,,,,0,,
objection,,hydrants,,,correction.resolved,,,,,,,1,,
objection,,hydrants,,,objection.filed,,,,,,,3,,
objection,,hydrants,,,objection.open,,,,,,,1,,
objection,,hydrants,,,objection.upheld,,,,,,,1,,
objection,,hydrants,,,objection.rejected,,,,,,,1,,
objection,,hydrants,,,objection.withdrawn,,,,,,,0,,
objection,,hydrants,,,objection.resolved,,,,,,,0,,
objection,,parks,,,objection.filed,,,,,,,2,,
objection,,parks,,,objection.open,,,,,,,1,,
objection,,parks,,,objection.upheld,,,,,,,0,,
objection,,parks,,,objection.rejected,,,,,,,0,,
objection,,parks,,,objection.withdrawn,,,,,,,1,,
objection,,parks,,,objection.resolved,,,,,,,0,,
application,,,,,filed,,,,,,,,fire-bureau,2
application,,,,,decided,,,,,,,,fire-bureau,2
application,,,,,approved,,,,,,,,fire-bureau,1
application,,,,,rejected,,,,,,,,fire-bureau,1
application,,,,,waiting,,,,,,,,fire-bureau,1
application,,,,,overdue,,,,,,,,fire-bureau,1
application,,,,,median_decision_days,,,,,,,,fire-bureau,4
";
    assert_eq!(csv, want);
    let columns = CSV_HEADER.split(',').count();
    assert!(csv.lines().all(|l| l.split(',').count() == columns), "{csv}");
    // Quoted when needed.
    let mut d = data();
    d.usage[1].licensee = "a,\"b\"".into();
    let csv = to_csv(&build(&Period::Month("2026-11".into()), d, String::new()));
    assert!(csv.contains("\nlicensee,\"a,\"\"b\"\"\",,,,,10,"), "{csv}");
}

#[test]
fn the_page_needs_nothing_else_and_escapes_what_it_shows() {
    let page = html::render(&november());
    assert!(page.starts_with("<!doctype html><html lang=\"en\">"));
    assert!(page.contains("<title>sluice: Usage report 2026-11</title>"));
    for chart in [
        "Requests per licensee",
        "Records per licensee",
        "Requests per dataset",
        "Records per dataset",
        "Refusals by reason",
        "Masked fields per dataset",
        "Violations per licensee",
        "Objections per dataset",
    ] {
        assert!(page.contains(&format!("\">{chart}</h2>")), "no heading {chart}");
        assert!(
            page.contains(&format!("-title\">{chart}</title>")),
            "no chart {chart}"
        );
        assert!(
            page.contains(&format!("<caption>{chart}</caption>")),
            "no table {chart}"
        );
    }
    assert_eq!(page.matches("<svg ").count(), 8);
    assert!(page.contains("<title>scenario-not-licensed: 3 refusals</title>"));
    assert!(page.contains("<td>fire-hydrant-adoption</td>"));
    assert!(page.contains("Beta &amp; Co"));
    assert!(page.contains("resold &lt;records&gt; &amp; more"));
    assert!(!page.contains("<records>"));
    for forbidden in [
        "<script", "src=", "<link", "url(", "@import", "http:", "https:", "<img", "<iframe",
    ] {
        assert!(!page.to_ascii_lowercase().contains(forbidden), "{forbidden}");
    }
    let year = html::render(&build(&Period::Year("2026".into()), data(), String::new()));
    assert!(year.contains("<h1>Annual evaluation 2026</h1>"));
    assert!(year.contains("href=\"?year=2026&amp;format=csv\""));
    // An empty period says so instead of drawing empty charts.
    let empty = html::render(&build(
        &Period::Month("1999-01".into()),
        ReportData::default(),
        String::new(),
    ));
    assert_eq!(empty.matches("<svg ").count(), 0);
    assert!(empty.contains("None in this period."));
}

#[test]
fn responses_say_what_they_are() {
    let r = november();
    let h = respond(Format::Html, &r);
    assert_eq!(h.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(h.headers()[header::CONTENT_SECURITY_POLICY], PAGE_CSP);
    assert_eq!(h.headers()[header::VARY], "accept");
    let c = respond(Format::Csv, &r);
    assert_eq!(c.headers()[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        c.headers()[header::CONTENT_DISPOSITION],
        "attachment; filename=\"sluice-usage-2026-11.csv\""
    );
    let j = respond(Format::Json, &r);
    assert_eq!(j.headers()[header::CONTENT_TYPE], "application/json");
}

/// Applications per agency: filed and decided in the period (a1 was filed in October and
/// decided three days later in November, a2 took five days: a median of four), waiting and
/// overdue when the report was made.
#[test]
fn applications_are_reported_per_agency_with_their_deadlines() {
    let r = november();
    assert_eq!(
        r.applications,
        [AgencyApplications {
            agency: "fire-bureau".into(),
            filed: 2,
            decided: 2,
            approved: 1,
            rejected: 1,
            waiting: 1,
            overdue: 1,
            median_decision_days: Some(4.0),
        }]
    );
    let page = html::render(&r);
    assert!(page.contains("<caption>Applications per agency</caption>"));
    assert!(
        page.contains("<td>fire-bureau</td><td class=\"n\">2</td>"),
        "{page}"
    );
    // Not overdue the day it is due.
    let mut d = data();
    d.applications[2].due_by = Some("2026-12-01".into());
    let r = build(&Period::Month("2026-11".into()), d, "2026-12-01T00:00:00Z".into());
    assert_eq!(r.applications[0].overdue, 0);
}

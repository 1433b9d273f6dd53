#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;
use crate::model::Measure;
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

/// acme used l1 (hydrants) and was refused before a licence was found; beta holds l2 in force
/// but unused, and a violation; l-old ended before the period; gamma is not registered.
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

fn november(objections: Option<BTreeMap<String, u64>>) -> Report {
    build(
        &Period::Month("2026-11".into()),
        data(),
        objections,
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
    let r = november(None);
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
    assert_eq!(datasets, [("hydrants", 13), ("utilities", 2)]);
    // Objections are left out until the registry keeps them.
    let json = serde_json::to_value(&r).unwrap();
    assert!(json.get("objections").is_none());
    assert!(json["licensees"][0].get("objections").is_none());
    assert_eq!(json["licensees"][0]["requests"], 13, "figures are flattened");
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
    // A year counts licences in force at any time in it: delta's l-old is.
    let year = build(&Period::Year("2026".into()), data(), None, String::new());
    assert_eq!(year.kind, PeriodKind::Year);
    assert!(year.licensees.iter().any(|l| l.licensee == "delta"));
}

#[test]
fn objections_plug_in_as_counts_per_licensee() {
    let r = november(Some(BTreeMap::from([
        ("acme".to_owned(), 2),
        ("omega".to_owned(), 1),
    ])));
    assert_eq!(r.licensees[0].objections, Some(2));
    assert_eq!(r.licensees[1].objections, Some(0));
    assert!(r.licensees.iter().any(|l| l.licensee == "omega"));
    let csv = to_csv(&r);
    assert!(
        csv.contains("\nlicensee,acme,,,,,13,1000,4,2000,0,0,2\n"),
        "{csv}"
    );
    assert!(csv.contains("\ntotal,,,,,,15,1020,4,2000,0.5,1,3\n"), "{csv}");
    let page = html::render(&r);
    assert!(page.contains("Objections per licensee"));
    // Passed empty: the figure is shown, with none.
    let r = november(Some(BTreeMap::new()));
    assert!(html::render(&r).contains("Objections per licensee"));
    assert!(!html::render(&november(None)).contains("Objections"));
}

#[test]
fn the_csv_has_every_figure_under_one_header() {
    let csv = to_csv(&november(None));
    let want = "\
section,licensee,dataset,licence,scenario,code,requests,records,refusals,masked_fields,epsilon,violations,objections
total,,,,,,15,1020,4,2000,0.5,1,
licensee,acme,,,,,13,1000,4,2000,0,0,
licensee,beta,,,,,0,0,0,0,0,1,
licensee,gamma,,,,,2,20,0,0,0.5,0,
licence,acme,hydrants,,,,3,0,3,0,0,,
licence,acme,hydrants,l1,fire-hydrant-adoption,,10,1000,1,2000,0,,
licence,beta,utilities,l2,underwriting,,0,0,0,0,0,,
licence,gamma,utilities,l9,,,2,20,0,0,0.5,,
dataset,,hydrants,,,,13,1000,4,2000,0,,
dataset,,utilities,,,,2,20,0,0,0.5,,
refusal,,,,,scenario-not-licensed,,,3,,,,
refusal,,,,,quota-exceeded,,,1,,,,
licensee-refusal,acme,,,,quota-exceeded,,,1,,,,
licensee-refusal,acme,,,,scenario-not-licensed,,,3,,,,
";
    assert_eq!(csv, want);
    let columns = CSV_HEADER.split(',').count();
    assert!(csv.lines().all(|l| l.split(',').count() == columns), "{csv}");
    // Quoted when needed.
    let mut d = data();
    d.usage[1].licensee = "a,\"b\"".into();
    let csv = to_csv(&build(&Period::Month("2026-11".into()), d, None, String::new()));
    assert!(csv.contains("\nlicensee,\"a,\"\"b\"\"\",,,,,10,"), "{csv}");
}

#[test]
fn the_page_needs_nothing_else_and_escapes_what_it_shows() {
    let page = html::render(&november(None));
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
    assert_eq!(page.matches("<svg ").count(), 7);
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
    let year = html::render(&build(&Period::Year("2026".into()), data(), None, String::new()));
    assert!(year.contains("<h1>Annual evaluation 2026</h1>"));
    assert!(year.contains("href=\"?year=2026&amp;format=csv\""));
    // An empty period says so instead of drawing empty charts.
    let empty = html::render(&build(
        &Period::Month("1999-01".into()),
        ReportData::default(),
        None,
        String::new(),
    ));
    assert_eq!(empty.matches("<svg ").count(), 0);
    assert!(empty.contains("None in this period."));
}

#[test]
fn responses_say_what_they_are() {
    let r = november(None);
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

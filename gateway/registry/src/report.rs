//! Usage reports people can read: `GET /reports/usage?month=YYYY-MM` or `?year=YYYY` (admin
//! certificate), and `sluice admin report usage|annual`.
//!
//! One [`Report`] per period, made from what gateways reported ([`crate::usage`]), the
//! licences (their declared scenarios), the violation register and the objections and
//! corrections the public filed ([`crate::objection`]): totals; per licensee its use per
//! licence and scenario, refusals by reason and violations (the annual evaluation for renewal
//! decisions); per dataset its use and the cases filed against it; refusals by reason; the
//! violations recorded in the period; the cases filed in the period per dataset and kind, by
//! where they stand now. A month is the UTC month the gateways' counts are filed under (and
//! that of a violation's `at`, a case's filing); a year is its twelve months.
//!
//! Objections are counted per dataset, never per licensee: a case is filed against a record of
//! a dataset, and the registry does not know which licensee was served that record.
//!
//! It is served in three forms with the same figures:
//!
//! * HTML ([`html`]): a page that needs nothing else (inline CSS, inline SVG charts with a
//!   table of the same figures beside each, no scripts, no external assets, a strict
//!   `Content-Security-Policy`);
//! * CSV ([`to_csv`]): one table, a `section` column naming what each row is;
//! * JSON: the [`Report`] itself.
//!
//! **Which form** ([`negotiate`]): the `format` parameter (`html`, `csv`, `json`) when given;
//! else the `Accept` header by its q-values (the most specific range matching a type gives its
//! q; the highest q wins, ties go to JSON, then HTML, then CSV); no `Accept`, or none of the
//! three acceptable, is JSON. A browser (`text/html,…,*/*;q=0.8`) gets the page, `curl`
//! (`*/*`) JSON.

pub mod html;
pub mod svg;

use super::model::ViolationRecord;
use super::objection::{Kind, Status};
use super::problem::{Problem, ProblemCode as P};
use super::store::{ReportData, Store};
use http::{header, HeaderValue, Request, Response};
use serde::{Deserialize, Serialize};
use sluice_net::body::{full, RespBody};
use sluice_policy::licence::{Licence, LicenceStatus};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, Time};

/// The period a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Period {
    /// One UTC month, `YYYY-MM`.
    Month(String),
    /// One year's twelve months, `YYYY`.
    Year(String),
}

impl Period {
    /// `YYYY-MM` or `YYYY`.
    pub fn label(&self) -> &str {
        match self {
            Period::Month(m) | Period::Year(m) => m,
        }
    }

    /// `month` or `year`.
    pub fn kind(&self) -> PeriodKind {
        match self {
            Period::Month(_) => PeriodKind::Month,
            Period::Year(_) => PeriodKind::Year,
        }
    }

    /// The first month, `YYYY-MM`.
    pub fn first_month(&self) -> String {
        match self {
            Period::Month(m) => m.clone(),
            Period::Year(y) => format!("{y}-01"),
        }
    }

    /// The last month, `YYYY-MM`.
    pub fn last_month(&self) -> String {
        match self {
            Period::Month(m) => m.clone(),
            Period::Year(y) => format!("{y}-12"),
        }
    }

    /// Start (included) and end (excluded) in UTC; `None` for a year the clock cannot hold.
    fn bounds(&self) -> Option<(OffsetDateTime, OffsetDateTime)> {
        let month_start = |year: i32, month: u8| -> Option<OffsetDateTime> {
            let m = Month::try_from(month).ok()?;
            Some(
                Date::from_calendar_date(year, m, 1)
                    .ok()?
                    .with_time(Time::MIDNIGHT)
                    .assume_utc(),
            )
        };
        let first = self.first_month();
        let last = self.last_month();
        let year: i32 = first.get(..4)?.parse().ok()?;
        let (m0, m1): (u8, u8) = (first.get(5..)?.parse().ok()?, last.get(5..)?.parse().ok()?);
        let start = month_start(year, m0)?;
        let end = if m1 == 12 {
            month_start(year + 1, 1)?
        } else {
            month_start(year, m1 + 1)?
        };
        Some((start, end))
    }
}

/// Whether a report is of a month or a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    /// `?month=YYYY-MM`: the usage report.
    Month,
    /// `?year=YYYY`: the annual evaluation.
    Year,
}

/// A form of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/html`.
    Html,
    /// `text/csv`.
    Csv,
    /// `application/json`.
    Json,
}

impl Format {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "html" => Some(Format::Html),
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Why a report request's query was refused (`bad-request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A parameter other than `month`, `year`, `format`.
    #[error("unknown parameter {0:?}: use month=YYYY-MM or year=YYYY, and format=html|csv|json")]
    Unknown(String),
    /// A parameter given more than once.
    #[error("{0} given twice")]
    Twice(&'static str),
    /// Neither `month` nor `year`.
    #[error("give month=YYYY-MM or year=YYYY")]
    NoPeriod,
    /// Both `month` and `year`.
    #[error("give month=YYYY-MM or year=YYYY, not both")]
    BothPeriods,
    /// A malformed month.
    #[error("month must be YYYY-MM")]
    Month,
    /// A malformed year.
    #[error("year must be YYYY")]
    Year,
    /// An unknown format.
    #[error("format must be html, csv or json")]
    Format,
}

/// A parsed report query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    /// The period.
    pub period: Period,
    /// The `format` parameter, when given.
    pub format: Option<Format>,
}

impl ReportQuery {
    /// Parses `month=YYYY-MM` or `year=YYYY` (exactly one) and an optional `format`; anything
    /// else is refused.
    pub fn parse(query: Option<&str>) -> Result<Self, QueryError> {
        let (mut month, mut year, mut format) = (None, None, None);
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let (slot, name) = match &*k {
                "month" => (&mut month, "month"),
                "year" => (&mut year, "year"),
                "format" => (&mut format, "format"),
                other => return Err(QueryError::Unknown(other.to_owned())),
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err(QueryError::Twice(name));
            }
        }
        let format = match format {
            None => None,
            Some(f) => Some(Format::parse(&f).ok_or(QueryError::Format)?),
        };
        let period = match (month, year) {
            (None, None) => return Err(QueryError::NoPeriod),
            (Some(_), Some(_)) => return Err(QueryError::BothPeriods),
            (Some(m), None) if super::usage::valid_month(&m) => Period::Month(m),
            (Some(_), None) => return Err(QueryError::Month),
            (None, Some(y)) if valid_year(&y) => Period::Year(y),
            (None, Some(_)) => return Err(QueryError::Year),
        };
        Ok(Self { period, format })
    }
}

/// Checks a `YYYY` year.
pub fn valid_year(y: &str) -> bool {
    y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit())
}

/// The form an `Accept` header asks for (see the module documentation): the highest q among
/// JSON, HTML and CSV, ties to JSON, then HTML, then CSV; JSON when nothing is acceptable.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Format::Json;
    };
    // (type, subtype, q) of each media range.
    let ranges: Vec<(String, String, f32)> = accept
        .split(',')
        .filter_map(|r| {
            let mut parts = r.split(';');
            let (t, s) = parts.next()?.trim().split_once('/')?;
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok())?;
            Some((t.trim().to_ascii_lowercase(), s.trim().to_ascii_lowercase(), q))
        })
        .collect();
    // The q of a type: that of the most specific range that matches it (0 when none does).
    let q_of = |ty: &str, sub: &str| -> f32 {
        let mut best: Option<(u8, f32)> = None;
        for (t, s, q) in &ranges {
            let specificity = match (t.as_str(), s.as_str()) {
                (t, s) if t == ty && s == sub => 2,
                (t, "*") if t == ty => 1,
                ("*", "*") => 0,
                _ => continue,
            };
            if best.is_none_or(|(b, _)| specificity > b) {
                best = Some((specificity, *q));
            }
        }
        best.map_or(0.0, |(_, q)| q)
    };
    let mut chosen = (Format::Json, 0.0_f32);
    for (format, ty, sub) in [
        (Format::Json, "application", "json"),
        (Format::Html, "text", "html"),
        (Format::Csv, "text", "csv"),
    ] {
        let q = q_of(ty, sub);
        if q > chosen.1 {
            chosen = (format, q);
        }
    }
    chosen.0
}

/// Requests, records, refusals, masked field values and ε over a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// Requests (refused ones included).
    pub requests: u64,
    /// Records delivered.
    pub records: u64,
    /// Requests refused.
    pub refusals: u64,
    /// Field values of delivered records masked by a rule or dropped as not granted.
    pub masked_fields: u64,
    /// Differential-privacy loss spent by aggregate answers, in millionths of ε.
    pub epsilon_micros: u64,
}

impl Figures {
    fn add(&mut self, o: &Figures) {
        self.requests = self.requests.saturating_add(o.requests);
        self.records = self.records.saturating_add(o.records);
        self.refusals = self.refusals.saturating_add(o.refusals);
        self.masked_fields = self.masked_fields.saturating_add(o.masked_fields);
        self.epsilon_micros = self.epsilon_micros.saturating_add(o.epsilon_micros);
    }
}

/// One licence's use over the period, against its declared scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceUse {
    /// Licence id; `null` for requests refused before a licence was found.
    pub licence: Option<String>,
    /// Dataset id.
    pub dataset: String,
    /// The scenario (declared purpose) it was granted for; `null` when the registry has no
    /// such licence.
    pub scenario: Option<String>,
    /// `active`, `suspended` or `revoked` now; `null` when the registry has no such licence.
    pub status: Option<String>,
    /// End of validity (RFC 3339); `null` when the registry has no such licence.
    pub valid_until: Option<String>,
    /// What was used under it.
    #[serde(flatten)]
    pub figures: Figures,
}

/// One licensee's evaluation over the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseeReport {
    /// Licensee id.
    pub licensee: String,
    /// Registered name; `null` when the id is not a registered licensee.
    pub name: Option<String>,
    /// Use over all its licences.
    #[serde(flatten)]
    pub figures: Figures,
    /// Its refusals by problem code.
    pub refusals_by_reason: BTreeMap<String, u64>,
    /// Violations recorded against it in the period.
    pub violations: u64,
    /// Its use per licence: the licences in force at some time in the period and any other
    /// that was used, by licence id (refusals before a licence was found first).
    pub licences: Vec<LicenceUse>,
}

/// One dataset's use over the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetReport {
    /// Dataset id (`-` for requests naming none).
    pub dataset: String,
    /// Its use.
    #[serde(flatten)]
    pub figures: Figures,
    /// Objections and corrections filed against its records in the period (a dataset with
    /// cases filed but no use has a row).
    #[serde(default)]
    pub objections: u64,
}

/// Objections or corrections filed against one dataset in the period, by where they stand
/// now: `filed` is every case, the others split it by status. The store reads them per
/// dataset and kind ([`ReportData::objections`]); the report sums rows of one dataset and kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectionCount {
    /// Dataset id.
    pub dataset: String,
    /// `objection` or `correction`.
    pub kind: Kind,
    /// Cases filed in the period.
    pub filed: u64,
    /// Not decided yet.
    pub open: u64,
    /// Upheld.
    pub upheld: u64,
    /// Rejected.
    pub rejected: u64,
    /// Upheld objections withdrawn since.
    pub withdrawn: u64,
    /// Upheld corrections resolved since.
    pub resolved: u64,
}

impl ObjectionCount {
    /// The headings of [`ObjectionCount::cells`]: name, and whether the column is a number.
    pub const HEAD: [(&'static str, bool); 8] = [
        ("dataset", false),
        ("kind", false),
        ("filed", true),
        ("open", true),
        ("upheld", true),
        ("rejected", true),
        ("withdrawn", true),
        ("resolved", true),
    ];

    /// The row as the report's tables show it (HTML page and text alike): dataset, kind, and
    /// the counts of [`ObjectionCount::by_status`] grouped by thousands.
    pub fn cells(&self) -> Vec<String> {
        let mut row = vec![self.dataset.clone(), self.kind.as_str().to_owned()];
        row.extend(self.by_status().iter().map(|(_, n)| svg::group(*n)));
        row
    }

    /// `filed` and the count in each status, named as on the wire (`filed`, `open`, `upheld`,
    /// `rejected`, `withdrawn`, `resolved`).
    pub fn by_status(&self) -> [(&'static str, u64); 6] {
        [
            ("filed", self.filed),
            (Status::Open.as_str(), self.open),
            (Status::Upheld.as_str(), self.upheld),
            (Status::Rejected.as_str(), self.rejected),
            (Status::Withdrawn.as_str(), self.withdrawn),
            (Status::Resolved.as_str(), self.resolved),
        ]
    }

    fn add(&mut self, f: &ObjectionCount) {
        self.filed = self.filed.saturating_add(f.filed);
        self.open = self.open.saturating_add(f.open);
        self.upheld = self.upheld.saturating_add(f.upheld);
        self.rejected = self.rejected.saturating_add(f.rejected);
        self.withdrawn = self.withdrawn.saturating_add(f.withdrawn);
        self.resolved = self.resolved.saturating_add(f.resolved);
    }
}

/// One agency's applications: filed and decided in the period, waiting now, and how long
/// decisions took (issue 16: deadlines are reported per agency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgencyApplications {
    /// Agency id (`-` for datasets that name none).
    pub agency: String,
    /// Filed in the period (by the UTC month of filing).
    pub filed: u64,
    /// Decided in the period (by the UTC month of the decision).
    pub decided: u64,
    /// Of those, approved.
    pub approved: u64,
    /// Of those, rejected.
    pub rejected: u64,
    /// Waiting now (open or waiting for the applicant), whenever filed.
    pub waiting: u64,
    /// Open past their deadline when the report was made.
    pub overdue: u64,
    /// Median time from filing to decision of those decided in the period, in days (one
    /// decimal); `null` when none was decided.
    pub median_decision_days: Option<f64>,
}

impl AgencyApplications {
    /// The row as the report's tables show it (HTML page and text alike): the agency, the
    /// counts grouped by thousands, the median days to one decimal or `missing`.
    pub fn cells(&self, missing: &str) -> Vec<String> {
        vec![
            self.agency.clone(),
            svg::group(self.filed),
            svg::group(self.decided),
            svg::group(self.approved),
            svg::group(self.rejected),
            svg::group(self.waiting),
            svg::group(self.overdue),
            self.median_decision_days
                .map_or_else(|| missing.to_owned(), |d| format!("{d:.1}")),
        ]
    }
}

/// The applications part of a report, per agency, sorted by agency.
fn applications(
    period: &Period,
    apps: &[crate::application::ApplicationRecord],
    today: time::Date,
) -> Vec<AgencyApplications> {
    use crate::application::Status as A;
    let (first, last) = (period.first_month(), period.last_month());
    let in_period = |at: &str| {
        at.get(..7)
            .is_some_and(|m| m >= first.as_str() && m <= last.as_str())
    };
    let mut per: BTreeMap<String, (AgencyApplications, Vec<f64>)> = BTreeMap::new();
    for a in apps {
        let key = a.agency.clone().unwrap_or_else(|| "-".to_owned());
        let (e, days) = per.entry(key.clone()).or_insert_with(|| {
            (
                AgencyApplications {
                    agency: key,
                    filed: 0,
                    decided: 0,
                    approved: 0,
                    rejected: 0,
                    waiting: 0,
                    overdue: 0,
                    median_decision_days: None,
                },
                Vec::new(),
            )
        });
        if in_period(&a.filed_at) {
            e.filed += 1;
        }
        match (a.status, a.decided_at.as_deref()) {
            (A::Approved | A::Rejected, Some(at)) if in_period(at) => {
                e.decided += 1;
                if a.status == A::Approved {
                    e.approved += 1;
                } else {
                    e.rejected += 1;
                }
                let parse = |s: &str| OffsetDateTime::parse(s, &Rfc3339).ok();
                if let (Some(f), Some(d)) = (parse(&a.filed_at), parse(at)) {
                    days.push((d - f).as_seconds_f64() / 86_400.0);
                }
            }
            (A::Open | A::MoreInfo, _) => {
                e.waiting += 1;
                if a.overdue(today) {
                    e.overdue += 1;
                }
            }
            _ => {}
        }
    }
    per.into_values()
        .map(|(mut e, mut days)| {
            days.sort_by(f64::total_cmp);
            e.median_decision_days = match days.len() {
                0 => None,
                n if n % 2 == 1 => Some(days[n / 2]),
                n => Some((days[n / 2 - 1] + days[n / 2]) / 2.0),
            }
            .map(|d| (d * 10.0).round() / 10.0);
            e
        })
        .collect()
}

/// Refusals under one problem code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCount {
    /// Problem code, e.g. `scenario-not-licensed`.
    pub code: String,
    /// How many.
    pub refusals: u64,
}

/// A usage report: the same figures the page charts, the CSV lists and the JSON carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `month` (the usage report) or `year` (the annual evaluation).
    pub kind: PeriodKind,
    /// `YYYY-MM` or `YYYY`.
    pub period: String,
    /// First month counted, `YYYY-MM`.
    pub first_month: String,
    /// Last month counted, `YYYY-MM`.
    pub last_month: String,
    /// When the report was made (RFC 3339, UTC).
    pub generated_at: String,
    /// Everything over the period.
    pub totals: Figures,
    /// Violations recorded in the period.
    pub violation_count: u64,
    /// Per licensee, by id.
    pub licensees: Vec<LicenseeReport>,
    /// Per dataset, by id.
    pub datasets: Vec<DatasetReport>,
    /// Refusals by problem code, most first.
    pub refusals_by_reason: Vec<ReasonCount>,
    /// The violations recorded in the period (by the UTC month of `at`), oldest first.
    pub violations: Vec<ViolationRecord>,
    /// Objections and corrections filed in the period (by the UTC month of their filing).
    #[serde(default)]
    pub objection_count: u64,
    /// The cases filed in the period per dataset and kind, by where they stand now; sorted by
    /// dataset, then kind.
    #[serde(default)]
    pub objections: Vec<ObjectionCount>,
    /// Applications per owning agency: filed and decided in the period, waiting and overdue
    /// when the report was made, median decision time.
    #[serde(default)]
    pub applications: Vec<AgencyApplications>,
}

fn status_name(s: &LicenceStatus) -> &'static str {
    match s {
        LicenceStatus::Active => "active",
        LicenceStatus::Suspended { .. } => "suspended",
        LicenceStatus::Revoked { .. } => "revoked",
    }
}

fn licence_use(id: Option<String>, dataset: String, lic: Option<&Licence>) -> LicenceUse {
    LicenceUse {
        licence: id,
        dataset,
        scenario: lic.map(|l| l.scenario.clone()),
        status: lic.map(|l| status_name(&l.status).to_owned()),
        valid_until: lic.and_then(|l| l.valid_until.format(&Rfc3339).ok()),
        figures: Figures::default(),
    }
}

/// Makes the report of `period` from what the store holds. Pure: the caller reads the store
/// and the clock.
pub fn build(period: &Period, data: ReportData, generated_at: String) -> Report {
    let licences: BTreeMap<&str, &Licence> = data.licences.iter().map(|l| (l.id.as_str(), l)).collect();
    let mut per_licensee: BTreeMap<String, LicenseeReport> = BTreeMap::new();
    let entry = |map: &mut BTreeMap<String, LicenseeReport>, id: &str| {
        map.entry(id.to_owned()).or_insert_with(|| LicenseeReport {
            licensee: id.to_owned(),
            name: data.licensee_names.get(id).cloned(),
            figures: Figures::default(),
            refusals_by_reason: BTreeMap::new(),
            violations: 0,
            licences: Vec::new(),
        });
    };
    // Use per licence (and per dataset for refusals before a licence was found).
    let mut uses: BTreeMap<(String, Option<String>, String), LicenceUse> = BTreeMap::new();
    // Per dataset: its use and the cases filed against it.
    let mut datasets: BTreeMap<String, (Figures, u64)> = BTreeMap::new();
    let mut totals = Figures::default();
    for u in &data.usage {
        let f = Figures {
            requests: u.requests,
            records: u.records,
            refusals: u.refusals,
            masked_fields: u.masked_fields,
            epsilon_micros: u.epsilon_micros,
        };
        totals.add(&f);
        datasets.entry(u.dataset.clone()).or_default().0.add(&f);
        entry(&mut per_licensee, &u.licensee);
        let lic = u.licence.as_deref().and_then(|l| licences.get(l).copied());
        uses.entry((u.licensee.clone(), u.licence.clone(), u.dataset.clone()))
            .or_insert_with(|| licence_use(u.licence.clone(), u.dataset.clone(), lic))
            .figures
            .add(&f);
    }
    // Licences in force at some time in the period, used or not.
    if let Some((start, end)) = period.bounds() {
        for l in &data.licences {
            if l.valid_from < end && l.valid_until > start {
                entry(&mut per_licensee, &l.licensee);
                uses.entry((l.licensee.clone(), Some(l.id.clone()), l.dataset.clone()))
                    .or_insert_with(|| licence_use(Some(l.id.clone()), l.dataset.clone(), Some(l)));
            }
        }
    }
    for ((licensee, _, _), u) in uses {
        if let Some(r) = per_licensee.get_mut(&licensee) {
            r.figures.add(&u.figures);
            r.licences.push(u);
        }
    }
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for r in &data.refusals {
        entry(&mut per_licensee, &r.licensee);
        if let Some(l) = per_licensee.get_mut(&r.licensee) {
            let n = l.refusals_by_reason.entry(r.code.clone()).or_default();
            *n = n.saturating_add(r.refusals);
        }
        let n = by_reason.entry(r.code.clone()).or_default();
        *n = n.saturating_add(r.refusals);
    }
    for v in &data.violations {
        entry(&mut per_licensee, &v.licensee);
        if let Some(l) = per_licensee.get_mut(&v.licensee) {
            l.violations += 1;
        }
    }
    let mut objections: BTreeMap<(String, &'static str), ObjectionCount> = BTreeMap::new();
    let mut objection_count = 0u64;
    for o in &data.objections {
        objection_count = objection_count.saturating_add(o.filed);
        let d = &mut datasets.entry(o.dataset.clone()).or_default().1;
        *d = d.saturating_add(o.filed);
        objections
            .entry((o.dataset.clone(), o.kind.as_str()))
            .and_modify(|c| c.add(o))
            .or_insert_with(|| o.clone());
    }
    let mut refusals_by_reason: Vec<ReasonCount> = by_reason
        .into_iter()
        .map(|(code, refusals)| ReasonCount { code, refusals })
        .collect();
    refusals_by_reason.sort_by(|a, b| b.refusals.cmp(&a.refusals).then_with(|| a.code.cmp(&b.code)));
    let made_on = OffsetDateTime::parse(&generated_at, &Rfc3339)
        .map_or_else(|_| OffsetDateTime::now_utc().date(), |t| t.date());
    Report {
        kind: period.kind(),
        period: period.label().to_owned(),
        first_month: period.first_month(),
        last_month: period.last_month(),
        generated_at,
        totals,
        violation_count: u64::try_from(data.violations.len()).unwrap_or(u64::MAX),
        licensees: per_licensee.into_values().collect(),
        datasets: datasets
            .into_iter()
            .map(|(dataset, (figures, objections))| DatasetReport {
                dataset,
                figures,
                objections,
            })
            .collect(),
        refusals_by_reason,
        violations: data.violations,
        objection_count,
        objections: objections.into_values().collect(),
        applications: applications(period, &data.applications, made_on),
    }
}

/// The CSV header of [`to_csv`].
pub const CSV_HEADER: &str = "section,licensee,dataset,licence,scenario,code,requests,records,refusals,\
                              masked_fields,epsilon,violations,objections,agency,applications";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// ε as a decimal (from millionths).
pub fn epsilon(micros: u64) -> String {
    (micros as f64 / 1e6).to_string()
}

/// The report as one CSV table (RFC 4180, fields quoted when needed) under [`CSV_HEADER`];
/// `section` says what a row is and which columns it fills:
///
/// * `total`: the figures, `violations` and `objections` (cases filed) over the period;
/// * `licensee`: one licensee's (`licensee`, figures, `violations`; `objections` empty:
///   cases are filed against datasets, not licensees);
/// * `licence`: one licence's use (`licensee`, `dataset`, `licence` empty for refusals before
///   a licence was found, `scenario`, figures);
/// * `dataset`: one dataset's (`dataset`, figures, `objections`: cases filed against it);
/// * `refusal`: refusals under one problem code (`code`, `refusals`; the other figures empty);
/// * `licensee-refusal`: one licensee's refusals under one code (`licensee`, `code`,
///   `refusals`);
/// * `objection`: cases of one kind filed against one dataset in the period (`dataset`, `code`
///   `<kind>.filed` for all of them, or `<kind>.<status>` for those in a status now, e.g.
///   `correction.upheld`; the count in `objections`; six rows per dataset and kind, zeros
///   included);
/// * `application`: one agency's applications (`agency`; `code` `filed`, `decided`,
///   `approved`, `rejected`, `waiting`, `overdue` or `median_decision_days`; the value in
///   `applications`, the median in days with one decimal, empty when none was decided).
///
/// `epsilon` is the differential-privacy loss as a decimal. The violation records themselves
/// are in the JSON and on the page.
pub fn to_csv(r: &Report) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    let figures = |f: &Figures| {
        format!(
            "{},{},{},{},{}",
            f.requests,
            f.records,
            f.refusals,
            f.masked_fields,
            epsilon(f.epsilon_micros)
        )
    };
    let refusals = |n: u64| format!(",,{n},,");
    let no_figures = ",,,,".to_owned();
    let count = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
    let mut row = |cells: [&str; 6], figures: String, violations: Option<u64>, objections: Option<u64>| {
        let cells: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        out.push_str(&format!(
            "{},{figures},{},{},,\n",
            cells.join(","),
            count(violations),
            count(objections)
        ));
    };
    row(
        ["total", "", "", "", "", ""],
        figures(&r.totals),
        Some(r.violation_count),
        Some(r.objection_count),
    );
    for l in &r.licensees {
        row(
            ["licensee", &l.licensee, "", "", "", ""],
            figures(&l.figures),
            Some(l.violations),
            None,
        );
    }
    for l in &r.licensees {
        for u in &l.licences {
            row(
                [
                    "licence",
                    &l.licensee,
                    &u.dataset,
                    u.licence.as_deref().unwrap_or(""),
                    u.scenario.as_deref().unwrap_or(""),
                    "",
                ],
                figures(&u.figures),
                None,
                None,
            );
        }
    }
    for d in &r.datasets {
        row(
            ["dataset", "", &d.dataset, "", "", ""],
            figures(&d.figures),
            None,
            Some(d.objections),
        );
    }
    for c in &r.refusals_by_reason {
        row(
            ["refusal", "", "", "", "", &c.code],
            refusals(c.refusals),
            None,
            None,
        );
    }
    for l in &r.licensees {
        for (code, n) in &l.refusals_by_reason {
            row(
                ["licensee-refusal", &l.licensee, "", "", "", code],
                refusals(*n),
                None,
                None,
            );
        }
    }
    for o in &r.objections {
        for (status, n) in o.by_status() {
            let code = format!("{}.{status}", o.kind.as_str());
            row(
                ["objection", "", &o.dataset, "", "", &code],
                no_figures.clone(),
                None,
                Some(n),
            );
        }
    }
    for a in &r.applications {
        let median = a.median_decision_days.map(|d| d.to_string()).unwrap_or_default();
        for (code, value) in [
            ("filed", a.filed.to_string()),
            ("decided", a.decided.to_string()),
            ("approved", a.approved.to_string()),
            ("rejected", a.rejected.to_string()),
            ("waiting", a.waiting.to_string()),
            ("overdue", a.overdue.to_string()),
            ("median_decision_days", median),
        ] {
            out.push_str(&format!(
                "application,,,,,{code},,,,,,,,{},{value}\n",
                csv_field(&a.agency)
            ));
        }
    }
    out
}

/// The `Content-Security-Policy` of the page: nothing may load, inline styles only.
pub const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The report as a response in `format`.
pub fn respond(format: Format, r: &Report) -> Response<RespBody> {
    let (body, ct) = match format {
        Format::Html => (html::render(r).into_bytes(), "text/html; charset=utf-8"),
        Format::Csv => (to_csv(r).into_bytes(), "text/csv; charset=utf-8"),
        Format::Json => (serde_json::to_vec(r).unwrap_or_default(), "application/json"),
    };
    let mut resp = Response::new(full(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("accept"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    match format {
        Format::Html => {
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            );
        }
        Format::Csv => {
            let name = format!("attachment; filename=\"sluice-usage-{}.csv\"", r.period);
            if let Ok(v) = HeaderValue::from_str(&name) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
        }
        Format::Json => {}
    }
    resp
}

/// `GET /reports/usage?month=YYYY-MM|year=YYYY[&format=html|csv|json]`; the caller checked the
/// admin certificate.
pub async fn get<B>(store: &Store, req: &Request<B>) -> Result<Response<RespBody>, Problem> {
    let q = ReportQuery::parse(req.uri().query()).map_err(|e| Problem::new(P::BadRequest, e.to_string()))?;
    let format = q.format.unwrap_or_else(|| {
        let accept: Vec<&str> = req
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        negotiate(Some(&accept.join(",")))
    });
    let data = store
        .report_data(&q.period.first_month(), &q.period.last_month())
        .await?;
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let report = build(&q.period, data, now.format(&Rfc3339).unwrap_or_default());
    Ok(respond(format, &report))
}

#[cfg(test)]
mod tests;

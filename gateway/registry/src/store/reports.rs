//! What a usage report ([`crate::report`]) reads, in one read transaction so its figures agree:
//! the usage and refusals gateways reported for a range of months, the violations recorded in
//! it, the objections and corrections filed in it (per dataset and kind, by status now), the
//! licences (for their scenarios) and the licensees' names.

use super::{licence_from, to_u64, violation_from, Result, Store, StoreError, VIOLATION_COLUMNS};
use crate::model::ViolationRecord;
use crate::objection::{Kind, Status};
use crate::report::ObjectionCount;
use sluice_policy::licence::Licence;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::BTreeMap;

/// Usage of one licensee, dataset and licence over a period, summed over gateways and reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFigures {
    /// Licensee id.
    pub licensee: String,
    /// Dataset id (`-` for requests naming none).
    pub dataset: String,
    /// Licence id; `None` for requests refused before a licence was found.
    pub licence: Option<String>,
    /// Requests (refused ones included).
    pub requests: u64,
    /// Records delivered.
    pub records: u64,
    /// Requests refused.
    pub refusals: u64,
    /// Field values of delivered records masked or dropped.
    pub masked_fields: u64,
    /// Differential-privacy loss, in millionths of ε.
    pub epsilon_micros: u64,
}

/// Refusals of one licensee, dataset and licence under one problem code over a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefusalFigures {
    /// Licensee id.
    pub licensee: String,
    /// Dataset id.
    pub dataset: String,
    /// Licence id, `None` before a licence was found.
    pub licence: Option<String>,
    /// Problem code, e.g. `scenario-not-licensed`.
    pub code: String,
    /// How many.
    pub refusals: u64,
}

/// Everything a usage report is made of, read at one moment.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    /// Usage, sorted by licensee, dataset, licence.
    pub usage: Vec<UsageFigures>,
    /// Refusals by code, sorted by licensee, dataset, licence, code.
    pub refusals: Vec<RefusalFigures>,
    /// Violations recorded in the period (by the UTC month of `at`), oldest first.
    pub violations: Vec<ViolationRecord>,
    /// Objections and corrections filed in the period (by the UTC month of `filed_at`), per
    /// dataset and kind with their counts by status now; sorted by dataset, kind.
    pub objections: Vec<ObjectionCount>,
    /// Every application (the report counts those filed or decided in the period, and those
    /// waiting now).
    pub applications: Vec<crate::application::ApplicationRecord>,
    /// Every licence, by id.
    pub licences: Vec<Licence>,
    /// Licensee names by id.
    pub licensee_names: BTreeMap<String, String>,
}

fn licence_of(r: &AnyRow) -> Result<Option<String>> {
    let l: String = r.try_get("licence")?;
    Ok((!l.is_empty()).then_some(l))
}

impl Store {
    /// The sum of `column` as a `BIGINT` that saturates at `i64::MAX` instead of failing: every
    /// stored count fits `i64`, their sum need not (SQLite's `SUM` raises an overflow; its
    /// `TOTAL` is a float, exact below 2^53, cast back saturating; PostgreSQL sums exactly in
    /// `numeric`).
    fn saturating_sum(&self, column: &str) -> String {
        if self.postgres_url().is_some() {
            format!("CAST(LEAST(SUM({column}), 9223372036854775807) AS BIGINT) AS {column}")
        } else {
            format!("CAST(TOTAL({column}) AS BIGINT) AS {column}")
        }
    }

    /// What a report of the months `first` to `last` (`YYYY-MM`, both included) shows, read in
    /// one read transaction.
    pub async fn report_data(&self, first: &str, last: &str) -> Result<ReportData> {
        let mut tx = self.begin_read().await?;
        let sums = [
            "requests",
            "records",
            "refusals",
            "masked_fields",
            "epsilon_micros",
        ]
        .map(|c| self.saturating_sum(c))
        .join(", ");
        let usage = sqlx::query(&format!(
            "SELECT licensee, dataset, licence, {sums} FROM usage_counts \
             WHERE month >= $1 AND month <= $2 GROUP BY licensee, dataset, licence \
             ORDER BY licensee, dataset, licence"
        ))
        .bind(first)
        .bind(last)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok(UsageFigures {
                licensee: r.try_get("licensee")?,
                dataset: r.try_get("dataset")?,
                licence: licence_of(r)?,
                requests: to_u64(r.try_get("requests")?),
                records: to_u64(r.try_get("records")?),
                refusals: to_u64(r.try_get("refusals")?),
                masked_fields: to_u64(r.try_get("masked_fields")?),
                epsilon_micros: to_u64(r.try_get("epsilon_micros")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let refusals = sqlx::query(&format!(
            "SELECT licensee, dataset, licence, code, {} FROM usage_refusals \
             WHERE month >= $1 AND month <= $2 GROUP BY licensee, dataset, licence, code \
             ORDER BY licensee, dataset, licence, code",
            self.saturating_sum("refusals")
        ))
        .bind(first)
        .bind(last)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok(RefusalFigures {
                licensee: r.try_get("licensee")?,
                dataset: r.try_get("dataset")?,
                licence: licence_of(r)?,
                code: r.try_get("code")?,
                refusals: to_u64(r.try_get("refusals")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let violations = sqlx::query(&format!(
            "SELECT {VIOLATION_COLUMNS} FROM violations \
             WHERE substr(at, 1, 7) >= $1 AND substr(at, 1, 7) <= $2 ORDER BY id"
        ))
        .bind(first)
        .bind(last)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(violation_from)
        .collect::<Result<Vec<_>>>()?;
        // The statuses are the store's own constant names, not input.
        let by_status = [
            Status::Open,
            Status::Upheld,
            Status::Rejected,
            Status::Withdrawn,
            Status::Resolved,
        ]
        .map(|s| {
            let s = s.as_str();
            format!("CAST(SUM(CASE WHEN status = '{s}' THEN 1 ELSE 0 END) AS BIGINT) AS n_{s}")
        })
        .join(", ");
        let objections = sqlx::query(&format!(
            "SELECT dataset, kind, CAST(COUNT(*) AS BIGINT) AS n_filed, {by_status} FROM objections \
             WHERE substr(filed_at, 1, 7) >= $1 AND substr(filed_at, 1, 7) <= $2 \
             GROUP BY dataset, kind ORDER BY dataset, kind"
        ))
        .bind(first)
        .bind(last)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            let dataset: String = r.try_get("dataset")?;
            let kind: String = r.try_get("kind")?;
            let n = |c: &str| -> Result<u64> { Ok(to_u64(r.try_get(c)?)) };
            Ok(ObjectionCount {
                kind: Kind::parse(&kind).ok_or_else(|| {
                    StoreError::Corrupt(format!("objections of {dataset}"), format!("kind {kind:?}"))
                })?,
                dataset,
                filed: n("n_filed")?,
                open: n("n_open")?,
                upheld: n("n_upheld")?,
                rejected: n("n_rejected")?,
                withdrawn: n("n_withdrawn")?,
                resolved: n("n_resolved")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let licences = sqlx::query("SELECT id, body FROM licences ORDER BY id")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(licence_from)
            .collect::<Result<Vec<_>>>()?;
        let applications = sqlx::query("SELECT id, body FROM applications ORDER BY filed_at, id")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(super::applications::application_from)
            .collect::<Result<Vec<_>>>()?;
        let licensee_names = sqlx::query("SELECT id, name FROM licensees ORDER BY id")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        tx.rollback().await?;
        Ok(ReportData {
            usage,
            refusals,
            violations,
            objections,
            applications,
            licences,
            licensee_names,
        })
    }
}

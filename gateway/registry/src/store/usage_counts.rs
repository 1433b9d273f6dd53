//! Usage counts reported by gateways: `usage_reports` (one row per accepted report, the
//! idempotence key), `usage_counts` (its rows) and `usage_refusals` (their refusals by problem
//! code). Not admin changes: no revision bump.

use super::{now, to_u64, Result, Store};
use crate::model::UsageRow;
use sluice_policy::usage::UsageReport;
use sqlx::Row;
use std::collections::BTreeMap;

/// The sums of a report's rows with one licensee, dataset and licence: requests, records,
/// refusals, epsilon_micros, masked_fields; and the refusals by problem code.
#[derive(Default)]
struct Merged<'a> {
    counts: [u64; 5],
    by_code: BTreeMap<&'a str, u64>,
}

impl Store {
    /// Stores a gateway's report once: `Ok(false)` when `(gateway, report_id)` was already
    /// stored (nothing is counted again). Rows with the same licensee, dataset and licence are
    /// summed, their refusals by code too. The caller validates the report.
    pub async fn add_usage(&self, gateway: &str, report: &UsageReport) -> Result<bool> {
        let mut tx = self.begin().await?;
        let first =
            sqlx::query("INSERT INTO usage_reports (gateway, report_id, received_at) VALUES ($1, $2, $3)")
                .bind(gateway)
                .bind(&report.report_id)
                .bind(now())
                .execute(&mut *tx)
                .await;
        match first {
            Ok(_) => {}
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let mut merged: BTreeMap<(&str, &str, &str), Merged> = BTreeMap::new();
        for c in &report.counts {
            let key = (
                c.licensee.as_str(),
                c.dataset.as_str(),
                c.licence.as_deref().unwrap_or(""),
            );
            let sum = merged.entry(key).or_default();
            for (s, n) in sum.counts.iter_mut().zip([
                c.requests,
                c.records,
                c.refusals,
                c.epsilon_micros,
                c.masked_fields,
            ]) {
                *s = s.saturating_add(n);
            }
            for (code, n) in &c.refusals_by_code {
                let s = sum.by_code.entry(code).or_default();
                *s = s.saturating_add(*n);
            }
        }
        let (month, from, until) = (report.month(), report.from_rfc3339(), report.until_rfc3339());
        let big = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for ((licensee, dataset, licence), sum) in merged {
            let [requests, records, refusals, epsilon_micros, masked_fields] = sum.counts;
            sqlx::query(
                "INSERT INTO usage_counts (gateway, report_id, month, period_from, period_until, licensee, \
                 dataset, licence, requests, records, refusals, epsilon_micros, masked_fields) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(gateway)
            .bind(&report.report_id)
            .bind(&month)
            .bind(&from)
            .bind(&until)
            .bind(licensee)
            .bind(dataset)
            .bind(licence)
            .bind(big(requests))
            .bind(big(records))
            .bind(big(refusals))
            .bind(big(epsilon_micros))
            .bind(big(masked_fields))
            .execute(&mut *tx)
            .await?;
            for (code, n) in sum.by_code {
                sqlx::query(
                    "INSERT INTO usage_refusals (gateway, report_id, month, licensee, dataset, licence, \
                     code, refusals) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(gateway)
                .bind(&report.report_id)
                .bind(&month)
                .bind(licensee)
                .bind(dataset)
                .bind(licence)
                .bind(code)
                .bind(big(n))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Totals per licensee and dataset for `month` (`YYYY-MM`), with the reporting gateways,
    /// sorted by licensee, dataset.
    pub async fn usage(&self, month: &str) -> Result<Vec<UsageRow>> {
        let rows = sqlx::query(
            "SELECT licensee, dataset, gateway, CAST(SUM(requests) AS BIGINT) AS requests, \
             CAST(SUM(records) AS BIGINT) AS records, CAST(SUM(refusals) AS BIGINT) AS refusals, \
             CAST(SUM(epsilon_micros) AS BIGINT) AS epsilon_micros \
             FROM usage_counts WHERE month = $1 GROUP BY licensee, dataset, gateway",
        )
        .bind(month)
        .fetch_all(&self.pool)
        .await?;
        let mut out: BTreeMap<(String, String), UsageRow> = BTreeMap::new();
        for r in rows {
            let (licensee, dataset): (String, String) = (r.try_get("licensee")?, r.try_get("dataset")?);
            let row = out
                .entry((licensee.clone(), dataset.clone()))
                .or_insert_with(|| UsageRow {
                    licensee,
                    dataset,
                    ..UsageRow::default()
                });
            row.requests = row.requests.saturating_add(to_u64(r.try_get("requests")?));
            row.records = row.records.saturating_add(to_u64(r.try_get("records")?));
            row.refusals = row.refusals.saturating_add(to_u64(r.try_get("refusals")?));
            row.epsilon_micros = row
                .epsilon_micros
                .saturating_add(to_u64(r.try_get("epsilon_micros")?));
            row.gateways.push(r.try_get("gateway")?);
        }
        Ok(out
            .into_values()
            .map(|mut r| {
                r.gateways.sort();
                r
            })
            .collect())
    }
}

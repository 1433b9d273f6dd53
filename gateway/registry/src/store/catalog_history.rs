//! `catalog_versions`: the living open list. Every change of a catalog entry (registered,
//! updated, closed, reopened, marked under evaluation) writes the entry's next version in the
//! transaction of the change itself, under the change's number: so the history has a version
//! for every committed change of the entry and none for a change that failed. The switch
//! closing all conditional data is not a change of any entry and writes none.
//!
//! Entries registered before this table existed have no version for what happened to them
//! before; their history starts with their first change after it.

use super::{category, dataset_from, json, Change, Committed, Result, Store, StoreError, Tx};
use crate::catalog_history::{diff, CatalogVersion, Summary, VersionAction};
use crate::model::DatasetRecord;
use sqlx::Row;

/// Tables, created with the store's own (`datasets.next_evaluation` is an added column:
/// store.rs, `ADDED_COLUMNS`). `change_number` is the `admin_changes.revision` of the change
/// the version belongs to; `summary` is the JSON of [`Summary`]; `spec`, `open_category`,
/// `closed` and `next_evaluation` are the entry after the change.
pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS catalog_versions (dataset TEXT NOT NULL, seq BIGINT NOT NULL, \
     at TEXT NOT NULL, change_number BIGINT NOT NULL, action TEXT NOT NULL, summary TEXT NOT NULL, \
     reason TEXT NOT NULL, spec TEXT NOT NULL, open_category TEXT NOT NULL, closed BIGINT NOT NULL, \
     next_evaluation TEXT, PRIMARY KEY (dataset, seq))",
];

/// The columns [`dataset_from`] reads.
pub(super) const DATASET_COLUMNS: &str = "id, spec, open_category, closed, agency, next_evaluation";

impl Store {
    /// The catalog entry `id` as `tx` sees it; `None` when there is none.
    pub(super) async fn dataset_in(tx: &mut Tx, id: &str) -> Result<Option<DatasetRecord>> {
        let row = sqlx::query(&format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        row.as_ref().map(dataset_from).transpose()
    }

    /// Records `change` in `tx`, writes the entry's next version (what changed from `before`
    /// to `after`, with the change's time, number and reason) and commits: the version and
    /// the change are one transaction.
    pub(super) async fn finish_version(
        mut tx: Tx,
        change: &Change<'_>,
        action: VersionAction,
        before: Option<&DatasetRecord>,
        after: &DatasetRecord,
    ) -> Result<Committed> {
        let (committed, alters) = Self::record(&mut tx, change, None).await?;
        let number = i64::try_from(committed.change).unwrap_or(i64::MAX);
        let at: String = sqlx::query("SELECT at FROM admin_changes WHERE revision = $1")
            .bind(number)
            .fetch_one(&mut *tx)
            .await?
            .try_get("at")?;
        let seq: i64 =
            sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 AS seq FROM catalog_versions WHERE dataset = $1")
                .bind(&after.spec.id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("seq")?;
        sqlx::query(
            "INSERT INTO catalog_versions (dataset, seq, at, change_number, action, summary, reason, \
             spec, open_category, closed, next_evaluation) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&after.spec.id)
        .bind(seq)
        .bind(&at)
        .bind(number)
        .bind(action.as_str())
        .bind(json(&diff(before, after))?)
        .bind(change.reason)
        .bind(json(&after.spec)?)
        .bind(after.open_category.as_str())
        .bind(i64::from(after.closed))
        .bind(&after.next_evaluation)
        .execute(&mut *tx)
        .await?;
        Self::commit(tx, committed, alters).await?;
        Ok(committed)
    }

    /// Marks a catalog entry that is not open (its category is non-open, or it is closed) as
    /// under evaluation until `next` (`YYYY-MM-DD`, checked by the caller): an open entry is
    /// [`StoreError::Invalid`], an unknown one [`StoreError::NotFound`].
    pub async fn set_next_evaluation(
        &self,
        id: &str,
        next: &str,
        change: &Change<'_>,
    ) -> Result<(DatasetRecord, Committed)> {
        let mut tx = self.begin().await?;
        Self::lock_changes(&mut tx).await?;
        let before = Self::dataset_in(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("dataset {id}")))?;
        if crate::catalog_history::is_open(&before) {
            return Err(StoreError::Invalid(format!(
                "dataset {id} is open ({}, not closed): only an entry not yet open is evaluated",
                before.open_category.as_str()
            )));
        }
        sqlx::query("UPDATE datasets SET next_evaluation = $1 WHERE id = $2")
            .bind(next)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let after = DatasetRecord {
            next_evaluation: Some(next.to_owned()),
            ..before.clone()
        };
        let rev = Self::finish_version(tx, change, VersionAction::Evaluation, Some(&before), &after).await?;
        Ok((after, rev))
    }

    /// The versions of catalog entry `id`, newest first (empty for an entry with none).
    pub async fn catalog_history(&self, id: &str) -> Result<Vec<CatalogVersion>> {
        let rows = sqlx::query(
            "SELECT seq, at, change_number, action, summary, reason, spec, open_category, closed, \
             next_evaluation FROM catalog_versions WHERE dataset = $1 ORDER BY seq DESC",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let corrupt = |what: &str, e: String| {
                    StoreError::Corrupt(format!("catalog version of {id} ({what})"), e)
                };
                let action: String = r.try_get("action")?;
                let summary: String = r.try_get("summary")?;
                let spec: String = r.try_get("spec")?;
                let spec: sluice_policy::catalog::DatasetSpec =
                    serde_json::from_str(&spec).map_err(|e| corrupt("spec", e.to_string()))?;
                let cat: String = r.try_get("open_category")?;
                let closed: i64 = r.try_get("closed")?;
                Ok(CatalogVersion {
                    seq: super::to_u64(r.try_get("seq")?),
                    at: r.try_get("at")?,
                    change: super::to_u64(r.try_get("change_number")?),
                    action: VersionAction::parse(&action).ok_or_else(|| corrupt("action", action.clone()))?,
                    changes: serde_json::from_str::<Summary>(&summary)
                        .map_err(|e| corrupt("summary", e.to_string()))?,
                    reason: r.try_get("reason")?,
                    version: spec.version,
                    spec,
                    open_category: category(&cat),
                    closed: closed != 0,
                    next_evaluation: r.try_get("next_evaluation")?,
                })
            })
            .collect()
    }
}

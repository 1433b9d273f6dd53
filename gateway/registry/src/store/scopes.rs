//! `admin_scopes`: the administrators limited to one agency's data (an administrator not in
//! the table is city-wide), and the owning agency of catalog entries (`datasets.agency`).

use super::{now, Change, Committed, Result, Store, StoreError};
use crate::scope::ScopedAdmin;
use sqlx::Row;

/// Tables, created with the store's own (`datasets.agency` is an added column: store.rs,
/// `ADDED_COLUMNS`).
pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS admin_scopes (admin TEXT PRIMARY KEY, \
     agency TEXT NOT NULL, created_at TEXT NOT NULL)",
];

impl Store {
    /// The agency `admin` is limited to; `None` for a city-wide administrator.
    pub async fn admin_scope(&self, admin: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT agency FROM admin_scopes WHERE admin = $1")
            .bind(admin)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get("agency")).transpose()?)
    }

    /// Every administrator limited to an agency, by id.
    pub async fn admin_scopes(&self) -> Result<Vec<ScopedAdmin>> {
        let rows = sqlx::query("SELECT admin, agency, created_at FROM admin_scopes ORDER BY admin")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ScopedAdmin {
                    id: r.try_get("admin")?,
                    agency: r.try_get("agency")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Limits `admin` to a registered agency's data (replacing an earlier limit).
    pub async fn set_admin_scope(
        &self,
        admin: &str,
        agency: &str,
        change: &Change<'_>,
    ) -> Result<(ScopedAdmin, Committed)> {
        let mut tx = self.begin().await?;
        let known = sqlx::query("SELECT id FROM agencies WHERE id = $1")
            .bind(agency)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(StoreError::Invalid(format!("unknown agency {agency}")));
        }
        sqlx::query("DELETE FROM admin_scopes WHERE admin = $1")
            .bind(admin)
            .execute(&mut *tx)
            .await?;
        let rec = ScopedAdmin {
            id: admin.to_owned(),
            agency: agency.to_owned(),
            created_at: now(),
        };
        sqlx::query("INSERT INTO admin_scopes (admin, agency, created_at) VALUES ($1, $2, $3)")
            .bind(&rec.id)
            .bind(&rec.agency)
            .bind(&rec.created_at)
            .execute(&mut *tx)
            .await?;
        Ok((rec, Self::finish(tx, change).await?))
    }

    /// Lifts `admin`'s agency limit; not limited is [`StoreError::NotFound`].
    pub async fn remove_admin_scope(&self, admin: &str, change: &Change<'_>) -> Result<Committed> {
        let mut tx = self.begin().await?;
        let gone = sqlx::query("DELETE FROM admin_scopes WHERE admin = $1")
            .bind(admin)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(StoreError::NotFound(format!("scoped administrator {admin}")));
        }
        Self::finish(tx, change).await
    }

    /// The agency owning catalog entry `dataset`: `Ok(None)` when the entry names none,
    /// [`StoreError::NotFound`] when there is no such entry.
    pub async fn dataset_agency(&self, dataset: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT agency FROM datasets WHERE id = $1")
            .bind(dataset)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("dataset {dataset}")))?;
        Ok(row.try_get("agency")?)
    }
}

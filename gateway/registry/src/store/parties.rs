//! The parties of record: `agencies`, `gateways` (retired flag, data listener URL) and
//! `scenarios` (the datasets each covers as a JSON list).

use super::{map_unique, now, Change, Committed, Result, Store, StoreError};
use crate::model::{AgencyRecord, GatewayRecord, NewAgency, NewGateway, NewScenario, ScenarioRecord};
use sqlx::Row;

/// Tables, created with the store's own.
pub(super) const SCHEMA: &[&str] = &[
    // `review_days` is added to stores made before it (store.rs, ADDED_COLUMNS).
    "CREATE TABLE IF NOT EXISTS agencies (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL, \
     review_days BIGINT)",
    // `url` is added to stores made before it (store.rs, ADDED_COLUMNS).
    "CREATE TABLE IF NOT EXISTS gateways (id TEXT PRIMARY KEY, agency TEXT NOT NULL, retired BIGINT NOT NULL, \
     created_at TEXT NOT NULL, url TEXT)",
    "CREATE TABLE IF NOT EXISTS scenarios (id TEXT PRIMARY KEY, title TEXT NOT NULL, description TEXT NOT NULL, \
     datasets TEXT NOT NULL, created_at TEXT NOT NULL)",
];

fn scenario_from(r: &sqlx::any::AnyRow) -> Result<ScenarioRecord> {
    let id: String = r.try_get("id")?;
    let datasets: String = r.try_get("datasets")?;
    Ok(ScenarioRecord {
        datasets: serde_json::from_str(&datasets)
            .map_err(|e| StoreError::Corrupt(format!("scenario {id}"), e.to_string()))?,
        id,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// Registers an agency.
    pub async fn add_agency(&self, a: &NewAgency, change: &Change<'_>) -> Result<(AgencyRecord, Committed)> {
        let rec = AgencyRecord {
            id: a.id.clone(),
            name: a.name.clone(),
            created_at: now(),
            review_days: a.review_days.unwrap_or(crate::application::DEFAULT_REVIEW_DAYS),
        };
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO agencies (id, name, created_at, review_days) VALUES ($1, $2, $3, $4)")
            .bind(&rec.id)
            .bind(&rec.name)
            .bind(&rec.created_at)
            .bind(i64::from(rec.review_days))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, &format!("agency {}", rec.id)))?;
        Ok((rec, Self::finish(tx, change).await?))
    }

    /// All agencies by id.
    pub async fn agencies(&self) -> Result<Vec<AgencyRecord>> {
        let rows = sqlx::query("SELECT id, name, created_at, review_days FROM agencies ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let days: Option<i64> = r.try_get("review_days")?;
                Ok(AgencyRecord {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    review_days: days
                        .and_then(|d| u32::try_from(d).ok())
                        .unwrap_or(crate::application::DEFAULT_REVIEW_DAYS),
                })
            })
            .collect()
    }

    /// Registers a gateway of a registered agency.
    pub async fn add_gateway(
        &self,
        g: &NewGateway,
        change: &Change<'_>,
    ) -> Result<(GatewayRecord, Committed)> {
        let rec = GatewayRecord {
            id: g.id.clone(),
            agency: g.agency.clone(),
            retired: false,
            created_at: now(),
            url: g.url.clone(),
        };
        let mut tx = self.begin().await?;
        let agency = sqlx::query("SELECT id FROM agencies WHERE id = $1")
            .bind(&g.agency)
            .fetch_optional(&mut *tx)
            .await?;
        if agency.is_none() {
            return Err(StoreError::Invalid(format!("unknown agency {}", g.agency)));
        }
        sqlx::query("INSERT INTO gateways (id, agency, retired, created_at, url) VALUES ($1, $2, 0, $3, $4)")
            .bind(&rec.id)
            .bind(&rec.agency)
            .bind(&rec.created_at)
            .bind(&rec.url)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, &format!("gateway {}", rec.id)))?;
        Ok((rec, Self::finish(tx, change).await?))
    }

    /// All gateways by id.
    pub async fn gateways(&self) -> Result<Vec<GatewayRecord>> {
        let rows = sqlx::query("SELECT id, agency, retired, created_at, url FROM gateways ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let retired: i64 = r.try_get("retired")?;
                Ok(GatewayRecord {
                    id: r.try_get("id")?,
                    agency: r.try_get("agency")?,
                    retired: retired != 0,
                    created_at: r.try_get("created_at")?,
                    url: r.try_get("url")?,
                })
            })
            .collect()
    }

    /// Retires a gateway: it receives no further snapshots. Final.
    pub async fn retire_gateway(&self, id: &str, change: &Change<'_>) -> Result<Committed> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE gateways SET retired = 1 WHERE id = $1 AND retired = 0")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            let exists = sqlx::query("SELECT id FROM gateways WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Err(if exists {
                StoreError::Conflict(format!("gateway {id} is already retired"))
            } else {
                StoreError::NotFound(format!("gateway {id}"))
            });
        }
        Self::finish(tx, change).await
    }

    /// Whether `id` is a registered gateway: `None` if not, `Some(retired)` if it is.
    pub async fn gateway_retired(&self, id: &str) -> Result<Option<bool>> {
        let row = sqlx::query("SELECT retired FROM gateways WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok(r.try_get::<i64, _>("retired")? != 0)).transpose()
    }

    /// Whether `id` is a registered gateway that is not retired.
    pub async fn gateway_active(&self, id: &str) -> Result<bool> {
        Ok(self.gateway_retired(id).await? == Some(false))
    }

    /// Registers a scenario; the datasets it names must be in the catalog.
    pub async fn add_scenario(
        &self,
        s: &NewScenario,
        change: &Change<'_>,
    ) -> Result<(ScenarioRecord, Committed)> {
        let rec = ScenarioRecord {
            id: s.id.clone(),
            title: s.title.clone(),
            description: s.description.clone(),
            datasets: s.datasets.clone(),
            created_at: now(),
        };
        let mut tx = self.begin().await?;
        for d in &rec.datasets {
            let found = sqlx::query("SELECT id FROM datasets WHERE id = $1")
                .bind(d)
                .fetch_optional(&mut *tx)
                .await?;
            if found.is_none() {
                return Err(StoreError::Invalid(format!("unknown dataset {d}")));
            }
        }
        let datasets =
            serde_json::to_string(&rec.datasets).map_err(|e| StoreError::Invalid(e.to_string()))?;
        sqlx::query(
            "INSERT INTO scenarios (id, title, description, datasets, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&rec.id)
        .bind(&rec.title)
        .bind(&rec.description)
        .bind(datasets)
        .bind(&rec.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, &format!("scenario {}", rec.id)))?;
        Ok((rec, Self::finish(tx, change).await?))
    }

    /// One scenario.
    pub async fn scenario(&self, id: &str) -> Result<Option<ScenarioRecord>> {
        sqlx::query("SELECT id, title, description, datasets, created_at FROM scenarios WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(scenario_from)
            .transpose()
    }

    /// All scenarios by id.
    pub async fn scenarios(&self) -> Result<Vec<ScenarioRecord>> {
        let rows =
            sqlx::query("SELECT id, title, description, datasets, created_at FROM scenarios ORDER BY id")
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(scenario_from).collect()
    }
}

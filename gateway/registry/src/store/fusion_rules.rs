//! The `fusion_rules` table (each rule as a JSON body) and the grant-time check.

use super::{json, licence_from, map_unique, Change, Committed, Result, Store, StoreError, Tx};
use crate::fusion::{completions, Completion, FusionRule};
use sluice_policy::licence::Licence;
use sqlx::any::AnyRow;
use sqlx::Row;

fn rule_from(row: &AnyRow) -> Result<FusionRule> {
    let id: String = row.try_get("id")?;
    let body: String = row.try_get("body")?;
    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("fusion rule {id}"), e.to_string()))
}

impl Store {
    /// Declares a fusion rule (validated by the caller against the catalog).
    pub async fn add_fusion_rule(&self, rule: &FusionRule, change: &Change<'_>) -> Result<Committed> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO fusion_rules (id, body) VALUES ($1, $2)")
            .bind(&rule.id)
            .bind(json(rule)?)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, &format!("fusion rule {}", rule.id)))?;
        Self::finish(tx, change).await
    }

    /// All fusion rules by id.
    pub async fn fusion_rules(&self) -> Result<Vec<FusionRule>> {
        let rows = sqlx::query("SELECT id, body FROM fusion_rules ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rule_from).collect()
    }

    /// Removes a fusion rule.
    pub async fn remove_fusion_rule(&self, id: &str, change: &Change<'_>) -> Result<Committed> {
        let mut tx = self.begin().await?;
        let gone = sqlx::query("DELETE FROM fusion_rules WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(StoreError::NotFound(format!("fusion rule {id}")));
        }
        Self::finish(tx, change).await
    }

    /// The rules `new` would complete, read inside the grant's transaction (after the
    /// licensee's row is locked).
    pub(super) async fn fusion_completions(tx: &mut Tx, new: &Licence) -> Result<Vec<Completion>> {
        let rules = sqlx::query("SELECT id, body FROM fusion_rules ORDER BY id")
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(rule_from)
            .collect::<Result<Vec<_>>>()?;
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let held = sqlx::query("SELECT id, body FROM licences WHERE licensee = $1 ORDER BY id")
            .bind(&new.licensee)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(licence_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(completions(&rules, &held, new, time::OffsetDateTime::now_utc()))
    }
}

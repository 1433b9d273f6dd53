//! The `drills` table: emergency drill reports as JSON documents (checked by the caller,
//! `crate::drill`), with who recorded them and when, ordered by the drill's start.

use super::{map_unique, now, Change, Committed, Result, Store, StoreError};
use serde_json::{Map, Value};
use sqlx::Row;

/// Tables, created with the store's own.
pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS drills (id TEXT PRIMARY KEY, started_ms BIGINT NOT NULL, \
     admin TEXT NOT NULL, recorded_at TEXT NOT NULL, body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS drills_by_start ON drills (started_ms)",
];

/// The stored document: the report with `admin` and `recorded_at` added.
fn record(mut body: Map<String, Value>, admin: String, recorded_at: String) -> Value {
    body.insert("admin".into(), Value::String(admin));
    body.insert("recorded_at".into(), Value::String(recorded_at));
    Value::Object(body)
}

impl Store {
    /// Records drill report `id` (its JSON object `body`, started at `started_ms`, unix
    /// milliseconds) under `change`; returns the report with the change's admin and the time it
    /// was recorded. An existing id is a conflict.
    pub async fn add_drill(
        &self,
        id: &str,
        started_ms: i64,
        body: Map<String, Value>,
        change: &Change<'_>,
    ) -> Result<(Value, Committed)> {
        let text = serde_json::to_string(&body).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let recorded_at = now();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO drills (id, started_ms, admin, recorded_at, body) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(started_ms)
        .bind(change.admin)
        .bind(&recorded_at)
        .bind(text)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, &format!("drill {id}")))?;
        let committed = Self::finish(tx, change).await?;
        Ok((record(body, change.admin.to_owned(), recorded_at), committed))
    }

    /// Every drill report, the latest started first.
    pub async fn drills(&self) -> Result<Vec<Value>> {
        let rows =
            sqlx::query("SELECT id, admin, recorded_at, body FROM drills ORDER BY started_ms DESC, id DESC")
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                let body: String = r.try_get("body")?;
                let corrupt = |why: String| StoreError::Corrupt(format!("drill {id}"), why);
                match serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))? {
                    Value::Object(m) => Ok(record(m, r.try_get("admin")?, r.try_get("recorded_at")?)),
                    _ => Err(corrupt("not a JSON object".into())),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::super::{Action, Change, Store, StoreError};
    use crate::model::NewGateway;
    use serde_json::{json, Map, Value};

    fn change(action: Action, target: &'static str) -> Change<'static> {
        Change {
            admin: "alice",
            action,
            target,
            reason: "drill test",
        }
    }

    fn body(id: &str) -> Map<String, Value> {
        json!({ "id": id, "complied_all": true })
            .as_object()
            .unwrap()
            .clone()
    }

    /// Drills are kept newest first, recorded as changes that leave the snapshot revision;
    /// gateways keep their url.
    async fn drills_and_gateway_urls(store: Store) {
        let before = store.revision().await.unwrap();
        let (rec, c) = store
            .add_drill(
                "d-old",
                1_000,
                body("d-old"),
                &change(Action::DrillRecord, "d-old"),
            )
            .await
            .unwrap();
        assert_eq!(
            (rec["admin"].as_str(), rec["id"].as_str()),
            (Some("alice"), Some("d-old"))
        );
        assert_eq!(c.revision, before, "a drill report does not alter the snapshot");
        store
            .add_drill(
                "d-new",
                2_000,
                body("d-new"),
                &change(Action::DrillRecord, "d-new"),
            )
            .await
            .unwrap();
        assert!(matches!(
            store
                .add_drill(
                    "d-new",
                    3_000,
                    body("d-new"),
                    &change(Action::DrillRecord, "d-new")
                )
                .await,
            Err(StoreError::Conflict(_))
        ));
        let all = store.drills().await.unwrap();
        let ids: Vec<&str> = all.iter().map(|d| d["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["d-new", "d-old"]);
        assert!(all[0]["recorded_at"].as_str().unwrap().starts_with("20"));
        let changes = store.changes().await.unwrap();
        let last = changes.last().unwrap();
        assert_eq!(
            (last.action.as_str(), last.target.as_str()),
            ("drill.record", "d-new")
        );

        let agency = crate::model::NewAgency {
            id: "fire".into(),
            name: "Fire".into(),
            review_days: None,
            reason: String::new(),
        };
        store
            .add_agency(&agency, &change(Action::AgencyAdd, "fire"))
            .await
            .unwrap();
        for (id, url) in [("gw-a", Some("https://localhost:8443")), ("gw-b", None)] {
            let g = NewGateway {
                id: id.into(),
                agency: "fire".into(),
                url: url.map(str::to_owned),
                reason: String::new(),
            };
            let (rec, _) = store
                .add_gateway(&g, &change(Action::GatewayAdd, "gw"))
                .await
                .unwrap();
            assert_eq!(rec.url.as_deref(), url);
        }
        let urls: Vec<Option<String>> = store
            .gateways()
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.url)
            .collect();
        assert_eq!(urls, [Some("https://localhost:8443".to_owned()), None]);
        store.close().await;
    }

    #[tokio::test]
    async fn drills_and_gateway_urls_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        drills_and_gateway_urls(Store::open(&Store::sqlite_url(dir.path())).await.unwrap()).await;
    }

    #[tokio::test]
    async fn drills_and_gateway_urls_on_postgres() {
        let (schema, url) = crate::pgtest::create_schema("drills").await.unwrap();
        drills_and_gateway_urls(Store::open(&url).await.unwrap()).await;
        crate::pgtest::drop_schema(&schema).await.unwrap();
    }

    /// A store made before gateways had a url gains the column; its gateways have none.
    #[tokio::test]
    async fn a_store_from_before_gateway_urls_gains_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let url = Store::sqlite_url(dir.path());
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TABLE gateways (id TEXT PRIMARY KEY, agency TEXT NOT NULL, retired BIGINT NOT NULL, \
             created_at TEXT NOT NULL)",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO gateways VALUES ('gw-old', 'fire', 0, '2026-01-01T00:00:00Z')")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let store = Store::open(&url).await.unwrap();
        let gws = store.gateways().await.unwrap();
        assert_eq!((gws[0].id.as_str(), gws[0].url.as_deref()), ("gw-old", None));
        store.close().await;
    }
}

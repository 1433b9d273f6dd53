//! The `demands` and `demand_requests` tables: the public demand list. Filing is not an admin
//! change (it merges into an entry by its merge key, atomically, and keeps the request);
//! answering is one (`demand.answer`), and changes no snapshot.

use super::{now, Change, Committed, Result, Store, StoreError};
use crate::demand::{Answer, AnswerStatus, DemandRecord, Kind, NewAnswer, Request, Status, Target};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::HashMap;

/// Tables, created with the store's own. `merge_key` is unique: two filings of the same thing
/// (at once, on two replicas) join one entry.
pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS demands (id TEXT PRIMARY KEY, merge_key TEXT NOT NULL UNIQUE, \
     kind TEXT NOT NULL, dataset TEXT, title TEXT, fields TEXT NOT NULL, filed_count BIGINT NOT NULL, \
     first_filed_at TEXT NOT NULL, last_filed_at TEXT NOT NULL, status TEXT NOT NULL, \
     answer_date TEXT, answer_reason TEXT, answered_at TEXT, answered_by TEXT)",
    "CREATE INDEX IF NOT EXISTS demands_by_status ON demands (status)",
    "CREATE TABLE IF NOT EXISTS demand_requests (id TEXT PRIMARY KEY, demand TEXT NOT NULL, \
     why TEXT NOT NULL, contact TEXT NOT NULL, filed_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS demand_requests_by_demand ON demand_requests (demand, filed_at)",
];

const COLUMNS: &str = "id, kind, dataset, title, fields, filed_count, first_filed_at, last_filed_at, \
     status, answer_date, answer_reason, answered_at, answered_by";

fn demand_from(r: &AnyRow) -> Result<DemandRecord> {
    let id: String = r.try_get("id")?;
    let corrupt = |what: &str, v: &str| StoreError::Corrupt(format!("demand {id}"), format!("{what} {v:?}"));
    let kind: String = r.try_get("kind")?;
    let status: String = r.try_get("status")?;
    let fields: String = r.try_get("fields")?;
    let count: i64 = r.try_get("filed_count")?;
    let status = Status::parse(&status).ok_or_else(|| corrupt("status", &status))?;
    let answer = match status {
        Status::Open => None,
        Status::Planned | Status::Opened | Status::Refused => Some(Answer {
            status: match status {
                Status::Planned => AnswerStatus::Planned,
                Status::Opened => AnswerStatus::Opened,
                _ => AnswerStatus::Refused,
            },
            date: r.try_get("answer_date")?,
            reason: r
                .try_get::<Option<String>, _>("answer_reason")?
                .unwrap_or_default(),
            answered_at: r.try_get::<Option<String>, _>("answered_at")?.unwrap_or_default(),
            answered_by: r.try_get("answered_by")?,
        }),
    };
    Ok(DemandRecord {
        kind: Kind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        dataset: r.try_get("dataset")?,
        title: r.try_get("title")?,
        fields: serde_json::from_str(&fields).map_err(|_| corrupt("fields", &fields))?,
        count: u64::try_from(count).unwrap_or(0),
        first_filed_at: r.try_get("first_filed_at")?,
        last_filed_at: r.try_get("last_filed_at")?,
        status,
        answer,
        requests: Vec::new(),
        id,
    })
}

fn request_from(r: &AnyRow) -> Result<(String, Request)> {
    Ok((
        r.try_get("demand")?,
        Request {
            why: r.try_get("why")?,
            contact: r.try_get("contact")?,
            filed_at: r.try_get("filed_at")?,
        },
    ))
}

impl Store {
    /// Files a request (checked by the caller) under `key`: a new entry, or one more request of
    /// the entry with that key. Not an admin change. Returns the entry's id and its count.
    #[allow(clippy::too_many_arguments)]
    pub async fn file_demand(
        &self,
        key: &str,
        kind: Kind,
        target: &Target,
        fields: &[String],
        why: &str,
        contact: &str,
    ) -> Result<(String, u64)> {
        let (dataset, title) = match target {
            Target::Dataset(d) => (Some(d.as_str()), None),
            Target::Title(t) => (None, Some(t.as_str())),
        };
        let fields =
            serde_json::to_string(fields).map_err(|e| StoreError::Corrupt("demand".into(), e.to_string()))?;
        let at = now();
        let mut tx = self.begin().await?;
        // One statement: a concurrent filing of the same thing waits on the unique key and
        // then counts itself into the entry the first one made.
        let row = sqlx::query(
            "INSERT INTO demands (id, merge_key, kind, dataset, title, fields, filed_count, first_filed_at, \
             last_filed_at, status) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, 'open') \
             ON CONFLICT (merge_key) DO UPDATE SET filed_count = demands.filed_count + 1, \
             last_filed_at = excluded.last_filed_at RETURNING id, filed_count",
        )
        .bind(format!("dem-{}", uuid::Uuid::new_v4().simple()))
        .bind(key)
        .bind(kind.as_str())
        .bind(dataset)
        .bind(title)
        .bind(&fields)
        .bind(&at)
        .bind(&at)
        .fetch_one(&mut *tx)
        .await?;
        let id: String = row.try_get("id")?;
        let count: i64 = row.try_get("filed_count")?;
        sqlx::query(
            "INSERT INTO demand_requests (id, demand, why, contact, filed_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&id)
        .bind(why)
        .bind(contact)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((id, u64::try_from(count).unwrap_or(0)))
    }

    /// Whether an entry has this merge key.
    pub async fn demand_key_exists(&self, key: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT id FROM demands WHERE merge_key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?
            .is_some())
    }

    /// Number of entries not answered yet (a bound on what the public can queue).
    pub async fn open_demands(&self) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM demands WHERE status = 'open'")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// One entry; with its requests when `requests`.
    pub async fn demand(&self, id: &str, requests: bool) -> Result<DemandRecord> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM demands WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("demand {id}")))?;
        let mut rec = demand_from(&row)?;
        if requests {
            let rows = sqlx::query(
                "SELECT demand, why, contact, filed_at FROM demand_requests WHERE demand = $1 \
                 ORDER BY filed_at, id",
            )
            .bind(id)
            .fetch_all(self.pool())
            .await?;
            rec.requests = rows
                .iter()
                .map(|r| request_from(r).map(|(_, q)| q))
                .collect::<Result<_>>()?;
        }
        Ok(rec)
    }

    /// Entries, the most requested first (then the oldest); only those in `status` when given;
    /// with their requests when `requests`.
    pub async fn demands(&self, status: Option<Status>, requests: bool) -> Result<Vec<DemandRecord>> {
        let order = "ORDER BY filed_count DESC, first_filed_at, id";
        let rows = match status {
            Some(s) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM demands WHERE status = $1 {order}"
                ))
                .bind(s.as_str())
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM demands {order}"))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        let mut list = rows.iter().map(demand_from).collect::<Result<Vec<_>>>()?;
        if requests {
            let rows = sqlx::query(
                "SELECT demand, why, contact, filed_at FROM demand_requests ORDER BY filed_at, id",
            )
            .fetch_all(self.pool())
            .await?;
            let mut by: HashMap<String, Vec<Request>> = HashMap::new();
            for r in &rows {
                let (demand, q) = request_from(r)?;
                by.entry(demand).or_default().push(q);
            }
            for d in &mut list {
                d.requests = by.remove(&d.id).unwrap_or_default();
            }
        }
        Ok(list)
    }

    /// Answers an entry, replacing an earlier answer: an admin change (`change.reason` is what
    /// the change log records), which changes no snapshot.
    pub async fn answer_demand(
        &self,
        id: &str,
        answer: &NewAnswer,
        change: &Change<'_>,
    ) -> Result<(DemandRecord, Committed)> {
        let mut tx = self.begin().await?;
        let changed = sqlx::query(
            "UPDATE demands SET status = $1, answer_date = $2, answer_reason = $3, answered_at = $4, \
             answered_by = $5 WHERE id = $6",
        )
        .bind(answer.status.status().as_str())
        .bind(answer.date.as_deref())
        .bind(&answer.reason)
        .bind(now())
        .bind(change.admin)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Err(StoreError::NotFound(format!("demand {id}")));
        }
        let committed = Self::finish(tx, change).await?;
        Ok((self.demand(id, true).await?, committed))
    }
}

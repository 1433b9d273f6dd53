//! The `objections` table: public filings (not admin changes), their decisions (admin
//! changes), and the record marks upheld cases put in the snapshot.

use super::{now, Change, Committed, Result, Store, StoreError, Tx};
use crate::objection::{Decision, Kind, NewObjection, ObjectionRecord, RegisterEntry, Status};
use sluice_policy::objection::RecordMarks;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::BTreeMap;

/// Tables, created with the store's own.
pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS objections (id TEXT PRIMARY KEY, dataset TEXT NOT NULL, \
     record_key TEXT NOT NULL, kind TEXT NOT NULL, reason TEXT NOT NULL, evidence TEXT NOT NULL, \
     contact TEXT NOT NULL, status TEXT NOT NULL, filed_at TEXT NOT NULL, decided_at TEXT, \
     decided_by TEXT, decision_reason TEXT, closed_at TEXT, closed_reason TEXT)",
    "CREATE INDEX IF NOT EXISTS objections_by_status ON objections (status)",
];

const COLUMNS: &str = "id, dataset, record_key, kind, reason, evidence, contact, status, filed_at, \
     decided_at, decided_by, decision_reason, closed_at, closed_reason";

fn objection_from(r: &AnyRow) -> Result<ObjectionRecord> {
    let id: String = r.try_get("id")?;
    let corrupt =
        |what: &str, v: &str| StoreError::Corrupt(format!("objection {id}"), format!("{what} {v:?}"));
    let kind: String = r.try_get("kind")?;
    let status: String = r.try_get("status")?;
    Ok(ObjectionRecord {
        kind: Kind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        status: Status::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        dataset: r.try_get("dataset")?,
        record_key: r.try_get("record_key")?,
        reason: r.try_get("reason")?,
        evidence: r.try_get("evidence")?,
        contact: r.try_get("contact")?,
        filed_at: r.try_get("filed_at")?,
        decided_at: r.try_get("decided_at")?,
        decided_by: r.try_get("decided_by")?,
        decision_reason: r.try_get("decision_reason")?,
        closed_at: r.try_get("closed_at")?,
        closed_reason: r.try_get("closed_reason")?,
        id,
    })
}

impl Store {
    /// Files a case (checked by the caller): not an admin change, and it changes no snapshot.
    pub async fn file_objection(&self, o: &NewObjection) -> Result<ObjectionRecord> {
        let rec = ObjectionRecord {
            id: format!("obj-{}", uuid::Uuid::new_v4().simple()),
            dataset: o.dataset.clone(),
            record_key: o.record_key.clone(),
            kind: o.kind,
            reason: o.reason.clone(),
            evidence: o.evidence.clone(),
            contact: o.contact.clone(),
            status: Status::Open,
            filed_at: now(),
            decided_at: None,
            decided_by: None,
            decision_reason: None,
            closed_at: None,
            closed_reason: None,
        };
        sqlx::query(
            "INSERT INTO objections (id, dataset, record_key, kind, reason, evidence, contact, status, \
             filed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&rec.id)
        .bind(&rec.dataset)
        .bind(&rec.record_key)
        .bind(rec.kind.as_str())
        .bind(&rec.reason)
        .bind(&rec.evidence)
        .bind(&rec.contact)
        .bind(rec.status.as_str())
        .bind(&rec.filed_at)
        .execute(self.pool())
        .await?;
        Ok(rec)
    }

    /// Number of open cases (a bound on what the public can queue).
    pub async fn open_objections(&self) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM objections WHERE status = 'open'")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// One case.
    pub async fn objection(&self, id: &str) -> Result<ObjectionRecord> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM objections WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("objection {id}")))?;
        objection_from(&row)
    }

    /// Cases, oldest first; only those in `status` when given.
    pub async fn objections(&self, status: Option<Status>) -> Result<Vec<ObjectionRecord>> {
        let rows = match status {
            Some(s) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM objections WHERE status = $1 ORDER BY filed_at, id"
                ))
                .bind(s.as_str())
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM objections ORDER BY filed_at, id"))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(objection_from).collect()
    }

    /// The public register: every decided case, newest decision first, without personal data.
    pub async fn objection_register(&self) -> Result<Vec<RegisterEntry>> {
        let rows = sqlx::query(
            "SELECT dataset, kind, status, decided_at FROM objections WHERE decided_at IS NOT NULL \
             ORDER BY decided_at DESC, id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                let status: String = r.try_get("status")?;
                let at: String = r.try_get("decided_at")?;
                let bad = || StoreError::Corrupt("objection".into(), format!("{kind} {status}"));
                Ok(RegisterEntry {
                    dataset: r.try_get("dataset")?,
                    kind: Kind::parse(&kind).ok_or_else(bad)?,
                    status: Status::parse(&status).ok_or_else(bad)?,
                    decided_on: at.chars().take(10).collect(),
                })
            })
            .collect()
    }

    /// Decides a case (`change.action` names the decision, `change.reason` its reason, shown
    /// to the filer): checked against its state inside the transaction, so two administrators
    /// cannot both decide it.
    pub async fn decide_objection(
        &self,
        id: &str,
        decision: Decision,
        change: &Change<'_>,
    ) -> Result<(ObjectionRecord, Committed)> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM objections WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("objection {id}")))?;
        let mut rec = objection_from(&row)?;
        let next = decision.next(rec.kind, rec.status).map_err(|why| {
            StoreError::Conflict(format!("objection {id} cannot be {}: {why}", verb(decision)))
        })?;
        let at = now();
        let closing = matches!(decision, Decision::Withdraw | Decision::Resolve);
        let q = if closing {
            // Who closed it is in the change log; the decision stays as it was made.
            rec.closed_at = Some(at.clone());
            rec.closed_reason = Some(change.reason.to_owned());
            sqlx::query(
                "UPDATE objections SET status = $1, closed_at = $2, closed_reason = $3 \
                 WHERE id = $4 AND status = $5",
            )
            .bind(next.as_str())
            .bind(&at)
            .bind(change.reason)
        } else {
            rec.decided_at = Some(at.clone());
            rec.decided_by = Some(change.admin.to_owned());
            rec.decision_reason = Some(change.reason.to_owned());
            sqlx::query(
                "UPDATE objections SET status = $1, decided_at = $2, decided_by = $3, \
                 decision_reason = $4 WHERE id = $5 AND status = $6",
            )
            .bind(next.as_str())
            .bind(&at)
            .bind(change.admin)
            .bind(change.reason)
        };
        let changed = q
            .bind(id)
            .bind(rec.status.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed != 1 {
            return Err(StoreError::Conflict(format!("objection {id} changed meanwhile")));
        }
        rec.status = next;
        let committed = Self::finish(tx, change).await?;
        Ok((rec, committed))
    }

    /// The record marks of every upheld case, by dataset, read in `tx` (a snapshot's read).
    pub(super) async fn read_record_marks(tx: &mut Tx) -> Result<BTreeMap<String, RecordMarks>> {
        let rows = sqlx::query(
            "SELECT id, dataset, record_key, kind FROM objections WHERE status = 'upheld' \
             ORDER BY filed_at, id",
        )
        .fetch_all(&mut **tx)
        .await?;
        let mut marks: BTreeMap<String, RecordMarks> = BTreeMap::new();
        for r in rows {
            let id: String = r.try_get("id")?;
            let kind: String = r.try_get("kind")?;
            let m = marks.entry(r.try_get("dataset")?).or_default();
            let key: String = r.try_get("record_key")?;
            match Kind::parse(&kind) {
                Some(Kind::Objection) => {
                    m.suppressed.insert(key);
                }
                Some(Kind::Correction) => {
                    m.disputed.entry(key).or_insert(id);
                }
                None => {
                    return Err(StoreError::Corrupt(
                        format!("objection {id}"),
                        format!("kind {kind:?}"),
                    ))
                }
            }
        }
        Ok(marks)
    }
}

fn verb(d: Decision) -> &'static str {
    match d {
        Decision::Uphold => "upheld",
        Decision::Reject => "rejected",
        Decision::Withdraw => "withdrawn",
        Decision::Resolve => "resolved",
    }
}

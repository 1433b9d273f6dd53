//! `agreements` (each dataset's data-use agreement, one row per version) and `applications`
//! (each as a JSON body, with the columns lists filter on). Approving grants the licence and
//! records the decision in one transaction.

use super::{json, now, Change, Committed, Result, Store, StoreError, Tx};
use crate::application::{Agreement, ApplicationRecord, Status, DEFAULT_REVIEW_DAYS};
use sluice_policy::licence::Licence;
use sqlx::any::AnyRow;
use sqlx::Row;

/// Tables, created with the store's own (`agencies.review_days` is an added column: store.rs,
/// `ADDED_COLUMNS`).
pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS agreements (dataset TEXT NOT NULL, version BIGINT NOT NULL, \
     digest TEXT NOT NULL, text TEXT NOT NULL, published_at TEXT NOT NULL, PRIMARY KEY (dataset, version))",
    "CREATE TABLE IF NOT EXISTS applications (id TEXT PRIMARY KEY, licensee TEXT NOT NULL, \
     dataset TEXT NOT NULL, status TEXT NOT NULL, filed_at TEXT NOT NULL, body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS applications_by_licensee ON applications (licensee)",
];

pub(super) fn application_from(r: &AnyRow) -> Result<ApplicationRecord> {
    let id: String = r.try_get("id")?;
    let body: String = r.try_get("body")?;
    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("application {id}"), e.to_string()))
}

fn agreement_from(r: &AnyRow) -> Result<Agreement> {
    let version: i64 = r.try_get("version")?;
    Ok(Agreement {
        dataset: r.try_get("dataset")?,
        version: u32::try_from(version).unwrap_or(u32::MAX),
        digest: r.try_get("digest")?,
        text: r.try_get("text")?,
        published_at: r.try_get("published_at")?,
    })
}

async fn write(tx: &mut Tx, a: &ApplicationRecord) -> Result<()> {
    sqlx::query("UPDATE applications SET status = $1, body = $2 WHERE id = $3")
        .bind(a.status.as_str())
        .bind(json(a)?)
        .bind(&a.id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// Publishes the next version of `dataset`'s agreement (the dataset must be in the
    /// catalog).
    pub async fn publish_agreement(
        &self,
        dataset: &str,
        text: &str,
        change: &Change<'_>,
    ) -> Result<(Agreement, Committed)> {
        let mut tx = self.begin().await?;
        Self::lock_changes(&mut tx).await?;
        let known = sqlx::query("SELECT id FROM datasets WHERE id = $1")
            .bind(dataset)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(StoreError::Invalid(format!("unknown dataset {dataset}")));
        }
        let last: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM agreements WHERE dataset = $1")
            .bind(dataset)
            .fetch_one(&mut *tx)
            .await?
            .try_get("v")?;
        let a = Agreement {
            dataset: dataset.to_owned(),
            version: u32::try_from(last.unwrap_or(0) + 1).unwrap_or(u32::MAX),
            digest: crate::application::digest(text),
            text: text.to_owned(),
            published_at: now(),
        };
        sqlx::query(
            "INSERT INTO agreements (dataset, version, digest, text, published_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&a.dataset)
        .bind(i64::from(a.version))
        .bind(&a.digest)
        .bind(&a.text)
        .bind(&a.published_at)
        .execute(&mut *tx)
        .await?;
        Ok((a, Self::finish(tx, change).await?))
    }

    /// The current version of `dataset`'s agreement, if it has one.
    pub async fn agreement(&self, dataset: &str) -> Result<Option<Agreement>> {
        let row = sqlx::query(
            "SELECT dataset, version, digest, text, published_at FROM agreements WHERE dataset = $1 \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(dataset)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(agreement_from).transpose()
    }

    /// The review deadline `agency` declared, in working days (the default without one).
    pub async fn review_days(&self, agency: Option<&str>) -> Result<u32> {
        let Some(agency) = agency else {
            return Ok(DEFAULT_REVIEW_DAYS);
        };
        let row = sqlx::query("SELECT review_days FROM agencies WHERE id = $1")
            .bind(agency)
            .fetch_optional(self.pool())
            .await?;
        let days: Option<i64> = match row {
            Some(r) => r.try_get("review_days")?,
            None => None,
        };
        Ok(days
            .and_then(|d| u32::try_from(d).ok())
            .unwrap_or(DEFAULT_REVIEW_DAYS))
    }

    /// Stores a new application; a licensee with `max_open` open ones is refused
    /// ([`StoreError::Invalid`]).
    pub async fn file_application(&self, a: &ApplicationRecord, max_open: u64) -> Result<()> {
        let mut tx = self.begin().await?;
        Self::lock_changes(&mut tx).await?;
        let open: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM applications WHERE licensee = $1 AND status IN ('open', 'more-info')",
        )
        .bind(&a.licensee)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if u64::try_from(open).unwrap_or(u64::MAX) >= max_open {
            return Err(StoreError::Invalid(format!(
                "licensee {} has {max_open} applications waiting already",
                a.licensee
            )));
        }
        sqlx::query(
            "INSERT INTO applications (id, licensee, dataset, status, filed_at, body) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&a.id)
        .bind(&a.licensee)
        .bind(&a.dataset)
        .bind(a.status.as_str())
        .bind(&a.filed_at)
        .bind(json(a)?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One application.
    pub async fn application(&self, id: &str) -> Result<ApplicationRecord> {
        let row = sqlx::query("SELECT id, body FROM applications WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("application {id}")))?;
        application_from(&row)
    }

    /// Applications, oldest first: of one licensee and in one status when given.
    pub async fn applications(
        &self,
        licensee: Option<&str>,
        status: Option<Status>,
    ) -> Result<Vec<ApplicationRecord>> {
        let rows = sqlx::query(
            "SELECT id, body FROM applications WHERE ($1 = '' OR licensee = $1) AND ($2 = '' OR status = $2) \
             ORDER BY filed_at, id",
        )
        .bind(licensee.unwrap_or(""))
        .bind(status.map_or("", Status::as_str))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(application_from).collect()
    }

    /// Replaces an application that is still undecided with `next` (`update` decides what
    /// changes from the stored one), recording `change` when given (an agency's question or
    /// rejection; an applicant's answer is no admin change). A decided one is a conflict.
    pub async fn update_application(
        &self,
        id: &str,
        change: Option<&Change<'_>>,
        update: impl FnOnce(&mut ApplicationRecord),
    ) -> Result<(ApplicationRecord, Option<Committed>)> {
        let mut tx = self.begin().await?;
        Self::lock_changes(&mut tx).await?;
        let mut a = Self::undecided(&mut tx, id).await?;
        update(&mut a);
        write(&mut tx, &a).await?;
        match change {
            Some(c) => Ok((a, Some(Self::finish(tx, c).await?))),
            None => {
                tx.commit().await?;
                Ok((a, None))
            }
        }
    }

    /// Approves an undecided application: grants `licence` (fusion-rule check included) and
    /// records the decision, in one transaction (`licence.grant` then `application.approve`).
    pub async fn approve_application(
        &self,
        id: &str,
        licence: &Licence,
        grant: &Change<'_>,
        approve: &Change<'_>,
        update: impl FnOnce(&mut ApplicationRecord),
    ) -> Result<(ApplicationRecord, Committed)> {
        let mut tx = self.begin().await?;
        Self::lock_changes(&mut tx).await?;
        let mut a = Self::undecided(&mut tx, id).await?;
        let reason = Self::insert_licence_in(&mut tx, licence, grant.reason).await?;
        let (_, granted) = Self::record(
            &mut tx,
            &Change {
                reason: &reason,
                ..grant.clone()
            },
            None,
        )
        .await?;
        update(&mut a);
        write(&mut tx, &a).await?;
        // The approval does not move the snapshot: its revision is the grant's.
        let (last, altered) = Self::record(&mut tx, approve, None).await?;
        Self::commit(tx, last, granted || altered).await?;
        Ok((a, last))
    }

    async fn undecided(tx: &mut Tx, id: &str) -> Result<ApplicationRecord> {
        let row = sqlx::query("SELECT id, body FROM applications WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("application {id}")))?;
        let a = application_from(&row)?;
        if !matches!(a.status, Status::Open | Status::MoreInfo) {
            return Err(StoreError::Conflict(format!(
                "application {id} is {} already",
                a.status.as_str()
            )));
        }
        Ok(a)
    }
}

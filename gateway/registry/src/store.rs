//! The registry's state in SQL through `sqlx::Any`: SQLite (embedded default, WAL) or
//! PostgreSQL, chosen by the database URL. The SQL is portable (TEXT and BIGINT columns only,
//! `$n` placeholders used once each, in order). Every change runs in one transaction that also
//! records the admin change under the next change number and, when it alters what a snapshot
//! carries ([`Action::alters_snapshot`]), moves the snapshot revision to that number.

pub use super::action::Action;
use super::model::{AdminChange, DatasetRecord, LicenseeRecord, Measure, ViolationRecord};
use sluice_policy::catalog::DatasetSpec;
use sluice_policy::classify::{OpenCategory, RuleTable};
use sluice_policy::licence::{Licence, LicenceStatus};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::collections::BTreeMap;

mod applications;
mod catalog_history;
mod demands;
mod drills;
mod fusion_rules;
mod gateway_contacts;
mod objections;
mod parties;
mod reports;
mod risk;
mod scopes;
mod usage_counts;

use catalog_history::DATASET_COLUMNS;
pub use gateway_contacts::{GatewayContact, UsageReportSeen};
pub use reports::{RefusalFigures, ReportData, UsageFigures};
pub use risk::AlertRecorded;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored JSON document does not parse.
    #[error("corrupt stored record {0}: {1}")]
    Corrupt(String, String),
    /// No such object.
    #[error("{0} not found")]
    NotFound(String),
    /// The change conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The request is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A grant would complete a fusion rule and carries no expert review.
    #[error("{0}")]
    FusionConflict(String),
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Tables. `registry_meta` holds the counters: `revision`, the number of the last admin change
/// (`admin_changes.revision`, every change takes the next); `snapshot_revision`, the number of
/// the last change that altered the snapshot (the revision gateways hold and wait on);
/// `all_conditional_closed`, the switch.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS registry_meta (k TEXT PRIMARY KEY, v BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS licensees (id TEXT PRIMARY KEY, name TEXT NOT NULL, \
     credit_code TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS datasets (id TEXT PRIMARY KEY, title TEXT NOT NULL, owner TEXT NOT NULL, \
     update_frequency TEXT NOT NULL, version BIGINT NOT NULL, open_category TEXT NOT NULL, \
     closed BIGINT NOT NULL, spec TEXT NOT NULL, agency TEXT, next_evaluation TEXT)",
    "CREATE TABLE IF NOT EXISTS licences (id TEXT PRIMARY KEY, licensee TEXT NOT NULL, dataset TEXT NOT NULL, \
     scenario TEXT NOT NULL, state TEXT NOT NULL, body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS licences_by_licensee ON licences (licensee)",
    "CREATE TABLE IF NOT EXISTS violations (id TEXT PRIMARY KEY, licensee TEXT NOT NULL, what TEXT NOT NULL, \
     at TEXT NOT NULL, measure TEXT NOT NULL, reason TEXT NOT NULL, lifted_at TEXT, lifted_reason TEXT)",
    "CREATE TABLE IF NOT EXISTS revoked_serials (serial TEXT PRIMARY KEY, at TEXT NOT NULL, reason TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS admin_changes (id TEXT PRIMARY KEY, revision BIGINT NOT NULL, admin TEXT NOT NULL, \
     at TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, reason TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS admin_changes_by_revision ON admin_changes (revision)",
    "CREATE TABLE IF NOT EXISTS fusion_rules (id TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS usage_reports (gateway TEXT NOT NULL, report_id TEXT NOT NULL, \
     received_at TEXT NOT NULL, PRIMARY KEY (gateway, report_id))",
    // `licence` is '' when the gateway reported none (refusals before a licence was found).
    "CREATE TABLE IF NOT EXISTS usage_counts (gateway TEXT NOT NULL, report_id TEXT NOT NULL, \
     month TEXT NOT NULL, period_from TEXT NOT NULL, period_until TEXT NOT NULL, licensee TEXT NOT NULL, \
     dataset TEXT NOT NULL, licence TEXT NOT NULL, requests BIGINT NOT NULL, records BIGINT NOT NULL, \
     refusals BIGINT NOT NULL, UNIQUE (gateway, report_id, licensee, dataset, licence))",
    "CREATE INDEX IF NOT EXISTS usage_counts_by_month ON usage_counts (month)",
    // A usage_counts row's refusals by problem code (`licence` '' as there).
    "CREATE TABLE IF NOT EXISTS usage_refusals (gateway TEXT NOT NULL, report_id TEXT NOT NULL, \
     month TEXT NOT NULL, licensee TEXT NOT NULL, dataset TEXT NOT NULL, licence TEXT NOT NULL, \
     code TEXT NOT NULL, refusals BIGINT NOT NULL, \
     PRIMARY KEY (gateway, report_id, licensee, dataset, licence, code))",
    "CREATE INDEX IF NOT EXISTS usage_refusals_by_month ON usage_refusals (month)",
];

/// Columns added after a table was first released: (table, column, type), added to stores
/// created before them.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("violations", "lifted_at", "TEXT"),
    ("violations", "lifted_reason", "TEXT"),
    ("gateways", "url", "TEXT"),
    ("datasets", "agency", "TEXT"),
    ("datasets", "next_evaluation", "TEXT"),
    ("agencies", "review_days", "BIGINT"),
    ("usage_counts", "epsilon_micros", "BIGINT NOT NULL DEFAULT 0"),
    ("usage_counts", "masked_fields", "BIGINT NOT NULL DEFAULT 0"),
];

/// Adds the [`ADDED_COLUMNS`] a store lacks (a replica may add one concurrently: fine).
async fn add_missing_columns(pool: &AnyPool) -> Result<()> {
    for (table, column, ty) in ADDED_COLUMNS {
        let probe = format!("SELECT {column} FROM {table} WHERE 1 = 0");
        if sqlx::query(&probe).fetch_all(pool).await.is_ok() {
            continue;
        }
        let added = sqlx::query(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))
            .execute(pool)
            .await;
        if let Err(e) = added {
            if sqlx::query(&probe).fetch_all(pool).await.is_err() {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Who makes a change and why; recorded with it.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// Admin id.
    pub admin: &'a str,
    /// What the change does.
    pub action: Action,
    /// Object acted on.
    pub target: &'a str,
    /// Why.
    pub reason: &'a str,
}

/// What a committed change produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Its number in the change log: every change takes the next.
    pub change: u64,
    /// The snapshot revision after it: `change` when it altered the snapshot, else the revision
    /// gateways already hold. Answered as `Sluice-Revision`.
    pub revision: u64,
}

/// Everything a snapshot carries, read at one revision.
#[derive(Debug, Clone, Default)]
pub struct SnapshotState {
    /// Revision.
    pub revision: u64,
    /// All licences (in a [`DeltaState`], those granted or changed after its base).
    pub licences: Vec<Licence>,
    /// Closed dataset ids.
    pub closed_datasets: Vec<String>,
    /// All conditional data closed.
    pub all_conditional_closed: bool,
    /// Restricted licensees with the reason.
    pub restricted_licensees: BTreeMap<String, String>,
    /// Revoked certificate serials.
    pub revoked_serials: Vec<String>,
    /// Records suppressed or disputed by upheld objections and corrections, by dataset.
    pub record_marks: BTreeMap<String, sluice_policy::objection::RecordMarks>,
    /// Risk rules.
    pub risk_rules: Vec<sluice_policy::risk::RiskRule>,
}

/// What a delta from a held revision carries ([`Store::delta_state`]): a snapshot's parts,
/// with only the licences granted or changed after the base revision.
pub type DeltaState = SnapshotState;

/// The parts of a snapshot besides licences.
struct Measures {
    closed_datasets: Vec<String>,
    all_conditional_closed: bool,
    restricted_licensees: BTreeMap<String, String>,
    revoked_serials: Vec<String>,
    record_marks: BTreeMap<String, sluice_policy::objection::RecordMarks>,
    risk_rules: Vec<sluice_policy::risk::RiskRule>,
}

/// Most licences a delta carries; a gateway further behind gets the whole snapshot.
pub const DELTA_MAX_LICENCES: usize = 10_000;

/// The actions whose target is a licence id (the licences a delta carries).
const LICENCE_ACTIONS: [Action; 4] = [
    Action::LicenceGrant,
    Action::LicenceSuspend,
    Action::LicenceResume,
    Action::LicenceRevoke,
];

/// The registry store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// The PostgreSQL URL when the store is PostgreSQL (for LISTEN/NOTIFY), `None` for SQLite.
    postgres_url: Option<std::sync::Arc<str>>,
}

/// The PostgreSQL channel every committed change is announced on; the payload is the new
/// revision, but listeners re-read the revision from their own schema (channels are per
/// database, not per schema).
pub const CHANGE_CHANNEL: &str = "sluice_registry";

pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn state_name(s: &LicenceStatus) -> &'static str {
    match s {
        LicenceStatus::Active => "active",
        LicenceStatus::Suspended { .. } => "suspended",
        LicenceStatus::Revoked { .. } => "revoked",
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn licence_from(row: &AnyRow) -> Result<Licence> {
    let id: String = row.try_get("id")?;
    let body: String = row.try_get("body")?;
    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("licence {id}"), e.to_string()))
}

const VIOLATION_COLUMNS: &str = "id, licensee, what, at, measure, reason, lifted_at, lifted_reason";

fn violation_from(r: &AnyRow) -> Result<ViolationRecord> {
    let m: String = r.try_get("measure")?;
    Ok(ViolationRecord {
        id: r.try_get("id")?,
        licensee: r.try_get("licensee")?,
        what: r.try_get("what")?,
        at: r.try_get("at")?,
        measure: Measure::parse(&m)
            .ok_or_else(|| StoreError::Corrupt("violation".into(), format!("measure {m:?}")))?,
        reason: r.try_get("reason")?,
        lifted_at: r.try_get("lifted_at")?,
        lifted_reason: r.try_get("lifted_reason")?,
    })
}

fn dataset_from(row: &AnyRow) -> Result<DatasetRecord> {
    let id: String = row.try_get("id")?;
    let spec: String = row.try_get("spec")?;
    let spec: DatasetSpec = serde_json::from_str(&spec)
        .map_err(|e| StoreError::Corrupt(format!("dataset {id}"), e.to_string()))?;
    let cat: String = row.try_get("open_category")?;
    let closed: i64 = row.try_get("closed")?;
    Ok(DatasetRecord {
        spec,
        open_category: category(&cat),
        closed: closed != 0,
        agency: row.try_get("agency")?,
        next_evaluation: row.try_get("next_evaluation")?,
    })
}

fn category(s: &str) -> OpenCategory {
    match s {
        "unconditional" => OpenCategory::Unconditional,
        "conditional" => OpenCategory::Conditional,
        _ => OpenCategory::NonOpen,
    }
}

pub(super) fn map_unique(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(format!("{what} already exists"))
        }
        _ => StoreError::Db(e),
    }
}

/// A store transaction.
pub(super) type Tx = sqlx::Transaction<'static, sqlx::Any>;

impl Store {
    /// Opens (and creates if missing) the store at `url`: `sqlite://path` or `postgres://…`.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        // One writer connection for SQLite: writes serialise anyway, and it avoids SQLITE_BUSY.
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 1 } else { 8 })
            .connect(url)
            .await?;
        if sqlite {
            sqlx::query("PRAGMA journal_mode=WAL").fetch_all(&pool).await?;
        }
        for stmt in SCHEMA
            .iter()
            .chain(parties::SCHEMA)
            .chain(applications::SCHEMA)
            .chain(scopes::SCHEMA)
            .chain(drills::SCHEMA)
            .chain(catalog_history::SCHEMA)
            .chain(objections::SCHEMA)
            .chain(demands::SCHEMA)
            .chain(risk::SCHEMA)
            .chain(gateway_contacts::SCHEMA)
        {
            sqlx::query(stmt).execute(&pool).await?;
        }
        add_missing_columns(&pool).await?;
        // Seed the counters; a concurrent replica may have done it first. The snapshot
        // revision of a store made before it existed is its last change (every change moved
        // the snapshot then), so gateways keep the revision they hold.
        for (key, seed) in [
            ("revision", "VALUES ($1, 0)"),
            ("all_conditional_closed", "VALUES ($1, 0)"),
            (
                "snapshot_revision",
                "SELECT $1, v FROM registry_meta WHERE k = 'revision'",
            ),
        ] {
            let have = sqlx::query("SELECT v FROM registry_meta WHERE k = $1")
                .bind(key)
                .fetch_optional(&pool)
                .await?;
            if have.is_none() {
                let r = sqlx::query(&format!("INSERT INTO registry_meta (k, v) {seed}"))
                    .bind(key)
                    .execute(&pool)
                    .await;
                if let Err(e) = r {
                    if !matches!(&e, sqlx::Error::Database(d) if d.is_unique_violation()) {
                        return Err(e.into());
                    }
                }
            }
        }
        let postgres_url = (!sqlite).then(|| std::sync::Arc::from(url));
        Ok(Self { pool, postgres_url })
    }

    /// The connection pool, for the store's other modules.
    pub(super) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The PostgreSQL URL, when the store is PostgreSQL.
    pub fn postgres_url(&self) -> Option<&str> {
        self.postgres_url.as_deref()
    }

    /// The SQLite URL of the embedded default in `state_dir`.
    pub fn sqlite_url(state_dir: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", state_dir.join("registry.db").display())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The snapshot revision: the number of the last change that altered the snapshot.
    pub async fn revision(&self) -> Result<u64> {
        self.counter("snapshot_revision").await
    }

    /// The number of the last admin change, whatever it changed (the catalog's `ETag`).
    pub async fn last_change(&self) -> Result<u64> {
        self.counter("revision").await
    }

    async fn counter(&self, key: &str) -> Result<u64> {
        let row = sqlx::query("SELECT v FROM registry_meta WHERE k = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(to_u64(row.try_get("v")?))
    }

    pub(super) async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// Records the change under the next change number and commits; when the change alters
    /// the snapshot ([`Action::alters_snapshot`]) the snapshot revision becomes that number and,
    /// on PostgreSQL, the commit notifies [`CHANGE_CHANNEL`] so replicas wake at once.
    pub(super) async fn finish(tx: Tx, change: &Change<'_>) -> Result<Committed> {
        Self::finish_with(tx, change, None).await
    }

    /// [`Self::finish`] for a change about a violation with `measure`.
    pub(super) async fn finish_with(
        mut tx: Tx,
        change: &Change<'_>,
        measure: Option<Measure>,
    ) -> Result<Committed> {
        let (committed, alters) = Self::record(&mut tx, change, measure).await?;
        Self::commit(tx, committed, alters).await?;
        Ok(committed)
    }

    /// Records the change in `tx` under the next change number without committing; when it
    /// alters the snapshot the snapshot revision becomes that number. Several changes recorded
    /// in one transaction take consecutive numbers; [`Self::commit`] ends it. Returns what the
    /// change produced and whether it altered the snapshot.
    pub(super) async fn record(
        tx: &mut Tx,
        change: &Change<'_>,
        measure: Option<Measure>,
    ) -> Result<(Committed, bool)> {
        sqlx::query("UPDATE registry_meta SET v = v + 1 WHERE k = 'revision'")
            .execute(&mut **tx)
            .await?;
        let row = sqlx::query("SELECT v FROM registry_meta WHERE k = 'revision'")
            .fetch_one(&mut **tx)
            .await?;
        let number: i64 = row.try_get("v")?;
        let alters = change.action.alters_snapshot(measure);
        let revision: i64 = if alters {
            sqlx::query("UPDATE registry_meta SET v = $1 WHERE k = 'snapshot_revision'")
                .bind(number)
                .execute(&mut **tx)
                .await?;
            number
        } else {
            sqlx::query("SELECT v FROM registry_meta WHERE k = 'snapshot_revision'")
                .fetch_one(&mut **tx)
                .await?
                .try_get("v")?
        };
        sqlx::query(
            "INSERT INTO admin_changes (id, revision, admin, at, action, target, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(number)
        .bind(change.admin)
        .bind(now())
        .bind(change.action.as_str())
        .bind(change.target)
        .bind(change.reason)
        .execute(&mut **tx)
        .await?;
        let committed = Committed {
            change: to_u64(number),
            revision: to_u64(revision),
        };
        Ok((committed, alters))
    }

    /// Commits `tx`, whose last recorded change produced `last`; when `altered` (some change
    /// in it altered the snapshot) a PostgreSQL commit notifies [`CHANGE_CHANNEL`].
    pub(super) async fn commit(mut tx: Tx, last: Committed, altered: bool) -> Result<()> {
        if altered && tx.backend_name() == "PostgreSQL" {
            // Delivered on commit, and only if the transaction commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGE_CHANNEL)
                .bind(last.revision.to_string())
                .fetch_all(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Registers a licensee (the credit code must already be validated).
    pub async fn add_licensee(
        &self,
        l: &LicenseeRecord,
        change: &Change<'_>,
    ) -> Result<(LicenseeRecord, Committed)> {
        let mut tx = self.begin().await?;
        let rec = LicenseeRecord {
            created_at: now(),
            ..l.clone()
        };
        sqlx::query("INSERT INTO licensees (id, name, credit_code, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&rec.id)
            .bind(&rec.name)
            .bind(&rec.credit_code)
            .bind(&rec.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                map_unique(
                    e,
                    &format!("licensee {} or credit code {}", rec.id, rec.credit_code),
                )
            })?;
        let rev = Self::finish(tx, change).await?;
        Ok((rec, rev))
    }

    /// All licensees by id.
    pub async fn licensees(&self) -> Result<Vec<LicenseeRecord>> {
        let rows = sqlx::query("SELECT id, name, credit_code, created_at FROM licensees ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LicenseeRecord {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    credit_code: r.try_get("credit_code")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Whether a licensee exists.
    pub async fn licensee_exists(&self, id: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT id FROM licensees WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Registers or replaces a catalog entry (keeps its closed flag, its next evaluation date
    /// while it stays not open, and its owning agency unless `agency` names one: a registered
    /// agency, else [`StoreError::Invalid`]). Writes the entry's next version in the same
    /// transaction.
    pub async fn put_dataset(
        &self,
        spec: &DatasetSpec,
        agency: Option<&str>,
        change: &Change<'_>,
    ) -> Result<(DatasetRecord, Committed)> {
        let cat = spec.category(&RuleTable::default());
        let mut tx = self.begin().await?;
        // Serialises the read of the entry with every other change (the version it writes
        // follows the one before).
        Self::lock_changes(&mut tx).await?;
        if let Some(a) = agency {
            let known = sqlx::query("SELECT id FROM agencies WHERE id = $1")
                .bind(a)
                .fetch_optional(&mut *tx)
                .await?;
            if known.is_none() {
                return Err(StoreError::Invalid(format!("unknown agency {a}")));
            }
        }
        let before = Self::dataset_in(&mut tx, &spec.id).await?;
        let mut after = DatasetRecord {
            spec: spec.clone(),
            open_category: cat,
            closed: before.as_ref().is_some_and(|b| b.closed),
            agency: agency
                .map(str::to_owned)
                .or_else(|| before.as_ref().and_then(|b| b.agency.clone())),
            next_evaluation: before.as_ref().and_then(|b| b.next_evaluation.clone()),
        };
        // An entry that becomes open is no longer under evaluation.
        if crate::catalog_history::is_open(&after) {
            after.next_evaluation = None;
        }
        if before.is_some() {
            sqlx::query("DELETE FROM datasets WHERE id = $1")
                .bind(&spec.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO datasets (id, title, owner, update_frequency, version, open_category, closed, spec, \
             agency, next_evaluation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&spec.id)
        .bind(&spec.title)
        .bind(&spec.owner)
        .bind(&spec.update_frequency)
        .bind(i64::from(spec.version))
        .bind(cat.as_str())
        .bind(i64::from(after.closed))
        .bind(json(spec)?)
        .bind(&after.agency)
        .bind(&after.next_evaluation)
        .execute(&mut *tx)
        .await?;
        let action = match before {
            Some(_) => crate::catalog_history::VersionAction::Updated,
            None => crate::catalog_history::VersionAction::Registered,
        };
        let rev = Self::finish_version(tx, change, action, before.as_ref(), &after).await?;
        Ok((after, rev))
    }

    /// A catalog entry.
    pub async fn dataset(&self, id: &str) -> Result<DatasetRecord> {
        let row = sqlx::query(&format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("dataset {id}")))?;
        dataset_from(&row)
    }

    /// The catalog, by id.
    pub async fn datasets(&self) -> Result<Vec<DatasetRecord>> {
        let rows = sqlx::query(&format!("SELECT {DATASET_COLUMNS} FROM datasets ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(dataset_from).collect()
    }

    /// A page of the datasets by id: at most `limit` after skipping `offset`, and whether more
    /// follow (one more row is read to tell).
    pub async fn datasets_page(&self, limit: usize, offset: usize) -> Result<(Vec<DatasetRecord>, bool)> {
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let rows = sqlx::query(&format!(
            "SELECT {DATASET_COLUMNS} FROM datasets ORDER BY id LIMIT $1 OFFSET $2"
        ))
        .bind(n(limit.saturating_add(1)))
        .bind(n(offset))
        .fetch_all(&self.pool)
        .await?;
        let more = rows.len() > limit;
        let page = rows
            .iter()
            .take(limit)
            .map(dataset_from)
            .collect::<Result<Vec<_>>>()?;
        Ok((page, more))
    }

    /// Closes or reopens one dataset, writing its next version in the same transaction (an
    /// entry reopened into an open category is no longer under evaluation).
    pub async fn set_dataset_closed(&self, id: &str, closed: bool, change: &Change<'_>) -> Result<Committed> {
        let mut tx = self.begin().await?;
        Self::lock_changes(&mut tx).await?;
        let before = Self::dataset_in(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("dataset {id}")))?;
        let mut after = DatasetRecord {
            closed,
            ..before.clone()
        };
        if crate::catalog_history::is_open(&after) {
            after.next_evaluation = None;
        }
        sqlx::query("UPDATE datasets SET closed = $1, next_evaluation = $2 WHERE id = $3")
            .bind(i64::from(closed))
            .bind(&after.next_evaluation)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let action = if closed {
            crate::catalog_history::VersionAction::Closed
        } else {
            crate::catalog_history::VersionAction::Reopened
        };
        Self::finish_version(tx, change, action, Some(&before), &after).await
    }

    /// Closes or reopens all conditional data at once. Not a change of any catalog entry (the
    /// entries keep their own state; the switch is in the snapshot), so it writes no catalog
    /// version: it is in the change log.
    pub async fn set_all_closed(&self, closed: bool, change: &Change<'_>) -> Result<Committed> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE registry_meta SET v = $1 WHERE k = 'all_conditional_closed'")
            .bind(i64::from(closed))
            .execute(&mut *tx)
            .await?;
        Self::finish(tx, change).await
    }

    /// Stores a new licence (validated by the caller against the catalog), unless it would
    /// complete a fusion rule for its licensee without an expert review
    /// ([`StoreError::FusionConflict`]). With a review that overrides a rule, the review and
    /// the rules are added to the recorded reason.
    ///
    /// The check and the insert share one transaction that first takes the revision row's
    /// lock, which every change takes when it commits: so two concurrent grants cannot both
    /// complete a rule, and a rule declared meanwhile is either committed before the check
    /// reads the rules or after the grant (PostgreSQL: the grant waits, then reads what was
    /// committed; SQLite: one writer).
    pub async fn insert_licence(&self, l: &Licence, change: &Change<'_>) -> Result<Committed> {
        let mut tx = self.begin().await?;
        Self::lock_changes(&mut tx).await?;
        let reason = Self::insert_licence_in(&mut tx, l, change.reason).await?;
        Self::finish(
            tx,
            &Change {
                reason: &reason,
                ..change.clone()
            },
        )
        .await
    }

    /// Inserts `l` in `tx` (the caller holds the change lock) after the fusion-rule check: a
    /// grant completing a rule needs the licence's expert review. Returns the reason to record,
    /// `reason` with the review and the conflict it answers.
    pub(super) async fn insert_licence_in(tx: &mut Tx, l: &Licence, reason: &str) -> Result<String> {
        let completed = Self::fusion_completions(tx, l).await?;
        let reason = if !completed.is_empty() {
            let detail = super::fusion::conflict_detail(&l.licensee, &completed);
            match &l.expert_review {
                None => return Err(StoreError::FusionConflict(detail)),
                Some(review) => format!("{reason} [expert review {review}: {detail}]"),
            }
        } else if let Some(review) = &l.expert_review {
            format!("{reason} [expert review {review}]")
        } else {
            reason.to_owned()
        };
        sqlx::query(
            "INSERT INTO licences (id, licensee, dataset, scenario, state, body) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&l.id)
        .bind(&l.licensee)
        .bind(&l.dataset)
        .bind(&l.scenario)
        .bind(state_name(&l.status))
        .bind(json(l)?)
        .execute(&mut **tx)
        .await
        .map_err(|e| map_unique(e, &format!("licence {}", l.id)))?;
        Ok(reason)
    }

    /// Takes the revision row's lock until the transaction ends (a no-op update: a row lock
    /// in PostgreSQL, the write lock in SQLite), serialising this change with every other.
    async fn lock_changes(tx: &mut Tx) -> Result<()> {
        sqlx::query("UPDATE registry_meta SET v = v WHERE k = 'revision'")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// One licence.
    pub async fn licence(&self, id: &str) -> Result<Licence> {
        let row = sqlx::query("SELECT id, body FROM licences WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("licence {id}")))?;
        licence_from(&row)
    }

    /// All licences by id, optionally of one licensee.
    pub async fn licences(&self, licensee: Option<&str>) -> Result<Vec<Licence>> {
        let rows = match licensee {
            Some(l) => {
                sqlx::query("SELECT id, body FROM licences WHERE licensee = $1 ORDER BY id")
                    .bind(l)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT id, body FROM licences ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(licence_from).collect()
    }

    /// Changes a licence's status. Revoked is final; suspending needs an active licence,
    /// resuming a suspended one.
    pub async fn set_licence_status(
        &self,
        id: &str,
        status: LicenceStatus,
        change: &Change<'_>,
    ) -> Result<(Licence, Committed)> {
        let mut tx = self.begin().await?;
        let lic = Self::set_status_in(&mut tx, id, status).await?;
        let rev = Self::finish(tx, change).await?;
        Ok((lic, rev))
    }

    /// The status change of [`Self::set_licence_status`] inside `tx` (the caller records the
    /// change): `NotFound` for an unknown licence, `Conflict` for a transition not allowed.
    pub(super) async fn set_status_in(tx: &mut Tx, id: &str, status: LicenceStatus) -> Result<Licence> {
        let row = sqlx::query("SELECT id, body FROM licences WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("licence {id}")))?;
        let mut lic = licence_from(&row)?;
        let ok = match (&lic.status, &status) {
            (LicenceStatus::Revoked { .. }, _) => false,
            (LicenceStatus::Active, LicenceStatus::Suspended { .. }) => true,
            (LicenceStatus::Suspended { .. }, LicenceStatus::Active) => true,
            (_, LicenceStatus::Revoked { .. }) => true,
            _ => false,
        };
        if !ok {
            return Err(StoreError::Conflict(format!(
                "licence {id} is {}; cannot become {}",
                state_name(&lic.status),
                state_name(&status)
            )));
        }
        lic.status = status;
        sqlx::query("UPDATE licences SET state = $1, body = $2 WHERE id = $3")
            .bind(state_name(&lic.status))
            .bind(json(&lic)?)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(lic)
    }

    /// Records a violation.
    pub async fn add_violation(
        &self,
        licensee: &str,
        what: &str,
        measure: Measure,
        change: &Change<'_>,
    ) -> Result<(ViolationRecord, Committed)> {
        let mut tx = self.begin().await?;
        let v = Self::insert_violation(&mut tx, licensee, what, measure, change.reason).await?;
        let rev = Self::finish_with(tx, change, Some(measure)).await?;
        Ok((v, rev))
    }

    /// The insert of [`Self::add_violation`] inside `tx` (the caller records the change).
    pub(super) async fn insert_violation(
        tx: &mut Tx,
        licensee: &str,
        what: &str,
        measure: Measure,
        reason: &str,
    ) -> Result<ViolationRecord> {
        let v = ViolationRecord {
            id: uuid::Uuid::now_v7().to_string(),
            licensee: licensee.to_owned(),
            what: what.to_owned(),
            at: now(),
            measure,
            reason: reason.to_owned(),
            lifted_at: None,
            lifted_reason: None,
        };
        sqlx::query(
            "INSERT INTO violations (id, licensee, what, at, measure, reason) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&v.id)
        .bind(&v.licensee)
        .bind(&v.what)
        .bind(&v.at)
        .bind(v.measure.as_str())
        .bind(&v.reason)
        .execute(&mut **tx)
        .await?;
        Ok(v)
    }

    /// The violation register, oldest first.
    pub async fn violations(&self) -> Result<Vec<ViolationRecord>> {
        let rows = sqlx::query(&format!("SELECT {VIOLATION_COLUMNS} FROM violations ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(violation_from).collect()
    }

    /// Lifts a violation's measure: it stays in the register with when and why it was
    /// lifted, and no longer restricts the licensee. Lifting twice is a conflict.
    pub async fn lift_violation(
        &self,
        id: &str,
        change: &Change<'_>,
    ) -> Result<(ViolationRecord, Committed)> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE violations SET lifted_at = $1, lifted_reason = $2 WHERE id = $3 AND lifted_at IS NULL",
        )
        .bind(now())
        .bind(change.reason)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let row = sqlx::query(&format!(
            "SELECT {VIOLATION_COLUMNS} FROM violations WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("violation {id}")))?;
        let v = violation_from(&row)?;
        if done == 0 {
            return Err(StoreError::Conflict(format!(
                "violation {id} was already lifted at {}",
                v.lifted_at.as_deref().unwrap_or("?")
            )));
        }
        let rev = Self::finish_with(tx, change, Some(v.measure)).await?;
        Ok((v, rev))
    }

    /// Records a revoked certificate serial (lower-case hex).
    pub async fn revoke_serial(&self, serial: &str, change: &Change<'_>) -> Result<Committed> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO revoked_serials (serial, at, reason) VALUES ($1, $2, $3)")
            .bind(serial)
            .bind(now())
            .bind(change.reason)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, &format!("revocation of serial {serial}")))?;
        Self::finish(tx, change).await
    }

    /// Admin changes, oldest first.
    pub async fn changes(&self) -> Result<Vec<AdminChange>> {
        let rows = sqlx::query(
            "SELECT revision, admin, at, action, target, reason FROM admin_changes ORDER BY revision",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AdminChange {
                    revision: to_u64(r.try_get("revision")?),
                    admin: r.try_get("admin")?,
                    at: r.try_get("at")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect()
    }

    /// Reads everything a snapshot needs in one read transaction: on PostgreSQL at
    /// `REPEATABLE READ` (one snapshot for every statement), on SQLite a deferred transaction
    /// whose first read fixes what it sees (WAL). Writers are neither blocked nor able to make
    /// the statements disagree.
    async fn read_state(&self) -> Result<SnapshotState> {
        let mut tx = self.begin_read().await?;
        let revision = Self::read_snapshot_revision(&mut tx).await?;
        let licences = sqlx::query("SELECT id, body FROM licences ORDER BY id")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(licence_from)
            .collect::<Result<Vec<_>>>()?;
        let m = Self::read_measures(&mut tx).await?;
        tx.rollback().await?;
        Ok(SnapshotState {
            revision,
            licences,
            closed_datasets: m.closed_datasets,
            all_conditional_closed: m.all_conditional_closed,
            restricted_licensees: m.restricted_licensees,
            revoked_serials: m.revoked_serials,
            record_marks: m.record_marks,
            risk_rules: m.risk_rules,
        })
    }

    /// Opens a read transaction: on PostgreSQL at `REPEATABLE READ` (one snapshot for every
    /// statement), on SQLite a deferred transaction whose first read fixes what it sees
    /// (WAL). Writers are neither blocked nor able to make the statements disagree.
    async fn begin_read(&self) -> Result<Tx> {
        let mut tx = self.begin().await?;
        if self.postgres_url.is_some() {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// What a delta from `base` to the current snapshot revision carries, read in one read
    /// transaction: the licences named by licence changes after `base` (every licence change is
    /// in the change log, under its number) and the other parts whole. `None` when `base` is
    /// not below the current revision or more than [`DELTA_MAX_LICENCES`] licences changed
    /// (the whole snapshot is then the answer).
    pub async fn delta_state(&self, base: u64) -> Result<Option<DeltaState>> {
        let mut tx = self.begin_read().await?;
        let revision = Self::read_snapshot_revision(&mut tx).await?;
        if base >= revision {
            tx.rollback().await?;
            return Ok(None);
        }
        let since = i64::try_from(base).unwrap_or(i64::MAX);
        let actions = LICENCE_ACTIONS.map(Action::as_str);
        let mut q = sqlx::query(
            "SELECT id, body FROM licences WHERE id IN (SELECT target FROM admin_changes \
             WHERE revision > $1 AND action IN ($2, $3, $4, $5)) ORDER BY id LIMIT $6",
        )
        .bind(since);
        for a in actions {
            q = q.bind(a);
        }
        let rows = q
            .bind(i64::try_from(DELTA_MAX_LICENCES + 1).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
        if rows.len() > DELTA_MAX_LICENCES {
            tx.rollback().await?;
            return Ok(None);
        }
        let licences = rows.iter().map(licence_from).collect::<Result<Vec<_>>>()?;
        let m = Self::read_measures(&mut tx).await?;
        tx.rollback().await?;
        Ok(Some(DeltaState {
            revision,
            licences,
            closed_datasets: m.closed_datasets,
            all_conditional_closed: m.all_conditional_closed,
            restricted_licensees: m.restricted_licensees,
            revoked_serials: m.revoked_serials,
            record_marks: m.record_marks,
            risk_rules: m.risk_rules,
        }))
    }

    /// The snapshot revision gateways follow, read in `tx`.
    async fn read_snapshot_revision(tx: &mut Tx) -> Result<u64> {
        let row = sqlx::query("SELECT v FROM registry_meta WHERE k = 'snapshot_revision'")
            .fetch_one(&mut **tx)
            .await?;
        Ok(to_u64(row.try_get("v")?))
    }

    /// The parts of a snapshot besides licences, read in `tx`: closed datasets, the switch,
    /// restricted licensees, revoked serials.
    async fn read_measures(tx: &mut Tx) -> Result<Measures> {
        let closed_datasets = sqlx::query("SELECT id FROM datasets WHERE closed <> 0 ORDER BY id")
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<Vec<String>, _>>()?;
        let all: i64 = sqlx::query("SELECT v FROM registry_meta WHERE k = 'all_conditional_closed'")
            .fetch_one(&mut **tx)
            .await?
            .try_get("v")?;
        let violations = sqlx::query(&format!("SELECT {VIOLATION_COLUMNS} FROM violations ORDER BY id"))
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(violation_from)
            .collect::<Result<Vec<_>>>()?;
        let mut restricted = BTreeMap::new();
        for v in violations {
            if v.measure.restricts() && v.lifted_at.is_none() {
                restricted.insert(v.licensee, format!("{}: {}", v.measure.as_str(), v.reason));
            }
        }
        let revoked_serials = sqlx::query("SELECT serial FROM revoked_serials ORDER BY serial")
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| r.try_get("serial"))
            .collect::<Result<Vec<String>, _>>()?;
        let record_marks = Self::read_record_marks(tx).await?;
        let risk_rules = risk::read_rules(tx).await?;
        Ok(Measures {
            closed_datasets,
            all_conditional_closed: all != 0,
            restricted_licensees: restricted,
            revoked_serials,
            record_marks,
            risk_rules,
        })
    }

    /// Everything a snapshot needs, read consistently in one read transaction, however fast
    /// changes arrive.
    pub async fn snapshot_state(&self) -> Result<SnapshotState> {
        self.read_state().await
    }
}

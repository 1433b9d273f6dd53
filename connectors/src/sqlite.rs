//! The SQLite connector: a database file opened read-only (and `query_only`), one
//! parameterised `SELECT` per fetch, rows read from the cursor by a blocking thread into
//! [`RowBatch`]es and handed over through a channel of two batches. The thread waits while
//! the client does not read, so back-pressure reaches the cursor; it stops when the consumer
//! goes away or the statement timeout passes (SQLite's progress handler interrupts it).

use crate::source::AggregateFetch;
use crate::source::{
    BodyError, BoxFuture, Connector, Fetch, FetchError, PageEnd, Paging, RowStream, SourceData,
};
use crate::sql::{Dialect, SqlParam, Table};
use crate::sql_aggregate::{
    base_table, build_aggregate, cell_of, float_text, parse_sqlite_measure, AggregateSelect,
    SQLITE_MEASURE_FN,
};
use crate::table::{
    cursor_text, default_read_timeout, default_statement_timeout, CursorCell, DeclaredType, TableConfig,
    BATCH_BYTES, BATCH_ROWS,
};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sluice_policy::aggregate::{BaseCell, BaseRow, BaseTable, Clamp, Decimal};
use sluice_policy::stream::{InputFormat, RowBatch};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A dataset read from a SQLite database file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSourceConfig {
    /// The database file (relative paths from the config file's folder). Opened read-only.
    pub path: PathBuf,
    /// The table or view, its key and its columns.
    pub table: TableConfig,
    /// Longest a statement may run, reading included, ms.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_ms: u64,
    /// Longest wait for the next rows, ms.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
    /// Idle connections kept open.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

fn default_pool_size() -> usize {
    4
}

impl SqliteSourceConfig {
    /// Problems with the config, as (relative path, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .table
            .validate()
            .into_iter()
            .map(|(p, m)| (format!("table.{p}"), m))
            .collect();
        if let Err(e) = open(&self.path) {
            out.push(("path".into(), format!("{}: {e}", self.path.display())));
        }
        if self.statement_timeout_ms == 0 || self.read_timeout_ms == 0 {
            out.push(("statement_timeout_ms".into(), "timeouts must be positive".into()));
        }
        out
    }

    /// Makes a relative database path relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        crate::config::resolve_path(base, &mut self.path);
    }
}

/// Opens the database read-only; writes are refused by SQLite itself.
fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "query_only", true)?;
    // A double-quoted name that is no column must be an error, not a string literal (SQLite's
    // legacy "DQS"): `"distrct" <> ?` would otherwise hold for every row.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DML, false)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// A SQLite source.
#[derive(Debug)]
pub struct SqliteSource {
    config: SqliteSourceConfig,
    table: Table,
    idle: Arc<Mutex<Vec<Connection>>>,
    /// Connections out of the pool, reading a page.
    busy: Arc<std::sync::atomic::AtomicUsize>,
}

impl SqliteSource {
    /// The connector for `config` (the database is opened at the first fetch).
    pub fn new(config: SqliteSourceConfig) -> Self {
        Self {
            table: config.table.table(),
            config,
            idle: Arc::default(),
            busy: Arc::default(),
        }
    }
}

impl Connector for SqliteSource {
    fn input_format(&self) -> InputFormat {
        InputFormat::Rows
    }

    fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.config.read_timeout_ms)
    }

    fn paging(&self) -> Paging {
        Paging::Key
    }

    fn pool_status(&self) -> Option<crate::source::PoolStatus> {
        let idle = self.idle.lock().map(|v| v.len()).unwrap_or(0);
        Some(crate::source::PoolStatus {
            max: self.config.pool_size,
            open: idle + self.busy.load(std::sync::atomic::Ordering::Relaxed),
            idle,
        })
    }

    fn check(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(self.config.table.check(self))
    }

    /// Groups in SQLite ([`crate::sql_aggregate`]), measuring with the `sluice_measure`
    /// aggregate function; `None` when the licence's row filter cannot be written in SQL.
    fn aggregate<'a>(
        &'a self,
        req: &'a AggregateFetch<'a>,
    ) -> Option<BoxFuture<'a, Result<BaseTable, FetchError>>> {
        let select = match build_aggregate(Dialect::Sqlite, &self.table, req) {
            Err(e) if e.streams_instead() => return None,
            s => s,
        };
        Some(Box::pin(async move { self.run_aggregate(req, select?).await }))
    }

    fn fetch<'a>(&'a self, fetch: &'a Fetch<'a>) -> BoxFuture<'a, Result<SourceData, FetchError>> {
        Box::pin(async move {
            let select = self.config.table.select(&self.table, Dialect::Sqlite, fetch)?;
            let probe = self.config.table.probe(&self.table, Dialect::Sqlite, fetch)?;
            let types: Vec<Option<DeclaredType>> = self.config.table.types_of(&select.columns);
            let columns: Arc<[String]> = select.columns.into();
            let (tx, rx) = mpsc::channel(2);
            let (started_tx, started) = oneshot::channel();
            let job = Job {
                path: self.config.path.clone(),
                idle: self.idle.clone(),
                busy: self.busy.clone(),
                pool_size: self.config.pool_size,
                sql: select.sql,
                params: select.params,
                probe_sql: probe.sql,
                probe_params: probe.params,
                probe_types: self.config.table.types_of(&probe.columns),
                types,
                deadline: Instant::now() + Duration::from_millis(self.config.statement_timeout_ms),
            };
            tokio::task::spawn_blocking(move || job.run(started_tx, tx));
            let end = match started.await {
                Ok(Ok(end)) => end,
                Ok(Err(e)) => return Err(FetchError::Source(e)),
                Err(_) => return Err(FetchError::Source("the reader stopped".into())),
            };
            Ok(SourceData::Rows(RowStream {
                columns,
                batches: Box::pin(Batches(rx)),
                end,
            }))
        })
    }
}

impl SqliteSource {
    /// Runs an aggregate push-down ([`build_aggregate`]) on a blocking thread, in one read
    /// transaction, interrupted past the statement timeout.
    async fn run_aggregate(
        &self,
        req: &AggregateFetch<'_>,
        select: AggregateSelect,
    ) -> Result<BaseTable, FetchError> {
        let measure_type = req.plan.measure().and_then(|m| self.config.table.type_of(m));
        let job = AggregateJob {
            path: self.config.path.clone(),
            idle: self.idle.clone(),
            busy: self.busy.clone(),
            pool_size: self.config.pool_size,
            types: select
                .groups
                .iter()
                .map(|c| self.config.table.type_of(&c.name))
                .collect(),
            measure_type,
            deadline: Instant::now() + Duration::from_millis(self.config.statement_timeout_ms),
            select: select.clone(),
        };
        let rows = tokio::task::spawn_blocking(move || job.run())
            .await
            .map_err(|_| FetchError::Source("the reader stopped".into()))??;
        tracing::debug!(
            request_id = req.request_id,
            rows = rows.len(),
            "aggregate push-down"
        );
        base_table(&select, req.plan, rows)
    }
}

/// One aggregate push-down run on a blocking thread.
struct AggregateJob {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
    busy: Arc<std::sync::atomic::AtomicUsize>,
    pool_size: usize,
    select: AggregateSelect,
    /// The declared types of the base fields.
    types: Vec<Option<DeclaredType>>,
    /// The declared type of the measured column.
    measure_type: Option<DeclaredType>,
    deadline: Instant,
}

impl AggregateJob {
    fn run(self) -> Result<Vec<BaseRow>, FetchError> {
        use std::sync::atomic::Ordering;
        self.busy.fetch_add(1, Ordering::Relaxed);
        let r = self.serve();
        self.busy.fetch_sub(1, Ordering::Relaxed);
        r
    }

    fn serve(&self) -> Result<Vec<BaseRow>, FetchError> {
        let source = |e: String| FetchError::Source(format!("sqlite: {e}"));
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = pooled
            .map_or_else(|| open(&self.path), Ok)
            .map_err(|e| source(e.to_string()))?;
        conn.create_aggregate_function(
            SQLITE_MEASURE_FN,
            3,
            rusqlite::functions::FunctionFlags::SQLITE_UTF8
                | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
            Measure(self.measure_type),
        )
        .map_err(|e| source(e.to_string()))?;
        let deadline = self.deadline;
        conn.progress_handler(1_000, Some(move || Instant::now() > deadline));
        let rows = conn
            .execute_batch("BEGIN")
            .map_err(|e| e.to_string())
            .and_then(|()| self.rows(&conn))
            .and_then(|rows| {
                conn.execute_batch("COMMIT")
                    .map(|()| rows)
                    .map_err(|e| e.to_string())
            });
        conn.progress_handler(1_000, None::<fn() -> bool>);
        match rows {
            Ok(rows) => {
                if let Ok(mut idle) = self.idle.lock() {
                    if idle.len() < self.pool_size {
                        idle.push(conn);
                    }
                }
                rows.into_iter().collect()
            }
            Err(e) => Err(source(e)),
        }
    }

    /// The statement's rows (each a base row, or why it is not one).
    fn rows(&self, conn: &Connection) -> Result<Vec<Result<BaseRow, FetchError>>, String> {
        let mut stmt = conn.prepare(&self.select.sql).map_err(|e| e.to_string())?;
        let mut rows = stmt.query(bind(&self.select.params)).map_err(|e| e.to_string())?;
        let n = self.types.len();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            let mut key = Vec::with_capacity(n);
            for (i, ty) in self.types.iter().enumerate() {
                let v = row.get_ref(i).map_err(|e| e.to_string())?;
                key.push(group_text(v, *ty).map_err(|e| format!("column {i}: {e}"))?);
            }
            let count: i64 = row.get(n).map_err(|e| e.to_string())?;
            let cell = if self.select.measured {
                let text: Option<String> = row.get(n + 1).map_err(|e| e.to_string())?;
                parse_sqlite_measure(count, text.as_deref())
            } else {
                cell_of(count, 0, None, None, None)
            };
            out.push(cell.map(|cell| BaseRow { key, cell }));
        }
        Ok(out)
    }
}

/// A group value as the SQLite fetch would hand it to the masker ([`push`]), as the text
/// the masker writes.
fn group_text(v: ValueRef<'_>, ty: Option<DeclaredType>) -> Result<Option<String>, String> {
    let utf8 = |t: &[u8]| {
        std::str::from_utf8(t)
            .map(str::to_owned)
            .map_err(|_| "text that is not UTF-8".to_owned())
    };
    Ok(match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) if ty == Some(DeclaredType::Bool) => Some((i != 0).to_string()),
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => float_text(f),
        ValueRef::Text(t) => Some(utf8(t)?),
        ValueRef::Blob(_) => return Err("a blob cannot be grouped".into()),
    })
}

/// The measure text of one value, as the SQLite fetch would hand it to the masker and the
/// masker write it ([`push`]): `None` for NULL and non-finite floats.
fn measure_text(v: ValueRef<'_>) -> Result<Option<String>, String> {
    Ok(match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => float_text(f),
        ValueRef::Text(t) => Some(
            std::str::from_utf8(t)
                .map_err(|_| "text that is not UTF-8")?
                .to_owned(),
        ),
        ValueRef::Blob(_) => return Err("a blob cannot be measured".into()),
    })
}

/// `sluice_measure(value, lower, upper)`: the measured count, exact sum, minimum and maximum
/// of a group's values (clamped into `[lower, max(upper, lower)]` when the bounds are not
/// NULL), each value read as the stream reads it and parsed with [`Decimal::parse`]; text
/// `measured sum min max`, NULL when no value was a number.
struct Measure(Option<DeclaredType>);

impl rusqlite::functions::Aggregate<BaseCell, Option<String>> for Measure {
    fn init(&self, _: &mut rusqlite::functions::Context<'_>) -> rusqlite::Result<BaseCell> {
        Ok(BaseCell::default())
    }

    fn step(&self, ctx: &mut rusqlite::functions::Context<'_>, acc: &mut BaseCell) -> rusqlite::Result<()> {
        let fail = |e: String| rusqlite::Error::UserFunctionError(e.into());
        let bound = |i: usize| -> rusqlite::Result<Option<Decimal>> {
            match ctx.get_raw(i) {
                ValueRef::Null => Ok(None),
                ValueRef::Text(t) => std::str::from_utf8(t)
                    .ok()
                    .and_then(Decimal::parse)
                    .map(Some)
                    .ok_or_else(|| fail("a clamp bound that is not a decimal".into())),
                _ => Err(fail("a clamp bound that is not a decimal".into())),
            }
        };
        let clamp = match (bound(1)?, bound(2)?) {
            (Some(lower), Some(upper)) => Some(Clamp { lower, upper }),
            _ => None,
        };
        if self.0 == Some(DeclaredType::Text) {
            return Err(fail("a text column cannot be measured".into()));
        }
        let text = measure_text(ctx.get_raw(0)).map_err(fail)?;
        let value = text
            .as_deref()
            .and_then(Decimal::parse)
            .map(|v| clamp.map_or(v, |c| c.apply(v)));
        let mut record = BaseCell::of_record(value);
        record.count = 0;
        acc.merge(&record).map_err(|e| fail(e.to_string()))
    }

    fn finalize(
        &self,
        _: &mut rusqlite::functions::Context<'_>,
        acc: Option<BaseCell>,
    ) -> rusqlite::Result<Option<String>> {
        Ok(acc.and_then(|c| match (c.measured, c.min, c.max) {
            (1.., Some(min), Some(max)) => Some(format!("{} {} {min} {max}", c.measured, c.sum)),
            _ => None,
        }))
    }
}

/// The receiving end of a reader thread, as a stream of batches.
struct Batches(mpsc::Receiver<Result<RowBatch, BodyError>>);

impl futures_core::Stream for Batches {
    type Item = Result<RowBatch, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// One statement run on a blocking thread.
struct Job {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
    busy: Arc<std::sync::atomic::AtomicUsize>,
    pool_size: usize,
    sql: String,
    params: Vec<SqlParam>,
    probe_sql: String,
    probe_params: Vec<SqlParam>,
    probe_types: Vec<Option<DeclaredType>>,
    types: Vec<Option<DeclaredType>>,
    deadline: Instant,
}

/// Bind values for a statement.
fn bind(params: &[SqlParam]) -> impl rusqlite::Params + '_ {
    rusqlite::params_from_iter(params.iter().map(|p| match p {
        SqlParam::Text(t) => rusqlite::types::Value::Text(t.clone()),
        SqlParam::Integer(i) => rusqlite::types::Value::Integer(*i),
        SqlParam::Decimal(t) => rusqlite::types::Value::Text(t.clone()),
        SqlParam::Float(f) => rusqlite::types::Value::Real(*f),
        SqlParam::Bool(b) => rusqlite::types::Value::Integer(i64::from(*b)),
    }))
}

impl Job {
    fn run(
        self,
        started: oneshot::Sender<Result<PageEnd, String>>,
        tx: mpsc::Sender<Result<RowBatch, BodyError>>,
    ) {
        use std::sync::atomic::Ordering;
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.serve(started, tx);
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }

    fn serve(
        &self,
        started: oneshot::Sender<Result<PageEnd, String>>,
        tx: mpsc::Sender<Result<RowBatch, BodyError>>,
    ) {
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match pooled.map_or_else(|| open(&self.path), Ok) {
            Ok(c) => c,
            Err(e) => {
                let _ = started.send(Err(e.to_string()));
                return;
            }
        };
        let deadline = self.deadline;
        // SQLite calls this every 1,000 virtual machine steps: past the deadline, interrupt.
        conn.progress_handler(1_000, Some(move || Instant::now() > deadline));
        // One read transaction: the probe and the page see the same snapshot.
        let clean = match conn.execute_batch("BEGIN") {
            Ok(()) => {
                let clean = self.stream(&conn, started, &tx);
                clean && conn.execute_batch("COMMIT").is_ok()
            }
            Err(e) => {
                let _ = started.send(Err(e.to_string()));
                false
            }
        };
        conn.progress_handler(1_000, None::<fn() -> bool>);
        if clean {
            if let Ok(mut idle) = self.idle.lock() {
                if idle.len() < self.pool_size {
                    idle.push(conn);
                }
            }
        }
    }

    /// Runs the statement and sends its rows; whether the connection can be reused.
    fn stream(
        &self,
        conn: &Connection,
        started: oneshot::Sender<Result<PageEnd, String>>,
        tx: &mpsc::Sender<Result<RowBatch, BodyError>>,
    ) -> bool {
        let end = match self.probe(conn) {
            Ok(end) => end,
            Err(e) => {
                let _ = started.send(Err(e));
                return false;
            }
        };
        let mut stmt = match conn.prepare_cached(&self.sql) {
            Ok(s) => s,
            Err(e) => {
                let _ = started.send(Err(e.to_string()));
                return false;
            }
        };
        let mut rows = match stmt.query(bind(&self.params)) {
            Ok(r) => r,
            Err(e) => {
                let _ = started.send(Err(e.to_string()));
                return false;
            }
        };
        if started.send(Ok(end)).is_err() {
            return true;
        }
        let width = self.types.len();
        let mut batch = RowBatch::new(width);
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.blocking_send(Err(BodyError(format!("sqlite: {e}"))));
                    return false;
                }
            };
            for (i, ty) in self.types.iter().enumerate() {
                let cell = row
                    .get_ref(i)
                    .map_err(|e| e.to_string())
                    .and_then(|v| push(&mut batch, v, *ty));
                if let Err(e) = cell {
                    let _ = tx.blocking_send(Err(BodyError(format!("sqlite: column {i}: {e}"))));
                    return false;
                }
            }
            if batch.rows() >= BATCH_ROWS || batch.bytes() >= BATCH_BYTES {
                let full = std::mem::replace(&mut batch, RowBatch::new(width));
                if tx.blocking_send(Ok(full)).is_err() {
                    // The consumer went away: stop reading.
                    return true;
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(Ok(batch));
        }
        true
    }
}

impl Job {
    /// Runs the probe: where the page ends.
    fn probe(&self, conn: &Connection) -> Result<PageEnd, String> {
        let mut stmt = conn.prepare_cached(&self.probe_sql).map_err(|e| e.to_string())?;
        let mut rows = stmt.query(bind(&self.probe_params)).map_err(|e| e.to_string())?;
        let mut last = None;
        let mut seen = 0;
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            seen += 1;
            if seen == 1 {
                let mut values = Vec::with_capacity(self.probe_types.len());
                for (i, ty) in self.probe_types.iter().enumerate() {
                    let v = row.get_ref(i).map_err(|e| e.to_string())?;
                    values.push(cursor_text(match v {
                        ValueRef::Null => CursorCell::Null,
                        ValueRef::Integer(n) if *ty == Some(DeclaredType::Bool) => CursorCell::Bool(n != 0),
                        ValueRef::Integer(n) => CursorCell::Int(n),
                        ValueRef::Real(f) => CursorCell::Float(f),
                        ValueRef::Text(t) => {
                            CursorCell::Text(std::str::from_utf8(t).map_err(|_| "key text is not UTF-8")?)
                        }
                        ValueRef::Blob(_) => return Err("a blob cannot order pages".into()),
                    }));
                }
                last = Some(values);
            }
        }
        Ok(match (seen, last) {
            (2, Some(values)) => PageEnd::After(values),
            _ => PageEnd::Last,
        })
    }
}

/// One cell into the batch, typed by its storage class (a boolean column stores integers).
fn push(batch: &mut RowBatch, v: ValueRef<'_>, ty: Option<DeclaredType>) -> Result<(), String> {
    match v {
        ValueRef::Null => batch.push_null(),
        ValueRef::Integer(i) if ty == Some(DeclaredType::Bool) => batch.push_bool(i != 0),
        ValueRef::Integer(i) if ty == Some(DeclaredType::Text) => batch.push_text(&i.to_string()),
        ValueRef::Integer(i) => batch.push_int(i),
        ValueRef::Real(f) => batch.push_float(f),
        ValueRef::Text(t) if ty == Some(DeclaredType::Decimal) => batch
            .push_number(std::str::from_utf8(t).map_err(|_| "text that is not UTF-8")?)
            .map_err(|e| e.to_string())?,
        ValueRef::Text(t) => batch.push_text(std::str::from_utf8(t).map_err(|_| "text that is not UTF-8")?),
        ValueRef::Blob(_) => return Err("a blob cannot be masked".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::sqltest::{page, plan};
    use sluice_policy::mask::PseudonymKey;
    use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
    use sluice_policy::query::ClientQuery;

    /// A register of `n` rows in a fresh database file.
    fn database(n: i64) -> PathBuf {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "sluice-sqlite-{}-{}.db",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let mut c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE meters (id TEXT PRIMARY KEY, district TEXT, reading REAL, active INTEGER, \
             owner_id TEXT, photo BLOB)",
        )
        .unwrap();
        let tx = c.transaction().unwrap();
        let mut ins = tx
            .prepare("INSERT INTO meters VALUES (?1, ?2, ?3, ?4, ?5, NULL)")
            .unwrap();
        for i in 0..n {
            let district = if i % 2 == 0 { "Huangpu" } else { "Xuhui" };
            ins.execute(rusqlite::params![
                format!("M{i:05}"),
                district,
                i as f64 / 4.0,
                i % 3 == 0,
                format!("3101011990010{:05}", i)
            ])
            .unwrap();
        }
        drop(ins);
        tx.commit().unwrap();
        path
    }

    fn config(path: PathBuf) -> SqliteSourceConfig {
        let columns = [
            ("id", DeclaredType::Text),
            ("district", DeclaredType::Text),
            ("reading", DeclaredType::Float),
            ("active", DeclaredType::Bool),
            ("owner_id", DeclaredType::Text),
        ];
        SqliteSourceConfig {
            path,
            table: TableConfig {
                schema: None,
                name: "meters".into(),
                key: "id".into(),
                columns: columns.iter().map(|(n, t)| ((*n).into(), *t)).collect(),
            },
            statement_timeout_ms: 5_000,
            read_timeout_ms: 5_000,
            pool_size: 2,
        }
    }

    /// `n` observations ([`crate::sqltest::observations`]) in a fresh database file, as
    /// table `obs`.
    fn observations(n: i64) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("{}.db", crate::sqltest::table_name("sluice-sqlite-obs")));
        let _ = std::fs::remove_file(&path);
        let mut c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE obs (id TEXT PRIMARY KEY, district TEXT, age INTEGER, level REAL, \
             active INTEGER, amount NUMERIC, note TEXT NOT NULL)",
        )
        .unwrap();
        let tx = c.transaction().unwrap();
        let mut ins = tx
            .prepare("INSERT INTO obs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .unwrap();
        for o in crate::sqltest::observations(n) {
            ins.execute(rusqlite::params![o.0, o.1, o.2, o.3, o.4, o.5, o.6])
                .unwrap();
        }
        drop(ins);
        tx.commit().unwrap();
        path
    }

    #[tokio::test]
    async fn aggregate_push_down_equals_streaming() {
        let path = observations(600);
        let mut c = config(path.clone());
        c.table = crate::sqltest::obs_table("obs");
        let source = SqliteSource::new(c.clone());
        crate::sqltest::aggregates_match_streaming(&source, &c.table, 600).await;

        // A release against a direct SQL computation over the cells of at least k amounts
        // (summed in cents: SQLite's own SUM of reals is not exact).
        let k = 11;
        let (released, _) = crate::sqltest::released_sums(&source, k).await;
        let conn = Connection::open(&path).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT d, SUM(c), SUM(s) FROM (SELECT district AS d, age, COUNT(*) AS c, \
                 SUM(CAST(ROUND(amount * 100) AS INTEGER)) AS s FROM obs \
                 GROUP BY district COLLATE BINARY, age HAVING COUNT(amount) >= ?1) \
                 GROUP BY d COLLATE BINARY",
            )
            .unwrap();
        let direct = stmt
            .query_map([i64::from(k)], |r| {
                Ok((r.get(0)?, r.get(1)?, format!("{}e-2", r.get::<_, i64>(2)?)))
            })
            .unwrap()
            .collect::<Result<Vec<(Option<String>, i64, String)>, _>>()
            .unwrap();
        assert_eq!(released, crate::sqltest::direct_sums(direct));
        let kept: u64 = released.iter().map(|c| c.1).sum();
        assert!(!released.is_empty() && kept < 600, "{released:?}");
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn rows_stream_typed_masked_filtered_and_in_key_order() {
        let source = SqliteSource::new(config(database(2_000)));
        let plan = plan();
        let q = ClientQuery::from_pairs([("district", "eq.Xuhui")]).unwrap();
        let fetch = Fetch {
            limit: 1_500,
            plan: Some(&plan),
            query: Some(&q),
            ..Fetch::default()
        };
        let (recs, batches, _) = page(&source, &fetch, fetch.query).await;
        assert_eq!(
            recs.len(),
            1_000,
            "the filter ran in SQL, the page is full up to the data"
        );
        assert!(batches >= 2, "rows arrive in several batches: {batches}");
        assert_eq!(recs[0]["id"], "M00001");
        assert_eq!(recs[0]["reading"], 0.25);
        assert_eq!(recs[0]["active"], false);
        assert_eq!(recs[1]["active"], true);
        assert!(recs.iter().all(|r| r["district"] == "Xuhui"));
        let owner = recs[0]["owner_id"].as_str().unwrap();
        assert!(!owner.starts_with("3101"), "pseudonymised: {owner}");
        let mut ids: Vec<&str> = recs.iter().map(|r| r["id"].as_str().unwrap()).collect();
        let sorted = ids.clone();
        ids.sort_unstable();
        assert_eq!(ids, sorted, "key order");
    }

    #[tokio::test]
    async fn keyset_pages_walk_the_data_once_and_the_last_page_says_so() {
        let source = SqliteSource::new(config(database(25)));
        let plan = plan();
        let q = ClientQuery::from_pairs([("order", "reading.desc"), ("district", "eq.Huangpu")]).unwrap();
        let mut after = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let fetch = Fetch {
                limit: 5,
                plan: Some(&plan),
                query: Some(&q),
                after: after.clone(),
                ..Fetch::default()
            };
            let (recs, _, end) = page(&source, &fetch, Some(&q)).await;
            seen.extend(recs.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
            match end {
                PageEnd::After(v) => {
                    assert_eq!(recs.len(), 5, "a page with a next page is full");
                    let last = recs.last().unwrap();
                    assert_eq!(
                        v,
                        vec![
                            Some(format!("{}", last["reading"])),
                            Some(last["id"].as_str().unwrap().into())
                        ]
                    );
                    after = Some(v);
                }
                PageEnd::Last => break,
                PageEnd::Unknown => panic!("SQLite knows"),
            }
        }
        // 13 of the 25 rows are in Huangpu: pages of 5, 5, 3, the last one says so.
        assert_eq!(seen.len(), 13, "{seen:?}");
        let want: Vec<String> = (0..25)
            .rev()
            .filter(|i| i % 2 == 0)
            .map(|i| format!("M{i:05}"))
            .collect();
        assert_eq!(seen, want, "by reading descending, each row once");
    }

    #[tokio::test]
    async fn decimals_and_dates_are_read_as_their_text_and_compared_as_their_type() {
        let path = database(0);
        let c = Connection::open(&path).unwrap();
        // Digits of a decimal survive only as text in SQLite.
        c.execute_batch(
            "CREATE TABLE dated (id TEXT PRIMARY KEY, amount TEXT, day TEXT, at TEXT);
             INSERT INTO dated VALUES ('a', '10.50', '2025-07-01', '2025-07-01 00:30:00'),
               ('b', '9.99', '2025-06-30', '2025-06-30 23:59:59'), ('c', '100.00', NULL, NULL),
               ('d', NULL, '2025-12-31', '2025-12-31 00:00:00');",
        )
        .unwrap();
        let mut config = config(path);
        config.table = crate::sqltest::dated_table("dated");
        crate::sqltest::decimals_and_dates_behave(&SqliteSource::new(config)).await;
    }

    /// SQLite reads a double-quoted name that is no column as a string literal unless told
    /// not to: a misdeclared column must fail, never compare a constant (`"distrct" <> 'x'`
    /// would hold for every row and widen a row filter).
    #[tokio::test]
    async fn a_declared_column_the_table_lacks_is_an_error_not_a_literal() {
        let mut c = config(database(3));
        c.table.columns.insert("distrct".into(), DeclaredType::Text);
        let source = SqliteSource::new(c);
        let plan = plan();
        let rf = sluice_policy::rowfilter::RowFilter::parse("distrct != 'Pudong'").unwrap();
        let fetch = Fetch {
            limit: 10,
            plan: Some(&plan),
            row_filter: Some(&rf),
            ..Fetch::default()
        };
        let e = source.fetch(&fetch).await.unwrap_err();
        assert!(
            matches!(e, FetchError::Source(ref m) if m.contains("distrct")),
            "{e}"
        );
        assert!(source.check().await.unwrap_err().contains("distrct"));
    }

    #[tokio::test]
    async fn a_blob_a_missing_table_and_writes_fail_closed() {
        let path = database(3);
        let mut c = config(path.clone());
        c.table.columns.insert("photo".into(), DeclaredType::Text);
        let source = SqliteSource::new(c);
        let mut plan = plan();
        plan.fields.push(PlannedField {
            name: "photo".into(),
            action: FieldAction::Emit { scan: false },
        });
        let w = Connection::open(&path).unwrap();
        w.execute("UPDATE meters SET photo = x'00ff' WHERE id = 'M00001'", [])
            .unwrap();
        let fetch = Fetch {
            limit: 10,
            plan: Some(&plan),
            ..Fetch::default()
        };
        let SourceData::Rows(mut rows) = source.fetch(&fetch).await.unwrap() else {
            panic!()
        };
        let first = std::future::poll_fn(|cx| rows.batches.as_mut().poll_next(cx))
            .await
            .unwrap();
        assert!(first.unwrap_err().0.contains("blob"));

        let mut c = config(path.clone());
        c.table.name = "nope".into();
        let e = SqliteSource::new(c).fetch(&fetch).await.unwrap_err();
        assert!(
            matches!(e, FetchError::Source(ref m) if m.contains("nope")),
            "{e}"
        );

        let ro = open(&path).unwrap();
        assert!(ro.execute("DELETE FROM meters", []).is_err(), "read-only");
    }

    #[tokio::test]
    async fn a_statement_past_its_timeout_is_interrupted() {
        let mut c = config(database(1));
        c.statement_timeout_ms = 50;
        // A view that never ends: a recursive counter.
        let w = Connection::open(&c.path).unwrap();
        w.execute_batch(
            "CREATE VIEW forever AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
             SELECT printf('K%d', i) AS id FROM n WHERE i < 0",
        )
        .unwrap();
        c.table.name = "forever".into();
        c.table.columns = [("id".to_owned(), DeclaredType::Text)].into_iter().collect();
        let source = SqliteSource::new(c);
        let plan = FieldPlan {
            record_key: None,
            marks: None,
            fields: vec![PlannedField {
                name: "id".into(),
                action: FieldAction::Emit { scan: false },
            }],
            row_filter: None,
            key: PseudonymKey::derive(b"m", "l", "d"),
        };
        let fetch = Fetch {
            limit: 1,
            plan: Some(&plan),
            ..Fetch::default()
        };
        let started = Instant::now();
        // The page's end probe runs first and is the statement interrupted.
        let e = source.fetch(&fetch).await.unwrap_err();
        assert!(
            matches!(e, FetchError::Source(ref m) if m.contains("interrupt")),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

//! The MySQL / MariaDB connector (sqlx): a pool of connections, one parameterised `SELECT` per
//! fetch from [`TableConfig::select`], run after the page's end probe in one
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY` (REPEATABLE READ: the same snapshot).
//!
//! Each connection is set up once (`after_connect`): `SET NAMES utf8mb4` (the statement
//! builder's byte compares assume it), `REPEATABLE READ` and `READ ONLY` for its transactions,
//! the statement timeout (`max_statement_time` on MariaDB, `max_execution_time` on MySQL), and
//! `net_write_timeout` at least as long as the statement timeout. The server waits that long
//! for a client that stops reading a result before it drops the connection; the gateway's own
//! write-stall watch (30 s) aborts first, and the client then sees its response end in an
//! error frame, as for any source that fails mid-page.
//!
//! sqlx's row stream borrows its connection, so the page is read by a spawned task that owns
//! the pooled connection and hands [`RowBatch`]es over through a channel of two (back-pressure
//! to the socket). The connection goes back to the pool only after `COMMIT` answered at the
//! end of the page; a page abandoned or failed closes its connection instead, so no pooled
//! connection is ever inside a transaction or part-way through a result.
//!
//! Cells are typed by the server's column type, which must fit the declared type: `varchar` and
//! the `text` types for text; the integer types (unsigned up to `i64::MAX`) for integers;
//! `float`, `double`; `boolean` / `tinyint` holding 0 or 1 for booleans. Anything else
//! (`decimal`, `char(n)`, binary strings, dates, …) fails closed, naming the column.

use crate::secret::Password;
use crate::source::AggregateFetch;
use crate::source::{BodyError, BoxFuture, Connector, Fetch, FetchError, PageEnd, RowStream, SourceData};
use crate::sql::{Dialect, SqlParam, Table};
use crate::sql_aggregate::{base_table, build_aggregate, cell_of, float_text, AggregateSelect};
use crate::table::{
    cursor_text, default_read_timeout, default_statement_timeout, CursorCell, DeclaredType, TableConfig,
    BATCH_BYTES, BATCH_ROWS,
};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use sluice_policy::aggregate::{BaseRow, BaseTable};
use sluice_policy::stream::{InputFormat, RowBatch};
use sqlx::mysql::{MySqlArguments, MySqlConnectOptions, MySqlPoolOptions, MySqlRow};
use sqlx::pool::PoolConnection;
use sqlx::{Column as _, Executor as _, MySql, MySqlPool, Row as _, TypeInfo as _};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// A dataset read from a MySQL or MariaDB table or view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSourceConfig {
    /// Connection URL without a password: `mysql://sluice@127.0.0.1:3306/registry`.
    pub url: String,
    /// The password, from a file or an environment variable.
    #[serde(default)]
    pub password: Option<Password>,
    /// The table or view, its key and its columns.
    pub table: TableConfig,
    /// Longest a statement may run, ms (MariaDB counts it in whole milliseconds, MySQL only for
    /// `SELECT`s, which is all this connector runs).
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_ms: u64,
    /// Longest wait for the next rows, ms.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
    /// Most open connections.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// Longest wait to connect (and for a free pooled connection), ms.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
}

fn default_pool_size() -> u32 {
    8
}

fn default_connect_timeout() -> u64 {
    5_000
}

impl MysqlSourceConfig {
    /// Problems with the config, as (relative path, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .table
            .validate()
            .into_iter()
            .map(|(p, m)| (format!("table.{p}"), m))
            .collect();
        match url::Url::parse(&self.url) {
            Ok(u) if u.password().is_some() => out.push((
                "url".into(),
                "must not hold a password: give password = { file = \"…\" } or { env = \"…\" }".into(),
            )),
            Ok(u) if !matches!(u.scheme(), "mysql" | "mariadb") => {
                out.push(("url".into(), "must be a mysql:// URL".into()));
            }
            Ok(_) => {
                if let Err(e) = MySqlConnectOptions::from_str(&self.url) {
                    out.push(("url".into(), format!("not a MySQL URL: {e}")));
                }
            }
            Err(e) => out.push(("url".into(), format!("not a URL: {e}"))),
        }
        if let Some(Err(e)) = self.password.as_ref().map(Password::load) {
            out.push(("password".into(), e.to_string()));
        }
        if self.statement_timeout_ms == 0 || self.read_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            out.push(("statement_timeout_ms".into(), "timeouts must be positive".into()));
        }
        if self.pool_size == 0 {
            out.push(("pool_size".into(), "must be positive".into()));
        }
        out
    }

    /// Makes a relative password file relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        if let Some(p) = &mut self.password {
            p.resolve_paths(base);
        }
    }

    /// The pool (it connects on demand; needs a runtime).
    fn pool(&self) -> Result<MySqlPool, String> {
        if url::Url::parse(&self.url).is_ok_and(|u| u.password().is_some()) {
            return Err("url: must not hold a password".into());
        }
        let mut options = MySqlConnectOptions::from_str(&self.url)
            .map_err(|e| format!("url: {e}"))?
            .charset("utf8mb4");
        if let Some(p) = &self.password {
            options = options.password(&p.load().map_err(|e| format!("password: {e}"))?);
        }
        let ms = self.statement_timeout_ms;
        // Whole seconds, at least the statement timeout.
        let write_s = ms.div_ceil(1_000).max(1);
        let setup = Arc::new(format!(
            "SET NAMES utf8mb4, SESSION net_write_timeout = GREATEST(@@net_write_timeout, {write_s}); \
             SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; SET SESSION TRANSACTION READ ONLY; \
             SET SESSION time_zone = '+00:00'"
        ));
        let connect = Duration::from_millis(self.connect_timeout_ms);
        Ok(MySqlPoolOptions::new()
            .max_connections(self.pool_size.max(1))
            .min_connections(0)
            .acquire_timeout(connect)
            .after_connect(move |conn, _| {
                let setup = setup.clone();
                Box::pin(async move {
                    conn.execute(setup.as_str()).await?;
                    // MariaDB's statement timeout is in seconds (fractions allowed), MySQL's in ms.
                    let mariadb = format!(
                        "SET SESSION max_statement_time = {}.{:03}",
                        ms / 1_000,
                        ms % 1_000
                    );
                    if conn.execute(mariadb.as_str()).await.is_err() {
                        conn.execute(format!("SET SESSION max_execution_time = {ms}").as_str())
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options))
    }
}

/// A MySQL or MariaDB source.
#[derive(Debug)]
pub struct MysqlSource {
    config: MysqlSourceConfig,
    table: Table,
    /// The pool, made at the first fetch (inside the runtime), or why there is none.
    pool: OnceLock<Result<MySqlPool, String>>,
}

impl MysqlSource {
    /// The connector for `config` (it connects, and reads the password, at the first fetch).
    pub fn new(config: MysqlSourceConfig) -> Self {
        Self {
            table: config.table.table(),
            config,
            pool: OnceLock::new(),
        }
    }
}

/// The query with its bind values.
fn bind<'q>(sql: &'q str, params: &'q [SqlParam]) -> sqlx::query::Query<'q, MySql, MySqlArguments> {
    params.iter().fold(sqlx::query(sql), |q, p| match p {
        SqlParam::Text(t) | SqlParam::Decimal(t) => q.bind(t.as_str()),
        SqlParam::Integer(i) => q.bind(*i),
        SqlParam::Float(f) => q.bind(*f),
        SqlParam::Bool(b) => q.bind(*b),
    })
}

/// A server error's message, or the client error.
fn my_error(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(db) => match db.code() {
            Some(c) => format!("{} ({c})", db.message()),
            None => db.message().to_owned(),
        },
        None => e.to_string(),
    }
}

impl Connector for MysqlSource {
    fn input_format(&self) -> InputFormat {
        InputFormat::Rows
    }

    fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.config.read_timeout_ms)
    }

    fn paging(&self) -> crate::source::Paging {
        crate::source::Paging::Key
    }

    fn pool_status(&self) -> Option<crate::source::PoolStatus> {
        let pool = self.pool.get()?.as_ref().ok()?;
        Some(crate::source::PoolStatus {
            max: self.config.pool_size as usize,
            open: pool.size() as usize,
            idle: pool.num_idle(),
        })
    }

    fn check(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(self.config.table.check(self))
    }

    /// Groups in MySQL or MariaDB ([`crate::sql_aggregate`]); `None` when the licence's row
    /// filter cannot be written in SQL.
    fn aggregate<'a>(
        &'a self,
        req: &'a AggregateFetch<'a>,
    ) -> Option<BoxFuture<'a, Result<BaseTable, FetchError>>> {
        let select = match build_aggregate(Dialect::MySql, &self.table, req) {
            Err(e) if e.streams_instead() => return None,
            s => s,
        };
        Some(Box::pin(async move { self.run_aggregate(req, select?).await }))
    }

    fn fetch<'a>(&'a self, fetch: &'a Fetch<'a>) -> BoxFuture<'a, Result<SourceData, FetchError>> {
        Box::pin(async move {
            let select = self.config.table.select(&self.table, Dialect::MySql, fetch)?;
            let probe = self.config.table.probe(&self.table, Dialect::MySql, fetch)?;
            let types: Vec<Option<DeclaredType>> = self.config.table.types_of(&select.columns);
            let probe_types: Vec<Option<DeclaredType>> = self.config.table.types_of(&probe.columns);
            let (mut conn, limit) = self.checkout().await?;
            let start = async {
                let c = conn.get().ok_or_else(|| "no connection".to_owned())?;
                c.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    .await
                    .map_err(|e| my_error(&e))?;
                let rows = bind(&probe.sql, &probe.params)
                    .fetch_all(&mut **c)
                    .await
                    .map_err(|e| my_error(&e))?;
                page_end(&rows, &probe.columns, &probe_types)
            };
            let end = tokio::time::timeout(limit, start)
                .await
                .map_err(|_| FetchError::Timeout(limit))?
                .map_err(|e| FetchError::Source(format!("mysql: {e}")))?;
            let columns: Arc<[String]> = select.columns.into();
            let (tx, rx) = mpsc::channel(2);
            let reader = Reader {
                sql: select.sql,
                params: select.params,
                types,
                names: columns.clone(),
            };
            tokio::spawn(reader.run(conn, tx));
            Ok(SourceData::Rows(RowStream {
                columns,
                batches: Box::pin(Batches(rx)),
                end,
            }))
        })
    }
}

impl MysqlSource {
    /// A pooled connection, and the bound on connecting plus a statement (the caller's
    /// transaction and first answer share it). The pool is made at the first use.
    async fn checkout(&self) -> Result<(Conn, Duration), FetchError> {
        let pool = self
            .pool
            .get_or_init(|| self.config.pool())
            .as_ref()
            .map_err(|e| FetchError::Source(e.clone()))?;
        let limit = Duration::from_millis(
            self.config
                .connect_timeout_ms
                .saturating_add(self.config.statement_timeout_ms),
        );
        let conn = tokio::time::timeout(limit, pool.acquire())
            .await
            .map_err(|_| FetchError::Timeout(limit))?
            .map_err(|e| FetchError::Unreachable(format!("mysql: {}", my_error(&e))))?;
        Ok((Conn(Some(conn)), limit))
    }

    /// Runs an aggregate push-down ([`build_aggregate`]) in one read-only transaction, under
    /// the same timeouts as a fetch.
    async fn run_aggregate(
        &self,
        req: &AggregateFetch<'_>,
        select: AggregateSelect,
    ) -> Result<BaseTable, FetchError> {
        let types: Vec<Option<DeclaredType>> = select
            .groups
            .iter()
            .map(|c| self.config.table.type_of(&c.name))
            .collect();
        let (mut conn, limit) = self.checkout().await?;
        let run = async {
            let c = conn.get().ok_or_else(|| "no connection".to_owned())?;
            c.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await
                .map_err(|e| my_error(&e))?;
            let rows = bind(&select.sql, &select.params)
                .fetch_all(&mut **c)
                .await
                .map_err(|e| my_error(&e))?;
            c.execute("COMMIT").await.map_err(|e| my_error(&e))?;
            Ok::<_, String>(rows)
        };
        let rows = tokio::time::timeout(limit, run)
            .await
            .map_err(|_| FetchError::Timeout(limit))?
            .map_err(|e| FetchError::Source(format!("mysql: {e}")))?;
        conn.release();
        tracing::debug!(
            request_id = req.request_id,
            rows = rows.len(),
            "aggregate push-down"
        );
        let n = select.groups.len();
        let base_rows = rows
            .iter()
            .map(|row| {
                let key = (0..n)
                    .map(|i| group_text(row, i, types.get(i).copied().flatten(), &select.groups[i].name))
                    .collect::<Result<Vec<_>, _>>()?;
                let get = |i: usize| -> Result<i64, FetchError> {
                    row.try_get::<i64, _>(i)
                        .map_err(|e| FetchError::Source(format!("mysql: count: {e}")))
                };
                let text = |i: usize| -> Result<Option<String>, FetchError> {
                    row.try_get::<Option<String>, _>(i)
                        .map_err(|e| FetchError::Source(format!("mysql: aggregate: {e}")))
                };
                let cell = if select.measured {
                    let (sum, min, max) = (text(n + 2)?, text(n + 3)?, text(n + 4)?);
                    cell_of(
                        get(n)?,
                        get(n + 1)?,
                        sum.as_deref(),
                        min.as_deref(),
                        max.as_deref(),
                    )?
                } else {
                    cell_of(get(n)?, 0, None, None, None)?
                };
                Ok(BaseRow { key, cell })
            })
            .collect::<Result<Vec<_>, FetchError>>()?;
        base_table(&select, req.plan, base_rows)
    }
}

/// A group value as the masker would write it: text grouped by its bytes (selected as
/// binary), decimals and dates as their text, other cells read as a fetch reads them.
fn group_text(
    row: &MySqlRow,
    i: usize,
    declared: Option<DeclaredType>,
    name: &str,
) -> Result<Option<String>, FetchError> {
    let err = |e: String| FetchError::Source(format!("mysql: column {name:?}: {e}"));
    match declared {
        Some(DeclaredType::Text) => row
            .try_get::<Option<Vec<u8>>, _>(i)
            .map_err(|e| err(e.to_string()))?
            .map(|b| String::from_utf8(b).map_err(|_| err("text that is not UTF-8".into())))
            .transpose(),
        Some(DeclaredType::Decimal | DeclaredType::Date | DeclaredType::Timestamp) => row
            .try_get::<Option<String>, _>(i)
            .map_err(|e| err(e.to_string())),
        _ => {
            let t = row
                .columns()
                .get(i)
                .map_or("?", |c| c.type_info().name())
                .to_owned();
            let kind = kind_of(&t, declared)
                .ok_or_else(|| err(format!("type {t} cannot be read as declared ({declared:?})")))?;
            Ok(match cell(row, i, kind).map_err(err)? {
                Cell::Float(f) => float_text(f),
                c => cursor_text(c.as_cursor()),
            })
        }
    }
}

/// A pooled connection that goes back to the pool only when [`Conn::release`]d after its
/// transaction ended; dropped otherwise, it is closed instead.
struct Conn(Option<PoolConnection<MySql>>);

impl Conn {
    fn get(&mut self) -> Option<&mut PoolConnection<MySql>> {
        self.0.as_mut()
    }

    /// Back to the pool: the transaction ended cleanly.
    fn release(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            c.close_on_drop();
        }
    }
}

/// Where the page ends, from the probe's rows.
fn page_end(
    rows: &[MySqlRow],
    columns: &[String],
    types: &[Option<DeclaredType>],
) -> Result<PageEnd, String> {
    let (2, Some(row)) = (rows.len(), rows.first()) else {
        return Ok(PageEnd::Last);
    };
    let kinds = kinds(row, columns, types)?;
    let mut values = Vec::with_capacity(kinds.len());
    for (i, kind) in kinds.iter().enumerate() {
        let name = columns.get(i).map_or("?", String::as_str);
        let v = match kind {
            Kind::Text | Kind::Decimal => row
                .try_get::<Option<&str>, _>(i)
                .map(|t| cursor_text(t.map_or(CursorCell::Null, CursorCell::Text)))
                .map_err(|e| e.to_string()),
            _ => cell(row, i, *kind).map(|c| cursor_text(c.as_cursor())),
        };
        values.push(v.map_err(|e| format!("column {name:?}: {e}"))?);
    }
    Ok(PageEnd::After(values))
}

/// How a column's cells are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Unsigned,
    Float4,
    Float8,
    Bool,
    /// A decimal selected as text (`CAST(… AS CHAR)`).
    Decimal,
}

/// A server type (sqlx's name for it) that fits the declared type, and how to read it.
fn kind_of(type_name: &str, declared: Option<DeclaredType>) -> Option<Kind> {
    Some(match (declared?, type_name) {
        (DeclaredType::Text, "VARCHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT") => Kind::Text,
        // Decimals and dates are selected as their text (`CAST(… AS CHAR)`).
        (DeclaredType::Date | DeclaredType::Timestamp, "VARCHAR" | "CHAR" | "TEXT" | "LONGTEXT") => {
            Kind::Text
        }
        (DeclaredType::Decimal, "VARCHAR" | "CHAR" | "TEXT" | "LONGTEXT") => Kind::Decimal,
        (DeclaredType::Integer, "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "BOOLEAN") => {
            Kind::Int
        }
        (
            DeclaredType::Integer,
            "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
            | "BIGINT UNSIGNED",
        ) => Kind::Unsigned,
        (DeclaredType::Float, "FLOAT") => Kind::Float4,
        (DeclaredType::Float, "DOUBLE") => Kind::Float8,
        (DeclaredType::Bool, "BOOLEAN" | "TINYINT") => Kind::Bool,
        _ => return None,
    })
}

/// The read kind of each of `row`'s columns, checked against the declared types.
fn kinds(row: &MySqlRow, names: &[String], types: &[Option<DeclaredType>]) -> Result<Vec<Kind>, String> {
    if row.columns().len() != types.len() {
        return Err(format!(
            "{} columns, {} expected",
            row.columns().len(),
            types.len()
        ));
    }
    row.columns()
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (c, ty))| {
            let t = c.type_info().name();
            kind_of(t, *ty).ok_or_else(|| {
                let name = names.get(i).map_or("?", String::as_str);
                format!("column {name:?} has type {t}, which cannot be read as declared ({ty:?})")
            })
        })
        .collect()
}

/// A non-text cell.
enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Cell {
    fn as_cursor(&self) -> CursorCell<'static> {
        match *self {
            Self::Null => CursorCell::Null,
            Self::Int(i) => CursorCell::Int(i),
            Self::Float(f) => CursorCell::Float(f),
            Self::Bool(b) => CursorCell::Bool(b),
        }
    }
}

fn cell(row: &MySqlRow, i: usize, kind: Kind) -> Result<Cell, String> {
    let c = |o: Option<Cell>| o.unwrap_or(Cell::Null);
    let e = |e: sqlx::Error| e.to_string();
    Ok(match kind {
        Kind::Int => c(row.try_get::<Option<i64>, _>(i).map_err(e)?.map(Cell::Int)),
        Kind::Unsigned => match row.try_get::<Option<u64>, _>(i).map_err(e)? {
            Some(u) => {
                Cell::Int(i64::try_from(u).map_err(|_| format!("{u} is beyond a 64-bit signed integer"))?)
            }
            None => Cell::Null,
        },
        Kind::Float4 => c(row
            .try_get::<Option<f32>, _>(i)
            .map_err(e)?
            .map(|f| Cell::Float(f.into()))),
        Kind::Float8 => c(row.try_get::<Option<f64>, _>(i).map_err(e)?.map(Cell::Float)),
        Kind::Bool => match row.try_get::<Option<i64>, _>(i).map_err(e)? {
            Some(0) => Cell::Bool(false),
            Some(1) => Cell::Bool(true),
            Some(n) => return Err(format!("{n} is not a boolean (0 or 1)")),
            None => Cell::Null,
        },
        Kind::Text | Kind::Decimal => Cell::Null,
    })
}

/// The receiving end of a reader task, as a stream of batches.
struct Batches(mpsc::Receiver<Result<RowBatch, BodyError>>);

impl futures_core::Stream for Batches {
    type Item = Result<RowBatch, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// The page's statement, read by a spawned task.
struct Reader {
    sql: String,
    params: Vec<SqlParam>,
    types: Vec<Option<DeclaredType>>,
    names: Arc<[String]>,
}

impl Reader {
    /// Streams the page into `tx`, then ends the transaction; the connection goes back to the
    /// pool only if every row was read and `COMMIT` answered.
    async fn run(self, mut conn: Conn, tx: mpsc::Sender<Result<RowBatch, BodyError>>) {
        if self.stream(&mut conn, &tx).await {
            if let Some(c) = conn.get() {
                if c.execute("COMMIT").await.is_ok() {
                    conn.release();
                }
            }
        }
    }

    /// Sends the page's rows; whether they were all read.
    async fn stream(&self, conn: &mut Conn, tx: &mpsc::Sender<Result<RowBatch, BodyError>>) -> bool {
        let Some(c) = conn.get() else { return false };
        let fail = |m: String| Err(BodyError(format!("mysql: {m}")));
        let mut rows = bind(&self.sql, &self.params).fetch(&mut **c);
        let width = self.types.len();
        let mut batch = RowBatch::new(width);
        let mut kinds: Vec<Kind> = Vec::new();
        while let Some(row) = rows.next().await {
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(fail(my_error(&e))).await;
                    return false;
                }
            };
            if kinds.is_empty() {
                match self::kinds(&row, &self.names, &self.types) {
                    Ok(k) => kinds = k,
                    Err(e) => {
                        let _ = tx.send(fail(e)).await;
                        return false;
                    }
                }
            }
            if let Err(e) = self.push(&mut batch, &row, &kinds) {
                let _ = tx.send(fail(e)).await;
                return false;
            }
            if batch.rows() >= BATCH_ROWS || batch.bytes() >= BATCH_BYTES {
                let full = std::mem::replace(&mut batch, RowBatch::new(width));
                if tx.send(Ok(full)).await.is_err() {
                    // The consumer went away: stop reading (the connection is closed).
                    return false;
                }
            }
        }
        drop(rows);
        batch.is_empty() || tx.send(Ok(batch)).await.is_ok()
    }

    fn push(&self, batch: &mut RowBatch, row: &MySqlRow, kinds: &[Kind]) -> Result<(), String> {
        for (i, kind) in kinds.iter().enumerate() {
            let name = || self.names.get(i).map_or("?", String::as_str).to_owned();
            match kind {
                Kind::Text => match row.try_get::<Option<&str>, _>(i) {
                    Ok(Some(t)) => batch.push_text(t),
                    Ok(None) => batch.push_null(),
                    Err(e) => return Err(format!("column {:?}: {e}", name())),
                },
                Kind::Decimal => match row.try_get::<Option<&str>, _>(i) {
                    Ok(Some(t)) => batch
                        .push_number(t)
                        .map_err(|e| format!("column {:?}: {e}", name()))?,
                    Ok(None) => batch.push_null(),
                    Err(e) => return Err(format!("column {:?}: {e}", name())),
                },
                _ => match cell(row, i, *kind).map_err(|e| format!("column {:?}: {e}", name()))? {
                    Cell::Null => batch.push_null(),
                    Cell::Int(v) => batch.push_int(v),
                    Cell::Float(v) => batch.push_float(v),
                    Cell::Bool(v) => batch.push_bool(v),
                },
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::sqltest::{meters, page, plan, pushdown_matches_the_masker, table, table_name};
    use crate::SourceConfig;
    use sluice_policy::plan::FieldPlan;
    use sluice_policy::query::ClientQuery;
    use sqlx::Connection as _;
    use std::time::Instant;

    const URL: &str = "mysql://root@127.0.0.1:3306/test";

    async fn admin() -> sqlx::MySqlConnection {
        sqlx::MySqlConnection::connect(URL).await.unwrap()
    }

    /// A fresh table of `n` register rows; its name.
    async fn register(c: &mut sqlx::MySqlConnection, n: i64) -> String {
        let name = table_name("sluice_my");
        c.execute(
            format!(
                "CREATE TABLE {name} (id varchar(16) PRIMARY KEY, district varchar(64), reading double, \
                 active boolean, age int, owner_id text NOT NULL) CHARACTER SET utf8mb4"
            )
            .as_str(),
        )
        .await
        .unwrap();
        for chunk in meters(n).chunks(500) {
            let values = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!("INSERT INTO {name} VALUES {values}");
            let q = chunk.iter().fold(sqlx::query(&sql), |q, m| {
                q.bind(&m.0).bind(&m.1).bind(m.2).bind(m.3).bind(m.4).bind(&m.5)
            });
            q.execute(&mut *c).await.unwrap();
        }
        name
    }

    async fn drop_table(c: &mut sqlx::MySqlConnection, name: &str) {
        c.execute(format!("DROP TABLE {name}").as_str()).await.unwrap();
    }

    fn config(name: &str) -> MysqlSourceConfig {
        MysqlSourceConfig {
            url: URL.into(),
            password: None,
            table: table(name),
            statement_timeout_ms: 5_000,
            read_timeout_ms: 5_000,
            pool_size: 2,
            connect_timeout_ms: 2_000,
        }
    }

    #[tokio::test]
    async fn rows_stream_typed_masked_filtered_and_in_key_order() {
        let mut admin = admin().await;
        let name = register(&mut admin, 2_000).await;
        let source = MysqlSource::new(config(&name));
        let plan = plan();
        let all = Fetch {
            limit: 5_000,
            plan: Some(&plan),
            ..Fetch::default()
        };
        let (recs, batches, end) = page(&source, &all, None).await;
        assert_eq!((recs.len(), end), (2_000, PageEnd::Last));
        assert!(batches >= 4, "rows arrive in several batches: {batches}");
        let first = &recs[1];
        assert_eq!(first["id"], "M00001");
        assert_eq!(first["district"], "Xuhui");
        assert_eq!(first["reading"], 0.25);
        assert_eq!(first["active"], false);
        assert_eq!(first["age"], 1);
        assert_eq!(recs[3]["reading"], serde_json::Value::Null);
        assert_eq!(recs[0]["active"], true);
        assert_eq!(recs[8]["district"], "Zürich");
        let owner = first["owner_id"].as_str().unwrap();
        assert!(!owner.starts_with("3101"), "pseudonymised: {owner}");

        let q = ClientQuery::from_pairs([("district", "eq.Xuhui")]).unwrap();
        let fetch = Fetch {
            limit: 1_500,
            plan: Some(&plan),
            query: Some(&q),
            ..Fetch::default()
        };
        let (recs, _, _) = page(&source, &fetch, None).await;
        let want = meters(2_000)
            .iter()
            .filter(|m| m.1.as_deref() == Some("Xuhui"))
            .count();
        assert_eq!(
            recs.len(),
            want,
            "the filter ran in SQL, by bytes (not case or pad blind)"
        );
        assert!(recs.iter().all(|r| r["district"] == "Xuhui"));
        let ids: Vec<&str> = recs.iter().map(|r| r["id"].as_str().unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "key order");
        drop_table(&mut admin, &name).await;
    }

    #[tokio::test]
    async fn keyset_pages_walk_the_data_once_and_the_last_page_says_so() {
        let mut admin = admin().await;
        let name = register(&mut admin, 60).await;
        let source = MysqlSource::new(config(&name));
        let plan = plan();
        let q = ClientQuery::from_pairs([("order", "reading.desc"), ("district", "not.eq.Xuhui")]).unwrap();
        let whole = Fetch {
            limit: 1_000,
            plan: Some(&plan),
            query: Some(&q),
            ..Fetch::default()
        };
        let (want, _, _) = page(&source, &whole, None).await;
        let mut after = None;
        let mut seen = Vec::new();
        let mut last = false;
        for _ in 0..20 {
            let fetch = Fetch {
                limit: 7,
                plan: Some(&plan),
                query: Some(&q),
                after: after.clone(),
                ..Fetch::default()
            };
            let (recs, _, end) = page(&source, &fetch, None).await;
            seen.extend(recs.iter().cloned());
            match end {
                PageEnd::After(v) => {
                    assert_eq!(recs.len(), 7, "a page with a next page is full");
                    let r = recs.last().unwrap();
                    let reading = (!r["reading"].is_null()).then(|| format!("{}", r["reading"]));
                    assert_eq!(v, vec![reading, Some(r["id"].as_str().unwrap().into())]);
                    after = Some(v);
                }
                PageEnd::Last => {
                    last = true;
                    break;
                }
                PageEnd::Unknown => panic!("MySQL knows"),
            }
        }
        assert!(last);
        assert_eq!(seen, want, "each row once, in order, nulls included");
        drop_table(&mut admin, &name).await;
    }

    #[tokio::test]
    async fn every_operator_matches_the_masker_and_injection_is_inert() {
        let mut admin = admin().await;
        let name = register(&mut admin, 120).await;
        let source = MysqlSource::new(config(&name));
        pushdown_matches_the_masker(&source, 120).await;
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {name}"))
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(n, 120, "the table is still there, whole");
        drop_table(&mut admin, &name).await;
    }

    #[tokio::test]
    async fn sessions_are_read_only_and_only_clean_connections_are_pooled() {
        let mut admin = admin().await;
        let name = register(&mut admin, 2_000).await;
        let source = MysqlSource::new(config(&name));
        let plan = plan();
        let fetch = Fetch {
            limit: 5_000,
            plan: Some(&plan),
            ..Fetch::default()
        };
        page(&source, &fetch, None).await;
        let pool = source.pool.get().unwrap().as_ref().unwrap().clone();
        // The reader task commits after the last batch, and sqlx returns a connection to the
        // pool in a task of its own: give them a moment.
        let idle = || async {
            for _ in 0..100 {
                if pool.num_idle() == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        idle().await;
        assert_eq!((pool.size(), pool.num_idle()), (1, 1), "the connection came back");
        {
            let mut c = pool.acquire().await.unwrap();
            let (names, in_tx): (String, i64) = sqlx::query_as(
                "SELECT @@character_set_connection, (SELECT count(*) FROM information_schema.innodb_trx \
                 WHERE trx_mysql_thread_id = CONNECTION_ID())",
            )
            .fetch_one(&mut *c)
            .await
            .unwrap();
            assert_eq!(
                (names.as_str(), in_tx),
                ("utf8mb4", 0),
                "utf8mb4, no open transaction"
            );
            // The session's transactions are read-only, autocommitted statements included.
            let e = c
                .execute(format!("DELETE FROM {name}").as_str())
                .await
                .unwrap_err();
            assert!(my_error(&e).contains("READ ONLY"), "{e}");
            c.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await
                .unwrap();
            let e = c
                .execute(format!("UPDATE {name} SET age = 0").as_str())
                .await
                .unwrap_err();
            assert!(my_error(&e).contains("READ ONLY"), "{e}");
            c.execute("ROLLBACK").await.unwrap();
        }
        idle().await;
        assert_eq!((pool.size(), pool.num_idle()), (1, 1));
        // A page dropped part-way closes its connection instead of pooling it.
        let SourceData::Rows(mut rows) = source.fetch(&fetch).await.unwrap() else {
            panic!()
        };
        let first = std::future::poll_fn(|cx| rows.batches.as_mut().poll_next(cx)).await;
        assert!(first.unwrap().is_ok());
        drop(rows);
        for _ in 0..100 {
            if pool.size() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(pool.size(), 0, "closed, not pooled");
        // A type that does not fit its declaration fails closed, naming the column.
        let mut c = config(&name);
        c.table.columns.insert("age".into(), DeclaredType::Text);
        let source = MysqlSource::new(c);
        let SourceData::Rows(mut rows) = source.fetch(&fetch).await.unwrap() else {
            panic!()
        };
        let first = std::future::poll_fn(|cx| rows.batches.as_mut().poll_next(cx)).await;
        let e = first.unwrap().unwrap_err();
        assert!(e.0.contains("\"age\"") && e.0.contains("INT"), "{e}");
        // A missing table fails before the page starts.
        let mut c = config(&name);
        c.table.name = "sluice_nope".into();
        let e = MysqlSource::new(c).fetch(&fetch).await.unwrap_err();
        assert!(
            matches!(e, FetchError::Source(ref m) if m.contains("sluice_nope")),
            "{e}"
        );
        drop_table(&mut admin, &name).await;
    }

    #[tokio::test]
    async fn decimals_and_dates_are_read_as_their_text_and_compared_as_their_type() {
        let mut admin = admin().await;
        let name = table_name("sluice_dated");
        admin
            .execute(
                format!(
                    "CREATE TABLE {name} (id varchar(8) PRIMARY KEY, amount decimal(12,2), day date, at datetime) \
                     CHARACTER SET utf8mb4"
                )
                .as_str(),
            )
            .await
            .unwrap();
        admin
            .execute(
                format!(
                    "INSERT INTO {name} VALUES ('a', 10.50, '2025-07-01', '2025-07-01 00:30:00'), \
                     ('b', 9.99, '2025-06-30', '2025-06-30 23:59:59'), ('c', 100.00, NULL, NULL), \
                     ('d', NULL, '2025-12-31', '2025-12-31 00:00:00')"
                )
                .as_str(),
            )
            .await
            .unwrap();
        let mut c = config(&name);
        c.table = crate::sqltest::dated_table(&name);
        crate::sqltest::decimals_and_dates_behave(&MysqlSource::new(c)).await;
        drop_table(&mut admin, &name).await;
    }

    /// A fresh table of `n` observations ([`crate::sqltest::observations`]); its name.
    async fn observations(c: &mut sqlx::MySqlConnection, n: i64) -> String {
        let name = table_name("sluice_my_obs");
        c.execute(
            format!(
                "CREATE TABLE {name} (id varchar(16) PRIMARY KEY, district varchar(64), age int, \
                 level double, active boolean, amount decimal(12,2), note text NOT NULL) \
                 CHARACTER SET utf8mb4"
            )
            .as_str(),
        )
        .await
        .unwrap();
        for chunk in crate::sqltest::observations(n).chunks(200) {
            let values = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!("INSERT INTO {name} VALUES {values}");
            let q = chunk.iter().fold(sqlx::query(&sql), |q, o| {
                q.bind(&o.0)
                    .bind(&o.1)
                    .bind(o.2)
                    .bind(o.3)
                    .bind(o.4)
                    .bind(&o.5)
                    .bind(&o.6)
            });
            q.execute(&mut *c).await.unwrap();
        }
        name
    }

    #[tokio::test]
    async fn aggregate_push_down_equals_streaming() {
        let mut admin = admin().await;
        let name = observations(&mut admin, 600).await;
        let mut c = config(&name);
        c.table = crate::sqltest::obs_table(&name);
        let source = MysqlSource::new(c.clone());
        crate::sqltest::aggregates_match_streaming(&source, &c.table, 600).await;

        // A release against a direct SQL computation over the cells of at least k amounts.
        let k = 11;
        let (released, _) = crate::sqltest::released_sums(&source, k).await;
        let direct: Vec<(Option<Vec<u8>>, i64, String)> = sqlx::query_as(&format!(
            "SELECT d, CAST(SUM(c) AS SIGNED), CAST(SUM(s) AS CHAR) FROM (SELECT CAST(district AS BINARY) \
             AS d, age, COUNT(*) AS c, SUM(amount) AS s FROM {name} GROUP BY 1, 2 \
             HAVING COUNT(amount) >= ?) x GROUP BY d"
        ))
        .bind(i64::from(k))
        .fetch_all(&mut admin)
        .await
        .unwrap();
        let direct = direct
            .into_iter()
            .map(|(d, n, s)| (d.map(|d| String::from_utf8(d).unwrap()), n, s))
            .collect();
        assert_eq!(released, crate::sqltest::direct_sums(direct));
        let kept: u64 = released.iter().map(|c| c.1).sum();
        assert!(!released.is_empty() && kept < 600, "{released:?}");
        drop_table(&mut admin, &name).await;
    }

    #[tokio::test]
    async fn a_statement_past_its_timeout_is_interrupted() {
        let mut admin = admin().await;
        let name = table_name("sluice_my_sleep");
        admin
            .execute(
                format!("CREATE VIEW {name} AS SELECT 'K1' AS id FROM (SELECT SLEEP(10) AS s) x").as_str(),
            )
            .await
            .unwrap();
        let mut c = config(&name);
        c.statement_timeout_ms = 300;
        c.table.columns = [("id".to_owned(), DeclaredType::Text)].into_iter().collect();
        let source = MysqlSource::new(c);
        let plan = FieldPlan {
            record_key: None,
            marks: None,
            fields: plan().fields.into_iter().take(1).collect(),
            ..plan()
        };
        let fetch = Fetch {
            limit: 1,
            plan: Some(&plan),
            ..Fetch::default()
        };
        let started = Instant::now();
        let e = source.fetch(&fetch).await.unwrap_err();
        assert!(
            matches!(e, FetchError::Source(ref m) if m.contains("interrupted") || m.contains("exceeded")),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        admin.execute(format!("DROP VIEW {name}").as_str()).await.unwrap();
    }

    #[tokio::test]
    async fn the_password_comes_from_a_file_or_the_environment_never_the_url() {
        let dir = std::env::temp_dir().join(table_name("sluice-my-pw"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut admin = admin().await;
        let name = register(&mut admin, 3).await;
        // A user of its own with a password and SELECT on the table only.
        let user = table_name("sluice_u");
        admin
            .execute(format!("CREATE USER '{user}'@'%' IDENTIFIED BY 's3cret'").as_str())
            .await
            .unwrap();
        admin
            .execute(format!("GRANT SELECT ON test.{name} TO '{user}'@'%'").as_str())
            .await
            .unwrap();
        let toml = format!(
            "kind = \"mysql\"\nurl = \"mysql://{user}@127.0.0.1:3306/test\"\npassword = {{ file = \"pw\" }}\n\
             [table]\nname = \"{name}\"\nkey = \"id\"\ncolumns = {{ id = \"text\" }}\n"
        );
        let mut s: SourceConfig = toml::from_str(&toml).unwrap();
        s.resolve_paths(&dir);
        let pw = dir.join("pw");
        assert_eq!(
            s.credentials(),
            vec![("password".to_owned(), format!("file {}", pw.display()))]
        );
        let errors = s.validate();
        assert!(
            errors.iter().any(|(p, m)| p == "password" && m.contains("pw")),
            "{errors:?}"
        );
        std::fs::write(&pw, "s3cret\n").unwrap();
        assert_eq!(s.validate(), Vec::<(String, String)>::new());
        let SourceConfig::Mysql(c) = &s else { panic!() };
        let plan = FieldPlan {
            record_key: None,
            marks: None,
            fields: plan().fields.into_iter().take(1).collect(),
            ..plan()
        };
        let fetch = Fetch {
            limit: 10,
            plan: Some(&plan),
            ..Fetch::default()
        };
        assert_eq!(page(&MysqlSource::new(c.clone()), &fetch, None).await.0.len(), 3);
        std::fs::write(&pw, "wrong\n").unwrap();
        let e = MysqlSource::new(c.clone()).fetch(&fetch).await.unwrap_err();
        assert!(
            matches!(e, FetchError::Unreachable(ref m) if m.contains("denied")),
            "{e}"
        );

        let env: SourceConfig =
            toml::from_str(&toml.replace("file = \"pw\"", "env = \"SLUICE_NO_SUCH_PW\"")).unwrap();
        assert_eq!(
            env.credentials(),
            vec![(
                "password".to_owned(),
                "environment variable SLUICE_NO_SUCH_PW".to_owned()
            )]
        );
        assert!(env.validate().iter().any(|(p, _)| p == "password"));
        let inline: SourceConfig =
            toml::from_str(&toml.replace(&format!("{user}@"), &format!("{user}:s3cret@"))).unwrap();
        assert!(inline
            .validate()
            .iter()
            .any(|(p, m)| p == "url" && m.contains("password")));
        admin
            .execute(format!("DROP USER '{user}'@'%'").as_str())
            .await
            .unwrap();
        drop_table(&mut admin, &name).await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

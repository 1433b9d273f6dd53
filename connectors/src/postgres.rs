//! The PostgreSQL connector: a pool of tokio-postgres connections (deadpool), one
//! parameterised `SELECT` per fetch from [`TableConfig::select`], run after the page's end
//! probe in one `REPEATABLE READ READ ONLY` transaction (the same snapshot), with
//! `statement_timeout` and `idle_in_transaction_session_timeout` set for that transaction.
//!
//! The page streams as the server sends it: the [`RowStream`]'s batches poll tokio-postgres's
//! row stream directly (no task, no channel), so back-pressure reaches the socket and the
//! server. A connection goes back to the pool only after its transaction ended cleanly
//! (`COMMIT` answered, after the last row). A page dropped part-way, or that failed, takes its
//! connection out of the pool ([`deadpool_postgres::Object::take`]) and closes it: the server
//! rolls the transaction back and stops sending, and no later fetch can find a connection
//! inside a transaction or with a half-read result in flight. That costs a reconnect after an
//! abandoned page, which is rare, rather than a `ROLLBACK` that would have to wait for the
//! rest of the abandoned result to drain.
//!
//! Cells are typed by the server's column type, which must fit the declared type: `text`,
//! `varchar` and `name` for text; `int2`, `int4`, `int8` for integers; `float4`, `float8` for
//! floats; `bool`. Any other type (`numeric`, `char(n)`, dates, …) fails closed, naming the
//! column. TLS is not supported yet: `sslmode=require` is refused by validation.

use crate::secret::Password;
use crate::source::AggregateFetch;
use crate::source::{BodyError, BoxFuture, Connector, Fetch, FetchError, PageEnd, RowStream, SourceData};
use crate::sql::{Dialect, SqlParam, Table};
use crate::sql_aggregate::{base_table, build_aggregate, cell_of, float_text, AggregateSelect};
use crate::table::{
    cursor_text, default_read_timeout, default_statement_timeout, CursorCell, DeclaredType, TableConfig,
    BATCH_BYTES, BATCH_ROWS,
};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use serde::{Deserialize, Serialize};
use sluice_policy::aggregate::{BaseRow, BaseTable};
use sluice_policy::stream::{InputFormat, RowBatch};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

/// A dataset read from a PostgreSQL table or view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// Connection URL without a password: `postgres://sluice@127.0.0.1:5432/registry`.
    pub url: String,
    /// The password, from a file or an environment variable.
    #[serde(default)]
    pub password: Option<Password>,
    /// The table or view, its key and its columns.
    pub table: TableConfig,
    /// Longest a statement may run, reading included, ms (also the longest idle time inside
    /// the fetch's transaction).
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_ms: u64,
    /// Longest wait for the next rows, ms.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
    /// Most open connections.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Longest wait to connect (and for a free pooled connection), ms.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
}

fn default_pool_size() -> usize {
    8
}

fn default_connect_timeout() -> u64 {
    5_000
}

impl PostgresSourceConfig {
    /// Problems with the config, as (relative path, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .table
            .validate()
            .into_iter()
            .map(|(p, m)| (format!("table.{p}"), m))
            .collect();
        match self.url.parse::<tokio_postgres::Config>() {
            Ok(c) if c.get_password().is_some() => out.push((
                "url".into(),
                "must not hold a password: give password = { file = \"…\" } or { env = \"…\" }".into(),
            )),
            Ok(c) if c.get_ssl_mode() == tokio_postgres::config::SslMode::Require => {
                out.push(("url".into(), "TLS (sslmode=require) is not supported yet".into()));
            }
            Ok(_) => {}
            Err(e) => out.push(("url".into(), format!("not a PostgreSQL URL: {e}"))),
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

    /// The pool (it connects on demand).
    fn pool(&self) -> Result<Pool, String> {
        let mut pg: tokio_postgres::Config = self.url.parse().map_err(|e| format!("url: {e}"))?;
        if pg.get_password().is_some() {
            return Err("url: must not hold a password".into());
        }
        if let Some(p) = &self.password {
            pg.password(p.load().map_err(|e| format!("password: {e}"))?);
        }
        let connect = Duration::from_millis(self.connect_timeout_ms);
        pg.connect_timeout(connect);
        if pg.get_application_name().is_none() {
            pg.application_name("sluice");
        }
        let manager = Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(self.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(connect))
            .create_timeout(Some(connect))
            .recycle_timeout(Some(connect))
            .build()
            .map_err(|e| e.to_string())
    }
}

/// A PostgreSQL source.
#[derive(Debug)]
pub struct PostgresSource {
    config: PostgresSourceConfig,
    table: Table,
    /// The pool, or why there is none (a bad URL, an unreadable password).
    pool: Result<Pool, String>,
}

impl PostgresSource {
    /// The connector for `config` (it connects at the first fetch; the password is read now).
    pub fn new(config: PostgresSourceConfig) -> Self {
        Self {
            table: config.table.table(),
            pool: config.pool(),
            config,
        }
    }
}

/// The start of a fetch's transaction: one snapshot, read-only, its statements and idle
/// time bounded (`SET LOCAL`: for this transaction only).
fn begin(statement_timeout_ms: u64) -> String {
    let ms = statement_timeout_ms;
    format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = {ms}; \
         SET LOCAL idle_in_transaction_session_timeout = {ms}; SET LOCAL TimeZone = 'UTC'"
    )
}

/// A server error's message (with its detail), or the client error.
fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({}): {d}", db.message(), db.code().code()),
            None => format!("{} ({})", db.message(), db.code().code()),
        },
        None => e.to_string(),
    }
}

/// Bind values with their types, so the statement needs no prepare round trip.
fn bind(params: &[SqlParam]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    params
        .iter()
        .map(|p| -> (&(dyn ToSql + Sync), Type) {
            match p {
                SqlParam::Text(t) | SqlParam::Decimal(t) => (t, Type::TEXT),
                SqlParam::Integer(i) => (i, Type::INT8),
                SqlParam::Float(f) => (f, Type::FLOAT8),
                SqlParam::Bool(b) => (b, Type::BOOL),
            }
        })
        .collect()
}

impl Connector for PostgresSource {
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
        let s = self.pool.as_ref().ok()?.status();
        Some(crate::source::PoolStatus {
            max: s.max_size,
            open: s.size,
            idle: s.available,
        })
    }

    fn check(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(self.config.table.check(self))
    }

    /// Groups in PostgreSQL ([`crate::sql_aggregate`]); `None` when the licence's row filter
    /// cannot be written in SQL.
    fn aggregate<'a>(
        &'a self,
        req: &'a AggregateFetch<'a>,
    ) -> Option<BoxFuture<'a, Result<BaseTable, FetchError>>> {
        let select = match build_aggregate(Dialect::Postgres, &self.table, req) {
            Err(e) if e.streams_instead() => return None,
            s => s,
        };
        Some(Box::pin(async move { self.run_aggregate(req, select?).await }))
    }

    fn fetch<'a>(&'a self, fetch: &'a Fetch<'a>) -> BoxFuture<'a, Result<SourceData, FetchError>> {
        Box::pin(async move {
            let select = self.config.table.select(&self.table, Dialect::Postgres, fetch)?;
            let probe = self.config.table.probe(&self.table, Dialect::Postgres, fetch)?;
            let types: Vec<Option<DeclaredType>> = self.config.table.types_of(&select.columns);
            let probe_types: Vec<Option<DeclaredType>> = self.config.table.types_of(&probe.columns);
            // Connecting, the transaction, the probe and the page's first answer, bounded.
            let (conn, limit) = self.checkout().await?;
            let client = conn
                .client()
                .ok_or_else(|| FetchError::Source("no connection".into()))?;
            let begin = begin(self.config.statement_timeout_ms);
            let start = async {
                client.batch_execute(&begin).await?;
                let probe_rows = client.query_typed(&probe.sql, &bind(&probe.params)).await?;
                let rows = client.query_typed_raw(&select.sql, bind(&select.params)).await?;
                Ok::<_, tokio_postgres::Error>((probe_rows, rows))
            };
            let (probe_rows, rows) = tokio::time::timeout(limit, start)
                .await
                .map_err(|_| FetchError::Timeout(limit))?
                .map_err(|e| FetchError::Source(format!("postgres: {}", pg_error(&e))))?;
            let end = page_end(&probe_rows, &probe.columns, &probe_types)
                .map_err(|e| FetchError::Source(format!("postgres: {e}")))?;
            let columns: Arc<[String]> = select.columns.into();
            Ok(SourceData::Rows(RowStream {
                batches: Box::pin(PgBatches {
                    state: State::Rows {
                        conn: Box::new(conn),
                        rows: Box::pin(rows),
                    },
                    types,
                    names: columns.clone(),
                    kinds: Vec::new(),
                    batch: RowBatch::new(columns.len()),
                }),
                columns,
                end,
            }))
        })
    }
}

impl PostgresSource {
    /// A pooled connection, and the bound on connecting plus a statement (the caller's
    /// transaction and first answer share it).
    async fn checkout(&self) -> Result<(Conn, Duration), FetchError> {
        let pool = self.pool.as_ref().map_err(|e| FetchError::Source(e.clone()))?;
        let limit = Duration::from_millis(
            self.config
                .connect_timeout_ms
                .saturating_add(self.config.statement_timeout_ms),
        );
        let obj = tokio::time::timeout(limit, pool.get())
            .await
            .map_err(|_| FetchError::Timeout(limit))?
            .map_err(|e| FetchError::Unreachable(format!("postgres: {e}")))?;
        Ok((Conn(Some(obj)), limit))
    }

    /// Runs an aggregate push-down ([`build_aggregate`]) in one read-only transaction, under
    /// the same timeouts as a fetch; floats are written with their shortest text
    /// (`extra_float_digits = 1`) for the measure's conversion to `numeric`.
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
        let (conn, limit) = self.checkout().await?;
        let client = conn
            .client()
            .ok_or_else(|| FetchError::Source("no connection".into()))?;
        let begin = format!(
            "{}; SET LOCAL extra_float_digits = 1",
            begin(self.config.statement_timeout_ms)
        );
        let run = async {
            client.batch_execute(&begin).await?;
            let rows = client.query_typed(&select.sql, &bind(&select.params)).await?;
            client.batch_execute("COMMIT").await?;
            Ok::<_, tokio_postgres::Error>(rows)
        };
        let rows = tokio::time::timeout(limit, run)
            .await
            .map_err(|_| FetchError::Timeout(limit))?
            .map_err(|e| FetchError::Source(format!("postgres: {}", pg_error(&e))))?;
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
                    row.try_get::<_, i64>(i)
                        .map_err(|e| FetchError::Source(format!("postgres: count: {e}")))
                };
                let text = |i: usize| -> Result<Option<&str>, FetchError> {
                    row.try_get::<_, Option<&str>>(i)
                        .map_err(|e| FetchError::Source(format!("postgres: aggregate: {e}")))
                };
                let cell = if select.measured {
                    cell_of(get(n)?, get(n + 1)?, text(n + 2)?, text(n + 3)?, text(n + 4)?)?
                } else {
                    cell_of(get(n)?, 0, None, None, None)?
                };
                Ok(BaseRow { key, cell })
            })
            .collect::<Result<Vec<_>, FetchError>>()?;
        base_table(&select, req.plan, base_rows)
    }
}

/// A group value as the masker would write it: the cell read as a fetch reads it, as text.
fn group_text(
    row: &Row,
    i: usize,
    declared: Option<DeclaredType>,
    name: &str,
) -> Result<Option<String>, FetchError> {
    let err = |e: String| FetchError::Source(format!("postgres: column {name:?}: {e}"));
    let pg = row.columns().get(i).map(|c| c.type_().clone());
    let kind = pg
        .as_ref()
        .and_then(|t| kind_of(t, declared))
        .ok_or_else(|| err(mismatch(name, pg.as_ref(), declared)))?;
    Ok(match kind {
        Kind::Text | Kind::Decimal => row
            .try_get::<_, Option<&str>>(i)
            .map_err(|e| err(e.to_string()))?
            .map(str::to_owned),
        _ => match cell(row, i, kind).map_err(|e| err(e.to_string()))? {
            Cell::Float(f) => float_text(f),
            c => cursor_text(c.as_cursor()),
        },
    })
}

/// A pooled connection that goes back to the pool only when [`Conn::release`]d after its
/// transaction ended; dropped otherwise, it is taken out of the pool and closed.
struct Conn(Option<Object>);

impl Conn {
    fn client(&self) -> Option<&Object> {
        self.0.as_ref()
    }

    /// Back to the pool: the transaction ended cleanly.
    fn release(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(obj) = self.0.take() {
            // Closes the connection: the server rolls back and stops sending.
            drop(Object::take(obj));
        }
    }
}

/// Where the page ends, from the probe's rows.
fn page_end(rows: &[Row], columns: &[String], types: &[Option<DeclaredType>]) -> Result<PageEnd, String> {
    let (2, Some(row)) = (rows.len(), rows.first()) else {
        return Ok(PageEnd::Last);
    };
    let mut values = Vec::with_capacity(types.len());
    for (i, ty) in types.iter().enumerate() {
        let name = columns.get(i).map_or("?", String::as_str);
        let pg = row.columns().get(i).map(|c| c.type_().clone());
        let kind = pg
            .as_ref()
            .and_then(|t| kind_of(t, *ty))
            .ok_or_else(|| mismatch(name, pg.as_ref(), *ty))?;
        let text = match kind {
            Kind::Text | Kind::Decimal => row
                .try_get::<_, Option<&str>>(i)
                .map(|v| cursor_text(v.map_or(CursorCell::Null, CursorCell::Text))),
            _ => cell(row, i, kind).map(|c| cursor_text(c.as_cursor())),
        };
        values.push(text.map_err(|e| format!("column {name:?}: {e}"))?);
    }
    Ok(PageEnd::After(values))
}

/// How a column's cells are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Bool,
    /// A decimal selected as text.
    Decimal,
}

/// A server type that fits the declared type, and how to read it.
fn kind_of(t: &Type, declared: Option<DeclaredType>) -> Option<Kind> {
    let kind = match *t {
        Type::TEXT | Type::VARCHAR | Type::NAME => Kind::Text,
        Type::INT2 => Kind::Int2,
        Type::INT4 => Kind::Int4,
        Type::INT8 => Kind::Int8,
        Type::FLOAT4 => Kind::Float4,
        Type::FLOAT8 => Kind::Float8,
        Type::BOOL => Kind::Bool,
        _ => return None,
    };
    let fits = match declared? {
        // Decimals and dates are selected as their text (`::text`).
        DeclaredType::Decimal => return (kind == Kind::Text).then_some(Kind::Decimal),
        DeclaredType::Text | DeclaredType::Date | DeclaredType::Timestamp => kind == Kind::Text,
        DeclaredType::Integer => matches!(kind, Kind::Int2 | Kind::Int4 | Kind::Int8),
        DeclaredType::Float => matches!(kind, Kind::Float4 | Kind::Float8),
        DeclaredType::Bool => kind == Kind::Bool,
    };
    fits.then_some(kind)
}

fn mismatch(name: &str, pg: Option<&Type>, declared: Option<DeclaredType>) -> String {
    let pg = pg.map_or_else(|| "no".to_owned(), |t| t.name().to_owned());
    format!("column {name:?} has type {pg}, which cannot be read as declared ({declared:?})")
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

fn cell(row: &Row, i: usize, kind: Kind) -> Result<Cell, tokio_postgres::Error> {
    let c = |o: Option<Cell>| o.unwrap_or(Cell::Null);
    Ok(match kind {
        Kind::Int2 => c(row.try_get::<_, Option<i16>>(i)?.map(|v| Cell::Int(v.into()))),
        Kind::Int4 => c(row.try_get::<_, Option<i32>>(i)?.map(|v| Cell::Int(v.into()))),
        Kind::Int8 => c(row.try_get::<_, Option<i64>>(i)?.map(Cell::Int)),
        Kind::Float4 => c(row.try_get::<_, Option<f32>>(i)?.map(|v| Cell::Float(v.into()))),
        Kind::Float8 => c(row.try_get::<_, Option<f64>>(i)?.map(Cell::Float)),
        Kind::Bool => c(row.try_get::<_, Option<bool>>(i)?.map(Cell::Bool)),
        Kind::Text | Kind::Decimal => Cell::Null,
    })
}

/// A page's rows, read from the connection as the consumer polls.
struct PgBatches {
    state: State,
    types: Vec<Option<DeclaredType>>,
    names: Arc<[String]>,
    /// How each column is read: the server's types, checked against the declared ones on
    /// the first row (empty before).
    kinds: Vec<Kind>,
    batch: RowBatch,
}

enum State {
    /// Streaming the page.
    Rows {
        conn: Box<Conn>,
        rows: Pin<Box<tokio_postgres::RowStream>>,
    },
    /// All rows read: ending the transaction before the connection goes back to the pool.
    Closing(Pin<Box<dyn Future<Output = ()> + Send>>),
    /// Over (or failed).
    Done,
}

impl PgBatches {
    /// Appends one row to the batch (its column types checked on the first row).
    fn push(&mut self, row: &Row) -> Result<(), String> {
        if self.kinds.is_empty() {
            self.kinds = self.kinds(row)?;
        }
        for (i, kind) in self.kinds.iter().enumerate() {
            let name = || self.names.get(i).map_or("?", String::as_str).to_owned();
            match kind {
                Kind::Text => match row.try_get::<_, Option<&str>>(i) {
                    Ok(Some(t)) => self.batch.push_text(t),
                    Ok(None) => self.batch.push_null(),
                    Err(e) => return Err(format!("column {:?}: {e}", name())),
                },
                Kind::Decimal => match row.try_get::<_, Option<&str>>(i) {
                    Ok(Some(t)) => self
                        .batch
                        .push_number(t)
                        .map_err(|e| format!("column {:?}: {e}", name()))?,
                    Ok(None) => self.batch.push_null(),
                    Err(e) => return Err(format!("column {:?}: {e}", name())),
                },
                _ => match cell(row, i, *kind).map_err(|e| format!("column {:?}: {e}", name()))? {
                    Cell::Null => self.batch.push_null(),
                    Cell::Int(v) => self.batch.push_int(v),
                    Cell::Float(v) => self.batch.push_float(v),
                    Cell::Bool(v) => self.batch.push_bool(v),
                },
            }
        }
        Ok(())
    }

    /// The server's types of `row`'s columns, each checked against its declared type.
    fn kinds(&self, row: &Row) -> Result<Vec<Kind>, String> {
        if row.len() != self.types.len() {
            return Err(format!("{} columns, {} expected", row.len(), self.types.len()));
        }
        row.columns()
            .iter()
            .zip(&self.types)
            .enumerate()
            .map(|(i, (c, ty))| {
                kind_of(c.type_(), *ty).ok_or_else(|| {
                    mismatch(
                        self.names.get(i).map_or("?", String::as_str),
                        Some(c.type_()),
                        *ty,
                    )
                })
            })
            .collect()
    }

    fn take_batch(&mut self) -> RowBatch {
        std::mem::replace(&mut self.batch, RowBatch::new(self.types.len()))
    }

    fn fail(&mut self, msg: String) -> Poll<Option<Result<RowBatch, BodyError>>> {
        // Dropping the state closes the connection.
        self.state = State::Done;
        Poll::Ready(Some(Err(BodyError(format!("postgres: {msg}")))))
    }
}

impl futures_core::Stream for PgBatches {
    type Item = Result<RowBatch, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Rows { rows, .. } => match rows.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(row))) => {
                        if let Err(e) = this.push(&row) {
                            return this.fail(e);
                        }
                        if this.batch.rows() >= BATCH_ROWS || this.batch.bytes() >= BATCH_BYTES {
                            return Poll::Ready(Some(Ok(this.take_batch())));
                        }
                    }
                    Poll::Ready(Some(Err(e))) => return this.fail(pg_error(&e)),
                    Poll::Ready(None) => {
                        let State::Rows { conn, .. } = std::mem::replace(&mut this.state, State::Done) else {
                            return Poll::Ready(None);
                        };
                        this.state = State::Closing(Box::pin(commit(*conn)));
                        if !this.batch.is_empty() {
                            return Poll::Ready(Some(Ok(this.take_batch())));
                        }
                    }
                    Poll::Pending if !this.batch.is_empty() => {
                        return Poll::Ready(Some(Ok(this.take_batch())));
                    }
                    Poll::Pending => return Poll::Pending,
                },
                State::Closing(f) => {
                    std::task::ready!(f.as_mut().poll(cx));
                    this.state = State::Done;
                    if !this.batch.is_empty() {
                        return Poll::Ready(Some(Ok(this.take_batch())));
                    }
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }
}

/// Ends the read-only transaction; the connection goes back to the pool only if that worked.
async fn commit(conn: Conn) {
    let Some(client) = conn.client() else { return };
    if client.batch_execute("COMMIT").await.is_ok() {
        conn.release();
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
    use std::time::Instant;

    const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

    async fn admin() -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(URL, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }

    /// A fresh table of `n` register rows; its name.
    async fn register(client: &tokio_postgres::Client, n: i64) -> String {
        let name = table_name("sluice_pg");
        client
            .batch_execute(&format!(
                "CREATE TABLE {name} (id text PRIMARY KEY, district varchar(64), reading float8, \
                 active bool, age int4, owner_id text NOT NULL)"
            ))
            .await
            .unwrap();
        let rows = meters(n);
        let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let districts: Vec<Option<&str>> = rows.iter().map(|r| r.1.as_deref()).collect();
        let readings: Vec<Option<f64>> = rows.iter().map(|r| r.2).collect();
        let active: Vec<Option<bool>> = rows.iter().map(|r| r.3).collect();
        let ages: Vec<Option<i32>> = rows
            .iter()
            .map(|r| r.4.map(|a| i32::try_from(a).unwrap()))
            .collect();
        let owners: Vec<&str> = rows.iter().map(|r| r.5.as_str()).collect();
        client
            .execute(
                &format!(
                    "INSERT INTO {name} SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], \
                     $4::bool[], $5::int4[], $6::text[])"
                ),
                &[&ids, &districts, &readings, &active, &ages, &owners],
            )
            .await
            .unwrap();
        name
    }

    async fn drop_table(client: &tokio_postgres::Client, name: &str) {
        client.batch_execute(&format!("DROP TABLE {name}")).await.unwrap();
    }

    fn config(name: &str) -> PostgresSourceConfig {
        PostgresSourceConfig {
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
        let client = admin().await;
        let name = register(&client, 2_000).await;
        let source = PostgresSource::new(config(&name));
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
        assert_eq!(recs.len(), want, "the filter ran in SQL, by bytes");
        assert!(recs.iter().all(|r| r["district"] == "Xuhui"));
        let ids: Vec<&str> = recs.iter().map(|r| r["id"].as_str().unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "key order");
        drop_table(&client, &name).await;
    }

    #[tokio::test]
    async fn keyset_pages_walk_the_data_once_and_the_last_page_says_so() {
        let client = admin().await;
        let name = register(&client, 60).await;
        let source = PostgresSource::new(config(&name));
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
                PageEnd::Unknown => panic!("PostgreSQL knows"),
            }
        }
        assert!(last);
        assert_eq!(seen, want, "each row once, in order, nulls included");
        drop_table(&client, &name).await;
    }

    #[tokio::test]
    async fn every_operator_matches_the_masker_and_injection_is_inert() {
        let client = admin().await;
        let name = register(&client, 120).await;
        let source = PostgresSource::new(config(&name));
        pushdown_matches_the_masker(&source, 120).await;
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 120, "the table is still there, whole");
        drop_table(&client, &name).await;
    }

    #[tokio::test]
    async fn transactions_are_read_only_and_only_clean_connections_are_pooled() {
        let client = admin().await;
        let name = register(&client, 2_000).await;
        let source = PostgresSource::new(config(&name));
        let pool = source.pool.as_ref().unwrap();
        let plan = plan();
        let fetch = Fetch {
            limit: 5_000,
            plan: Some(&plan),
            ..Fetch::default()
        };
        page(&source, &fetch, None).await;
        assert_eq!(pool.status().size, 1, "the connection came back");
        {
            let c = pool.get().await.unwrap();
            // One simple-protocol statement: outside an open transaction, its implicit one
            // starts with it.
            let msgs = c
                .simple_query("SELECT now() = statement_timestamp(), current_setting('statement_timeout')")
                .await
                .unwrap();
            let row = msgs
                .iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
                    _ => None,
                })
                .unwrap();
            assert_eq!(row.get(0), Some("t"), "not left inside a transaction");
            assert_eq!(row.get(1), Some("0"), "SET LOCAL ended with it");
            // The connector's transaction refuses writes.
            c.batch_execute(&begin(5_000)).await.unwrap();
            let e = c.batch_execute(&format!("DELETE FROM {name}")).await.unwrap_err();
            assert_eq!(
                e.code(),
                Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION),
                "{e}"
            );
            c.batch_execute("ROLLBACK").await.unwrap();
        }
        // A page dropped part-way takes its connection out of the pool.
        let SourceData::Rows(mut rows) = source.fetch(&fetch).await.unwrap() else {
            panic!()
        };
        let first = std::future::poll_fn(|cx| rows.batches.as_mut().poll_next(cx)).await;
        assert!(first.unwrap().is_ok());
        assert_eq!(pool.status().size, 1);
        drop(rows);
        assert_eq!(pool.status().size, 0, "closed, not pooled");
        // A type that does not fit its declaration fails closed, naming the column.
        let mut c = config(&name);
        c.table.columns.insert("age".into(), DeclaredType::Text);
        let source = PostgresSource::new(c);
        let SourceData::Rows(mut rows) = source.fetch(&fetch).await.unwrap() else {
            panic!()
        };
        let first = std::future::poll_fn(|cx| rows.batches.as_mut().poll_next(cx)).await;
        let e = first.unwrap().unwrap_err();
        assert!(e.0.contains("\"age\"") && e.0.contains("int4"), "{e}");
        // A missing table fails before the page starts.
        let mut c = config(&name);
        c.table.name = "sluice_nope".into();
        let e = PostgresSource::new(c).fetch(&fetch).await.unwrap_err();
        assert!(
            matches!(e, FetchError::Source(ref m) if m.contains("sluice_nope")),
            "{e}"
        );
        drop_table(&client, &name).await;
    }

    #[tokio::test]
    async fn decimals_and_dates_are_read_as_their_text_and_compared_as_their_type() {
        let admin = admin().await;
        let name = crate::sqltest::table_name("sluice_dated");
        admin
            .batch_execute(&format!(
                "CREATE TABLE {name} (id text PRIMARY KEY, amount numeric(12,2), day date, at timestamp);
                 INSERT INTO {name} VALUES ('a', 10.50, '2025-07-01', '2025-07-01 00:30:00'),
                   ('b', 9.99, '2025-06-30', '2025-06-30 23:59:59'), ('c', 100.00, NULL, NULL),
                   ('d', NULL, '2025-12-31', '2025-12-31 00:00:00');"
            ))
            .await
            .unwrap();
        let mut c = config(&name);
        c.table = crate::sqltest::dated_table(&name);
        crate::sqltest::decimals_and_dates_behave(&PostgresSource::new(c)).await;
        drop_table(&admin, &name).await;
    }

    /// A fresh table of `n` observations ([`crate::sqltest::observations`]); its name.
    async fn observations(client: &tokio_postgres::Client, n: i64) -> String {
        let name = table_name("sluice_pg_obs");
        client
            .batch_execute(&format!(
                "CREATE TABLE {name} (id text PRIMARY KEY, district text, age int4, level float8, \
                 active bool, amount numeric(12,2), note text NOT NULL)"
            ))
            .await
            .unwrap();
        let rows = crate::sqltest::observations(n);
        let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let districts: Vec<Option<&str>> = rows.iter().map(|r| r.1.as_deref()).collect();
        let ages: Vec<Option<i32>> = rows
            .iter()
            .map(|r| r.2.map(|a| i32::try_from(a).unwrap()))
            .collect();
        let levels: Vec<Option<f64>> = rows.iter().map(|r| r.3).collect();
        let active: Vec<Option<bool>> = rows.iter().map(|r| r.4).collect();
        let amounts: Vec<Option<&str>> = rows.iter().map(|r| r.5.as_deref()).collect();
        let notes: Vec<&str> = rows.iter().map(|r| r.6.as_str()).collect();
        client
            .execute(
                &format!(
                    "INSERT INTO {name} SELECT a, b, c, d, e, f::numeric, g FROM unnest($1::text[], \
                     $2::text[], $3::int4[], $4::float8[], $5::bool[], $6::text[], $7::text[]) \
                     AS u(a, b, c, d, e, f, g)"
                ),
                &[&ids, &districts, &ages, &levels, &active, &amounts, &notes],
            )
            .await
            .unwrap();
        name
    }

    #[tokio::test]
    async fn aggregate_push_down_equals_streaming() {
        let client = admin().await;
        let name = observations(&client, 600).await;
        let mut c = config(&name);
        c.table = crate::sqltest::obs_table(&name);
        let source = PostgresSource::new(c.clone());
        crate::sqltest::aggregates_match_streaming(&source, &c.table, 600).await;

        // A release against a direct SQL computation over the cells of at least k amounts.
        let k = 11;
        let (released, suppressed) = crate::sqltest::released_sums(&source, k).await;
        let direct = client
            .query(
                &format!(
                    "SELECT d, SUM(c)::int8, SUM(s)::text FROM (SELECT district COLLATE \"C\" AS d, age, \
                     COUNT(*) AS c, SUM(amount) AS s FROM {name} GROUP BY 1, 2 \
                     HAVING COUNT(amount) >= $1) x GROUP BY d"
                ),
                &[&i64::from(k)],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, Option<String>>(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(released, crate::sqltest::direct_sums(direct));
        let kept: u64 = released.iter().map(|c| c.1).sum();
        assert!(
            !released.is_empty() && kept < 600,
            "some base cells released, some suppressed: {released:?} {suppressed}"
        );
        drop_table(&client, &name).await;
    }

    #[tokio::test]
    async fn a_statement_past_its_timeout_is_cancelled() {
        let client = admin().await;
        let name = table_name("sluice_pg_sleep");
        client
            .batch_execute(&format!(
                "CREATE VIEW {name} AS SELECT 'K1'::text AS id FROM (SELECT pg_sleep(10)) s"
            ))
            .await
            .unwrap();
        let mut c = config(&name);
        c.statement_timeout_ms = 300;
        c.table.columns = [("id".to_owned(), DeclaredType::Text)].into_iter().collect();
        let source = PostgresSource::new(c);
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
            matches!(e, FetchError::Source(ref m) if m.contains("statement timeout")),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        client.batch_execute(&format!("DROP VIEW {name}")).await.unwrap();
    }

    #[tokio::test]
    async fn the_password_comes_from_a_file_or_the_environment_never_the_url() {
        let dir = std::env::temp_dir().join(table_name("sluice-pg-pw"));
        std::fs::create_dir_all(&dir).unwrap();
        let client = admin().await;
        let name = register(&client, 3).await;
        let toml = format!(
            "kind = \"postgres\"\nurl = \"{URL}\"\npassword = {{ file = \"pw\" }}\n\
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
        // Trust authentication takes any password: the fetch works with it.
        let SourceConfig::Postgres(c) = &s else { panic!() };
        let source = PostgresSource::new(c.clone());
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
        assert_eq!(page(&source, &fetch, None).await.0.len(), 3);

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
        let inline: SourceConfig = toml::from_str(&toml.replace("postgres@", "postgres:hunter2@")).unwrap();
        assert!(inline
            .validate()
            .iter()
            .any(|(p, m)| p == "url" && m.contains("password")));
        assert!(toml::from_str::<SourceConfig>(&toml.replace("{ file = \"pw\" }", "\"hunter2\"")).is_err());
        drop_table(&client, &name).await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

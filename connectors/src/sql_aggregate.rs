//! The aggregate push-down statement for SQL sources: the licence's base table
//! ([`BasePlan`]) grouped in the database, so that only one row per base cell leaves it.
//!
//! Pure: builds text and parameters, runs nothing. It reuses the record fetch's statement
//! writer ([`crate::sql`]): the same identifier checks and quoting, the same declared-column
//! lookup, the same translation of the licence's row filter (and so the same refusals), and
//! every value a bind parameter.
//!
//! # The statement
//!
//! ```text
//! SELECT "g0", …, COUNT(*), COUNT("m"), SUM("m"), MIN("m"), MAX("m")
//! FROM (SELECT <base field> AS "g0", …, <measure> AS "m" FROM <table>
//!       WHERE <row filter> AND <equality filters>) AS "s"
//! GROUP BY "g0", … LIMIT <max_groups + 1>
//! ```
//!
//! (No `HAVING COUNT(*) >= 1`: a `GROUP BY` never returns an empty group; without base
//! fields the single row of an empty table has count 0, which [`BaseTable::from_rows`]
//! drops.) More than `max_groups` rows back is [`FetchError::TooManyGroups`].
//!
//! # Group values: the texts the streaming path sees
//!
//! Each base field is grouped by an expression whose equality is exactly the equality of the
//! text the masker would write for the value, and the connector reads the group's value
//! with the same code that reads a fetched row's cell and renders it as the masker does
//! ([`crate::table::cursor_text`]: an integer in decimal, a float as its shortest text, a
//! boolean as `true`/`false`, a string as itself, NULL as `None`):
//!
//! - text: grouped by bytes (PostgreSQL `COLLATE "C"`, MySQL
//!   `CAST(CONVERT(x USING utf8mb4) AS BINARY)` — its default collations would merge `Xuhui`,
//!   `xuhui` and `Xuhui `, SQLite `COLLATE BINARY`);
//! - integers, booleans: their typed value; floats: their typed value, rendered in Rust
//!   with serde_json as the masker does (PostgreSQL's own `float8::text` would write `1400`
//!   where the masker writes `1400.0`, MariaDB's `1e21` where it writes `1e+21`);
//! - decimals, dates and times: their text, as the fetch selects them (`x::text`,
//!   `CAST(x AS CHAR)`), so `10.5` and `10.50` stay apart as they do in the stream;
//! - SQLite: the value as stored, grouped by value *and* storage class (`typeof`), rendered
//!   as the SQLite fetch renders each class.
//!
//! Known differences from streaming: a float column's `0.0` and `-0.0` are one group in SQL
//! (they compare equal) but two texts in the stream; a NaN or infinite float (PostgreSQL)
//! renders as `None` and joins the NULL cell, as in the stream (the cells are merged by
//! [`BaseTable::from_rows`]).
//!
//! # Measures
//!
//! Only a declared integer, float or decimal column can be measured
//! ([`AggregateSqlError::NotMeasurable`] otherwise). Per record, as
//! [`Aggregator::push`](sluice_policy::aggregate::Aggregator::push) does: the value is made
//! an exact decimal rounded to nine decimals, a magnitude above 10¹⁸ (as
//! [`Decimal::parse`] refuses) or a NULL (or a float NaN or infinity) counts toward `count(*)`
//! only, then the clamp (`LEAST(GREATEST(v, lower), max(upper, lower))`, inside the `CASE`, as
//! PostgreSQL's `GREATEST` skips NULLs), and count, sum, min and max are taken over the
//! clamped value. Sums are exact: PostgreSQL `numeric`, MySQL `DECIMAL(65,9)`. A float is
//! converted through its shortest text (PostgreSQL `x::float8::text::numeric`, MariaDB
//! converts a `DOUBLE` to `DECIMAL` through its shortest text too), the text the masker
//! writes. The SQL rounding to nine decimals is half away from zero where
//! [`Decimal::parse`] rounds half to even: only a value with more than nine decimals that
//! ends in exactly 5 at the tenth can differ (by 10⁻⁹).
//!
//! SQLite has no exact decimal type: there the measure is one aggregate function,
//! `sluice_measure(value, lower, upper)`, registered by the connector, which reads each
//! value as the SQLite fetch does and sums it with [`Decimal`] exactly as the stream would.
//!
//! [`BasePlan`]: sluice_policy::aggregate::BasePlan
//! [`BaseTable::from_rows`]: sluice_policy::aggregate::BaseTable::from_rows
//! [`FetchError::TooManyGroups`]: crate::FetchError::TooManyGroups
//! [`Decimal::parse`]: sluice_policy::aggregate::Decimal::parse
//! [`Decimal`]: sluice_policy::aggregate::Decimal

use crate::source::{AggregateFetch, FetchError};
use crate::sql::{check_ident, Column, ColumnType, Dialect, SqlError, SqlParam, Table, W};
use sluice_policy::aggregate::{AggregateError, BaseCell, BaseRow, BaseTable, Decimal};
use sluice_policy::rowfilter::Op;
use std::fmt::Write as _;

/// The name under which the SQLite connector registers its measure aggregate.
pub const SQLITE_MEASURE_FN: &str = "sluice_measure";

/// The largest magnitude a measure may have, as SQL text (10¹⁸, [`Decimal::MAX_MEASURE`]).
const MAX_MEASURE_SQL: &str = "1000000000000000000";

/// The push-down statement and how to read its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateSelect {
    /// The SQL text.
    pub sql: String,
    /// Its parameters, in placeholder order.
    pub params: Vec<SqlParam>,
    /// The base fields' columns, in [`BasePlan::fields`](sluice_policy::aggregate::BasePlan::fields)
    /// order: each row starts with one value of each.
    pub groups: Vec<Column>,
    /// Whether the plan measures a field. Each row then ends with `count(*)`,
    /// `count(m)`, `sum(m)`, `min(m)`, `max(m)` (the last three as text; SQLite: `count(*)`
    /// and the measure function's text, [`parse_sqlite_measure`]); otherwise with `count(*)`
    /// only.
    pub measured: bool,
    /// The statement's `LIMIT`: one more than the plan's `max_groups`.
    pub limit: u64,
}

/// Why no push-down statement was built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateSqlError {
    /// A column, row filter or identifier the statement writer refused.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// The measured field is not a declared integer, float or decimal column.
    #[error("{column:?} is a {ty} column: only integer, float and decimal columns can be measured")]
    NotMeasurable {
        /// The column.
        column: String,
        /// Its declared kind.
        ty: &'static str,
    },
    /// `max_groups + 1` does not fit a SQL limit.
    #[error("max_groups too large")]
    CapTooLarge,
}

impl AggregateSqlError {
    /// Whether the source cannot push this request down but streaming can answer it (the
    /// licence's row filter is on a column whose text SQL cannot reproduce): the connector
    /// returns `None` from [`Connector::aggregate`](crate::Connector::aggregate).
    pub fn streams_instead(&self) -> bool {
        matches!(self, Self::Sql(SqlError::RowFilterNotExpressible { .. }))
    }
}

impl From<AggregateSqlError> for FetchError {
    fn from(e: AggregateSqlError) -> Self {
        FetchError::Query(e.to_string())
    }
}

/// The declared kind of a column, for messages.
fn kind_name(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text => "text",
        ColumnType::Integer => "integer",
        ColumnType::Float => "float",
        ColumnType::Bool => "boolean",
        ColumnType::Decimal => "decimal",
        ColumnType::Temporal => "date or time",
    }
}

/// Builds the push-down statement of `req` over `table`.
pub fn build_aggregate(
    dialect: Dialect,
    table: &Table,
    req: &AggregateFetch<'_>,
) -> Result<AggregateSelect, AggregateSqlError> {
    let plan = req.plan;
    for c in &table.columns {
        check_ident(&c.name)?;
    }
    check_ident(&table.name)?;
    if let Some(s) = &table.schema {
        check_ident(s)?;
    }
    let mut w = W {
        d: dialect,
        t: table,
        sql: String::new(),
        params: Vec::new(),
    };
    let groups: Vec<&Column> = plan.fields().iter().map(|f| w.col(f)).collect::<Result<_, _>>()?;
    let measure: Option<&Column> = plan.measure().map(|m| w.col(m)).transpose()?;
    if let Some(c) = measure {
        if !matches!(
            c.ty,
            ColumnType::Integer | ColumnType::Float | ColumnType::Decimal
        ) {
            return Err(AggregateSqlError::NotMeasurable {
                column: c.name.clone(),
                ty: kind_name(c.ty),
            });
        }
    }
    let limit = u64::try_from(plan.max_groups())
        .ok()
        .and_then(|n| n.checked_add(1))
        .filter(|n| i64::try_from(*n).is_ok())
        .ok_or(AggregateSqlError::CapTooLarge)?;
    let alias = |i: usize| format!("g{i}");

    // The outer SELECT list (aliases only: nothing here comes from the config or the client).
    w.sql.push_str("SELECT ");
    for i in 0..groups.len() {
        w.ident(&alias(i));
        w.sql.push_str(", ");
    }
    w.sql.push_str("COUNT(*)");
    if measure.is_some() {
        match dialect {
            Dialect::Postgres => w
                .sql
                .push_str(r#", COUNT("m"), SUM("m")::text, MIN("m")::text, MAX("m")::text"#),
            Dialect::MySql => w.sql.push_str(
                ", COUNT(`m`), CAST(SUM(`m`) AS CHAR), CAST(MIN(`m`) AS CHAR), CAST(MAX(`m`) AS CHAR)",
            ),
            Dialect::Sqlite => {
                let _ = write!(w.sql, r#", {SQLITE_MEASURE_FN}("m", "lo", "hi")"#);
            }
        }
    }

    // The inner SELECT: base fields, the measure, from the table, filtered.
    w.sql.push_str(" FROM (SELECT ");
    for (i, c) in groups.iter().enumerate() {
        if i > 0 {
            w.sql.push_str(", ");
        }
        group_expr(&mut w, c);
        w.sql.push_str(" AS ");
        w.ident(&alias(i));
    }
    if let Some(c) = measure {
        if !groups.is_empty() {
            w.sql.push_str(", ");
        }
        measure_expr(&mut w, c, plan.clamp());
    } else if groups.is_empty() {
        w.sql.push('1');
    }
    w.sql.push_str(" FROM ");
    if let Some(s) = &table.schema {
        w.ident(s);
        w.sql.push('.');
    }
    w.ident(&table.name);
    let mut terms = 0;
    let mut and = |w: &mut W<'_>| {
        w.sql.push_str(if terms == 0 { " WHERE " } else { " AND " });
        terms += 1;
    };
    for cond in req.row_filter.iter().flat_map(|f| f.conditions.iter()) {
        and(&mut w);
        w.row_condition(&cond.field, cond.op, &cond.values)?;
    }
    for f in req.filters {
        let Some(c) = groups.iter().find(|c| c.name == f.field) else {
            // Not a base field: the allowance check refuses it before; never split a cell.
            return Err(SqlError::UnknownColumn {
                column: f.field.clone(),
            }
            .into());
        };
        if !pushes_filter(dialect, c.ty) {
            // Left to `BaseTable::release`, which applies every filter to the cells' keys.
            continue;
        }
        and(&mut w);
        match &f.value {
            None => {
                w.ident(&c.name);
                w.sql.push_str(" IS NULL");
            }
            // The row filter's equality: the value's text against the text the stream sees.
            Some(v) => w.row_condition(&c.name, Op::Eq, std::slice::from_ref(v))?,
        }
    }
    w.sql.push_str(") AS ");
    w.ident("s");

    // GROUP BY, LIMIT
    for i in 0..groups.len() {
        w.sql.push_str(if i == 0 { " GROUP BY " } else { ", " });
        w.ident(&alias(i));
        if dialect == Dialect::Sqlite {
            w.sql.push_str(" COLLATE BINARY, typeof(");
            w.ident(&alias(i));
            w.sql.push(')');
        }
    }
    w.sql.push_str(" LIMIT ");
    w.param(SqlParam::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    Ok(AggregateSelect {
        sql: w.sql,
        params: w.params,
        groups: groups.into_iter().cloned().collect(),
        measured: measure.is_some(),
        limit,
    })
}

/// Whether an equality filter on a column of this type is pushed down: only where SQL
/// equality is exactly equality of the text the stream sees. Not floats (NaN renders as
/// null, `-0` and `0` compare equal) nor decimals (`10.5 = 10.50`); on SQLite, whose
/// columns can hold any storage class, only text.
fn pushes_filter(dialect: Dialect, ty: ColumnType) -> bool {
    match (dialect, ty) {
        (_, ColumnType::Float | ColumnType::Decimal) => false,
        (Dialect::Sqlite, t) => t == ColumnType::Text,
        _ => true,
    }
}

/// A base field as grouped (see the module documentation).
fn group_expr(w: &mut W<'_>, c: &Column) {
    match (w.d, c.ty) {
        (Dialect::Postgres, ColumnType::Text) => {
            w.ident(&c.name);
            w.sql.push_str(" COLLATE \"C\"");
        }
        (Dialect::Postgres, ColumnType::Decimal | ColumnType::Temporal) => {
            w.ident(&c.name);
            w.sql.push_str("::text");
        }
        (Dialect::MySql, ColumnType::Text) => w.expr(c),
        (Dialect::MySql, ColumnType::Decimal | ColumnType::Temporal) => {
            w.sql.push_str("CAST(");
            w.ident(&c.name);
            w.sql.push_str(" AS CHAR)");
        }
        _ => w.ident(&c.name),
    }
}

/// The measure of one record: an exact decimal rounded to nine decimals, NULL when it is not
/// a number the stream would take, clamped; aliased `m` (SQLite: the raw value and the
/// clamp's bounds, `m`, `lo`, `hi`, for its aggregate function).
fn measure_expr(w: &mut W<'_>, c: &Column, clamp: Option<sluice_policy::aggregate::Clamp>) {
    let bounds = clamp.map(|k| (k.lower, k.upper.max(k.lower)));
    if w.d == Dialect::Sqlite {
        w.ident(&c.name);
        w.sql.push_str(" AS \"m\", ");
        for (b, name) in [(bounds.map(|b| b.0), "lo"), (bounds.map(|b| b.1), "hi")] {
            match b {
                Some(d) => w.param(SqlParam::Text(d.to_string())),
                None => w.sql.push_str("NULL"),
            }
            let _ = write!(w.sql, " AS \"{name}\"");
            if name == "lo" {
                w.sql.push_str(", ");
            }
        }
        return;
    }
    let rounded = |w: &mut W<'_>| match (w.d, c.ty) {
        (Dialect::Postgres, ColumnType::Float) => {
            // Through the float's shortest text (extra_float_digits = 1), the masker's text.
            w.sql.push_str("round(CASE WHEN ");
            w.ident(&c.name);
            w.sql.push_str(
                "::float8 IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8) THEN NULL ELSE ",
            );
            w.ident(&c.name);
            w.sql.push_str("::float8::text::numeric END, 9)");
        }
        (Dialect::Postgres, _) => {
            w.sql.push_str("round(");
            w.ident(&c.name);
            w.sql.push_str("::numeric, 9)");
        }
        (_, ColumnType::Float) => {
            w.sql.push_str("CAST(CAST(");
            w.ident(&c.name);
            w.sql.push_str(" AS DOUBLE) AS DECIMAL(65,9))");
        }
        _ => {
            w.sql.push_str("CAST(");
            w.ident(&c.name);
            w.sql.push_str(" AS DECIMAL(65,9))");
        }
    };
    let bound = |w: &mut W<'_>, d: Decimal| {
        w.sql.push_str("CAST(");
        w.param(SqlParam::Decimal(d.to_string()));
        w.sql.push_str(if w.d == Dialect::Postgres {
            " AS numeric)"
        } else {
            " AS DECIMAL(65,9))"
        });
    };
    w.sql.push_str("CASE WHEN ABS(");
    rounded(w);
    let _ = write!(w.sql, ") <= {MAX_MEASURE_SQL} THEN ");
    match bounds {
        Some((lo, hi)) => {
            w.sql.push_str("LEAST(GREATEST(");
            rounded(w);
            w.sql.push_str(", ");
            bound(w, lo);
            w.sql.push_str("), ");
            bound(w, hi);
            w.sql.push(')');
        }
        None => rounded(w),
    }
    w.sql.push_str(" END AS ");
    w.ident("m");
}

/// One base cell's aggregates as a PostgreSQL or MySQL push-down returns them: counts, and
/// the sum, min and max as decimal text (NULL when nothing was measured).
pub fn cell_of(
    count: i64,
    measured: i64,
    sum: Option<&str>,
    min: Option<&str>,
    max: Option<&str>,
) -> Result<BaseCell, FetchError> {
    let bad = |what: &'static str| FetchError::Aggregate(AggregateError::BadRow(what));
    let count = u64::try_from(count).map_err(|_| bad("a negative count"))?;
    let measured = u64::try_from(measured).map_err(|_| bad("a negative count"))?;
    let dec = |t: Option<&str>| -> Result<Option<Decimal>, FetchError> {
        t.map(|t| parse_exact(t).ok_or_else(|| bad("an aggregate that is not a decimal")))
            .transpose()
    };
    Ok(BaseCell {
        count,
        measured,
        sum: dec(sum)?.unwrap_or_default(),
        min: dec(min)?,
        max: dec(max)?,
    })
}

/// A sum, minimum or maximum read back: exactly (any digits past the ninth decimal are
/// zeros, as every measure was rounded to nine), so no second rounding happens.
fn parse_exact(text: &str) -> Option<Decimal> {
    let d = Decimal::parse(text)?;
    let frac = text.split_once('.').map_or("", |(_, f)| f);
    frac.bytes().skip(9).all(|b| b == b'0').then_some(d)
}

/// The SQLite measure function's text (`measured sum min max`, NULL when nothing was
/// measured) and `count(*)` as a cell.
pub fn parse_sqlite_measure(count: i64, text: Option<&str>) -> Result<BaseCell, FetchError> {
    let Some(text) = text else {
        return cell_of(count, 0, None, None, None);
    };
    let mut parts = text.split(' ');
    let (Some(n), Some(sum), Some(min), Some(max), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(FetchError::Aggregate(AggregateError::BadRow(
            "a malformed measure",
        )));
    };
    let n: i64 = n
        .parse()
        .map_err(|_| FetchError::Aggregate(AggregateError::BadRow("a malformed measure")))?;
    cell_of(count, n, Some(sum), Some(min), Some(max))
}

/// The rows read, made a base table: more than the cap is [`FetchError::TooManyGroups`].
pub fn base_table(
    select: &AggregateSelect,
    plan: &sluice_policy::aggregate::BasePlan,
    rows: Vec<BaseRow>,
) -> Result<BaseTable, FetchError> {
    if rows.len() as u64 >= select.limit {
        return Err(FetchError::TooManyGroups {
            cap: plan.max_groups(),
        });
    }
    BaseTable::from_rows(plan, rows).map_err(|e| match e {
        AggregateError::TooManyGroups { cap } => FetchError::TooManyGroups { cap },
        e => FetchError::Aggregate(e),
    })
}

/// A float group value as the masker writes it ([`RowBatch::push_float`]: serde_json's
/// text, `1e+21`, `1400.0`), `None` for NaN and infinities, which JSON cannot hold.
///
/// [`RowBatch::push_float`]: sluice_policy::stream::RowBatch::push_float
pub fn float_text(f: f64) -> Option<String> {
    f.is_finite().then(|| serde_json::to_string(&f).ok()).flatten()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use sluice_policy::aggregate::{AggregateAllowance, AggregateQuery, BasePlan, Clamp, EqFilter};
    use sluice_policy::rowfilter::RowFilter;

    fn table() -> Table {
        let c = |n: &str, ty| Column { name: n.into(), ty };
        Table {
            schema: None,
            name: "obs".into(),
            columns: vec![
                c("id", ColumnType::Text),
                c("district", ColumnType::Text),
                c("age", ColumnType::Integer),
                c("amount", ColumnType::Decimal),
                c("level", ColumnType::Float),
                c("note", ColumnType::Text),
            ],
            key: "id".into(),
        }
    }

    fn plan(metric: &str, clamp: Option<(i64, i64)>) -> BasePlan {
        let allowance = AggregateAllowance {
            max_groups: 50,
            ..AggregateAllowance::new(
                vec!["district".into(), "age".into()],
                vec!["amount".into(), "note".into(), "level".into()],
            )
        };
        let q = AggregateQuery::parse(Some("district"), Some(metric)).unwrap();
        let p = BasePlan::new(&q, &allowance).unwrap();
        match clamp {
            Some((lo, hi)) => p.with_clamp(Clamp {
                lower: Decimal::from_int(lo),
                upper: Decimal::from_int(hi),
            }),
            None => p,
        }
    }

    fn build(d: Dialect, p: &BasePlan, rf: Option<&RowFilter>, filters: &[EqFilter]) -> AggregateSelect {
        build_aggregate(
            d,
            &table(),
            &AggregateFetch {
                plan: p,
                row_filter: rf,
                filters,
                request_id: "r",
            },
        )
        .unwrap()
    }

    #[test]
    fn postgres_statement() {
        let p = plan("sum(amount)", Some((-5, 10)));
        let rf = RowFilter::parse("note != 'x'").unwrap();
        let s = build(
            Dialect::Postgres,
            &p,
            Some(&rf),
            &[
                EqFilter::new("district", Some("Xuhui")),
                EqFilter::new("age", None::<String>),
            ],
        );
        assert_eq!(
            s.sql,
            r#"SELECT "g0", "g1", COUNT(*), COUNT("m"), SUM("m")::text, MIN("m")::text, MAX("m")::text FROM (SELECT "district" COLLATE "C" AS "g0", "age" AS "g1", CASE WHEN ABS(round("amount"::numeric, 9)) <= 1000000000000000000 THEN LEAST(GREATEST(round("amount"::numeric, 9), CAST($1 AS numeric)), CAST($2 AS numeric)) END AS "m" FROM "obs" WHERE "note" COLLATE "C" <> $3 AND "district" COLLATE "C" = $4 AND "age" IS NULL) AS "s" GROUP BY "g0", "g1" LIMIT $5"#
        );
        assert_eq!(
            s.params,
            vec![
                SqlParam::Decimal("-5".into()),
                SqlParam::Decimal("10".into()),
                SqlParam::Text("x".into()),
                SqlParam::Text("Xuhui".into()),
                SqlParam::Integer(51)
            ]
        );
        assert!(s.measured);
        assert_eq!(s.limit, 51);
    }

    #[test]
    fn mysql_and_sqlite_statements() {
        let p = plan("max(level)", None);
        let s = build(Dialect::MySql, &p, None, &[EqFilter::new("age", Some("7"))]);
        assert_eq!(
            s.sql,
            "SELECT `g0`, `g1`, COUNT(*), COUNT(`m`), CAST(SUM(`m`) AS CHAR), CAST(MIN(`m`) AS CHAR), \
             CAST(MAX(`m`) AS CHAR) FROM (SELECT CAST(CONVERT(`district` USING utf8mb4) AS BINARY) AS `g0`, \
             `age` AS `g1`, CASE WHEN ABS(CAST(CAST(`level` AS DOUBLE) AS DECIMAL(65,9))) <= \
             1000000000000000000 THEN CAST(CAST(`level` AS DOUBLE) AS DECIMAL(65,9)) END AS `m` \
             FROM `obs` WHERE `age` = ?) AS `s` GROUP BY `g0`, `g1` LIMIT ?"
        );
        assert_eq!(s.params, vec![SqlParam::Integer(7), SqlParam::Integer(51)]);
        let p = plan("sum(amount)", Some((0, 3)));
        let s = build(Dialect::Sqlite, &p, None, &[EqFilter::new("age", Some("7"))]);
        assert_eq!(
            s.sql,
            r#"SELECT "g0", "g1", COUNT(*), sluice_measure("m", "lo", "hi") FROM (SELECT "district" AS "g0", "age" AS "g1", "amount" AS "m", ? AS "lo", ? AS "hi" FROM "obs") AS "s" GROUP BY "g0" COLLATE BINARY, typeof("g0"), "g1" COLLATE BINARY, typeof("g1") LIMIT ?"#
        );
        assert_eq!(
            s.params,
            vec![
                SqlParam::Text("0".into()),
                SqlParam::Text("3".into()),
                SqlParam::Integer(51)
            ]
        );
        let count = build(Dialect::Sqlite, &plan("count", None), None, &[]);
        assert!(count
            .sql
            .contains("COUNT(*) FROM (SELECT \"district\" AS \"g0\", \"age\" AS \"g1\" FROM"));
        assert!(!count.measured);
    }

    #[test]
    fn refusals() {
        let t = table();
        let e = |p: &BasePlan, rf: Option<&RowFilter>, f: &[EqFilter]| {
            build_aggregate(
                Dialect::Postgres,
                &t,
                &AggregateFetch {
                    plan: p,
                    row_filter: rf,
                    filters: f,
                    request_id: "r",
                },
            )
            .unwrap_err()
        };
        let text = e(&plan("sum(note)", None), None, &[]);
        assert_eq!(
            text,
            AggregateSqlError::NotMeasurable {
                column: "note".into(),
                ty: "text"
            }
        );
        assert!(matches!(FetchError::from(text), FetchError::Query(m) if m.contains("\"note\"")));
        let float_rf = RowFilter::parse("level = 1.5").unwrap();
        assert!(e(&plan("count", None), Some(&float_rf), &[]).streams_instead());
        assert!(matches!(
            e(&plan("count", None), None, &[EqFilter::new("note", Some("x"))]),
            AggregateSqlError::Sql(SqlError::UnknownColumn { .. })
        ));
        let mut missing = table();
        missing.columns.retain(|c| c.name != "age");
        assert!(matches!(
            build_aggregate(
                Dialect::Postgres,
                &missing,
                &AggregateFetch {
                    plan: &plan("count", None),
                    row_filter: None,
                    filters: &[],
                    request_id: "r",
                }
            ),
            Err(AggregateSqlError::Sql(SqlError::UnknownColumn { .. }))
        ));
    }

    /// Hostile filter values reach only the parameters: the SQL text is the text built for a
    /// harmless value.
    #[test]
    fn filter_values_are_bound_never_written() {
        let p = plan("sum(amount)", None);
        for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
            let benign = build(d, &p, None, &[EqFilter::new("district", Some("b"))]);
            for h in ["'; DROP TABLE obs; --", "\" OR 1=1 --", "` x", "$1", "?", "\\'"] {
                let s = build(d, &p, None, &[EqFilter::new("district", Some(h))]);
                assert_eq!(s.sql, benign.sql, "{d:?} {h:?}");
                assert!(s.params.contains(&SqlParam::Text(h.into())), "{d:?} {h:?}");
            }
        }
    }

    #[test]
    fn floats_and_aggregates_read_back_as_the_stream_writes_them() {
        assert_eq!(float_text(1e21).as_deref(), Some("1e+21"));
        assert_eq!(float_text(7.7e248).as_deref(), Some("7.7e+248"));
        assert_eq!(float_text(1400.0).as_deref(), Some("1400.0"));
        assert_eq!(float_text(0.1 + 0.2).as_deref(), Some("0.30000000000000004"));
        assert_eq!(float_text(f64::NAN), None);
        assert_eq!(float_text(f64::INFINITY), None);
        let c = cell_of(
            3,
            2,
            Some("10.500000000"),
            Some("-1.25"),
            Some("11.750000000000000000"),
        )
        .unwrap();
        assert_eq!(c.sum, Decimal::parse("10.5").unwrap());
        assert_eq!(c.max, Decimal::parse("11.75"));
        assert!(cell_of(3, 2, Some("1.0000000001"), Some("1"), Some("1")).is_err());
        assert!(cell_of(-1, 0, None, None, None).is_err());
        let c = parse_sqlite_measure(4, Some("2 3.5 1 2.5")).unwrap();
        assert_eq!((c.count, c.measured, c.min), (4, 2, Decimal::parse("1")));
        assert!(parse_sqlite_measure(4, Some("2 3.5 1")).is_err());
        assert_eq!(parse_sqlite_measure(4, None).unwrap().measured, 0);
    }
}

//! One parameterised `SELECT` per fetch for SQL sources (PostgreSQL, MySQL/MariaDB, SQLite).
//!
//! Pure: builds text and parameters, runs nothing. Identifiers come only from the source's
//! declared [`Table`] (quoted: `"x"` with `""` doubled, or `` `x` `` with ``` `` ``` doubled),
//! values only as bind parameters ([`SqlParam`]): a client's column name is looked up among the
//! declared columns and the declared spelling is quoted, so nothing the client sends is ever
//! written into the SQL text.
//!
//! Semantics match the streaming evaluation exactly where they can, and fail closed where they
//! cannot:
//!
//! - the licence's [`RowFilter`] compares a value's *text* (a string decoded, an integer as
//!   `i64::to_string` writes it, `true`/`false`), a null never matching: text columns compare
//!   bytes; an integer or boolean column compares typed with the literals that are the
//!   canonical text of such a value (others can never be equal). A row filter on a float
//!   column, whose text depends on the renderer, is refused ([`SqlError::RowFilterNotExpressible`]);
//! - the client's filters follow [`ClientQuery::matches`]: the operand takes the column's type,
//!   a mismatch (`age=eq.abc`, `like` on a number, `lt` on a boolean) is FALSE, negated or
//!   not; a null matches only `is.null`. An integer column with a non-integer numeric operand
//!   (`age=lt.17.5`) is refused ([`SqlError::Unrepresentable`]) where the stream would compare
//!   exactly; a float column binds the operand as `f64`;
//! - text compares by bytes, never by collation: PostgreSQL `COLLATE "C"`, MySQL
//!   `CAST(CONVERT(x USING utf8mb4) AS BINARY)` (its default collations ignore case and
//!   trailing spaces; assumes a utf8mb4 connection), SQLite `COLLATE BINARY`;
//! - `like` (`*` the only wildcard): PostgreSQL and MySQL `LIKE … ESCAPE '!'` with `%`, `_`
//!   and `!` escaped (`!` rather than `\`, whose spelling in a literal depends on
//!   `standard_conforming_strings` and `NO_BACKSLASH_ESCAPES`); SQLite `GLOB` (its `LIKE`
//!   ignores ASCII case) with `?` and `[` escaped as `[?]` and `[[]`.
//!
//! The `WHERE` clause is a conjunction only (the keyset predicate is one parenthesised term),
//! so a NULL anywhere excludes the row, as the stream does. Order: the client's `order` up to
//! the key, then the key; nulls sort last ascending and first descending in every dialect.

use sluice_policy::query::{ClientQuery, Decimal, Direction, FilterOp, OrderBy};
use sluice_policy::rowfilter::{Op, RowFilter};
use std::fmt::Write as _;

/// The SQL dialect: placeholders and identifier quoting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: `$1`, `"x"`.
    Postgres,
    /// MySQL / MariaDB: `?`, `` `x` ``.
    MySql,
    /// SQLite: `?`, `"x"`.
    Sqlite,
}

/// A declared column's type, as the source config states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text (`text`, `varchar`; not blank-padded `char(n)`).
    Text,
    /// A 64-bit integer.
    Integer,
    /// A double.
    Float,
    /// A boolean.
    Bool,
    /// An exact decimal (`numeric`, `decimal`): read as its text (a JSON number), compared as
    /// a decimal with operands cast to the database's decimal type.
    Decimal,
    /// A date or time (`date`, `timestamp`): read, compared and ordered as its text
    /// (ISO 8601, which orders as time does), as the masker sees it.
    Temporal,
}

/// A declared column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name in the database, exactly.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
}

/// A table or view with its declared columns: the only identifiers that reach SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Schema (PostgreSQL schema, MySQL database), if any.
    pub schema: Option<String>,
    /// Table or view name.
    pub name: String,
    /// The declared columns.
    pub columns: Vec<Column>,
    /// The key column (declared, unique and NOT NULL): the keyset and the default order.
    pub key: String,
}

/// What one fetch asks for.
#[derive(Debug, Clone, Copy)]
pub struct SelectSpec<'a> {
    /// The source's table.
    pub table: &'a Table,
    /// Columns to read (the plan's fields that are columns). The row filter's, the client's
    /// filter and order columns and the key are added, so the masker can check the filters
    /// again and the gateway can make the next cursor.
    pub read: &'a [&'a str],
    /// The licence's row filter.
    pub row_filter: Option<&'a RowFilter>,
    /// The client's query, already [authorised](ClientQuery::authorize).
    pub query: &'a ClientQuery,
    /// The keyset position: the last row's values (as text, `None` for null) of
    /// [`Select::order`]'s columns, in that order.
    pub after: Option<&'a [Option<String>]>,
    /// Most rows.
    pub limit: u64,
}

/// A bind parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    /// Text.
    Text(String),
    /// Integer.
    Integer(i64),
    /// Double.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// A decimal's text, bound as text and cast to the database's decimal type.
    Decimal(String),
}

/// The statement: SQL text, its parameters in placeholder order, and the effective order
/// (what an `after` cursor must hold).
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// The SQL text.
    pub sql: String,
    /// The parameters, in placeholder order.
    pub params: Vec<SqlParam>,
    /// The order applied: the client's up to the key, then the key.
    pub order: Vec<OrderBy>,
    /// The columns selected, in the order of each row's cells.
    pub columns: Vec<String>,
}

/// Why no statement was built; the caller fails closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// A column not declared for the source.
    #[error("{column:?} is not a declared column of the source")]
    UnknownColumn {
        /// The name asked for.
        column: String,
    },
    /// A declared identifier that cannot be quoted (empty, or holding NUL).
    #[error("identifier {0:?} cannot be used")]
    BadIdentifier(String),
    /// The licence's row filter cannot be expressed faithfully in SQL.
    #[error("the row filter on {field:?} cannot be expressed in SQL: {why}")]
    RowFilterNotExpressible {
        /// The field.
        field: String,
        /// Why.
        why: &'static str,
    },
    /// A client operand the column's type cannot hold exactly (a fraction on an integer
    /// column, beyond `i64` or `f64`).
    #[error("{value:?} cannot be compared with the integer or float column {column:?}")]
    Unrepresentable {
        /// The column.
        column: String,
        /// The operand.
        value: String,
    },
    /// The `after` values do not fit the order.
    #[error("the keyset cursor does not fit the order: {0}")]
    BadCursor(&'static str),
    /// The limit does not fit a signed 64-bit integer.
    #[error("limit too large")]
    LimitTooLarge,
}

/// Builds the one parameterised `SELECT` of a fetch.
pub fn build_select(dialect: Dialect, spec: &SelectSpec<'_>) -> Result<Select, SqlError> {
    build(dialect, spec, false)
}

/// Builds the page's end probe: the same `WHERE` and `ORDER BY`, selecting only the order's
/// columns of the page's last row and of the row after it (`LIMIT 2 OFFSET limit - 1`). Run
/// in the same snapshot as the page, it says before the page streams whether another page
/// follows and where it starts: two rows → the first is the page's last (the next page's
/// keyset position); fewer → the data ends within this page.
pub fn build_probe(dialect: Dialect, spec: &SelectSpec<'_>) -> Result<Select, SqlError> {
    build(dialect, spec, true)
}

fn build(dialect: Dialect, spec: &SelectSpec<'_>, probe: bool) -> Result<Select, SqlError> {
    let mut w = W {
        d: dialect,
        t: spec.table,
        sql: String::new(),
        params: Vec::new(),
    };
    let t = spec.table;
    for c in &t.columns {
        check_ident(&c.name)?;
    }
    check_ident(&t.name)?;
    if let Some(s) = &t.schema {
        check_ident(s)?;
    }
    let key = w.col(&t.key)?;
    let order = effective_order(spec.query, key)?;

    // SELECT list
    let mut cols: Vec<&Column> = Vec::new();
    let wanted: Vec<&str> = if probe {
        order.iter().map(|o| o.column.as_str()).collect()
    } else {
        spec.read
            .iter()
            .copied()
            .chain(spec.row_filter.into_iter().flat_map(|f| f.fields()))
            .chain(spec.query.filters.iter().map(|f| f.column.as_str()))
            .chain(order.iter().map(|o| o.column.as_str()))
            .collect()
    };
    for name in wanted {
        let c = w.col(name)?;
        if !cols.iter().any(|x| x.name == c.name) {
            cols.push(c);
        }
    }
    w.sql.push_str("SELECT ");
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            w.sql.push_str(", ");
        }
        w.select_item(c);
    }
    w.sql.push_str(" FROM ");
    if let Some(s) = &t.schema {
        w.ident(s);
        w.sql.push('.');
    }
    w.ident(&t.name);

    // WHERE: the licence's row filter, the client's filters, the keyset
    let mut terms = 0;
    let mut and = |w: &mut W<'_>| {
        w.sql.push_str(if terms == 0 { " WHERE " } else { " AND " });
        terms += 1;
    };
    for cond in spec.row_filter.iter().flat_map(|f| f.conditions.iter()) {
        and(&mut w);
        w.row_condition(&cond.field, cond.op, &cond.values)?;
    }
    for f in &spec.query.filters {
        and(&mut w);
        w.client_filter(&f.column, f.negated, &f.op)?;
    }
    if let Some(after) = spec.after {
        if after.len() != order.len() {
            return Err(SqlError::BadCursor("one value per order column"));
        }
        and(&mut w);
        w.keyset(&order, after)?;
    }

    // ORDER BY, LIMIT
    w.sql.push_str(" ORDER BY ");
    for (i, o) in order.iter().enumerate() {
        if i > 0 {
            w.sql.push_str(", ");
        }
        let c = w.col(&o.column)?;
        let dir = match o.dir {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        };
        let nulls = match o.dir {
            Direction::Asc => "LAST",
            Direction::Desc => "FIRST",
        };
        match dialect {
            Dialect::MySql => {
                // MySQL has no NULLS FIRST/LAST: `x IS NULL` sorts nulls as the largest. The
                // key is never null, and a term on it would keep MySQL from reading its index
                // in order (a sort of every row after the position, on every page).
                if c.name != t.key {
                    w.ident(&c.name);
                    let _ = write!(w.sql, " IS NULL {dir}, ");
                }
                w.expr(c);
                let _ = write!(w.sql, " {dir}");
            }
            Dialect::Postgres | Dialect::Sqlite => {
                w.expr(c);
                let _ = write!(w.sql, " {dir} NULLS {nulls}");
            }
        }
    }
    w.sql.push_str(" LIMIT ");
    let limit = i64::try_from(spec.limit).map_err(|_| SqlError::LimitTooLarge)?;
    if probe {
        w.param(SqlParam::Integer(2));
        w.sql.push_str(" OFFSET ");
        w.param(SqlParam::Integer((limit - 1).max(0)));
    } else {
        w.param(SqlParam::Integer(limit));
    }
    Ok(Select {
        sql: w.sql,
        params: w.params,
        order,
        columns: cols.iter().map(|c| c.name.clone()).collect(),
    })
}

/// The client's order up to the key, then the key ascending if the client did not name it.
fn effective_order(q: &ClientQuery, key: &Column) -> Result<Vec<OrderBy>, SqlError> {
    let mut out = Vec::new();
    for o in &q.order {
        out.push(o.clone());
        if o.column == key.name {
            return Ok(out);
        }
    }
    out.push(OrderBy {
        column: key.name.clone(),
        dir: Direction::Asc,
    });
    Ok(out)
}

pub(crate) fn check_ident(s: &str) -> Result<(), SqlError> {
    if s.is_empty() || s.contains('\0') {
        Err(SqlError::BadIdentifier(s.into()))
    } else {
        Ok(())
    }
}

/// The statement being written.
pub(crate) struct W<'a> {
    pub(crate) d: Dialect,
    pub(crate) t: &'a Table,
    pub(crate) sql: String,
    pub(crate) params: Vec<SqlParam>,
}

impl<'a> W<'a> {
    pub(crate) fn col(&self, name: &str) -> Result<&'a Column, SqlError> {
        self.t
            .columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| SqlError::UnknownColumn { column: name.into() })
    }

    /// A quoted identifier (declared names only).
    pub(crate) fn ident(&mut self, name: &str) {
        let q = match self.d {
            Dialect::MySql => '`',
            Dialect::Postgres | Dialect::Sqlite => '"',
        };
        self.sql.push(q);
        for ch in name.chars() {
            if ch == q {
                self.sql.push(q);
            }
            self.sql.push(ch);
        }
        self.sql.push(q);
    }

    /// A placeholder for a new parameter.
    pub(crate) fn param(&mut self, p: SqlParam) {
        self.params.push(p);
        match self.d {
            Dialect::Postgres => {
                let _ = write!(self.sql, "${}", self.params.len());
            }
            Dialect::MySql | Dialect::Sqlite => self.sql.push('?'),
        }
    }

    /// A column in the `SELECT` list: decimals and dates as their text, under their name.
    fn select_item(&mut self, c: &Column) {
        match (c.ty, self.d) {
            (ColumnType::Decimal | ColumnType::Temporal, Dialect::Postgres) => {
                self.ident(&c.name);
                self.sql.push_str("::text AS ");
                self.ident(&c.name);
            }
            (ColumnType::Decimal | ColumnType::Temporal, Dialect::MySql) => {
                self.sql.push_str("CAST(");
                self.ident(&c.name);
                self.sql.push_str(" AS CHAR) AS ");
                self.ident(&c.name);
            }
            _ => self.ident(&c.name),
        }
    }

    /// A column as compared: text by bytes.
    pub(crate) fn expr(&mut self, c: &Column) {
        match (c.ty, self.d) {
            (ColumnType::Temporal, Dialect::Postgres) => {
                self.ident(&c.name);
                self.sql.push_str("::text COLLATE \"C\"");
            }
            (ColumnType::Temporal, Dialect::MySql) => {
                self.sql.push_str("CAST(CAST(");
                self.ident(&c.name);
                self.sql.push_str(" AS CHAR) AS BINARY)");
            }
            // A decimal compares and orders as a number. Written as an expression, never a bare
            // name: in ORDER BY a bare name means the output column, here the decimal's text
            // (and SQLite keeps a decimal's digits only as text).
            (ColumnType::Decimal, Dialect::Postgres) => {
                self.ident(&c.name);
                self.sql.push_str("::numeric");
            }
            (ColumnType::Decimal, Dialect::MySql) => {
                self.sql.push_str("CAST(");
                self.ident(&c.name);
                self.sql.push_str(" AS DECIMAL(65,30))");
            }
            (ColumnType::Decimal, Dialect::Sqlite) => {
                self.sql.push_str("CAST(");
                self.ident(&c.name);
                self.sql.push_str(" AS NUMERIC)");
            }
            (ColumnType::Temporal, Dialect::Sqlite) => {
                self.sql.push_str("CAST(");
                self.ident(&c.name);
                self.sql.push_str(" AS TEXT) COLLATE BINARY");
            }
            (ColumnType::Text, Dialect::Postgres) => {
                self.ident(&c.name);
                self.sql.push_str(" COLLATE \"C\"");
            }
            (ColumnType::Text, Dialect::MySql) => {
                self.sql.push_str("CAST(CONVERT(");
                self.ident(&c.name);
                self.sql.push_str(" USING utf8mb4) AS BINARY)");
            }
            (ColumnType::Text, Dialect::Sqlite) => {
                self.ident(&c.name);
                self.sql.push_str(" COLLATE BINARY");
            }
            _ => self.ident(&c.name),
        }
    }

    /// A parameter as compared with [`W::expr`].
    fn value(&mut self, p: SqlParam) {
        if let SqlParam::Decimal(_) = p {
            self.sql.push_str("CAST(");
            self.param(p);
            self.sql.push_str(match self.d {
                Dialect::Postgres => " AS numeric)",
                Dialect::MySql => " AS DECIMAL(65,30))",
                Dialect::Sqlite => " AS NUMERIC)",
            });
            return;
        }
        if self.d == Dialect::MySql && matches!(p, SqlParam::Text(_)) {
            self.sql.push_str("CAST(");
            self.param(p);
            self.sql.push_str(" AS BINARY)");
        } else {
            self.param(p);
        }
    }

    fn never(&mut self) {
        self.sql.push_str("1 = 0");
    }

    fn not_null(&mut self, c: &Column) {
        self.ident(&c.name);
        self.sql.push_str(" IS NOT NULL");
    }

    /// `expr op value` or `expr [NOT] IN (values)`.
    fn compare(&mut self, c: &Column, op: &str, mut vals: Vec<SqlParam>) {
        self.expr(c);
        if vals.len() == 1 && (op == "=" || op == "<>") {
            let _ = write!(self.sql, " {op} ");
            if let Some(v) = vals.pop() {
                self.value(v);
            }
            return;
        }
        if op == "=" || op == "<>" {
            self.sql.push_str(if op == "=" { " IN (" } else { " NOT IN (" });
            for (i, v) in vals.into_iter().enumerate() {
                if i > 0 {
                    self.sql.push_str(", ");
                }
                self.value(v);
            }
            self.sql.push(')');
            return;
        }
        let _ = write!(self.sql, " {op} ");
        if let Some(v) = vals.pop() {
            self.value(v);
        }
    }

    /// One condition of the licence's row filter, with its text semantics.
    pub(crate) fn row_condition(&mut self, field: &str, op: Op, values: &[String]) -> Result<(), SqlError> {
        let c = self.col(field)?;
        let typed: Vec<SqlParam> = match c.ty {
            ColumnType::Text => values.iter().map(|v| SqlParam::Text(v.clone())).collect(),
            // only the canonical text of an integer can equal an integer's text
            ColumnType::Integer => values
                .iter()
                .filter_map(|v| v.parse::<i64>().ok().filter(|n| n.to_string() == *v))
                .map(SqlParam::Integer)
                .collect(),
            ColumnType::Bool => values
                .iter()
                .filter_map(|v| match v.as_str() {
                    "true" => Some(SqlParam::Bool(true)),
                    "false" => Some(SqlParam::Bool(false)),
                    _ => None,
                })
                .collect(),
            ColumnType::Float | ColumnType::Decimal => {
                return Err(SqlError::RowFilterNotExpressible {
                    field: field.into(),
                    why: "a number's text depends on how it is rendered",
                })
            }
            ColumnType::Temporal => values.iter().map(|v| SqlParam::Text(v.clone())).collect(),
        };
        match (op, typed.is_empty()) {
            (Op::Eq | Op::In, true) => self.never(),
            (Op::Eq | Op::In, false) => self.compare(c, "=", typed),
            (Op::Ne, true) => self.not_null(c),
            (Op::Ne, false) => self.compare(c, "<>", typed),
        }
        Ok(())
    }

    /// A client operand typed by the column; `None` on a type mismatch (never matches).
    fn operand(c: &Column, v: &str) -> Result<Option<SqlParam>, SqlError> {
        let unrepresentable = || SqlError::Unrepresentable {
            column: c.name.clone(),
            value: v.into(),
        };
        Ok(match c.ty {
            ColumnType::Text | ColumnType::Temporal => Some(SqlParam::Text(v.into())),
            ColumnType::Decimal => Decimal::parse(v).map(|_| SqlParam::Decimal(v.into())),
            ColumnType::Integer => match Decimal::parse(v) {
                None => None,
                Some(d) => Some(SqlParam::Integer(d.to_i64().ok_or_else(unrepresentable)?)),
            },
            ColumnType::Float => match Decimal::parse(v) {
                None => None,
                Some(_) => Some(SqlParam::Float(
                    v.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .ok_or_else(unrepresentable)?,
                )),
            },
            ColumnType::Bool => match v {
                "true" => Some(SqlParam::Bool(true)),
                "false" => Some(SqlParam::Bool(false)),
                _ => None,
            },
        })
    }

    /// One client filter, with [`ClientQuery::matches`]'s semantics.
    fn client_filter(&mut self, column: &str, negated: bool, op: &FilterOp) -> Result<(), SqlError> {
        let c = self.col(column)?;
        let (sym, operands): (&str, Vec<&String>) = match op {
            FilterOp::IsNull => {
                self.ident(&c.name);
                self.sql
                    .push_str(if negated { " IS NOT NULL" } else { " IS NULL" });
                return Ok(());
            }
            FilterOp::Like(p) => {
                if !matches!(c.ty, ColumnType::Text | ColumnType::Temporal) {
                    self.never();
                    return Ok(());
                }
                if negated {
                    self.sql.push_str("NOT (");
                }
                self.like(c, p);
                if negated {
                    self.sql.push(')');
                }
                return Ok(());
            }
            FilterOp::Eq(v) => ("=", vec![v]),
            FilterOp::Neq(v) => ("<>", vec![v]),
            FilterOp::Lt(v) => ("<", vec![v]),
            FilterOp::Lte(v) => ("<=", vec![v]),
            FilterOp::Gt(v) => (">", vec![v]),
            FilterOp::Gte(v) => (">=", vec![v]),
            FilterOp::In(items) => ("=", items.iter().collect()),
        };
        let ordering = matches!(sym, "<" | "<=" | ">" | ">=");
        let mut typed = Vec::new();
        for v in operands {
            if let Some(p) = Self::operand(c, v)? {
                typed.push(p);
            }
        }
        if typed.is_empty() || (ordering && c.ty == ColumnType::Bool) {
            self.never();
            return Ok(());
        }
        if negated {
            self.sql.push_str("NOT (");
        }
        self.compare(c, sym, typed);
        if negated {
            self.sql.push(')');
        }
        Ok(())
    }

    /// `like` with `*` as the only wildcard.
    fn like(&mut self, c: &Column, pattern: &str) {
        let mut p = String::with_capacity(pattern.len());
        if self.d == Dialect::Sqlite {
            for ch in pattern.chars() {
                match ch {
                    '?' => p.push_str("[?]"),
                    '[' => p.push_str("[[]"),
                    _ => p.push(ch),
                }
            }
            self.ident(&c.name);
            self.sql.push_str(" GLOB ");
            self.param(SqlParam::Text(p));
            return;
        }
        for ch in pattern.chars() {
            match ch {
                '*' => p.push('%'),
                '%' | '_' | '!' => {
                    p.push('!');
                    p.push(ch);
                }
                _ => p.push(ch),
            }
        }
        self.expr(c);
        self.sql.push_str(" LIKE ");
        self.value(SqlParam::Text(p));
        self.sql.push_str(" ESCAPE '!'");
    }

    /// The keyset predicate: rows strictly after `after` in `order` (nulls last ascending,
    /// first descending; the key never null).
    fn keyset(&mut self, order: &[OrderBy], after: &[Option<String>]) -> Result<(), SqlError> {
        self.sql.push('(');
        self.keyset_from(order, after)?;
        self.sql.push(')');
        Ok(())
    }

    fn keyset_from(&mut self, order: &[OrderBy], after: &[Option<String>]) -> Result<(), SqlError> {
        let (Some((o, rest)), Some((v, vrest))) = (order.split_first(), after.split_first()) else {
            return Ok(());
        };
        let c = self.col(&o.column)?;
        let is_key = c.name == self.t.key;
        let last = rest.is_empty();
        let typed = match v {
            None if is_key => return Err(SqlError::BadCursor("the key is never null")),
            None => None,
            Some(v) => Some(
                Self::operand(c, v)
                    .ok()
                    .flatten()
                    .ok_or(SqlError::BadCursor("a value does not fit its column"))?,
            ),
        };
        match (o.dir, typed) {
            (Direction::Asc, Some(p)) => {
                self.compare(c, ">", vec![p.clone()]);
                if !is_key {
                    self.sql.push_str(" OR ");
                    self.ident(&c.name);
                    self.sql.push_str(" IS NULL");
                }
                self.then_equal(c, p, rest, vrest, last)?;
            }
            (Direction::Desc, Some(p)) => {
                self.compare(c, "<", vec![p.clone()]);
                self.then_equal(c, p, rest, vrest, last)?;
            }
            (Direction::Asc, None) => {
                if last {
                    self.never();
                } else {
                    self.ident(&c.name);
                    self.sql.push_str(" IS NULL AND (");
                    self.keyset_from(rest, vrest)?;
                    self.sql.push(')');
                }
            }
            (Direction::Desc, None) => {
                self.not_null(c);
                if !last {
                    self.sql.push_str(" OR (");
                    self.ident(&c.name);
                    self.sql.push_str(" IS NULL AND (");
                    self.keyset_from(rest, vrest)?;
                    self.sql.push_str("))");
                }
            }
        }
        Ok(())
    }

    /// ` OR (c = p AND (rest))` unless `c` is the last order column.
    fn then_equal(
        &mut self,
        c: &Column,
        p: SqlParam,
        rest: &[OrderBy],
        vrest: &[Option<String>],
        last: bool,
    ) -> Result<(), SqlError> {
        if last {
            return Ok(());
        }
        self.sql.push_str(" OR (");
        self.compare(c, "=", vec![p]);
        self.sql.push_str(" AND (");
        self.keyset_from(rest, vrest)?;
        self.sql.push_str("))");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let col = |name: &str, ty| Column {
            name: name.into(),
            ty,
        };
        Table {
            schema: Some("reg".into()),
            name: "hydrants".into(),
            columns: vec![
                col("id", ColumnType::Text),
                col("district", ColumnType::Text),
                col("age", ColumnType::Integer),
                col("flow", ColumnType::Float),
                col("ok", ColumnType::Bool),
                col("name", ColumnType::Text),
            ],
            key: "id".into(),
        }
    }

    fn query(pairs: &[(&str, &str)]) -> ClientQuery {
        ClientQuery::from_pairs(pairs.iter().copied()).unwrap()
    }

    fn build(
        d: Dialect,
        rf: Option<&str>,
        pairs: &[(&str, &str)],
        after: Option<&[Option<String>]>,
    ) -> Result<Select, SqlError> {
        let t = table();
        let rf = rf.map(|r| RowFilter::parse(r).unwrap());
        let q = query(pairs);
        build_select(
            d,
            &SelectSpec {
                table: &t,
                read: &["id", "name"],
                row_filter: rf.as_ref(),
                query: &q,
                after,
                limit: 100,
            },
        )
    }

    fn text(s: &str) -> SqlParam {
        SqlParam::Text(s.into())
    }

    #[test]
    fn plain_page_per_dialect() {
        let pg = build(Dialect::Postgres, None, &[], None).unwrap();
        assert_eq!(
            pg.sql,
            r#"SELECT "id", "name" FROM "reg"."hydrants" ORDER BY "id" COLLATE "C" ASC NULLS LAST LIMIT $1"#
        );
        assert_eq!(pg.params, vec![SqlParam::Integer(100)]);
        let my = build(Dialect::MySql, None, &[], None).unwrap();
        assert_eq!(
            my.sql,
            "SELECT `id`, `name` FROM `reg`.`hydrants` ORDER BY \
             CAST(CONVERT(`id` USING utf8mb4) AS BINARY) ASC LIMIT ?"
        );
        let lite = build(Dialect::Sqlite, None, &[], None).unwrap();
        assert_eq!(
            lite.sql,
            r#"SELECT "id", "name" FROM "reg"."hydrants" ORDER BY "id" COLLATE BINARY ASC NULLS LAST LIMIT ?"#
        );
    }

    #[test]
    fn row_filter_and_every_operator_postgres() {
        let s = build(
            Dialect::Postgres,
            Some("district in ('Huangpu', 'Xuhui') and age != 7 and ok = 'true'"),
            &[
                ("age", "gte.18"),
                ("age", "lt.65"),
                ("district", "neq.x"),
                ("name", "like.*a%_!*"),
                ("name", "not.in.(a,\"b,c\")"),
                ("flow", "lte.1.5"),
                ("ok", "not.eq.false"),
                ("flow", "not.is.null"),
                ("name", "is.null"),
                ("order", "age.desc"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            s.sql,
            r#"SELECT "id", "name", "district", "age", "ok", "flow" FROM "reg"."hydrants" WHERE "district" COLLATE "C" IN ($1, $2) AND "age" <> $3 AND "ok" = $4 AND "age" >= $5 AND "age" < $6 AND "district" COLLATE "C" <> $7 AND "name" COLLATE "C" LIKE $8 ESCAPE '!' AND NOT ("name" COLLATE "C" IN ($9, $10)) AND "flow" <= $11 AND NOT ("ok" = $12) AND "flow" IS NOT NULL AND "name" IS NULL ORDER BY "age" DESC NULLS FIRST, "id" COLLATE "C" ASC NULLS LAST LIMIT $13"#
        );
        assert_eq!(
            s.params,
            vec![
                text("Huangpu"),
                text("Xuhui"),
                SqlParam::Integer(7),
                SqlParam::Bool(true),
                SqlParam::Integer(18),
                SqlParam::Integer(65),
                text("x"),
                text("%a!%!_!!%"),
                text("a"),
                text("b,c"),
                SqlParam::Float(1.5),
                SqlParam::Bool(false),
                SqlParam::Integer(100),
            ]
        );
        assert_eq!(
            s.order,
            vec![
                OrderBy {
                    column: "age".into(),
                    dir: Direction::Desc
                },
                OrderBy {
                    column: "id".into(),
                    dir: Direction::Asc
                }
            ]
        );
    }

    #[test]
    fn mysql_and_sqlite_text_compare_by_bytes_and_like() {
        let pairs = [("district", "eq.x"), ("name", "like.a*?[b%")];
        let my = build(Dialect::MySql, Some("district = 'Huangpu'"), &pairs, None).unwrap();
        assert_eq!(
            my.sql,
            "SELECT `id`, `name`, `district` FROM `reg`.`hydrants` WHERE \
             CAST(CONVERT(`district` USING utf8mb4) AS BINARY) = CAST(? AS BINARY) AND \
             CAST(CONVERT(`district` USING utf8mb4) AS BINARY) = CAST(? AS BINARY) AND \
             CAST(CONVERT(`name` USING utf8mb4) AS BINARY) LIKE CAST(? AS BINARY) ESCAPE '!' \
             ORDER BY CAST(CONVERT(`id` USING utf8mb4) AS BINARY) ASC LIMIT ?"
        );
        assert_eq!(
            my.params,
            vec![
                text("Huangpu"),
                text("x"),
                text("a%?[b!%"),
                SqlParam::Integer(100)
            ]
        );
        let lite = build(Dialect::Sqlite, Some("district = 'Huangpu'"), &pairs, None).unwrap();
        assert_eq!(
            lite.sql,
            r#"SELECT "id", "name", "district" FROM "reg"."hydrants" WHERE "district" COLLATE BINARY = ? AND "district" COLLATE BINARY = ? AND "name" GLOB ? ORDER BY "id" COLLATE BINARY ASC NULLS LAST LIMIT ?"#
        );
        assert_eq!(
            lite.params,
            vec![
                text("Huangpu"),
                text("x"),
                text("a*[?][[]b%"),
                SqlParam::Integer(100)
            ]
        );
    }

    #[test]
    fn type_mismatches_are_false_and_row_filters_keep_text_semantics() {
        let sql = |rf: Option<&str>, pairs: &[(&str, &str)]| {
            let s = build(Dialect::Postgres, rf, pairs, None).unwrap();
            let w = s.sql.split(" WHERE ").nth(1).unwrap_or("");
            (w.split(" ORDER BY ").next().unwrap().to_owned(), s.params)
        };
        // client: a mismatch is FALSE, negated or not
        assert_eq!(sql(None, &[("age", "eq.abc")]).0, "1 = 0");
        assert_eq!(sql(None, &[("age", "not.eq.abc")]).0, "1 = 0");
        assert_eq!(sql(None, &[("age", "not.in.(abc,x)")]).0, "1 = 0");
        assert_eq!(sql(None, &[("age", "like.1*")]).0, "1 = 0");
        assert_eq!(sql(None, &[("ok", "lt.true")]).0, "1 = 0");
        assert_eq!(sql(None, &[("ok", "eq.1")]).0, "1 = 0");
        let (w, p) = sql(None, &[("age", "in.(abc,5,1e1)")]);
        assert_eq!(w, r#""age" IN ($1, $2)"#);
        assert_eq!(&p[..2], &[SqlParam::Integer(5), SqlParam::Integer(10)]);
        // text columns take the operand as text, whatever it looks like
        assert_eq!(sql(None, &[("name", "eq.5")]).1[0], text("5"));
        // row filter: only canonical integer text can equal an integer's text
        assert_eq!(sql(Some("age = '07'"), &[]).0, "1 = 0");
        assert_eq!(sql(Some("age in ('07', 7.0, 1e1)"), &[]).0, "1 = 0");
        assert_eq!(sql(Some("age != '07'"), &[]).0, r#""age" IS NOT NULL"#);
        assert_eq!(sql(Some("ok = 1"), &[]).0, "1 = 0");
        let (w, p) = sql(Some("age in (7, '07', -3)"), &[]);
        assert_eq!(w, r#""age" IN ($1, $2)"#);
        assert_eq!(&p[..2], &[SqlParam::Integer(7), SqlParam::Integer(-3)]);
    }

    #[test]
    fn fails_closed() {
        let e =
            |rf: Option<&str>, pairs: &[(&str, &str)]| build(Dialect::Postgres, rf, pairs, None).unwrap_err();
        assert!(matches!(
            e(Some("flow = 1.5"), &[]),
            SqlError::RowFilterNotExpressible { .. }
        ));
        assert!(matches!(
            e(Some("secret = 'x'"), &[]),
            SqlError::UnknownColumn { .. }
        ));
        assert!(matches!(
            e(None, &[("age", "lt.17.5")]),
            SqlError::Unrepresentable { .. }
        ));
        assert!(matches!(
            e(None, &[("age", "lt.1e30")]),
            SqlError::Unrepresentable { .. }
        ));
        assert!(matches!(
            e(None, &[("flow", "lt.1e999")]),
            SqlError::Unrepresentable { .. }
        ));
        assert!(matches!(
            e(None, &[("nosuch", "eq.1")]),
            SqlError::UnknownColumn { .. }
        ));
        assert!(matches!(
            e(None, &[("order", "nosuch")]),
            SqlError::UnknownColumn { .. }
        ));
        let t = table();
        let q = ClientQuery::default();
        let spec = |read: &'static [&'static str], limit| SelectSpec {
            table: &t,
            read,
            row_filter: None,
            query: &q,
            after: None,
            limit,
        };
        assert!(matches!(
            build_select(Dialect::Sqlite, &spec(&["nosuch"], 1)),
            Err(SqlError::UnknownColumn { .. })
        ));
        assert_eq!(
            build_select(Dialect::Sqlite, &spec(&[], u64::MAX)),
            Err(SqlError::LimitTooLarge)
        );
        let mut bad = table();
        bad.columns[1].name = "a\0b".into();
        let spec = SelectSpec {
            table: &bad,
            ..spec(&[], 1)
        };
        assert!(matches!(
            build_select(Dialect::Sqlite, &spec),
            Err(SqlError::BadIdentifier(_))
        ));
    }

    #[test]
    fn the_probe_reads_the_order_columns_of_the_last_row_and_the_one_after() {
        let t = table();
        let rf = RowFilter::parse("district = 'Huangpu'").unwrap();
        let q = query(&[("order", "age.desc"), ("name", "like.A*")]);
        let spec = SelectSpec {
            table: &t,
            read: &["id", "name"],
            row_filter: Some(&rf),
            query: &q,
            after: None,
            limit: 100,
        };
        let page = build_select(Dialect::Postgres, &spec).unwrap();
        let probe = build_probe(Dialect::Postgres, &spec).unwrap();
        assert_eq!(probe.columns, vec!["age".to_owned(), "id".to_owned()]);
        let tail = |s: &str| {
            s.split_once(" FROM ")
                .unwrap()
                .1
                .split(" LIMIT ")
                .next()
                .unwrap()
                .to_owned()
        };
        assert_eq!(tail(&probe.sql), tail(&page.sql), "same rows, same order");
        assert!(probe.sql.ends_with("LIMIT $3 OFFSET $4"), "{}", probe.sql);
        assert_eq!(&probe.params[2..], &[SqlParam::Integer(2), SqlParam::Integer(99)]);
    }

    #[test]
    fn keyset_pages() {
        let v = |s: &str| Some(s.to_owned());
        let key_only = build(Dialect::Postgres, None, &[], Some(&[v("H-9")])).unwrap();
        assert_eq!(
            key_only.sql,
            r#"SELECT "id", "name" FROM "reg"."hydrants" WHERE ("id" COLLATE "C" > $1) ORDER BY "id" COLLATE "C" ASC NULLS LAST LIMIT $2"#
        );
        assert_eq!(key_only.params[0], text("H-9"));
        let desc = build(
            Dialect::Sqlite,
            None,
            &[("order", "id.desc,age")],
            Some(&[v("H-9")]),
        )
        .unwrap();
        assert!(
            desc.sql.contains(
                r#"WHERE ("id" COLLATE BINARY < ?) ORDER BY "id" COLLATE BINARY DESC NULLS FIRST LIMIT ?"#
            ),
            "{}",
            desc.sql
        );
        let two = build(
            Dialect::Postgres,
            None,
            &[("order", "age")],
            Some(&[v("30"), v("H-9")]),
        )
        .unwrap();
        assert!(
            two.sql.contains(
                r#"WHERE ("age" > $1 OR "age" IS NULL OR ("age" = $2 AND ("id" COLLATE "C" > $3)))"#
            ),
            "{}",
            two.sql
        );
        assert_eq!(
            &two.params[..3],
            &[SqlParam::Integer(30), SqlParam::Integer(30), text("H-9")]
        );
        let null = build(
            Dialect::Postgres,
            None,
            &[("order", "age")],
            Some(&[None, v("H-9")]),
        )
        .unwrap();
        assert!(
            null.sql
                .contains(r#"WHERE ("age" IS NULL AND ("id" COLLATE "C" > $1))"#),
            "{}",
            null.sql
        );
        let null_desc = build(
            Dialect::MySql,
            None,
            &[("order", "age.desc")],
            Some(&[None, v("H-9")]),
        )
        .unwrap();
        assert!(
            null_desc.sql.contains(
                "WHERE (`age` IS NOT NULL OR (`age` IS NULL AND (CAST(CONVERT(`id` USING utf8mb4) AS BINARY) > CAST(? AS BINARY))))"
            ),
            "{}",
            null_desc.sql
        );
        for after in [&[v("1")][..], &[v("x"), v("H")][..], &[v("1"), None][..]] {
            assert!(matches!(
                build(Dialect::Postgres, None, &[("order", "age")], Some(after)),
                Err(SqlError::BadCursor(_))
            ));
        }
    }

    /// Hostile strings in every value position reach only the parameters: the SQL text is
    /// byte for byte the text built for harmless values; in identifier positions they are
    /// refused (not ids, or not declared).
    #[test]
    fn injection_never_reaches_the_sql_text() {
        let hostile = [
            "\"; drop table x; --",
            "'; drop table x; --",
            "` drop",
            "$1",
            "?",
            "\\'",
            "\u{202e}\u{0}é' OR '1'='1",
            "*/ union select * from users /*",
        ];
        for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
            let build_with = |v: &str| {
                let list = format!("in.(\"{}\",x)", v.replace('\\', "\\\\").replace('"', "\\\""));
                let (eq, like, neq) = (format!("eq.{v}"), format!("like.{v}*"), format!("not.neq.{v}"));
                let pairs = [
                    ("district", eq.as_str()),
                    ("name", like.as_str()),
                    ("name", list.as_str()),
                    ("id", neq.as_str()),
                    ("order", "name.desc"),
                ];
                let rf = format!("district = '{}'", v.replace('\'', "''"));
                build(
                    d,
                    Some(&rf),
                    &pairs,
                    Some(&[Some(v.to_owned()), Some(v.to_owned())]),
                )
                .unwrap()
            };
            let benign = build_with("benign");
            for h in hostile {
                let s = build_with(h);
                assert_eq!(s.sql, benign.sql, "{d:?} {h:?}");
                // (placeholders `$1` and `?` are in every statement; equality above covers them)
                assert!(h.len() <= 2 || !s.sql.contains(h), "{d:?}: {h:?} in {}", s.sql);
                assert!(!s.sql.contains("drop") && !s.sql.contains("union") && !s.sql.contains('\0'));
                assert!(
                    s.params.iter().any(|p| *p == SqlParam::Text(h.into())),
                    "{d:?}: {h:?} bound"
                );
            }
            // identifier positions: not an id → the parser refuses; an id not declared → refused here
            for h in hostile {
                for pairs in [vec![(h, "eq.1")], vec![("order", h)], vec![("select", h)]] {
                    assert!(ClientQuery::from_pairs(pairs.iter().copied()).is_err(), "{h:?}");
                }
            }
            let t = table();
            for h in hostile.iter().chain(&["drop", "id;"]) {
                let hq = ClientQuery {
                    filters: query(&[("name", "eq.1")])
                        .filters
                        .into_iter()
                        .map(|mut f| {
                            f.column = (*h).to_owned();
                            f
                        })
                        .collect(),
                    ..ClientQuery::default()
                };
                let ho = ClientQuery {
                    order: vec![OrderBy {
                        column: (*h).to_owned(),
                        dir: Direction::Asc,
                    }],
                    ..ClientQuery::default()
                };
                let read = [*h];
                for (q, read) in [
                    (&hq, &[][..]),
                    (&ho, &[][..]),
                    (&ClientQuery::default(), &read[..]),
                ] {
                    let spec = SelectSpec {
                        table: &t,
                        read,
                        row_filter: None,
                        query: q,
                        after: None,
                        limit: 1,
                    };
                    assert_eq!(
                        build_select(d, &spec),
                        Err(SqlError::UnknownColumn {
                            column: (*h).to_owned()
                        }),
                        "{d:?} {h:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn declared_identifiers_are_quoted() {
        let mut t = table();
        t.name = "odd\"name`x".into();
        t.schema = None;
        t.columns[0].name = "i\"d`".into();
        t.key = "i\"d`".into();
        let q = ClientQuery::default();
        let spec = SelectSpec {
            table: &t,
            read: &[],
            row_filter: None,
            query: &q,
            after: None,
            limit: 1,
        };
        assert_eq!(
            build_select(Dialect::Postgres, &spec).unwrap().sql,
            r#"SELECT "i""d`" FROM "odd""name`x" ORDER BY "i""d`" COLLATE "C" ASC NULLS LAST LIMIT $1"#
        );
        assert_eq!(
            build_select(Dialect::MySql, &spec).unwrap().sql,
            "SELECT `i\"d``` FROM `odd\"name``x` ORDER BY \
             CAST(CONVERT(`i\"d``` USING utf8mb4) AS BINARY) ASC LIMIT ?"
        );
    }
}

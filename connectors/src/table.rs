//! What every SQL source's config declares in its `[sources.<dataset>.table]`: the table or
//! view, its key and its columns with their types (the only identifiers that ever reach SQL);
//! the batching of rows for the masker; and the one `SELECT` of a fetch built from it.

use crate::source::{Fetch, FetchError};
use crate::sql::{build_probe, build_select, Column, ColumnType, Dialect, Select, SelectSpec, Table};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A declared column type in a source config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclaredType {
    /// `text`, `varchar` (not blank-padded `char(n)`).
    Text,
    /// A 64-bit (or smaller) integer.
    Integer,
    /// A double (or real).
    Float,
    /// A boolean.
    Bool,
    /// An exact decimal (`numeric`, `decimal`): sent as a JSON number with the database's
    /// digits (`10.50`).
    Decimal,
    /// A date (`date`): sent as its ISO 8601 text (`2025-07-01`).
    Date,
    /// A date and time (`timestamp`, `timestamptz`, `datetime`): sent as the database's ISO
    /// 8601 text in UTC (`2025-07-01 08:30:00`, PostgreSQL's `timestamptz` with `+00`).
    Timestamp,
}

impl From<DeclaredType> for ColumnType {
    fn from(t: DeclaredType) -> Self {
        match t {
            DeclaredType::Text => ColumnType::Text,
            DeclaredType::Integer => ColumnType::Integer,
            DeclaredType::Float => ColumnType::Float,
            DeclaredType::Bool => ColumnType::Bool,
            DeclaredType::Decimal => ColumnType::Decimal,
            DeclaredType::Date | DeclaredType::Timestamp => ColumnType::Temporal,
        }
    }
}

/// The table of a SQL source (`[sources.<dataset>.table]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Schema (PostgreSQL) or database (MySQL) of the table, if not the connection's default.
    #[serde(default)]
    pub schema: Option<String>,
    /// Table or view.
    pub name: String,
    /// Key column: unique and NOT NULL; the default order and the keyset of pages.
    pub key: String,
    /// Every column the gateway may read, with its type: `{ id = "text", reading = "float" }`.
    /// Names are the dataset's field names.
    pub columns: BTreeMap<String, DeclaredType>,
}

/// Default longest run of one statement, ms.
pub fn default_statement_timeout() -> u64 {
    30_000
}

/// Default longest wait for the next rows, ms.
pub fn default_read_timeout() -> u64 {
    30_000
}

/// Rows gathered into one batch for the masker (a batch also ends at [`BATCH_BYTES`]).
pub const BATCH_ROWS: usize = 512;
/// Cell text gathered into one batch for the masker.
pub const BATCH_BYTES: usize = 64 * 1024;

impl TableConfig {
    /// Problems with the table part, as (relative path, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let bad_ident = |s: &str| s.is_empty() || s.contains('\0');
        if bad_ident(&self.name) {
            out.push(("name".into(), "must be a table or view name".into()));
        }
        if self.schema.as_deref().is_some_and(bad_ident) {
            out.push(("schema".into(), "must be a schema name".into()));
        }
        if self.columns.is_empty() {
            out.push(("columns".into(), "declare at least the key column".into()));
        }
        if let Some(c) = self.columns.keys().find(|c| bad_ident(c)) {
            out.push(("columns".into(), format!("{c:?} is not a column name")));
        }
        match self.columns.get(&self.key) {
            None => out.push(("key".into(), format!("{:?} is not a declared column", self.key))),
            Some(DeclaredType::Float) => out.push(("key".into(), "a float column cannot be the key".into())),
            Some(_) => {}
        }
        out
    }

    /// The table as the statement builder takes it.
    pub fn table(&self) -> Table {
        Table {
            schema: self.schema.clone(),
            name: self.name.clone(),
            columns: self
                .columns
                .iter()
                .map(|(name, ty)| Column {
                    name: name.clone(),
                    ty: (*ty).into(),
                })
                .collect(),
            key: self.key.clone(),
        }
    }

    /// The declared type of a column.
    pub fn type_of(&self, column: &str) -> Option<DeclaredType> {
        self.columns.get(column).copied()
    }

    /// The declared type of each of a statement's columns, in order.
    pub fn types_of(&self, columns: &[String]) -> Vec<Option<DeclaredType>> {
        columns.iter().map(|c| self.type_of(c)).collect()
    }

    /// `Connector::check` of a SQL source: a one-row fetch of every declared column.
    pub async fn check<C: crate::Connector + ?Sized>(&self, source: &C) -> Result<String, String> {
        let plan = self.check_plan();
        let fetch = Fetch {
            plan: Some(&plan),
            ..Fetch::default()
        };
        crate::source::check_by_fetch(source, &fetch).await
    }

    /// The one parameterised `SELECT` of a fetch: the fetch's fields that are declared
    /// columns, the row filter, the client's filters and order, the keyset position.
    pub fn select(&self, table: &Table, dialect: Dialect, fetch: &Fetch<'_>) -> Result<Select, FetchError> {
        self.statement(table, dialect, fetch, false)
    }

    /// The page's end probe ([`build_probe`]) of the same fetch.
    pub fn probe(&self, table: &Table, dialect: Dialect, fetch: &Fetch<'_>) -> Result<Select, FetchError> {
        self.statement(table, dialect, fetch, true)
    }

    fn statement(
        &self,
        table: &Table,
        dialect: Dialect,
        fetch: &Fetch<'_>,
        probe: bool,
    ) -> Result<Select, FetchError> {
        let read: Vec<&str> = fetch
            .plan
            .iter()
            .flat_map(|p| p.read_fields())
            .filter(|f| self.columns.contains_key(*f))
            .collect();
        let query = fetch.query.cloned().unwrap_or_default();
        let after = fetch.after.as_deref();
        let spec = SelectSpec {
            table,
            read: &read,
            row_filter: fetch.row_filter,
            query: &query,
            after,
            limit: fetch.limit,
        };
        if probe {
            build_probe(dialect, &spec)
        } else {
            build_select(dialect, &spec)
        }
        .map_err(|e| FetchError::Query(e.to_string()))
    }
}

/// The text of a cell for a keyset cursor, as the statement builder reads it back: `None`
/// for null.
pub fn cursor_text(batch_cell: CursorCell<'_>) -> Option<String> {
    match batch_cell {
        CursorCell::Null => None,
        CursorCell::Text(t) => Some(t.to_owned()),
        CursorCell::Int(i) => Some(i.to_string()),
        CursorCell::Float(f) => Some(ryu::Buffer::new().format_finite(f).to_owned()),
        CursorCell::Bool(b) => Some(b.to_string()),
    }
}

/// A value of an order column read by a probe.
#[derive(Debug, Clone, Copy)]
pub enum CursorCell<'a> {
    /// NULL.
    Null,
    /// Text.
    Text(&'a str),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl TableConfig {
    /// A plan emitting every declared column, for checking the source: a fetch with it reads
    /// them all.
    fn check_plan(&self) -> sluice_policy::plan::FieldPlan {
        use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
        FieldPlan {
            record_key: None,
            marks: None,
            fields: self
                .columns
                .keys()
                .map(|name| PlannedField {
                    name: name.clone(),
                    action: FieldAction::Emit { scan: false },
                })
                .collect(),
            row_filter: None,
            key: sluice_policy::mask::PseudonymKey::derive(b"check", "check", "check"),
        }
    }
}

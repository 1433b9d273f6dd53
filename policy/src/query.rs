//! The licensee's query: PostgREST-style `select`, filters and `order` on a records request.
//!
//! Conventions (after PostgREST; anything else is refused with a [`QueryError`]):
//!
//! - `select=a,b`: the fields to return (each must be a field of the licence's plan).
//! - `col=op.value` filters, all ANDed. Operators: `eq`, `neq`, `lt`, `lte`, `gt`, `gte`,
//!   `in.(a,b,"c,d")`, `like` (`*` is the only wildcard; `%` and `_` are plain characters),
//!   `is.null`. Every operator takes a `not.` prefix (`not.eq.5`, `not.in.(a,b)`,
//!   `not.is.null`), PostgREST's spelling; `is.not_null` and `not.not.` are refused.
//!   The value is everything after the operator's dot, untyped: it takes the type of the
//!   value it is compared with (see [`ClientQuery::matches`]).
//! - In `in.( … )` lists, items are separated by `,`; an item holding `,`, `(`, `)`, `"` or
//!   `\`, or the empty item, is written in double quotes, inside which `\` escapes the next
//!   character (`in.("a,b","say \"hi\"","")`).
//! - `order=a.desc,b`: `asc` (the default) or `desc`; `nullsfirst` / `nullslast` are refused.
//! - `after=<cursor>`: the keyset cursor the gateway handed out, carried opaquely.
//! - The gateway's own parameters ([`GATEWAY_PARAMS`]) are skipped; the logical operators
//!   `or`, `and` and `not` are refused as parameter names (a client query can only narrow).
//!
//! A column may carry several filters (`age=gte.18&age=lt.65` is a range; all must hold),
//! but the same parameter with the same value twice is refused as a repetition.
//!
//! Privacy: [`ClientQuery::authorize`] lets a query filter or order only on fields the plan
//! emits in clear and unscanned; the licence's row filter is ANDed to the client's filters
//! ([`admits`]), so a client query can only narrow what the licence lets through.
//!
//! Pure: no IO.

use crate::id::is_valid_id;
use crate::plan::{FieldAction, FieldPlan};
use crate::problem_code::ProblemCode;
use crate::rowfilter::RowFilter;
use std::cmp::Ordering;
use std::fmt;

/// Query parameters that belong to the gateway, not to the query: skipped by
/// [`ClientQuery::from_pairs`].
pub const GATEWAY_PARAMS: [&str; 5] = ["limit", "offset", "cursor", "format", "fields"];
/// Most filters in one query.
pub const MAX_FILTERS: usize = 20;
/// Most items in one `in` list.
pub const MAX_IN_ITEMS: usize = 100;
/// Longest filter value (one `eq` value, one `in` item, one `like` pattern), in bytes.
pub const MAX_VALUE_LEN: usize = 256;
/// Longest raw parameter value (a whole `in` list, `select`, `order`), in bytes.
pub const MAX_PARAM_LEN: usize = 8192;
/// Most `order` columns.
pub const MAX_ORDER: usize = 8;
/// Most `select` fields.
pub const MAX_SELECT: usize = 256;
/// Longest `after` cursor, in bytes.
pub const MAX_AFTER_LEN: usize = 4096;

/// A licensee's query, parsed from the request's query pairs ([`ClientQuery::from_pairs`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientQuery {
    /// `select=a,b`: the fields to return; all the plan's when `None`.
    pub select: Option<Vec<String>>,
    /// `col=op.value` filters, all of which must hold.
    pub filters: Vec<Filter>,
    /// `order=a.desc,b.asc`, most significant first.
    pub order: Vec<OrderBy>,
    /// `after=<cursor>`: the keyset cursor, opaque here (the gateway makes and reads it).
    pub after: Option<String>,
}

/// One filter: `column=[not.]op.value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The column (a valid id).
    pub column: String,
    /// `not.` prefix: the operator must be false (on a non-null value of a comparable type).
    pub negated: bool,
    /// The operator and its operand.
    pub op: FilterOp,
}

/// A filter operator with its untyped operand(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterOp {
    /// `eq.v`: equal.
    Eq(String),
    /// `neq.v`: not equal (a null never matches).
    Neq(String),
    /// `lt.v`: less than.
    Lt(String),
    /// `lte.v`: less than or equal.
    Lte(String),
    /// `gt.v`: greater than.
    Gt(String),
    /// `gte.v`: greater than or equal.
    Gte(String),
    /// `in.(a,b)`: equal to one of the items.
    In(Vec<String>),
    /// `like.pat`: a string matching the pattern, `*` matching any run of characters.
    Like(String),
    /// `is.null`: null or absent.
    IsNull,
}

/// One `order` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    /// The column (a valid id).
    pub column: String,
    /// The direction.
    pub dir: Direction,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending (`asc`, the default).
    Asc,
    /// Descending (`desc`).
    Desc,
}

/// Why a query did not parse; every variant names the parameter. Maps to 400 `bad-request`
/// ([`QueryError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `select`, `order` or `after` given twice, or the same filter parameter and value twice.
    #[error("the parameter {} is given more than once", Shown(.param))]
    Repeated {
        /// The parameter name.
        param: String,
    },
    /// A column name that is not an id (`[A-Za-z0-9._-]{1,64}`).
    #[error("in {}: {} is not a valid column name", Shown(.param), Shown(.column))]
    BadColumn {
        /// The parameter name.
        param: String,
        /// The offending column name.
        column: String,
    },
    /// `or`, `and` or `not` as a parameter name: logical operators are not supported.
    #[error("the parameter {} is a logical operator, which is not supported (filters are ANDed)", Shown(.param))]
    LogicalOperator {
        /// The parameter name.
        param: String,
    },
    /// A filter value without a known operator.
    #[error("in {}: unknown or missing operator {} (use eq, neq, lt, lte, gt, gte, in, like or is, optionally after not.)", Shown(.param), Shown(.op))]
    UnknownOperator {
        /// The parameter name.
        param: String,
        /// What stood where the operator belongs.
        op: String,
    },
    /// Well-formed but outside what this interface supports.
    #[error("in {}: {what} is not supported", Shown(.param))]
    Unsupported {
        /// The parameter name.
        param: String,
        /// What was asked.
        what: &'static str,
    },
    /// Malformed syntax.
    #[error("in {}: {msg}", Shown(.param))]
    Malformed {
        /// The parameter name.
        param: String,
        /// What is wrong.
        msg: &'static str,
    },
    /// A value, or the whole parameter, is too long.
    #[error("in {}: a value is longer than {max} bytes", Shown(.param))]
    TooLong {
        /// The parameter name.
        param: String,
        /// The limit.
        max: usize,
    },
    /// Too many filters, list items, order or select entries.
    #[error("in {}: more than {max} entries", Shown(.param))]
    TooMany {
        /// The parameter name (or `filters` for the filter count).
        param: String,
        /// The limit.
        max: usize,
    },
}

impl QueryError {
    /// The problem type: always `bad-request`.
    pub fn code(&self) -> ProblemCode {
        ProblemCode::BadRequest
    }
}

/// Why a well-formed query is refused for a licence ([`ClientQuery::authorize`]). The
/// message names only the field the client gave: it never says whether a field the plan
/// does not hold exists in the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryRefusal {
    /// `select` names a field the plan does not emit.
    #[error("the field {} is not among the licence's fields", Shown(.field))]
    FieldNotAllowed {
        /// The field.
        field: String,
    },
    /// A filter or `order` on a field that is not emitted in clear and unscanned.
    #[error("the field {} cannot be filtered or ordered on under this licence", Shown(.field))]
    FieldNotFilterable {
        /// The field.
        field: String,
    },
}

impl QueryRefusal {
    /// The problem type: `field-not-allowed` or `field-not-filterable` (both 400).
    pub fn code(&self) -> ProblemCode {
        match self {
            Self::FieldNotAllowed { .. } => ProblemCode::FieldNotAllowed,
            Self::FieldNotFilterable { .. } => ProblemCode::FieldNotFilterable,
        }
    }
}

/// A record's value for one field, as [`ClientQuery::matches`] compares it: the ORIGINAL
/// (pre-mask) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// JSON `null` (an absent field is `None` from the lookup, treated the same way).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as its JSON text (`12`, `-0.5`, `1e3`); compared with exact decimal
    /// semantics, never through `f64`.
    Number(&'a str),
    /// A decoded string.
    String(&'a str),
    /// An array or object: matches no filter but `not.is.null`.
    Composite,
}

impl<'a> FieldValue<'a> {
    /// The text the licence's [`RowFilter`] sees for this value, as the streaming masker
    /// gives it: strings decoded, numbers as written, `true`/`false`, and `None` for null and
    /// composites (a row filter never matches them).
    pub fn filter_text(&self) -> Option<&'a str> {
        match *self {
            Self::Null | Self::Composite => None,
            Self::Bool(true) => Some("true"),
            Self::Bool(false) => Some("false"),
            Self::Number(s) | Self::String(s) => Some(s),
        }
    }
}

/// Whether a record passes the licence's row filter AND the client's query: the one way to
/// combine them, so the client can only narrow. `value_of` gives a field's original value
/// (`None` when absent).
pub fn admits<'a>(
    row_filter: Option<&RowFilter>,
    query: &ClientQuery,
    mut value_of: impl FnMut(&str) -> Option<FieldValue<'a>>,
) -> bool {
    let licensed = match row_filter {
        None => true,
        Some(f) => f.matches(|name| value_of(name).and_then(|v| v.filter_text())),
    };
    licensed && query.matches(value_of)
}

impl ClientQuery {
    /// Parses the request's query pairs (already percent-decoded). `select`, `order` and
    /// `after` are the query's own; the gateway's parameters ([`GATEWAY_PARAMS`]) are
    /// skipped; every other name is a filter column with a `[not.]op.value` value.
    ///
    /// ```
    /// use sluice_policy::query::{ClientQuery, FilterOp};
    /// let q = ClientQuery::from_pairs([("age", "gte.18"), ("district", "in.(Huangpu,\"Jing,an\")"),
    ///     ("order", "age.desc"), ("limit", "5")]).unwrap();
    /// assert_eq!(q.filters[1].op, FilterOp::In(vec!["Huangpu".into(), "Jing,an".into()]));
    /// ```
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, QueryError> {
        let mut q = ClientQuery::default();
        let mut raw_filters: Vec<(&str, &str)> = Vec::new();
        for (name, value) in pairs {
            if GATEWAY_PARAMS.contains(&name) {
                continue;
            }
            let repeated = || QueryError::Repeated { param: name.into() };
            if value.len() > MAX_PARAM_LEN {
                return Err(QueryError::TooLong {
                    param: name.into(),
                    max: MAX_PARAM_LEN,
                });
            }
            match name {
                "select" => {
                    if q.select.is_some() {
                        return Err(repeated());
                    }
                    q.select = Some(parse_select(value)?);
                }
                "order" => {
                    if !q.order.is_empty() {
                        return Err(repeated());
                    }
                    q.order = parse_order(value)?;
                }
                "after" => {
                    if q.after.is_some() {
                        return Err(repeated());
                    }
                    if value.is_empty() {
                        return Err(malformed("after", "the cursor is empty"));
                    }
                    if value.len() > MAX_AFTER_LEN {
                        return Err(QueryError::TooLong {
                            param: name.into(),
                            max: MAX_AFTER_LEN,
                        });
                    }
                    q.after = Some(value.into());
                }
                "or" | "and" | "not" => return Err(QueryError::LogicalOperator { param: name.into() }),
                _ => {
                    if raw_filters.contains(&(name, value)) {
                        return Err(repeated());
                    }
                    if raw_filters.len() == MAX_FILTERS {
                        return Err(QueryError::TooMany {
                            param: "filters".into(),
                            max: MAX_FILTERS,
                        });
                    }
                    raw_filters.push((name, value));
                    q.filters.push(parse_filter(name, value)?);
                }
            }
        }
        Ok(q)
    }

    /// The query as pairs [`ClientQuery::from_pairs`] reads back to an equal query: `select`,
    /// the filters in order, `order`, `after`.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(s) = &self.select {
            out.push(("select".into(), s.join(",")));
        }
        for f in &self.filters {
            out.push((f.column.clone(), f.value_text()));
        }
        if !self.order.is_empty() {
            out.push(("order".into(), self.order_text()));
        }
        if let Some(a) = &self.after {
            out.push(("after".into(), a.clone()));
        }
        out
    }

    /// The `order` as written (`a.desc,id.asc`); empty without one.
    pub fn order_text(&self) -> String {
        let items: Vec<String> = self
            .order
            .iter()
            .map(|o| {
                let dir = match o.dir {
                    Direction::Asc => "asc",
                    Direction::Desc => "desc",
                };
                format!("{}.{dir}", o.column)
            })
            .collect();
        items.join(",")
    }

    /// Checks the query against the licence's plan: `select` ⊆ the plan's fields (else
    /// `field-not-allowed`); every filter and order column must be a plan field emitted in
    /// clear and unscanned (`FieldAction::Emit { scan: false }`), else `field-not-filterable`
    /// — a masked, scanned or unlicensed field alike, so the refusal never tells whether an
    /// unlicensed field exists in the source. Only the plan is consulted.
    pub fn authorize(&self, plan: &FieldPlan) -> Result<(), QueryRefusal> {
        if let Some(select) = &self.select {
            if let Some(f) = select.iter().find(|s| !plan.fields.iter().any(|p| p.name == **s)) {
                return Err(QueryRefusal::FieldNotAllowed { field: f.clone() });
            }
        }
        let clear = |c: &str| {
            plan.fields
                .iter()
                .any(|p| p.name == c && p.action == FieldAction::Emit { scan: false })
        };
        let columns = self
            .filters
            .iter()
            .map(|f| &f.column)
            .chain(self.order.iter().map(|o| &o.column));
        for c in columns {
            if !clear(c) {
                return Err(QueryRefusal::FieldNotFilterable { field: c.clone() });
            }
        }
        Ok(())
    }

    /// Whether a record passes every client filter (the licence's row filter is separate:
    /// combine with [`admits`], never on its own). `value_of` gives a field's ORIGINAL value,
    /// `None` when absent (treated as null).
    ///
    /// The untyped operand takes the type of the value:
    /// - a number is compared numerically, exactly (decimal, not `f64`), with an operand that
    ///   parses as a JSON-style number (`-?digits[.digits][e[+-]digits]`, leading zeros
    ///   allowed); any other operand never matches it;
    /// - a string is compared with the operand's text byte by byte (UTF-8 bytes, i.e. code
    ///   point order, no collation); `like` applies only to strings;
    /// - a boolean matches `eq`/`neq`/`in` with `true`/`false`; ordering operators and any other
    ///   operand never match it;
    /// - null (or absent) matches only `is.null`; `eq`, `neq`, `in` etc. never match it;
    /// - a composite matches only `not.is.null`.
    ///
    /// `not.op` holds when the value is non-null, of a type the operand can be compared with,
    /// and `op` does not hold — as SQL's `NOT` with its nulls. Type mismatches never match and
    /// never error, negated or not. An `in` item of the wrong type is ignored; a list with no
    /// item of the value's type never matches.
    pub fn matches<'a>(&self, mut value_of: impl FnMut(&str) -> Option<FieldValue<'a>>) -> bool {
        self.filters
            .iter()
            .all(|f| f.matches(value_of(&f.column).unwrap_or(FieldValue::Null)))
    }
}

impl Filter {
    /// The parameter value that parses back to this filter (`[not.]op.value`).
    pub fn value_text(&self) -> String {
        let not = if self.negated { "not." } else { "" };
        let (op, v) = match &self.op {
            FilterOp::Eq(v) => ("eq", v.clone()),
            FilterOp::Neq(v) => ("neq", v.clone()),
            FilterOp::Lt(v) => ("lt", v.clone()),
            FilterOp::Lte(v) => ("lte", v.clone()),
            FilterOp::Gt(v) => ("gt", v.clone()),
            FilterOp::Gte(v) => ("gte", v.clone()),
            FilterOp::Like(v) => ("like", v.clone()),
            FilterOp::IsNull => ("is", "null".into()),
            FilterOp::In(items) => {
                let items: Vec<String> = items.iter().map(|i| quote_item(i)).collect();
                ("in", format!("({})", items.join(",")))
            }
        };
        format!("{not}{op}.{v}")
    }

    /// Whether one value passes this filter (see [`ClientQuery::matches`]).
    pub fn matches(&self, v: FieldValue<'_>) -> bool {
        match (&self.op, v) {
            (FilterOp::IsNull, FieldValue::Null) => !self.negated,
            (FilterOp::IsNull, _) => self.negated,
            (_, FieldValue::Null | FieldValue::Composite) => false,
            (op, v) => match eval(op, v) {
                None => false,
                Some(b) => b != self.negated,
            },
        }
    }
}

/// Evaluates a non-null operator on a non-null scalar; `None` when the types do not compare.
fn eval(op: &FilterOp, v: FieldValue<'_>) -> Option<bool> {
    let cmp = |lit: &str| compare(v, lit);
    match op {
        FilterOp::Eq(l) => Some(cmp(l)? == Ordering::Equal),
        FilterOp::Neq(l) => Some(cmp(l)? != Ordering::Equal),
        FilterOp::Lt(l) => ordered(v).then(|| cmp(l)).flatten().map(|o| o == Ordering::Less),
        FilterOp::Lte(l) => ordered(v)
            .then(|| cmp(l))
            .flatten()
            .map(|o| o != Ordering::Greater),
        FilterOp::Gt(l) => ordered(v)
            .then(|| cmp(l))
            .flatten()
            .map(|o| o == Ordering::Greater),
        FilterOp::Gte(l) => ordered(v).then(|| cmp(l)).flatten().map(|o| o != Ordering::Less),
        FilterOp::In(items) => {
            let mut comparable = false;
            for l in items {
                if let Some(o) = cmp(l) {
                    if o == Ordering::Equal {
                        return Some(true);
                    }
                    comparable = true;
                }
            }
            comparable.then_some(false)
        }
        FilterOp::Like(p) => match v {
            FieldValue::String(s) => Some(like(s, p)),
            _ => None,
        },
        FilterOp::IsNull => None,
    }
}

/// Whether ordering operators apply to the value's type (not to booleans).
fn ordered(v: FieldValue<'_>) -> bool {
    matches!(v, FieldValue::Number(_) | FieldValue::String(_))
}

/// Compares a scalar value with an untyped operand; `None` on a type mismatch.
fn compare(v: FieldValue<'_>, lit: &str) -> Option<Ordering> {
    match v {
        FieldValue::String(s) => Some(s.as_bytes().cmp(lit.as_bytes())),
        FieldValue::Number(n) => Some(Decimal::parse(n)?.cmp(&Decimal::parse(lit)?)),
        FieldValue::Bool(b) => match lit {
            "true" => Some(b.cmp(&true)),
            "false" => Some(b.cmp(&false)),
            _ => None,
        },
        FieldValue::Null | FieldValue::Composite => None,
    }
}

/// PostgREST `like` with `*` as the only wildcard (any run of characters); every other
/// character, `%` and `_` included, matches itself. Case-sensitive.
pub fn like(s: &str, pattern: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = s.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        return rest.is_empty(); // no `*`: exact match
    };
    for m in middle {
        match rest.find(m) {
            Some(i) => rest = &rest[i + m.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// An exact decimal number: `0.d1 d2 … × 10^exp`, digits without leading or trailing
/// zeros (empty for zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    neg: bool,
    digits: Vec<u8>,
    exp: i64,
}

impl Decimal {
    /// Parses `-?digits[.digits][(e|E)[+-]digits]` (leading zeros allowed, no `+` sign, no
    /// `inf`/`NaN`); `None` otherwise, or when the exponent does not fit an `i32`.
    pub fn parse(s: &str) -> Option<Decimal> {
        let (neg, s) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (mant, e) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let exp: i64 = match e {
            None => 0,
            Some(e) => {
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                i64::from(e.parse::<i32>().ok()?)
            }
        };
        let (int, frac) = match mant.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mant, ""),
        };
        let ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !ok(int) || !ok(frac) || (mant.contains('.') && frac.is_empty()) {
            return None;
        }
        let all: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
        let lead = all.iter().take_while(|d| **d == 0).count();
        let digits: Vec<u8> = all[lead..].to_vec();
        let trail = digits.iter().rev().take_while(|d| **d == 0).count();
        let digits = digits[..digits.len() - trail].to_vec();
        // value = 0.digits × 10^(int.len() - lead + exp)
        let exp = exp + int.len() as i64 - lead as i64;
        Some(Decimal {
            neg: neg && !digits.is_empty(),
            digits,
            exp,
        })
    }

    fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// The value as an `i64` when it is an integer that fits.
    pub fn to_i64(&self) -> Option<i64> {
        if self.is_zero() {
            return Some(0);
        }
        if self.exp < self.digits.len() as i64 || self.exp > 19 {
            return None;
        }
        let mut n: i64 = 0;
        for k in 0..self.exp as usize {
            let d = i64::from(self.digits.get(k).copied().unwrap_or(0));
            n = n.checked_mul(10)?;
            n = if self.neg {
                n.checked_sub(d)?
            } else {
                n.checked_add(d)?
            };
        }
        Some(n)
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let sign = |d: &Decimal| match (d.is_zero(), d.neg) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        };
        let (a, b) = (sign(self), sign(other));
        if a != b || a == 0 {
            return a.cmp(&b);
        }
        let mag = self
            .exp
            .cmp(&other.exp)
            .then_with(|| self.digits.cmp(&other.digits));
        if a < 0 {
            mag.reverse()
        } else {
            mag
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn malformed(param: &str, msg: &'static str) -> QueryError {
    QueryError::Malformed {
        param: param.into(),
        msg,
    }
}

fn column(param: &str, c: &str) -> Result<String, QueryError> {
    if is_valid_id(c) {
        Ok(c.to_owned())
    } else {
        Err(QueryError::BadColumn {
            param: param.into(),
            column: c.into(),
        })
    }
}

fn parse_select(v: &str) -> Result<Vec<String>, QueryError> {
    if v.is_empty() {
        return Err(malformed("select", "no field given"));
    }
    let mut out: Vec<String> = Vec::new();
    for c in v.split(',') {
        if out.len() == MAX_SELECT {
            return Err(QueryError::TooMany {
                param: "select".into(),
                max: MAX_SELECT,
            });
        }
        let c = column("select", c)?;
        if out.contains(&c) {
            return Err(malformed("select", "a field is named twice"));
        }
        out.push(c);
    }
    Ok(out)
}

fn parse_order(v: &str) -> Result<Vec<OrderBy>, QueryError> {
    if v.is_empty() {
        return Err(malformed("order", "no column given"));
    }
    let mut out: Vec<OrderBy> = Vec::new();
    for item in v.split(',') {
        if out.len() == MAX_ORDER {
            return Err(QueryError::TooMany {
                param: "order".into(),
                max: MAX_ORDER,
            });
        }
        if item.ends_with(".nullsfirst") || item.ends_with(".nullslast") {
            return Err(QueryError::Unsupported {
                param: "order".into(),
                what: "nullsfirst/nullslast",
            });
        }
        let (c, dir) = if let Some(c) = item.strip_suffix(".asc") {
            (c, Direction::Asc)
        } else if let Some(c) = item.strip_suffix(".desc") {
            (c, Direction::Desc)
        } else {
            (item, Direction::Asc)
        };
        let column = column("order", c)?;
        if out.iter().any(|o| o.column == column) {
            return Err(malformed("order", "a column is named twice"));
        }
        out.push(OrderBy { column, dir });
    }
    Ok(out)
}

/// The operators of a filter value (`[not.]op.operand`), as [`ClientQuery::from_pairs`]
/// reads them.
pub const OPERATORS: [&str; 9] = ["eq", "neq", "lt", "lte", "gt", "gte", "like", "in", "is"];

/// Whether a query parameter's value is shaped as a filter (`not.` or one of [`OPERATORS`]
/// followed by `.`): such a value belongs to the licensee's query, anything else is a source
/// parameter.
pub fn is_filter_value(v: &str) -> bool {
    v.starts_with("not.") || v.split_once('.').is_some_and(|(op, _)| OPERATORS.contains(&op))
}

fn parse_filter(name: &str, v: &str) -> Result<Filter, QueryError> {
    let column = column(name, name)?;
    let (negated, rest) = match v.strip_prefix("not.") {
        Some(r) => (true, r),
        None => (false, v),
    };
    let (op, operand) = rest.split_once('.').unwrap_or((rest, ""));
    let value = |operand: &str| {
        if operand.len() > MAX_VALUE_LEN {
            Err(QueryError::TooLong {
                param: name.into(),
                max: MAX_VALUE_LEN,
            })
        } else {
            Ok(operand.to_owned())
        }
    };
    if !rest.contains('.') {
        return Err(QueryError::UnknownOperator {
            param: name.into(),
            op: op.into(),
        });
    }
    let op = match op {
        "eq" => FilterOp::Eq(value(operand)?),
        "neq" => FilterOp::Neq(value(operand)?),
        "lt" => FilterOp::Lt(value(operand)?),
        "lte" => FilterOp::Lte(value(operand)?),
        "gt" => FilterOp::Gt(value(operand)?),
        "gte" => FilterOp::Gte(value(operand)?),
        "like" => FilterOp::Like(value(operand)?),
        "in" => FilterOp::In(parse_list(name, operand)?),
        "is" => match operand {
            "null" => FilterOp::IsNull,
            "not_null" => {
                return Err(QueryError::Unsupported {
                    param: name.into(),
                    what: "is.not_null (write not.is.null)",
                })
            }
            _ => {
                return Err(QueryError::Unsupported {
                    param: name.into(),
                    what: "is with anything but null",
                })
            }
        },
        "not" => {
            return Err(QueryError::Unsupported {
                param: name.into(),
                what: "a double not.",
            })
        }
        other => {
            return Err(QueryError::UnknownOperator {
                param: name.into(),
                op: other.into(),
            })
        }
    };
    Ok(Filter { column, negated, op })
}

/// Parses `(a,b,"c,d")`.
fn parse_list(param: &str, v: &str) -> Result<Vec<String>, QueryError> {
    let inner = v
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| malformed(param, "an in list is written (a,b,…)"))?;
    if inner.is_empty() {
        return Err(malformed(param, "an in list is empty"));
    }
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        if items.len() == MAX_IN_ITEMS {
            return Err(QueryError::TooMany {
                param: param.into(),
                max: MAX_IN_ITEMS,
            });
        }
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(malformed(param, "an unterminated quoted item")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => item.push(c),
                        None => return Err(malformed(param, "an unterminated quoted item")),
                    },
                    Some(c) => item.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                match c {
                    ',' => break,
                    '"' | '(' | ')' | '\\' => {
                        return Err(malformed(param, "an item holding \" ( ) or \\ must be quoted"))
                    }
                    _ => {
                        item.push(c);
                        chars.next();
                    }
                }
            }
            if item.is_empty() {
                return Err(malformed(param, "an empty item must be quoted (\"\")"));
            }
        }
        if item.len() > MAX_VALUE_LEN {
            return Err(QueryError::TooLong {
                param: param.into(),
                max: MAX_VALUE_LEN,
            });
        }
        items.push(item);
        match chars.next() {
            None => return Ok(items),
            Some(',') => {}
            Some(_) => return Err(malformed(param, "expected , after a quoted item")),
        }
    }
}

/// Quotes an `in` item when it needs it.
fn quote_item(i: &str) -> String {
    if !i.is_empty() && !i.contains([',', '(', ')', '"', '\\']) {
        return i.to_owned();
    }
    let mut out = String::with_capacity(i.len() + 2);
    out.push('"');
    for c in i.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Displays a client-given string quoted and escaped, cut after 64 characters.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars().take(64) {
            write!(f, "{}", c.escape_debug())?;
        }
        if self.0.chars().nth(64).is_some() {
            f.write_str("…")?;
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_shaped_values_are_exactly_the_parsers_operators() {
        for op in OPERATORS {
            let v = format!("{op}.x");
            assert!(is_filter_value(&v), "{v}");
            // The parser knows the operator: any error is about the operand, never the operator.
            let e = ClientQuery::from_pairs([("a", v.as_str())]).err();
            assert!(
                !matches!(e, Some(QueryError::UnknownOperator { .. })),
                "{v}: {e:?}"
            );
        }
        for v in ["Huangpu", "eq", "eqx.1", "ilike.a", "", ".eq"] {
            assert!(!is_filter_value(v), "{v}");
        }
        assert!(is_filter_value("not.anything"));
    }

    use super::*;
    use crate::mask::{MaskRule, PseudonymKey};
    use crate::plan::PlannedField;
    use FieldValue as V;

    fn q(pairs: &[(&str, &str)]) -> Result<ClientQuery, QueryError> {
        ClientQuery::from_pairs(pairs.iter().copied())
    }

    fn f(col: &str, v: &str) -> Filter {
        q(&[(col, v)]).unwrap().filters.remove(0)
    }

    #[test]
    fn parses_every_operator() {
        let cases: &[(&str, bool, FilterOp)] = &[
            ("eq.5", false, FilterOp::Eq("5".into())),
            ("eq.", false, FilterOp::Eq("".into())),
            ("eq.a.b", false, FilterOp::Eq("a.b".into())),
            ("neq.x", false, FilterOp::Neq("x".into())),
            ("lt.1", false, FilterOp::Lt("1".into())),
            ("lte.1", false, FilterOp::Lte("1".into())),
            ("gt.1", false, FilterOp::Gt("1".into())),
            ("gte.1", false, FilterOp::Gte("1".into())),
            ("like.*ab%_*", false, FilterOp::Like("*ab%_*".into())),
            ("is.null", false, FilterOp::IsNull),
            ("not.is.null", true, FilterOp::IsNull),
            ("not.eq.5", true, FilterOp::Eq("5".into())),
            ("in.(1)", false, FilterOp::In(vec!["1".into()])),
        ];
        for (v, negated, op) in cases {
            let got = f("c", v);
            assert_eq!((got.negated, &got.op), (*negated, op), "{v}");
            assert_eq!(f("c", &got.value_text()), got, "{v} round trip");
        }
        let got = f("c", r#"not.in.(a,"b,c","(x)","say \"hi\"","",a b)"#);
        assert!(got.negated);
        assert_eq!(
            got.op,
            FilterOp::In(vec![
                "a".into(),
                "b,c".into(),
                "(x)".into(),
                "say \"hi\"".into(),
                "".into(),
                "a b".into()
            ])
        );
        assert_eq!(f("c", &got.value_text()), got);
    }

    #[test]
    fn select_order_after_and_gateway_params() {
        let got = q(&[
            ("limit", "5"),
            ("fields", "x"),
            ("cursor", "zz"),
            ("offset", "1"),
            ("format", "csv"),
            ("select", "a,b.c"),
            ("order", "a.desc,b,x.asc.asc"),
            ("after", "opaque"),
            ("age", "gte.18"),
            ("age", "lt.65"),
        ])
        .unwrap();
        assert_eq!(got.select, Some(vec!["a".into(), "b.c".into()]));
        assert_eq!(
            got.order,
            vec![
                OrderBy {
                    column: "a".into(),
                    dir: Direction::Desc
                },
                OrderBy {
                    column: "b".into(),
                    dir: Direction::Asc
                },
                OrderBy {
                    column: "x.asc".into(),
                    dir: Direction::Asc
                },
            ]
        );
        assert_eq!(got.after.as_deref(), Some("opaque"));
        assert_eq!(got.filters.len(), 2, "a range on one column is two filters");
        let back: Vec<(String, String)> = got.to_pairs();
        let again = ClientQuery::from_pairs(back.iter().map(|(a, b)| (a.as_str(), b.as_str()))).unwrap();
        assert_eq!(again, got);
    }

    #[test]
    fn malformed_input_is_a_typed_error_naming_the_parameter() {
        let long = "x".repeat(MAX_VALUE_LEN + 1);
        let long_eq = format!("eq.{long}");
        let long_in = format!("in.({long})");
        let many_in = format!("in.({})", vec!["a"; MAX_IN_ITEMS + 1].join(","));
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("a", "eq.1"), ("a", "eq.1")], "Repeated"),
            (vec![("select", "a"), ("select", "b")], "Repeated"),
            (vec![("order", "a"), ("order", "b")], "Repeated"),
            (vec![("after", "a"), ("after", "b")], "Repeated"),
            (vec![("after", "")], "Malformed"),
            (vec![("select", "")], "Malformed"),
            (vec![("select", "a,,b")], "BadColumn"),
            (vec![("select", "*")], "BadColumn"),
            (vec![("select", "a,a")], "Malformed"),
            (vec![("select", "a:b")], "BadColumn"),
            (vec![("order", "")], "Malformed"),
            (vec![("order", "a.asc.nullslast")], "Unsupported"),
            (vec![("order", "a;drop")], "BadColumn"),
            (vec![("order", "a,a.desc")], "Malformed"),
            (vec![("a b", "eq.1")], "BadColumn"),
            (vec![("", "eq.1")], "BadColumn"),
            (vec![("or", "(a.eq.1,b.eq.2)")], "LogicalOperator"),
            (vec![("and", "(a.eq.1)")], "LogicalOperator"),
            (vec![("not", "a.eq.1")], "LogicalOperator"),
            (vec![("a", "Huangpu")], "UnknownOperator"),
            (vec![("a", "eq")], "UnknownOperator"),
            (vec![("a", "ilike.x")], "UnknownOperator"),
            (vec![("a", "not.not.eq.1")], "Unsupported"),
            (vec![("a", "not.not")], "UnknownOperator"),
            (vec![("a", "is.not_null")], "Unsupported"),
            (vec![("a", "is.true")], "Unsupported"),
            (vec![("a", "in.a,b")], "Malformed"),
            (vec![("a", "in.()")], "Malformed"),
            (vec![("a", "in.(a,,b)")], "Malformed"),
            (vec![("a", "in.(a\"b)")], "Malformed"),
            (vec![("a", "in.(\"a)")], "Malformed"),
            (vec![("a", "in.(\"a\"b)")], "Malformed"),
            (vec![("a", "in.(\"a\\)")], "Malformed"),
            (vec![("a", "in.((a))")], "Malformed"),
            (vec![("a", &long_eq)], "TooLong"),
            (vec![("a", &long_in)], "TooLong"),
            (vec![("a", &many_in)], "TooMany"),
        ];
        for (pairs, want) in &cases {
            let e = q(pairs).unwrap_err();
            assert!(format!("{e:?}").starts_with(want), "{pairs:?}: {e:?}");
            assert_eq!(e.code(), ProblemCode::BadRequest);
            let param = pairs.last().unwrap().0;
            if !param.is_empty() {
                assert!(e.to_string().contains(param), "{e} names {param}");
            }
        }
        let filters: Vec<(String, String)> = (0..=MAX_FILTERS)
            .map(|i| (format!("c{i}"), "eq.1".into()))
            .collect();
        let e = ClientQuery::from_pairs(filters.iter().map(|(a, b)| (a.as_str(), b.as_str()))).unwrap_err();
        assert_eq!(
            e,
            QueryError::TooMany {
                param: "filters".into(),
                max: MAX_FILTERS
            }
        );
        assert!(ClientQuery::from_pairs(
            filters[..MAX_FILTERS]
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
        )
        .is_ok());
    }

    #[test]
    fn decimals_compare_exactly() {
        let d = |s: &str| Decimal::parse(s).unwrap();
        let eq = [
            ("1", "1.0"),
            ("100", "1e2"),
            ("0", "-0"),
            ("0.0", "0e5"),
            ("007", "7"),
            ("-1.50", "-15e-1"),
        ];
        for (a, b) in eq {
            assert_eq!(d(a).cmp(&d(b)), Ordering::Equal, "{a} = {b}");
        }
        let lt = [
            ("1", "2"),
            ("-2", "-1"),
            ("-1", "0"),
            ("0", "0.001"),
            ("0.12", "0.123"),
            ("9", "10"),
            ("310101199001011230", "310101199001011231"),
            ("12345678901234567890123", "12345678901234567890124"),
            ("1e-400", "1e-399"),
        ];
        for (a, b) in lt {
            assert_eq!(d(a).cmp(&d(b)), Ordering::Less, "{a} < {b}");
            assert_eq!(d(b).cmp(&d(a)), Ordering::Greater, "{b} > {a}");
        }
        for bad in [
            "",
            "-",
            "+1",
            ".5",
            "5.",
            "1e",
            "1e+",
            "abc",
            "NaN",
            "inf",
            "1e99999999999",
            "0x10",
            "1_0",
            " 1",
        ] {
            assert_eq!(Decimal::parse(bad), None, "{bad}");
        }
        assert_eq!(d("12").to_i64(), Some(12));
        assert_eq!(d("-1.2e1").to_i64(), Some(-12));
        assert_eq!(d("9223372036854775807").to_i64(), Some(i64::MAX));
        assert_eq!(d("-9223372036854775808").to_i64(), Some(i64::MIN));
        assert_eq!(d("9223372036854775808").to_i64(), None);
        assert_eq!(d("1.5").to_i64(), None);
        assert_eq!(d("0.0").to_i64(), Some(0));
    }

    #[test]
    fn like_has_one_wildcard() {
        for (s, p, want) in [
            ("abc", "abc", true),
            ("abc", "ab", false),
            ("abc", "a*", true),
            ("abc", "*c", true),
            ("abc", "*b*", true),
            ("abc", "a*b*c", true),
            ("ab", "ab*b", false),
            ("abab", "ab*b", true),
            ("a%c", "a%c", true),
            ("abc", "a%c", false),
            ("abc", "a_c", false),
            ("", "*", true),
            ("", "", true),
            ("x", "", false),
            ("ABC", "a*", false),
            ("上海市", "上*市", true),
        ] {
            assert_eq!(like(s, p), want, "{s:?} like {p:?}");
        }
    }

    #[test]
    fn typed_matching() {
        let t = |v: &str, val: V<'_>| f("c", v).matches(val);
        // numbers compare numerically, exactly
        assert!(t("eq.18", V::Number("18.0")));
        assert!(t("gte.18", V::Number("1.8e1")));
        assert!(!t("gt.18", V::Number("18")));
        assert!(t("lt.310101199001011231", V::Number("310101199001011230")));
        assert!(!t("eq.abc", V::Number("18")));
        assert!(
            !t("neq.abc", V::Number("18")),
            "a mismatch never matches, even neq"
        );
        assert!(!t("not.eq.abc", V::Number("18")), "nor its negation");
        // strings compare by bytes
        assert!(t("eq.18", V::String("18")));
        assert!(!t("eq.18.0", V::String("18")));
        assert!(t("lt.b", V::String("a")));
        assert!(t("lt.a", V::String("B")), "bytes, not collation");
        assert!(!t("gt.9", V::String("10")), "\"10\" < \"9\" as bytes");
        assert!(t("like.*1*", V::String("x1y")));
        assert!(!t("like.*1*", V::Number("1")), "like applies to strings only");
        // booleans: eq, neq, in only
        assert!(t("eq.true", V::Bool(true)));
        assert!(t("neq.true", V::Bool(false)));
        assert!(!t("eq.1", V::Bool(true)));
        assert!(!t("lt.true", V::Bool(false)));
        assert!(t("in.(x,false)", V::Bool(false)));
        // null: only is.null
        for op in [
            "eq.null",
            "neq.x",
            "lt.1",
            "in.(null,\"\")",
            "like.*",
            "not.eq.x",
            "not.in.(x)",
            "not.is.null",
        ] {
            assert!(!t(op, V::Null), "{op} on null");
            assert!(!f("c", op).matches(V::Null));
        }
        assert!(t("is.null", V::Null));
        assert!(!t("is.null", V::String("")));
        assert!(!t("is.null", V::Composite));
        assert!(t("not.is.null", V::Composite));
        assert!(!t("eq.[]", V::Composite));
        // in lists: items of the wrong type are ignored
        assert!(t("in.(abc,5)", V::Number("5.0")));
        assert!(!t("in.(abc,def)", V::Number("5")));
        assert!(
            !t("not.in.(abc,def)", V::Number("5")),
            "no comparable item: never"
        );
        assert!(t("not.in.(abc,6)", V::Number("5")));
        assert!(!t("not.in.(abc,5)", V::Number("5")));
        // negation of a comparable value
        assert!(t("not.lt.5", V::Number("5")));
        assert!(!t("not.like.a*", V::String("ab")));
        // an absent field is null
        let q = q(&[("c", "is.null")]).unwrap();
        assert!(q.matches(|_| None));
        let q2 = ClientQuery::from_pairs([("c", "not.is.null")]).unwrap();
        assert!(!q2.matches(|_| None));
    }

    #[test]
    fn admits_ands_the_licence_row_filter() {
        let rf = RowFilter::parse("district = 'Huangpu'").unwrap();
        let q = q(&[("district", "in.(Huangpu,Xuhui)")]).unwrap();
        let rec = |d: &'static str| move |k: &str| (k == "district").then_some(V::String(d));
        assert!(admits(Some(&rf), &q, rec("Huangpu")));
        assert!(!admits(Some(&rf), &q, rec("Xuhui")), "the client cannot widen");
        assert!(admits(None, &q, rec("Xuhui")));
        assert!(!admits(Some(&rf), &ClientQuery::default(), |_| Some(V::Null)));
        let num = RowFilter::parse("n = 3").unwrap();
        assert!(admits(Some(&num), &ClientQuery::default(), |_| Some(V::Number(
            "3"
        ))));
        assert!(
            !admits(Some(&num), &ClientQuery::default(), |_| Some(V::Number("3.0"))),
            "row filters compare text"
        );
        assert_eq!(V::Bool(true).filter_text(), Some("true"));
    }

    fn plan() -> FieldPlan {
        let field = |name: &str, action| PlannedField {
            name: name.into(),
            action,
        };
        FieldPlan {
            record_key: None,
            marks: None,
            fields: vec![
                field("district", FieldAction::Emit { scan: false }),
                field("notes", FieldAction::Emit { scan: true }),
                field("mobile", FieldAction::Mask(MaskRule::Redact)),
            ],
            row_filter: None,
            key: PseudonymKey::derive(b"master", "acme", "hydrants"),
        }
    }

    #[test]
    fn authorize_allows_only_clear_unscanned_fields() {
        let p = plan();
        let ok = |pairs: &[(&str, &str)]| q(pairs).unwrap().authorize(&p);
        assert_eq!(
            ok(&[
                ("district", "eq.x"),
                ("order", "district.desc"),
                ("select", "district,mobile,notes")
            ]),
            Ok(())
        );
        for (pairs, field) in [
            (vec![("mobile", "eq.13812345678")], "mobile"),
            (vec![("notes", "like.*138*")], "notes"),
            (vec![("id_number", "eq.31010119900101123X")], "id_number"),
            (vec![("district", "eq.x"), ("order", "mobile")], "mobile"),
            (vec![("order", "secret.desc")], "secret"),
            (vec![("mobile", "is.null")], "mobile"),
        ] {
            let e = ok(&pairs).unwrap_err();
            assert_eq!(
                e,
                QueryRefusal::FieldNotFilterable { field: field.into() },
                "{pairs:?}"
            );
            assert_eq!(e.code(), ProblemCode::FieldNotFilterable);
        }
        let e = ok(&[("select", "district,secret")]).unwrap_err();
        assert_eq!(
            e,
            QueryRefusal::FieldNotAllowed {
                field: "secret".into()
            }
        );
        assert_eq!(e.code(), ProblemCode::FieldNotAllowed);
        // a non-plan field and a masked one are refused alike: the answer does not depend on
        // the source
        let a = ok(&[("mobile", "eq.1")]).unwrap_err().to_string();
        let b = ok(&[("nosuch", "eq.1")]).unwrap_err().to_string();
        assert_eq!(a.replace("mobile", "F"), b.replace("nosuch", "F"));
    }
}

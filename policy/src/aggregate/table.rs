//! The base table: records grouped by all of an allowance's `group_by` fields, each cell
//! carrying count, sum, min and max. Built by streaming records through an [`Aggregator`]
//! in memory bounded by the allowance's `max_groups`, or from the rows of a SQL
//! `GROUP BY` push-down ([`BaseTable::from_rows`]).

use super::decimal::Decimal;
use super::query::{AggregateAllowance, AggregateQuery, Refusal};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Longest group value, in bytes: keeps the base table's memory within `max_groups` ×
/// fields × this.
pub const MAX_GROUP_VALUE_LEN: usize = 1024;

/// Bounds each record's measure is clamped to before it is summed: what bounds one
/// record's influence on a sum, as differential privacy needs ([`super::noise`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clamp {
    /// The smallest value a record contributes.
    pub lower: Decimal,
    /// The largest value a record contributes.
    pub upper: Decimal,
}

impl Clamp {
    /// `value` moved into `[lower, upper]`.
    pub fn apply(&self, value: Decimal) -> Decimal {
        value.clamp(self.lower, self.upper.max(self.lower))
    }
}

/// What a base table is grouped by and measures: the allowance's `group_by` fields (in
/// the allowance's order, which is the order [`Aggregator::push`] takes values in) and the
/// query metric's field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasePlan {
    fields: Vec<String>,
    measure: Option<String>,
    max_groups: usize,
    clamp: Option<Clamp>,
}

impl BasePlan {
    /// The plan for answering `query` under `allowance`, which must allow it
    /// ([`AggregateAllowance::check`]).
    pub fn new(query: &AggregateQuery, allowance: &AggregateAllowance) -> Result<Self, Refusal> {
        allowance.check(query, &[])?;
        Ok(Self {
            fields: allowance.group_by.clone(),
            measure: query.metric.field().map(str::to_owned),
            max_groups: allowance.max_groups,
            clamp: None,
        })
    }

    /// The same plan clamping every measure into `clamp` before it is added up.
    pub fn with_clamp(mut self, clamp: Clamp) -> Self {
        self.clamp = Some(clamp);
        self
    }

    /// The base fields, in the order group values are given.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The measured field, if the metric has one.
    pub fn measure(&self) -> Option<&str> {
        self.measure.as_deref()
    }

    /// The most distinct base cells.
    pub fn max_groups(&self) -> usize {
        self.max_groups
    }

    /// The clamp applied to measures, if any.
    pub fn clamp(&self) -> Option<Clamp> {
        self.clamp
    }
}

/// One base cell's aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BaseCell {
    /// Records in the cell.
    pub count: u64,
    /// Records whose measure is a number (the rest count toward `count` only).
    pub measured: u64,
    /// The sum of the (clamped) numeric measures.
    pub sum: Decimal,
    /// The smallest numeric measure, `None` when there is none.
    pub min: Option<Decimal>,
    /// The largest numeric measure, `None` when there is none.
    pub max: Option<Decimal>,
}

impl BaseCell {
    /// A cell of one record whose measure is `measure` (`None`: missing or not a number).
    pub fn of_record(measure: Option<Decimal>) -> Self {
        Self {
            count: 1,
            measured: u64::from(measure.is_some()),
            sum: measure.unwrap_or_default(),
            min: measure,
            max: measure,
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Self) -> Result<(), AggregateError> {
        self.count = self
            .count
            .checked_add(other.count)
            .ok_or(AggregateError::Overflow)?;
        self.measured = self
            .measured
            .checked_add(other.measured)
            .ok_or(AggregateError::Overflow)?;
        self.sum = self.sum.checked_add(other.sum).ok_or(AggregateError::Overflow)?;
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Ok(())
    }

    /// Records whose measure was missing or not a number.
    pub fn non_numeric(&self) -> u64 {
        self.count.saturating_sub(self.measured)
    }
}

/// A pre-aggregated row, as a SQL `GROUP BY` over the base fields returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseRow {
    /// The base fields' values, in [`BasePlan::fields`] order; `None` for null.
    pub key: Vec<Option<String>>,
    /// `count(*)`, `count(measure)`, `sum`, `min` and `max` of the (clamped) measure.
    pub cell: BaseCell,
}

/// Why aggregating or releasing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    /// More distinct base cells than the allowance's `max_groups`.
    #[error("more than {cap} distinct groups; group by fewer fields")]
    TooManyGroups {
        /// The cap.
        cap: usize,
    },
    /// A record or row with the wrong number of group values.
    #[error("{got} group values given for {expected} base fields")]
    Arity {
        /// The number of base fields.
        expected: usize,
        /// The number of values given.
        got: usize,
    },
    /// A group value longer than [`MAX_GROUP_VALUE_LEN`].
    #[error("a value of field `{field}` is {len} bytes long; grouping allows at most {MAX_GROUP_VALUE_LEN}")]
    GroupValueTooLong {
        /// The field.
        field: String,
        /// The value's length.
        len: usize,
    },
    /// A count or an exact sum overflowed.
    #[error("an aggregate overflowed")]
    Overflow,
    /// A pre-aggregated row that cannot be right.
    #[error("inconsistent pre-aggregated row: {0}")]
    BadRow(&'static str),
    /// A release asked for with `k` below [`super::MIN_K`].
    #[error("k = {k} is below the minimum of {}", super::MIN_K)]
    KTooSmall {
        /// The `k` given.
        k: u32,
    },
    /// A grouped or filtered field that is not a base field.
    #[error("field `{field}` is not a field of the base table")]
    NotInTable {
        /// The field.
        field: String,
    },
    /// The query's metric measures a different field than the table.
    #[error("metric {metric} does not match the base table's measure {measure:?}")]
    MeasureMismatch {
        /// The query's metric.
        metric: String,
        /// The table's measured field.
        measure: Option<String>,
    },
    /// Totals over all records need a base table of one or two fields.
    #[error("totals over all records are available for 1 or 2 base fields, not {fields}")]
    TotalsNeedOneOrTwoFields {
        /// The number of base fields.
        fields: usize,
    },
    /// Totals over all records cannot be given for min or max.
    #[error("totals over all records are not available for {metric}")]
    TotalsUnsupportedMetric {
        /// The metric.
        metric: String,
    },
}

/// Streams records into a [`BaseTable`], holding at most `max_groups` base cells.
///
/// Each record is given as its base-field values (text, `None` for a missing or null value,
/// which is its own group) and its measure as text. A measure that is missing or not a
/// number ([`Decimal::parse`]) still counts toward the cell's `count` but not toward sum,
/// min, max or avg; how many there were is [`BaseCell::non_numeric`]. With a clamp, each
/// numeric measure is clamped before it is added.
#[derive(Debug)]
pub struct Aggregator {
    plan: BasePlan,
    index: HashMap<String, usize>,
    keys: Vec<Vec<Option<String>>>,
    cells: Vec<BaseCell>,
    buf: String,
}

impl Aggregator {
    /// An empty aggregation under `plan`.
    pub fn new(plan: &BasePlan) -> Self {
        Self {
            plan: plan.clone(),
            index: HashMap::new(),
            keys: Vec::new(),
            cells: Vec::new(),
            buf: String::new(),
        }
    }

    /// Adds one record. `group_values` follow [`BasePlan::fields`]; `measure` is ignored
    /// when the plan measures nothing. Errors once a new group would exceed the cap.
    pub fn push(
        &mut self,
        group_values: &[Option<&str>],
        measure: Option<&str>,
    ) -> Result<(), AggregateError> {
        check_key(&self.plan, group_values.iter().copied())?;
        self.buf.clear();
        for value in group_values {
            encode(&mut self.buf, *value);
        }
        let measure = match (&self.plan.measure, measure) {
            (Some(_), Some(text)) => Decimal::parse(text).map(|v| clamp(&self.plan, v)),
            _ => None,
        };
        let record = BaseCell::of_record(measure);
        let at = match self.index.get(self.buf.as_str()) {
            Some(&at) => at,
            None => {
                if self.cells.len() >= self.plan.max_groups {
                    return Err(AggregateError::TooManyGroups {
                        cap: self.plan.max_groups,
                    });
                }
                self.index.insert(self.buf.clone(), self.cells.len());
                self.keys
                    .push(group_values.iter().map(|v| v.map(str::to_owned)).collect());
                self.cells.push(BaseCell::default());
                self.cells.len() - 1
            }
        };
        match self.cells.get_mut(at) {
            Some(cell) => cell.merge(&record),
            None => Err(AggregateError::Overflow),
        }
    }

    /// Distinct base cells so far.
    pub fn groups(&self) -> usize {
        self.cells.len()
    }

    /// The base table.
    pub fn finish(self) -> BaseTable {
        BaseTable {
            plan: self.plan,
            cells: self.keys.into_iter().zip(self.cells).collect(),
        }
    }
}

/// A measure, clamped if the plan says so.
fn clamp(plan: &BasePlan, value: Decimal) -> Decimal {
    plan.clamp.map_or(value, |c| c.apply(value))
}

/// Checks a key's arity and value lengths.
fn check_key<'a>(
    plan: &BasePlan,
    key: impl ExactSizeIterator<Item = Option<&'a str>>,
) -> Result<(), AggregateError> {
    if key.len() != plan.fields.len() {
        return Err(AggregateError::Arity {
            expected: plan.fields.len(),
            got: key.len(),
        });
    }
    for (value, field) in key.zip(&plan.fields) {
        if let Some(v) = value.filter(|v| v.len() > MAX_GROUP_VALUE_LEN) {
            return Err(AggregateError::GroupValueTooLong {
                field: field.clone(),
                len: v.len(),
            });
        }
    }
    Ok(())
}

/// Appends a group value to a map key, prefix-free: `\0` for null, else `\u{1}`, the
/// length in decimal, `:` and the bytes.
fn encode(buf: &mut String, value: Option<&str>) {
    match value {
        None => buf.push('\0'),
        Some(v) => {
            buf.push('\u{1}');
            buf.push_str(itoa::Buffer::new().format(v.len()));
            buf.push(':');
            buf.push_str(v);
        }
    }
}

/// Records grouped by all base fields: the one table every answer under a licence is
/// computed from (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseTable {
    pub(super) plan: BasePlan,
    pub(super) cells: BTreeMap<Vec<Option<String>>, BaseCell>,
}

impl BaseTable {
    /// A base table from pre-aggregated rows (a SQL push-down's `GROUP BY` over
    /// [`BasePlan::fields`] returning `count(*)`, `count(m)`, `sum(m)`, `min(m)`, `max(m)`
    /// of the measure, clamped in SQL when the plan clamps). Rows with the same key are
    /// added together; rows of count 0 are dropped; more than `max_groups` distinct keys is
    /// [`AggregateError::TooManyGroups`].
    ///
    /// The SQL must group the whole base table: a `WHERE` on a base field (an [`EqFilter`]
    /// pushed down) only drops whole base cells and is harmless under
    /// [`Totals::ReleasedCells`](super::Totals::ReleasedCells), but under
    /// [`Totals::AllRecords`](super::Totals::AllRecords) the suppression pattern must be
    /// computed on the unfiltered table, and [`BaseTable::release`] applies the filters
    /// itself. A `WHERE` on any other field would split base cells: never, except the
    /// licence's own row filter, which is the same for every answer and so only defines the
    /// population all of them are drawn from.
    ///
    /// [`EqFilter`]: super::EqFilter
    pub fn from_rows(
        plan: &BasePlan,
        rows: impl IntoIterator<Item = BaseRow>,
    ) -> Result<Self, AggregateError> {
        let mut cells: BTreeMap<Vec<Option<String>>, BaseCell> = BTreeMap::new();
        for row in rows {
            check_key(plan, row.key.iter().map(Option::as_deref))?;
            let c = row.cell;
            if c.measured > c.count {
                return Err(AggregateError::BadRow("more measured values than records"));
            }
            if plan.measure.is_none() && c.measured > 0 {
                return Err(AggregateError::BadRow(
                    "measured values for a plan without a measure",
                ));
            }
            let extremes_present = c.min.is_some() && c.max.is_some();
            if (c.measured > 0) != extremes_present || (c.measured == 0 && c.sum != Decimal::ZERO) {
                return Err(AggregateError::BadRow(
                    "min, max and sum do not match the measured count",
                ));
            }
            if let (Some(lo), Some(hi)) = (c.min, c.max) {
                if lo > hi {
                    return Err(AggregateError::BadRow("min above max"));
                }
            }
            if c.count == 0 {
                continue;
            }
            if !cells.contains_key(&row.key) && cells.len() >= plan.max_groups {
                return Err(AggregateError::TooManyGroups { cap: plan.max_groups });
            }
            cells.entry(row.key).or_default().merge(&c)?;
        }
        Ok(Self {
            plan: plan.clone(),
            cells,
        })
    }

    /// The plan the table was built under.
    pub fn plan(&self) -> &BasePlan {
        &self.plan
    }

    /// The base cells, sorted by key.
    pub fn cells(&self) -> impl Iterator<Item = (&[Option<String>], &BaseCell)> {
        self.cells.iter().map(|(k, c)| (k.as_slice(), c))
    }

    /// Distinct base cells.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether no record was aggregated.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}

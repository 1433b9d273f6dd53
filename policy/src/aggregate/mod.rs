//! Aggregate-only licences (the data sandbox, 可用不可见): only grouped counts, sums,
//! averages, minima and maxima leave, small cells are suppressed, and optional
//! differential-privacy noise is added. Pure: no IO, no clock; randomness is a parameter.
//!
//! # Flow
//!
//! 1. [`AggregateQuery::parse`] reads `group_by=a,b` and `metric=sum(f)`;
//!    [`AggregateAllowance::check`] refuses a field the licence does not allow in that role
//!    ([`Refusal::NotAggregable`], the problem type `field-not-aggregable`).
//! 2. [`BasePlan::new`] names the **base table**: records grouped by *all* of the
//!    allowance's `group_by` fields, with the metric's field measured.
//! 3. The table is built by streaming records through an [`Aggregator`] (memory bounded by
//!    the allowance's `max_groups`) or from a SQL push-down's `GROUP BY` rows
//!    ([`BaseTable::from_rows`]).
//! 4. [`BaseTable::release`] computes the answer with suppression ([`Released`], which
//!    serialises to the JSON answer).
//! 5. Optionally [`add_noise`] adds discrete Laplace noise, charged through [`cost`] to a
//!    [`Budget`], with repeated queries recognised by [`query_fingerprint`].
//!
//! # The suppression model
//!
//! The goal: no individual record ever leaves, not even by subtracting one released number
//! from another — a one-way total from a two-way one, or two answers whose filters differ.
//!
//! **One base table per licence.** Whatever a query groups by, its answer is computed from
//! the licence's base table: records grouped by all the allowance's `group_by` fields. A
//! query groups by a subset of them; an equality filter ([`EqFilter`]) may only name a base
//! field, so it selects whole base cells and never splits one. No other filter is possible
//! on an aggregate answer (a filter on any other field would cut a base cell in two and
//! break everything below).
//!
//! **Primary suppression of base cells.** A base cell with fewer than `k` records is
//! suppressed: it contributes to no answer at all. For a metric over a field, what must
//! reach `k` is the number of records with a *numeric* value of that field (otherwise a
//! cell of twenty records of which one has a number would publish that number as its sum,
//! minimum and maximum).
//!
//! **Requested cells roll up released base cells only** ([`Totals::ReleasedCells`], the
//! default). A requested cell's count, sum, minimum and maximum aggregate its released
//! base cells and nothing else; the average is that sum over that numeric count. A
//! requested cell whose roll-up still has fewer than `k` (exactly those with no released
//! base cell) is suppressed too; `suppressed` counts such requested cells (never their
//! records), which says that such small groups exist, as the `x` of a printed table does,
//! and nothing about what they hold. Totals (`group_by` empty) and coarser groupings are therefore totals *of the
//! released cells*, not of all records.
//!
//! **Why differencing cannot isolate anything.** Every number this mode releases is a sum
//! (or a min or max) over a set of released base cells, each holding at least `k` records.
//! Subtracting any released numbers from one another — across groupings, across filters,
//! across queries — yields a signed combination of released base cells' aggregates. The
//! finest thing an analyst can reconstruct is therefore one released base cell, which was
//! allowed out on its own anyway; a suppressed base cell enters no released number, so no
//! combination of released numbers says anything about it, and no combination can separate
//! records inside a base cell. Minimum and maximum are released only for released cells
//! (at least `k` records with a value): the extreme of a group of `k`, never of a lone
//! record.
//!
//! **Totals over all records** ([`Totals::AllRecords`], only when the caller asks, for base
//! tables of one or two fields, not for min or max). Classic statistical practice: the
//! whole base table is published with margins (row, column and grand totals) computed over
//! all records; cells and margins below `k` are suppressed, then [`complementary`]
//! suppression withholds more cells until no additive line (a row with its total, a column
//! with its total, the margins with the grand total) has exactly one suppressed entry. The
//! pattern is computed once on the whole base table and every query is answered with a
//! slice of that one protected table (a coarser grouping is a margin of it, a filter picks a
//! row or column), so queries cannot be played against differently protected tables. The
//! rule is the classic one and is necessary rather than sufficient (see
//! [`suppress`](crate::aggregate::suppress)); hence the released-cells mode is the default.
//!
//! **Bounded memory.** An aggregation holds at most `max_groups` base cells (more is
//! [`AggregateError::TooManyGroups`]), each group value at most [`MAX_GROUP_VALUE_LEN`]
//! bytes. Sums are exact ([`Decimal`]).
//!
//! **Non-numeric measures.** A record whose measured field is missing, null or not a
//! number ([`Decimal::parse`]) counts toward its cell's `count` but not toward sum, average,
//! minimum or maximum. [`Released::non_numeric`] reports how many such records the released
//! cells hold, for the gateway's logs; it is not part of the JSON answer.
//!
//! [`AggregateQuery::parse`]: crate::aggregate::AggregateQuery::parse
//! [`AggregateAllowance::check`]: crate::aggregate::AggregateAllowance::check
//! [`Refusal::NotAggregable`]: crate::aggregate::Refusal::NotAggregable
//! [`BasePlan::new`]: crate::aggregate::BasePlan::new
//! [`Aggregator`]: crate::aggregate::Aggregator
//! [`BaseTable::from_rows`]: crate::aggregate::BaseTable::from_rows
//! [`BaseTable::release`]: crate::aggregate::BaseTable::release
//! [`Released`]: crate::aggregate::Released
//! [`add_noise`]: crate::aggregate::add_noise
//! [`cost`]: crate::aggregate::cost
//! [`Budget`]: crate::aggregate::Budget
//! [`query_fingerprint`]: crate::aggregate::query_fingerprint
//! [`EqFilter`]: crate::aggregate::EqFilter
//! [`Totals::ReleasedCells`]: crate::aggregate::Totals::ReleasedCells
//! [`Totals::AllRecords`]: crate::aggregate::Totals::AllRecords
//! [`complementary`]: crate::aggregate::complementary
//! [`AggregateError::TooManyGroups`]: crate::aggregate::AggregateError::TooManyGroups
//! [`MAX_GROUP_VALUE_LEN`]: crate::aggregate::MAX_GROUP_VALUE_LEN
//! [`Decimal`]: crate::aggregate::Decimal
//! [`Decimal::parse`]: crate::aggregate::Decimal::parse
//! [`Released::non_numeric`]: crate::aggregate::Released::non_numeric

mod decimal;
pub mod noise;
mod query;
mod release;
pub mod suppress;
mod table;
#[cfg(test)]
mod tests;

pub use decimal::{Decimal, DecimalError};
pub use noise::{add_noise, cost, Budget, BudgetExhausted, DpParams, DpPolicy, NoiseError, NoiseInfo};
pub use query::{
    query_fingerprint, AggregateAllowance, AggregateQuery, AllowanceError, EqFilter, FieldRole, Metric,
    QueryError, Refusal, DEFAULT_K, DEFAULT_MAX_GROUPS, MAX_BASE_FIELDS, MAX_GROUP_BY, MIN_K, RESERVED_NAMES,
};
pub use release::{Margin, Released, ReleasedCell, Totals};
pub use suppress::{complementary, Dims, MarginEntry, MarginTable};
pub use table::{
    AggregateError, Aggregator, BaseCell, BasePlan, BaseRow, BaseTable, Clamp, MAX_GROUP_VALUE_LEN,
};

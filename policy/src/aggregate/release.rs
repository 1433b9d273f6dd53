//! Releasing an answer from a [`BaseTable`]: suppression, roll-up and the JSON form.

use super::decimal::Decimal;
use super::noise::NoiseInfo;
use super::query::{AggregateQuery, EqFilter, Metric, MIN_K};
use super::suppress::{complementary, Dims, MarginEntry, MarginTable};
use super::table::{AggregateError, BaseCell, BaseTable, Clamp};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};

/// What totals and coarser groupings are computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Totals {
    /// The default: every requested cell is the roll-up of the released base cells only,
    /// so no two answers can be differenced down to a suppressed cell.
    #[default]
    ReleasedCells,
    /// Cells and margins over all records, protected by complementary suppression of the
    /// one- or two-way base table (see [`super::suppress`]). Only for base tables of one or
    /// two fields, and not for min or max.
    AllRecords,
}

/// One released cell of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleasedCell {
    /// The grouped fields' values, in the query's `group_by` order; `None` for null.
    pub key: Vec<Option<String>>,
    /// The records in the cell (after noise, if noise was added).
    pub count: u64,
    /// The metric's value: `None` for `count`, else the sum, average, minimum or maximum.
    pub value: Option<f64>,
    /// The exact aggregates behind `count` and `value`, for [`super::noise`].
    pub(super) exact: BaseCell,
}

/// A table of totals published beside the cells ([`Totals::AllRecords`] only).
#[derive(Debug, Clone, PartialEq)]
pub struct Margin {
    /// The fields this margin groups by (a prefix-preserving subset of the query's).
    pub group_by: Vec<String>,
    /// Its released cells, sorted by key.
    pub cells: Vec<ReleasedCell>,
    /// How many of its cells were suppressed.
    pub suppressed: u64,
}

/// An aggregate answer, ready to serialise.
///
/// JSON: `{"group_by":["district"],"metric":"sum(flow)","k":11,"totals":"released-cells",
/// "cells":[{"district":"Huangpu","count":40,"value":1234.5}],"suppressed":2}`, plus
/// `"margins"` when there are any and `"noise"` when noise was added. A cell has no
/// `"value"` for `count`.
#[derive(Debug, Clone, PartialEq)]
pub struct Released {
    /// The grouped fields, in the query's order.
    pub group_by: Vec<String>,
    /// The metric.
    pub metric: Metric,
    /// The `k` the answer was released under.
    pub k: u32,
    /// What the answer's totals are over.
    pub totals: Totals,
    /// The released cells, sorted by key (`null` first).
    pub cells: Vec<ReleasedCell>,
    /// How many requested cells were suppressed (not how many records they hold).
    pub suppressed: u64,
    /// Totals over all records ([`Totals::AllRecords`]; empty otherwise).
    pub margins: Vec<Margin>,
    /// Records in the released cells whose measure was missing or not a number (0 for
    /// `count`). For the gateway's logs: not serialised (a small count of one cell's missing values is itself
    /// a small cell).
    pub non_numeric: u64,
    /// The noise added, if any ([`super::noise::add_noise`]).
    pub noise: Option<NoiseInfo>,
    /// The clamp the base table's sums were taken under.
    pub(super) clamp: Option<Clamp>,
}

impl Released {
    /// The clamp the sums were taken under, if any.
    pub fn clamp(&self) -> Option<Clamp> {
        self.clamp
    }
}

/// The number that must reach `k` for a cell to be released: its records for `count`, its
/// records with a numeric measure otherwise (a cell of 20 records of which one has a
/// number would otherwise publish that one number as its sum).
pub(super) fn protected_count(metric: &Metric, cell: &BaseCell) -> u64 {
    match metric {
        Metric::Count => cell.count,
        _ => cell.measured,
    }
}

/// The metric's value for a cell.
pub(super) fn metric_value(metric: &Metric, cell: &BaseCell) -> Option<f64> {
    match metric {
        Metric::Count => None,
        Metric::Sum(_) => Some(cell.sum.to_f64()),
        Metric::Avg(_) => (cell.measured > 0).then(|| cell.sum.to_f64() / cell.measured as f64),
        Metric::Min(_) => cell.min.map(Decimal::to_f64),
        Metric::Max(_) => cell.max.map(Decimal::to_f64),
    }
}

fn released_cell(metric: &Metric, key: Vec<Option<String>>, cell: BaseCell) -> ReleasedCell {
    ReleasedCell {
        key,
        count: cell.count,
        value: metric_value(metric, &cell),
        exact: cell,
    }
}

impl BaseTable {
    /// Releases the answer to `query`, restricted by `filters`, with cells of fewer than
    /// `k` records suppressed, totals computed as `totals` says.
    ///
    /// [`Totals::ReleasedCells`]: base cells below `k` are suppressed first; each requested
    /// cell is the roll-up of its matching released base cells only, and is suppressed
    /// when that roll-up still holds fewer than `k` (which happens exactly when none of its
    /// base cells was released). [`Totals::AllRecords`]: see [`Totals`].
    pub fn release(
        &self,
        query: &AggregateQuery,
        filters: &[EqFilter],
        k: u32,
        totals: Totals,
    ) -> Result<Released, AggregateError> {
        if k < MIN_K {
            return Err(AggregateError::KTooSmall { k });
        }
        if query.metric.field().is_some() && query.metric.field() != self.plan.measure() {
            return Err(AggregateError::MeasureMismatch {
                metric: query.metric.to_string(),
                measure: self.plan.measure().map(str::to_owned),
            });
        }
        let group_at = self.positions(query.group_by.iter())?;
        let filter_at = self.positions(filters.iter().map(|f| &f.field))?;
        let filters: Vec<(usize, Option<&str>)> = filter_at
            .into_iter()
            .zip(filters.iter().map(|f| f.value.as_deref()))
            .collect();
        let mut released = Released {
            group_by: query.group_by.clone(),
            metric: query.metric.clone(),
            k,
            totals,
            cells: Vec::new(),
            suppressed: 0,
            margins: Vec::new(),
            non_numeric: 0,
            noise: None,
            clamp: self.plan.clamp(),
        };
        match totals {
            Totals::ReleasedCells => self.roll_up(&mut released, &group_at, &filters)?,
            Totals::AllRecords => self.all_records(&mut released, &group_at, &filters)?,
        }
        Ok(released)
    }

    /// The base-field positions of `fields`.
    fn positions<'a>(&self, fields: impl Iterator<Item = &'a String>) -> Result<Vec<usize>, AggregateError> {
        fields
            .map(|f| {
                self.plan
                    .fields()
                    .iter()
                    .position(|b| b == f)
                    .ok_or_else(|| AggregateError::NotInTable { field: f.clone() })
            })
            .collect()
    }

    /// [`Totals::ReleasedCells`]: roll up the released base cells.
    fn roll_up(
        &self,
        out: &mut Released,
        group_at: &[usize],
        filters: &[(usize, Option<&str>)],
    ) -> Result<(), AggregateError> {
        let metric = &out.metric;
        let mut requested: BTreeMap<Vec<Option<String>>, BaseCell> = BTreeMap::new();
        for (key, cell) in &self.cells {
            if !filters.iter().all(|&(at, v)| key[at].as_deref() == v) {
                continue;
            }
            let rolled = requested
                .entry(group_at.iter().map(|&at| key[at].clone()).collect())
                .or_default();
            // Primary suppression of the base cell: only released base cells are added.
            if protected_count(metric, cell) >= u64::from(out.k) {
                rolled.merge(cell)?;
            }
        }
        for (key, cell) in requested {
            if protected_count(metric, &cell) >= u64::from(out.k) {
                if metric.field().is_some() {
                    out.non_numeric += cell.non_numeric();
                }
                out.cells.push(released_cell(metric, key, cell));
            } else {
                out.suppressed += 1;
            }
        }
        Ok(())
    }

    /// [`Totals::AllRecords`]: protect the whole one- or two-way base table with its
    /// margins once, then answer with the slice of it the query names, so every query
    /// under the licence sees the same suppression pattern.
    fn all_records(
        &self,
        out: &mut Released,
        group_at: &[usize],
        filters: &[(usize, Option<&str>)],
    ) -> Result<(), AggregateError> {
        let dims = self.plan.fields().len();
        if !(1..=2).contains(&dims) {
            return Err(AggregateError::TotalsNeedOneOrTwoFields { fields: dims });
        }
        if matches!(out.metric, Metric::Min(_) | Metric::Max(_)) {
            return Err(AggregateError::TotalsUnsupportedMetric {
                metric: out.metric.to_string(),
            });
        }
        let metric = out.metric.clone();
        let k = u64::from(out.k);
        // The categories of each dimension, sorted.
        let categories: Vec<Vec<Option<String>>> = (0..dims)
            .map(|d| {
                let set: BTreeSet<&Option<String>> = self.cells.keys().map(|key| &key[d]).collect();
                set.into_iter().cloned().collect()
            })
            .collect();
        let index = |d: usize, v: &Option<String>| categories[d].binary_search(v).ok();
        // Every cell and margin over all records.
        let mut entries: BTreeMap<[Option<usize>; 2], BaseCell> = BTreeMap::new();
        for (key, cell) in &self.cells {
            let i = index(0, &key[0]);
            let j = if dims == 2 { index(1, &key[1]) } else { None };
            let mut positions = vec![[i, j], [None, None]];
            if dims == 2 {
                positions.extend([[i, None], [None, j]]);
            }
            for pos in positions {
                entries.entry(pos).or_default().merge(cell)?;
            }
        }
        let mut table = MarginTable {
            dims: if dims == 2 { Dims::Two } else { Dims::One },
            entries: entries
                .iter()
                .map(|(&pos, cell)| {
                    let count = protected_count(&metric, cell);
                    MarginEntry {
                        pos,
                        count,
                        suppressed: count < k,
                    }
                })
                .collect(),
        };
        complementary(&mut table);
        let suppressed: BTreeMap<[Option<usize>; 2], bool> =
            table.entries.iter().map(|e| (e.pos, e.suppressed)).collect();

        // What each base dimension is in this query.
        enum Slot {
            Vary,
            Pinned(Option<usize>),
            All,
        }
        let slots: Vec<(Slot, Option<usize>)> = (0..dims)
            .map(|d| {
                let in_group = group_at.iter().position(|&at| at == d);
                let slot = match filters.iter().find(|&&(at, _)| at == d) {
                    Some(&(_, v)) => Slot::Pinned(index(d, &v.map(str::to_owned))),
                    None if in_group.is_some() => Slot::Vary,
                    None => Slot::All,
                };
                (slot, in_group)
            })
            .collect();
        // The slice with the varying dimensions in `keep` varying and the others at their
        // total, as (group_by, cells, suppressed).
        let slice = |keep: &[usize]| -> (Vec<String>, Vec<ReleasedCell>, u64) {
            let mut shown: Vec<(usize, usize)> = Vec::new(); // (query position, dimension)
            let mut cells = Vec::new();
            let mut hidden = 0;
            for (d, (slot, in_group)) in slots.iter().enumerate() {
                let varies = matches!(slot, Slot::Vary);
                if let Some(q) = *in_group {
                    if !varies || keep.contains(&d) {
                        shown.push((q, d));
                    }
                }
            }
            shown.sort_unstable();
            'entries: for (pos, cell) in &entries {
                for (d, (slot, _)) in slots.iter().enumerate() {
                    let ok = match slot {
                        Slot::Vary if keep.contains(&d) => pos[d].is_some(),
                        Slot::Vary | Slot::All => pos[d].is_none(),
                        Slot::Pinned(at) => at.is_some() && pos[d] == *at,
                    };
                    if !ok {
                        continue 'entries;
                    }
                }
                if suppressed.get(pos).copied().unwrap_or(true) {
                    hidden += 1;
                    continue;
                }
                let key = shown
                    .iter()
                    .map(|&(_, d)| pos[d].and_then(|i| categories[d].get(i).cloned().flatten()))
                    .collect();
                cells.push(released_cell(&metric, key, *cell));
            }
            let group_by = shown.iter().map(|&(q, _)| out.group_by[q].clone()).collect();
            (group_by, cells, hidden)
        };
        let varying: Vec<usize> = slots
            .iter()
            .enumerate()
            .filter(|(_, (slot, _))| matches!(slot, Slot::Vary))
            .map(|(d, _)| d)
            .collect();
        let (_, mut cells, hidden) = slice(&varying);
        cells.sort_by(|a, b| a.key.cmp(&b.key));
        if metric.field().is_some() {
            out.non_numeric = cells.iter().map(|c| c.exact.non_numeric()).sum();
        }
        out.cells = cells;
        out.suppressed = hidden;
        // Margins: drop varying dimensions, one or both, last-asked dropped first.
        let mut subsets: Vec<Vec<usize>> = Vec::new();
        if varying.len() == 2 {
            let mut by_query = varying.clone();
            by_query.sort_by_key(|&d| slots[d].1);
            subsets.push(vec![by_query[0]]);
            subsets.push(vec![by_query[1]]);
        }
        if !varying.is_empty() {
            subsets.push(Vec::new());
        }
        for keep in subsets {
            let (group_by, mut cells, suppressed) = slice(&keep);
            cells.sort_by(|a, b| a.key.cmp(&b.key));
            out.margins.push(Margin {
                group_by,
                cells,
                suppressed,
            });
        }
        Ok(())
    }
}

/// One cell in JSON: the grouped fields by name, then `count` and `value`.
struct CellJson<'a> {
    group_by: &'a [String],
    cell: &'a ReleasedCell,
}

impl Serialize for CellJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (field, value) in self.group_by.iter().zip(&self.cell.key) {
            map.serialize_entry(field, value)?;
        }
        map.serialize_entry("count", &self.cell.count)?;
        if let Some(v) = self.cell.value.filter(|v| v.is_finite()) {
            map.serialize_entry("value", &v)?;
        }
        map.end()
    }
}

/// A list of cells in JSON.
struct CellsJson<'a> {
    group_by: &'a [String],
    cells: &'a [ReleasedCell],
}

impl Serialize for CellsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.cells.iter().map(|cell| CellJson {
            group_by: self.group_by,
            cell,
        }))
    }
}

impl Serialize for Margin {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Margin", 3)?;
        st.serialize_field("group_by", &self.group_by)?;
        st.serialize_field(
            "cells",
            &CellsJson {
                group_by: &self.group_by,
                cells: &self.cells,
            },
        )?;
        st.serialize_field("suppressed", &self.suppressed)?;
        st.end()
    }
}

impl Serialize for Released {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("group_by", &self.group_by)?;
        map.serialize_entry("metric", &self.metric)?;
        map.serialize_entry("k", &self.k)?;
        map.serialize_entry("totals", &self.totals)?;
        map.serialize_entry(
            "cells",
            &CellsJson {
                group_by: &self.group_by,
                cells: &self.cells,
            },
        )?;
        map.serialize_entry("suppressed", &self.suppressed)?;
        if !self.margins.is_empty() {
            map.serialize_entry("margins", &self.margins)?;
        }
        if let Some(noise) = &self.noise {
            map.serialize_entry("noise", noise)?;
        }
        map.end()
    }
}

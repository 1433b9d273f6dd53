//! Complementary (secondary) suppression for one- and two-way tables whose margins are
//! published over all records.
//!
//! A one-way table with its total is one additive line: the total is the sum of the
//! cells. A two-way table with row totals, column totals and a grand total has a line per
//! row (its cells and its row total), a line per column (its cells and its column total),
//! and the two margin lines (the row totals with the grand total, the column totals with
//! the grand total). If a line has exactly one suppressed entry, that entry is the line's
//! total minus the released rest (or the sum of the rest, for a total): it is disclosed.
//! [`complementary`] therefore suppresses, in each such line, the unsuppressed entry with
//! the smallest count (ties: the first in the table's order), and repeats over all lines
//! until none has exactly one suppressed entry.
//!
//! This is the classic rule of statistical practice. It is necessary, not sufficient: a
//! suppressed entry that is a bridge between two otherwise separate groups of suppressed
//! entries can still be solved for, and non-negativity can narrow a suppressed count to
//! an interval. That is why the default release mode does not publish totals over all
//! records at all (see the module documentation of [`super`]).

/// How many classifying dimensions a [`MarginTable`] has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dims {
    /// A one-way table: cells at `[Some(i), None]` and the total at `[None, None]`.
    One,
    /// A two-way table: cells at `[Some(i), Some(j)]`, row totals at `[Some(i), None]`,
    /// column totals at `[None, Some(j)]` and the grand total at `[None, None]`.
    Two,
}

/// One entry of a [`MarginTable`]: a cell or a total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarginEntry {
    /// Its position: the category index per dimension, `None` for the total over it.
    pub pos: [Option<usize>; 2],
    /// The records it counts (the number that decides primary suppression).
    pub count: u64,
    /// Whether it is withheld.
    pub suppressed: bool,
}

/// A one- or two-way table with its margins: the non-empty cells and the totals. Empty
/// cells are left out: their zero is known, so they protect nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarginTable {
    /// One- or two-way.
    pub dims: Dims,
    /// Cells and totals, in any order (the order breaks ties between complements).
    pub entries: Vec<MarginEntry>,
}

impl MarginTable {
    /// The additive lines, each as indices into `entries`: the one line of a one-way table,
    /// or each row's and each column's entries of a two-way table (the margins' lines are
    /// the rows and columns at `None`).
    pub fn lines(&self) -> Vec<Vec<usize>> {
        match self.dims {
            Dims::One => vec![(0..self.entries.len()).collect()],
            Dims::Two => {
                let mut lines: std::collections::BTreeMap<(usize, Option<usize>), Vec<usize>> =
                    std::collections::BTreeMap::new();
                for (at, e) in self.entries.iter().enumerate() {
                    lines.entry((0, e.pos[0])).or_default().push(at);
                    lines.entry((1, e.pos[1])).or_default().push(at);
                }
                lines.into_values().collect()
            }
        }
    }

    /// Whether every line has zero or at least two suppressed entries.
    pub fn is_protected(&self) -> bool {
        self.lines()
            .iter()
            .all(|line| line.iter().filter(|&&at| self.entries[at].suppressed).count() != 1)
    }
}

/// Suppresses entries until no line of `table` has exactly one suppressed entry (see the
/// module documentation); returns how many it suppressed. The caller marks the primary
/// suppressions (`count < k`) first.
pub fn complementary(table: &mut MarginTable) -> usize {
    let lines = table.lines();
    let mut added = 0;
    loop {
        let mut changed = false;
        for line in &lines {
            let suppressed = line.iter().filter(|&&at| table.entries[at].suppressed).count();
            if suppressed != 1 {
                continue;
            }
            let complement = line
                .iter()
                .copied()
                .filter(|&at| !table.entries[at].suppressed && table.entries[at].count > 0)
                .min_by_key(|&at| (table.entries[at].count, at));
            if let Some(at) = complement {
                table.entries[at].suppressed = true;
                added += 1;
                changed = true;
            }
        }
        if !changed {
            return added;
        }
    }
}

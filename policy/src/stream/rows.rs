//! Typed rows: the masker's input from a database source.
//!
//! A connector reads rows from a database cursor and pushes their cells into a [`RowBatch`]
//! as typed values (never rendered to a JSON document and parsed again). Each cell is kept
//! as the masker's own JSON token: a number as its JSON text, a string as its JSON-escaped
//! body, so a batch row goes through the same slots, row filter, client filters, masks and
//! writers as a parsed JSON record. The same plan therefore gives byte-identical output for
//! a database row and for the JSON object `{"column": value, …}` of the same values.

use super::json::{self, VKind};
use super::record::{Kind, Val};
use super::{MaskError, Masker, Top};

/// One cell of a [`RowBatch`]: its JSON kind and its text in the batch.
#[derive(Debug, Clone, Copy)]
struct CellRef {
    kind: VKind,
    start: usize,
    end: usize,
}

/// Rows of typed cells from a database source, `width` cells per row, in the order of the
/// columns given to [`Masker::typed`]. Reuse a batch with [`RowBatch::clear`].
#[derive(Debug, Clone, Default)]
pub struct RowBatch {
    width: usize,
    /// Cell texts: numbers as JSON numbers, strings JSON-escaped (without quotes), booleans
    /// as `true` / `false`. Only valid UTF-8 is ever appended.
    text: Vec<u8>,
    cells: Vec<CellRef>,
}

/// A cell a [`RowBatch`] cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// Text given as a number that is not a JSON number (`NaN`, `1e`, `+1`…).
    #[error("{0:?} is not a number")]
    NotANumber(String),
}

impl RowBatch {
    /// An empty batch of rows of `width` cells.
    pub fn new(width: usize) -> Self {
        Self {
            width,
            text: Vec::new(),
            cells: Vec::new(),
        }
    }

    /// Cells per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Complete rows held.
    pub fn rows(&self) -> usize {
        self.cells.len().checked_div(self.width).unwrap_or(0)
    }

    /// Whether no cell is held.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Bytes of cell text held (for batching decisions).
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    /// Empties the batch, keeping its memory.
    pub fn clear(&mut self) {
        self.text.clear();
        self.cells.clear();
    }

    fn push(&mut self, kind: VKind, start: usize) {
        self.cells.push(CellRef {
            kind,
            start,
            end: self.text.len(),
        });
    }

    /// A SQL NULL.
    pub fn push_null(&mut self) {
        self.push(VKind::Null, self.text.len());
    }

    /// A boolean.
    pub fn push_bool(&mut self, b: bool) {
        let start = self.text.len();
        let (kind, t): (_, &[u8]) = if b {
            (VKind::True, b"true")
        } else {
            (VKind::False, b"false")
        };
        self.text.extend_from_slice(t);
        self.push(kind, start);
    }

    /// An integer.
    pub fn push_int(&mut self, i: i64) {
        let start = self.text.len();
        self.text
            .extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
        self.push(VKind::Num, start);
    }

    /// A float, as its shortest text that reads back the same, as serde_json writes it
    /// (`1400.0`, `0.1`, `7.7e+248`). JSON has no NaN or infinity: those are written as
    /// `null`, as `JSON.stringify` does.
    pub fn push_float(&mut self, f: f64) {
        if !f.is_finite() {
            return self.push_null();
        }
        let start = self.text.len();
        // serde_json's own writer: the exact text an HTTP source written with it would send.
        if serde_json::to_writer(&mut self.text, &f).is_err() {
            self.text.truncate(start);
            return self.push_null();
        }
        self.push(VKind::Num, start);
    }

    /// A decimal given as text (a `numeric` column read as text): must be a JSON number.
    pub fn push_number(&mut self, text: &str) -> Result<(), RowError> {
        if !json::is_number(text.as_bytes()) {
            return Err(RowError::NotANumber(text.chars().take(40).collect()));
        }
        let start = self.text.len();
        self.text.extend_from_slice(text.as_bytes());
        self.push(VKind::Num, start);
        Ok(())
    }

    /// A string.
    pub fn push_text(&mut self, s: &str) {
        let start = self.text.len();
        let plain = json::find_special(s.as_bytes(), 0) == s.len();
        if plain {
            self.text.extend_from_slice(s.as_bytes());
        } else {
            json::write_str(s.as_bytes(), &mut self.text);
            // Keep the body only: drop the quotes `write_str` put around it.
            self.text.pop();
            self.text.remove(start);
        }
        self.push(VKind::Str { esc: !plain }, start);
    }
}

impl Masker {
    /// A masker for typed rows whose cells come in the order of `columns` (push them with
    /// [`Masker::push_rows`]). A column the plan and the filters do not name is dropped; a
    /// name given twice keeps its first column.
    pub fn typed<S: AsRef<str>>(
        plan: std::sync::Arc<crate::plan::FieldPlan>,
        query: Option<std::sync::Arc<crate::query::ClientQuery>>,
        columns: &[S],
        output: super::OutputFormat,
        limits: super::MaskerLimits,
    ) -> Self {
        let mut m = Self::filtered(plan, query, super::InputFormat::Rows, output, limits);
        m.top = Top::End;
        for c in columns {
            let slot = m
                .slots
                .find(c.as_ref().as_bytes())
                .filter(|s| !m.cols.contains(&Some(*s)));
            m.cols.push(slot);
        }
        m
    }

    /// Masks the complete rows of `batch`, appending output to `out`. Once
    /// [`Masker::is_full`] is true the rest is ignored.
    pub fn push_rows(&mut self, batch: &RowBatch, out: &mut Vec<u8>) -> Result<(), MaskError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.finished || self.is_full() {
            return Ok(());
        }
        let before = out.len();
        let r = self.rows_inner(batch, out);
        self.stats.bytes_out += (out.len() - before) as u64;
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn rows_inner(&mut self, batch: &RowBatch, out: &mut Vec<u8>) -> Result<(), MaskError> {
        let shape = |msg| MaskError::Shape { offset: 0, msg };
        if self.input != super::InputFormat::Rows {
            return Err(shape("typed rows given to a masker of bytes"));
        }
        if batch.width != self.cols.len() || !batch.cells.len().is_multiple_of(batch.width.max(1)) {
            return Err(shape("a row does not have one cell per column"));
        }
        // Every push appended valid UTF-8: this cannot fail, and is checked once per batch.
        let text = std::str::from_utf8(&batch.text).map_err(|_| shape("row text is not UTF-8"))?;
        for row in batch.cells.chunks(batch.width.max(1)) {
            if self.is_full() {
                break;
            }
            let (first, last) = match (row.first(), row.last()) {
                (Some(f), Some(l)) => (f.start, l.end),
                _ => (0, 0),
            };
            self.stats.bytes_in += (last - first) as u64;
            if last - first > self.limits.max_record_bytes {
                return Err(MaskError::RecordTooLarge(self.limits.max_record_bytes));
            }
            self.rec.reset(self.slots.len());
            for (c, slot) in row.iter().zip(&self.cols) {
                self.rec.set(
                    *slot,
                    Val {
                        kind: Kind::Json(c.kind),
                        in_buf: false,
                        start: c.start,
                        end: c.end,
                        member: None,
                    },
                );
            }
            self.emit(text, false, out)?;
        }
        Ok(())
    }
}

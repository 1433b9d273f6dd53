//! The streaming masker: applies a [`FieldPlan`] to a response body as it streams.
//!
//! Input is parsed incrementally, chunk by chunk, split at any byte. Each record is assembled
//! in a bounded buffer (so a row filter can drop it and a CSV row can be written in header
//! order), then written in the output format. Memory is bounded by the largest record, never by
//! the body. Anything that does not parse is an error: the caller must abort the response.

use crate::objection::{Mark, RecordMarks, DISPUTED_MEMBER};
use crate::plan::FieldPlan;
use crate::served::{ServedDigest, ServedKeys};
use json::{is_ws, PErr};
use record::{Kind, Record, Slots, Val};
use shape::Shape;
use std::sync::Arc;

pub use rows::{RowBatch, RowError};

mod csv;
mod json;
mod record;
mod rows;
mod shape;
#[cfg(test)]
mod tests;

/// The shape of the upstream body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputFormat {
    /// A JSON array of objects.
    JsonArray,
    /// A JSON object holding the array of objects at this path of member names
    /// (e.g. `["data", "items"]`); other members are not emitted.
    JsonAt(Vec<String>),
    /// One JSON object per line.
    Ndjson,
    /// CSV (RFC 4180) with a header row.
    Csv,
    /// Typed rows from a database ([`Masker::typed`], [`Masker::push_rows`]), not bytes.
    Rows,
}

/// The shape of the body sent to the licensee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// CSV with a header row of the plan's fields.
    Csv,
}

/// Bounds on one masking run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaskerLimits {
    /// Stop emitting after this many records (quota or `limit`); `None` for no bound.
    pub max_records: Option<u64>,
    /// Largest record accepted, in input bytes.
    pub max_record_bytes: usize,
}

impl Default for MaskerLimits {
    fn default() -> Self {
        Self {
            max_records: None,
            max_record_bytes: 1 << 20,
        }
    }
}

/// What a masking run did, for the audit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaskStats {
    /// Records read from the input.
    pub records_in: u64,
    /// Records written to the output.
    pub records_out: u64,
    /// Records removed by the row filter.
    pub records_filtered: u64,
    /// Records that passed the filters but were skipped ([`Masker::skip_records`]).
    pub records_skipped: u64,
    /// Field values written.
    pub fields_emitted: u64,
    /// Field values written masked by a rule.
    pub fields_masked: u64,
    /// Field values dropped because the plan does not name them.
    pub fields_dropped: u64,
    /// Values the detector safety net rewrote.
    pub detector_hits: u64,
    /// Records that passed the filters but were dropped for an upheld objection
    /// ([`FieldPlan::marks`]).
    pub records_suppressed: u64,
    /// Records written with the [`DISPUTED_MEMBER`] of an upheld correction.
    pub records_disputed: u64,
    /// Input bytes consumed.
    pub bytes_in: u64,
    /// Output bytes produced.
    pub bytes_out: u64,
}

/// Adds the disputed mark to the record written to `out[from..]` (JSON: a last member
/// [`DISPUTED_MEMBER`], left out when `id` is empty; CSV: the last cell).
fn mark_disputed(out: &mut Vec<u8>, from: usize, fmt: OutputFormat, id: &str) {
    let newline = out.last() == Some(&b'\n');
    if newline {
        out.pop();
    }
    match fmt {
        OutputFormat::Csv => {
            out.push(b',');
            csv::write_cell(id.as_bytes(), false, out);
        }
        OutputFormat::Json | OutputFormat::Ndjson if !id.is_empty() => {
            // The record ends with `}`; an empty object takes no comma.
            out.pop();
            if out.len() > from && out[out.len() - 1] != b'{' {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(DISPUTED_MEMBER.as_bytes());
            out.extend_from_slice(b"\":");
            json::write_str(id.as_bytes(), out);
            out.push(b'}');
        }
        OutputFormat::Json | OutputFormat::Ndjson => {}
    }
    if newline {
        out.push(b'\n');
    }
}

/// The UTF-8 byte-order mark, skipped where a CSV body starts.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why a masking run failed. The response must be aborted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    /// The input is not valid JSON.
    #[error("invalid JSON at byte {offset}: {msg}")]
    InvalidJson {
        /// Byte offset in the input.
        offset: u64,
        /// What was wrong.
        msg: &'static str,
    },
    /// The input is not valid CSV.
    #[error("invalid CSV at byte {offset}: {msg}")]
    InvalidCsv {
        /// Byte offset in the input.
        offset: u64,
        /// What was wrong.
        msg: &'static str,
    },
    /// Valid JSON, but not the expected shape (e.g. a record that is not an object).
    #[error("unexpected shape at byte {offset}: {msg}")]
    Shape {
        /// Byte offset in the input.
        offset: u64,
        /// What was wrong.
        msg: &'static str,
    },
    /// A record exceeded [`MaskerLimits::max_record_bytes`].
    #[error("record larger than {0} bytes")]
    RecordTooLarge(usize),
    /// The input ended before the document was complete.
    #[error("input ended inside the document")]
    Truncated,
}

/// Where the reader is in the document, outside records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Top {
    /// Before the `[` of the array.
    ArrStart,
    /// After `[`: a record or `]`.
    ArrFirst,
    /// After a record: `,` or `]`.
    ArrNext,
    /// After `,`: a record.
    ArrItem,
    /// Before the `{` of the enclosing object (`JsonAt`).
    NavStart,
    /// Inside the object at this depth of the path, after `{`: a member name or `}`.
    NavKeyOrEnd(usize),
    /// After `,`: a member name.
    NavKey(usize),
    /// After a member name: `:`; `true` when the name is the next path member.
    NavColon(usize, bool),
    /// After `:`: the member value.
    NavValue(usize, bool),
    /// After a member value: `,` or `}`.
    NavNext(usize),
    /// NDJSON: at the start of a line.
    LineStart,
    /// NDJSON: after a record, before the end of its line.
    LineEnd,
    /// CSV: before the header row.
    CsvHeader,
    /// CSV: before a data row.
    CsvRow,
    /// After the document: only whitespace may follow.
    End,
}

/// Applies a field plan to a streaming body. Feed chunks, then call [`Masker::finish`].
///
/// Chunks may split the input anywhere. Each record is parsed and validated completely before
/// any of its bytes reach `out`, so a failing run never ends in the middle of a record. After an
/// error, every call returns that error and writes nothing.
pub struct Masker {
    plan: Arc<FieldPlan>,
    slots: Slots,
    input: InputFormat,
    output: OutputFormat,
    limits: MaskerLimits,
    top: Top,
    /// Path members matched so far (`JsonAt`): each path member is entered at most once.
    entered: usize,
    /// The array at the path was found (`JsonAt`).
    found: bool,
    /// The input bytes of an incomplete unit, carried to the next chunk.
    carry: Vec<u8>,
    /// Absolute input offset of the first byte not yet consumed.
    consumed: u64,
    rec: Record,
    /// CSV: the slot of each column.
    cols: Vec<Option<usize>>,
    cells: Vec<csv::Cell>,
    /// Scratch for decoded member names.
    key_buf: Vec<u8>,
    /// The slice being read is valid UTF-8 up to here.
    utf8_to: usize,
    opened: bool,
    finished: bool,
    failed: Option<MaskError>,
    stats: MaskStats,
    /// Passing records still to skip before the first one is written.
    skip: u64,
    /// The layout of the last canonical JSON record.
    shape: Shape,
    /// Records may be read by their layout ([`Shape`]); off only to test the general path.
    shapes: bool,
    /// The record key's slot and the keys of the records written ([`FieldPlan::record_key`]).
    served: Option<(usize, ServedKeys)>,
    /// The record key's slot and the dataset's suppressed and disputed records
    /// ([`FieldPlan::marks`]).
    marks: Option<(usize, Arc<RecordMarks>)>,
    /// CSV output carries the [`DISPUTED_MEMBER`] column (the marks dispute some record).
    disputed_column: bool,
}

impl Masker {
    /// A masker for one response.
    pub fn new(plan: Arc<FieldPlan>, input: InputFormat, output: OutputFormat, limits: MaskerLimits) -> Self {
        Self::filtered(plan, None, input, output, limits)
    }

    /// A masker for one response that also applies the licensee's own filters (`query`),
    /// ANDed to the plan's row filter on the original values: a record passes only if both
    /// hold, so the query can only narrow what the licence allows. Authorize the query against
    /// the plan first ([`ClientQuery::authorize`](crate::query::ClientQuery::authorize)).
    /// CSV cells have no type: a cell that reads as a number compares as one.
    pub fn filtered(
        plan: Arc<FieldPlan>,
        query: Option<Arc<crate::query::ClientQuery>>,
        input: InputFormat,
        output: OutputFormat,
        limits: MaskerLimits,
    ) -> Self {
        let mut slots = Slots::new(&plan, query);
        let served = plan
            .record_key
            .as_deref()
            .map(|k| (slots.read(k), ServedKeys::default()));
        let marks = match (&plan.marks, served.as_ref()) {
            (Some(m), Some((slot, _))) if !m.is_empty() => Some((*slot, m.clone())),
            _ => None,
        };
        let disputed_column =
            output == OutputFormat::Csv && marks.as_ref().is_some_and(|(_, m)| !m.disputed.is_empty());
        let top = match &input {
            InputFormat::JsonArray => Top::ArrStart,
            InputFormat::JsonAt(path) if path.is_empty() => Top::ArrStart,
            InputFormat::JsonAt(_) => Top::NavStart,
            InputFormat::Ndjson => Top::LineStart,
            InputFormat::Csv => Top::CsvHeader,
            InputFormat::Rows => Top::End,
        };
        let mut rec = Record::default();
        rec.reset(slots.len());
        Self {
            plan,
            slots,
            input,
            output,
            limits,
            top,
            entered: 0,
            found: false,
            carry: Vec::new(),
            consumed: 0,
            rec,
            cols: Vec::new(),
            cells: Vec::new(),
            key_buf: Vec::new(),
            utf8_to: 0,
            opened: false,
            finished: false,
            failed: None,
            stats: MaskStats::default(),
            skip: 0,
            shape: Shape::default(),
            shapes: true,
            served,
            marks,
            disputed_column,
        }
    }

    /// Skips the first `n` records that pass the filters (an offset into the filtered
    /// records, for sources that cannot skip themselves); they are read, not written.
    pub fn skip_records(mut self, n: u64) -> Self {
        self.skip = n;
        self
    }

    /// The digest of the keys of the records written so far ([`FieldPlan::record_key`]);
    /// `None` when the plan names no record key or no record had one.
    pub fn served(&self) -> Option<ServedDigest> {
        self.served.as_ref()?.1.digest()
    }

    /// The hashes of the keys of the records written so far (see [`ServedKeys::hashes`]);
    /// empty when the plan names no record key.
    pub fn served_hashes(&self) -> &[u128] {
        self.served.as_ref().map_or(&[], |(_, k)| k.hashes())
    }

    /// Consumes one chunk of input, appending masked output to `out`.
    ///
    /// Once [`Masker::is_full`] is true, or after [`Masker::finish`], input is ignored.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), MaskError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.finished || self.is_full() {
            return Ok(());
        }
        self.stats.bytes_in += chunk.len() as u64;
        let before = out.len();
        let r = self.feed_inner(chunk, out);
        self.stats.bytes_out += (out.len() - before) as u64;
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    /// Ends the input, appending the rest of the output. Errors if the document is incomplete.
    ///
    /// When `max_records` were reached the output is closed without reading further.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<MaskStats, MaskError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.finished {
            return Ok(self.stats);
        }
        let before = out.len();
        let r = self.finish_inner(out);
        self.stats.bytes_out += (out.len() - before) as u64;
        match r {
            Ok(()) => {
                self.finished = true;
                Ok(self.stats)
            }
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// True once `max_records` were emitted: the caller may stop reading the input.
    pub fn is_full(&self) -> bool {
        self.limits
            .max_records
            .is_some_and(|m| self.stats.records_out >= m)
    }

    /// Counters so far.
    pub fn stats(&self) -> MaskStats {
        self.stats
    }

    /// The error that ended the run, if any.
    pub fn error(&self) -> Option<&MaskError> {
        self.failed.as_ref()
    }

    fn feed_inner(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), MaskError> {
        let mut pos = 0;
        if !self.carry.is_empty() {
            // Grow the carried unit until it completes; grow geometrically so that re-scanning
            // it from its start stays linear.
            // Once the carried bytes are consumed, the rest of the chunk is read where it is.
            let mut carry = std::mem::take(&mut self.carry);
            // Bytes of `carry` that came before this chunk.
            let mut old = carry.len();
            loop {
                let take = (chunk.len() - pos).min(carry.len().max(4096));
                carry.extend_from_slice(&chunk[pos..pos + take]);
                pos += take;
                let c = self.run(&carry, false, out)?;
                self.consumed += c as u64;
                if self.is_full() {
                    carry.clear();
                    self.carry = carry;
                    return Ok(());
                }
                if c >= old {
                    // What is left in `carry` is the chunk's own: read it from the chunk.
                    pos -= carry.len() - c;
                    carry.clear();
                    break;
                }
                old -= c;
                carry.drain(..c);
                if carry.len() > self.limits.max_record_bytes {
                    return Err(MaskError::RecordTooLarge(self.limits.max_record_bytes));
                }
                if pos == chunk.len() {
                    break;
                }
            }
            self.carry = carry;
            if !self.carry.is_empty() {
                return Ok(());
            }
        }
        let rest = &chunk[pos..];
        let c = self.run(rest, false, out)?;
        self.consumed += c as u64;
        if self.is_full() {
            return Ok(());
        }
        let left = &rest[c..];
        if left.len() > self.limits.max_record_bytes {
            return Err(MaskError::RecordTooLarge(self.limits.max_record_bytes));
        }
        self.carry.extend_from_slice(left);
        Ok(())
    }

    /// Ends one input document and starts the next, for a source that sends its records as
    /// several documents (an API's pages): the document must be complete; the output goes on
    /// as one document. Errors like [`Masker::finish`] on an incomplete document.
    pub fn next_document(&mut self, out: &mut Vec<u8>) -> Result<(), MaskError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.finished || self.is_full() {
            return Ok(());
        }
        let before = out.len();
        let r = self.end_input(out);
        self.stats.bytes_out += (out.len() - before) as u64;
        if let Err(e) = r {
            self.failed = Some(e.clone());
            return Err(e);
        }
        self.top = match &self.input {
            InputFormat::JsonArray => Top::ArrStart,
            InputFormat::JsonAt(path) if path.is_empty() => Top::ArrStart,
            InputFormat::JsonAt(_) => Top::NavStart,
            InputFormat::Ndjson => Top::LineStart,
            InputFormat::Csv => Top::CsvHeader,
            InputFormat::Rows => Top::End,
        };
        self.entered = 0;
        self.found = false;
        self.carry.clear();
        self.cols.clear();
        // Offsets in errors count from the start of this document.
        self.consumed = 0;
        Ok(())
    }

    /// Checks that the input document is complete (the rest of the carried input parsed).
    fn end_input(&mut self, out: &mut Vec<u8>) -> Result<(), MaskError> {
        if !self.is_full() {
            let carry = std::mem::take(&mut self.carry);
            let c = self.run(&carry, true, out)?;
            self.consumed += c as u64;
            if !self.is_full() {
                if c < carry.len() {
                    return Err(MaskError::Truncated);
                }
                match self.top {
                    Top::End | Top::LineStart | Top::LineEnd | Top::CsvRow => {}
                    Top::CsvHeader => {
                        return Err(MaskError::InvalidCsv {
                            offset: self.consumed,
                            msg: "missing header row",
                        })
                    }
                    _ => return Err(MaskError::Truncated),
                }
                if matches!(&self.input, InputFormat::JsonAt(p) if !p.is_empty()) && !self.found {
                    return Err(MaskError::Shape {
                        offset: self.consumed,
                        msg: "no array at the member path",
                    });
                }
            }
        }
        Ok(())
    }

    fn finish_inner(&mut self, out: &mut Vec<u8>) -> Result<(), MaskError> {
        self.end_input(out)?;
        self.open(out);
        if self.output == OutputFormat::Json {
            out.push(b']');
        }
        Ok(())
    }

    /// Writes the start of the output document once.
    fn open(&mut self, out: &mut Vec<u8>) {
        if self.opened {
            return;
        }
        self.opened = true;
        match self.output {
            OutputFormat::Json => out.push(b'['),
            OutputFormat::Ndjson => {}
            OutputFormat::Csv => {
                self.slots.write_csv_header(out);
                if self.disputed_column {
                    out.pop();
                    out.push(b',');
                    out.extend_from_slice(DISPUTED_MEMBER.as_bytes());
                    out.push(b'\n');
                }
            }
        }
    }

    fn json_err(&self, e: PErr) -> MaskError {
        match e {
            PErr::More => MaskError::Truncated,
            PErr::Bad(i, msg) => MaskError::InvalidJson {
                offset: self.consumed + i as u64,
                msg,
            },
        }
    }

    fn shape(&self, i: usize, msg: &'static str) -> MaskError {
        MaskError::Shape {
            offset: self.consumed + i as u64,
            msg,
        }
    }

    /// Consumes complete units of `d` (whose first byte is at `self.consumed`); returns how
    /// many bytes were consumed. The rest is an incomplete unit. `fin`: `d` ends the input.
    fn run(&mut self, d: &[u8], fin: bool, out: &mut Vec<u8>) -> Result<usize, MaskError> {
        // UTF-8 is validated once per slice; a unit is valid when it ends before `utf8_to`.
        // (An incomplete sequence can only be at the end of the slice, so no complete unit
        // holds one: a unit reaching past `utf8_to` holds an invalid sequence.)
        let text = valid_prefix(d);
        self.utf8_to = text.len();
        let mut i = 0;
        while i < d.len() {
            if self.is_full() {
                break;
            }
            let b = d[i];
            match self.top {
                // A byte-order mark may open a CSV body, also before a quoted header cell.
                Top::CsvHeader if self.consumed == 0 && i == 0 && b == BOM[0] => {
                    if d.len() < BOM.len() && BOM.starts_with(d) && !fin {
                        break;
                    }
                    if d.starts_with(BOM) {
                        i = BOM.len();
                        continue;
                    }
                    match self.csv_row(d, text, i, fin, out)? {
                        Some(end) => i = end,
                        None => break,
                    }
                }
                Top::CsvHeader | Top::CsvRow => match self.csv_row(d, text, i, fin, out)? {
                    Some(end) => i = end,
                    None => break,
                },
                _ if is_ws(b) && self.top != Top::LineEnd => i += 1,
                Top::ArrStart => {
                    if b != b'[' {
                        return Err(self.shape(i, "expected a JSON array"));
                    }
                    self.top = Top::ArrFirst;
                    i += 1;
                }
                Top::ArrFirst | Top::ArrItem => {
                    if b == b'{' {
                        match self.json_record(d, text, i, out)? {
                            Some(end) => i = end,
                            None => break,
                        }
                        self.top = Top::ArrNext;
                    } else if b == b']' && self.top == Top::ArrFirst {
                        i += 1;
                        self.end_array();
                    } else {
                        match self.not_object(d, i) {
                            Some(e) => return Err(e),
                            None => break,
                        }
                    }
                }
                Top::ArrNext => match b {
                    b',' => {
                        self.top = Top::ArrItem;
                        i += 1;
                    }
                    b']' => {
                        i += 1;
                        self.end_array();
                    }
                    _ => return Err(self.json_err(PErr::Bad(i, "expected `,` or `]`"))),
                },
                Top::LineStart => {
                    if b != b'{' {
                        match self.not_object(d, i) {
                            Some(e) => return Err(e),
                            None => break,
                        }
                    }
                    match self.json_record(d, text, i, out)? {
                        Some(end) => i = end,
                        None => break,
                    }
                    self.top = Top::LineEnd;
                }
                Top::LineEnd => match b {
                    b'\n' => {
                        self.top = Top::LineStart;
                        i += 1;
                    }
                    b' ' | b'\t' | b'\r' => i += 1,
                    _ => return Err(self.json_err(PErr::Bad(i, "expected the end of the line"))),
                },
                Top::NavStart => {
                    if b != b'{' {
                        return Err(self.shape(i, "expected a JSON object"));
                    }
                    self.top = Top::NavKeyOrEnd(0);
                    i += 1;
                }
                Top::NavKeyOrEnd(depth) | Top::NavKey(depth) => {
                    if b == b'}' && matches!(self.top, Top::NavKeyOrEnd(_)) {
                        i += 1;
                        self.top = self.close_nav(depth);
                        continue;
                    }
                    if b != b'"' {
                        return Err(self.json_err(PErr::Bad(i, "expected a member name")));
                    }
                    let (end, esc) = match json::scan_str(d, i + 1) {
                        Ok(r) => r,
                        Err(PErr::More) => break,
                        Err(e) => return Err(self.json_err(e)),
                    };
                    // Whatever does not parse is refused wherever it is, names on the path too.
                    self.check_utf8(end)?;
                    let body = &d[i + 1..end - 1];
                    let name: &[u8] = if esc {
                        self.key_buf.clear();
                        json::decode_str(body, &mut self.key_buf).map_err(|e| self.json_err(e))?;
                        &self.key_buf
                    } else {
                        body
                    };
                    let matched = match &self.input {
                        InputFormat::JsonAt(path) => {
                            self.entered == depth && path.get(depth).is_some_and(|p| p.as_bytes() == name)
                        }
                        _ => false,
                    };
                    self.top = Top::NavColon(depth, matched);
                    i = end;
                }
                Top::NavColon(depth, matched) => {
                    if b != b':' {
                        return Err(self.json_err(PErr::Bad(i, "expected `:`")));
                    }
                    self.top = Top::NavValue(depth, matched);
                    i += 1;
                }
                Top::NavValue(depth, matched) => {
                    let last = matches!(&self.input, InputFormat::JsonAt(p) if depth + 1 == p.len());
                    if matched {
                        self.entered += 1;
                        if last {
                            if b != b'[' {
                                return Err(self.shape(i, "the member at the path is not an array"));
                            }
                            self.found = true;
                            self.top = Top::ArrFirst;
                        } else {
                            if b != b'{' {
                                return Err(self.shape(i, "the member on the path is not an object"));
                            }
                            self.top = Top::NavKeyOrEnd(depth + 1);
                        }
                        i += 1;
                    } else {
                        // A member that is not emitted: validate and skip it.
                        let end = match json::scan_value(d, i, depth + 1) {
                            Ok(r) => r.3,
                            Err(PErr::More) => break,
                            Err(e) => return Err(self.json_err(e)),
                        };
                        if end - i > self.limits.max_record_bytes {
                            return Err(MaskError::RecordTooLarge(self.limits.max_record_bytes));
                        }
                        self.check_utf8(end)?;
                        self.top = Top::NavNext(depth);
                        i = end;
                    }
                }
                Top::NavNext(depth) => match b {
                    b',' => {
                        self.top = Top::NavKey(depth);
                        i += 1;
                    }
                    b'}' => {
                        i += 1;
                        self.top = self.close_nav(depth);
                    }
                    _ => return Err(self.json_err(PErr::Bad(i, "expected `,` or `}`"))),
                },
                Top::End => return Err(self.json_err(PErr::Bad(i, "trailing bytes after the document"))),
            }
        }
        Ok(i)
    }

    /// The state after the `}` of the object at `depth` of the path.
    fn close_nav(&self, depth: usize) -> Top {
        if depth == 0 {
            Top::End
        } else {
            Top::NavNext(depth - 1)
        }
    }

    /// The state after the `]` of the record array.
    fn end_array(&mut self) {
        self.top = match &self.input {
            InputFormat::JsonAt(p) if !p.is_empty() => Top::NavNext(p.len() - 1),
            _ => Top::End,
        };
    }

    /// The error for a record that is not an object: invalid JSON if it is not a value at all.
    /// `None` while the value may continue in the next chunk: it is decided on the whole
    /// value, so the error does not depend on where the body was split (an unfinished value
    /// at the end is `Truncated`).
    fn not_object(&self, d: &[u8], i: usize) -> Option<MaskError> {
        match json::scan_value(d, i, 1) {
            Err(PErr::More) => None,
            Err(PErr::Bad(..)) => Some(self.json_err(PErr::Bad(i, "expected a JSON object"))),
            _ => Some(self.shape(i, "a record is not a JSON object")),
        }
    }

    /// Checks that the unit ending at `end` holds valid UTF-8 (see [`Masker::run`]).
    #[inline]
    fn check_utf8(&self, end: usize) -> Result<(), MaskError> {
        if end <= self.utf8_to {
            Ok(())
        } else {
            Err(self.json_err(PErr::Bad(self.utf8_to, "invalid UTF-8")))
        }
    }

    /// Parses the record object at `d[i]`, then writes it. `None`: the slice ends inside it.
    /// `text`: the valid UTF-8 prefix of `d`.
    fn json_record(
        &mut self,
        d: &[u8],
        text: &str,
        i: usize,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, MaskError> {
        self.rec.reset(self.slots.len());
        let shaped = if self.shapes {
            self.shape.parse(d, i, &self.slots, &mut self.rec)
        } else {
            None
        };
        let end = match shaped {
            Some(end) => {
                self.shape.compile(&self.slots);
                end
            }
            None => {
                self.rec.reset(self.slots.len());
                match parse_record(d, i, &self.slots, &mut self.rec, &mut self.key_buf) {
                    Ok(end) => end,
                    Err(PErr::More) => return Ok(None),
                    Err(e) => return Err(self.json_err(e)),
                }
            }
        };
        if end - i > self.limits.max_record_bytes {
            return Err(MaskError::RecordTooLarge(self.limits.max_record_bytes));
        }
        self.check_utf8(end)?;
        self.emit(text, shaped.is_some(), out)?;
        Ok(Some(end))
    }

    /// Writes the parsed record (row filter, masks, output format). `text`: the valid UTF-8
    /// prefix of the slice, holding the whole record. `shaped`: the record was read by the
    /// layout ([`Shape::parse`]).
    fn emit(&mut self, text: &str, shaped: bool, out: &mut Vec<u8>) -> Result<(), MaskError> {
        self.stats.records_in += 1;
        self.open(out);
        let first = self.stats.records_out == 0;
        let mark = out.len();
        let counted = self.stats;
        let written = self.rec.write(
            &self.slots,
            &self.plan.key,
            text,
            self.output,
            first,
            shaped.then_some(&self.shape),
            out,
            &mut self.stats,
        )?;
        let mark_of = match (&self.marks, written) {
            (Some((slot, marks)), true) => match self.rec.key_text(*slot, text)? {
                Some(k) => match marks.mark(k) {
                    Mark::None => None,
                    Mark::Suppressed => Some(None),
                    Mark::Disputed(id) => Some(Some(id.to_owned())),
                },
                None => None,
            },
            _ => None,
        };
        if let Some(None) = mark_of {
            // An upheld objection: the record never leaves, and is not a passing record.
            out.truncate(mark);
            self.stats = counted;
            self.stats.records_suppressed += 1;
        } else if written && self.skip > 0 {
            // Only passing records count towards the offset: take this one back.
            out.truncate(mark);
            self.stats = counted;
            self.skip -= 1;
            self.stats.records_skipped += 1;
        } else if written {
            if let Some(Some(id)) = &mark_of {
                self.stats.records_disputed += 1;
                mark_disputed(out, mark, self.output, id);
            } else if self.disputed_column {
                mark_disputed(out, mark, self.output, "");
            }
            self.stats.records_out += 1;
            if let Some((slot, keys)) = &mut self.served {
                if let Some(k) = self.rec.key_text(*slot, text)? {
                    keys.add(k.as_bytes());
                }
            }
        } else {
            self.stats.records_filtered += 1;
        }
        Ok(())
    }

    /// Reads one CSV row at `d[i]` (the header or a record). `None`: the slice ends inside it.
    fn csv_row(
        &mut self,
        d: &[u8],
        text: &str,
        i: usize,
        fin: bool,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, MaskError> {
        let csv_err = |e: PErr, consumed: u64| match e {
            PErr::More => MaskError::Truncated,
            PErr::Bad(at, msg) => MaskError::InvalidCsv {
                offset: consumed + at as u64,
                msg,
            },
        };
        let end = match csv::row(d, i, fin, &mut self.cells, &mut self.rec.buf) {
            Ok(csv::Row::Blank(end)) => return Ok(Some(end)),
            Ok(csv::Row::Cells(end)) => end,
            Err(PErr::More) => return Ok(None),
            Err(e) => return Err(csv_err(e, self.consumed)),
        };
        if end - i > self.limits.max_record_bytes {
            return Err(MaskError::RecordTooLarge(self.limits.max_record_bytes));
        }
        // The row starts at a character boundary at or before `utf8_to` (see `run`): it is
        // valid exactly when it ends by then, else its first invalid byte is at `utf8_to`.
        if end > self.utf8_to {
            return Err(csv_err(PErr::Bad(self.utf8_to, "invalid UTF-8"), self.consumed));
        }
        if self.top == Top::CsvHeader {
            self.cols.clear();
            for c in &self.cells {
                let name = if c.in_buf {
                    &self.rec.buf[c.start..c.end]
                } else {
                    &d[c.start..c.end]
                };
                let slot = self.slots.find(name).filter(|s| !self.cols.contains(&Some(*s)));
                self.cols.push(slot);
            }
            self.top = Top::CsvRow;
            return Ok(Some(end));
        }
        if self.cells.len() != self.cols.len() {
            return Err(csv_err(
                PErr::Bad(i, "row has a different number of cells than the header"),
                self.consumed,
            ));
        }
        self.rec.reset(self.slots.len());
        for (c, slot) in self.cells.iter().zip(&self.cols) {
            self.rec.set(
                *slot,
                Val {
                    kind: Kind::Text { quoted: c.quoted },
                    in_buf: c.in_buf,
                    start: c.start,
                    end: c.end,
                    member: None,
                },
            );
        }
        self.emit(text, false, out)?;
        Ok(Some(end))
    }

    /// Reads every record with the general parser and writer (tests compare the two paths).
    #[cfg(test)]
    pub(crate) fn general_only(mut self) -> Self {
        self.shapes = false;
        self
    }
}

/// The longest valid UTF-8 prefix of `d`, validated in one pass unless `d` holds an invalid
/// sequence. (An incomplete sequence at the end, from a chunk split, is cut off first.)
fn valid_prefix(d: &[u8]) -> &str {
    let n = d.len();
    let mut cut = n;
    for k in 1..=n.min(4) {
        let b = d[n - k];
        if b & 0xC0 != 0x80 {
            let need = match b {
                0xF0..=0xFF => 4,
                0xE0..=0xEF => 3,
                0xC0..=0xDF => 2,
                _ => 1,
            };
            if need > k {
                cut = n - k;
            }
            break;
        }
    }
    match std::str::from_utf8(&d[..cut]) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&d[..e.valid_up_to()]).unwrap_or_default(),
    }
}

/// Parses the record object at `d[i] == b'{'` into the record's slots; returns the index after
/// it. Values of fields without a slot are validated and dropped.
#[inline]
fn parse_record(
    d: &[u8],
    i: usize,
    slots: &Slots,
    rec: &mut Record,
    key_buf: &mut Vec<u8>,
) -> json::PResult<usize> {
    let mut j = json::skip_ws(d, i + 1);
    match d.get(j) {
        None => return Err(PErr::More),
        Some(b'}') => return Ok(j + 1),
        Some(_) => {}
    }
    let mut member = 0;
    loop {
        if *d.get(j).ok_or(PErr::More)? != b'"' {
            return Err(PErr::Bad(j, "expected a member name"));
        }
        let mstart = j;
        // Records usually repeat the member order: try the name (planned or not) that held
        // this position in the previous record before scanning the name.
        let n = member;
        member += 1;
        let (slot, kend, esc) = match rec.hinted(n, slots, d, j + 1) {
            Some((s, kend)) => (s, kend, false),
            None => {
                let (kend, esc) = json::scan_str(d, j + 1)?;
                let slot = if esc {
                    key_buf.clear();
                    json::decode_str(&d[j + 1..kend - 1], key_buf)?;
                    slots.find(key_buf)
                } else {
                    slots.find_in(d, j + 1, kend - 1)
                };
                rec.set_hint(n, slot, (!esc).then(|| &d[j + 1..kend - 1]));
                (slot, kend, esc)
            }
        };
        j = kend;
        if d.get(j) != Some(&b':') {
            j = json::skip_ws(d, j);
            if *d.get(j).ok_or(PErr::More)? != b':' {
                return Err(PErr::Bad(j, "expected `:`"));
            }
        }
        // `"name":value` is canonical when the name has no escapes and no whitespace surrounds
        // the colon: the writer may then copy the member as it is.
        let canon = !esc && j == kend && d.get(j + 1).is_some_and(|b| !is_ws(*b));
        j = json::skip_ws(d, j + 1);
        let (next, _) = read_value(d, j, canon.then_some(mstart), slot, rec)?;
        j = next;
        let mut b = *d.get(j).ok_or(PErr::More)?;
        if is_ws(b) {
            j = json::skip_ws(d, j);
            b = *d.get(j).ok_or(PErr::More)?;
        }
        match b {
            b',' => j = json::skip_ws(d, j + 1),
            b'}' => return Ok(j + 1),
            _ => return Err(PErr::Bad(j, "expected `,` or `}`")),
        }
    }
}

/// Reads the member value at `d[j]` into `slot` of `rec` (strings and numbers inline, the rest
/// through the general scanner). `member`: where the member starts when it is canonical
/// (`"name":value`), so that it may be copied as it is unless its value must be re-encoded (a
/// string with escapes, a composite). Returns the index after the value and whether the member
/// may be copied.
#[inline(always)]
fn read_value(
    d: &[u8],
    j: usize,
    member: Option<usize>,
    slot: Option<usize>,
    rec: &mut Record,
) -> json::PResult<(usize, bool)> {
    let (kind, start, end, next) = match *d.get(j).ok_or(PErr::More)? {
        b'"' => {
            let (end, esc) = json::scan_str(d, j + 1)?;
            (json::VKind::Str { esc }, j + 1, end - 1, end)
        }
        b'0'..=b'9' => {
            let end = json::scan_num(d, j)?;
            (json::VKind::Num, j, end, end)
        }
        _ => json::scan_value(d, j, 2)?,
    };
    let member = member.filter(|_| !matches!(kind, json::VKind::Composite | json::VKind::Str { esc: true }));
    rec.set(
        slot,
        Val {
            kind: Kind::Json(kind),
            in_buf: false,
            start,
            end,
            member: member.map(|m| (m, next)),
        },
    );
    Ok((next, member.is_some()))
}

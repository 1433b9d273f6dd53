//! The streaming masker: applies a [`FieldPlan`] to a response body as it streams.
//!
//! Input is parsed incrementally, chunk by chunk, split at any byte. Each record is assembled
//! in a bounded buffer (so a row filter can drop it and a CSV row can be written in header
//! order), then written in the output format. Memory is bounded by the largest record, never by
//! the body. Anything that does not parse is an error: the caller must abort the response.

use crate::plan::FieldPlan;
use std::sync::Arc;

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
    /// Field values written.
    pub fields_emitted: u64,
    /// Field values written masked by a rule.
    pub fields_masked: u64,
    /// Field values dropped because the plan does not name them.
    pub fields_dropped: u64,
    /// Values the detector safety net rewrote.
    pub detector_hits: u64,
    /// Input bytes consumed.
    pub bytes_in: u64,
    /// Output bytes produced.
    pub bytes_out: u64,
}

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

/// Applies a field plan to a streaming body. Feed chunks, then call [`Masker::finish`].
pub struct Masker {
    _plan: Arc<FieldPlan>,
}

impl Masker {
    /// A masker for one response.
    pub fn new(plan: Arc<FieldPlan>, input: InputFormat, output: OutputFormat, limits: MaskerLimits) -> Self {
        let _ = (input, output, limits);
        todo!("streaming masker")
    }

    /// Consumes one chunk of input, appending masked output to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), MaskError> {
        let _ = (chunk, out);
        todo!()
    }

    /// Ends the input, appending the rest of the output. Errors if the document is incomplete.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<MaskStats, MaskError> {
        let _ = out;
        todo!()
    }

    /// True once `max_records` were emitted: the caller may stop reading the input.
    pub fn is_full(&self) -> bool {
        todo!()
    }

    /// Counters so far.
    pub fn stats(&self) -> MaskStats {
        todo!()
    }
}

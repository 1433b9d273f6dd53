//! The hash-chained, durable audit log.
//!
//! Every request the gateway answers (allowed or refused) becomes one [`AuditRecord`], appended
//! to a chain of JSON-lines segment files in one folder:
//!
//! ```text
//! audit/
//!   audit-000001.jsonl    one JSON object per line, rolled at a size bound (default 64 MiB)
//!   audit-000002.jsonl    the chain continues across segments
//! ```
//!
//! # Chain
//!
//! Each line is the compact JSON of the record with its fields in a fixed order, ending with
//! `"prev"` and then `"hash"`:
//!
//! * `seq` is global and contiguous, starting at 1;
//! * `prev` is the `hash` of the previous record (64 zeros for the first record ever); since
//!   that hash covers every byte of the previous line except the hash itself, this chains
//!   whole lines;
//! * `hash` is the hex SHA-256 of the line's exact bytes without the `,"hash":"…"` member,
//!   i.e. of the record's canonical serialisation without `hash` (which includes `prev`).
//!
//! Because the verifier hashes the stored bytes rather than a re-serialisation, any change to
//! a line other than its `hash` value changes the hash, and a recomputed `hash` breaks the next
//! record's `prev`.
//!
//! # What verification detects
//!
//! [`verify_dir`] detects, and names the first bad record (segment, line, seq, problem):
//! editing any field of any record (even with a recomputed hash, unless every later record is
//! rewritten too), removing or inserting a record anywhere except at the very end, reordering
//! records or segments, removing a segment that is not the newest, and removing records from
//! the start of the log (the first record must be seq 1 with the all-zero `prev`).
//!
//! It cannot detect, on its own, the removal of the last record(s) or of whole newest
//! segments, nor a wholesale rewrite of the chain from some record onwards: a shortened or
//! rewritten chain is internally consistent. For that, publish the chain's head
//! ([`AuditLog::head`]: last seq and hash) somewhere the attacker cannot rewrite (logs shipped
//! off-host, the registry, a monitoring system) and check later with
//! [`verify_dir_with_anchor`], which requires the chain to still contain the anchored record
//! with the same hash.
//!
//! # Durability
//!
//! [`AuditLog::append`] resolves only after the record's line is written and `fsync`ed
//! (`sync_data`); the writer task batches everything pending into one write and one fsync
//! (group commit). A crash mid-write can only leave an incomplete final line of records that
//! were never acknowledged; [`AuditLog::open`] truncates it away with a warning.
//!
//! One folder has one writer: opening takes an exclusive `File::try_lock` on `<dir>/.lock`,
//! so a second gateway pointed at the same folder fails with [`AuditError::InUse`].
//! Retention (pruning old segments) is not supported: the first segment must start the chain.

mod line;
mod query;
mod record;
mod segment;
mod verify;
mod writer;

pub use query::{query, tail, Filter, Follower};
pub use record::{AuditRecord, GENESIS_PREV};
pub use verify::{verify_dir, verify_dir_with_anchor, BadRecord, Head, VerifyReport};
pub use writer::{AuditLog, AuditOptions};

use std::path::PathBuf;

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file-system operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing or syncing a batch failed; the record is not in the log.
    #[error("audit write failed: {0}")]
    WriteFailed(String),
    /// The writer could not restore a consistent file after a failed write and refuses
    /// further appends until restarted.
    #[error("audit writer is failing and refuses further writes: {0}")]
    Poisoned(String),
    /// The log is closed (or its writer stopped).
    #[error("the audit log is closed")]
    Closed,
    /// Another process (or another log in this one) is writing to the folder.
    #[error("audit folder {} is in use by another writer (lock {})", dir.display(), lock.display())]
    InUse {
        /// The audit folder.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The record cannot be written as given.
    #[error("invalid audit record: {0}")]
    InvalidRecord(String),
    /// The log on disk is not a valid chain where the writer needs to continue it.
    #[error("corrupt audit log: {segment} line {line}: {problem}")]
    Corrupt {
        /// Segment file name.
        segment: String,
        /// Line number (1-based).
        line: u64,
        /// What is wrong.
        problem: String,
    },
}

impl AuditError {
    fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AuditError {
        let path = path.into();
        move |source| AuditError::Io { what, path, source }
    }
}

#[cfg(test)]
mod tests;

//! Verification: recompute every hash, follow every `prev` link, check seq and segment order,
//! and optionally check the chain still reaches an external anchor.

use super::segment::{self, split_lines, Segment};
use super::{line, AuditError, GENESIS_PREV};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The end of the chain: last seq and its hash. Publish it off-host to anchor the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Seq of the last record (0 for an empty log).
    pub seq: u64,
    /// Its hash ([`GENESIS_PREV`] for an empty log).
    pub hash: String,
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {} hash {}", self.seq, self.hash)
    }
}

/// The first record that does not check out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRecord {
    /// Segment file name.
    pub segment: String,
    /// Line in the segment, from 1 (0: the segment file as a whole).
    pub line: u64,
    /// The record's seq, if it could be read.
    pub seq: Option<u64>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.segment, self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Records that checked out (all of them when `first_bad` is `None`).
    pub records: u64,
    /// Segment files in the folder.
    pub segments: u32,
    /// The first bad record, if any; verification stops there.
    pub first_bad: Option<BadRecord>,
    /// The last record that checked out.
    pub head: Option<Head>,
    /// The newest segment ends with an incomplete line: a write interrupted by a crash, never
    /// acknowledged, truncated when the log is next opened. Not counted as tampering.
    pub torn_tail: bool,
}

impl VerifyReport {
    /// Whether the whole chain checked out.
    pub fn is_ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Verifies the chain in `dir`: every record's hash, `prev` link and seq (contiguous from 1),
/// and the segments' order (contiguous from `audit-000001.jsonl`). Names the first bad record.
///
/// Records removed from the end of the log are not detectable this way; see
/// [`verify_dir_with_anchor`]. An `Err` means the folder could not be read, not that the chain
/// is broken.
pub fn verify_dir(dir: &Path) -> Result<VerifyReport, AuditError> {
    verify(dir, None)
}

/// Like [`verify_dir`], and also requires the chain to contain record `seq` with hash `hash`
/// (a head published earlier), which detects records removed from the end and a chain
/// rewritten from some record onwards. Records appended after the anchor are fine.
pub fn verify_dir_with_anchor(dir: &Path, seq: u64, hash: &str) -> Result<VerifyReport, AuditError> {
    verify(
        dir,
        Some(&Head {
            seq,
            hash: hash.to_owned(),
        }),
    )
}

fn verify(dir: &Path, anchor: Option<&Head>) -> Result<VerifyReport, AuditError> {
    let segments = segment::list(dir)?;
    let mut report = VerifyReport {
        records: 0,
        segments: u32::try_from(segments.len()).unwrap_or(u32::MAX),
        first_bad: None,
        head: None,
        torn_tail: false,
    };
    let mut chain = Chain {
        seq: 0,
        prev: GENESIS_PREV.to_owned(),
        anchor,
        anchor_seen: false,
    };
    if anchor.is_some_and(|a| a.seq == 0 && a.hash == GENESIS_PREV) {
        chain.anchor_seen = true;
    }
    let mut last_line = 0;
    for (k, seg) in segments.iter().enumerate() {
        let expected = Segment::new(dir, u32::try_from(k + 1).unwrap_or(u32::MAX));
        if seg.index != expected.index {
            let problem = format!("expected {} here: segments are missing or renamed", expected.name);
            report.first_bad = Some(BadRecord {
                segment: seg.name.clone(),
                line: 0,
                seq: None,
                problem,
            });
            return Ok(report);
        }
        let data = seg.read()?;
        let (lines, torn) = split_lines(&data);
        for (i, l) in lines.iter().enumerate() {
            let line = i as u64 + 1;
            if let Err((seq, problem)) = chain.next(l) {
                report.first_bad = Some(BadRecord {
                    segment: seg.name.clone(),
                    line,
                    seq,
                    problem,
                });
                return Ok(report);
            }
            report.records += 1;
            report.head = Some(Head {
                seq: chain.seq,
                hash: chain.prev.clone(),
            });
        }
        last_line = lines.len() as u64;
        if !torn.is_empty() {
            if k + 1 == segments.len() {
                report.torn_tail = true;
            } else {
                let problem = "incomplete line in a segment that is not the newest".to_owned();
                let line = last_line + 1;
                report.first_bad = Some(BadRecord {
                    segment: seg.name.clone(),
                    line,
                    seq: None,
                    problem,
                });
                return Ok(report);
            }
        }
    }
    if let Some(a) = anchor.filter(|_| !chain.anchor_seen) {
        let problem = if a.seq > chain.seq {
            format!(
                "the log ends at seq {} but the anchor names seq {}: records were removed from the end",
                chain.seq, a.seq
            )
        } else {
            "the anchor (seq 0) does not name the empty chain".to_owned()
        };
        let segment = segments.last().map(|s| s.name.clone()).unwrap_or_default();
        report.first_bad = Some(BadRecord {
            segment,
            line: last_line + 1,
            seq: Some(a.seq),
            problem,
        });
    }
    Ok(report)
}

/// The running state of a verification.
struct Chain<'a> {
    seq: u64,
    prev: String,
    anchor: Option<&'a Head>,
    anchor_seen: bool,
}

impl Chain<'_> {
    /// Checks the next line; the seq (if known) and the problem when it does not check out.
    fn next(&mut self, l: &[u8]) -> Result<(), (Option<u64>, String)> {
        let r = line::check(l).map_err(|e| (e.seq, e.problem))?;
        let expected = self.seq + 1;
        if r.seq != expected {
            let problem = format!(
                "seq {} where {expected} was expected: records missing, inserted or reordered",
                r.seq
            );
            return Err((Some(r.seq), problem));
        }
        if r.prev != self.prev {
            let problem =
                "prev does not match the previous record's hash: the record before it was removed, \
                           reordered or rewritten";
            return Err((Some(r.seq), problem.to_owned()));
        }
        if let Some(a) = self.anchor.filter(|a| a.seq == r.seq) {
            if a.hash != r.hash {
                let problem =
                    "hash differs from the anchor: the chain was rewritten at or before this record";
                return Err((Some(r.seq), problem.to_owned()));
            }
            self.anchor_seen = true;
        }
        self.seq = r.seq;
        self.prev = r.hash;
        Ok(())
    }
}

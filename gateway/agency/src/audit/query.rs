//! Reading the log: the last records, filtered queries, and following new records.
//!
//! These read the segment files directly (they do not need the writer) and do not verify the
//! chain; use [`verify_dir`](super::verify_dir) for that. An incomplete final line left by a
//! crash is skipped.

use super::segment::{self, split_lines, Segment};
use super::{AuditError, AuditRecord};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Which records a [`query`] returns. Every set field must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Exactly this licensee.
    pub licensee: Option<String>,
    /// Exactly this dataset.
    pub dataset: Option<String>,
    /// Records at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Records strictly before this time.
    pub until: Option<OffsetDateTime>,
    /// `"allow"` or `"deny"`.
    pub decision: Option<String>,
    /// At most this many records: the newest matches.
    pub limit: Option<usize>,
}

impl Filter {
    /// Whether `r` passes the filter (ignoring `limit`). A record whose time cannot be parsed
    /// does not pass a time bound.
    pub fn matches(&self, r: &AuditRecord) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
        if !eq(&self.licensee, &r.licensee) || !eq(&self.dataset, &r.dataset) {
            return false;
        }
        if self.decision.as_ref().is_some_and(|d| *d != r.decision) {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let Some(t) = r.timestamp() else { return false };
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t >= u) {
                return false;
            }
        }
        true
    }
}

/// The last `n` records, oldest first.
pub fn tail(dir: &Path, n: usize) -> Result<Vec<AuditRecord>, AuditError> {
    query(
        dir,
        &Filter {
            limit: Some(n),
            ..Filter::default()
        },
    )
}

/// The records matching `filter`, oldest first (with a limit: the newest `limit` matches).
/// Scans the segments newest first.
pub fn query(dir: &Path, filter: &Filter) -> Result<Vec<AuditRecord>, AuditError> {
    let limit = filter.limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    'segments: for seg in segment::list(dir)?.iter().rev() {
        let data = seg.read()?;
        let (lines, _torn) = split_lines(&data);
        for (i, l) in lines.iter().enumerate().rev() {
            let r = parse(seg, i as u64 + 1, l)?;
            if filter.matches(&r) {
                out.push(r);
                if out.len() >= limit {
                    break 'segments;
                }
            }
        }
    }
    out.reverse();
    Ok(out)
}

fn parse(seg: &Segment, line: u64, l: &[u8]) -> Result<AuditRecord, AuditError> {
    serde_json::from_slice(l).map_err(|e| AuditError::Corrupt {
        segment: seg.name.clone(),
        line,
        problem: format!("not a valid audit record: {e}"),
    })
}

/// Reads records appended after it was created (for `tail --follow`), across segment rolls.
#[derive(Debug)]
pub struct Follower {
    dir: PathBuf,
    /// Current segment index (0 before the first segment exists) and the offset of the first
    /// unread byte in it.
    index: u32,
    offset: u64,
    line: u64,
}

impl Follower {
    /// Starts at the current end of the log in `dir`.
    pub fn at_end(dir: &Path) -> Result<Follower, AuditError> {
        let mut f = Follower {
            dir: dir.to_owned(),
            index: 0,
            offset: 0,
            line: 0,
        };
        if let Some(seg) = segment::list(dir)?.pop() {
            let data = seg.read()?;
            let (lines, torn) = split_lines(&data);
            f.index = seg.index;
            f.offset = (data.len() - torn.len()) as u64;
            f.line = lines.len() as u64;
        }
        Ok(f)
    }

    /// The complete records appended since the last poll.
    pub fn poll(&mut self) -> Result<Vec<AuditRecord>, AuditError> {
        let mut out = Vec::new();
        loop {
            if self.index > 0 {
                let seg = Segment::new(&self.dir, self.index);
                let mut data = Vec::new();
                let mut file =
                    std::fs::File::open(&seg.path).map_err(AuditError::io("opening", &seg.path))?;
                file.seek(SeekFrom::Start(self.offset))
                    .and_then(|_| file.read_to_end(&mut data))
                    .map_err(AuditError::io("reading", &seg.path))?;
                let (lines, torn) = split_lines(&data);
                for l in &lines {
                    self.line += 1;
                    out.push(parse(&seg, self.line, l)?);
                }
                self.offset += (data.len() - torn.len()) as u64;
                if !torn.is_empty() {
                    return Ok(out); // the rest of this segment is still being written
                }
            }
            let next = Segment::new(&self.dir, self.index + 1);
            if !next.path.exists() {
                return Ok(out);
            }
            self.index = next.index;
            self.offset = 0;
            self.line = 0;
        }
    }
}

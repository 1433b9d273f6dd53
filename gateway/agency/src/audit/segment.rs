//! Segment files: naming, listing, splitting into lines, and recovery of the chain's end.

use super::{line, AuditError, GENESIS_PREV};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

const PREFIX: &str = "audit-";
const EXT: &str = ".jsonl";

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Segment {
    /// Position in the chain of segments, from 1.
    pub index: u32,
    /// File name, e.g. `audit-000001.jsonl`.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
}

impl Segment {
    /// The segment `index` in `dir`.
    pub fn new(dir: &Path, index: u32) -> Segment {
        let name = format!("{PREFIX}{index:06}{EXT}");
        Segment {
            index,
            path: dir.join(&name),
            name,
        }
    }

    /// Reads the whole segment.
    pub fn read(&self) -> Result<Vec<u8>, AuditError> {
        std::fs::read(&self.path).map_err(AuditError::io("reading", &self.path))
    }
}

fn parse_index(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(EXT)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segments in `dir`, in chain order. Other files are ignored.
pub(super) fn list(dir: &Path) -> Result<Vec<Segment>, AuditError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(AuditError::io("listing", dir))? {
        let entry = entry.map_err(AuditError::io("listing", dir))?;
        let name = entry.file_name();
        if let Some(index) = name.to_str().and_then(parse_index) {
            out.push(Segment {
                index,
                name: name.to_string_lossy().into_owned(),
                path: entry.path(),
            });
        }
    }
    out.sort_by_key(|s| s.index);
    Ok(out)
}

/// Splits a segment's bytes into its complete lines (without newlines) and the incomplete
/// remainder after the last newline (empty when the segment ends cleanly).
pub(super) fn split_lines(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let torn = lines.pop().unwrap_or_default();
    (lines, torn)
}

/// Makes a created or removed directory entry durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(AuditError::io("syncing folder", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates a new, empty segment and makes its directory entry durable.
pub(super) fn create(dir: &Path, index: u32) -> Result<(Segment, File), AuditError> {
    let seg = Segment::new(dir, index);
    // Not `create_new`: an empty file left by an earlier attempt whose folder sync failed is
    // reused.
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&seg.path)
        .map_err(AuditError::io("creating", &seg.path))?;
    let len = file
        .metadata()
        .map_err(AuditError::io("reading metadata of", &seg.path))?
        .len();
    if len != 0 {
        return Err(AuditError::Corrupt {
            segment: seg.name,
            line: 1,
            problem: "a segment the writer is about to start already holds data".to_owned(),
        });
    }
    sync_dir(dir)?;
    Ok((seg, file))
}

/// Where the writer continues: the newest segment, opened for appending, and the chain's end.
pub(super) struct Recovered {
    /// The segment to append to.
    pub segment: Segment,
    /// It, opened for appending.
    pub file: File,
    /// Its length.
    pub size: u64,
    /// Seq of the last record (0 if none).
    pub seq: u64,
    /// Hash of the last record ([`GENESIS_PREV`] if none).
    pub prev: String,
}

/// Finds the end of the chain in `dir` (creating the first segment if there is none),
/// truncating an incomplete final line left by a crash.
pub(super) fn recover(dir: &Path) -> Result<Recovered, AuditError> {
    let segments = list(dir)?;
    let Some(newest) = segments.last() else {
        let (segment, file) = create(dir, 1)?;
        return Ok(Recovered {
            segment,
            file,
            size: 0,
            seq: 0,
            prev: GENESIS_PREV.to_owned(),
        });
    };
    let data = newest.read()?;
    let (_, torn) = split_lines(&data);
    if !torn.is_empty() {
        let keep = data.len() - torn.len();
        tracing::warn!(
            segment = %newest.name, bytes = torn.len(),
            "audit: truncating an incomplete final line (a write interrupted before it was acknowledged)"
        );
        let f = OpenOptions::new()
            .write(true)
            .open(&newest.path)
            .map_err(AuditError::io("opening", &newest.path))?;
        f.set_len(keep as u64)
            .and_then(|()| f.sync_all())
            .map_err(AuditError::io("truncating", &newest.path))?;
    }
    let (seq, prev) = last_record(&segments, newest, &data[..data.len() - torn.len()])?;
    let file = OpenOptions::new()
        .append(true)
        .open(&newest.path)
        .map_err(AuditError::io("opening", &newest.path))?;
    let size = file
        .metadata()
        .map_err(AuditError::io("reading metadata of", &newest.path))?
        .len();
    Ok(Recovered {
        segment: newest.clone(),
        file,
        size,
        seq,
        prev,
    })
}

/// The seq and hash of the last record, looking back through earlier segments when the newest
/// is empty.
fn last_record(
    segments: &[Segment],
    newest: &Segment,
    newest_data: &[u8],
) -> Result<(u64, String), AuditError> {
    for seg in segments.iter().rev() {
        let owned;
        let data = if seg.index == newest.index {
            newest_data
        } else {
            owned = seg.read()?;
            &owned[..]
        };
        let (lines, torn) = split_lines(data);
        if let Some(last) = lines.last() {
            let record = line::check(last).map_err(|e| AuditError::Corrupt {
                segment: seg.name.clone(),
                line: lines.len() as u64,
                problem: e.problem,
            })?;
            return Ok((record.seq, record.hash));
        }
        if !torn.is_empty() {
            return Err(AuditError::Corrupt {
                segment: seg.name.clone(),
                line: 1,
                problem: "incomplete line in a segment that is not the newest".to_owned(),
            });
        }
    }
    Ok((0, GENESIS_PREV.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Segment::new(dir.path(), 3).name, "audit-000003.jsonl");
        assert_eq!(parse_index("audit-1234567.jsonl"), Some(1_234_567));
        assert_eq!(parse_index("audit-.jsonl"), None);
        assert_eq!(parse_index("audit-01.jsonl.bak"), None);
        for name in ["audit-000010.jsonl", "audit-000002.jsonl", "notes.txt", ".lock"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let idx: Vec<u32> = list(dir.path()).unwrap().iter().map(|s| s.index).collect();
        assert_eq!(idx, [2, 10]);
    }

    #[test]
    fn split() {
        assert_eq!(split_lines(b""), (vec![], &b""[..]));
        assert_eq!(split_lines(b"a\nb\n"), (vec![&b"a"[..], &b"b"[..]], &b""[..]));
        assert_eq!(split_lines(b"a\nb"), (vec![&b"a"[..]], &b"b"[..]));
    }

    #[test]
    fn recover_empty_folder_creates_first_segment() {
        let dir = tempfile::tempdir().unwrap();
        let r = recover(dir.path()).unwrap();
        assert_eq!(
            (r.segment.index, r.size, r.seq, r.prev.as_str()),
            (1, 0, 0, GENESIS_PREV)
        );
        assert!(dir.path().join("audit-000001.jsonl").exists());
    }
}

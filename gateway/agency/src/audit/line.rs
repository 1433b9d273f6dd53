//! The on-disk line: canonical JSON of a record, with its hash spliced in as the last member.

use super::AuditRecord;
use sha2::{Digest, Sha256};

/// `,"hash":"` + 64 hex digits + `"}`.
const HASH_MEMBER: &[u8] = b",\"hash\":\"";
const SUFFIX_LEN: usize = HASH_MEMBER.len() + 64 + 2;

/// Serialises a record whose `seq`, `time` and `prev` are set (and `hash` is ignored) into its
/// line (with the trailing newline) and returns the line and the record's hash.
pub(super) fn encode(record: &AuditRecord) -> Result<(Vec<u8>, String), serde_json::Error> {
    let mut body = if record.hash.is_empty() {
        serde_json::to_vec(record)?
    } else {
        let unhashed = AuditRecord {
            hash: String::new(),
            ..record.clone()
        };
        serde_json::to_vec(&unhashed)?
    };
    let hash = hex::encode(Sha256::digest(&body));
    // A struct serialises as an object, so the body ends with `}`.
    body.pop();
    body.extend_from_slice(HASH_MEMBER);
    body.extend_from_slice(hash.as_bytes());
    body.extend_from_slice(b"\"}\n");
    Ok((body, hash))
}

/// Why a line is not a valid record on its own.
#[derive(Debug)]
pub(super) struct LineError {
    /// The record's seq, when the line is JSON enough to tell.
    pub seq: Option<u64>,
    /// What is wrong.
    pub problem: String,
}

/// Parses a line (without its newline) and checks that its hash matches its bytes.
pub(super) fn check(line: &[u8]) -> Result<AuditRecord, LineError> {
    let record: AuditRecord = serde_json::from_slice(line).map_err(|e| LineError {
        seq: seq_of(line),
        problem: format!("not a valid audit record: {e}"),
    })?;
    let bad = |problem: &str| LineError {
        seq: Some(record.seq),
        problem: problem.to_owned(),
    };
    let Some(split) = line.len().checked_sub(SUFFIX_LEN) else {
        return Err(bad("line does not end with its hash"));
    };
    let (body, suffix) = line.split_at(split);
    let well_formed = suffix.starts_with(HASH_MEMBER)
        && suffix.ends_with(b"\"}")
        && suffix[HASH_MEMBER.len()..HASH_MEMBER.len() + 64] == *record.hash.as_bytes();
    if !well_formed {
        return Err(bad("line does not end with its hash"));
    }
    let mut hasher = Sha256::new();
    hasher.update(body);
    hasher.update(b"}");
    if hex::encode(hasher.finalize()) != record.hash {
        return Err(bad("hash mismatch: the record was altered"));
    }
    Ok(record)
}

fn seq_of(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()?
        .get("seq")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AuditRecord {
        AuditRecord {
            seq: 7,
            time: "2025-03-01T08:00:05.123Z".into(),
            request_id: "r".into(),
            decision: "allow".into(),
            status: 200,
            latency_ms: 1.25,
            prev: super::super::GENESIS_PREV.into(),
            ..AuditRecord::default()
        }
    }

    #[test]
    fn round_trip() {
        let (line, hash) = encode(&sample()).unwrap();
        assert_eq!(line.last(), Some(&b'\n'));
        let text = std::str::from_utf8(&line).unwrap();
        assert!(text.ends_with(&format!(
            ",\"prev\":\"{}\",\"hash\":\"{hash}\"}}\n",
            super::super::GENESIS_PREV
        )));
        let back = check(&line[..line.len() - 1]).unwrap();
        assert_eq!(back, AuditRecord { hash, ..sample() });
        // Re-encoding a record read back gives the same line.
        assert_eq!(encode(&back).unwrap().0, line);
    }

    #[test]
    fn any_edit_is_detected() {
        let (line, _) = encode(&sample()).unwrap();
        let text = std::str::from_utf8(&line[..line.len() - 1]).unwrap();
        for (from, to) in [
            ("\"status\":200", "\"status\":201"),
            ("\"r\"", "\"s\""),
            ("1.25", "1.250"),
        ] {
            let edited = text.replacen(from, to, 1);
            assert_ne!(edited, text);
            let e = check(edited.as_bytes()).unwrap_err();
            assert_eq!(e.seq, Some(7));
            assert!(e.problem.contains("hash mismatch"), "{}", e.problem);
        }
        let e = check(b"{\"seq\":3,\"garbage\"").unwrap_err();
        assert!(e.problem.contains("not a valid"));
        let e = check(text.replace("\"hash\":\"", "\"hash\": \"").as_bytes()).unwrap_err();
        assert!(e.problem.contains("does not end with its hash"), "{}", e.problem);
    }
}

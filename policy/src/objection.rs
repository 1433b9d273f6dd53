//! What decided objections and corrections do to a dataset's records at every gateway.
//!
//! The public may object to a record (privacy, trade secrets) or report it wrong. When the
//! owning agency upholds an objection, the record's key is **suppressed**: the masker drops
//! every record whose key matches, whatever the source, and counts it. When it upholds a
//! correction, the record is **disputed** until the agency resolves it: each response carries
//! [`DISPUTED_MEMBER`] with the objection's id beside that record. The registry distributes
//! the marks in the signed snapshot ([`crate::snapshot::Snapshot::record_marks`]).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The member (JSON) or column (CSV) that carries a disputed record's objection id.
pub const DISPUTED_MEMBER: &str = "_sluice_disputed";

/// One dataset's suppressed and disputed records, by record key
/// ([`crate::catalog::DatasetSpec::record_key`]; a number key as its JSON text).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordMarks {
    /// Keys of records no response may carry.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub suppressed: BTreeSet<String>,
    /// Keys of disputed records, each with the id of the correction that disputes it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub disputed: BTreeMap<String, String>,
}

impl RecordMarks {
    /// Whether no record is marked.
    pub fn is_empty(&self) -> bool {
        self.suppressed.is_empty() && self.disputed.is_empty()
    }

    /// What happens to the record with `key`.
    pub fn mark(&self, key: &str) -> Mark<'_> {
        if self.suppressed.contains(key) {
            Mark::Suppressed
        } else if let Some(id) = self.disputed.get(key) {
            Mark::Disputed(id)
        } else {
            Mark::None
        }
    }
}

/// What a record's key says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark<'a> {
    /// Sent as it is.
    None,
    /// Dropped from the response.
    Suppressed,
    /// Sent with [`DISPUTED_MEMBER`] set to this objection id.
    Disputed(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppression_wins_over_a_dispute_and_unmarked_keys_pass() {
        let mut m = RecordMarks::default();
        assert!(m.is_empty());
        m.suppressed.insert("7".into());
        m.disputed.insert("7".into(), "obj-a".into());
        m.disputed.insert("8".into(), "obj-b".into());
        assert_eq!(m.mark("7"), Mark::Suppressed);
        assert_eq!(m.mark("8"), Mark::Disputed("obj-b"));
        assert_eq!(m.mark("9"), Mark::None);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<RecordMarks>(&json).unwrap(), m);
        assert_eq!(serde_json::to_string(&RecordMarks::default()).unwrap(), "{}");
    }
}

//! The field plan: exactly which fields leave, and how each is masked.
//!
//! A plan is an allow-list. A field the plan does not name is dropped; a value the plan
//! cannot classify is an error. Plans are compiled once per licence, never per request.

use crate::mask::fingerprint::Marker;
use crate::mask::{MaskRule, PseudonymKey};
use crate::objection::RecordMarks;
use crate::rowfilter::RowFilter;
use std::sync::Arc;

/// The fields a response may carry, in output order, with the row filter and pseudonym key.
#[derive(Debug, Clone)]
pub struct FieldPlan {
    /// Fields emitted, in output order.
    pub fields: Vec<PlannedField>,
    /// Records that do not match are removed.
    pub row_filter: Option<RowFilter>,
    /// Key for [`MaskRule::Pseudonym`], specific to the licensee and dataset.
    pub key: PseudonymKey,
    /// The dataset's record key: the masker reads it from every record it writes, planned or
    /// not, and digests the keys for the audit ([`crate::served`]).
    pub record_key: Option<String>,
    /// The dataset's suppressed and disputed records ([`crate::objection`]), found by
    /// `record_key`; a plan with marks must name the record key.
    pub marks: Option<Arc<RecordMarks>>,
}

/// One field of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedField {
    /// Field name (decoded, as the source writes it).
    pub name: String,
    /// What to do with its value.
    pub action: FieldAction,
}

/// What happens to a planned field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldAction {
    /// Emit in the clear; when `scan` is set, strings pass through the detector safety net.
    Emit {
        /// Apply [`crate::mask::detect::scrub`] to string values.
        scan: bool,
    },
    /// Apply a masking rule (never [`MaskRule::Clear`] or [`MaskRule::Drop`]).
    Mask(MaskRule),
    /// Emit a number moved within its tolerance onto the licensee's fingerprint lattice
    /// ([`crate::mask::fingerprint`]). A value that is not a number, or a record without a
    /// key, is emitted as it is: it carries no mark.
    Fingerprint {
        /// The licensee's marker for the field.
        marker: Arc<Marker>,
        /// Apply [`crate::mask::detect::scrub`] to what is emitted, marked or not, as
        /// [`FieldAction::Emit`] does.
        scan: bool,
    },
}

impl FieldPlan {
    /// Names of the emitted fields, in order (the CSV header).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }

    /// Names of the fields the masker reads from a record besides the row filter's: the
    /// emitted fields, then the record key (for the digest and the marks), once each. A source that
    /// selects columns selects these.
    pub fn read_fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.names().collect();
        let marked = self.fields.iter().filter_map(|f| match &f.action {
            FieldAction::Fingerprint { marker, .. } => Some(marker.record_key.as_str()),
            _ => None,
        });
        for key in self.record_key.as_deref().into_iter().chain(marked) {
            if !out.contains(&key) {
                out.push(key);
            }
        }
        out
    }

    /// Restricts the plan to the requested fields, keeping the plan's order.
    /// Returns the first requested field the plan does not hold.
    pub fn narrowed<'a>(&self, requested: &[&'a str]) -> Result<FieldPlan, &'a str> {
        if let Some(missing) = requested
            .iter()
            .find(|r| !self.fields.iter().any(|f| f.name == **r))
        {
            return Err(missing);
        }
        // The record key and the marks stay: a narrower response still drops suppressed
        // records, marks disputed ones and digests what it served.
        Ok(FieldPlan {
            record_key: self.record_key.clone(),
            marks: self.marks.clone(),
            fields: self
                .fields
                .iter()
                .filter(|f| requested.contains(&f.name.as_str()))
                .cloned()
                .collect(),
            row_filter: self.row_filter.clone(),
            key: self.key.clone(),
        })
    }
}

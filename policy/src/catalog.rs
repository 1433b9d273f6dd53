//! Datasets and their fields as an agency declares them: the catalog entries a gateway offers.

use crate::classify::{Grades, OpenCategory, RuleTable};
use crate::mask::fingerprint::Tolerance;
use serde::{Deserialize, Serialize};

/// One dataset: its identity, grades and fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Stable identifier used in URLs, e.g. `fire-hydrants`.
    pub id: String,
    /// Human title for the catalog.
    #[serde(default)]
    pub title: String,
    /// The agency that owns the data.
    #[serde(default)]
    pub owner: String,
    /// How often the source is updated, e.g. `daily`.
    #[serde(default)]
    pub update_frequency: String,
    /// Catalog version, bumped by the agency when grades or fields change.
    #[serde(default = "one")]
    pub version: u32,
    /// Grades of the dataset as a whole; decide whether the public listener may serve it.
    #[serde(default)]
    pub grades: Grades,
    /// The fields, in the order responses carry them.
    pub fields: Vec<FieldSpec>,
    /// The field whose value identifies a record (unique and stable across downloads).
    /// Fingerprint marks are keyed by it, and audit records digest the keys a response served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_key: Option<String>,
}

fn one() -> u32 {
    1
}

/// One field of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Field name as the source writes it.
    pub name: String,
    /// Grades of the field.
    #[serde(default)]
    pub grades: Grades,
    /// Run the detector safety net (phone, ID, bank card, e-mail) over string values
    /// emitted in the clear. On by default.
    #[serde(default = "yes")]
    pub scan: bool,
    /// Description for the catalog.
    #[serde(default)]
    pub description: String,
    /// Declares the field's numbers tolerant of small changes: each licensee's copy carries
    /// its own keyed marks within the tolerance (see [`crate::mask::fingerprint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<FingerprintSpec>,
}

/// A field's fingerprint declaration: `fingerprint = { tolerance = 0.00001 }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerprintSpec {
    /// How far a value may move: marks keep values within half of it.
    pub tolerance: f64,
}

impl FingerprintSpec {
    /// The tolerance as the marker reads it; `None` unless it is a positive decimal with at
    /// most six significant digits.
    pub fn tolerance(&self) -> Option<Tolerance> {
        // `Display` of an `f64` is the shortest text that reads back as the same number, with
        // no exponent: `0.00001`, not `1e-5`.
        Tolerance::parse(&self.tolerance.to_string())
    }
}

/// One thing wrong with a dataset declaration: where (relative to the dataset, e.g.
/// `fields[2].name`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// Path relative to the dataset.
    pub path: String,
    /// What is wrong.
    pub message: &'static str,
}

fn yes() -> bool {
    true
}

impl DatasetSpec {
    /// The dataset's own open category under a rule table.
    pub fn category(&self, rules: &RuleTable) -> OpenCategory {
        rules.category(&self.grades)
    }

    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// What is wrong with the declaration's fields, record key and fingerprints; empty when
    /// nothing is.
    pub fn problems(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        let mut bad = |path: String, message| out.push(SpecProblem { path, message });
        if self.fields.is_empty() {
            bad("fields".into(), "a dataset needs at least one field");
        }
        let mut names = std::collections::HashSet::new();
        for (j, f) in self.fields.iter().enumerate() {
            if f.name.is_empty() || !names.insert(f.name.as_str()) {
                bad(format!("fields[{j}].name"), "empty or duplicate field name");
            }
            let Some(fp) = &f.fingerprint else { continue };
            let path = format!("fields[{j}].fingerprint.tolerance");
            if fp.tolerance().is_none() {
                bad(
                    path,
                    "must be a positive number with at most six significant digits",
                );
            } else if self.record_key.is_none() {
                bad(path, "a fingerprinted field needs the dataset's record_key");
            } else if self.record_key.as_deref() == Some(f.name.as_str()) {
                bad(path, "the record key itself cannot carry marks");
            }
        }
        if let Some(k) = &self.record_key {
            if self.field(k).is_none() {
                bad("record_key".into(), "must name one of the dataset's fields");
            }
        }
        out
    }
}

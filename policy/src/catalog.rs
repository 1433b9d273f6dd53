//! Datasets and their fields as an agency declares them: the catalog entries a gateway offers.

use crate::classify::{Grades, OpenCategory, RuleTable};
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
}

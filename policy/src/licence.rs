//! Licences: who may read which dataset, for which declared scenario, how, and how much.
//!
//! These are the types the registry distributes and the gateway enforces.

use crate::mask::MaskRule;
use crate::rowfilter::RowFilter;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// A licence: licensee × dataset × scenario × fields × filter × limits × validity × mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Licence {
    /// Licence identifier, e.g. `lic-0001`.
    pub id: String,
    /// Licensee identifier (as in the certificate's `urn:sluice:licensee:<id>`).
    pub licensee: String,
    /// Dataset identifier.
    pub dataset: String,
    /// Declared purpose the licence is for, e.g. `fire-hydrant-adoption`.
    pub scenario: String,
    /// Allowed fields and the masking rule of each.
    pub fields: BTreeMap<String, MaskRule>,
    /// Only records matching this filter are visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_filter: Option<RowFilter>,
    /// Request rate limit.
    #[serde(default)]
    pub rate: RateLimit,
    /// Daily quotas.
    #[serde(default)]
    pub quota: Quota,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub valid_from: OffsetDateTime,
    /// End of validity (exclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub valid_until: OffsetDateTime,
    /// `records` or `aggregate`.
    #[serde(default)]
    pub mode: Mode,
    /// Active, suspended or revoked.
    #[serde(default)]
    pub status: LicenceStatus,
    /// Reference of the expert review that allowed this grant although it completes a
    /// fusion rule (a set of datasets one licensee must not otherwise hold together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expert_review: Option<String>,
    /// What aggregate answers may hold (the data sandbox): required by `mode = "aggregate"`;
    /// on a records licence it allows aggregates as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<crate::aggregate::AggregateAllowance>,
}

/// Requests per second with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 10,
            burst: 20,
        }
    }
}

/// Daily quotas; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Requests per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_day: Option<u64>,
    /// Records per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_per_day: Option<u64>,
}

/// What leaves under a licence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Masked records.
    #[default]
    Records,
    /// Only aggregates (the data sandbox).
    Aggregate,
}

/// Administrative state of a licence.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LicenceStatus {
    /// In force.
    #[default]
    Active,
    /// Temporarily not in force.
    Suspended {
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// Ended for good.
    Revoked {
        /// Why.
        #[serde(default)]
        reason: String,
    },
}

//! The aggregate query (`group_by=a,b&metric=sum(f)`), its equality filters, the licence's
//! [`AggregateAllowance`] and the check of one against the other, and the query's canonical
//! fingerprint.

use crate::id::{is_valid_id, IdError};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;

/// Most fields one query may group by.
pub const MAX_GROUP_BY: usize = 4;
/// Most fields an allowance may list in `group_by` (the base table's grouping).
pub const MAX_BASE_FIELDS: usize = 8;
/// The smallest `k` an allowance or a release may use.
pub const MIN_K: u32 = 3;
/// The `k` an allowance gets when it does not say.
pub const DEFAULT_K: u32 = 11;
/// The base-cell cap an allowance gets when it does not say.
pub const DEFAULT_MAX_GROUPS: usize = 10_000;
/// Names a grouped field may not have: they are the answer's own members in each cell.
pub const RESERVED_NAMES: [&str; 2] = ["count", "value"];

/// A parsed aggregate query: the fields to group by and the metric to compute per group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AggregateQuery {
    /// `group_by=a,b`: 0 to [`MAX_GROUP_BY`] distinct field names, in the order asked.
    pub group_by: Vec<String>,
    /// `metric=…`: what each cell reports besides its count.
    pub metric: Metric,
}

/// What each cell of an aggregate answer reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Metric {
    /// `count`: the number of records.
    Count,
    /// `sum(f)`: the sum of the field's numeric values.
    Sum(String),
    /// `avg(f)`: the sum divided by the number of numeric values.
    Avg(String),
    /// `min(f)`: the smallest numeric value.
    Min(String),
    /// `max(f)`: the largest numeric value.
    Max(String),
}

impl Metric {
    /// The measured field, `None` for `count`.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Count => None,
            Self::Sum(f) | Self::Avg(f) | Self::Min(f) | Self::Max(f) => Some(f),
        }
    }

    /// The function's name: `count`, `sum`, `avg`, `min` or `max`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum(_) => "sum",
            Self::Avg(_) => "avg",
            Self::Min(_) => "min",
            Self::Max(_) => "max",
        }
    }

    /// Parses `count`, `sum(f)`, `avg(f)`, `min(f)` or `max(f)` (lower case, no spaces).
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        if text == "count" {
            return Ok(Self::Count);
        }
        let unknown = || QueryError::UnknownMetric { value: shown(text) };
        let (name, rest) = text.split_once('(').ok_or_else(unknown)?;
        let field = rest.strip_suffix(')').ok_or_else(unknown)?;
        let make: fn(String) -> Self = match name {
            "sum" => Self::Sum,
            "avg" => Self::Avg,
            "min" => Self::Min,
            "max" => Self::Max,
            _ => return Err(unknown()),
        };
        check_field(field).map_err(|source| QueryError::BadMetricField { source })?;
        Ok(make(field.to_owned()))
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field() {
            None => f.write_str(self.name()),
            Some(field) => write!(f, "{}({field})", self.name()),
        }
    }
}

/// Serialises as its query-string form, e.g. `"sum(flow)"`.
impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why a query's `group_by` or `metric` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// More fields than [`MAX_GROUP_BY`].
    #[error("group_by lists {count} fields; at most {MAX_GROUP_BY} are allowed")]
    TooManyFields {
        /// How many were listed.
        count: usize,
    },
    /// An empty item (`a,,b`, a trailing comma).
    #[error("group_by has an empty field name (check for doubled or trailing commas)")]
    EmptyField,
    /// A field name breaking the id rule.
    #[error("group_by: {source}")]
    BadField {
        /// The rule it breaks.
        source: IdError,
    },
    /// The same field twice.
    #[error("group_by lists field `{field}` twice")]
    DuplicateField {
        /// The repeated field.
        field: String,
    },
    /// A grouped field named like a member of the answer's cells.
    #[error("field `{field}` cannot be grouped by: `count` and `value` name the answer's own members")]
    ReservedField {
        /// The field.
        field: String,
    },
    /// Not one of the metrics.
    #[error("metric {value:?} is not one of count, sum(field), avg(field), min(field), max(field)")]
    UnknownMetric {
        /// The value given (cut short if long).
        value: String,
    },
    /// The metric's field breaks the id rule.
    #[error("metric: {source}")]
    BadMetricField {
        /// The rule it breaks.
        source: IdError,
    },
}

impl AggregateQuery {
    /// Parses the `group_by` and `metric` query-string values (already percent-decoded).
    /// A missing or empty `group_by` groups by nothing (one total cell); a missing `metric`
    /// is `count`.
    pub fn parse(group_by: Option<&str>, metric: Option<&str>) -> Result<Self, QueryError> {
        let mut fields: Vec<String> = Vec::new();
        if let Some(list) = group_by.filter(|l| !l.is_empty()) {
            let count = list.split(',').count();
            if count > MAX_GROUP_BY {
                return Err(QueryError::TooManyFields { count });
            }
            for field in list.split(',') {
                if field.is_empty() {
                    return Err(QueryError::EmptyField);
                }
                check_field(field).map_err(|source| QueryError::BadField { source })?;
                if RESERVED_NAMES.contains(&field) {
                    return Err(QueryError::ReservedField {
                        field: field.to_owned(),
                    });
                }
                if fields.iter().any(|f| f == field) {
                    return Err(QueryError::DuplicateField {
                        field: field.to_owned(),
                    });
                }
                fields.push(field.to_owned());
            }
        }
        let metric = metric.map_or(Ok(Metric::Count), Metric::parse)?;
        Ok(Self {
            group_by: fields,
            metric,
        })
    }
}

/// The id rule, for field names.
fn check_field(field: &str) -> Result<(), IdError> {
    crate::id::Id::parse(field).map(drop)
}

/// A value cut to 80 characters for an error message.
fn shown(text: &str) -> String {
    text.chars().take(80).collect()
}

/// An equality filter on a base field (`district=eq.Huangpu`, or `is.null`): it selects
/// whole base cells, so it never splits one (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EqFilter {
    /// The field, one of the allowance's `group_by` fields.
    pub field: String,
    /// The value the field must equal as text; `None` for `is.null`.
    pub value: Option<String>,
}

impl EqFilter {
    /// `field = value` (`None`: the field is null).
    pub fn new(field: impl Into<String>, value: Option<impl Into<String>>) -> Self {
        Self {
            field: field.into(),
            value: value.map(Into::into),
        }
    }
}

/// What a licence allows to be aggregated, and how cautiously.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateAllowance {
    /// The fields that may be grouped (and filtered) on. Every answer is computed from the
    /// base table grouped by all of them, in this order.
    pub group_by: Vec<String>,
    /// The fields that may be summed, averaged, and have their minimum and maximum taken.
    #[serde(default)]
    pub measures: Vec<String>,
    /// The smallest number of records a released cell holds ([`DEFAULT_K`] unless set; at
    /// least [`MIN_K`]).
    #[serde(default = "default_k")]
    pub k: u32,
    /// The most distinct base cells one answer may be computed from.
    #[serde(default = "default_max_groups")]
    pub max_groups: usize,
    /// Differential privacy: noise on every answer, charged to a daily budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<super::noise::DpPolicy>,
}

fn default_k() -> u32 {
    DEFAULT_K
}

fn default_max_groups() -> usize {
    DEFAULT_MAX_GROUPS
}

/// Why an [`AggregateAllowance`] is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowanceError {
    /// `k` below [`MIN_K`].
    #[error("aggregate k = {k} is below the minimum of {MIN_K}")]
    KTooSmall {
        /// The `k` given.
        k: u32,
    },
    /// More `group_by` fields than [`MAX_BASE_FIELDS`].
    #[error("aggregate group_by lists {count} fields; at most {MAX_BASE_FIELDS} are allowed")]
    TooManyBaseFields {
        /// How many were listed.
        count: usize,
    },
    /// A field name breaking the id rule, or reserved.
    #[error("aggregate field {field:?} is not a valid field name (or is `count`/`value`)")]
    BadField {
        /// The field.
        field: String,
    },
    /// The same field twice in one list.
    #[error("aggregate field `{field}` is listed twice")]
    DuplicateField {
        /// The field.
        field: String,
    },
    /// `max_groups` of zero.
    #[error("aggregate max_groups must be at least 1")]
    NoGroups,
}

/// The role a field plays in a query, for [`Refusal::NotAggregable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldRole {
    /// Grouped by.
    GroupBy,
    /// Measured by the metric.
    Measure,
    /// Filtered on.
    Filter,
}

impl fmt::Display for FieldRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::GroupBy => "grouped by",
            Self::Measure => "measured",
            Self::Filter => "filtered on",
        })
    }
}

/// Why a valid query is refused under a licence's allowance. The gateway answers
/// [`Refusal::NotAggregable`] with the problem type `field-not-aggregable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The first field (group-by fields first, then the measure, then filters) the
    /// allowance does not permit in that role.
    #[error("field `{field}` may not be {role} under this licence")]
    NotAggregable {
        /// The field.
        field: String,
        /// How the query used it.
        role: FieldRole,
    },
    /// Two filters on the same field.
    #[error("field `{field}` is filtered on twice")]
    DuplicateFilter {
        /// The field.
        field: String,
    },
}

impl AggregateAllowance {
    /// An allowance with the default `k` and base-cell cap.
    pub fn new(group_by: Vec<String>, measures: Vec<String>) -> Self {
        Self {
            group_by,
            measures,
            k: DEFAULT_K,
            max_groups: DEFAULT_MAX_GROUPS,
            dp: None,
        }
    }

    /// What is wrong with the allowance for a dataset, as `(path, message)` relative to the
    /// allowance: its own rules ([`AggregateAllowance::validate`]), grouped fields the
    /// classification does not let out in the clear, measured fields that are non-open or not
    /// in the dataset, and a differential-privacy policy that does not hold together.
    pub fn problems(
        &self,
        spec: &crate::catalog::DatasetSpec,
        rules: &crate::classify::RuleTable,
    ) -> Vec<(String, String)> {
        use crate::classify::OpenCategory;
        let mut out = Vec::new();
        if let Err(e) = self.validate() {
            out.push((String::new(), e.to_string()));
        }
        for (i, name) in self.group_by.iter().enumerate() {
            match spec.field(name) {
                None => out.push((format!("group_by[{i}]"), "the dataset has no such field".into())),
                Some(f)
                    if rules.category(&f.grades) == OpenCategory::NonOpen
                        || rules.requires_masking(&f.grades) =>
                {
                    out.push((
                        format!("group_by[{i}]"),
                        "only fields the classification lets out in the clear may be grouped on".into(),
                    ))
                }
                Some(_) => {}
            }
        }
        for (i, name) in self.measures.iter().enumerate() {
            match spec.field(name) {
                None => out.push((format!("measures[{i}]"), "the dataset has no such field".into())),
                Some(f) if rules.category(&f.grades) == OpenCategory::NonOpen => out.push((
                    format!("measures[{i}]"),
                    "a non-open field cannot be measured".into(),
                )),
                Some(_) => {}
            }
        }
        if let Some(dp) = &self.dp {
            if let Err(e) = dp.validate() {
                out.push(("dp".into(), e.to_string()));
            }
        }
        out
    }

    /// Checks the allowance itself: field names, `k >= MIN_K`, a non-zero cap.
    pub fn validate(&self) -> Result<(), AllowanceError> {
        if self.k < MIN_K {
            return Err(AllowanceError::KTooSmall { k: self.k });
        }
        if self.group_by.len() > MAX_BASE_FIELDS {
            return Err(AllowanceError::TooManyBaseFields {
                count: self.group_by.len(),
            });
        }
        if self.max_groups == 0 {
            return Err(AllowanceError::NoGroups);
        }
        for list in [&self.group_by, &self.measures] {
            for (i, field) in list.iter().enumerate() {
                if !is_valid_id(field) || (list == &self.group_by && RESERVED_NAMES.contains(&&**field)) {
                    return Err(AllowanceError::BadField { field: shown(field) });
                }
                if list[..i].contains(field) {
                    return Err(AllowanceError::DuplicateField { field: field.clone() });
                }
            }
        }
        Ok(())
    }

    /// Checks a parsed query and its filters against the allowance: every grouped and
    /// filtered field must be one of `group_by`, the metric's field one of `measures`.
    pub fn check(&self, query: &AggregateQuery, filters: &[EqFilter]) -> Result<(), Refusal> {
        let refuse = |field: &str, role| Refusal::NotAggregable {
            field: field.to_owned(),
            role,
        };
        if let Some(f) = query.group_by.iter().find(|f| !self.group_by.contains(f)) {
            return Err(refuse(f, FieldRole::GroupBy));
        }
        if let Some(f) = query.metric.field() {
            if !self.measures.iter().any(|m| m == f) {
                return Err(refuse(f, FieldRole::Measure));
            }
        }
        for (i, filter) in filters.iter().enumerate() {
            if !self.group_by.contains(&filter.field) {
                return Err(refuse(&filter.field, FieldRole::Filter));
            }
            if filters[..i].iter().any(|f| f.field == filter.field) {
                return Err(Refusal::DuplicateFilter {
                    field: filter.field.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Domain separation for [`query_fingerprint`]; the version changes with the encoding.
const FINGERPRINT_DOMAIN: &[u8] = b"sluice/aggregate-query/v1\0";

/// The canonical SHA-256 fingerprint of a query and its filters, so an identical query
/// can be answered from a cache and not charged to the privacy budget twice.
///
/// The encoding is the domain tag, then the grouped fields in the order asked, the metric's
/// text and the filters sorted (their order does not change the answer), each string
/// length-prefixed (`u32`, big-endian) and each filter value tagged null (`0`) or not
/// (`1`), so no two different queries share an encoding. It does not name the licence, the
/// dataset or `k`: key a cache by those as well.
pub fn query_fingerprint(query: &AggregateQuery, filters: &[EqFilter]) -> [u8; 32] {
    fn put(h: &mut Sha256, bytes: &[u8]) {
        // Field names and values are far below 4 GiB; saturate rather than wrap.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        h.update(len.to_be_bytes());
        h.update(bytes);
    }
    let mut h = Sha256::new();
    h.update(FINGERPRINT_DOMAIN);
    put(&mut h, &(query.group_by.len() as u64).to_be_bytes());
    for f in &query.group_by {
        put(&mut h, f.as_bytes());
    }
    put(&mut h, query.metric.to_string().as_bytes());
    let mut sorted: Vec<&EqFilter> = filters.iter().collect();
    sorted.sort();
    put(&mut h, &(sorted.len() as u64).to_be_bytes());
    for filter in sorted {
        put(&mut h, filter.field.as_bytes());
        match &filter.value {
            None => h.update([0u8]),
            Some(v) => {
                h.update([1u8]);
                put(&mut h, v.as_bytes());
            }
        }
    }
    h.finalize().into()
}

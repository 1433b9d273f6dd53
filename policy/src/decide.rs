//! The decision: may this request proceed, and with which permit?
//!
//! [`PolicySet::compile`] indexes licences by licensee and dataset and compiles each licence's
//! field plan once. [`PolicySet::decide`] is then a few hash lookups and comparisons: it takes
//! the clock as an argument and performs no IO.

use crate::catalog::DatasetSpec;
use crate::classify::{OpenCategory, RuleTable};
use crate::licence::{Licence, LicenceStatus, Mode, Quota, RateLimit};
use crate::mask::fingerprint::{FingerprintKey, Marker};
use crate::mask::{MaskRule, PseudonymKey};
use crate::objection::RecordMarks;
use crate::plan::{FieldAction, FieldPlan, PlannedField};
use crate::problem_code::ProblemCode;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use time::OffsetDateTime;

/// A source of the current time, injected so decisions are testable.
pub trait Clock {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A fixed clock, for tests and replays.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// One request as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The authenticated licensee, or `None` on the public listener.
    pub licensee: Option<&'a str>,
    /// The dataset asked for.
    pub dataset: &'a str,
    /// The declared scenario (`Sluice-Scenario`).
    pub scenario: Option<&'a str>,
    /// A subset of fields asked for, or `None` for all the permit allows.
    pub fields: Option<&'a [&'a str]>,
}

/// The outcome of a decision.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Proceed under this permit.
    Allow(Permit),
    /// Refuse for this reason.
    Deny(Refusal),
}

/// What an allowed request may do. Travels down the request path after the decision.
#[derive(Debug, Clone)]
pub struct Permit {
    /// The licence that allows the call; `None` for unconditional data on the public listener.
    pub licence: Option<Arc<Licence>>,
    /// The field plan to apply while streaming.
    pub plan: Arc<FieldPlan>,
    /// Fields the licence names that will never be emitted (non-open, unknown to the
    /// dataset, or needing a mask the licence does not give).
    pub withheld: Arc<[String]>,
}

impl Permit {
    /// The licence's rate limit, if any.
    pub fn rate(&self) -> Option<RateLimit> {
        self.licence.as_ref().map(|l| l.rate)
    }

    /// The licence's quotas (unlimited on the public listener; the gateway limits it per IP).
    pub fn quota(&self) -> Quota {
        self.licence.as_ref().map(|l| l.quota).unwrap_or_default()
    }
}

/// Why a request was refused. Each variant maps to one stable problem type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The dataset is not offered here.
    #[error("dataset `{0}` is not offered by this gateway")]
    UnknownDataset(String),
    /// The dataset was closed (emergency switch or classification).
    #[error("dataset `{0}` is closed")]
    DatasetClosed(String),
    /// Conditional data requested without a client certificate.
    #[error("dataset `{0}` holds conditional data; a licensee certificate is required")]
    Unauthenticated(String),
    /// No `Sluice-Scenario` header.
    #[error("the request declares no scenario (Sluice-Scenario header)")]
    ScenarioMissing,
    /// The licensee holds no licence for the dataset.
    #[error("licensee `{licensee}` holds no licence for dataset `{dataset}`")]
    NoLicence {
        /// Licensee id.
        licensee: String,
        /// Dataset id.
        dataset: String,
    },
    /// The licensee holds licences for the dataset, but not for this scenario.
    #[error("scenario `{scenario}` is not licensed for dataset `{dataset}`")]
    ScenarioNotLicensed {
        /// Dataset id.
        dataset: String,
        /// The declared scenario.
        scenario: String,
    },
    /// The licence is suspended.
    #[error("licence `{id}` is suspended: {reason}")]
    LicenceSuspended {
        /// Licence id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The licence is revoked.
    #[error("licence `{id}` is revoked: {reason}")]
    LicenceRevoked {
        /// Licence id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The licence's validity ended.
    #[error("licence `{0}` has expired")]
    LicenceExpired(String),
    /// The licence's validity has not begun.
    #[error("licence `{0}` is not yet valid")]
    LicenceNotYetValid(String),
    /// The licensee's access was restricted (violation measure).
    #[error("licensee `{licensee}` is restricted: {reason}")]
    LicenseeRestricted {
        /// Licensee id.
        licensee: String,
        /// Why.
        reason: String,
    },
    /// A requested field is not in the permit.
    #[error("field `{0}` is not allowed by the licence")]
    FieldNotAllowed(String),
    /// The licence is for aggregates only.
    #[error("licence `{0}` allows aggregates only")]
    AggregateOnly(String),
    /// The licence for the scenario allows records, not aggregates.
    #[error("licence `{0}` does not allow aggregates")]
    AggregateNotLicensed(String),
}

impl Refusal {
    /// The stable problem type, used in problem type URIs, metrics and the audit.
    pub fn code(&self) -> ProblemCode {
        match self {
            Self::UnknownDataset(_) => ProblemCode::UnknownDataset,
            Self::DatasetClosed(_) => ProblemCode::DatasetClosed,
            Self::Unauthenticated(_) => ProblemCode::Unauthenticated,
            Self::ScenarioMissing => ProblemCode::ScenarioMissing,
            Self::NoLicence { .. } => ProblemCode::NoLicence,
            Self::ScenarioNotLicensed { .. } => ProblemCode::ScenarioNotLicensed,
            Self::LicenceSuspended { .. } => ProblemCode::LicenceSuspended,
            Self::LicenceRevoked { .. } => ProblemCode::LicenceRevoked,
            Self::LicenceExpired(_) => ProblemCode::LicenceExpired,
            Self::LicenceNotYetValid(_) => ProblemCode::LicenceNotYetValid,
            Self::LicenseeRestricted { .. } => ProblemCode::LicenseeRestricted,
            Self::FieldNotAllowed(_) => ProblemCode::FieldNotAllowed,
            Self::AggregateOnly(_) => ProblemCode::AggregateOnly,
            Self::AggregateNotLicensed(_) => ProblemCode::AggregateNotLicensed,
        }
    }
}

/// Emergency and violation measures that override licences.
#[derive(Debug, Clone, Default)]
pub struct Measures {
    /// Datasets closed by the emergency switch.
    pub closed_datasets: HashSet<String>,
    /// All conditional data closed at once.
    pub all_conditional_closed: bool,
    /// Licensees whose access is closed, with the reason.
    pub restricted_licensees: HashMap<String, String>,
    /// Suppressed and disputed records by dataset ([`crate::objection`]). A dataset with
    /// marks but no record key to find them by is refused as closed: the gateway cannot
    /// enforce them.
    pub record_marks: HashMap<String, Arc<RecordMarks>>,
}

struct CompiledDataset {
    category: OpenCategory,
    public_permit: Option<Permit>,
    /// Marked records the gateway cannot find (no record key): the dataset is refused.
    unenforceable: bool,
    /// The record key and the dataset's marks, when it has any.
    marks: Option<(String, Arc<RecordMarks>)>,
}

struct CompiledLicence {
    licence: Arc<Licence>,
    permit: Permit,
}

/// Everything a decision needs, indexed for microsecond lookups.
pub struct PolicySet {
    datasets: HashMap<String, CompiledDataset>,
    /// licensee → dataset → licences.
    licences: HashMap<String, HashMap<String, Vec<CompiledLicence>>>,
    measures: Measures,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("datasets", &self.datasets.len())
            .field("licensees", &self.licences.len())
            .finish()
    }
}

impl PolicySet {
    /// Compiles datasets, licences and measures. `master_key` derives the per-licensee,
    /// per-dataset pseudonym keys. Licences for datasets this gateway does not offer are kept
    /// out of the index.
    pub fn compile(
        datasets: &[DatasetSpec],
        licences: impl IntoIterator<Item = Licence>,
        rules: &RuleTable,
        measures: Measures,
        master_key: &[u8],
    ) -> Self {
        let specs: HashMap<&str, &DatasetSpec> = datasets.iter().map(|d| (d.id.as_str(), d)).collect();
        let compiled_datasets = datasets
            .iter()
            .map(|d| {
                let category = d.category(rules);
                let marks = marks_for(&measures, d);
                let public_permit = (category == OpenCategory::Unconditional).then(|| Permit {
                    licence: None,
                    plan: Arc::new(FieldPlan {
                        record_key: marks.as_ref().and(d.record_key.clone()),
                        marks: marks.clone(),
                        fields: d
                            .fields
                            .iter()
                            .filter(|f| rules.category(&f.grades) == OpenCategory::Unconditional)
                            .map(|f| PlannedField {
                                name: f.name.clone(),
                                action: FieldAction::Emit { scan: f.scan },
                            })
                            .collect(),
                        row_filter: None,
                        key: PseudonymKey::derive(master_key, "", &d.id),
                    }),
                    withheld: Arc::from(Vec::new()),
                });
                (
                    d.id.clone(),
                    CompiledDataset {
                        category,
                        public_permit,
                        unenforceable: d.record_key.is_none()
                            && measures.record_marks.get(&d.id).is_some_and(|m| !m.is_empty()),
                        marks: d.record_key.clone().zip(marks),
                    },
                )
            })
            .collect();
        let mut index: HashMap<String, HashMap<String, Vec<CompiledLicence>>> = HashMap::new();
        for licence in licences {
            let Some(spec) = specs.get(licence.dataset.as_str()) else {
                continue;
            };
            let permit = compile_permit(&licence, spec, rules, master_key, marks_for(&measures, spec));
            let licence = Arc::new(licence);
            let permit = Permit {
                licence: Some(licence.clone()),
                ..permit
            };
            index
                .entry(licence.licensee.clone())
                .or_default()
                .entry(licence.dataset.clone())
                .or_default()
                .push(CompiledLicence { licence, permit });
        }
        Self {
            datasets: compiled_datasets,
            licences: index,
            measures,
        }
    }

    /// The open category of an offered dataset.
    pub fn dataset_category(&self, dataset: &str) -> Option<OpenCategory> {
        self.datasets.get(dataset).map(|d| d.category)
    }

    /// The record key and the suppressed and disputed records of an offered dataset, when
    /// it has any (for answers that do not pass through a plan, such as aggregates).
    pub fn record_marks(&self, dataset: &str) -> Option<(&str, &Arc<RecordMarks>)> {
        let (key, marks) = self.datasets.get(dataset)?.marks.as_ref()?;
        Some((key.as_str(), marks))
    }

    /// The ids of the licences `licensee` holds for `dataset`, under any scenario and in any
    /// state (what a refusal before a licence was found is counted against by risk rules).
    pub fn licence_ids(&self, licensee: &str, dataset: &str) -> Vec<String> {
        self.licences
            .get(licensee)
            .and_then(|m| m.get(dataset))
            .map(|cs| cs.iter().map(|c| c.licence.id.clone()).collect())
            .unwrap_or_default()
    }

    /// Number of licences indexed.
    pub fn licence_count(&self) -> usize {
        self.licences
            .values()
            .flat_map(|m| m.values())
            .map(Vec::len)
            .sum()
    }

    /// Decides one request at the time `clock` gives.
    pub fn decide(&self, req: &Request<'_>, clock: &impl Clock) -> Decision {
        match self.decide_inner(req, clock.now()) {
            Ok(permit) => match req.fields {
                None => Decision::Allow(permit),
                Some(asked) => match permit.plan.narrowed(asked) {
                    Ok(plan) => Decision::Allow(Permit {
                        plan: Arc::new(plan),
                        ..permit
                    }),
                    Err(field) => Decision::Deny(Refusal::FieldNotAllowed(field.to_owned())),
                },
            },
            Err(r) => Decision::Deny(r),
        }
    }

    /// Decides an aggregate request (the data sandbox) at the time `clock` gives: the licence
    /// whose [`Licence::aggregate`] allowance the answer must keep to. Every check of
    /// [`PolicySet::decide`] applies (closed datasets, restrictions, scenario, validity,
    /// state); a request without a licensee is refused, whatever the dataset's category.
    pub fn decide_aggregate(&self, req: &Request<'_>, clock: &impl Clock) -> Result<Arc<Licence>, Refusal> {
        if req.licensee.is_none() {
            self.datasets
                .get(req.dataset)
                .ok_or_else(|| Refusal::UnknownDataset(req.dataset.to_owned()))?;
            return Err(Refusal::Unauthenticated(req.dataset.to_owned()));
        }
        self.licence_for(req, clock.now(), Want::Aggregate)
            .map(|c| c.licence.clone())
    }

    fn decide_inner(&self, req: &Request<'_>, now: OffsetDateTime) -> Result<Permit, Refusal> {
        if req.licensee.is_none() {
            let ds = self.open_dataset(req)?;
            return ds
                .public_permit
                .clone()
                .ok_or_else(|| Refusal::Unauthenticated(req.dataset.to_owned()));
        }
        self.licence_for(req, now, Want::Records)
            .map(|c| c.permit.clone())
    }

    /// The dataset, unless it is unknown, closed or non-open.
    fn open_dataset(&self, req: &Request<'_>) -> Result<&CompiledDataset, Refusal> {
        let ds = self
            .datasets
            .get(req.dataset)
            .ok_or_else(|| Refusal::UnknownDataset(req.dataset.to_owned()))?;
        let closed = self.measures.closed_datasets.contains(req.dataset) || ds.unenforceable;
        if closed || ds.category == OpenCategory::NonOpen {
            return Err(Refusal::DatasetClosed(req.dataset.to_owned()));
        }
        Ok(ds)
    }

    /// The licensee's usable licence for the request's dataset and scenario, for `want`.
    fn licence_for(
        &self,
        req: &Request<'_>,
        now: OffsetDateTime,
        want: Want,
    ) -> Result<&CompiledLicence, Refusal> {
        let ds = self.open_dataset(req)?;
        let licensee = req
            .licensee
            .ok_or_else(|| Refusal::Unauthenticated(req.dataset.to_owned()))?;
        if self.measures.all_conditional_closed && ds.category == OpenCategory::Conditional {
            return Err(Refusal::DatasetClosed(req.dataset.to_owned()));
        }
        if let Some(reason) = self.measures.restricted_licensees.get(licensee) {
            return Err(Refusal::LicenseeRestricted {
                licensee: licensee.to_owned(),
                reason: reason.clone(),
            });
        }
        let no_licence = || Refusal::NoLicence {
            licensee: licensee.to_owned(),
            dataset: req.dataset.to_owned(),
        };
        let candidates = self
            .licences
            .get(licensee)
            .and_then(|m| m.get(req.dataset))
            .ok_or_else(no_licence)?;
        let scenario = req.scenario.ok_or(Refusal::ScenarioMissing)?;
        let mut best: Option<Refusal> = None;
        for c in candidates.iter().filter(|c| c.licence.scenario == scenario) {
            match check_licence(&c.licence, now, want) {
                Ok(()) => return Ok(c),
                Err(r) => {
                    if best.as_ref().is_none_or(|b| rank(&r) > rank(b)) {
                        best = Some(r);
                    }
                }
            }
        }
        Err(best.unwrap_or_else(|| Refusal::ScenarioNotLicensed {
            dataset: req.dataset.to_owned(),
            scenario: scenario.to_owned(),
        }))
    }
}

/// Among several licences for one scenario, report the most actionable refusal.
fn rank(r: &Refusal) -> u8 {
    match r {
        Refusal::AggregateOnly(_) | Refusal::AggregateNotLicensed(_) => 5,
        Refusal::LicenceNotYetValid(_) => 4,
        Refusal::LicenceSuspended { .. } => 3,
        Refusal::LicenceExpired(_) => 2,
        Refusal::LicenceRevoked { .. } => 1,
        _ => 0,
    }
}

/// What a request asks a licence for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Masked records.
    Records,
    /// Aggregates (the data sandbox).
    Aggregate,
}

fn check_licence(l: &Licence, now: OffsetDateTime, want: Want) -> Result<(), Refusal> {
    match &l.status {
        LicenceStatus::Active => {}
        LicenceStatus::Suspended { reason } => {
            return Err(Refusal::LicenceSuspended {
                id: l.id.clone(),
                reason: reason.clone(),
            })
        }
        LicenceStatus::Revoked { reason } => {
            return Err(Refusal::LicenceRevoked {
                id: l.id.clone(),
                reason: reason.clone(),
            })
        }
    }
    if now < l.valid_from {
        return Err(Refusal::LicenceNotYetValid(l.id.clone()));
    }
    if now >= l.valid_until {
        return Err(Refusal::LicenceExpired(l.id.clone()));
    }
    match want {
        Want::Records if l.mode == Mode::Aggregate => Err(Refusal::AggregateOnly(l.id.clone())),
        Want::Aggregate if l.aggregate.is_none() => Err(Refusal::AggregateNotLicensed(l.id.clone())),
        _ => Ok(()),
    }
}

/// Builds a licence's plan: dataset field order, licence rules, classification floors.
fn compile_permit(
    l: &Licence,
    spec: &DatasetSpec,
    rules: &RuleTable,
    master_key: &[u8],
    marks: Option<Arc<RecordMarks>>,
) -> Permit {
    let mut fields = Vec::new();
    let mut withheld: Vec<String> = l
        .fields
        .keys()
        .filter(|n| spec.field(n).is_none())
        .cloned()
        .collect();
    // One fingerprint key per licence, shared by its tolerant fields' markers.
    let mut fingerprint_key = None;
    for f in &spec.fields {
        let Some(rule) = l.fields.get(&f.name) else {
            continue;
        };
        let category = rules.category(&f.grades);
        let mut marker = || {
            let tolerance = f.fingerprint?.tolerance()?;
            let record_key = spec.record_key.clone()?;
            let key = fingerprint_key
                .get_or_insert_with(|| FingerprintKey::derive(master_key, &l.licensee, &l.dataset))
                .clone();
            Some(Arc::new(Marker {
                key,
                tolerance,
                record_key,
            }))
        };
        let action = match rule {
            MaskRule::Drop => continue,
            _ if category == OpenCategory::NonOpen => None,
            MaskRule::Clear if rules.requires_masking(&f.grades) => None,
            // A licensee's clear copy of a tolerant field carries its marks.
            MaskRule::Clear => Some(match marker() {
                Some(marker) => FieldAction::Fingerprint { marker, scan: f.scan },
                None => FieldAction::Emit { scan: f.scan },
            }),
            other => Some(FieldAction::Mask(other.clone())),
        };
        match action {
            Some(action) => fields.push(PlannedField {
                name: f.name.clone(),
                action,
            }),
            None => withheld.push(f.name.clone()),
        }
    }
    Permit {
        licence: None,
        plan: Arc::new(FieldPlan {
            fields,
            row_filter: l.row_filter.clone(),
            key: PseudonymKey::derive(master_key, &l.licensee, &l.dataset),
            record_key: spec.record_key.clone(),
            marks,
        }),
        withheld: Arc::from(withheld),
    }
}

/// The dataset's record marks, when it has any and a record key to find them by.
fn marks_for(measures: &Measures, spec: &DatasetSpec) -> Option<Arc<RecordMarks>> {
    spec.record_key.as_ref()?;
    measures
        .record_marks
        .get(&spec.id)
        .filter(|m| !m.is_empty())
        .cloned()
}

#[cfg(test)]
mod tests;

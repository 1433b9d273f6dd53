//! Phase: decide. May this licensee have this dataset for this scenario, and how masked?
//! Conditional data also needs a fresh registry snapshot and a working audit log.

use super::context::Ctx;
use super::outcome::Outcomes;
use super::route::RecordsQuery;
use crate::runtime::Runtime;
use crate::subscription::Subscription;
use sluice_net::problem::{Problem, ProblemCode};
use sluice_policy::classify::OpenCategory;
use sluice_policy::decide::SystemClock;
use sluice_policy::id::LicenseeId;
use sluice_policy::{Decision, Permit, Refusal};

/// What the decision needs besides the request.
pub struct Inputs<'a> {
    /// The runtime in force (policy set).
    pub rt: &'a Runtime,
    /// The registry subscription, whose freshness gates conditional data.
    pub subscription: Option<&'a Subscription>,
    /// Where outcomes go (its audit log must be healthy before data leaves).
    pub outcomes: &'a Outcomes,
}

/// Decides the request; the permit carries the field plan and the licence.
pub fn decide(
    inputs: &Inputs<'_>,
    licensee: Option<&LicenseeId>,
    dataset: &str,
    query: &RecordsQuery,
    ctx: &mut Ctx,
) -> Result<Permit, Problem> {
    check_fresh(inputs.rt, inputs.subscription, dataset)?;
    let decision = inputs.rt.policy.decide(
        &sluice_policy::Request {
            licensee: licensee.map(LicenseeId::as_str),
            dataset,
            scenario: ctx.scenario.as_deref(),
            fields: None,
        },
        &SystemClock,
    );
    let mut permit = match decision {
        Decision::Allow(p) => p,
        Decision::Deny(r) => {
            if let Some(l) = licensee {
                ctx.attributed = inputs.rt.policy.licence_ids(l.as_str(), dataset);
            }
            return Err(Problem::from(&r));
        }
    };
    ctx.licence = permit.licence.as_ref().map(|l| l.id.clone());
    held(inputs.outcomes, ctx.licence.as_deref())?;
    // Filters are checked against the licence's whole plan (a clear field may be filtered on
    // without being selected), then the plan is narrowed to the fields asked for.
    query
        .query
        .authorize(&permit.plan)
        .map_err(|r| Problem::new(r.code(), r.to_string()))?;
    if let Some(fields) = &query.fields {
        let asked: Vec<&str> = fields.iter().map(String::as_str).collect();
        let plan = permit
            .plan
            .narrowed(&asked)
            .map_err(|f| Problem::from(&Refusal::FieldNotAllowed(f.to_owned())))?;
        permit.plan = std::sync::Arc::new(plan);
    }
    // Fail closed: no data leaves while the audit log cannot record it.
    inputs.outcomes.check_audit()?;
    Ok(permit)
}

/// A licence a risk rule suspended here is refused at once, before the registry's snapshot
/// suspends it everywhere.
pub(super) fn held(outcomes: &Outcomes, licence: Option<&str>) -> Result<(), Problem> {
    let (Some(risk), Some(licence)) = (&outcomes.risk, licence) else {
        return Ok(());
    };
    match risk.held(licence) {
        Some(reason) => Err(Problem::from(&Refusal::LicenceSuspended {
            id: licence.to_owned(),
            reason,
        })),
        None => Ok(()),
    }
}

/// Conditional data is refused while the registry snapshot is stale.
pub(super) fn check_fresh(
    rt: &Runtime,
    subscription: Option<&Subscription>,
    dataset: &str,
) -> Result<(), Problem> {
    let Some(sub) = subscription else {
        return Ok(());
    };
    if rt.policy.dataset_category(dataset) == Some(OpenCategory::Unconditional) {
        return Ok(());
    }
    sub.freshness()
        .map_err(|s| Problem::new(ProblemCode::RegistryStale, s.to_string()))
}

//! Declaring fusion rules: a new rule ([`NewFusionRule`]) is checked against the catalog in
//! the store before `POST /admin/fusion-rules` records it.

use super::fusion::{FusionRule, NewFusionRule};
use super::problem::{Problem, ProblemCode as P};
use super::request::valid_id;
use super::store::{Store, StoreError};
use std::collections::BTreeSet;

/// Validates a new rule against the catalog: an id, two or more distinct members, each on a
/// registered dataset, fields (when given) non-empty and in that dataset.
pub async fn validate(store: &Store, r: NewFusionRule) -> Result<FusionRule, Problem> {
    let invalid = |m: String| Problem::new(P::Invalid, m);
    valid_id(&r.id)?;
    if r.members.len() < 2 {
        return Err(invalid("a fusion rule needs at least two members".into()));
    }
    let mut seen = BTreeSet::new();
    for m in &r.members {
        let dataset = match store.dataset(&m.dataset).await {
            Ok(d) => d,
            Err(StoreError::NotFound(_)) => return Err(invalid(format!("unknown dataset {}", m.dataset))),
            Err(e) => return Err(e.into()),
        };
        if let Some(fields) = &m.fields {
            if fields.is_empty() {
                return Err(invalid(format!(
                    "member {}: fields must name at least one field (omit it for the whole dataset)",
                    m.dataset
                )));
            }
            for f in fields {
                if dataset.spec.field(f).is_none() {
                    return Err(invalid(format!("dataset {} has no field {f}", m.dataset)));
                }
            }
        }
        if !seen.insert(m.describe()) {
            return Err(invalid(format!("member {} is named twice", m.describe())));
        }
    }
    Ok(FusionRule {
        id: r.id,
        description: r.description,
        members: r.members,
    })
}

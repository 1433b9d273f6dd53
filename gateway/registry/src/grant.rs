//! Turning a grant request into a licence: the licensee and dataset must exist, every field
//! must be in the dataset and not non-open, fields that need masking may not be granted in
//! the clear, the row filter may only name dataset fields, validity and limits must be sane.

use super::model::GrantRequest;
use super::problem::{Problem, ProblemCode as P};
use super::request::valid_id;
use super::store::Store;
use sluice_policy::classify::{OpenCategory, RuleTable};
use sluice_policy::licence::{Licence, LicenceStatus, Mode};
use sluice_policy::rowfilter::RowFilter;

fn invalid(msg: impl Into<String>) -> Problem {
    Problem::new(P::Invalid, msg)
}

/// Validates a grant against the store; returns the licence to insert (status active).
pub async fn build_licence(store: &Store, g: GrantRequest) -> Result<Licence, Problem> {
    let id =
        g.id.clone()
            .unwrap_or_else(|| format!("lic-{}", uuid::Uuid::now_v7().simple()));
    valid_id(&id)?;
    if g.scenario.trim().is_empty() {
        return Err(invalid("scenario must not be empty"));
    }
    if !store.licensee_exists(&g.licensee).await? {
        return Err(invalid(format!("unknown licensee {}", g.licensee)));
    }
    let dataset = match store.dataset(&g.dataset).await {
        Ok(d) => d,
        Err(super::store::StoreError::NotFound(_)) => {
            return Err(invalid(format!("unknown dataset {}", g.dataset)))
        }
        Err(e) => return Err(e.into()),
    };
    super::parties::check_scenario(store, &g.scenario, &g.dataset).await?;
    if g.fields.is_empty() && g.mode == Mode::Records {
        return Err(invalid("a licence must allow at least one field"));
    }
    let rules = RuleTable::default();
    match &g.aggregate {
        None if g.mode == Mode::Aggregate => {
            return Err(invalid(
                "an aggregate licence needs `aggregate` (the fields it may group and measure)",
            ))
        }
        None => {}
        Some(a) => {
            if let Some((path, message)) = a.problems(&dataset.spec, &rules).into_iter().next() {
                let at = if path.is_empty() {
                    String::new()
                } else {
                    format!(".{path}")
                };
                return Err(invalid(format!("aggregate{at}: {message}")));
            }
        }
    }
    for (name, rule) in &g.fields {
        let field = dataset
            .spec
            .field(name)
            .ok_or_else(|| invalid(format!("dataset {} has no field {name}", g.dataset)))?;
        match rules.category(&field.grades) {
            OpenCategory::NonOpen => {
                return Err(invalid(format!(
                    "field {name} is non-open and cannot be licensed"
                )))
            }
            _ if rule.is_clear() && rules.requires_masking(&field.grades) => {
                return Err(invalid(format!(
                    "field {name} must be masked; `clear` is not allowed"
                )))
            }
            _ => {}
        }
    }
    let row_filter = g
        .row_filter
        .as_deref()
        .map(RowFilter::parse)
        .transpose()
        .map_err(|e| invalid(format!("row filter: {e}")))?;
    if let Some(filter) = &row_filter {
        for f in filter.fields() {
            if dataset.spec.field(f).is_none() {
                return Err(invalid(format!("row filter names unknown field {f}")));
            }
        }
    }
    let valid_from = g.valid_from.unwrap_or_else(time::OffsetDateTime::now_utc);
    if g.valid_until <= valid_from {
        return Err(invalid("valid_until must be after valid_from"));
    }
    let rate = g.rate.unwrap_or_default();
    if rate.per_second == 0 || rate.burst == 0 {
        return Err(invalid("rate per_second and burst must be at least 1"));
    }
    if g.quota.requests_per_day == Some(0) || g.quota.records_per_day == Some(0) {
        return Err(invalid(
            "a daily quota of 0 allows nothing; omit it for unlimited",
        ));
    }
    if let Some(review) = &g.expert_review {
        if review.trim().is_empty() {
            return Err(invalid("expert_review must name the review (a reference)"));
        }
    }
    Ok(Licence {
        aggregate: g.aggregate,
        id,
        licensee: g.licensee,
        dataset: g.dataset,
        scenario: g.scenario,
        fields: g.fields,
        row_filter,
        rate,
        quota: g.quota,
        valid_from,
        valid_until: g.valid_until,
        mode: g.mode,
        status: LicenceStatus::Active,
        expert_review: g.expert_review,
    })
}

//! Fusion rules: "A is fine, B is fine, A+B is not". A rule names datasets (optionally some
//! of their fields) that one licensee must not hold together. A member is *held* through a
//! licence on its dataset that is neither revoked nor expired (active or suspended) and, when
//! the member names fields, grants at least one of them. A grant that would complete a rule
//! is refused (`fusion-conflict`) unless it carries an expert review reference.
//!
//! This module is pure data and logic; the store keeps the rules and checks grants
//! (`store/fusion_rules.rs`), and [`crate::fusion_admin`] validates new rules against the catalog.

use serde::{Deserialize, Serialize};
use sluice_policy::licence::{Licence, LicenceStatus};
use sluice_policy::mask::MaskRule;
use std::collections::BTreeSet;
use time::OffsetDateTime;

/// One member of a rule: a dataset, or some of its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusionMember {
    /// Dataset id.
    pub dataset: String,
    /// When given, only licences granting at least one of these fields hold the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

impl FusionMember {
    /// Whether `l` (whatever its state) covers this member: same dataset and, if the member
    /// names fields, one of them granted (a field whose rule is `drop` is not granted).
    pub fn covered_by(&self, l: &Licence) -> bool {
        if l.dataset != self.dataset {
            return false;
        }
        match &self.fields {
            None => true,
            Some(fields) => fields
                .iter()
                .any(|f| l.fields.get(f).is_some_and(|r| *r != MaskRule::Drop)),
        }
    }

    /// How refusals and validation name the member: `dataset` or `dataset:field,field`.
    pub(crate) fn describe(&self) -> String {
        match &self.fields {
            None => self.dataset.clone(),
            Some(f) => format!("{}:{}", self.dataset, f.join(",")),
        }
    }
}

/// A set of datasets or fields one licensee must not hold together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusionRule {
    /// Identifier.
    pub id: String,
    /// What the combination would reveal.
    #[serde(default)]
    pub description: String,
    /// Two or more members.
    pub members: Vec<FusionMember>,
}

/// `POST /admin/fusion-rules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFusionRule {
    /// Identifier (`[A-Za-z0-9._-]{1,64}`).
    pub id: String,
    /// What the combination would reveal.
    #[serde(default)]
    pub description: String,
    /// Two or more members.
    pub members: Vec<FusionMember>,
    /// Why (recorded, required).
    #[serde(default)]
    pub reason: String,
}

/// A rule a grant would complete, and the licensee's other licences that hold its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The rule.
    pub rule: FusionRule,
    /// Ids of the licences already held that cover a member, sorted.
    pub held: Vec<String>,
}

/// Whether `l` still counts as held at `now`: not revoked and not expired.
pub fn holds(l: &Licence, now: OffsetDateTime) -> bool {
    !matches!(l.status, LicenceStatus::Revoked { .. }) && l.valid_until > now
}

/// The rules that granting `new` would complete for its licensee, given the licences it has
/// (`existing`, any licensee and state; filtered here). A rule counts only when `new` covers
/// one of its members and every member is then held.
pub fn completions(
    rules: &[FusionRule],
    existing: &[Licence],
    new: &Licence,
    now: OffsetDateTime,
) -> Vec<Completion> {
    let held: Vec<&Licence> = existing
        .iter()
        .filter(|l| l.licensee == new.licensee && l.id != new.id && holds(l, now))
        .collect();
    rules
        .iter()
        .filter(|rule| rule.members.iter().any(|m| m.covered_by(new)))
        .filter(|rule| {
            rule.members
                .iter()
                .all(|m| m.covered_by(new) || held.iter().any(|l| m.covered_by(l)))
        })
        .map(|rule| Completion {
            rule: rule.clone(),
            held: held
                .iter()
                .filter(|l| rule.members.iter().any(|m| m.covered_by(l)))
                .map(|l| l.id.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        })
        .collect()
}

/// The refusal's detail: each completed rule and the licences already held.
pub fn conflict_detail(licensee: &str, completed: &[Completion]) -> String {
    let rules: Vec<String> = completed
        .iter()
        .map(|c| {
            let members: Vec<String> = c.rule.members.iter().map(FusionMember::describe).collect();
            let desc = if c.rule.description.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.rule.description)
            };
            format!(
                "fusion rule {}{desc} [{}]; licences already held: {}",
                c.rule.id,
                members.join(" + "),
                c.held.join(", ")
            )
        })
        .collect();
    format!(
        "this grant would let licensee {licensee} hold every member of {}",
        rules.join("; ")
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 0:00 UTC);

    fn lic(id: &str, dataset: &str, fields: &[&str]) -> Licence {
        let fields: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|f| (f.to_string(), serde_json::json!({ "rule": "clear" })))
            .collect();
        serde_json::from_value(serde_json::json!({
            "id": id, "licensee": "acme", "dataset": dataset, "scenario": "s", "fields": fields,
            "valid_from": "2025-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z",
        }))
        .unwrap()
    }

    fn rule() -> FusionRule {
        serde_json::from_value(serde_json::json!({
            "id": "water-power-and-hydrants", "description": "locates adopters",
            "members": [{ "dataset": "hydrants" }, { "dataset": "utilities", "fields": ["address", "usage_kwh"] }],
        }))
        .unwrap()
    }

    #[test]
    fn a_grant_completing_a_rule_names_it_and_the_licences_held() {
        let held = [lic("h1", "hydrants", &["id"]), lic("x", "parks", &["id"])];
        let new = lic("u1", "utilities", &["usage_kwh", "sector"]);
        let c = completions(&[rule()], &held, &new, NOW);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].held, ["h1"]);
        let d = conflict_detail("acme", &c);
        assert!(d.contains("water-power-and-hydrants") && d.contains("h1"), "{d}");
        assert!(d.contains("utilities:address,usage_kwh"), "{d}");
    }

    #[test]
    fn unrelated_fields_revoked_expired_and_other_licensees_do_not_count() {
        let hydrants = lic("h1", "hydrants", &["id"]);
        // Fields outside the member's list, or dropped, do not hold it.
        let sector = lic("u1", "utilities", &["sector"]);
        assert!(completions(&[rule()], std::slice::from_ref(&hydrants), &sector, NOW).is_empty());
        let mut dropped = lic("u2", "utilities", &["address"]);
        dropped.fields.insert("address".into(), MaskRule::Drop);
        assert!(completions(&[rule()], std::slice::from_ref(&hydrants), &dropped, NOW).is_empty());
        let usage = lic("u3", "utilities", &["address"]);
        let mut revoked = hydrants.clone();
        revoked.status = LicenceStatus::Revoked { reason: "x".into() };
        assert!(completions(&[rule()], &[revoked], &usage, NOW).is_empty());
        let mut expired = hydrants.clone();
        expired.valid_until = datetime!(2026-01-01 0:00 UTC);
        assert!(completions(&[rule()], &[expired], &usage, NOW).is_empty());
        let mut other = hydrants.clone();
        other.licensee = "someone-else".into();
        assert!(completions(&[rule()], &[other], &usage, NOW).is_empty());
        // Suspended still counts.
        let mut suspended = hydrants;
        suspended.status = LicenceStatus::Suspended { reason: "x".into() };
        assert_eq!(completions(&[rule()], &[suspended], &usage, NOW).len(), 1);
    }

    #[test]
    fn a_grant_outside_every_member_is_not_blocked() {
        let held = [
            lic("h1", "hydrants", &["id"]),
            lic("u1", "utilities", &["address"]),
        ];
        assert!(completions(&[rule()], &held, &lic("p", "parks", &["id"]), NOW).is_empty());
        // A further grant on a member of an already complete rule needs its own review.
        assert_eq!(
            completions(&[rule()], &held, &lic("h2", "hydrants", &["id"]), NOW)[0].held,
            ["h1", "u1"]
        );
    }
}

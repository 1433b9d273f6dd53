//! Risk warning (风险预警) at the registry: the rules administrators declare (carried in every
//! snapshot, counted by every gateway) and the alerts gateways report when one is crossed. A
//! `suspend` alert becomes a violation with the measure [`Measure::Suspend`] and, when the
//! licence is active, its suspension at every gateway. The wire types are
//! [`sluice_policy::risk`]'s; the routes are in [`crate::risk_api`].

use serde::{Deserialize, Serialize};
use sluice_policy::risk::{RiskAlert, RiskRule};

#[cfg(doc)]
use crate::model::Measure;

/// Longest alert id, in characters (a gateway's are `<licence>.<rule>.<window start>`).
pub const MAX_ALERT_ID_CHARS: usize = 256;

/// `POST /admin/risk/rules`: a [`RiskRule`] (its members exactly) and `reason`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRiskRule {
    /// The rule.
    pub rule: RiskRule,
    /// Why (recorded, required).
    pub reason: String,
}

impl<'de> Deserialize<'de> for NewRiskRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let reason = match map.remove("reason") {
            Some(serde_json::Value::String(s)) => s,
            Some(_) => return Err(D::Error::custom("reason must be a string")),
            None => return Err(D::Error::missing_field("reason")),
        };
        let rule = RiskRule::deserialize(serde_json::Value::Object(map)).map_err(D::Error::custom)?;
        Ok(Self { rule, reason })
    }
}

/// What the registry did with an alert: `POST /v1/risk-alerts` answers it (a repeat the
/// stored one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertOutcome {
    /// The alert as first received.
    pub alert: RiskAlert,
    /// The violation recorded for a `suspend` alert; `null` for an `alert` alert.
    pub violation: Option<String>,
    /// Whether this alert suspended the licence (`false` when it was not active).
    pub suspended: bool,
}

/// A stored alert, as `GET /admin/risk/alerts` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskAlertRecord {
    /// The gateway that reported it (its certificate's id).
    pub gateway: String,
    /// When the registry received it (RFC 3339).
    pub received_at: String,
    /// The alert and what became of it.
    #[serde(flatten)]
    pub outcome: AlertOutcome,
}

/// What is wrong with an alert's own members, if anything (its licence is checked against
/// the store): an id of 1 to [`MAX_ALERT_ID_CHARS`] characters, not all white space, and a
/// rule id by the one id rule.
pub fn alert_problem(a: &RiskAlert) -> Option<String> {
    if a.id.trim().is_empty() || a.id.chars().count() > MAX_ALERT_ID_CHARS {
        return Some(format!(
            "alert id must have 1 to {MAX_ALERT_ID_CHARS} characters, not all white space"
        ));
    }
    if !sluice_policy::id::is_valid_id(&a.rule) {
        return Some(format!("rule {:?} must match [A-Za-z0-9._-]{{1,64}}", a.rule));
    }
    None
}

/// The status reason of a licence a `suspend` alert suspended.
pub fn suspension_reason(a: &RiskAlert) -> String {
    format!("risk rule {}: suspended automatically ({})", a.rule, a.evidence())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::action::Action;
    use crate::model::Measure;
    use serde_json::json;
    use sluice_policy::risk::{RiskAction, Signal, Window};

    fn alert() -> RiskAlert {
        RiskAlert {
            id: "l1.r1.60".into(),
            rule: "r1".into(),
            licence: "l1".into(),
            signal: Signal::Records,
            window: Window::Minute,
            window_start: 60,
            value: 100,
            threshold: 100,
            baseline: 2.0,
            action: RiskAction::Suspend,
            at: 61,
        }
    }

    #[test]
    fn a_suspend_violation_restricts_no_licensee_and_moves_no_snapshot_by_itself() {
        assert!(!Measure::Suspend.restricts());
        assert!(Measure::Restrict.restricts() && Measure::Close.restricts());
        assert_eq!(Measure::parse("suspend"), Some(Measure::Suspend));
        assert_eq!(Measure::Suspend.as_str(), "suspend");
        assert_eq!(serde_json::to_value(Measure::Suspend).unwrap(), json!("suspend"));
        assert!(!Action::ViolationRecord.alters_snapshot(Some(Measure::Suspend)));
        assert!(!Action::ViolationLift.alters_snapshot(Some(Measure::Suspend)));
        assert!(!Action::RiskAlert.alters_snapshot(None));
        assert!(Action::RiskRuleAdd.alters_snapshot(None));
        assert!(Action::RiskRuleRemove.alters_snapshot(None));
    }

    #[test]
    fn a_new_rule_is_a_rule_and_a_reason() {
        let v = json!({ "id": "r1", "signal": "off-hours", "window": "hour", "threshold": 3,
                        "hours": [8, 20], "action": "alert", "reason": "night use" });
        let n: NewRiskRule = serde_json::from_value(v.clone()).unwrap();
        assert_eq!((n.rule.hours, n.reason.as_str()), (Some((8, 20)), "night use"));
        let mut no_reason = v.clone();
        no_reason.as_object_mut().unwrap().remove("reason");
        assert!(serde_json::from_value::<NewRiskRule>(no_reason).is_err());
        let mut extra = v.clone();
        extra["nope"] = json!(1);
        assert!(serde_json::from_value::<NewRiskRule>(extra).is_err());
        let mut number = v;
        number["reason"] = json!(1);
        assert!(serde_json::from_value::<NewRiskRule>(number).is_err());
    }

    #[test]
    fn alerts_are_checked_and_explained() {
        assert_eq!(alert_problem(&alert()), None);
        for (id, rule) in [
            (" ", "r1"),
            (&*"x".repeat(MAX_ALERT_ID_CHARS + 1), "r1"),
            ("a", "r 1"),
        ] {
            let a = RiskAlert {
                id: id.into(),
                rule: rule.into(),
                ..alert()
            };
            assert!(alert_problem(&a).is_some(), "{id:?} {rule:?}");
        }
        let why = suspension_reason(&alert());
        assert!(
            why.starts_with("risk rule r1: suspended automatically (risk rule r1: 100 records"),
            "{why}"
        );
    }

    /// The document's RiskRule schema lists exactly the problem codes a rule may name.
    #[test]
    fn the_documented_refusal_codes_are_the_problem_codes() {
        let doc: serde_json::Value = serde_json::from_str(crate::api::OPENAPI).unwrap();
        let codes = &doc["components"]["schemas"]["RiskRule"]["properties"]["codes"]["items"]["enum"];
        let want: Vec<&str> = sluice_policy::problem_code::ProblemCode::ALL
            .iter()
            .map(|c| c.code())
            .collect();
        assert_eq!(codes, &json!(want));
    }
}

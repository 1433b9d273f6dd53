use super::*;
use crate::catalog::FieldSpec;
use crate::classify::{Grades, OrganisationGrade, PersonalGrade};
use crate::licence::Quota;
use std::collections::BTreeMap;
use time::macros::datetime;

fn field(name: &str, personal: PersonalGrade) -> FieldSpec {
    FieldSpec {
        name: name.into(),
        grades: Grades {
            personal,
            ..Grades::default()
        },
        scan: true,
        description: String::new(),
        fingerprint: None,
    }
}

fn hydrants() -> DatasetSpec {
    DatasetSpec {
        record_key: None,
        id: "hydrants".into(),
        title: "Fire hydrants".into(),
        owner: "fire".into(),
        update_frequency: "daily".into(),
        version: 1,
        grades: Grades {
            personal: PersonalGrade::NonAnonymousNonSensitive,
            ..Grades::default()
        },
        fields: vec![
            field("id", PersonalGrade::None),
            field("district", PersonalGrade::None),
            field("adopter_name", PersonalGrade::NonAnonymousNonSensitive),
            field("adopter_mobile", PersonalGrade::NonAnonymousNonSensitive),
            field("adopter_id_number", PersonalGrade::NonAnonymousSensitive),
        ],
    }
}

fn parks() -> DatasetSpec {
    DatasetSpec {
        record_key: None,
        id: "parks".into(),
        title: String::new(),
        owner: String::new(),
        update_frequency: String::new(),
        version: 1,
        grades: Grades::default(),
        fields: vec![
            field("name", PersonalGrade::None),
            FieldSpec {
                name: "operator_turnover".into(),
                grades: Grades {
                    organisation: OrganisationGrade::InternalOperations,
                    ..Grades::default()
                },
                scan: true,
                description: String::new(),
                fingerprint: None,
            },
        ],
    }
}

fn licence(id: &str, scenario: &str) -> Licence {
    let mut fields = BTreeMap::new();
    fields.insert("id".into(), MaskRule::Clear);
    fields.insert("district".into(), MaskRule::Clear);
    fields.insert("adopter_mobile".into(), MaskRule::Partial { first: 3, last: 4 });
    fields.insert("adopter_name".into(), MaskRule::Clear); // needs masking: withheld
    fields.insert("adopter_id_number".into(), MaskRule::Redact); // non-open: withheld
    fields.insert("colour".into(), MaskRule::Clear); // unknown: withheld
    Licence {
        aggregate: None,
        id: id.into(),
        licensee: "acme".into(),
        dataset: "hydrants".into(),
        scenario: scenario.into(),
        fields,
        row_filter: None,
        rate: RateLimit::default(),
        quota: Quota::default(),
        valid_from: datetime!(2026-01-01 0:00 UTC),
        valid_until: datetime!(2027-01-01 0:00 UTC),
        mode: Mode::Records,
        status: LicenceStatus::Active,
        expert_review: None,
    }
}

const NOW: FixedClock = FixedClock(datetime!(2026-06-01 12:00 UTC));

fn set(licences: Vec<Licence>, measures: Measures) -> PolicySet {
    PolicySet::compile(
        &[hydrants(), parks()],
        licences,
        &RuleTable::default(),
        measures,
        b"k",
    )
}

fn req<'a>(licensee: Option<&'a str>, dataset: &'a str, scenario: Option<&'a str>) -> Request<'a> {
    Request {
        licensee,
        dataset,
        scenario,
        fields: None,
    }
}

fn deny(d: Decision) -> Refusal {
    match d {
        Decision::Deny(r) => r,
        Decision::Allow(p) => panic!("expected a refusal, got {p:?}"),
    }
}

fn allow(d: Decision) -> Permit {
    match d {
        Decision::Allow(p) => p,
        Decision::Deny(r) => panic!("expected a permit, got {r:?}"),
    }
}

#[test]
fn licensed_request_gets_the_plan_with_floors_applied() {
    let s = set(vec![licence("l1", "adoption")], Measures::default());
    let p = allow(s.decide(&req(Some("acme"), "hydrants", Some("adoption")), &NOW));
    let names: Vec<&str> = p.plan.names().collect();
    assert_eq!(names, ["id", "district", "adopter_mobile"]);
    assert_eq!(
        p.plan.fields[2].action,
        FieldAction::Mask(MaskRule::Partial { first: 3, last: 4 })
    );
    let mut withheld = p.withheld.to_vec();
    withheld.sort();
    assert_eq!(withheld, ["adopter_id_number", "adopter_name", "colour"]);
    assert_eq!(p.licence.as_ref().map(|l| l.id.as_str()), Some("l1"));
}

#[test]
fn refusals_are_typed() {
    let s = set(vec![licence("l1", "adoption")], Measures::default());
    assert_eq!(
        deny(s.decide(&req(Some("acme"), "hydrants", Some("marketing")), &NOW)),
        Refusal::ScenarioNotLicensed {
            dataset: "hydrants".into(),
            scenario: "marketing".into()
        }
    );
    assert_eq!(
        deny(s.decide(&req(Some("acme"), "hydrants", None), &NOW)),
        Refusal::ScenarioMissing
    );
    assert_eq!(
        deny(s.decide(&req(Some("other"), "hydrants", Some("adoption")), &NOW)).code(),
        ProblemCode::NoLicence
    );
    assert_eq!(
        deny(s.decide(&req(Some("acme"), "nope", Some("adoption")), &NOW)),
        Refusal::UnknownDataset("nope".into())
    );
    assert_eq!(
        deny(s.decide(&req(None, "hydrants", None), &NOW)).code(),
        ProblemCode::Unauthenticated
    );
}

#[test]
fn status_and_validity() {
    let mut suspended = licence("l1", "adoption");
    suspended.status = LicenceStatus::Suspended {
        reason: "audit".into(),
    };
    let s = set(vec![suspended], Measures::default());
    assert_eq!(
        deny(s.decide(&req(Some("acme"), "hydrants", Some("adoption")), &NOW)).code(),
        ProblemCode::LicenceSuspended
    );

    let mut revoked = licence("l1", "adoption");
    revoked.status = LicenceStatus::Revoked {
        reason: "misuse".into(),
    };
    let s = set(vec![revoked], Measures::default());
    assert_eq!(
        deny(s.decide(&req(Some("acme"), "hydrants", Some("adoption")), &NOW)).code(),
        ProblemCode::LicenceRevoked
    );

    let s = set(vec![licence("l1", "adoption")], Measures::default());
    let later = FixedClock(datetime!(2027-01-01 0:00 UTC));
    let earlier = FixedClock(datetime!(2025-12-31 23:59:59 UTC));
    assert_eq!(
        deny(s.decide(&req(Some("acme"), "hydrants", Some("adoption")), &later)),
        Refusal::LicenceExpired("l1".into())
    );
    assert_eq!(
        deny(s.decide(&req(Some("acme"), "hydrants", Some("adoption")), &earlier)),
        Refusal::LicenceNotYetValid("l1".into())
    );
}

#[test]
fn an_active_licence_wins_over_a_revoked_one_for_the_same_scenario() {
    let mut old = licence("old", "adoption");
    old.status = LicenceStatus::Revoked {
        reason: "replaced".into(),
    };
    let s = set(vec![old, licence("new", "adoption")], Measures::default());
    let p = allow(s.decide(&req(Some("acme"), "hydrants", Some("adoption")), &NOW));
    assert_eq!(p.licence.map(|l| l.id.clone()).as_deref(), Some("new"));
}

#[test]
fn measures_override_licences() {
    let closed = Measures {
        closed_datasets: ["hydrants".to_owned()].into(),
        ..Measures::default()
    };
    let s = set(vec![licence("l1", "adoption")], closed);
    assert_eq!(
        deny(s.decide(&req(Some("acme"), "hydrants", Some("adoption")), &NOW)).code(),
        ProblemCode::DatasetClosed
    );

    let all = Measures {
        all_conditional_closed: true,
        ..Measures::default()
    };
    let s = set(vec![licence("l1", "adoption")], all);
    assert_eq!(
        deny(s.decide(&req(Some("acme"), "hydrants", Some("adoption")), &NOW)).code(),
        ProblemCode::DatasetClosed
    );
    // Unconditional data stays open in an emergency that closes conditional data.
    assert!(matches!(
        s.decide(&req(None, "parks", None), &NOW),
        Decision::Allow(_)
    ));

    let restricted = Measures {
        restricted_licensees: [("acme".to_owned(), "violation v-1".to_owned())].into(),
        ..Measures::default()
    };
    let s = set(vec![licence("l1", "adoption")], restricted);
    assert_eq!(
        deny(s.decide(&req(Some("acme"), "hydrants", Some("adoption")), &NOW)).code(),
        ProblemCode::LicenseeRestricted
    );
}

#[test]
fn public_requests_see_only_unconditional_fields() {
    let s = set(vec![], Measures::default());
    let p = allow(s.decide(&req(None, "parks", None), &NOW));
    assert_eq!(p.plan.names().collect::<Vec<_>>(), ["name"]);
    assert!(p.licence.is_none());
}

#[test]
fn requested_fields_narrow_the_plan() {
    let s = set(vec![licence("l1", "adoption")], Measures::default());
    let asked = ["adopter_mobile", "id"];
    let r = Request {
        fields: Some(&asked),
        ..req(Some("acme"), "hydrants", Some("adoption"))
    };
    let p = allow(s.decide(&r, &NOW));
    assert_eq!(p.plan.names().collect::<Vec<_>>(), ["id", "adopter_mobile"]);
    let asked = ["adopter_id_number"];
    let r = Request {
        fields: Some(&asked),
        ..req(Some("acme"), "hydrants", Some("adoption"))
    };
    assert_eq!(
        deny(s.decide(&r, &NOW)),
        Refusal::FieldNotAllowed("adopter_id_number".into())
    );
}

#[test]
fn aggregates_need_a_licence_that_allows_them_and_keep_every_other_check() {
    use crate::aggregate::AggregateAllowance;
    let allowance = AggregateAllowance::new(vec!["district".into()], vec![]);
    let mut agg = licence("agg", "stats");
    agg.mode = Mode::Aggregate;
    agg.aggregate = Some(allowance.clone());
    let mut both = licence("both", "planning");
    both.aggregate = Some(allowance.clone());
    let records = licence("rec", "adoption");
    let mut suspended = licence("sus", "audit");
    suspended.aggregate = Some(allowance);
    suspended.status = LicenceStatus::Suspended {
        reason: "review".into(),
    };
    let s = set(vec![agg, both, records, suspended], Measures::default());
    let ask = |licensee, scenario| s.decide_aggregate(&req(licensee, "hydrants", scenario), &NOW);
    assert_eq!(ask(Some("acme"), Some("stats")).unwrap().id, "agg");
    // A records licence that says so allows aggregates too, and still its records.
    assert_eq!(ask(Some("acme"), Some("planning")).unwrap().id, "both");
    allow(s.decide(&req(Some("acme"), "hydrants", Some("planning")), &NOW));
    let code = |r: Result<Arc<Licence>, Refusal>| r.unwrap_err().code();
    assert_eq!(
        code(ask(Some("acme"), Some("adoption"))),
        ProblemCode::AggregateNotLicensed
    );
    assert_eq!(
        code(ask(Some("acme"), Some("audit"))),
        ProblemCode::LicenceSuspended
    );
    assert_eq!(
        code(ask(Some("acme"), Some("other"))),
        ProblemCode::ScenarioNotLicensed
    );
    assert_eq!(code(ask(Some("acme"), None)), ProblemCode::ScenarioMissing);
    assert_eq!(code(ask(Some("globex"), Some("stats"))), ProblemCode::NoLicence);
    // Without a certificate there are no aggregates, even of unconditional data.
    assert_eq!(code(ask(None, Some("stats"))), ProblemCode::Unauthenticated);
    assert_eq!(
        code(s.decide_aggregate(&req(None, "parks", None), &NOW)),
        ProblemCode::Unauthenticated
    );
    assert_eq!(
        code(s.decide_aggregate(&req(Some("acme"), "nope", Some("stats")), &NOW)),
        ProblemCode::UnknownDataset
    );
    let closed = Measures {
        closed_datasets: ["hydrants".to_owned()].into(),
        ..Measures::default()
    };
    let mut agg = licence("agg", "stats");
    agg.aggregate = Some(AggregateAllowance::new(vec!["district".into()], vec![]));
    let s = set(vec![agg], closed);
    assert_eq!(
        code(s.decide_aggregate(&req(Some("acme"), "hydrants", Some("stats")), &NOW)),
        ProblemCode::DatasetClosed
    );
}

#[test]
fn aggregate_licences_do_not_grant_records() {
    let mut l = licence("agg", "stats");
    l.mode = Mode::Aggregate;
    let s = set(vec![l], Measures::default());
    assert_eq!(
        deny(s.decide(&req(Some("acme"), "hydrants", Some("stats")), &NOW)).code(),
        ProblemCode::AggregateOnly
    );
}

/// Issue 14: a licence's plan carries its dataset's record marks, also when the request
/// narrows the fields; marks a gateway cannot find records by close the dataset.
#[test]
fn record_marks_reach_the_plan_or_close_a_dataset_without_a_record_key() {
    use crate::objection::RecordMarks;
    let mut marks = RecordMarks::default();
    marks.suppressed.insert("7".into());
    let measures = Measures {
        record_marks: HashMap::from([("hydrants".to_owned(), Arc::new(marks.clone()))]),
        ..Measures::default()
    };
    let without_key = set(vec![licence("l1", "s")], measures.clone());
    assert_eq!(
        deny(without_key.decide(&req(Some("acme"), "hydrants", Some("s")), &NOW)),
        Refusal::DatasetClosed("hydrants".into())
    );
    assert!(without_key.record_marks("hydrants").is_none());
    let mut keyed = hydrants();
    keyed.record_key = Some("id".into());
    let with_key = PolicySet::compile(
        &[keyed, parks()],
        vec![licence("l1", "s")],
        &RuleTable::default(),
        measures,
        b"k",
    );
    let p = allow(with_key.decide(&req(Some("acme"), "hydrants", Some("s")), &NOW));
    assert_eq!(p.plan.marks.as_deref(), Some(&marks));
    let narrow = Request {
        fields: Some(&["district"]),
        ..req(Some("acme"), "hydrants", Some("s"))
    };
    let p = allow(with_key.decide(&narrow, &NOW));
    assert_eq!(p.plan.marks.as_deref(), Some(&marks));
    assert_eq!(p.plan.record_key.as_deref(), Some("id"));
    assert_eq!(with_key.record_marks("hydrants").map(|(k, _)| k), Some("id"));
    // Other datasets are untouched.
    assert!(with_key.record_marks("parks").is_none());
}

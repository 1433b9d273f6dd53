//! Property tests of the decision (licence × request → permit or refusal), and of the whole
//! path decision → plan → masker (issue 11, item 21).
//!
//! Expectations come from a simple model written here from the documented rules, never from
//! the crate's own decision or masking functions.
//!
//! (a) A request is permitted exactly when the model permits it: on the public listener for
//!     unconditional data only, otherwise only under an active licence, valid now, for records,
//!     for exactly that licensee × dataset × scenario; each refusal is the documented one.
//! (b) A permit's plan is the model's: dataset fields in dataset order; never a non-open
//!     field, never in the clear a field the licence masks or the grades require to be masked;
//!     the licence's row filter; a requested subset narrows it, an unknown field is refused.
//! (c) Decision → plan → masker over generated records (`scan = true` text with planted
//!     identifiers, dates, coordinates, ages, phones): the output holds exactly the model's
//!     records (the row filter applied to the original values) with exactly the model's
//!     values — months and years cut from the date as written, numbers rounded, gridded and
//!     banded in exact decimals, partial, pseudonym, redact, null — and a masked value never
//!     equals its original except where the rule documents it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use proptest::prelude::*;
use sluice_policy::catalog::{DatasetSpec, FieldSpec};
use sluice_policy::classify::{
    Grades, ObjectGrade, OpenCategory, OrganisationGrade, PersonalGrade, RuleTable,
};
use sluice_policy::decide::{FixedClock, Measures};
use sluice_policy::licence::{Licence, LicenceStatus, Mode, Quota, RateLimit};
use sluice_policy::mask::{MaskRule, PseudonymKey};
use sluice_policy::plan::{FieldAction, PlannedField};
use sluice_policy::rowfilter::RowFilter;
use sluice_policy::{Decision, Permit, PolicySet, Refusal, Request};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);
const MASTER: &[u8] = b"decision props master";

const PERSONAL: [PersonalGrade; 5] = [
    PersonalGrade::None,
    PersonalGrade::AnonymousNonSensitive,
    PersonalGrade::NonAnonymousNonSensitive,
    PersonalGrade::AnonymousSensitive,
    PersonalGrade::NonAnonymousSensitive,
];
const ORGANISATION: [OrganisationGrade; 4] = [
    OrganisationGrade::None,
    OrganisationGrade::PublicByLaw,
    OrganisationGrade::InternalOperations,
    OrganisationGrade::TradeSecret,
];
const OBJECT: [ObjectGrade; 4] = [
    ObjectGrade::PublicByLaw,
    ObjectGrade::LowRisk,
    ObjectGrade::PublicSecurity,
    ObjectGrade::HighRisk,
];
/// Categories by rank: 0 unconditional, 1 conditional, 2 non-open.
const CATEGORY: [OpenCategory; 3] = [
    OpenCategory::Unconditional,
    OpenCategory::Conditional,
    OpenCategory::NonOpen,
];

/// A rule table as ranks per grade index, and the personal grade index from which masking is
/// required.
#[derive(Debug, Clone)]
struct Table {
    personal: Vec<usize>,
    organisation: Vec<usize>,
    object: Vec<usize>,
    mask_from: usize,
}

impl Table {
    fn rules(&self) -> RuleTable {
        RuleTable {
            personal: std::array::from_fn(|i| CATEGORY[self.personal[i]]),
            organisation: std::array::from_fn(|i| CATEGORY[self.organisation[i]]),
            object: std::array::from_fn(|i| CATEGORY[self.object[i]]),
            masking_required_from: PERSONAL[self.mask_from],
        }
    }

    /// The most restrictive rank of the three grades.
    fn rank(&self, g: G) -> usize {
        self.personal[g.0]
            .max(self.organisation[g.1])
            .max(self.object[g.2])
    }

    fn requires_masking(&self, g: G) -> bool {
        g.0 >= self.mask_from
    }
}

/// Grade indices: personal, organisation, object.
#[derive(Debug, Clone, Copy)]
struct G(usize, usize, usize);

impl G {
    fn grades(self) -> Grades {
        Grades {
            personal: PERSONAL[self.0],
            organisation: ORGANISATION[self.1],
            object: OBJECT[self.2],
        }
    }
}

fn rank() -> impl Strategy<Value = usize> {
    prop_oneof![4 => Just(0usize), 3 => Just(1usize), 1 => Just(2usize)]
}

fn table() -> impl Strategy<Value = Table> {
    (
        prop::collection::vec(rank(), 5),
        prop::collection::vec(rank(), 4),
        prop::collection::vec(rank(), 4),
        0usize..5,
    )
        .prop_map(|(personal, organisation, object, mask_from)| Table {
            personal,
            organisation,
            object,
            mask_from,
        })
}

fn grades() -> impl Strategy<Value = G> {
    (0usize..5, 0usize..4, 0usize..4).prop_map(|(p, o, b)| G(p, o, b))
}

fn spec(id: &str, g: G, fields: &[(&str, G, bool)]) -> DatasetSpec {
    DatasetSpec {
        id: id.into(),
        title: String::new(),
        owner: String::new(),
        update_frequency: String::new(),
        version: 1,
        grades: g.grades(),
        fields: fields
            .iter()
            .map(|(name, g, scan)| FieldSpec {
                name: (*name).into(),
                grades: g.grades(),
                scan: *scan,
                description: String::new(),
            })
            .collect(),
    }
}

/// What the model says one licence is for a request at `NOW`: usable, or why not (with the
/// rank the documentation gives: the most actionable refusal wins).
fn licence_verdict(l: &Licence) -> Result<(), (u8, Refusal)> {
    match &l.status {
        LicenceStatus::Suspended { reason } => {
            return Err((
                3,
                Refusal::LicenceSuspended {
                    id: l.id.clone(),
                    reason: reason.clone(),
                },
            ))
        }
        LicenceStatus::Revoked { reason } => {
            return Err((
                1,
                Refusal::LicenceRevoked {
                    id: l.id.clone(),
                    reason: reason.clone(),
                },
            ))
        }
        LicenceStatus::Active => {}
    }
    if NOW < l.valid_from {
        Err((4, Refusal::LicenceNotYetValid(l.id.clone())))
    } else if NOW >= l.valid_until {
        Err((2, Refusal::LicenceExpired(l.id.clone())))
    } else if l.mode == Mode::Aggregate {
        Err((5, Refusal::AggregateOnly(l.id.clone())))
    } else {
        Ok(())
    }
}

/// The model's plan of a licence (or of the public listener, `None`) over a dataset:
/// `(field, action)` in dataset order, and the withheld names, sorted.
fn model_plan(
    t: &Table,
    ds: &[(&str, G, bool)],
    licence: Option<&Licence>,
) -> (Vec<PlannedField>, Vec<String>) {
    let mut fields = Vec::new();
    let mut withheld = Vec::new();
    for (name, g, scan) in ds {
        let (name, g, scan) = (name.to_string(), *g, *scan);
        let Some(l) = licence else {
            if t.rank(g) == 0 {
                fields.push(PlannedField {
                    name,
                    action: FieldAction::Emit { scan },
                });
            }
            continue;
        };
        let action = match l.fields.get(&name) {
            None | Some(MaskRule::Drop) => continue,
            Some(_) if t.rank(g) == 2 => None,
            Some(MaskRule::Clear) if t.requires_masking(g) => None,
            Some(MaskRule::Clear) => Some(FieldAction::Emit { scan }),
            Some(rule) => Some(FieldAction::Mask(rule.clone())),
        };
        match action {
            Some(action) => fields.push(PlannedField { name, action }),
            None => withheld.push(name),
        }
    }
    if let Some(l) = licence {
        withheld.extend(
            l.fields
                .keys()
                .filter(|k| !ds.iter().any(|(n, _, _)| n == *k))
                .cloned(),
        );
    }
    withheld.sort();
    (fields, withheld)
}

/// The outcome the model expects.
#[derive(Debug)]
enum Expect {
    /// A permit under this licence (`None`: the public listener), with this plan.
    Allow(Option<usize>, Vec<PlannedField>, Vec<String>),
    /// This refusal.
    Deny(Refusal),
}

const LICENSEES: [&str; 3] = ["alice", "bob", "carol"];
const DATASETS: [&str; 4] = ["d0", "d1", "d2", "ghost"];
const SCENARIOS: [&str; 3] = ["s1", "s2", "s3"];
const FIELDS: [&str; 6] = ["f0", "f1", "f2", "f3", "f4", "zz"];
const FILTERS: [&str; 3] = ["f0 = 'a'", "f1 != 'b' and f2 in ('c', 'd')", "gone = 1"];

fn rule() -> impl Strategy<Value = MaskRule> {
    prop_oneof![
        4 => Just(MaskRule::Clear),
        1 => Just(MaskRule::Drop),
        1 => Just(MaskRule::Null),
        1 => Just(MaskRule::Redact),
        1 => Just(MaskRule::Partial { first: 1, last: 1 }),
        1 => Just(MaskRule::Pseudonym),
        1 => Just(MaskRule::Month),
        1 => Just(MaskRule::Decimals { places: 2 }),
    ]
}

fn status() -> impl Strategy<Value = LicenceStatus> {
    prop_oneof![
        5 => Just(LicenceStatus::Active),
        1 => "[a-z]{0,3}".prop_map(|reason| LicenceStatus::Suspended { reason }),
        1 => "[a-z]{0,3}".prop_map(|reason| LicenceStatus::Revoked { reason }),
    ]
}

/// A licence: licensee, dataset (maybe one not offered), scenario, field rules (maybe a field
/// the dataset lacks), row filter, validity around `NOW` (boundaries included), mode, state.
fn licence() -> impl Strategy<Value = Licence> {
    (
        (0usize..2, 0usize..4, 0usize..2),
        prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), rule(), 0..6),
        prop::option::of(prop::sample::select(FILTERS.to_vec())),
        (-2i64..=1, -1i64..=2),
        prop_oneof![5 => Just(Mode::Records), 1 => Just(Mode::Aggregate)],
        status(),
    )
        .prop_map(
            |((who, ds, sc), fields, filter, (from, until), mode, status)| Licence {
                id: String::new(),
                licensee: LICENSEES[who].into(),
                dataset: DATASETS[ds].into(),
                scenario: SCENARIOS[sc].into(),
                fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                row_filter: filter.map(|f| RowFilter::parse(f).unwrap()),
                rate: RateLimit::default(),
                quota: Quota::default(),
                valid_from: NOW + Duration::hours(from),
                valid_until: NOW + Duration::hours(until),
                mode,
                status,
                expert_review: None,
            },
        )
}

type DsFields = Vec<(&'static str, G, bool)>;

fn dataset_fields() -> impl Strategy<Value = DsFields> {
    prop::collection::vec((grades(), any::<bool>()), 5).prop_map(|v| {
        v.into_iter()
            .zip(FIELDS)
            .map(|((g, scan), name)| (name, g, scan))
            .collect()
    })
}

/// The model's decision.
fn model(
    t: &Table,
    ds: &[(G, DsFields)],
    licences: &[Licence],
    closed: &[bool],
    all_conditional_closed: bool,
    restricted: &[bool],
    req: &Request<'_>,
) -> Expect {
    let Some(d) = DATASETS[..3].iter().position(|d| *d == req.dataset) else {
        return Expect::Deny(Refusal::UnknownDataset(req.dataset.into()));
    };
    let (g, fields) = &ds[d];
    let rank = t.rank(*g);
    if closed[d] || rank == 2 {
        return Expect::Deny(Refusal::DatasetClosed(req.dataset.into()));
    }
    let (licence, (plan, withheld)) = match req.licensee {
        None if rank == 0 => (None, model_plan(t, fields, None)),
        None => return Expect::Deny(Refusal::Unauthenticated(req.dataset.into())),
        Some(who) => {
            if all_conditional_closed && rank == 1 {
                return Expect::Deny(Refusal::DatasetClosed(req.dataset.into()));
            }
            if LICENSEES
                .iter()
                .position(|l| *l == who)
                .is_some_and(|i| restricted[i])
            {
                return Expect::Deny(Refusal::LicenseeRestricted {
                    licensee: who.into(),
                    reason: "violation".into(),
                });
            }
            let mine: Vec<usize> = (0..licences.len())
                .filter(|&i| licences[i].licensee == who && licences[i].dataset == req.dataset)
                .collect();
            if mine.is_empty() {
                return Expect::Deny(Refusal::NoLicence {
                    licensee: who.into(),
                    dataset: req.dataset.into(),
                });
            }
            let Some(scenario) = req.scenario else {
                return Expect::Deny(Refusal::ScenarioMissing);
            };
            let mut best: Option<(u8, Refusal)> = None;
            let mut usable = None;
            for &i in mine.iter().filter(|&&i| licences[i].scenario == scenario) {
                match licence_verdict(&licences[i]) {
                    Ok(()) => {
                        usable = Some(i);
                        break;
                    }
                    Err((r, why)) if best.as_ref().is_none_or(|(b, _)| r > *b) => best = Some((r, why)),
                    Err(_) => {}
                }
            }
            match (usable, best) {
                (Some(i), _) => (Some(i), model_plan(t, fields, Some(&licences[i]))),
                (None, Some((_, why))) => return Expect::Deny(why),
                (None, None) => {
                    return Expect::Deny(Refusal::ScenarioNotLicensed {
                        dataset: req.dataset.into(),
                        scenario: scenario.into(),
                    })
                }
            }
        }
    };
    match req.fields {
        None => Expect::Allow(licence, plan, withheld),
        Some(asked) => match asked.iter().find(|a| !plan.iter().any(|f| f.name == **a)) {
            Some(missing) => Expect::Deny(Refusal::FieldNotAllowed((*missing).into())),
            None => Expect::Allow(
                licence,
                plan.into_iter()
                    .filter(|f| asked.contains(&f.name.as_str()))
                    .collect(),
                withheld,
            ),
        },
    }
}

/// The properties a user states of any permit, checked without the model.
fn check_permit(
    t: &Table,
    fields: &[(&str, G, bool)],
    p: &Permit,
    req: &Request<'_>,
) -> Result<(), TestCaseError> {
    if let Some(l) = &p.licence {
        prop_assert_eq!(Some(l.licensee.as_str()), req.licensee);
        prop_assert_eq!(l.dataset.as_str(), req.dataset);
        prop_assert_eq!(Some(l.scenario.as_str()), req.scenario);
        prop_assert_eq!(&l.status, &LicenceStatus::Active);
        prop_assert!(l.valid_from <= NOW && NOW < l.valid_until);
        prop_assert_eq!(l.mode, Mode::Records);
        prop_assert_eq!(
            &p.plan.row_filter,
            &l.row_filter,
            "the licence's row filter is applied"
        );
    } else {
        prop_assert!(req.licensee.is_none());
        prop_assert!(p.plan.row_filter.is_none());
    }
    let key = PseudonymKey::derive(MASTER, req.licensee.unwrap_or(""), req.dataset);
    prop_assert_eq!(p.plan.key.pseudonym(b"x"), key.pseudonym(b"x"));
    for f in &p.plan.fields {
        let (_, g, scan) = fields
            .iter()
            .find(|(n, _, _)| *n == f.name)
            .expect("a dataset field");
        prop_assert!(t.rank(*g) < 2, "non-open field {} in a plan", f.name);
        let rule = p.licence.as_ref().map(|l| &l.fields[&f.name]);
        match &f.action {
            FieldAction::Emit { scan: s } => {
                prop_assert_eq!(s, scan);
                match rule {
                    Some(r) => {
                        prop_assert_eq!(r, &MaskRule::Clear, "{} is masked by the licence", f.name);
                        prop_assert!(!t.requires_masking(*g), "{} must be masked", f.name);
                    }
                    None => prop_assert_eq!(t.rank(*g), 0),
                }
            }
            FieldAction::Mask(r) => {
                prop_assert_eq!(Some(r), rule);
                prop_assert!(!matches!(r, MaskRule::Clear | MaskRule::Drop));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// (a), (b): the decision over random catalogs, rule tables, licences, measures and requests.
    #[test]
    fn decision_follows_the_model(
        t in table(),
        ds in prop::collection::vec((grades(), dataset_fields()), 3),
        mut licences in prop::collection::vec(licence(), 0..7),
        closed in prop::collection::vec(prop::bool::weighted(0.1), 3),
        all_conditional_closed in prop::bool::weighted(0.1),
        restricted in prop::collection::vec(prop::bool::weighted(0.1), 3),
        who in prop::option::weighted(0.85, 0usize..3),
        dataset in 0usize..4,
        scenario in prop::option::weighted(0.9, 0usize..3),
        asked in prop::option::weighted(0.3, prop::collection::vec(prop::sample::select(FIELDS.to_vec()), 0..3)),
        aim in prop::option::weighted(0.6, any::<prop::sample::Index>()),
    ) {
        for (n, l) in licences.iter_mut().enumerate() {
            l.id = format!("L{n}");
        }
        let specs: Vec<DatasetSpec> = ds
            .iter()
            .zip(DATASETS)
            .map(|((g, fields), id)| spec(id, *g, fields))
            .collect();
        let measures = Measures {
            closed_datasets: DATASETS.iter().zip(&closed).filter(|(_, c)| **c).map(|(d, _)| d.to_string()).collect(),
            all_conditional_closed,
            restricted_licensees: LICENSEES
                .iter()
                .zip(&restricted)
                .filter(|(_, r)| **r)
                .map(|(l, _)| (l.to_string(), "violation".to_owned()))
                .collect(),
        };
        let set = PolicySet::compile(&specs, licences.clone(), &t.rules(), measures, MASTER);
        let asked: Option<Vec<&str>> = asked.map(|a| a.into_iter().collect());
        let mut req = Request {
            licensee: who.map(|w| LICENSEES[w]),
            dataset: DATASETS[dataset],
            scenario: scenario.map(|s| SCENARIOS[s]),
            fields: asked.as_deref(),
        };
        // Mostly ask for what some licence covers, so that permits are common.
        if let Some(l) = aim.filter(|_| !licences.is_empty()).map(|i| i.get(&licences)) {
            req.licensee = Some(&l.licensee);
            req.dataset = &l.dataset;
            req.scenario = Some(&l.scenario);
        }
        let dataset = DATASETS.iter().position(|d| *d == req.dataset).unwrap();
        let got = set.decide(&req, &FixedClock(NOW));
        let expected = model(&t, &ds, &licences, &closed, all_conditional_closed, &restricted, &req);
        match (got, expected) {
            (Decision::Deny(r), Expect::Deny(e)) => prop_assert_eq!(r, e),
            (Decision::Allow(p), Expect::Allow(licence, plan, withheld)) => {
                check_permit(&t, &ds[dataset].1, &p, &req)?;
                prop_assert_eq!(p.licence.as_ref().map(|l| l.id.clone()), licence.map(|i| format!("L{i}")));
                prop_assert_eq!(&p.plan.fields, &plan);
                let mut got_withheld = p.withheld.to_vec();
                got_withheld.sort();
                prop_assert_eq!(got_withheld, withheld);
            }
            (got, expected) => prop_assert!(false, "decided {:?}, the model expects {:?}", got, expected),
        }
    }
}

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
use sluice_policy::catalog::{DatasetSpec, FieldSpec, FingerprintSpec};
use sluice_policy::classify::{
    Grades, ObjectGrade, OpenCategory, OrganisationGrade, PersonalGrade, RuleTable,
};
use sluice_policy::decide::{FixedClock, Measures};
use sluice_policy::licence::{Licence, LicenceStatus, Mode, Quota, RateLimit};
use sluice_policy::mask::fingerprint::{FingerprintKey, Marker, Tolerance};
use sluice_policy::mask::{MaskRule, PseudonymKey};
use sluice_policy::plan::{FieldAction, PlannedField};
use sluice_policy::rowfilter::RowFilter;
use sluice_policy::stream::{InputFormat, OutputFormat};
use sluice_policy::{Decision, Permit, PolicySet, Refusal, Request};
use std::sync::Arc;
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

/// Fields the generated catalogs declare fingerprint-tolerant (keyed by `f0`).
fn tolerant(name: &str) -> bool {
    matches!(name, "f1" | "f3")
}

/// The marker a licence's copy of a tolerant field carries.
fn marker(l: &Licence) -> Arc<Marker> {
    Arc::new(Marker {
        key: FingerprintKey::derive(MASTER, &l.licensee, &l.dataset),
        tolerance: Tolerance::parse("0.01").unwrap(),
        record_key: "f0".into(),
    })
}

fn spec(id: &str, g: G, fields: &[(&str, G, bool)]) -> DatasetSpec {
    DatasetSpec {
        record_key: Some("f0".into()),
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
                fingerprint: tolerant(name).then_some(FingerprintSpec { tolerance: 0.01 }),
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
            Some(MaskRule::Clear) if tolerant(&name) => Some(FieldAction::Fingerprint {
                marker: marker(l),
                scan,
            }),
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
                aggregate: None,
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
                prop_assert!(p.licence.is_none() || !tolerant(&f.name), "{} unmarked", f.name);
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
            // Only a licensee's clear copy of a tolerant field is marked, with its own key.
            FieldAction::Fingerprint { marker: m, scan: s } => {
                prop_assert_eq!(s, scan);
                prop_assert!(tolerant(&f.name), "{} is not tolerant", f.name);
                prop_assert_eq!(rule, Some(&MaskRule::Clear));
                prop_assert!(!t.requires_masking(*g), "{} must be masked", f.name);
                let l = p.licence.as_ref().expect("marks only under a licence");
                prop_assert_eq!(m, &marker(l));
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
            record_marks: Default::default(),
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

// ---- (c) the whole path: decision → plan → masker ----

/// What a field holds, for the generators and the model.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Id,
    District,
    Text,
    Date,
    Coord,
    Age,
    Phone,
    Status,
}

const PATH_FIELDS: [(&str, Kind); 8] = [
    ("id", Kind::Id),
    ("district", Kind::District),
    ("notes", Kind::Text),
    ("born", Kind::Date),
    ("lat", Kind::Coord),
    ("age", Kind::Age),
    ("mobile", Kind::Phone),
    ("status", Kind::Status),
];
const DISTRICTS: [&str; 3] = ["Huangpu", "Jing'an", "Xuhui"];
const STATUSES: [&str; 2] = ["ok", "decommissioned"];

/// One source value as the model sees it.
#[derive(Debug, Clone)]
struct V {
    /// The text as written (a string's content, a number's JSON text, a CSV cell).
    text: String,
    /// JSON writes it as a number.
    num: bool,
    /// JSON `null`.
    null: bool,
    /// `YYYY-MM` when the text is a date the month and year rules accept.
    ym: Option<String>,
    /// The text after the detectors.
    scrubbed: String,
}

impl V {
    fn plain(text: String, num: bool) -> V {
        V {
            scrubbed: text.clone(),
            text,
            num,
            null: false,
            ym: None,
        }
    }
}

/// `x / 10^s` written with exactly `s` decimals.
fn fixed(x: i128, s: u32) -> String {
    if s == 0 {
        return x.to_string();
    }
    let p = 10u128.pow(s);
    let a = x.unsigned_abs();
    let sign = if x < 0 { "-" } else { "" };
    format!("{sign}{}.{:0w$}", a / p, a % p, w = s as usize)
}

/// A decimal `n / 10^k` from text: optional sign, digits, optional fraction (no exponent in
/// what the generators write); ASCII whitespace around it is ignored.
fn parse_dec(s: &str) -> Option<(i128, u32)> {
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let ok = |d: &str| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit());
    if !ok(int) || (t.contains('.') && !ok(frac)) || int.len() + frac.len() > 30 {
        return None;
    }
    let n: i128 = format!("{int}{frac}").parse().ok()?;
    Some((if neg { -n } else { n }, frac.len() as u32))
}

fn pow10(e: u32) -> i128 {
    10i128.pow(e)
}

/// `floor((n / 10^k) / (c / 10^ck))`.
fn floor_steps((n, k): (i128, u32), c: i128, ck: u32) -> i128 {
    let s = k.max(ck);
    (n * pow10(s - k)).div_euclid(c * pow10(s - ck))
}

/// Cell and width sizes: as configured, and as the exact decimal `c / 10^ck`.
const STEPS: [(f64, i128, u32); 7] = [
    (0.01, 1, 2),
    (0.05, 5, 2),
    (0.25, 25, 2),
    (0.5, 5, 1),
    (1.0, 1, 0),
    (10.0, 10, 0),
    (1000.0, 1000, 0),
];

fn step_of(v: f64) -> (i128, u32) {
    let (_, c, ck) = STEPS.iter().find(|(f, _, _)| *f == v).expect("a known step");
    (*c, *ck)
}

/// A rule for a field of this kind: any rule, or more often one made for the kind.
fn rule_for(kind: Kind) -> BoxedStrategy<MaskRule> {
    let step = prop::sample::select(STEPS.iter().map(|s| s.0).collect::<Vec<_>>());
    let fitting = match kind {
        Kind::Coord | Kind::Age => prop_oneof![
            3 => (0u8..3).prop_map(|places| MaskRule::Decimals { places }),
            1 => step.clone().prop_map(|cell| MaskRule::Grid { cell }),
            1 => step.prop_map(|width| MaskRule::Range { width }),
            1 => prop::sample::select(vec![5u32, 10]).prop_map(|width| MaskRule::AgeBand { width }),
        ]
        .boxed(),
        Kind::Date => prop_oneof![Just(MaskRule::Month), Just(MaskRule::Year)].boxed(),
        _ => path_rule().boxed(),
    };
    prop_oneof![path_rule(), fitting].boxed()
}

fn path_rule() -> impl Strategy<Value = MaskRule> {
    let step = prop::sample::select(STEPS.iter().map(|s| s.0).collect::<Vec<_>>());
    prop_oneof![
        4 => Just(MaskRule::Clear),
        1 => Just(MaskRule::Drop),
        1 => Just(MaskRule::Null),
        1 => Just(MaskRule::Redact),
        2 => (0usize..5, 0usize..5).prop_map(|(first, last)| MaskRule::Partial { first, last }),
        1 => Just(MaskRule::Pseudonym),
        1 => prop::sample::select(vec![0u32, 5, 10]).prop_map(|width| MaskRule::AgeBand { width }),
        3 => Just(MaskRule::Month),
        1 => Just(MaskRule::Year),
        3 => step.clone().prop_map(|cell| MaskRule::Grid { cell }),
        3 => (0u8..5).prop_map(|places| MaskRule::Decimals { places }),
        2 => step.prop_map(|width| MaskRule::Range { width }),
    ]
}

/// What the output must hold for one field.
#[derive(Debug, Clone, PartialEq)]
enum Exp {
    Absent,
    Null,
    Str(String),
    Num(String),
}

const REDACTED: &str = "***";

/// The model of one rule on one value, from the rule's documentation.
fn model_apply(rule: &MaskRule, v: &V, scan: bool, key: &PseudonymKey) -> Exp {
    if v.null {
        return if *rule == MaskRule::Drop {
            Exp::Absent
        } else {
            Exp::Null
        };
    }
    let s = |t: String| Exp::Str(t);
    let num = parse_dec(&v.text);
    match rule {
        MaskRule::Clear if scan && v.scrubbed != v.text => s(v.scrubbed.clone()),
        MaskRule::Clear if v.num => Exp::Num(v.text.clone()),
        MaskRule::Clear => s(v.text.clone()),
        MaskRule::Drop => Exp::Absent,
        MaskRule::Null => Exp::Null,
        MaskRule::Redact => s(REDACTED.into()),
        MaskRule::Partial { first, last } => {
            let chars: Vec<char> = v.text.chars().collect();
            let len = chars.len();
            let (f, l) = if len > first + last {
                (*first, *last)
            } else {
                ((*first).min(len.saturating_sub(1) / 2), 0)
            };
            s(chars
                .iter()
                .enumerate()
                .map(|(i, c)| if i < f || i >= len - l { *c } else { '*' })
                .collect())
        }
        MaskRule::Pseudonym => s(key.pseudonym(v.text.as_bytes())),
        MaskRule::AgeBand { width } => match num {
            Some(d) if *width > 0 && d.0 >= 0 => {
                let w = i128::from(*width);
                let q = floor_steps(d, w, 0);
                s(format!("{}-{}", q * w, (q + 1) * w - 1))
            }
            _ => s(REDACTED.into()),
        },
        MaskRule::Month | MaskRule::Year => match (&v.ym, v.num) {
            (Some(ym), false) => s(if *rule == MaskRule::Month {
                ym.clone()
            } else {
                ym[..4].into()
            }),
            _ => s(REDACTED.into()),
        },
        MaskRule::Grid { cell } => match num {
            Some(d) => {
                let (c, ck) = step_of(*cell);
                Exp::Num(fixed(floor_steps(d, c, ck) * c, ck))
            }
            None => s(REDACTED.into()),
        },
        MaskRule::Decimals { places } => match num {
            Some((n, k)) => {
                let p = u32::from(*places);
                let x = if p >= k {
                    n * pow10(p - k)
                } else {
                    let d = pow10(k - p);
                    let (q, r) = (n / d, (n % d).abs());
                    if 2 * r >= d {
                        q + n.signum()
                    } else {
                        q
                    }
                };
                Exp::Num(fixed(x, p))
            }
            None => s(REDACTED.into()),
        },
        MaskRule::Range { width } => match num {
            Some(d) => {
                let (c, ck) = step_of(*width);
                let q = floor_steps(d, c, ck);
                s(if ck == 0 {
                    format!("{}-{}", q * c, (q + 1) * c - 1)
                } else {
                    format!("[{},{})", fixed(q * c, ck), fixed((q + 1) * c, ck))
                })
            }
            None => s(REDACTED.into()),
        },
    }
}

/// `n / 10^k` without trailing fraction zeros.
fn normal((mut n, mut k): (i128, u32)) -> (i128, u32) {
    while k > 0 && n % 10 == 0 {
        n /= 10;
        k -= 1;
    }
    (n, k)
}

/// Whether the rule documents that it may give back the value as it was: rounding or
/// gridding a number already round, a month written `YYYY-MM`, an empty string.
fn may_equal_original(rule: &MaskRule, v: &V) -> bool {
    let scale = |d| normal(d).1;
    match rule {
        MaskRule::Decimals { places } => parse_dec(&v.text).is_some_and(|d| scale(d) <= u32::from(*places)),
        MaskRule::Grid { cell } => parse_dec(&v.text).is_some_and(|(n, k)| {
            let (c, ck) = step_of(*cell);
            let s = k.max(ck);
            (n * pow10(s - k)).rem_euclid(c * pow10(s - ck)) == 0
        }),
        MaskRule::Month => v.ym.as_deref() == Some(v.text.as_str()),
        MaskRule::Partial { .. } | MaskRule::Null => v.text.is_empty(),
        _ => false,
    }
}

fn date() -> impl Strategy<Value = V> {
    let valid =
        (1900i32..2100, 1u32..=12, 1u32..=31, 0usize..6, any::<bool>()).prop_map(|(y, m, d, form, pad)| {
            let d = d.min(time::Month::try_from(m as u8).unwrap().length(y).into());
            let ymd = format!("{y:04}-{m:02}-{d:02}");
            let text = match form {
                0 => ymd,
                1 => format!("{y:04}-{m:02}"),
                2 => format!("{ymd}T08:30:00Z"),
                3 => format!("{ymd} 23:59:59"),
                4 => format!("{ymd}T08:30:00.123+08:00"),
                _ => format!("{ymd}t00:00-0530"),
            };
            let text = if pad { format!(" {text} ") } else { text };
            V {
                ym: Some(format!("{y:04}-{m:02}")),
                ..V::plain(text, false)
            }
        });
    let invalid = prop::sample::select(vec![
        "2023-02-29",
        "2024-13-01",
        "15/03/2024",
        "soon",
        "2024-03-15T25:00",
        "2024-3-5",
    ])
    .prop_map(|t| V::plain(t.into(), false));
    prop_oneof![4 => valid, 1 => invalid]
}

/// A value of a kind; `null` sometimes.
fn value(kind: Kind) -> BoxedStrategy<V> {
    let v = match kind {
        Kind::Id => "[A-Z][0-9]{2}".prop_map(|t| V::plain(t, false)).boxed(),
        Kind::District => prop::sample::select(DISTRICTS.to_vec())
            .prop_map(|t| V::plain(t.into(), false))
            .boxed(),
        Kind::Status => prop::sample::select(STATUSES.to_vec())
            .prop_map(|t| V::plain(t.into(), false))
            .boxed(),
        Kind::Text => common::text()
            .prop_map(|t| V {
                scrubbed: t.masked,
                ..V::plain(t.raw, false)
            })
            .boxed(),
        Kind::Date => date().boxed(),
        Kind::Coord => prop_oneof![
            (-200_000_000i128..200_000_000, 0u32..6).prop_map(|(n, k)| (n, k)),
            // Halfway between two roundings: `…5`, `…50`, `…500` after the kept places.
            (-20_000i128..20_000, 1u32..4, 0u32..3).prop_map(|(m, j, extra)| {
                let half = 5 * pow10(j - 1);
                (m * pow10(j) + if m < 0 { -half } else { half }, j + extra)
            }),
        ]
        .prop_flat_map(|(n, k)| prop::bool::weighted(0.8).prop_map(move |num| V::plain(fixed(n, k), num)))
        .boxed(),
        Kind::Age => (-5i64..120, prop::bool::weighted(0.8))
            .prop_map(|(a, num)| V::plain(a.to_string(), num))
            .boxed(),
        Kind::Phone => common::mobile()
            .prop_map(|m| V {
                scrubbed: format!("{}****{}", &m[..3], &m[7..]),
                ..V::plain(m, false)
            })
            .boxed(),
    };
    prop_oneof![
        12 => v,
        1 => Just(V { null: true, ..V::plain(String::new(), false) }),
    ]
    .boxed()
}

/// A record: each field maybe missing.
fn path_record() -> impl Strategy<Value = Vec<Option<V>>> {
    PATH_FIELDS
        .iter()
        .map(|(_, kind)| prop::option::weighted(0.9, value(*kind)))
        .collect::<Vec<_>>()
}

/// A row filter condition: field, operator (`=`, `!=`, `in`), literals.
type Cond = (&'static str, u8, Vec<&'static str>);

fn condition() -> impl Strategy<Value = Cond> {
    let lits = prop::collection::vec(
        prop::sample::select([DISTRICTS.as_slice(), &STATUSES].concat()),
        1..3,
    );
    (
        prop::sample::select(vec!["district", "district", "status", "gone"]),
        0u8..3,
        lits,
    )
}

fn filter_text(conds: &[Cond]) -> String {
    let lit = |v: &str| format!("'{}'", v.replace('\'', "''"));
    conds
        .iter()
        .map(|(f, op, vals)| match op {
            0 => format!("{f} = {}", lit(vals[0])),
            1 => format!("{f} != {}", lit(vals[0])),
            _ => format!(
                "{f} in ({})",
                vals.iter().map(|v| lit(v)).collect::<Vec<_>>().join(", ")
            ),
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The filter on the original values: a missing or null field never matches.
fn passes(conds: &[Cond], rec: &[Option<V>]) -> bool {
    conds.iter().all(|(f, op, vals)| {
        let v = PATH_FIELDS
            .iter()
            .position(|(n, _)| n == f)
            .and_then(|i| rec[i].as_ref())
            .filter(|v| !v.null);
        match (v, op) {
            (None, _) => false,
            (Some(v), 0) => v.text == vals[0],
            (Some(v), 1) => v.text != vals[0],
            (Some(v), _) => vals.contains(&v.text.as_str()),
        }
    })
}

/// Whether an output value equals the original (CSV: the cell text; JSON: the string, or
/// the number's value).
fn same_as_original(out: &serde_json::Value, v: &V) -> bool {
    match out {
        serde_json::Value::String(s) => *s == v.text,
        // Exactly where serde_json keeps the number exact (integers), else as f64.
        serde_json::Value::Number(n) => match (parse_dec(&n.to_string()), parse_dec(&v.text)) {
            (Some(a), Some(b)) => normal(a) == normal(b),
            (None, Some(_)) => v.text.trim().parse::<f64>().ok() == n.as_f64(),
            (_, None) => false,
        },
        serde_json::Value::Null => v.text.is_empty(),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// (c) decision → plan → masker against the model, every input and output format.
    #[test]
    fn the_whole_path_follows_the_model(
        mut t in table(),
        fields in PATH_FIELDS
            .iter()
            .map(|(_, kind)| (grades(), prop::bool::weighted(0.8), prop::option::weighted(0.85, rule_for(*kind))))
            .collect::<Vec<_>>(),
        conds in prop::option::weighted(0.5, prop::collection::vec(condition(), 1..3)),
        asked in prop::option::weighted(0.2, prop::sample::subsequence(PATH_FIELDS.iter().map(|f| f.0).collect::<Vec<_>>(), 0..5)),
        recs in prop::collection::vec(path_record(), 0..6),
        input in prop::sample::select(vec![InputFormat::JsonArray, InputFormat::Ndjson, InputFormat::Csv]),
        out_fmt in prop::sample::select(vec![OutputFormat::Json, OutputFormat::Ndjson, OutputFormat::Csv]),
        cuts in prop::collection::vec(any::<usize>(), 0..5),
    ) {
        // The dataset itself (lowest grades) is offered; its fields are graded at random.
        (t.personal[0], t.organisation[0], t.object[0]) = (0, 0, 0);
        let ds_fields: Vec<(&str, G, bool)> = PATH_FIELDS.iter().zip(&fields).map(|((n, _), (g, scan, _))| (*n, *g, *scan)).collect();
        let licence = Licence {
            aggregate: None,
            id: "L".into(),
            licensee: "alice".into(),
            dataset: "hydrants".into(),
            scenario: "s1".into(),
            fields: PATH_FIELDS
                .iter()
                .zip(&fields)
                .filter_map(|((n, _), (_, _, r))| r.clone().map(|r| (n.to_string(), r)))
                .collect(),
            row_filter: conds.as_ref().map(|c| RowFilter::parse(&filter_text(c)).unwrap()),
            rate: RateLimit::default(),
            quota: Quota::default(),
            valid_from: NOW - Duration::days(1),
            valid_until: NOW + Duration::days(1),
            mode: Mode::Records,
            status: LicenceStatus::Active,
            expert_review: None,
        };
        let set = PolicySet::compile(
            &[spec("hydrants", G(0, 0, 0), &ds_fields)],
            [licence.clone()],
            &t.rules(),
            Measures::default(),
            MASTER,
        );
        let req = Request { licensee: Some("alice"), dataset: "hydrants", scenario: Some("s1"), fields: asked.as_deref() };
        // The fields the model lets leave, in dataset order.
        let allowed: Vec<usize> = (0..PATH_FIELDS.len())
            .filter(|&i| {
                let (_, g, _) = ds_fields[i];
                match licence.fields.get(PATH_FIELDS[i].0) {
                    None | Some(MaskRule::Drop) => false,
                    Some(MaskRule::Clear) if t.requires_masking(g) => false,
                    Some(_) => t.rank(g) < 2,
                }
            })
            .collect();
        let permit = match set.decide(&req, &FixedClock(NOW)) {
            Decision::Allow(p) => p,
            Decision::Deny(Refusal::FieldNotAllowed(f)) => {
                prop_assert!(!allowed.iter().any(|&i| PATH_FIELDS[i].0 == f), "{} refused", f);
                return Ok(());
            }
            Decision::Deny(r) => return Err(TestCaseError::fail(format!("refused: {r:?}"))),
        };
        let visible: Vec<usize> = allowed
            .into_iter()
            .filter(|&i| asked.as_ref().is_none_or(|a| a.contains(&PATH_FIELDS[i].0)))
            .collect();
        let key = PseudonymKey::derive(MASTER, "alice", "hydrants");
        let csv_in = input == InputFormat::Csv;
        // CSV cells are text; there is no null and no missing cell: both read as the empty string.
        let recs: Vec<Vec<Option<V>>> = if csv_in {
            recs.into_iter()
                .map(|r| {
                    r.into_iter()
                        .map(|v| {
                            let v = v.filter(|v| !v.null).unwrap_or_else(|| V::plain(String::new(), false));
                            Some(V { num: false, ..v })
                        })
                        .collect()
                })
                .collect()
        } else {
            recs
        };
        let mut doc = String::new();
        if csv_in {
            let header: Vec<&str> = PATH_FIELDS.iter().map(|f| f.0).chain(["secret"]).collect();
            doc.push_str(&header.join(","));
            doc.push('\n');
        } else if input == InputFormat::JsonArray {
            doc.push('[');
        }
        for (n, r) in recs.iter().enumerate() {
            let secret = format!("SECRET{n}");
            if csv_in {
                let cells: Vec<String> = r.iter().map(|v| common::csv_cell(&v.as_ref().unwrap().text, false)).chain([secret]).collect();
                doc.push_str(&cells.join(","));
                doc.push('\n');
                continue;
            }
            if n > 0 {
                doc.push_str(if input == InputFormat::Ndjson { "\n" } else { "," });
            }
            let mut members: Vec<String> = PATH_FIELDS
                .iter()
                .zip(r)
                .filter_map(|((name, _), v)| {
                    let v = v.as_ref()?;
                    let json = if v.null { "null".into() } else if v.num { v.text.clone() } else { serde_json::to_string(&v.text).unwrap() };
                    Some(format!("\"{name}\":{json}"))
                })
                .collect();
            members.push(format!("\"secret\":\"{secret}\""));
            doc.push_str(&format!("{{{}}}", members.join(",")));
        }
        if input == InputFormat::JsonArray {
            doc.push(']');
        }

        let (out, stats) = common::run(&permit.plan, &input, out_fmt, doc.as_bytes(), &[]).expect("valid input");
        prop_assert_eq!(common::run(&permit.plan, &input, out_fmt, doc.as_bytes(), &cuts), Ok((out.clone(), stats)));
        let text = String::from_utf8(out).unwrap();
        prop_assert!(!text.contains("SECRET"), "a field outside the catalog left: {}", text);

        // The model's records: the row filter on the original values, then each rule.
        let kept: Vec<&Vec<Option<V>>> = recs.iter().filter(|r| conds.as_ref().is_none_or(|c| passes(c, r))).collect();
        prop_assert_eq!(stats.records_filtered, (recs.len() - kept.len()) as u64, "the row filter");
        let expected: Vec<Vec<Exp>> = kept
            .iter()
            .map(|r| {
                visible
                    .iter()
                    .map(|&i| match &r[i] {
                        None => Exp::Absent,
                        Some(v) => model_apply(&licence.fields[PATH_FIELDS[i].0], v, ds_fields[i].2, &key),
                    })
                    .collect()
            })
            .collect();
        // Output values as JSON (CSV cells as strings), `None` when absent.
        let got: Vec<Vec<Option<serde_json::Value>>> = if out_fmt == OutputFormat::Csv {
            let rows = common::read_csv(&text);
            let header: Vec<String> = if visible.is_empty() { vec![String::new()] } else { visible.iter().map(|&i| PATH_FIELDS[i].0.to_owned()).collect() };
            prop_assert_eq!(&rows[0], &header, "the CSV header is the permitted fields in dataset order");
            rows[1..].iter().map(|r| r.iter().take(visible.len()).map(|c| Some(serde_json::Value::String(c.clone()))).collect()).collect()
        } else {
            common::read_json(&text, out_fmt)
                .into_iter()
                .map(|o| {
                    for k in o.keys() {
                        let i = PATH_FIELDS.iter().position(|f| f.0 == k).expect("a dataset field");
                        assert!(visible.contains(&i), "{k} is not permitted");
                        assert!(t.rank(ds_fields[i].1) < 2, "{k} is non-open");
                    }
                    visible.iter().map(|&i| o.get(PATH_FIELDS[i].0).cloned()).collect()
                })
                .collect()
        };
        prop_assert_eq!(got.len(), expected.len());
        for ((g, e), r) in got.iter().zip(&expected).zip(&kept) {
            for ((&i, got), exp) in visible.iter().zip(g).zip(e) {
                let name = PATH_FIELDS[i].0;
                let rule = &licence.fields[name];
                let want: Option<serde_json::Value> = match (exp, out_fmt) {
                    (Exp::Absent | Exp::Null, OutputFormat::Csv) => Some(serde_json::Value::String(String::new())),
                    (Exp::Str(s) | Exp::Num(s), OutputFormat::Csv) => Some(serde_json::Value::String(s.clone())),
                    (Exp::Absent, _) => None,
                    (Exp::Null, _) => Some(serde_json::Value::Null),
                    (Exp::Str(s), _) => Some(serde_json::Value::String(s.clone())),
                    (Exp::Num(s), _) => Some(serde_json::from_str(s).unwrap()),
                };
                prop_assert_eq!(got, &want, "{} under {:?} of {:?}", name, rule, r[i]);
                if let (Some(out), Some(v), false) = (got, &r[i], rule.is_clear()) {
                    if !v.null && same_as_original(out, v) {
                        prop_assert!(may_equal_original(rule, v), "{} under {:?} left as {:?}", name, rule, v.text);
                    }
                }
            }
        }
    }
}

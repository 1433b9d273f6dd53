//! The living open list: the versions of a catalog entry and what changed between two of them.
//!
//! Every change of an entry (registered, updated, closed, reopened, marked under evaluation)
//! is kept as a version with its date, the change's reason and a short machine summary of what
//! changed ([`diff`]), shown in words ([`Summary::words`]) on `/catalog/<id>/history`. An entry
//! that is not open yet (its category is non-open, or it is closed) may carry the date of its
//! next evaluation; it is dropped when the entry becomes open.

use super::model::DatasetRecord;
use serde::{Deserialize, Serialize};
use sluice_policy::catalog::DatasetSpec;
use sluice_policy::classify::{Grades, OpenCategory};
use std::collections::BTreeMap;

/// What a version records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionAction {
    /// The entry was registered.
    Registered,
    /// Its declaration was replaced (`POST /admin/datasets` for an existing id).
    Updated,
    /// It was closed (`POST /admin/datasets/<id>/close`).
    Closed,
    /// It was reopened.
    Reopened,
    /// It was marked under evaluation with its next evaluation date.
    Evaluation,
}

impl VersionAction {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Updated => "updated",
            Self::Closed => "closed",
            Self::Reopened => "reopened",
            Self::Evaluation => "evaluation",
        }
    }

    /// Parses [`VersionAction::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Registered,
            Self::Updated,
            Self::Closed,
            Self::Reopened,
            Self::Evaluation,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// A pair `[before, after]`; `before` is `null` for a registration.
pub type Pair<T> = (Option<T>, T);

/// What changed between two versions of an entry: only the members that changed are present
/// (`{}` when nothing did).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Open category `[before, after]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Pair<OpenCategory>>,
    /// Fields added (at registration: every field), in declaration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields_added: Vec<String>,
    /// Fields removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields_removed: Vec<String>,
    /// The dataset's own grades `[before, after]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grades: Option<(Grades, Grades)>,
    /// Grades `[before, after]` of the fields kept whose grades changed, by field.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_grades: BTreeMap<String, (Grades, Grades)>,
    /// The record key `[before, after]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_key: Option<(Option<String>, Option<String>)>,
    /// The catalog version `[before, after]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Pair<u32>>,
    /// Closed `[before, after]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<(bool, bool)>,
    /// Next evaluation date `[before, after]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_evaluation: Option<(Option<String>, Option<String>)>,
    /// Owning agency `[before, after]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<(Option<String>, Option<String>)>,
    /// Other parts of the declaration that changed: `title`, `owner`, `update_frequency`,
    /// `field order`, `field <name>` (its description, scan or fingerprint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<String>,
}

/// Whether an entry is open: its category is not non-open and it is not closed.
pub fn is_open(d: &DatasetRecord) -> bool {
    d.open_category != OpenCategory::NonOpen && !d.closed
}

/// An entry's current status: `under_evaluation` (not open, with a next evaluation date),
/// `closed`, `not_open` (non-open category) or `open`.
pub fn status(d: &DatasetRecord) -> &'static str {
    if !is_open(d) && d.next_evaluation.is_some() {
        "under_evaluation"
    } else if d.closed {
        "closed"
    } else if d.open_category == OpenCategory::NonOpen {
        "not_open"
    } else {
        "open"
    }
}

/// An entry's status in words, with its next evaluation date.
pub fn status_words(d: &DatasetRecord) -> String {
    match (status(d), &d.next_evaluation) {
        ("under_evaluation", Some(next)) => {
            format!("not yet open, under evaluation (next evaluation {next})")
        }
        ("not_open", _) => "not open".to_owned(),
        (s, _) => s.to_owned(),
    }
}

/// A catalog entry as `/catalog` lists it: the record and its [`status`].
#[derive(Debug, Serialize)]
pub struct CatalogEntry<'a> {
    /// The record.
    #[serde(flatten)]
    pub record: &'a DatasetRecord,
    /// [`status`].
    pub status: &'static str,
}

impl<'a> CatalogEntry<'a> {
    /// The entry of `record`.
    pub fn of(record: &'a DatasetRecord) -> Self {
        Self {
            record,
            status: status(record),
        }
    }
}

/// The `/catalog` JSON body: each entry with its status.
pub fn catalog_json(datasets: &[DatasetRecord]) -> serde_json::Value {
    let entries: Vec<CatalogEntry<'_>> = datasets.iter().map(CatalogEntry::of).collect();
    serde_json::to_value(entries).unwrap_or_default()
}

/// What changed from `before` (`None`: the entry is new) to `after`.
pub fn diff(before: Option<&DatasetRecord>, after: &DatasetRecord) -> Summary {
    let names = |s: &DatasetSpec| s.fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    let Some(b) = before else {
        return Summary {
            category: Some((None, after.open_category)),
            fields_added: names(&after.spec),
            record_key: after.spec.record_key.clone().map(|k| (None, Some(k))),
            version: Some((None, after.spec.version)),
            closed: after.closed.then_some((false, true)),
            next_evaluation: after.next_evaluation.clone().map(|n| (None, Some(n))),
            agency: after.agency.clone().map(|a| (None, Some(a))),
            ..Summary::default()
        };
    };
    let (old, new) = (&b.spec, &after.spec);
    let mut s = Summary::default();
    if b.open_category != after.open_category {
        s.category = Some((Some(b.open_category), after.open_category));
    }
    s.fields_added = names(new)
        .into_iter()
        .filter(|n| old.field(n).is_none())
        .collect();
    s.fields_removed = names(old)
        .into_iter()
        .filter(|n| new.field(n).is_none())
        .collect();
    if old.grades != new.grades {
        s.grades = Some((old.grades, new.grades));
    }
    for f in &new.fields {
        let Some(was) = old.field(&f.name) else {
            continue;
        };
        if was.grades != f.grades {
            s.field_grades.insert(f.name.clone(), (was.grades, f.grades));
        }
        let same_rest =
            was.scan == f.scan && was.description == f.description && was.fingerprint == f.fingerprint;
        if !same_rest {
            s.other.push(format!("field {}", f.name));
        }
    }
    if old.record_key != new.record_key {
        s.record_key = Some((old.record_key.clone(), new.record_key.clone()));
    }
    if old.version != new.version {
        s.version = Some((Some(old.version), new.version));
    }
    if b.closed != after.closed {
        s.closed = Some((b.closed, after.closed));
    }
    if b.next_evaluation != after.next_evaluation {
        s.next_evaluation = Some((b.next_evaluation.clone(), after.next_evaluation.clone()));
    }
    if b.agency != after.agency {
        s.agency = Some((b.agency.clone(), after.agency.clone()));
    }
    let mut other = Vec::new();
    for (name, changed) in [
        ("title", old.title != new.title),
        ("owner", old.owner != new.owner),
        ("update_frequency", old.update_frequency != new.update_frequency),
    ] {
        if changed {
            other.push(name.to_owned());
        }
    }
    let kept = |a: &DatasetSpec, c: &DatasetSpec| {
        names(a)
            .into_iter()
            .filter(|n| c.field(n).is_some())
            .collect::<Vec<_>>()
    };
    if kept(old, new) != kept(new, old) {
        other.push("field order".to_owned());
    }
    other.append(&mut s.other);
    s.other = other;
    s
}

fn category_words(c: OpenCategory) -> &'static str {
    match c {
        OpenCategory::Unconditional => "unconditional",
        OpenCategory::Conditional => "conditional",
        OpenCategory::NonOpen => "not open",
    }
}

/// The grade dimensions that differ, e.g. `personal non_anonymous_sensitive to none`.
fn grade_words(a: &Grades, b: &Grades) -> String {
    let name = |v: serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let dims = [
        (
            "personal",
            serde_json::to_value(a.personal),
            serde_json::to_value(b.personal),
        ),
        (
            "organisation",
            serde_json::to_value(a.organisation),
            serde_json::to_value(b.organisation),
        ),
        (
            "object",
            serde_json::to_value(a.object),
            serde_json::to_value(b.object),
        ),
    ];
    dims.into_iter()
        .filter_map(|(dim, x, y)| match (x, y) {
            (Ok(x), Ok(y)) if x != y => Some(format!("{dim} {} to {}", name(x), name(y))),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Summary {
    /// The summary in words, e.g. `category conditional to unconditional; fields added: x;
    /// version 1 to 2`.
    pub fn words(&self) -> String {
        let mut out = Vec::new();
        match self.category {
            Some((None, c)) => out.push(format!("category {}", category_words(c))),
            Some((Some(a), c)) => {
                out.push(format!("category {} to {}", category_words(a), category_words(c)))
            }
            None => {}
        }
        if !self.fields_added.is_empty() {
            out.push(format!("fields added: {}", self.fields_added.join(", ")));
        }
        if !self.fields_removed.is_empty() {
            out.push(format!("fields removed: {}", self.fields_removed.join(", ")));
        }
        if let Some((a, b)) = &self.grades {
            out.push(format!("dataset grades: {}", grade_words(a, b)));
        }
        for (field, (a, b)) in &self.field_grades {
            out.push(format!("grades of field {field}: {}", grade_words(a, b)));
        }
        match &self.record_key {
            Some((None, Some(b))) => out.push(format!("record key set to {b}")),
            Some((Some(a), None)) => out.push(format!("record key removed (was {a})")),
            Some((Some(a), Some(b))) => out.push(format!("record key {a} to {b}")),
            _ => {}
        }
        match self.version {
            Some((None, v)) => out.push(format!("version {v}")),
            Some((Some(a), b)) => out.push(format!("version {a} to {b}")),
            None => {}
        }
        match self.closed {
            Some((false, true)) => out.push("closed".to_owned()),
            Some((true, false)) => out.push("reopened".to_owned()),
            _ => {}
        }
        match &self.next_evaluation {
            Some((_, Some(next))) => out.push(format!("under evaluation, next evaluation {next}")),
            Some((Some(was), None)) => out.push(format!("evaluation ended (was due {was})")),
            _ => {}
        }
        if let Some((a, b)) = &self.agency {
            let b = b.as_deref().unwrap_or("none (city-wide administrators)");
            match a {
                None => out.push(format!("owning agency {b}")),
                Some(a) => out.push(format!("owning agency {a} to {b}")),
            }
        }
        if !self.other.is_empty() {
            out.push(format!("also changed: {}", self.other.join(", ")));
        }
        if out.is_empty() {
            "no change to the entry".to_owned()
        } else {
            out.join("; ")
        }
    }
}

/// One version of a catalog entry, as `/catalog/<id>/history` shows it (the change number
/// and the declaration stay in the store).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogVersion {
    /// 1, 2, … per entry.
    pub seq: u64,
    /// When (RFC 3339): the time of the change.
    pub at: String,
    /// The number of the admin change it belongs to.
    #[serde(skip)]
    pub change: u64,
    /// What happened.
    pub action: VersionAction,
    /// What changed.
    pub changes: Summary,
    /// The change's reason.
    pub reason: String,
    /// The catalog version of the declaration after the change.
    pub version: u32,
    /// The declaration after the change.
    #[serde(skip)]
    pub spec: DatasetSpec,
    /// The open category after the change.
    pub open_category: OpenCategory,
    /// Closed after the change.
    pub closed: bool,
    /// The next evaluation date after the change.
    pub next_evaluation: Option<String>,
}

impl CatalogVersion {
    /// [`Summary::words`] of its changes; a registration names what was registered.
    pub fn summary(&self) -> String {
        self.changes.words()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn record(v: serde_json::Value) -> DatasetRecord {
        let spec: DatasetSpec = serde_json::from_value(v).unwrap();
        let open_category = spec.category(&Default::default());
        DatasetRecord {
            spec,
            open_category,
            closed: false,
            agency: None,
            next_evaluation: None,
        }
    }

    fn hydrants() -> DatasetRecord {
        record(json!({
            "id": "hydrants", "title": "Fire hydrants",
            "grades": { "personal": "non_anonymous_non_sensitive" },
            "fields": [
                { "name": "id" },
                { "name": "mobile", "grades": { "personal": "non_anonymous_non_sensitive" } },
            ],
        }))
    }

    #[test]
    fn a_registration_names_category_fields_and_version() {
        let s = diff(None, &hydrants());
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({ "category": [null, "conditional"], "fields_added": ["id", "mobile"],
                    "version": [null, 1] })
        );
        assert_eq!(
            s.words(),
            "category conditional; fields added: id, mobile; version 1"
        );
    }

    #[test]
    fn an_update_names_category_fields_grades_record_key_and_version() {
        let before = hydrants();
        let after = record(json!({
            "id": "hydrants", "title": "Hydrants", "version": 2, "record_key": "id",
            "fields": [
                { "name": "id" },
                { "name": "district" },
                { "name": "mobile" },
            ],
        }));
        let s = diff(Some(&before), &after);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["category"], json!(["conditional", "unconditional"]));
        assert_eq!(v["fields_added"], json!(["district"]));
        assert!(v.get("fields_removed").is_none());
        assert_eq!(v["version"], json!([1, 2]));
        assert_eq!(v["record_key"], json!([null, "id"]));
        assert_eq!(v["grades"][0]["personal"], json!("non_anonymous_non_sensitive"));
        assert_eq!(v["field_grades"]["mobile"][1]["personal"], json!("none"));
        assert_eq!(v["other"], json!(["title"]));
        assert_eq!(
            s.words(),
            "category conditional to unconditional; fields added: district; \
             dataset grades: personal non_anonymous_non_sensitive to none; \
             grades of field mobile: personal non_anonymous_non_sensitive to none; \
             record key set to id; version 1 to 2; also changed: title"
        );
        // The stored JSON reads back as the same summary.
        assert_eq!(serde_json::from_value::<Summary>(v).unwrap(), s);
    }

    #[test]
    fn removed_fields_order_and_field_details_are_named() {
        let before = hydrants();
        let mut after = before.clone();
        after.spec.fields.reverse();
        after.spec.fields[0].description = "who adopted it".into();
        let s = diff(Some(&before), &after);
        assert_eq!(s.other, ["field order", "field mobile"]);
        let mut fewer = before.clone();
        fewer.spec.fields.pop();
        let s = diff(Some(&before), &fewer);
        assert_eq!(s.fields_removed, ["mobile"]);
        assert_eq!(s.words(), "fields removed: mobile");
    }

    #[test]
    fn closing_evaluation_and_no_change_are_summarised() {
        let open = hydrants();
        assert_eq!(diff(Some(&open), &open), Summary::default());
        assert_eq!(diff(Some(&open), &open).words(), "no change to the entry");
        assert_eq!(serde_json::to_value(Summary::default()).unwrap(), json!({}));
        let closed = DatasetRecord {
            closed: true,
            ..open.clone()
        };
        let s = diff(Some(&open), &closed);
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({ "closed": [false, true] })
        );
        assert_eq!(s.words(), "closed");
        let evaluated = DatasetRecord {
            next_evaluation: Some("2027-03-01".into()),
            ..closed.clone()
        };
        let s = diff(Some(&closed), &evaluated);
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({ "next_evaluation": [null, "2027-03-01"] })
        );
        assert_eq!(s.words(), "under evaluation, next evaluation 2027-03-01");
        let reopened = DatasetRecord {
            closed: false,
            next_evaluation: None,
            ..evaluated.clone()
        };
        assert_eq!(
            diff(Some(&evaluated), &reopened).words(),
            "reopened; evaluation ended (was due 2027-03-01)"
        );
    }

    #[test]
    fn status_follows_category_closing_and_evaluation() {
        let mut d = hydrants();
        assert_eq!((status(&d), is_open(&d)), ("open", true));
        d.closed = true;
        assert_eq!((status(&d), is_open(&d)), ("closed", false));
        d.next_evaluation = Some("2027-03-01".into());
        assert_eq!(status(&d), "under_evaluation");
        assert_eq!(
            status_words(&d),
            "not yet open, under evaluation (next evaluation 2027-03-01)"
        );
        d.closed = false;
        assert_eq!(status(&d), "open", "an open entry is not under evaluation");
        d.open_category = OpenCategory::NonOpen;
        assert_eq!(status(&d), "under_evaluation");
        d.next_evaluation = None;
        assert_eq!((status(&d), status_words(&d).as_str()), ("not_open", "not open"));
    }
}

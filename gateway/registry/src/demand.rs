//! The public demand list (需求清单): anyone asks for a dataset to be opened or for more fields
//! of one, without an account; requests for the same thing are merged into one entry and
//! counted; administrators answer each entry (planned with a date, opened, refused), and the
//! list with its counts and answers is public.
//!
//! What is public: an entry's kind, the catalog id or the title it names, the fields asked for,
//! how many requests it gathered, the first and last day one was filed, and the answer (status,
//! date, reason). The title and the field names are the only text from the public that is ever
//! shown: each request's `why` and `contact` are for administrators only.
//!
//! The merge rule ([`merge_key`]): the same kind, the same target — a catalog id (as written,
//! trimmed) or, for data the catalog does not list, the same title compared in lower case,
//! trimmed, with inner whitespace collapsed — and, for `more-fields`, the same set of fields
//! (order and repeats do not matter; a field is compared like a title, and one the catalog entry
//! declares takes the declared spelling).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest `why` in characters.
pub const MAX_WHY: usize = 2_000;
/// Longest `contact` in characters.
pub const MAX_CONTACT: usize = 320;
/// Longest `dataset` (a catalog id or a title) in characters.
pub const MAX_TITLE: usize = 200;
/// Longest field name in characters.
pub const MAX_FIELD: usize = 64;
/// Most fields in one request.
pub const MAX_FIELDS: usize = 20;
/// Longest `fields` text of the public form (names separated by commas or line breaks).
pub const MAX_FORM_FIELDS: usize = 1_500;
/// Longest answer `reason` in characters.
pub const MAX_REASON: usize = 4_000;

/// What is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Open a dataset: one in the catalog that is not open (closed, conditional, non-open) or
    /// data the catalog does not list yet.
    OpenDataset,
    /// More fields of a catalog entry.
    MoreFields,
}

impl Kind {
    /// The name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenDataset => "open-dataset",
            Self::MoreFields => "more-fields",
        }
    }

    /// From the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::OpenDataset, Self::MoreFields]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Where an entry stands: `open` until answered, then the answer's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not answered yet.
    Open,
    /// The agency plans to open it, by the answer's date.
    Planned,
    /// Opened.
    Opened,
    /// Refused, with the reason.
    Refused,
}

impl Status {
    /// The name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Planned => "planned",
            Self::Opened => "opened",
            Self::Refused => "refused",
        }
    }

    /// From the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Open, Self::Planned, Self::Opened, Self::Refused]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// `POST /v1/demands`: a request, as JSON (the form's fields are turned into one).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDemand {
    /// Open a dataset or more fields of one.
    pub kind: Kind,
    /// A catalog id, or (to open data the catalog does not list) a title.
    pub dataset: String,
    /// The fields wanted (`more-fields` only, then at least one).
    #[serde(default)]
    pub fields: Vec<String>,
    /// Why, in the requester's words (administrators only).
    pub why: String,
    /// How the agency can reach the requester (administrators only); may be empty.
    #[serde(default)]
    pub contact: String,
}

/// Checks a text member: `required` non-blank, at most `max` characters, no control
/// characters (line breaks and tabs too unless `lines`).
fn text(name: &str, v: &str, max: usize, required: bool, lines: bool) -> Result<(), String> {
    if required && v.trim().is_empty() {
        return Err(format!("{name} must not be empty"));
    }
    if v.chars().count() > max {
        return Err(format!("{name} is longer than {max} characters"));
    }
    if v.chars()
        .any(|c| c.is_control() && !(lines && matches!(c, '\n' | '\r' | '\t')))
    {
        return Err(format!("{name} holds control characters"));
    }
    Ok(())
}

impl NewDemand {
    /// Checks sizes, characters and the fields' presence (the target is checked against the
    /// catalog by [`resolve`]).
    pub fn check(&self) -> Result<(), String> {
        text("dataset", &self.dataset, MAX_TITLE, true, false)?;
        text("why", &self.why, MAX_WHY, true, true)?;
        text("contact", &self.contact, MAX_CONTACT, false, true)?;
        if self.fields.len() > MAX_FIELDS {
            return Err(format!("at most {MAX_FIELDS} fields"));
        }
        for f in &self.fields {
            text("a field name", f, MAX_FIELD, true, false)?;
        }
        match self.kind {
            Kind::MoreFields if self.fields.is_empty() => {
                Err("a more-fields demand names at least one field".to_owned())
            }
            Kind::OpenDataset if !self.fields.is_empty() => Err(
                "fields are for more-fields demands; an open-dataset demand names the dataset only"
                    .to_owned(),
            ),
            _ => Ok(()),
        }
    }
}

/// The form's `fields` text as names: split at commas and line breaks, blanks dropped.
pub fn form_fields(s: &str) -> Result<Vec<String>, String> {
    text("fields", s, MAX_FORM_FIELDS, false, true)?;
    Ok(s.split([',', '\n', '\r'])
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Text with its ends trimmed and inner whitespace collapsed to one space.
pub fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A title as compared: [`collapse`]d and in lower case.
pub fn normalise_title(s: &str) -> String {
    collapse(s).to_lowercase()
}

/// The set of fields asked for, sorted, each once: a name the catalog entry declares
/// (`known`, compared like a title) takes the declared spelling, any other is normalised like a
/// title.
pub fn field_set(fields: &[String], known: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = fields
        .iter()
        .map(|f| {
            let n = normalise_title(f);
            known
                .iter()
                .find(|k| normalise_title(k) == n)
                .map_or(n, |k| (*k).to_owned())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What a demand is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A catalog entry, by id.
    Dataset(String),
    /// Data the catalog does not list, by title (collapsed, as first written).
    Title(String),
}

/// The catalog entry a demand names, as [`resolve`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed<'a> {
    /// Open to anyone (unconditional) and not closed.
    pub open: bool,
    /// Its declared field names.
    pub fields: &'a [&'a str],
}

/// The target and field set of a checked demand, given the catalog entry whose id is the
/// trimmed `dataset` (`None` when no entry has that id): a `more-fields` demand needs a catalog
/// entry; an `open-dataset` demand names an entry that is not open to anyone, or a title.
pub fn resolve(d: &NewDemand, listed: Option<Listed<'_>>) -> Result<(Target, Vec<String>), String> {
    let name = d.dataset.trim();
    match (d.kind, listed) {
        (Kind::MoreFields, None) => Err(format!(
            "unknown dataset {name:?}: more fields can be asked of a catalog entry only (an open-dataset \
             demand names data the catalog does not list)"
        )),
        (Kind::MoreFields, Some(l)) => Ok((Target::Dataset(name.to_owned()), field_set(&d.fields, l.fields))),
        (Kind::OpenDataset, Some(l)) if l.open => Err(format!(
            "dataset {name:?} is already open to anyone; ask for more fields of it instead"
        )),
        (Kind::OpenDataset, Some(_)) => Ok((Target::Dataset(name.to_owned()), Vec::new())),
        (Kind::OpenDataset, None) => Ok((Target::Title(collapse(name)), Vec::new())),
    }
}

/// The merge key: demands with the same key are one entry. A SHA-256 (hex) of the kind, the
/// target (`id:` and the catalog id, or `title:` and the [`normalise_title`]d title) and the
/// sorted field set, so it indexes whatever its length.
pub fn merge_key(kind: Kind, target: &Target, fields: &[String]) -> String {
    let target = match target {
        Target::Dataset(id) => format!("id:{id}"),
        Target::Title(t) => format!("title:{}", normalise_title(t)),
    };
    let mut h = Sha256::new();
    for part in [kind.as_str(), &target]
        .into_iter()
        .chain(fields.iter().map(String::as_str))
    {
        // Length-prefixed, so no two different lists give the same bytes.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `POST /admin/demands/<id>/answer`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAnswer {
    /// Planned, opened or refused.
    pub status: AnswerStatus,
    /// `planned`: the day it will be opened (today or later, required); `opened`: the day it
    /// was opened (today or earlier, optional); `refused`: none.
    #[serde(default)]
    pub date: Option<String>,
    /// Why (public, required).
    pub reason: String,
}

/// An answer's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerStatus {
    /// To be opened by the date.
    Planned,
    /// Opened.
    Opened,
    /// Refused.
    Refused,
}

impl AnswerStatus {
    /// The entry's status once answered so.
    pub fn status(self) -> Status {
        match self {
            Self::Planned => Status::Planned,
            Self::Opened => Status::Opened,
            Self::Refused => Status::Refused,
        }
    }
}

impl NewAnswer {
    /// Checks the reason and the date against the status; `today` is `YYYY-MM-DD` (UTC).
    pub fn check(&self, today: &str) -> Result<(), String> {
        text("reason", &self.reason, MAX_REASON, true, true)?;
        if let Some(d) = &self.date {
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            let digits = d.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
            if d.len() != 10 || !digits || time::Date::parse(d, &fmt).is_err() {
                return Err(format!("date {d:?} is not a day (YYYY-MM-DD)"));
            }
        }
        match (self.status, self.date.as_deref()) {
            (AnswerStatus::Planned, None) => Err("a planned answer needs the date it will be opened".into()),
            (AnswerStatus::Planned, Some(d)) if d < today => {
                Err(format!("the planned date {d} is in the past"))
            }
            (AnswerStatus::Opened, Some(d)) if d > today => {
                Err(format!("the date opened {d} is in the future: answer planned"))
            }
            (AnswerStatus::Refused, Some(_)) => Err("a refusal carries no date".into()),
            _ => Ok(()),
        }
    }

    /// The reason recorded in the change log: the status, the date and the reason.
    pub fn logged(&self) -> String {
        let status = self.status.status().as_str();
        match &self.date {
            Some(d) => format!("{status} {d}: {}", self.reason),
            None => format!("{status}: {}", self.reason),
        }
    }
}

/// An entry's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Planned, opened or refused.
    pub status: AnswerStatus,
    /// The date planned or opened.
    pub date: Option<String>,
    /// Why.
    pub reason: String,
    /// When it was answered (RFC 3339).
    pub answered_at: String,
    /// The administrator who answered (administrators only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub answered_by: Option<String>,
}

/// One filing of an entry (administrators only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The requester's reason.
    pub why: String,
    /// The requester's contact; may be empty.
    pub contact: String,
    /// When it was filed (RFC 3339).
    pub filed_at: String,
}

/// An entry as administrators see it: every request with its why and contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemandRecord {
    /// Entry id.
    pub id: String,
    /// Open a dataset or more fields.
    pub kind: Kind,
    /// The catalog id, when it names a catalog entry.
    pub dataset: Option<String>,
    /// The title, when it names data the catalog does not list.
    pub title: Option<String>,
    /// The fields asked for (more-fields).
    pub fields: Vec<String>,
    /// Requests merged into it.
    pub count: u64,
    /// When the first was filed.
    pub first_filed_at: String,
    /// When the last was filed.
    pub last_filed_at: String,
    /// `open` until answered, then the answer's status.
    pub status: Status,
    /// The answer.
    pub answer: Option<Answer>,
    /// The requests, oldest first.
    pub requests: Vec<Request>,
}

/// An entry of the public list: no why, no contact, no administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicDemand {
    /// Entry id.
    pub id: String,
    /// Open a dataset or more fields.
    pub kind: Kind,
    /// The catalog id, when it names a catalog entry.
    pub dataset: Option<String>,
    /// The title, when it names data the catalog does not list.
    pub title: Option<String>,
    /// The fields asked for.
    pub fields: Vec<String>,
    /// Requests merged into it.
    pub count: u64,
    /// The day the first was filed (YYYY-MM-DD).
    pub first_filed_on: String,
    /// The day the last was filed.
    pub last_filed_on: String,
    /// `open` until answered, then the answer's status.
    pub status: Status,
    /// The answer, without who gave it.
    pub answer: Option<Answer>,
}

impl From<DemandRecord> for PublicDemand {
    fn from(r: DemandRecord) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            dataset: r.dataset,
            title: r.title,
            fields: r.fields,
            count: r.count,
            first_filed_on: r.first_filed_at.chars().take(10).collect(),
            last_filed_on: r.last_filed_at.chars().take(10).collect(),
            status: r.status,
            answer: r.answer.map(|a| Answer {
                answered_by: None,
                ..a
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(kind: Kind, dataset: &str, fields: &[&str]) -> NewDemand {
        NewDemand {
            kind,
            dataset: dataset.into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            why: "for a transit app".into(),
            contact: String::new(),
        }
    }

    fn key(d: &NewDemand, listed: Option<Listed<'_>>) -> String {
        let (target, fields) = resolve(d, listed).unwrap();
        merge_key(d.kind, &target, &fields)
    }

    #[test]
    fn titles_merge_whatever_their_case_and_spacing() {
        assert_eq!(
            normalise_title("  Bus\tStop \n  Locations "),
            "bus stop locations"
        );
        assert_eq!(collapse("  Bus\tStop   Locations "), "Bus Stop Locations");
        let a = demand(Kind::OpenDataset, "Bus  Stop Locations ", &[]);
        let b = demand(Kind::OpenDataset, "bus stop\tlocations", &[]);
        assert_eq!(key(&a, None), key(&b, None));
        assert_ne!(
            key(&a, None),
            key(&demand(Kind::OpenDataset, "bus stops", &[]), None)
        );
        // The title as first written is what the list shows.
        assert_eq!(
            resolve(&a, None).unwrap().0,
            Target::Title("Bus Stop Locations".into())
        );
    }

    #[test]
    fn field_sets_merge_whatever_their_order_case_and_repeats() {
        let known = ["id", "District", "adopter_mobile"];
        let listed = Some(Listed {
            open: false,
            fields: &known,
        });
        assert_eq!(
            field_set(
                &["install date ".into(), "district".into(), "District".into()],
                &known
            ),
            ["District", "install date"]
        );
        let a = demand(Kind::MoreFields, "hydrants", &["district", "Install_Date"]);
        let b = demand(
            Kind::MoreFields,
            " hydrants ",
            &["install_date", " DISTRICT", "district"],
        );
        assert_eq!(key(&a, listed), key(&b, listed));
        let c = demand(Kind::MoreFields, "hydrants", &["district"]);
        assert_ne!(key(&a, listed), key(&c, listed));
        // A catalog id and a title that reads the same are different targets, as are the kinds.
        let open = demand(Kind::OpenDataset, "hydrants", &[]);
        assert_ne!(key(&open, listed), key(&open, None));
        assert_ne!(merge_key(Kind::OpenDataset, &Target::Dataset("d".into()), &[]), {
            merge_key(Kind::MoreFields, &Target::Dataset("d".into()), &[])
        });
        // Length prefixes: moving text between parts changes the key.
        assert_ne!(
            merge_key(Kind::MoreFields, &Target::Dataset("d".into()), &["ab".into()]),
            merge_key(
                Kind::MoreFields,
                &Target::Dataset("d".into()),
                &["a".into(), "b".into()]
            )
        );
    }

    #[test]
    fn targets_are_checked_against_the_catalog() {
        let fields: [&str; 0] = [];
        let conditional = Listed {
            open: false,
            fields: &fields,
        };
        let open = Listed {
            open: true,
            fields: &fields,
        };
        let more = demand(Kind::MoreFields, "nope", &["x"]);
        assert!(resolve(&more, None).unwrap_err().contains("unknown dataset"));
        assert!(resolve(&demand(Kind::OpenDataset, "stations", &[]), Some(open))
            .unwrap_err()
            .contains("already open"));
        assert_eq!(
            resolve(&demand(Kind::OpenDataset, "hydrants", &[]), Some(conditional))
                .unwrap()
                .0,
            Target::Dataset("hydrants".into())
        );
        assert!(resolve(&demand(Kind::MoreFields, "stations", &["x"]), Some(open)).is_ok());
    }

    #[test]
    fn requests_are_checked_for_size_characters_and_fields() {
        let ok = demand(Kind::MoreFields, "hydrants", &["district"]);
        assert_eq!(ok.check(), Ok(()));
        let bad = |f: &dyn Fn(&mut NewDemand)| {
            let mut d = ok.clone();
            f(&mut d);
            d.check().unwrap_err()
        };
        assert!(bad(&|d| d.why = " \n".into()).contains("why"));
        assert!(bad(&|d| d.why = "x".repeat(MAX_WHY + 1)).contains("why"));
        assert!(bad(&|d| d.fields.clear()).contains("at least one field"));
        assert!(bad(&|d| d.fields = vec![" ".into()]).contains("field"));
        assert!(bad(&|d| d.fields = vec!["x".into(); MAX_FIELDS + 1]).contains("fields"));
        assert!(bad(&|d| d.dataset = "a\nb".into()).contains("dataset"));
        assert!(bad(&|d| d.dataset = String::new()).contains("dataset"));
        assert!(bad(&|d| d.contact = "\u{0}".into()).contains("contact"));
        assert!(bad(&|d| d.kind = Kind::OpenDataset).contains("fields are for"));
        let mut multi = ok.clone();
        multi.why = "line one\nline two\tend".into();
        assert_eq!(multi.check(), Ok(()));
        assert_eq!(form_fields(" a, b\r\nc,, ").unwrap(), ["a", "b", "c"]);
        assert!(form_fields(&"x".repeat(MAX_FORM_FIELDS + 1)).is_err());
        assert!(form_fields("a,\u{b}b").is_err());
    }

    #[test]
    fn answers_carry_the_dates_their_status_needs() {
        let a = |status, date: Option<&str>| NewAnswer {
            status,
            date: date.map(str::to_owned),
            reason: "in the 2027 list".into(),
        };
        let today = "2026-12-01";
        assert_eq!(a(AnswerStatus::Planned, Some("2027-03-01")).check(today), Ok(()));
        assert_eq!(a(AnswerStatus::Planned, Some(today)).check(today), Ok(()));
        assert!(a(AnswerStatus::Planned, None).check(today).is_err());
        assert!(a(AnswerStatus::Planned, Some("2026-11-30")).check(today).is_err());
        assert!(a(AnswerStatus::Planned, Some("2027-02-30")).check(today).is_err());
        assert!(a(AnswerStatus::Planned, Some("2027-3-01")).check(today).is_err());
        assert!(a(AnswerStatus::Planned, Some("+999-03-01")).check(today).is_err());
        assert_eq!(a(AnswerStatus::Opened, None).check(today), Ok(()));
        assert_eq!(a(AnswerStatus::Opened, Some("2026-11-02")).check(today), Ok(()));
        assert!(a(AnswerStatus::Opened, Some("2027-01-01")).check(today).is_err());
        assert_eq!(a(AnswerStatus::Refused, None).check(today), Ok(()));
        assert!(a(AnswerStatus::Refused, Some(today)).check(today).is_err());
        let mut blank = a(AnswerStatus::Refused, None);
        blank.reason = " ".into();
        assert!(blank.check(today).is_err());
        assert_eq!(
            a(AnswerStatus::Planned, Some("2027-03-01")).logged(),
            "planned 2027-03-01: in the 2027 list"
        );
        for s in ["open", "planned", "opened", "refused"] {
            assert_eq!(Status::parse(s).map(Status::as_str), Some(s));
        }
        assert_eq!(Kind::parse("more-fields"), Some(Kind::MoreFields));
        // An answer is an admin change that wakes no gateway.
        let answer = crate::action::Action::DemandAnswer;
        assert_eq!(answer.as_str(), "demand.answer");
        assert!(!answer.alters_snapshot(None));
    }
}

//! Applications for conditional data (issue 16): a licensee asks for a dataset under a
//! scenario, with the fields, period and volume it needs, accepting the current version of the
//! dataset's data-use agreement; the owning agency approves it (a grant, through the same
//! validation and fusion-rule check as `POST /admin/licences`, possibly narrower than asked),
//! rejects it, or asks for more, within its review deadline in working days.
//!
//! The routes are in [`crate::application_api`], the tables in the store
//! (`store/applications.rs`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Date, Duration, OffsetDateTime, Weekday};

/// Review deadline of an agency that declared none, in working days.
pub const DEFAULT_REVIEW_DAYS: u32 = 10;
/// Longest review deadline an agency may declare, in working days.
pub const MAX_REVIEW_DAYS: u32 = 120;
/// Longest purpose and message, in characters.
pub const MAX_TEXT_CHARS: usize = 4_000;
/// Longest agreement text, in characters.
pub const MAX_AGREEMENT_CHARS: usize = 200_000;
/// Most fields one application may ask for.
pub const MAX_FIELDS: usize = 200;
/// Most open applications of one licensee.
pub const MAX_OPEN_PER_LICENSEE: u64 = 100;
/// Longest period an application may ask for, in days.
pub const MAX_PERIOD_DAYS: i64 = 5 * 366;

/// Where an application stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Waiting for the agency.
    Open,
    /// The agency asked for more; waiting for the applicant (the deadline does not run).
    MoreInfo,
    /// Granted: `licence` names the licence.
    Approved,
    /// Refused, with a reason.
    Rejected,
}

impl Status {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::MoreInfo => "more-info",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    /// Parses [`Status::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Open, Self::MoreInfo, Self::Approved, Self::Rejected]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// The version of a data-use agreement an applicant accepts: its number and the SHA-256 of
/// its text (hex), as `GET /v1/agreements/<dataset>` gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreementRef {
    /// Version number (1, 2, …).
    pub version: u32,
    /// SHA-256 of the text, lower-case hex.
    pub digest: String,
}

/// A version of a dataset's data-use agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    /// The dataset it governs.
    pub dataset: String,
    /// Version number, from 1.
    pub version: u32,
    /// SHA-256 of `text`, lower-case hex.
    pub digest: String,
    /// The agreement.
    pub text: String,
    /// When it was published (RFC 3339).
    pub published_at: String,
}

/// `POST /admin/agreements`: a new version of a dataset's agreement.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgreement {
    /// The dataset.
    pub dataset: String,
    /// The text (1 to [`MAX_AGREEMENT_CHARS`] characters).
    pub text: String,
    /// Why (recorded, required).
    pub reason: String,
}

/// The SHA-256 of an agreement's text, lower-case hex.
pub fn digest(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// `POST /v1/applications`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApplication {
    /// The dataset (conditional data in the catalog).
    pub dataset: String,
    /// The declared scenario (registered, covering the dataset).
    pub scenario: String,
    /// What the data will be used for, in the applicant's words.
    pub purpose: String,
    /// The fields asked for.
    pub fields: Vec<String>,
    /// Start of the period; when approved when absent.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_from: Option<OffsetDateTime>,
    /// End of the period (exclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub valid_until: OffsetDateTime,
    /// Expected records per day.
    pub volume: u64,
    /// The agreement version accepted.
    pub agreement: AgreementRef,
    /// For a renewal: the licence renewed (the applicant's, for the same dataset).
    #[serde(default)]
    pub renews: Option<String>,
}

/// One message between the applicant and the agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// When (RFC 3339).
    pub at: String,
    /// `applicant` or `agency`.
    pub from: String,
    /// What was said.
    pub text: String,
}

/// The acceptance of an agreement, stored with the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    /// The licensee that accepted it.
    pub licensee: String,
    /// Version accepted.
    pub version: u32,
    /// Its digest.
    pub digest: String,
    /// When (RFC 3339).
    pub accepted_at: String,
}

/// An application as stored and shown to administrators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationRecord {
    /// `app-…`.
    pub id: String,
    /// The applicant.
    pub licensee: String,
    /// The dataset.
    pub dataset: String,
    /// Its owning agency when filed (`null`: none, city-wide administrators decide).
    pub agency: Option<String>,
    /// The scenario.
    pub scenario: String,
    /// The purpose, in the applicant's words.
    pub purpose: String,
    /// Fields asked for.
    pub fields: Vec<String>,
    /// Period asked for: start (RFC 3339) or `null` for "when approved".
    pub valid_from: Option<String>,
    /// Period asked for: end (RFC 3339).
    pub valid_until: String,
    /// Expected records per day.
    pub volume: u64,
    /// The licence this renews, if any.
    pub renews: Option<String>,
    /// The agreement accepted.
    pub agreement: Acceptance,
    /// Where it stands.
    pub status: Status,
    /// When it was filed (RFC 3339).
    pub filed_at: String,
    /// The day (UTC) by which the agency is to decide; `null` while it waits for the
    /// applicant or once decided.
    pub due_by: Option<String>,
    /// When decided (RFC 3339).
    pub decided_at: Option<String>,
    /// The administrator who decided (not shown to the applicant).
    pub decided_by: Option<String>,
    /// The decision's reason (shown to the applicant).
    pub decision_reason: Option<String>,
    /// The licence granted.
    pub licence: Option<String>,
    /// Questions and answers, oldest first.
    pub messages: Vec<Message>,
}

impl ApplicationRecord {
    /// Whether it is open past its deadline on `today`.
    pub fn overdue(&self, today: Date) -> bool {
        self.status == Status::Open
            && self
                .due_by
                .as_deref()
                .and_then(parse_day)
                .is_some_and(|due| today > due)
    }

    /// What the applicant sees: everything but the deciding administrator.
    pub fn for_applicant(&self) -> Self {
        Self {
            decided_by: None,
            ..self.clone()
        }
    }
}

/// A `YYYY-MM-DD` day.
pub fn parse_day(s: &str) -> Option<Date> {
    Date::parse(s, &time::macros::format_description!("[year]-[month]-[day]")).ok()
}

/// `YYYY-MM-DD`.
pub fn format_day(d: Date) -> String {
    d.format(&time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// The day `days` working days (Monday to Friday) after `from`.
pub fn add_working_days(from: Date, days: u32) -> Date {
    let mut d = from;
    let mut left = days;
    while left > 0 {
        d += Duration::days(1);
        if !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) {
            left -= 1;
        }
    }
    d
}

/// What is wrong with a text member: empty, white space only, too long or with control
/// characters (other than line breaks and tabs).
pub fn text_problem(what: &str, s: &str, max: usize) -> Option<String> {
    if s.trim().is_empty() {
        return Some(format!("{what} must not be empty"));
    }
    if s.chars().count() > max {
        return Some(format!("{what} must be at most {max} characters"));
    }
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Some(format!("{what} must not hold control characters"));
    }
    None
}

impl NewApplication {
    /// What is wrong with its own members, if anything (the dataset, scenario, fields,
    /// agreement and renewed licence are checked against the store).
    pub fn problem(&self, now: OffsetDateTime) -> Option<String> {
        if let Some(p) = text_problem("purpose", &self.purpose, MAX_TEXT_CHARS) {
            return Some(p);
        }
        if self.fields.is_empty() || self.fields.len() > MAX_FIELDS {
            return Some(format!("ask for 1 to {MAX_FIELDS} fields"));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(f) = self.fields.iter().find(|f| !seen.insert(f.as_str())) {
            return Some(format!("field {f} is asked for twice"));
        }
        if self.volume == 0 {
            return Some("volume (records per day) must be at least 1".into());
        }
        let from = self.valid_from.unwrap_or(now);
        if self.valid_until <= from || self.valid_until <= now {
            return Some("valid_until must be in the future and after valid_from".into());
        }
        if self.valid_until - from > Duration::days(MAX_PERIOD_DAYS) {
            return Some(format!("the period must be at most {MAX_PERIOD_DAYS} days"));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn deadlines_count_working_days() {
        // Friday 2026-12-04 + 1 working day is Monday; + 10 is two weeks later.
        assert_eq!(add_working_days(date!(2026 - 12 - 04), 1), date!(2026 - 12 - 07));
        assert_eq!(add_working_days(date!(2026 - 12 - 04), 10), date!(2026 - 12 - 18));
        assert_eq!(add_working_days(date!(2026 - 12 - 05), 1), date!(2026 - 12 - 07));
        assert_eq!(add_working_days(date!(2026 - 12 - 01), 0), date!(2026 - 12 - 01));
        assert_eq!(format_day(date!(2026 - 01 - 02)), "2026-01-02");
        assert_eq!(parse_day("2026-01-02"), Some(date!(2026 - 01 - 02)));
        assert_eq!(parse_day("2026-1-2"), None);
    }

    fn app() -> NewApplication {
        NewApplication {
            dataset: "hydrants".into(),
            scenario: "s".into(),
            purpose: "pricing adoption cover".into(),
            fields: vec!["id".into(), "district".into()],
            valid_from: None,
            valid_until: datetime!(2027-06-01 0:00 UTC),
            volume: 100,
            agreement: AgreementRef {
                version: 1,
                digest: digest("text"),
            },
            renews: None,
        }
    }

    #[test]
    fn applications_are_checked() {
        let now = datetime!(2026-12-01 0:00 UTC);
        assert_eq!(app().problem(now), None);
        let bad = [
            NewApplication {
                purpose: " ".into(),
                ..app()
            },
            NewApplication {
                fields: vec![],
                ..app()
            },
            NewApplication {
                fields: vec!["id".into(), "id".into()],
                ..app()
            },
            NewApplication { volume: 0, ..app() },
            NewApplication {
                valid_until: now,
                ..app()
            },
            NewApplication {
                valid_until: datetime!(2035-01-01 0:00 UTC),
                ..app()
            },
            NewApplication {
                purpose: "a\u{0}b".into(),
                ..app()
            },
        ];
        for a in bad {
            assert!(a.problem(now).is_some(), "{a:?}");
        }
    }

    #[test]
    fn only_an_open_application_past_its_day_is_overdue() {
        let mut r = ApplicationRecord {
            id: "app-1".into(),
            licensee: "acme".into(),
            dataset: "d".into(),
            agency: None,
            scenario: "s".into(),
            purpose: "p".into(),
            fields: vec!["id".into()],
            valid_from: None,
            valid_until: "2027-01-01T00:00:00Z".into(),
            volume: 1,
            renews: None,
            agreement: Acceptance {
                licensee: "acme".into(),
                version: 1,
                digest: digest("t"),
                accepted_at: String::new(),
            },
            status: Status::Open,
            filed_at: String::new(),
            due_by: Some("2026-12-10".into()),
            decided_at: None,
            decided_by: Some("alice".into()),
            decision_reason: None,
            licence: None,
            messages: vec![],
        };
        assert!(!r.overdue(date!(2026 - 12 - 10)));
        assert!(r.overdue(date!(2026 - 12 - 11)));
        r.status = Status::MoreInfo;
        assert!(!r.overdue(date!(2026 - 12 - 11)));
        assert_eq!(r.for_applicant().decided_by, None);
        assert_eq!(Status::parse("more-info"), Some(Status::MoreInfo));
        assert_eq!(digest("").len(), 64);
    }
}

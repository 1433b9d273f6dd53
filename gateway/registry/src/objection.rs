//! Objections and corrections from the public (权益保护, 纠错): the filing, its checks, its
//! states and the views of it each audience may see.
//!
//! Anyone may object to a record that infringes their privacy or trade secrets, or report a
//! record wrong, without an account. The owning agency upholds or rejects it. An upheld
//! objection suppresses the record at every gateway until it is withdrawn; an upheld
//! correction marks the record disputed until it is resolved. The marks travel in the
//! snapshot ([`sluice_policy::objection::RecordMarks`]).

use serde::{Deserialize, Serialize};

/// Longest `reason` in characters.
pub const MAX_REASON: usize = 4_000;
/// Longest `evidence` in characters.
pub const MAX_EVIDENCE: usize = 8_000;
/// Longest `contact` in characters.
pub const MAX_CONTACT: usize = 320;
/// Longest `record_key` in characters.
pub const MAX_RECORD_KEY: usize = 256;

/// What the filer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The record infringes the filer's rights: upheld, it is suppressed.
    Objection,
    /// The record is wrong: upheld, it is marked disputed.
    Correction,
}

impl Kind {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Objection => "objection",
            Self::Correction => "correction",
        }
    }

    /// From the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "objection" => Some(Self::Objection),
            "correction" => Some(Self::Correction),
            _ => None,
        }
    }
}

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Filed, not decided.
    Open,
    /// Decided for the filer: the record is suppressed (objection) or disputed (correction).
    Upheld,
    /// Decided against the filer: nothing changes.
    Rejected,
    /// An upheld objection's suppression was withdrawn.
    Withdrawn,
    /// An upheld correction was resolved (the agency corrected or confirmed the record).
    Resolved,
}

impl Status {
    /// The name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Upheld => "upheld",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
            Self::Resolved => "resolved",
        }
    }

    /// From the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Open,
            Self::Upheld,
            Self::Rejected,
            Self::Withdrawn,
            Self::Resolved,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// An administrator's decision on a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Open → upheld.
    Uphold,
    /// Open → rejected.
    Reject,
    /// An upheld objection → withdrawn: the record is served again.
    Withdraw,
    /// An upheld correction → resolved: the dispute mark goes.
    Resolve,
}

impl Decision {
    /// From the route's last segment.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "uphold" => Some(Self::Uphold),
            "reject" => Some(Self::Reject),
            "withdraw" => Some(Self::Withdraw),
            "resolve" => Some(Self::Resolve),
            _ => None,
        }
    }

    /// The state a case of `kind` in `from` moves to, or why it cannot.
    pub fn next(self, kind: Kind, from: Status) -> Result<Status, String> {
        match (self, kind, from) {
            (Self::Uphold, _, Status::Open) => Ok(Status::Upheld),
            (Self::Reject, _, Status::Open) => Ok(Status::Rejected),
            (Self::Withdraw, Kind::Objection, Status::Upheld) => Ok(Status::Withdrawn),
            (Self::Resolve, Kind::Correction, Status::Upheld) => Ok(Status::Resolved),
            (Self::Withdraw, Kind::Correction, _) => {
                Err("a correction is resolved, not withdrawn".to_owned())
            }
            (Self::Resolve, Kind::Objection, _) => Err("an objection is withdrawn, not resolved".to_owned()),
            (_, _, from) => Err(format!("the case is {}", from.as_str())),
        }
    }
}

/// `POST /v1/objections`: a filing, as JSON or as the public form's fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewObjection {
    /// The dataset holding the record.
    pub dataset: String,
    /// The record's key (the dataset's `record_key` value).
    pub record_key: String,
    /// Objection or correction.
    pub kind: Kind,
    /// What is wrong, in the filer's words.
    pub reason: String,
    /// Supporting evidence (text, links); may be empty.
    #[serde(default)]
    pub evidence: String,
    /// How the agency can reach the filer; shown to administrators only. May be empty.
    #[serde(default)]
    pub contact: String,
}

impl NewObjection {
    /// Checks sizes and characters (the dataset is checked against the catalog by the
    /// handler).
    pub fn check(&self) -> Result<(), String> {
        let text = |name: &str, v: &str, max: usize, required: bool| {
            if required && v.trim().is_empty() {
                return Err(format!("{name} must not be empty"));
            }
            if v.chars().count() > max {
                return Err(format!("{name} is longer than {max} characters"));
            }
            if v.chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            {
                return Err(format!("{name} holds control characters"));
            }
            Ok(())
        };
        text("record_key", &self.record_key, MAX_RECORD_KEY, true)?;
        if self.record_key.chars().any(char::is_control) {
            return Err("record_key holds control characters".to_owned());
        }
        text("reason", &self.reason, MAX_REASON, true)?;
        text("evidence", &self.evidence, MAX_EVIDENCE, false)?;
        text("contact", &self.contact, MAX_CONTACT, false)
    }
}

/// A case as administrators see it (the filer's contact included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectionRecord {
    /// Tracking id (random; knowing it is what lets a filer follow the case).
    pub id: String,
    /// Dataset id.
    pub dataset: String,
    /// The record's key.
    pub record_key: String,
    /// Objection or correction.
    pub kind: Kind,
    /// The filer's reason.
    pub reason: String,
    /// The filer's evidence.
    pub evidence: String,
    /// The filer's contact.
    pub contact: String,
    /// Where the case stands.
    pub status: Status,
    /// When it was filed (RFC 3339).
    pub filed_at: String,
    /// When it was upheld or rejected.
    pub decided_at: Option<String>,
    /// The administrator who decided.
    pub decided_by: Option<String>,
    /// The decision's reason (shown to the filer).
    pub decision_reason: Option<String>,
    /// When an upheld case was withdrawn or resolved.
    pub closed_at: Option<String>,
    /// Why.
    pub closed_reason: Option<String>,
}

/// A case as its filer sees it at its status URL: no contact, no evidence, no record key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicStatus<'a> {
    /// Tracking id.
    pub id: &'a str,
    /// Dataset id.
    pub dataset: &'a str,
    /// Objection or correction.
    pub kind: Kind,
    /// Where the case stands.
    pub status: Status,
    /// When it was filed.
    pub filed_at: &'a str,
    /// When it was decided.
    pub decided_at: Option<&'a str>,
    /// The decision's reason.
    pub decision_reason: Option<&'a str>,
    /// When an upheld case was withdrawn or resolved.
    pub closed_at: Option<&'a str>,
}

impl<'a> From<&'a ObjectionRecord> for PublicStatus<'a> {
    fn from(r: &'a ObjectionRecord) -> Self {
        Self {
            id: &r.id,
            dataset: &r.dataset,
            kind: r.kind,
            status: r.status,
            filed_at: &r.filed_at,
            decided_at: r.decided_at.as_deref(),
            decision_reason: r.decision_reason.as_deref(),
            closed_at: r.closed_at.as_deref(),
        }
    }
}

/// A line of the public objection register: decided cases, without personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterEntry {
    /// Dataset id.
    pub dataset: String,
    /// Objection or correction.
    pub kind: Kind,
    /// The decision and where the case stands now (upheld, rejected, withdrawn, resolved).
    pub status: Status,
    /// The day it was decided (YYYY-MM-DD).
    pub decided_on: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_move_only_along_their_kind_s_path() {
        use Decision::*;
        assert_eq!(Uphold.next(Kind::Objection, Status::Open), Ok(Status::Upheld));
        assert_eq!(Reject.next(Kind::Correction, Status::Open), Ok(Status::Rejected));
        assert_eq!(
            Withdraw.next(Kind::Objection, Status::Upheld),
            Ok(Status::Withdrawn)
        );
        assert_eq!(
            Resolve.next(Kind::Correction, Status::Upheld),
            Ok(Status::Resolved)
        );
        assert!(Withdraw.next(Kind::Correction, Status::Upheld).is_err());
        assert!(Resolve.next(Kind::Objection, Status::Upheld).is_err());
        assert!(Uphold.next(Kind::Objection, Status::Rejected).is_err());
        assert!(Reject.next(Kind::Objection, Status::Upheld).is_err());
        assert!(Withdraw.next(Kind::Objection, Status::Open).is_err());
        for s in ["open", "upheld", "rejected", "withdrawn", "resolved"] {
            assert_eq!(Status::parse(s).map(Status::as_str), Some(s));
        }
    }

    #[test]
    fn filings_are_checked_for_size_and_control_characters() {
        let ok = NewObjection {
            dataset: "d".into(),
            record_key: "HY-1".into(),
            kind: Kind::Objection,
            reason: "my address\nis shown".into(),
            evidence: String::new(),
            contact: String::new(),
        };
        assert_eq!(ok.check(), Ok(()));
        let bad = |f: &dyn Fn(&mut NewObjection)| {
            let mut o = ok.clone();
            f(&mut o);
            o.check().unwrap_err()
        };
        assert!(bad(&|o| o.reason = " ".into()).contains("reason"));
        assert!(bad(&|o| o.record_key = "a\nb".into()).contains("record_key"));
        assert!(bad(&|o| o.contact = "x".repeat(MAX_CONTACT + 1)).contains("contact"));
        assert!(bad(&|o| o.evidence = "\u{0}".into()).contains("evidence"));
    }
}

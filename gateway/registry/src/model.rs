//! The registry's records as the admin API sends and receives them.

use serde::{Deserialize, Serialize};
use sluice_policy::catalog::DatasetSpec;
use sluice_policy::classify::OpenCategory;

/// An approved enterprise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseeRecord {
    /// Identifier, as in its certificate's `urn:sluice:licensee:<id>`.
    pub id: String,
    /// Registered name.
    pub name: String,
    /// Unified social credit code (GB 32100), check character verified.
    pub credit_code: String,
    /// When it was registered (RFC 3339).
    #[serde(default)]
    pub created_at: String,
}

/// A catalog entry kept by the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// The dataset as its agency declares it (id, title, owner, grades, fields, version…).
    pub spec: DatasetSpec,
    /// Open category of the dataset as a whole under the default rules.
    pub open_category: OpenCategory,
    /// Closed by the emergency switch.
    pub closed: bool,
    /// The registered agency that owns it (its administrators decide about it); `null` when
    /// it names none (city-wide administrators only).
    #[serde(default)]
    pub agency: Option<String>,
    /// For an entry not yet open (non-open, or closed) marked under evaluation: the date of
    /// its next evaluation (`YYYY-MM-DD`); dropped when the entry becomes open.
    #[serde(default)]
    pub next_evaluation: Option<String>,
}

/// What a violation leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Recorded and published; access continues.
    Warn,
    /// Access restricted: the licensee is refused at every gateway.
    Restrict,
    /// Access closed: the licensee is refused at every gateway.
    Close,
    /// The licence a risk alert names is suspended (recorded by the registry for a gateway's
    /// `suspend` alert); the licensee's other licences continue.
    Suspend,
}

impl Measure {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warn => "warn",
            Self::Restrict => "restrict",
            Self::Close => "close",
            Self::Suspend => "suspend",
        }
    }

    /// Parses [`Measure::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "warn" => Some(Self::Warn),
            "restrict" => Some(Self::Restrict),
            "close" => Some(Self::Close),
            "suspend" => Some(Self::Suspend),
            _ => None,
        }
    }

    /// Whether the licensee is refused at the gateways (`suspend` refuses one licence, by
    /// its status, not the licensee).
    pub fn restricts(self) -> bool {
        match self {
            Self::Restrict | Self::Close => true,
            Self::Warn | Self::Suspend => false,
        }
    }
}

/// A recorded violation, as published in the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViolationRecord {
    /// Identifier.
    pub id: String,
    /// The licensee.
    pub licensee: String,
    /// What happened.
    pub what: String,
    /// When it was recorded (RFC 3339).
    pub at: String,
    /// The measure taken.
    pub measure: Measure,
    /// Why this measure.
    pub reason: String,
    /// When the measure was lifted (RFC 3339); `null` while it is in force.
    #[serde(default)]
    pub lifted_at: Option<String>,
    /// Why it was lifted.
    #[serde(default)]
    pub lifted_reason: Option<String>,
}

/// One administrative change: who, when, what, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminChange {
    /// The change's number: every change takes the next. A change that altered the snapshot
    /// made it the snapshot revision too.
    pub revision: u64,
    /// Admin id from the certificate (`urn:sluice:admin:<name>`).
    pub admin: String,
    /// When (RFC 3339).
    pub at: String,
    /// What: an action name such as `licence.suspend`.
    pub action: String,
    /// The object acted on (licence id, dataset id…).
    pub target: String,
    /// Why.
    pub reason: String,
}

/// `POST /admin/licensees`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLicensee {
    /// Identifier (`[A-Za-z0-9._-]{1,64}`).
    pub id: String,
    /// Registered name.
    pub name: String,
    /// Unified social credit code.
    pub credit_code: String,
    /// Why (recorded).
    #[serde(default)]
    pub reason: String,
}

/// `POST /admin/licences`: a grant. Status starts active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// Licence id; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Licensee id (must be registered).
    pub licensee: String,
    /// Dataset id (must be in the catalog).
    pub dataset: String,
    /// Declared scenario.
    pub scenario: String,
    /// Allowed fields and their masking rules.
    pub fields: std::collections::BTreeMap<String, sluice_policy::mask::MaskRule>,
    /// Optional row filter, parsed when the grant is checked (a syntax error is `invalid`,
    /// like an unknown field, not a malformed body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_filter: Option<String>,
    /// Rate limit; the default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<sluice_policy::licence::RateLimit>,
    /// Daily quotas.
    #[serde(default)]
    pub quota: sluice_policy::licence::Quota,
    /// Start of validity; now when absent.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_from: Option<time::OffsetDateTime>,
    /// End of validity (exclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub valid_until: time::OffsetDateTime,
    /// `records` or `aggregate`.
    #[serde(default)]
    pub mode: sluice_policy::licence::Mode,
    /// What aggregate answers may hold: required by `mode = aggregate`, optional otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<sluice_policy::aggregate::AggregateAllowance>,
    /// Why (recorded).
    #[serde(default)]
    pub reason: String,
    /// Reference of the expert review that allows a grant completing a fusion rule; stored
    /// on the licence and recorded with the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expert_review: Option<String>,
}

/// Body of state changes that need only a reason.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why (recorded, required).
    #[serde(default)]
    pub reason: String,
}

/// `POST /admin/violations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewViolation {
    /// The licensee.
    pub licensee: String,
    /// What happened.
    pub what: String,
    /// Measure taken.
    pub measure: Measure,
    /// Why this measure.
    pub reason: String,
}

/// `POST /admin/datasets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDataset {
    /// The catalog entry.
    pub dataset: DatasetSpec,
    /// The registered agency that owns it; an update without it keeps the current owner.
    #[serde(default)]
    pub agency: Option<String>,
    /// Why (recorded).
    #[serde(default)]
    pub reason: String,
}

/// `POST /admin/certs/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeSerial {
    /// Certificate serial, hex (case and `:` separators ignored).
    pub serial: String,
    /// Why.
    pub reason: String,
}

/// A government agency that owns data and runs gateways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyRecord {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: String,
    /// When it was registered (RFC 3339).
    pub created_at: String,
    /// Its review deadline for applications, in working days.
    #[serde(default = "default_review_days")]
    pub review_days: u32,
}

fn default_review_days() -> u32 {
    crate::application::DEFAULT_REVIEW_DAYS
}

/// A gateway of an agency; its certificate carries `urn:sluice:gateway:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayRecord {
    /// Identifier, as in its certificate.
    pub id: String,
    /// The agency running it.
    pub agency: String,
    /// Retired gateways no longer receive snapshots.
    pub retired: bool,
    /// When it was registered (RFC 3339).
    pub created_at: String,
    /// Its data listener (`https://host[:port]`), where `sluice admin drill` probes it;
    /// `null` when not given.
    pub url: Option<String>,
}

/// A declared purpose licences are granted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioRecord {
    /// Identifier, sent by licensees in `Sluice-Scenario`.
    pub id: String,
    /// Short title.
    pub title: String,
    /// What the data is used for.
    pub description: String,
    /// The datasets it covers; empty means any.
    pub datasets: Vec<String>,
    /// When it was registered (RFC 3339).
    pub created_at: String,
}

/// `POST /admin/agencies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgency {
    /// Identifier (`[A-Za-z0-9._-]{1,64}`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Its review deadline for applications in working days (1 to
    /// [`crate::application::MAX_REVIEW_DAYS`]); [`crate::application::DEFAULT_REVIEW_DAYS`]
    /// when absent.
    #[serde(default)]
    pub review_days: Option<u32>,
    /// Why (recorded).
    #[serde(default)]
    pub reason: String,
}

/// `POST /admin/gateways`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGateway {
    /// Identifier, as in the gateway's certificate.
    pub id: String,
    /// A registered agency.
    pub agency: String,
    /// Its data listener, `https://host[:port][/base]` (see [`GatewayRecord::url`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Why (recorded).
    #[serde(default)]
    pub reason: String,
}

/// `POST /admin/scenarios`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewScenario {
    /// Identifier.
    pub id: String,
    /// Short title.
    pub title: String,
    /// What the data is used for.
    #[serde(default)]
    pub description: String,
    /// Registered datasets it covers; empty means any.
    #[serde(default)]
    pub datasets: Vec<String>,
    /// Why (recorded).
    #[serde(default)]
    pub reason: String,
}

/// One line of the monthly report.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UsageRow {
    /// Licensee id.
    pub licensee: String,
    /// Dataset id.
    pub dataset: String,
    /// Requests answered.
    pub requests: u64,
    /// Records sent.
    pub records: u64,
    /// Requests refused.
    pub refusals: u64,
    /// Differential-privacy loss spent by aggregate answers, in millionths of ε.
    #[serde(default)]
    pub epsilon_micros: u64,
    /// Gateways that reported, sorted.
    pub gateways: Vec<String>,
}

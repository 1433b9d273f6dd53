//! The administrative actions the registry records, and the one rule for which of them move
//! the snapshot revision that gateways follow ([`Action::alters_snapshot`]).

use super::model::Measure;

/// What an administrative change does; recorded in the change log by [`Action::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `licensee.add`: a licensee registered.
    LicenseeAdd,
    /// `licence.grant`: a licence granted.
    LicenceGrant,
    /// `licence.suspend`.
    LicenceSuspend,
    /// `licence.resume`.
    LicenceResume,
    /// `licence.revoke`.
    LicenceRevoke,
    /// `violation.record`: a violation recorded with a measure.
    ViolationRecord,
    /// `violation.lift`: a violation's measure lifted.
    ViolationLift,
    /// `fusion-rule.add`.
    FusionRuleAdd,
    /// `fusion-rule.remove`.
    FusionRuleRemove,
    /// `dataset.register`: a catalog entry registered or replaced.
    DatasetRegister,
    /// `dataset.close`: one dataset closed.
    DatasetClose,
    /// `dataset.open`: one dataset reopened.
    DatasetOpen,
    /// `dataset.close-all`: all conditional data closed.
    DatasetCloseAll,
    /// `dataset.open-all`: all conditional data reopened.
    DatasetOpenAll,
    /// `dataset.evaluation`: a dataset not yet open marked under evaluation with its next
    /// evaluation date.
    DatasetEvaluation,
    /// `cert.revoke`: a certificate serial revoked.
    CertRevoke,
    /// `agency.add`.
    AgencyAdd,
    /// `admin.scope`: an administrator limited to one agency's data.
    AdminScope,
    /// `admin.unscope`: an administrator's agency limit lifted (city-wide again).
    AdminUnscope,
    /// `agreement.publish`: a new version of a dataset's data-use agreement.
    AgreementPublish,
    /// `application.approve`: an application approved (its grant is a `licence.grant` of its
    /// own, in the same transaction).
    ApplicationApprove,
    /// `application.reject`.
    ApplicationReject,
    /// `application.ask`: the agency asked the applicant for more.
    ApplicationAsk,
    /// `gateway.add`.
    GatewayAdd,
    /// `gateway.retire`.
    GatewayRetire,
    /// `scenario.add`.
    ScenarioAdd,
    /// `drill.record`: an emergency drill's report recorded (`sluice admin drill`).
    DrillRecord,
    /// `objection.uphold`: an objection (the record is suppressed) or a correction (the
    /// record is disputed) upheld.
    ObjectionUphold,
    /// `objection.reject`.
    ObjectionReject,
    /// `objection.withdraw`: an upheld objection's suppression withdrawn.
    ObjectionWithdraw,
    /// `objection.resolve`: an upheld correction resolved, its dispute mark removed.
    ObjectionResolve,
    /// `risk-rule.add`: a risk rule declared.
    RiskRuleAdd,
    /// `risk-rule.remove`.
    RiskRuleRemove,
    /// `risk.alert`: a gateway's risk alert recorded (the admin is `gateway:<id>`).
    RiskAlert,
    /// `demand.answer`: an entry of the public demand list answered (planned, opened or
    /// refused), or its answer replaced.
    DemandAnswer,
}

impl Action {
    /// The name recorded in the change log, e.g. `licence.suspend`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LicenseeAdd => "licensee.add",
            Self::LicenceGrant => "licence.grant",
            Self::LicenceSuspend => "licence.suspend",
            Self::LicenceResume => "licence.resume",
            Self::LicenceRevoke => "licence.revoke",
            Self::ViolationRecord => "violation.record",
            Self::ViolationLift => "violation.lift",
            Self::FusionRuleAdd => "fusion-rule.add",
            Self::FusionRuleRemove => "fusion-rule.remove",
            Self::DatasetRegister => "dataset.register",
            Self::DatasetClose => "dataset.close",
            Self::DatasetOpen => "dataset.open",
            Self::DatasetCloseAll => "dataset.close-all",
            Self::DatasetOpenAll => "dataset.open-all",
            Self::DatasetEvaluation => "dataset.evaluation",
            Self::CertRevoke => "cert.revoke",
            Self::AgencyAdd => "agency.add",
            Self::AdminScope => "admin.scope",
            Self::AdminUnscope => "admin.unscope",
            Self::AgreementPublish => "agreement.publish",
            Self::ApplicationApprove => "application.approve",
            Self::ApplicationReject => "application.reject",
            Self::ApplicationAsk => "application.ask",
            Self::GatewayAdd => "gateway.add",
            Self::GatewayRetire => "gateway.retire",
            Self::ScenarioAdd => "scenario.add",
            Self::ObjectionUphold => "objection.uphold",
            Self::ObjectionReject => "objection.reject",
            Self::ObjectionWithdraw => "objection.withdraw",
            Self::ObjectionResolve => "objection.resolve",
            Self::DrillRecord => "drill.record",
            Self::RiskRuleAdd => "risk-rule.add",
            Self::RiskRuleRemove => "risk-rule.remove",
            Self::RiskAlert => "risk.alert",
            Self::DemandAnswer => "demand.answer",
        }
    }

    /// Whether a change can alter what a snapshot carries, and so moves the snapshot revision
    /// that gateways long-poll for. This is the one rule; the store applies it to every change
    /// it commits.
    ///
    /// A snapshot carries the licences (every state), the closed datasets, the switch closing
    /// all conditional data, the licensees restricted by an unlifted violation whose measure
    /// restricts, the revoked certificate serials, the record marks and the risk rules. So
    /// grants, licence status changes, closing and reopening, and certificate revocations move
    /// it; a violation moves it when its `measure` (given for `violation.record` and
    /// `violation.lift`, unknown counts as restricting) restricts (`suspend` does not: the
    /// licence's suspension is a change of its own). Upholding, withdrawing and resolving
    /// objections move it (the snapshot carries the record marks); rejecting one does not.
    /// Adding and removing risk rules move it (every gateway counts by them). Licensees,
    /// agencies, gateways (registration and retirement decide who may fetch a snapshot, not
    /// what it says), scenarios, fusion rules (checked at grant time only), catalog entries
    /// (gateways hold their own dataset declarations) and their next evaluation dates (an
    /// entry under evaluation is not open: nothing a gateway serves changes), drill reports (the drill's closing and
    /// reopening are changes of their own) and risk alerts (a `suspend` alert's violation and
    /// licence suspension are changes of their own) and answers to the public demand list do
    /// not: those changes are recorded in the change log, and gateways are not woken to fetch
    /// and verify a snapshot that did not change. Usage reports are not admin changes at all.
    ///
    /// The match is exhaustive on purpose: a new action must be decided here.
    pub fn alters_snapshot(self, measure: Option<Measure>) -> bool {
        match self {
            Self::LicenceGrant
            | Self::LicenceSuspend
            | Self::LicenceResume
            | Self::LicenceRevoke
            | Self::DatasetClose
            | Self::DatasetOpen
            | Self::DatasetCloseAll
            | Self::DatasetOpenAll
            | Self::CertRevoke
            | Self::ObjectionUphold
            | Self::ObjectionWithdraw
            | Self::ObjectionResolve
            | Self::RiskRuleAdd
            | Self::RiskRuleRemove => true,
            Self::ViolationRecord | Self::ViolationLift => measure.is_none_or(Measure::restricts),
            Self::LicenseeAdd
            | Self::FusionRuleAdd
            | Self::FusionRuleRemove
            | Self::DatasetRegister
            | Self::DatasetEvaluation
            | Self::AgencyAdd
            | Self::AdminScope
            | Self::AdminUnscope
            | Self::AgreementPublish
            | Self::ApplicationApprove
            | Self::ApplicationReject
            | Self::ApplicationAsk
            | Self::GatewayAdd
            | Self::GatewayRetire
            | Self::ScenarioAdd
            | Self::DrillRecord
            | Self::ObjectionReject
            | Self::RiskAlert
            | Self::DemandAnswer => false,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

//! `sluice admin …`: the administrator's command line over the registry's admin API.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use sluice_net::registry_client::{RegistryClient, Reply};
use std::path::PathBuf;
use std::process::ExitCode;

/// Connection settings and the command.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Registry URL, e.g. `https://registry.example:7443`.
    #[arg(long, env = "SLUICE_REGISTRY")]
    pub registry: String,
    /// Admin certificate (PEM).
    #[arg(long, env = "SLUICE_ADMIN_CERT")]
    pub cert: PathBuf,
    /// Admin private key (PEM).
    #[arg(long, env = "SLUICE_ADMIN_KEY")]
    pub key: PathBuf,
    /// CA certificate the registry's certificate chains to.
    #[arg(long, env = "SLUICE_CA")]
    pub ca: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// Admin commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Licensees (approved enterprises).
    #[command(subcommand)]
    Licensee(LicenseeCommand),
    /// Grant a licence.
    Grant(Box<GrantArgs>),
    /// Suspend a licence.
    Suspend(StatusArgs),
    /// Resume a suspended licence.
    Resume(StatusArgs),
    /// Revoke a licence for good.
    Revoke(StatusArgs),
    /// List licences.
    List {
        /// Only this licensee's.
        #[arg(long)]
        licensee: Option<String>,
    },
    /// Show one licence.
    Show {
        /// Licence id.
        licence: String,
    },
    /// Violations.
    #[command(subcommand)]
    Violation(ViolationCommand),
    /// Objections and corrections filed by the public: review and decide.
    #[command(subcommand)]
    Objection(ObjectionCommand),
    /// Catalog entries and the emergency switch.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Record a revoked certificate serial, enforced by gateways through the snapshot.
    RevokeCert {
        /// Serial (hex).
        serial: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// The record of administrative changes.
    Changes,
    /// Agencies (data owners).
    #[command(subcommand)]
    Agency(AgencyCommand),
    /// Agencies' gateways: only registered ones receive snapshots.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Scenarios (declared purposes) licences are granted for.
    #[command(subcommand)]
    Scenario(ScenarioCommand),
    /// Fusion rules: datasets or fields one licensee must not hold together.
    #[command(subcommand)]
    Fusion(FusionCommand),
    /// Usage reports: a month's usage, a year's evaluation.
    #[command(subcommand)]
    Report(crate::report_cli::ReportCommand),
    /// Emergency drills: close data at every gateway through the feed, measure, reopen, report.
    Drill(Box<crate::drill_cli::DrillArgs>),
    /// Risk warning: rules every gateway counts by, and the alerts gateways reported.
    #[command(subcommand)]
    Risk(crate::risk_cli::RiskCommand),
    /// Licensees' applications for conditional data: review them.
    #[command(subcommand)]
    Application(crate::application_cli::ApplicationCommand),
    /// Data-use agreements applicants accept.
    #[command(subcommand)]
    Agreement(crate::application_cli::AgreementCommand),
    /// The public demand list: requests to open data or add fields, and the answers.
    #[command(subcommand)]
    Demand(crate::demand_cli::DemandCommand),
}

/// `sluice admin agency …`.
#[derive(Debug, Subcommand)]
pub enum AgencyCommand {
    /// Register an agency.
    Add {
        /// Identifier.
        id: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// Its review deadline for applications, in working days (default 10).
        #[arg(long)]
        review_days: Option<u32>,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List agencies.
    List,
    /// Limit an administrator to one agency's data (its catalog entries, their licences and
    /// objections); city-wide administrators only.
    Limit {
        /// The administrator's id (as in its certificate).
        admin: String,
        /// The agency.
        #[arg(long)]
        agency: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Lift an administrator's agency limit (city-wide again).
    Unlimit {
        /// The administrator's id.
        admin: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// The administrators limited to an agency.
    Admins,
}

/// `sluice admin gateway …`.
#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Register a gateway (its certificate carries `urn:sluice:gateway:<id>`).
    Add {
        /// Identifier.
        id: String,
        /// The agency running it.
        #[arg(long)]
        agency: String,
        /// Its data listener, `https://host[:port]`, where `sluice admin drill` probes it.
        #[arg(long)]
        url: Option<String>,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Retire a gateway for good: it receives no further snapshots.
    Retire {
        /// Identifier.
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// List gateways.
    List,
}

/// `sluice admin scenario …`.
#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Register a scenario.
    Add {
        /// Identifier (what licensees send in `Sluice-Scenario`).
        id: String,
        /// Short title.
        #[arg(long)]
        title: String,
        /// What the data is used for.
        #[arg(long, default_value = "")]
        description: String,
        /// A dataset it covers (repeat); none means any.
        #[arg(long = "dataset")]
        datasets: Vec<String>,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List scenarios.
    List,
}

/// `sluice admin fusion …`.
#[derive(Debug, Subcommand)]
pub enum FusionCommand {
    /// Declare a rule.
    Add {
        /// Rule id.
        id: String,
        /// Member: `dataset` or `dataset:field,field` (any of those fields). Repeat (≥ 2).
        #[arg(long = "member", required = true)]
        members: Vec<String>,
        /// What the combination would reveal.
        #[arg(long, default_value = "")]
        description: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// List the rules.
    List,
    /// Remove a rule.
    Remove {
        /// Rule id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

/// `sluice admin licensee …`.
#[derive(Debug, Subcommand)]
pub enum LicenseeCommand {
    /// Register a licensee.
    Add {
        /// Identifier (as in its certificate).
        id: String,
        /// Registered name.
        #[arg(long)]
        name: String,
        /// Unified social credit code.
        #[arg(long)]
        credit_code: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List licensees.
    List,
}

/// `sluice admin grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// Licensee id.
    pub licensee: String,
    /// Dataset id.
    pub dataset: String,
    /// Scenario (declared purpose).
    pub scenario: String,
    /// What the licence allows.
    #[command(flatten)]
    pub terms: GrantTerms,
}

/// What a licence allows, as `grant` and `application approve` take it.
#[derive(Debug, Args)]
pub struct GrantTerms {
    /// Licence id (generated when absent).
    #[arg(long)]
    pub id: Option<String>,
    /// Allowed field: `name=rule[:key=value,…]`, e.g. `mobile=partial:first=3,last=4`. Repeat.
    #[arg(long = "field", required = true)]
    pub fields: Vec<String>,
    /// Row filter, e.g. `district = 'Huangpu'`.
    #[arg(long)]
    pub row_filter: Option<String>,
    /// Requests per second.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Burst above the rate.
    #[arg(long)]
    pub burst: Option<u32>,
    /// Requests per UTC day.
    #[arg(long)]
    pub requests_per_day: Option<u64>,
    /// Records per UTC day.
    #[arg(long)]
    pub records_per_day: Option<u64>,
    /// Start of validity (RFC 3339 or YYYY-MM-DD); now (or, approving, what was asked) when
    /// absent.
    #[arg(long)]
    pub from: Option<String>,
    /// End of validity (RFC 3339 or YYYY-MM-DD); required to grant, what was asked when
    /// approving without it.
    #[arg(long)]
    pub until: Option<String>,
    /// `records` or `aggregate`.
    #[arg(long, default_value = "records")]
    pub mode: String,
    /// Why.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Expert review reference allowing a grant that completes a fusion rule.
    #[arg(long)]
    pub expert_review: Option<String>,
}

/// A licence and a reason.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Licence id.
    pub licence: String,
    /// Why.
    #[arg(long)]
    pub reason: String,
}

/// `sluice admin violation …`.
#[derive(Debug, Subcommand)]
pub enum ViolationCommand {
    /// Record a violation and its measure.
    Record {
        /// Licensee id.
        licensee: String,
        /// What happened.
        #[arg(long)]
        what: String,
        /// `warn`, `restrict` or `close`.
        #[arg(long)]
        measure: String,
        /// Why this measure.
        #[arg(long)]
        reason: String,
    },
    /// List the register.
    List,
    /// Lift a violation's measure (it stays in the register).
    Lift {
        /// Violation id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

/// `sluice admin objection …`.
#[derive(Debug, Subcommand)]
pub enum ObjectionCommand {
    /// List cases, oldest first, with the filer's contact.
    List {
        /// Only cases in this state: open, upheld, rejected, withdrawn or resolved.
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one case.
    Show {
        /// Tracking id.
        id: String,
    },
    /// Uphold an open case: an objection's record is suppressed at every gateway, a
    /// correction's record is marked disputed.
    Uphold(DecideArgs),
    /// Reject an open case: nothing changes.
    Reject(DecideArgs),
    /// Withdraw an upheld objection's suppression: the record is served again.
    Withdraw(DecideArgs),
    /// Resolve an upheld correction: its dispute mark is removed.
    Resolve(DecideArgs),
}

/// A decision on a case.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Tracking id.
    pub id: String,
    /// Why (shown to the filer).
    #[arg(long)]
    pub reason: String,
}

/// `sluice admin dataset …`.
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Close a dataset (or `--all` conditional data) everywhere.
    Close(SwitchArgs),
    /// Reopen a dataset (or `--all`).
    Open(SwitchArgs),
    /// Register or replace a catalog entry from a JSON file (a `DatasetSpec`).
    Register {
        /// JSON file.
        file: PathBuf,
        /// The registered agency that owns it (an update without it keeps the owner).
        #[arg(long)]
        agency: Option<String>,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List the catalog.
    List,
    /// Mark a dataset not yet open (non-open, or closed) as under evaluation.
    Evaluate {
        /// Dataset id.
        id: String,
        /// Its next evaluation date (YYYY-MM-DD, today or later).
        #[arg(long)]
        next: String,
        /// Why (shown in its public history).
        #[arg(long)]
        reason: String,
    },
    /// A catalog entry's history, newest first (as `/catalog/<id>/history` shows it).
    History {
        /// Dataset id.
        id: String,
    },
}

/// One dataset or all.
#[derive(Debug, Args)]
pub struct SwitchArgs {
    /// Dataset id.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<String>,
    /// All conditional data.
    #[arg(long)]
    pub all: bool,
    /// Why.
    #[arg(long)]
    pub reason: String,
}

/// Why a command line could not be turned into a request.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A `--field` is malformed.
    #[error("--field {0:?}: expected name=rule[:key=value,…]")]
    Field(String),
    /// A date is malformed.
    #[error("{0:?}: expected RFC 3339 or YYYY-MM-DD")]
    Date(String),
    /// A `--member` is malformed.
    #[error("--member {0:?}: expected dataset or dataset:field,field")]
    Member(String),
    /// A grant without `--until`.
    #[error("--until is required to grant a licence")]
    MissingUntil,
}

/// Parses a fusion rule member, `dataset` or `dataset:field,field`, into its JSON.
pub fn parse_member(s: &str) -> Result<Value, CliError> {
    let err = || CliError::Member(s.into());
    match s.split_once(':') {
        None if !s.is_empty() => Ok(json!({ "dataset": s })),
        Some((d, fields)) if !d.is_empty() => {
            let fields: Vec<&str> = fields.split(',').collect();
            if fields.iter().any(|f| f.is_empty()) {
                return Err(err());
            }
            Ok(json!({ "dataset": d, "fields": fields }))
        }
        _ => Err(err()),
    }
}

/// `s` percent-encoded for a path segment or a query value of a registry URL.
pub(crate) fn url_part(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Parses `--field name=rule[:key=value,…]` into the field name and its rule's JSON.
pub fn parse_field(s: &str) -> Result<(String, Value), CliError> {
    sluice_registry::terms::parse_field(s).map_err(|_| CliError::Field(s.into()))
}

fn date(s: &str) -> Result<String, CliError> {
    sluice_registry::terms::parse_date(s).map_err(|_| CliError::Date(s.into()))
}

/// The grant request body of `sluice admin grant`.
pub fn grant_body(g: &GrantArgs) -> Result<Value, CliError> {
    if g.terms.until.is_none() {
        return Err(CliError::MissingUntil);
    }
    let mut body = terms_body(&g.terms)?;
    body["licensee"] = json!(g.licensee);
    body["dataset"] = json!(g.dataset);
    body["scenario"] = json!(g.scenario);
    Ok(body)
}

/// The JSON of what a licence allows (`POST /admin/licences` without the licensee, dataset
/// and scenario; the body of `POST /admin/applications/<id>/approve`).
pub fn terms_body(g: &GrantTerms) -> Result<Value, CliError> {
    let mut fields = Map::new();
    for f in &g.fields {
        let (name, rule) = parse_field(f)?;
        fields.insert(name, rule);
    }
    let mut body = json!({
        "fields": fields,
        "mode": g.mode,
        "reason": g.reason,
    });
    if let Some(u) = &g.until {
        body["valid_until"] = json!(date(u)?);
    }
    if let Some(id) = &g.id {
        body["id"] = json!(id);
    }
    if let Some(f) = &g.row_filter {
        body["row_filter"] = json!(f);
    }
    if g.rate.is_some() || g.burst.is_some() {
        let d = sluice_policy::licence::RateLimit::default();
        body["rate"] = json!({
            "per_second": g.rate.unwrap_or(d.per_second),
            "burst": g.burst.unwrap_or(d.burst),
        });
    }
    let mut quota = Map::new();
    if let Some(n) = g.requests_per_day {
        quota.insert("requests_per_day".into(), json!(n));
    }
    if let Some(n) = g.records_per_day {
        quota.insert("records_per_day".into(), json!(n));
    }
    body["quota"] = Value::Object(quota);
    if let Some(f) = &g.from {
        body["valid_from"] = json!(date(f)?);
    }
    if let Some(r) = &g.expert_review {
        body["expert_review"] = json!(r);
    }
    Ok(body)
}

/// What a command prints: on stdout when it succeeded, else on stderr with the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Whether the registry accepted the request.
    pub ok: bool,
    /// The text to print.
    pub text: String,
}

impl Output {
    pub(crate) fn of(reply: &Reply) -> Self {
        let text = serde_json::to_string_pretty(&reply.json())
            .unwrap_or_else(|_| String::from_utf8_lossy(&reply.body).into_owned());
        if reply.status.is_success() {
            Self { ok: true, text }
        } else {
            Self {
                ok: false,
                text: format!("{}: {text}", reply.status),
            }
        }
    }
}

/// Runs an admin command: prints its output, exit status failure when refused.
pub async fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    if matches!(args.command, AdminCommand::Drill(_)) {
        return crate::drill_cli::run(args).await;
    }
    let out = execute(args).await?;
    if out.ok {
        println!("{}", out.text.trim_end());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{}", out.text);
        Ok(ExitCode::FAILURE)
    }
}

/// Runs an admin command against the registry and returns what it would print.
pub async fn execute(args: AdminArgs) -> anyhow::Result<Output> {
    let c = RegistryClient::new(&args.registry, &args.ca, Some((&args.cert, &args.key)))?;
    let reply = match args.command {
        AdminCommand::Licensee(LicenseeCommand::Add {
            id,
            name,
            credit_code,
            reason,
        }) => {
            let b = json!({ "id": id, "name": name, "credit_code": credit_code, "reason": reason });
            c.post("/admin/licensees", &b).await?
        }
        AdminCommand::Licensee(LicenseeCommand::List) => c.get("/admin/licensees").await?,
        AdminCommand::Grant(g) => c.post("/admin/licences", &grant_body(&g)?).await?,
        AdminCommand::Suspend(s) => status(&c, "suspend", s).await?,
        AdminCommand::Resume(s) => status(&c, "resume", s).await?,
        AdminCommand::Revoke(s) => status(&c, "revoke", s).await?,
        AdminCommand::List { licensee } => match licensee {
            Some(l) => c.get(&format!("/admin/licences?licensee={l}")).await?,
            None => c.get("/admin/licences").await?,
        },
        AdminCommand::Show { licence } => c.get(&format!("/admin/licences/{licence}")).await?,
        AdminCommand::Violation(ViolationCommand::Record {
            licensee,
            what,
            measure,
            reason,
        }) => {
            let b = json!({ "licensee": licensee, "what": what, "measure": measure, "reason": reason });
            c.post("/admin/violations", &b).await?
        }
        AdminCommand::Violation(ViolationCommand::List) => c.get("/admin/violations").await?,
        AdminCommand::Objection(o) => objection(&c, o).await?,
        AdminCommand::Dataset(DatasetCommand::Close(s)) => switch(&c, "close", s).await?,
        AdminCommand::Dataset(DatasetCommand::Open(s)) => switch(&c, "open", s).await?,
        AdminCommand::Dataset(DatasetCommand::Register { file, agency, reason }) => {
            let spec: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
            let mut b = json!({ "dataset": spec, "reason": reason });
            if let Some(a) = agency {
                b["agency"] = json!(a);
            }
            c.post("/admin/datasets", &b).await?
        }
        AdminCommand::Dataset(DatasetCommand::List) => c.get("/admin/datasets").await?,
        AdminCommand::Dataset(DatasetCommand::Evaluate { id, next, reason }) => {
            let b = json!({ "next": next, "reason": reason });
            c.post(&format!("/admin/datasets/{id}/evaluation"), &b).await?
        }
        AdminCommand::Dataset(DatasetCommand::History { id }) => {
            c.get(&format!("/catalog/{id}/history")).await?
        }
        AdminCommand::RevokeCert { serial, reason } => {
            c.post(
                "/admin/certs/revoke",
                &json!({ "serial": serial, "reason": reason }),
            )
            .await?
        }
        AdminCommand::Changes => c.get("/admin/changes").await?,
        AdminCommand::Agency(AgencyCommand::Add {
            id,
            name,
            review_days,
            reason,
        }) => {
            let mut b = json!({ "id": id, "name": name, "reason": reason });
            if let Some(d) = review_days {
                b["review_days"] = json!(d);
            }
            c.post("/admin/agencies", &b).await?
        }
        AdminCommand::Agency(AgencyCommand::List) => c.get("/admin/agencies").await?,
        AdminCommand::Agency(AgencyCommand::Limit {
            admin,
            agency,
            reason,
        }) => {
            let b = json!({ "id": admin, "agency": agency, "reason": reason });
            c.post("/admin/admins", &b).await?
        }
        AdminCommand::Agency(AgencyCommand::Unlimit { admin, reason }) => {
            let path = format!("/admin/admins/{admin}");
            c.send(
                http::Method::DELETE,
                &path,
                Some(&json!({ "reason": reason })),
                &[],
            )
            .await?
        }
        AdminCommand::Agency(AgencyCommand::Admins) => c.get("/admin/admins").await?,
        AdminCommand::Gateway(GatewayCommand::Add {
            id,
            agency,
            url,
            reason,
        }) => {
            let mut b = json!({ "id": id, "agency": agency, "reason": reason });
            if let Some(url) = url {
                b["url"] = json!(url);
            }
            c.post("/admin/gateways", &b).await?
        }
        AdminCommand::Gateway(GatewayCommand::Retire { id, reason }) => {
            c.post(
                &format!("/admin/gateways/{id}/retire"),
                &json!({ "reason": reason }),
            )
            .await?
        }
        AdminCommand::Violation(ViolationCommand::Lift { id, reason }) => {
            c.post(
                &format!("/admin/violations/{id}/lift"),
                &json!({ "reason": reason }),
            )
            .await?
        }
        AdminCommand::Gateway(GatewayCommand::List) => c.get("/admin/gateways").await?,
        AdminCommand::Scenario(ScenarioCommand::Add {
            id,
            title,
            description,
            datasets,
            reason,
        }) => {
            let b = json!({ "id": id, "title": title, "description": description,
                            "datasets": datasets, "reason": reason });
            c.post("/admin/scenarios", &b).await?
        }
        AdminCommand::Scenario(ScenarioCommand::List) => c.get("/admin/scenarios").await?,
        AdminCommand::Fusion(FusionCommand::Add {
            id,
            members,
            description,
            reason,
        }) => {
            let members = members
                .iter()
                .map(|m| parse_member(m))
                .collect::<Result<Vec<_>, _>>()?;
            let b = json!({ "id": id, "description": description, "members": members, "reason": reason });
            c.post("/admin/fusion-rules", &b).await?
        }
        AdminCommand::Fusion(FusionCommand::List) => c.get("/admin/fusion-rules").await?,
        AdminCommand::Fusion(FusionCommand::Remove { id, reason }) => {
            c.send(
                http::Method::DELETE,
                &format!("/admin/fusion-rules/{id}"),
                Some(&json!({ "reason": reason })),
                &[],
            )
            .await?
        }
        AdminCommand::Report(r) => return crate::report_cli::execute(&c, r).await,
        AdminCommand::Risk(r) => return crate::risk_cli::execute(&c, r).await,
        AdminCommand::Application(a) => crate::application_cli::application(&c, a).await?,
        AdminCommand::Agreement(a) => crate::application_cli::agreement(&c, a).await?,
        AdminCommand::Demand(d) => return crate::demand_cli::execute(&c, d).await,
        AdminCommand::Drill(d) => {
            return Ok(crate::drill_cli::execute(&c, &args.ca, *d).await?.into_output())
        }
    };
    Ok(Output::of(&reply))
}

async fn status(c: &RegistryClient, action: &str, s: StatusArgs) -> anyhow::Result<Reply> {
    let path = format!("/admin/licences/{}/{action}", s.licence);
    Ok(c.post(&path, &json!({ "reason": s.reason })).await?)
}

async fn objection(c: &RegistryClient, o: ObjectionCommand) -> anyhow::Result<Reply> {
    let (verb, d) = match o {
        ObjectionCommand::List { status: None } => return Ok(c.get("/admin/objections").await?),
        ObjectionCommand::List { status: Some(s) } => {
            return Ok(c
                .get(&format!("/admin/objections?status={}", url_part(&s)))
                .await?);
        }
        ObjectionCommand::Show { id } => return Ok(c.get(&format!("/admin/objections/{id}")).await?),
        ObjectionCommand::Uphold(d) => ("uphold", d),
        ObjectionCommand::Reject(d) => ("reject", d),
        ObjectionCommand::Withdraw(d) => ("withdraw", d),
        ObjectionCommand::Resolve(d) => ("resolve", d),
    };
    let path = format!("/admin/objections/{}/{verb}", d.id);
    Ok(c.post(&path, &json!({ "reason": d.reason })).await?)
}

async fn switch(c: &RegistryClient, action: &str, s: SwitchArgs) -> anyhow::Result<Reply> {
    let path = match (&s.id, s.all) {
        (_, true) => format!("/admin/datasets/{action}-all"),
        (Some(id), false) => format!("/admin/datasets/{id}/{action}"),
        (None, false) => anyhow::bail!("name a dataset or pass --all"),
    };
    Ok(c.post(&path, &json!({ "reason": s.reason })).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_to_mask_rules() {
        let (n, r) = parse_field("mobile=partial:first=3,last=4").unwrap();
        assert_eq!(n, "mobile");
        let rule: sluice_policy::mask::MaskRule = serde_json::from_value(r).unwrap();
        assert_eq!(rule, sluice_policy::mask::MaskRule::Partial { first: 3, last: 4 });
        let (_, r) = parse_field("id=clear").unwrap();
        assert_eq!(r, json!({ "rule": "clear" }));
        assert!(parse_field("nope").is_err());
        assert!(parse_field("x=partial:first").is_err());
        assert_eq!(date("2030-01-02").unwrap(), "2030-01-02T00:00:00Z");
        assert_eq!(
            parse_member("utilities:address,usage_kwh").unwrap(),
            json!({ "dataset": "utilities", "fields": ["address", "usage_kwh"] })
        );
        assert_eq!(
            parse_member("fire-hydrants").unwrap(),
            json!({ "dataset": "fire-hydrants" })
        );
        for bad in ["", ":x", "u:", "u:a,,b"] {
            assert!(parse_member(bad).is_err(), "{bad}");
        }
        assert!(date("tomorrow").is_err());
    }
}

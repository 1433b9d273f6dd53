//! `sluice admin drill`: an emergency drill, measured at every gateway and kept at the registry.
//!
//! ```text
//! sluice admin drill (--dataset D | --all-conditional --probe-dataset D)
//!     --probe-cert C --probe-key K --scenario S [--bound 1s] [--duration 10s] [--gateway-ca CA]
//! sluice admin drill list
//! ```
//!
//! 1. Before anything is closed: the dataset is in the catalog and open (with
//!    `--all-conditional` it is conditional and the switch is off), the active gateways are
//!    read from the registry, and each one registered with a `url` is asked for
//!    `GET <url>/v1/datasets/D/records?limit=1` as the drill licensee (`--probe-cert`,
//!    `--probe-key`) with `Sluice-Scenario: S`. A gateway that refuses the probe stops the drill
//!    (the drill licensee is not set up there); one that cannot be reached is kept, and named
//!    as not complied unless it answers in time.
//! 2. The switch: `POST /admin/datasets/D/close` (or `close-all`) with the reason `drill <id>`.
//!    Times are counted from when that request is sent.
//! 3. Every gateway is probed every 10 ms until it refuses with `dataset-closed` (no other
//!    answer counts) or the bound (`--bound`, default 1 s) passes.
//! 4. The data stays closed `--duration` longer (default 10 s).
//! 5. It is reopened (`open`/`open-all`, reason `drill <id>`) whatever happened after the
//!    switch: a failed step, SIGINT or SIGTERM. Reopening is tried three times; if it still
//!    fails the command says so loudly, with the command that reopens, and fails.
//! 6. Every gateway is probed until it serves a page again (200) or the bound passes.
//! 7. The report goes to the registry (`POST /admin/drills`), which adds who ran it. The
//!    stored report is printed as JSON on stdout, a summary on stderr; the exit status is
//!    success only when every gateway complied, the data was reopened and the report stored.
//!
//! A gateway complied when it refused within the bound and served again within the bound.
//! Gateways without a url are "not probed" and do not comply.

use crate::admin::{AdminArgs, AdminCommand, Output};
use clap::{Args, Subcommand};
use serde_json::Value;
use sluice_net::registry_client::{ClientError, RegistryClient, Reply};
use sluice_policy::problem_code::ProblemCode;
use sluice_registry::drill::{
    DrillGateway, DrillReport, DrillScope, MAX_BOUND_MS, MAX_DURATION_MS, MAX_ERROR_CHARS,
};
use sluice_registry::model::GatewayRecord;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How often each gateway is probed while waiting for it to refuse or serve.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// How long a gateway may take to answer the probe before the drill.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts to reopen, and the pause between them.
const REOPEN_ATTEMPTS: u32 = 3;
const REOPEN_PAUSE: Duration = Duration::from_millis(500);
/// Longest answer quoted in a report's error.
const QUOTE_CHARS: usize = 300;

/// `sluice admin drill …`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct DrillArgs {
    /// `list`; without it, run a drill.
    #[command(subcommand)]
    pub command: Option<DrillCommand>,
    /// The drill to run.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `sluice admin drill list`.
#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// The recorded drills, the latest first.
    List,
}

/// What a drill closes and how it probes.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Close this dataset at every gateway (and probe it).
    #[arg(
        long,
        required_unless_present = "all_conditional",
        conflicts_with = "all_conditional"
    )]
    pub dataset: Option<String>,
    /// Close all conditional data at once (probe `--probe-dataset`).
    #[arg(long, requires = "probe_dataset")]
    pub all_conditional: bool,
    /// The conditional dataset probed with `--all-conditional`.
    #[arg(long, requires = "all_conditional")]
    pub probe_dataset: Option<String>,
    /// The drill licensee's certificate (PEM), e.g. from `sluice certs issue-licensee`.
    #[arg(long, required = true)]
    pub probe_cert: Option<PathBuf>,
    /// The drill licensee's private key (PEM).
    #[arg(long, required = true)]
    pub probe_key: Option<PathBuf>,
    /// The scenario the drill licensee's licence is for (sent as `Sluice-Scenario`).
    #[arg(long, required = true)]
    pub scenario: Option<String>,
    /// How long each gateway has to refuse after the switch, and to serve after reopening.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub bound: Duration,
    /// How long the data stays closed at least, once every gateway refused or the bound passed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// CA the gateways' server certificates chain to; the registry's `--ca` when absent.
    #[arg(long)]
    pub gateway_ca: Option<PathBuf>,
}

/// Why a drill did not start, or a flag is wrong.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// A malformed `--bound` or `--duration`.
    #[error("{0:?}: expected a duration such as 500ms, 10s or 2m")]
    Duration(String),
    /// `--bound` or `--duration` out of range.
    #[error("--bound must be 1 ms to {MAX_BOUND_MS} ms and --duration at most {MAX_DURATION_MS} ms")]
    Range,
    /// Neither or both scopes.
    #[error("name a dataset (--dataset D) or all conditional data (--all-conditional --probe-dataset D)")]
    Scope,
    /// A required flag is missing.
    #[error("{0} is required")]
    Missing(&'static str),
    /// `--scenario` is not an identifier.
    #[error("--scenario {0:?} must match [A-Za-z0-9._-]{{1,64}}")]
    Scenario(String),
    /// The dataset is not in the catalog.
    #[error("dataset {0} is not in the registry's catalog")]
    UnknownDataset(String),
    /// `--all-conditional` with a probe dataset it would not close.
    #[error("dataset {0} is not conditional: closing all conditional data does not close it")]
    NotConditional(String),
    /// The data is closed already: reopening it at the end would undo a real closure.
    #[error("{0} is already closed; a drill would reopen it at the end. Nothing was changed")]
    AlreadyClosed(String),
    /// No active gateway.
    #[error("no active gateway is registered")]
    NoGateways,
    /// No active gateway has a url.
    #[error("no active gateway has a url to probe (sluice admin gateway add <id> --agency <a> --url https://host:port)")]
    NothingToProbe,
    /// The probe before the switch failed; nothing was closed.
    #[error("before the drill: {0}. Nothing was closed")]
    Preflight(String),
    /// The registry refused the switch; nothing was closed.
    #[error("the registry refused to close the data: {0}. Nothing was closed")]
    CloseRefused(String),
    /// An unexpected registry answer before the switch.
    #[error("registry: {0}")]
    Registry(String),
}

/// Parses `500ms`, `10s` or `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, DrillError> {
    let err = || DrillError::Duration(s.to_owned());
    let digits = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let n: u64 = s[..digits].parse().map_err(|_| err())?;
    match &s[digits..] {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs).ok_or_else(err),
        _ => Err(err()),
    }
}

/// What a drill command prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Printed {
    /// A drill's report (JSON), printed on stdout whatever the outcome; `ok` when every
    /// gateway complied, the data was reopened and the registry stored the report.
    Report {
        /// The report.
        json: String,
        /// The drill succeeded.
        ok: bool,
    },
    /// A registry answer, printed as the other admin commands print theirs.
    Reply(Output),
}

impl Printed {
    /// As an admin command's [`Output`].
    pub fn into_output(self) -> Output {
        match self {
            Self::Report { json, ok } => Output { ok, text: json },
            Self::Reply(o) => o,
        }
    }
}

/// `sluice admin drill …` from the command line: prints and sets the exit status.
pub async fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let AdminCommand::Drill(drill) = args.command else {
        anyhow::bail!("not a drill command");
    };
    let c = RegistryClient::new(&args.registry, &args.ca, Some((&args.cert, &args.key)))?;
    let ok = match execute(&c, &args.ca, *drill).await? {
        Printed::Report { json, ok } => {
            println!("{json}");
            ok
        }
        Printed::Reply(o) if o.ok => {
            println!("{}", o.text.trim_end());
            true
        }
        Printed::Reply(o) => {
            eprintln!("{}", o.text);
            false
        }
    };
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Runs a drill (or lists them) against the registry `c`; `ca` is the registry's CA, the
/// gateways' too unless `--gateway-ca` names another.
pub async fn execute(c: &RegistryClient, ca: &Path, args: DrillArgs) -> anyhow::Result<Printed> {
    match args.command {
        Some(DrillCommand::List) => Ok(Printed::Reply(Output::of(&c.get("/admin/drills").await?))),
        None => drill(c, ca, args.run).await,
    }
}

/// One active gateway and how to probe it.
struct Target {
    id: String,
    url: Option<String>,
    /// `None`: not probed.
    client: Option<RegistryClient>,
    /// Said of it before the drill (not probed, unreachable).
    note: Option<String>,
}

/// What probing one gateway found.
#[derive(Debug, Clone, Default)]
struct Measured {
    /// When the wanted answer came, from the switch.
    at: Option<Duration>,
    /// The last other answer.
    last: Option<String>,
}

/// What a gateway answered the probe.
enum Answer {
    Served,
    Closed,
    Refused(String),
    Failed(String),
}

impl Answer {
    fn describe(&self) -> String {
        match self {
            Self::Served => "200 served".into(),
            Self::Closed => format!("503 {}", ProblemCode::DatasetClosed.code()),
            Self::Refused(r) => r.clone(),
            Self::Failed(e) => format!("unreachable: {e}"),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Closed,
    Served,
}

fn quote(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

async fn probe_once(client: &RegistryClient, path: &str, scenario: &str) -> Answer {
    let reply = client
        .send(http::Method::GET, path, None, &[("sluice-scenario", scenario)])
        .await;
    match reply {
        Err(e) => Answer::Failed(quote(&e.to_string(), QUOTE_CHARS)),
        Ok(r) if r.status == http::StatusCode::OK => Answer::Served,
        Ok(r) => match r.problem() {
            Some(code) if code == ProblemCode::DatasetClosed.code() => Answer::Closed,
            Some(code) => {
                let detail = r.json()["detail"].as_str().unwrap_or_default().to_owned();
                Answer::Refused(quote(
                    &format!("{} {code}: {detail}", r.status.as_u16()),
                    QUOTE_CHARS,
                ))
            }
            None => Answer::Refused(format!("{} without a problem body", r.status.as_u16())),
        },
    }
}

/// Probes `t` every [`PROBE_INTERVAL`] until it gives `want` or `deadline` passes, noting
/// in `slot` as it goes (so an interrupted drill keeps what was seen).
async fn probe_until(
    t: &Target,
    path: &str,
    scenario: &str,
    want: Want,
    (from, deadline): (Instant, Instant),
    slot: &mut Measured,
) {
    let Some(client) = &t.client else { return };
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let Ok(answer) = tokio::time::timeout(deadline - now, probe_once(client, path, scenario)).await
        else {
            slot.last = Some("no answer within the bound".into());
            return;
        };
        let got = matches!(
            (&answer, want),
            (Answer::Closed, Want::Closed) | (Answer::Served, Want::Served)
        );
        let elapsed = from.elapsed();
        if got && elapsed <= deadline - from {
            slot.at = Some(elapsed);
            return;
        }
        slot.last = Some(answer.describe());
        tokio::time::sleep_until((now + PROBE_INTERVAL).min(deadline).into()).await;
    }
}

/// Probes every target at once, each into its slot.
async fn probe_all(
    targets: &[Target],
    path: &str,
    scenario: &str,
    want: Want,
    window: (Instant, Instant),
    slots: &mut [Measured],
) {
    futures_util::future::join_all(
        targets
            .iter()
            .zip(slots.iter_mut())
            .map(|(t, slot)| probe_until(t, path, scenario, want, window, slot)),
    )
    .await;
}

/// SIGINT and SIGTERM, taken over for the drill: the data is reopened instead of the
/// process dying with it closed.
struct Interrupt {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Interrupt {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// The next signal's name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            Some(()) = self.int.recv() => "SIGINT",
            Some(()) = self.term.recv() => "SIGTERM",
            else => std::future::pending().await,
        }
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(c: &RegistryClient, path: &str) -> anyhow::Result<T> {
    let r = c.get(path).await?;
    if !r.status.is_success() {
        return Err(DrillError::Registry(format!("GET {path}: {} {}", r.status, r.json())).into());
    }
    Ok(serde_json::from_slice(&r.body)?)
}

/// The switch and the closed datasets as the current snapshot carries them: the revision
/// (a 304 names it), then a delta from the revision before it (small: the parts besides
/// licences come whole), or the whole snapshot at revision 0.
async fn closures(c: &RegistryClient) -> anyhow::Result<(bool, Vec<String>)> {
    use base64::Engine;
    let r = c.get(&format!("/v1/snapshot?after={}", u64::MAX)).await?;
    let rev: u64 = r
        .headers
        .get("sluice-revision")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| DrillError::Registry(format!("snapshot revision: {} {}", r.status, r.json())))?;
    let path = match rev.checked_sub(1) {
        Some(base) => format!("/v1/snapshot?after={base}&delta=1"),
        None => "/v1/snapshot".to_owned(),
    };
    let signed: Value = get_json(c, &path).await?;
    let payload = signed["payload"].as_str().unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD.decode(payload)?;
    let state: Value = serde_json::from_slice(&bytes)?;
    let closed = state["closed_datasets"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Ok((state["all_conditional_closed"] == true, closed))
}

/// Refuses a drill on data that is not there, not conditional (for the switch) or closed
/// already.
async fn check_registry(c: &RegistryClient, scope: DrillScope, dataset: &str) -> anyhow::Result<()> {
    let catalog: Vec<Value> = get_json(c, "/admin/datasets").await?;
    let entry = catalog
        .iter()
        .find(|d| d["spec"]["id"] == dataset)
        .ok_or_else(|| DrillError::UnknownDataset(dataset.to_owned()))?;
    if scope == DrillScope::AllConditional && entry["open_category"] != "conditional" {
        return Err(DrillError::NotConditional(dataset.to_owned()).into());
    }
    let (all, closed) = closures(c).await?;
    if all {
        return Err(DrillError::AlreadyClosed("all conditional data".into()).into());
    }
    if entry["closed"] == true || closed.iter().any(|d| d == dataset) {
        return Err(DrillError::AlreadyClosed(format!("dataset {dataset}")).into());
    }
    Ok(())
}

/// The active gateways, each with a client presenting the drill licensee when it has a url.
async fn targets(
    c: &RegistryClient,
    gateway_ca: &Path,
    identity: (&Path, &Path),
) -> anyhow::Result<Vec<Target>> {
    let all: Vec<GatewayRecord> = get_json(c, "/admin/gateways").await?;
    let mut out = Vec::new();
    for g in all.into_iter().filter(|g| !g.retired) {
        let (client, note) = match &g.url {
            None => (
                None,
                Some("not probed: no url registered (sluice admin gateway add … --url)".to_owned()),
            ),
            Some(url) => match RegistryClient::new(url, gateway_ca, Some(identity)) {
                Ok(client) => (Some(client), None),
                Err(e @ ClientError::Url { .. }) => (None, Some(format!("not probed: {e}"))),
                Err(e) => return Err(e.into()),
            },
        };
        out.push(Target {
            id: g.id,
            url: g.url,
            client,
            note,
        });
    }
    if out.is_empty() {
        return Err(DrillError::NoGateways.into());
    }
    if out.iter().all(|t| t.client.is_none()) {
        return Err(DrillError::NothingToProbe.into());
    }
    Ok(out)
}

/// Every probed gateway must serve the probe before the switch: a refusal stops the drill;
/// an unreachable gateway is noted and kept. At least one must serve.
async fn preflight(targets: &mut [Target], path: &str, scenario: &str) -> anyhow::Result<()> {
    let answers = futures_util::future::join_all(targets.iter().map(|t| async move {
        let client = t.client.as_ref()?;
        Some(
            tokio::time::timeout(PREFLIGHT_TIMEOUT, probe_once(client, path, scenario))
                .await
                .unwrap_or_else(|_| Answer::Failed("no answer within 5 s".into())),
        )
    }))
    .await;
    let mut refused = Vec::new();
    let mut served = 0;
    for (t, a) in targets.iter_mut().zip(answers) {
        match a {
            None => {}
            Some(Answer::Served) => served += 1,
            Some(Answer::Failed(e)) => t.note = Some(format!("unreachable before the drill: {e}")),
            Some(other) => refused.push(format!("{} refuses the drill probe ({})", t.id, other.describe())),
        }
    }
    if !refused.is_empty() {
        return Err(DrillError::Preflight(refused.join("; ")).into());
    }
    if served == 0 {
        return Err(DrillError::Preflight("no gateway serves the drill probe".into()).into());
    }
    Ok(())
}

/// `POST /admin/datasets/<D>/close|open` or `/admin/datasets/close-all|open-all`.
async fn switch(
    c: &RegistryClient,
    scope: DrillScope,
    dataset: &str,
    close: bool,
    reason: &str,
) -> Result<Reply, ClientError> {
    let action = if close { "close" } else { "open" };
    let path = match scope {
        DrillScope::Dataset => format!("/admin/datasets/{dataset}/{action}"),
        DrillScope::AllConditional => format!("/admin/datasets/{action}-all"),
    };
    c.post(&path, &serde_json::json!({ "reason": reason })).await
}

/// Reopens, up to [`REOPEN_ATTEMPTS`] times; the last failure otherwise.
async fn reopen(c: &RegistryClient, scope: DrillScope, dataset: &str, reason: &str) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 1..=REOPEN_ATTEMPTS {
        match switch(c, scope, dataset, false, reason).await {
            Ok(r) if r.status.is_success() => return Ok(()),
            Ok(r) => last = format!("{} {}", r.status, r.json()),
            Err(e) => last = e.to_string(),
        }
        if attempt < REOPEN_ATTEMPTS {
            tokio::time::sleep(REOPEN_PAUSE).await;
        }
    }
    Err(quote(&last, QUOTE_CHARS))
}

fn drill_id(t: time::OffsetDateTime) -> String {
    format!(
        "drill-{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The command that reopens what the drill closed.
fn reopen_command(scope: DrillScope, dataset: &str, reason: &str) -> String {
    match scope {
        DrillScope::Dataset => format!("sluice admin dataset open {dataset} --reason \"{reason}\""),
        DrillScope::AllConditional => format!("sluice admin dataset open --all --reason \"{reason}\""),
    }
}

/// One gateway's line in the report (`probed`: it had a client).
fn gateway_result(
    t: &Target,
    probed: bool,
    (closing, opening): (&Measured, &Measured),
    bound_ms: u64,
    reopened: bool,
) -> DrillGateway {
    let closed_after_ms = closing.at.map(millis);
    let reopened_after_ms = opening.at.map(millis);
    let complied = closed_after_ms.is_some() && reopened_after_ms.is_some();
    let mut why: Vec<String> = t.note.iter().cloned().collect();
    if !probed && why.is_empty() {
        why.push("not probed".into());
    }
    if probed {
        if closed_after_ms.is_none() {
            let last = closing.last.as_deref().unwrap_or("none");
            why.push(format!(
                "did not refuse with {} within {bound_ms} ms (last answer: {last})",
                ProblemCode::DatasetClosed.code()
            ));
        }
        if !reopened {
            why.push("not measured: the data was not reopened".into());
        } else if reopened_after_ms.is_none() {
            let last = opening.last.as_deref().unwrap_or("none");
            why.push(format!(
                "did not serve again within {bound_ms} ms of the reopening (last answer: {last})"
            ));
        }
    }
    DrillGateway {
        id: t.id.clone(),
        url: t.url.clone(),
        closed_after_ms,
        reopened_after_ms,
        complied,
        error: (!complied).then(|| quote(&why.join("; "), MAX_ERROR_CHARS)),
    }
}

/// The summary printed on stderr.
fn summary(r: &DrillReport) -> String {
    let complied = r.gateways.iter().filter(|g| g.complied).count();
    let mut out = format!(
        "drill {}: {complied} of {} gateways complied (bound {} ms)\n",
        r.id,
        r.gateways.len(),
        r.bound_ms
    );
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} ms"));
    for g in &r.gateways {
        if g.complied {
            out.push_str(&format!(
                "  {}: refused after {}, served again after {}\n",
                g.id,
                ms(g.closed_after_ms),
                ms(g.reopened_after_ms)
            ));
        } else {
            out.push_str(&format!(
                "  {}: NOT COMPLIED: {}\n",
                g.id,
                g.error.as_deref().unwrap_or_default()
            ));
        }
    }
    let not = r.not_complied();
    if !not.is_empty() {
        out.push_str(&format!("drill {}: not complied: {}\n", r.id, not.join(", ")));
    }
    if let Some(e) = &r.error {
        out.push_str(&format!("drill {}: {e}\n", r.id));
    }
    out
}

async fn drill(c: &RegistryClient, ca: &Path, a: RunArgs) -> anyhow::Result<Printed> {
    let (scope, dataset) = match (a.dataset, a.all_conditional, a.probe_dataset) {
        (Some(d), false, None) => (DrillScope::Dataset, d),
        (None, true, Some(d)) => (DrillScope::AllConditional, d),
        _ => return Err(DrillError::Scope.into()),
    };
    let cert = a.probe_cert.ok_or(DrillError::Missing("--probe-cert"))?;
    let key = a.probe_key.ok_or(DrillError::Missing("--probe-key"))?;
    let scenario = a.scenario.ok_or(DrillError::Missing("--scenario"))?;
    if !sluice_policy::id::is_valid_id(&scenario) {
        return Err(DrillError::Scenario(scenario).into());
    }
    let (bound_ms, duration_ms) = (millis(a.bound), millis(a.duration));
    if !(1..=MAX_BOUND_MS).contains(&bound_ms) || duration_ms > MAX_DURATION_MS {
        return Err(DrillError::Range.into());
    }
    let what = match scope {
        DrillScope::Dataset => format!("dataset {dataset}"),
        DrillScope::AllConditional => "all conditional data".to_owned(),
    };

    // Before anything is closed.
    check_registry(c, scope, &dataset).await?;
    let gateway_ca = a.gateway_ca.as_deref().unwrap_or(ca);
    let mut targets = targets(c, gateway_ca, (&cert, &key)).await?;
    let path = format!("/v1/datasets/{dataset}/records?limit=1");
    preflight(&mut targets, &path, &scenario).await?;
    let mut interrupt = Interrupt::new()?;

    // The switch.
    let started_at = time::OffsetDateTime::now_utc();
    let id = drill_id(started_at);
    let reason = format!("drill {id}");
    let mut errors: Vec<String> = Vec::new();
    let probed = targets.iter().filter(|t| t.client.is_some()).count();
    eprintln!(
        "drill {id}: closing {what}; probing {probed} of {} active gateways",
        targets.len()
    );
    let switched = Instant::now();
    let mut closing = vec![Measured::default(); targets.len()];
    match switch(c, scope, &dataset, true, &reason).await {
        Ok(r) if r.status.is_success() => {
            eprintln!("drill {id}: closed; probing until every gateway refuses (bound {bound_ms} ms)");
            let measure = async {
                probe_all(
                    &targets,
                    &path,
                    &scenario,
                    Want::Closed,
                    (switched, switched + a.bound),
                    &mut closing,
                )
                .await;
                eprintln!("drill {id}: holding {what} closed for {duration_ms} ms");
                tokio::time::sleep(a.duration).await;
            };
            tokio::select! {
                () = measure => {}
                sig = interrupt.recv() => errors.push(format!("interrupted by {sig} while closed; reopened at once")),
            }
        }
        Ok(r) if r.status.is_client_error() => {
            return Err(DrillError::CloseRefused(format!("{} {}", r.status, r.json())).into());
        }
        // The switch may or may not have been set: reopen to be safe.
        Ok(r) => errors.push(format!("closing failed: {} {}", r.status, r.json())),
        Err(e) => errors.push(format!("closing failed: {e}")),
    }

    // Reopen, whatever happened.
    let reopened_at = Instant::now();
    let reopened = reopen(c, scope, &dataset, &reason).await;
    let mut opening = vec![Measured::default(); targets.len()];
    match &reopened {
        Ok(()) => {
            eprintln!("drill {id}: reopened; probing until every gateway serves again");
            tokio::select! {
                () = probe_all(&targets, &path, &scenario, Want::Served, (reopened_at, reopened_at + a.bound), &mut opening) => {}
                sig = interrupt.recv() => errors.push(format!("interrupted by {sig} while measuring the reopening")),
            }
        }
        Err(e) => {
            let loud = format!(
                "REOPENING FAILED ({e}): {what} IS STILL CLOSED. Reopen it now: {}",
                reopen_command(scope, &dataset, &reason)
            );
            eprintln!("!!! drill {id}: {loud}");
            errors.push(loud);
        }
    }

    // The report.
    let gateways: Vec<DrillGateway> = targets
        .iter()
        .zip(closing.iter().zip(&opening))
        .map(|(t, m)| gateway_result(t, t.client.is_some(), m, bound_ms, reopened.is_ok()))
        .collect();
    let report = DrillReport {
        id: id.clone(),
        started_at,
        finished_at: time::OffsetDateTime::now_utc(),
        scope,
        dataset: dataset.clone(),
        bound_ms,
        duration_ms,
        complied_all: gateways.iter().all(|g| g.complied),
        gateways,
        error: (!errors.is_empty()).then(|| quote(&errors.join("; "), MAX_ERROR_CHARS)),
    };
    eprint!("{}", summary(&report));
    let mut ok = report.complied_all && reopened.is_ok() && errors.is_empty();
    let stored = c.post("/admin/drills", &serde_json::to_value(&report)?).await;
    let json = match stored {
        Ok(r) if r.status.is_success() => serde_json::to_string_pretty(&r.json())?,
        other => {
            let why = match other {
                Ok(r) => format!("{} {}", r.status, r.json()),
                Err(e) => e.to_string(),
            };
            eprintln!("drill {id}: the registry did not store the report: {why}");
            ok = false;
            serde_json::to_string_pretty(&report)?
        }
    };
    if let Err(e) = &reopened {
        eprintln!(
            "!!! drill {id}: REOPENING FAILED ({e}): {what} IS STILL CLOSED. Reopen it now: {}",
            reopen_command(scope, &dataset, &reason)
        );
    }
    Ok(Printed::Report { json, ok })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        admin: AdminCommand,
    }

    fn parse(args: &str) -> Result<DrillArgs, String> {
        let argv = std::iter::once("x").chain(args.split_whitespace());
        match Cli::try_parse_from(argv).map_err(|e| e.kind().to_string())?.admin {
            AdminCommand::Drill(d) => Ok(*d),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn durations_and_command_lines() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        for bad in ["", "10", "s", "1.5s", "-1s", "10h", "99999999999999999999m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let probe = "--probe-cert c --probe-key k --scenario s";
        let d = parse(&format!("drill --dataset d {probe} --bound 250ms --duration 0s")).unwrap();
        assert!(d.command.is_none());
        assert_eq!(d.run.dataset.as_deref(), Some("d"));
        assert_eq!(
            (d.run.bound, d.run.duration),
            (Duration::from_millis(250), Duration::ZERO)
        );
        let d = parse(&format!("drill {probe}")).map(|_| ());
        assert!(d.is_err(), "a scope is required");
        let d = parse("drill --dataset d --scenario s").map(|_| ());
        assert!(d.is_err(), "the drill licensee is required");
        let d = parse(&format!("drill --all-conditional {probe}")).map(|_| ());
        assert!(d.is_err(), "--all-conditional needs --probe-dataset");
        let d = parse(&format!(
            "drill --dataset d --all-conditional --probe-dataset d {probe}"
        ))
        .map(|_| ());
        assert!(d.is_err(), "one scope");
        let d = parse(&format!("drill --all-conditional --probe-dataset d {probe}")).unwrap();
        assert_eq!(
            (d.run.bound, d.run.duration),
            (Duration::from_secs(1), Duration::from_secs(10))
        );
        assert!(matches!(
            parse("drill list").unwrap().command,
            Some(DrillCommand::List)
        ));
        assert!(parse("drill list --dataset d").is_err());
    }

    #[test]
    fn a_gateway_complies_only_when_it_refused_and_served_again() {
        let t = Target {
            id: "gw".into(),
            url: Some("https://localhost:1".into()),
            client: None,
            note: None,
        };
        let at = |ms| Measured {
            at: Some(Duration::from_millis(ms)),
            last: None,
        };
        let never = Measured {
            at: None,
            last: Some("200 served".into()),
        };
        let g = gateway_result(&t, true, (&at(12), &at(30)), 1000, true);
        assert_eq!(
            (g.closed_after_ms, g.reopened_after_ms, g.complied),
            (Some(12), Some(30), true)
        );
        assert!(g.error.is_none());
        let g = gateway_result(&t, true, (&never, &at(30)), 1000, true);
        assert!(!g.complied);
        assert!(g
            .error
            .unwrap()
            .contains("did not refuse with dataset-closed within 1000 ms (last answer: 200 served)"));
        let g = gateway_result(&t, true, (&at(12), &never), 1000, true);
        assert!(g.error.unwrap().contains("did not serve again within 1000 ms"));
        let g = gateway_result(&t, true, (&at(12), &Measured::default()), 1000, false);
        assert_eq!(
            g.error.as_deref(),
            Some("not measured: the data was not reopened")
        );
        let g = gateway_result(
            &t,
            false,
            (&Measured::default(), &Measured::default()),
            1000,
            true,
        );
        assert_eq!((g.complied, g.error.as_deref()), (false, Some("not probed")));
        assert_eq!(
            drill_id(time::macros::datetime!(2026-03-01 02:03:04.567 UTC)),
            "drill-20260301T020304.567Z"
        );
        assert!(sluice_policy::id::is_valid_id(&drill_id(
            time::OffsetDateTime::now_utc()
        )));
    }
}

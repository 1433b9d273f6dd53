//! `sluice admin risk …`: risk rules at the registry (`/admin/risk/rules`, carried in every
//! snapshot and counted by every gateway) and the alerts gateways reported
//! (`/admin/risk/alerts`). A licence a `suspend` rule suspended is resumed with
//! `sluice admin resume`.

use crate::admin::Output;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use sluice_net::registry_client::RegistryClient;

/// `sluice admin risk …`.
#[derive(Debug, Subcommand)]
pub enum RiskCommand {
    /// Risk rules: what every gateway counts per licence, and what a crossing does.
    #[command(subcommand)]
    Rule(RuleCommand),
    /// The alerts gateways reported, newest first.
    Alerts,
}

/// `sluice admin risk rule …`.
#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Declare a rule.
    Add(Box<RuleAddArgs>),
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

/// `sluice admin risk rule add`.
#[derive(Debug, Args)]
pub struct RuleAddArgs {
    /// Rule id.
    pub id: String,
    /// What it counts per licence.
    #[arg(long, value_parser = ["requests", "records", "refusals", "off-hours", "pages", "keys"])]
    pub signal: String,
    /// The counting window.
    #[arg(long, value_parser = ["minute", "hour"])]
    pub window: String,
    /// The count in one window at which the rule is crossed (at least 1).
    #[arg(long)]
    pub threshold: u64,
    /// Also at least this many times the licence's baseline (1 to 1000000).
    #[arg(long)]
    pub factor: Option<f64>,
    /// Only this licence (every licence when absent).
    #[arg(long)]
    pub licence: Option<String>,
    /// `refusals` rules: count only refusals with this problem code (repeat).
    #[arg(long = "code")]
    pub codes: Vec<String>,
    /// `off-hours` rules: the permitted hours `FROM-UNTIL` in UTC, e.g. `8-20` (`22-6` wraps
    /// midnight).
    #[arg(long)]
    pub hours: Option<String>,
    /// What a crossing does: `alert`, or `suspend` the licence at every gateway.
    #[arg(long, value_parser = ["alert", "suspend"])]
    pub action: String,
    /// Why.
    #[arg(long)]
    pub reason: String,
}

/// Why a risk command line could not be turned into a request.
#[derive(Debug, thiserror::Error)]
pub enum RiskCliError {
    /// A malformed `--hours`.
    #[error("--hours {0:?}: expected FROM-UNTIL, two hours from 0 to 24, e.g. 8-20")]
    Hours(String),
}

/// Parses `--hours FROM-UNTIL`.
pub fn parse_hours(s: &str) -> Result<(u8, u8), RiskCliError> {
    let err = || RiskCliError::Hours(s.into());
    let (a, b) = s.split_once('-').ok_or_else(err)?;
    let hour = |h: &str| h.trim().parse::<u8>().ok().filter(|h| *h <= 24).ok_or_else(err);
    Ok((hour(a)?, hour(b)?))
}

/// The body of `POST /admin/risk/rules` for `sluice admin risk rule add`.
pub fn rule_body(a: &RuleAddArgs) -> Result<Value, RiskCliError> {
    let mut b = json!({
        "id": a.id,
        "signal": a.signal,
        "window": a.window,
        "threshold": a.threshold,
        "action": a.action,
        "reason": a.reason,
    });
    if let Some(f) = a.factor {
        b["factor"] = json!(f);
    }
    if let Some(l) = &a.licence {
        b["licence"] = json!(l);
    }
    if !a.codes.is_empty() {
        b["codes"] = json!(a.codes);
    }
    if let Some(h) = &a.hours {
        let (from, until) = parse_hours(h)?;
        b["hours"] = json!([from, until]);
    }
    Ok(b)
}

/// Runs a risk command against the registry.
pub async fn execute(c: &RegistryClient, cmd: RiskCommand) -> anyhow::Result<Output> {
    let reply = match cmd {
        RiskCommand::Rule(RuleCommand::Add(a)) => c.post("/admin/risk/rules", &rule_body(&a)?).await?,
        RiskCommand::Rule(RuleCommand::List) => c.get("/admin/risk/rules").await?,
        RiskCommand::Rule(RuleCommand::Remove { id, reason }) => {
            let id = crate::admin::url_part(&id);
            c.send(
                http::Method::DELETE,
                &format!("/admin/risk/rules/{id}"),
                Some(&json!({ "reason": reason })),
                &[],
            )
            .await?
        }
        RiskCommand::Alerts => c.get("/admin/risk/alerts").await?,
    };
    Ok(Output::of(&reply))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        risk: RiskCommand,
    }

    fn add(args: &[&str]) -> Result<Value, String> {
        let cli =
            Cli::try_parse_from([&["risk", "rule", "add"], args].concat()).map_err(|e| e.to_string())?;
        match cli.risk {
            RiskCommand::Rule(RuleCommand::Add(a)) => rule_body(&a).map_err(|e| e.to_string()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rule_add_builds_the_registry_s_body() {
        let b = add(&[
            "night",
            "--signal",
            "off-hours",
            "--window",
            "hour",
            "--threshold",
            "5",
            "--factor",
            "2.5",
            "--licence",
            "l1",
            "--hours",
            "8-20",
            "--action",
            "suspend",
            "--reason",
            "r",
        ])
        .unwrap();
        let n: sluice_registry::risk::NewRiskRule = serde_json::from_value(b).unwrap();
        assert_eq!(n.rule.problem(), None);
        assert_eq!(
            (n.rule.hours, n.rule.factor, n.rule.licence.as_deref()),
            (Some((8, 20)), Some(2.5), Some("l1"))
        );
        assert_eq!(n.reason, "r");
        let b = add(&[
            "probe",
            "--signal",
            "refusals",
            "--window",
            "minute",
            "--threshold",
            "3",
            "--code",
            "field-not-filterable",
            "--code",
            "no-licence",
            "--action",
            "alert",
            "--reason",
            "r",
        ])
        .unwrap();
        assert_eq!(b["codes"], json!(["field-not-filterable", "no-licence"]));
        assert!(b.get("hours").is_none() && b.get("factor").is_none());
        let n: sluice_registry::risk::NewRiskRule = serde_json::from_value(b).unwrap();
        assert_eq!(n.rule.codes.len(), 2);
    }

    #[test]
    fn bad_command_lines_are_refused_before_sending() {
        let base = [
            "r",
            "--signal",
            "records",
            "--window",
            "minute",
            "--threshold",
            "1",
            "--reason",
            "r",
        ];
        assert!(add(&[&base[..], &["--action", "delete"]].concat()).is_err());
        assert!(add(&[&base[..], &["--action", "alert", "--hours", "8"]].concat()).is_err());
        assert!(add(&[&base[..], &["--action", "alert", "--hours", "8-25"]].concat()).is_err());
        assert!(add(&[
            "r",
            "--signal",
            "bytes",
            "--window",
            "minute",
            "--threshold",
            "1",
            "--action",
            "alert",
            "--reason",
            "r"
        ])
        .is_err());
        assert_eq!(parse_hours("22-6").unwrap(), (22, 6));
    }
}

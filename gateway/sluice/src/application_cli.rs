//! `sluice admin application …` (review licensees' applications) and `sluice admin agreement
//! …` (publish a dataset's data-use agreement).

use crate::admin::{terms_body, url_part, GrantTerms};
use clap::{Args, Subcommand};
use serde_json::json;
use sluice_net::registry_client::{RegistryClient, Reply};
use std::path::PathBuf;

/// `sluice admin application …`.
#[derive(Debug, Subcommand)]
pub enum ApplicationCommand {
    /// Applications, oldest first (each with `overdue`).
    List {
        /// Only `open`, `more-info`, `approved` or `rejected` ones.
        #[arg(long)]
        status: Option<String>,
        /// Only open ones past their deadline.
        #[arg(long)]
        overdue: bool,
        /// Judge deadlines as of this day (YYYY-MM-DD) instead of today.
        #[arg(long)]
        on: Option<String>,
    },
    /// One application; a renewal with the renewed licence's use, violations and objections.
    Show {
        /// Application id.
        id: String,
    },
    /// Approve: grant a licence with these terms (no more fields and no longer period than
    /// asked; the period asked for unless `--from`/`--until` narrow it).
    Approve(Box<ApproveArgs>),
    /// Reject, with a reason the applicant sees.
    Reject(DecideArgs),
    /// Ask the applicant for more (the reason is the question); the deadline stops until it
    /// answers.
    Ask(DecideArgs),
}

/// `application approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Application id.
    #[arg(value_name = "ID")]
    pub application: String,
    /// The licence's terms (`--reason` required).
    #[command(flatten)]
    pub terms: GrantTerms,
}

/// An application and a reason.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Application id.
    pub id: String,
    /// Why (the applicant sees it).
    #[arg(long)]
    pub reason: String,
}

/// `sluice admin agreement …`.
#[derive(Debug, Subcommand)]
pub enum AgreementCommand {
    /// Publish the next version of a dataset's data-use agreement from a text file.
    Publish {
        /// Dataset id.
        dataset: String,
        /// The agreement's text (UTF-8).
        #[arg(long)]
        file: PathBuf,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
}

/// Runs an application command.
pub async fn application(c: &RegistryClient, cmd: ApplicationCommand) -> anyhow::Result<Reply> {
    Ok(match cmd {
        ApplicationCommand::List { status, overdue, on } => {
            let mut q: Vec<String> = Vec::new();
            if let Some(s) = status {
                q.push(format!("status={}", url_part(&s)));
            }
            if overdue {
                q.push("overdue=1".into());
            }
            if let Some(d) = on {
                q.push(format!("on={}", url_part(&d)));
            }
            let path = if q.is_empty() {
                "/admin/applications".to_owned()
            } else {
                format!("/admin/applications?{}", q.join("&"))
            };
            c.get(&path).await?
        }
        ApplicationCommand::Show { id } => c.get(&format!("/admin/applications/{}", url_part(&id))).await?,
        ApplicationCommand::Approve(a) => {
            c.post(
                &format!("/admin/applications/{}/approve", url_part(&a.application)),
                &terms_body(&a.terms)?,
            )
            .await?
        }
        ApplicationCommand::Reject(d) => decide(c, "reject", d).await?,
        ApplicationCommand::Ask(d) => decide(c, "ask", d).await?,
    })
}

/// Runs an agreement command.
pub async fn agreement(c: &RegistryClient, cmd: AgreementCommand) -> anyhow::Result<Reply> {
    Ok(match cmd {
        AgreementCommand::Publish {
            dataset,
            file,
            reason,
        } => {
            let text = std::fs::read_to_string(&file)?;
            c.post(
                "/admin/agreements",
                &json!({ "dataset": dataset, "text": text, "reason": reason }),
            )
            .await?
        }
    })
}

async fn decide(c: &RegistryClient, verb: &str, d: DecideArgs) -> anyhow::Result<Reply> {
    Ok(c.post(
        &format!("/admin/applications/{}/{verb}", url_part(&d.id)),
        &json!({ "reason": d.reason }),
    )
    .await?)
}

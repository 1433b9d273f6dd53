//! `sluice admin demand …`: the public demand list at the registry (`/admin/demands`): the
//! entries with every request's reason and contact, and the agencies' answers (planned with a
//! date, opened, refused; each an audited admin change, `demand.answer`).

use crate::admin::{url_part, Output};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use sluice_net::registry_client::RegistryClient;

/// `sluice admin demand …`.
#[derive(Debug, Subcommand)]
pub enum DemandCommand {
    /// List the entries, the most requested first, with their requests and contacts.
    List {
        /// Only entries in this state: open (not answered), planned, opened or refused.
        #[arg(long, value_parser = ["open", "planned", "opened", "refused"])]
        status: Option<String>,
    },
    /// Show one entry with its requests.
    Show {
        /// Entry id (`dem-…`).
        id: String,
    },
    /// Answer an entry (answering again replaces the answer); the public list shows it.
    Answer(AnswerArgs),
}

/// `sluice admin demand answer`.
#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// Entry id (`dem-…`).
    pub id: String,
    /// planned (needs --date, today or later), opened or refused.
    #[arg(long, value_parser = ["planned", "opened", "refused"])]
    pub status: String,
    /// YYYY-MM-DD: the day it will be opened (planned) or was opened (opened, optional).
    #[arg(long)]
    pub date: Option<String>,
    /// Why (shown to the public).
    #[arg(long)]
    pub reason: String,
}

/// The body of `POST /admin/demands/<id>/answer`.
pub fn answer_body(a: &AnswerArgs) -> Value {
    let mut b = json!({ "status": a.status, "reason": a.reason });
    if let Some(d) = &a.date {
        b["date"] = json!(d);
    }
    b
}

/// Runs a demand command against the registry.
pub async fn execute(c: &RegistryClient, cmd: DemandCommand) -> anyhow::Result<Output> {
    let reply = match cmd {
        DemandCommand::List { status: None } => c.get("/admin/demands").await?,
        DemandCommand::List { status: Some(s) } => {
            c.get(&format!("/admin/demands?status={}", url_part(&s))).await?
        }
        DemandCommand::Show { id } => c.get(&format!("/admin/demands/{}", url_part(&id))).await?,
        DemandCommand::Answer(a) => {
            c.post(
                &format!("/admin/demands/{}/answer", url_part(&a.id)),
                &answer_body(&a),
            )
            .await?
        }
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
        demand: DemandCommand,
    }

    fn answer(args: &[&str]) -> Result<Value, String> {
        let cli = Cli::try_parse_from([&["demand", "answer"], args].concat()).map_err(|e| e.to_string())?;
        match cli.demand {
            DemandCommand::Answer(a) => Ok(answer_body(&a)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn answer_builds_the_registry_s_body() {
        let b = answer(&[
            "dem-1",
            "--status",
            "planned",
            "--date",
            "2027-03-01",
            "--reason",
            "in the 2027 list",
        ])
        .unwrap();
        let n: sluice_registry::demand::NewAnswer = serde_json::from_value(b).unwrap();
        assert_eq!(n.status, sluice_registry::demand::AnswerStatus::Planned);
        assert_eq!(
            (n.date.as_deref(), n.reason.as_str()),
            (Some("2027-03-01"), "in the 2027 list")
        );
        let b = answer(&["dem-1", "--status", "refused", "--reason", "personal data"]).unwrap();
        assert_eq!(b, json!({ "status": "refused", "reason": "personal data" }));
        assert!(answer(&["dem-1", "--status", "maybe", "--reason", "r"]).is_err());
        assert!(answer(&["dem-1", "--status", "opened"]).is_err());
        let list = Cli::try_parse_from(["demand", "list", "--status", "open"]).unwrap();
        assert!(matches!(list.demand, DemandCommand::List { status: Some(s) } if s == "open"));
    }
}

//! `sluice audit` against a real log folder: verify names the first bad record, tail and
//! query print one line per record, the clap definition is valid.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice::audit_cli::{run_to, AuditCommand};
use sluice_agency::audit::{AuditLog, AuditOptions, AuditRecord, Head};
use std::path::Path;
use std::process::ExitCode;

fn rec(i: u64) -> AuditRecord {
    AuditRecord {
        request_id: format!("req-{i}"),
        licensee: Some(if i.is_multiple_of(2) { "acme" } else { "globex" }.to_owned()),
        dataset: Some(if i.is_multiple_of(3) { "hydrants" } else { "roads" }.to_owned()),
        decision: if i.is_multiple_of(4) { "deny" } else { "allow" }.to_owned(),
        reason: i.is_multiple_of(4).then(|| "no-licence".to_owned()),
        status: if i.is_multiple_of(4) { 403 } else { 200 },
        records_out: i,
        method: "GET".into(),
        path: "/v1/datasets/roads/records".into(),
        ..AuditRecord::default()
    }
}

async fn write_log(dir: &Path, n: u64) -> Head {
    let log = AuditLog::open(dir, AuditOptions::default()).await.unwrap();
    for i in 1..=n {
        log.append(rec(i)).await.unwrap();
    }
    let head = log.head();
    log.close().await.unwrap();
    head
}

/// Rewrites the lines of the first segment.
fn edit_first_segment(dir: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let path = dir.join("audit-000001.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    f(&mut lines);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

fn cli(cmd: AuditCommand) -> (ExitCode, String) {
    let mut out = Vec::new();
    let code = run_to(cmd, &mut out).unwrap();
    (code, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn cli_verify_names_the_first_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let head = write_log(dir.path(), 6).await;
    let d = dir.path().to_owned();
    let (code, out) = cli(AuditCommand::Verify {
        dir: d.clone(),
        anchor_seq: None,
        anchor_hash: None,
        json: false,
    });
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(
        out.contains("6 records verified in 1 segments") && out.contains("chain OK"),
        "{out}"
    );
    let anchored = AuditCommand::Verify {
        dir: d.clone(),
        anchor_seq: Some(head.seq),
        anchor_hash: Some(head.hash.clone()),
        json: false,
    };
    assert_eq!(cli(anchored).0, ExitCode::SUCCESS);

    edit_first_segment(dir.path(), |lines| lines[2] = lines[2].replace("req-3", "req-X"));
    let (code, out) = cli(AuditCommand::Verify {
        dir: d.clone(),
        anchor_seq: None,
        anchor_hash: None,
        json: false,
    });
    assert_eq!(code, ExitCode::from(1));
    assert!(
        out.contains("CHAIN BROKEN at audit-000001.jsonl line 3 (seq 3): hash mismatch"),
        "{out}"
    );

    let (code, out) = cli(AuditCommand::Verify {
        dir: d,
        anchor_seq: None,
        anchor_hash: None,
        json: true,
    });
    assert_eq!(code, ExitCode::from(1));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["first_bad"]["line"], 3);
}

#[tokio::test]
async fn cli_tail_and_query_print_one_line_per_record() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 8).await;
    let d = dir.path().to_owned();
    let (_, out) = cli(AuditCommand::Tail {
        dir: d.clone(),
        n: 3,
        follow: false,
        json: false,
    });
    assert_eq!(out.lines().count(), 4, "{out}"); // header + 3
    assert!(out.lines().nth(1).unwrap().trim_start().starts_with('6'));
    let (_, out) = cli(AuditCommand::Query {
        dir: d,
        licensee: Some("acme".into()),
        dataset: None,
        since: None,
        until: None,
        decision: Some("deny".into()),
        limit: None,
        json: true,
    });
    let seqs: Vec<u64> = out
        .lines()
        .map(|l| serde_json::from_str::<AuditRecord>(l).unwrap().seq)
        .collect();
    assert_eq!(seqs, [4, 8]);
}

#[test]
fn cli_definition_is_valid() {
    use clap::{CommandFactory, Parser};
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: AuditCommand,
    }
    Cli::command().debug_assert();
    let parsed = Cli::try_parse_from(["x", "verify", "/tmp/a", "--anchor-seq", "3"]);
    assert!(parsed.is_err(), "an anchor needs both seq and hash");
    let parsed = Cli::try_parse_from([
        "x",
        "query",
        "/tmp/a",
        "--since",
        "2025-03-01",
        "--decision",
        "deny",
    ])
    .unwrap();
    let AuditCommand::Query { since, .. } = parsed.cmd else {
        panic!("query")
    };
    assert_eq!(since, Some(time::macros::datetime!(2025-03-01 0:00 UTC)));
    assert!(Cli::try_parse_from(["x", "query", "/tmp/a", "--decision", "maybe"]).is_err());
    assert!(Cli::try_parse_from(["x", "tail", "/tmp/a", "-n", "5", "-f", "--json"]).is_ok());
}

//! The `sluice certs` subcommand, driven through clap as the binary would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use clap::{CommandFactory, Parser};
use sluice_certs::cli::{run_with_output, CertsCommand};
use sluice_certs::*;

#[derive(Parser)]
#[command(name = "certs")]
struct Cli {
    #[command(subcommand)]
    cmd: CertsCommand,
}

fn run(args: &[&str]) -> Result<String> {
    let cli = Cli::try_parse_from(std::iter::once("certs").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let mut out = Vec::new();
    run_with_output(cli.cmd, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn command_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn full_workflow() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");
    let out = run(&["init-ca", "--dir", s(&ca), "--cn", "test root", "--days", "30"]).unwrap();
    assert!(out.contains("created root CA"), "{out}");
    assert!(matches!(
        run(&["init-ca", "--dir", s(&ca)]),
        Err(CertError::AlreadyExists(_))
    ));

    let out = run(&[
        "issue",
        "licensee",
        "--dir",
        s(&ca),
        "--id",
        "acme",
        "--days",
        "1",
    ])
    .unwrap();
    assert!(out.contains("issued licensee certificate"), "{out}");
    let cert = ca.join("issued/licensee-acme.pem");
    assert!(cert.is_file() && ca.join("issued/licensee-acme.key").is_file());
    let id = identity_from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    assert_eq!(id.id, "acme");
    assert!(days_to_expiry(&std::fs::read_to_string(&cert).unwrap()).unwrap() <= 1);

    // Issuing again over existing files is refused (before anything is issued) unless --force.
    let again = run(&["issue", "licensee", "--dir", s(&ca), "--id", "acme"]);
    assert!(matches!(again, Err(CertError::AlreadyExists(_))));
    assert_eq!(Ca::open(&ca).unwrap().index().unwrap().len(), 1);
    run(&[
        "issue",
        "licensee",
        "--dir",
        s(&ca),
        "--id",
        "acme",
        "--force",
        "--days",
        "1",
    ])
    .unwrap();
    let id = identity_from_pem(&std::fs::read(&cert).unwrap()).unwrap();

    run(&["issue", "admin", "--dir", s(&ca), "--name", "alice"]).unwrap();
    assert!(ca.join("issued/admin-alice.pem").is_file());
    run(&["issue", "gateway-client", "--dir", s(&ca), "--id", "agency-a"]).unwrap();
    assert!(ca.join("issued/gateway-client-agency-a.pem").is_file());
    let gw_out = tmp.path().join("gw");
    run(&[
        "issue",
        "gateway",
        "--dir",
        s(&ca),
        "--dns",
        "localhost",
        "--dns",
        "gw.example",
        "--ip",
        "127.0.0.1",
        "--out",
        s(&gw_out),
        "--name",
        "server",
    ])
    .unwrap();
    assert!(gw_out.join("server.pem").is_file() && gw_out.join("server.key").is_file());

    let out = run(&["renew", "--dir", s(&ca), "--cert", s(&cert), "--days", "10"]).unwrap();
    assert!(out.contains("licensee-acme.pem"), "{out}");
    let renewed = identity_from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    assert_eq!(renewed.id, "acme");
    assert_ne!(renewed.serial_hex, id.serial_hex);

    let out = run(&[
        "revoke",
        "--dir",
        s(&ca),
        "--serial",
        &id.serial_hex,
        "--reason",
        "superseded",
    ])
    .unwrap();
    assert!(out.contains("revoked"), "{out}");
    let list = run(&["list", "--dir", s(&ca)]).unwrap();
    assert_eq!(list.lines().count(), 1 + 6, "{list}");
    assert!(list.contains("revoked (superseded"), "{list}");
    assert!(list.contains("urn:sluice:admin:alice"), "{list}");

    let crl_path = tmp.path().join("pub/crl.pem");
    run(&[
        "crl",
        "--dir",
        s(&ca),
        "--next-update-hours",
        "12",
        "--out",
        s(&crl_path),
    ])
    .unwrap();
    let crl = openssl::x509::X509Crl::from_pem(&std::fs::read(&crl_path).unwrap()).unwrap();
    assert_eq!(crl.get_revoked().unwrap().len(), 1);
    run(&["crl", "--dir", s(&ca)]).unwrap();
    assert!(ca.join("crl.pem").is_file());

    let text = run(&["inspect", s(&cert)]).unwrap();
    assert!(text.contains("urn:sluice:licensee:acme"), "{text}");
    assert!(text.contains("clientAuth"), "{text}");
    assert!(matches!(
        run(&["inspect", s(&tmp.path().join("nope.pem"))]),
        Err(CertError::Io { .. })
    ));
}

#[test]
fn intermediate_via_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let inter = tmp.path().join("inter");
    run(&["init-ca", "--dir", s(&root), "--algorithm", "ec-p256"]).unwrap();
    let out = run(&["init-ca", "--dir", s(&inter), "--intermediate-of", s(&root)]).unwrap();
    assert!(out.contains("intermediate"), "{out}");
    run(&["issue", "licensee", "--dir", s(&inter), "--id", "acme"]).unwrap();
    let chain = inter.join("issued/licensee-acme.chain.pem");
    assert!(chain.is_file());
    let text = run(&["inspect", s(&chain)]).unwrap();
    assert!(text.contains("certificate #2 of 2"), "{text}");
    assert!(text.contains("CN=sluice intermediate CA"), "{text}");
    let list = run(&["list", "--dir", s(&root)]).unwrap();
    assert!(list.contains("intermediate-ca"), "{list}");
}

#[test]
fn bad_arguments_are_rejected() {
    assert!(Cli::try_parse_from(["certs", "init-ca", "--algorithm", "dsa"]).is_err());
    assert!(Cli::try_parse_from(["certs", "issue", "gateway", "--ip", "not-an-ip"]).is_err());
    assert!(Cli::try_parse_from(["certs", "revoke", "--serial", "01", "--reason", "because"]).is_err());
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");
    run(&["init-ca", "--dir", s(&ca)]).unwrap();
    assert!(matches!(
        run(&["issue", "licensee", "--dir", s(&ca), "--id", "a/b"]),
        Err(CertError::InvalidId(_))
    ));
    assert!(run(&["issue", "licensee", "--dir", s(&ca), "--id", "a", "--days", "0"]).is_err());
    assert!(run(&["issue", "gateway", "--dir", s(&ca)]).is_err());
    assert!(matches!(
        run(&["revoke", "--dir", s(&ca), "--serial", "zz"]),
        Err(CertError::InvalidInput(_))
    ));
    assert!(matches!(
        run(&["list", "--dir", s(&tmp.path().join("none"))]),
        Err(CertError::NotACa { .. })
    ));
}

#[test]
fn ca_dir_defaults_and_env() {
    let Cli { cmd } = Cli::try_parse_from(["certs", "list"]).unwrap();
    let CertsCommand::List { dir } = cmd else { panic!() };
    let from_env = std::env::var_os("SLUICE_CA_DIR");
    match from_env {
        Some(v) => assert_eq!(dir.dir, Path::new(&v)),
        None => assert_eq!(dir.dir, Path::new("./state/ca")),
    }
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains("init-ca") && help.contains("inspect"), "{help}");
    let mut issue = Cli::command();
    let licensee = issue
        .find_subcommand_mut("issue")
        .unwrap()
        .find_subcommand_mut("licensee")
        .unwrap();
    let help = licensee.render_long_help().to_string();
    assert!(help.contains("SLUICE_CA_DIR"), "{help}");
}

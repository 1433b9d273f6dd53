//! The `sluice` binary's operator commands: `check` (like `nginx -t`) and `audit verify`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn sluice(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pki(dir: &Path) {
    let ca = sluice_certs::Ca::init(dir.join("ca"), sluice_certs::InitOptions::default()).unwrap();
    sluice_certs::issue_gateway(
        &ca,
        sluice_certs::IssueGateway {
            dns: vec!["localhost".into()],
            ips: vec![],
            days: 10,
        },
    )
    .unwrap()
    .write_to(dir.join("certs"), "gateway")
    .unwrap();
}

const CONFIG: &str = r#"
[gateway]
id = "gw-1"
state_dir = "state"

[listeners.data]
addr = "127.0.0.1:0"
cert = "certs/gateway.pem"
key = "certs/gateway.key"
client_ca = "ca/ca.pem"

[sources.parks]
kind = "http"
url = "http://127.0.0.1:9/parks"

[[datasets]]
id = "parks"
fields = [{ name = "name" }]
"#;

#[test]
fn check_accepts_a_good_config_and_names_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let good = dir.path().join("good.toml");
    std::fs::write(&good, CONFIG).unwrap();
    let (code, out, err) = sluice(&["check", "--config", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok (1 datasets, 0 licences)"), "{out}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        CONFIG
            .replace("ca/ca.pem", "ca/nope.pem")
            .replace("\"gw-1\"", "\"gw 1\""),
    )
    .unwrap();
    let (code, _, err) = sluice(&["check", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("listeners.data.client_ca") && err.contains("gateway.id"),
        "{err}"
    );
    assert!(err.contains("configuration test failed"), "{err}");

    // A key that is not a key is caught too (TLS material is loaded, not only checked to exist).
    std::fs::write(dir.path().join("certs/gateway.key"), "not a key").unwrap();
    let (code, _, err) = sluice(&["check", "--config", good.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("gateway.key"), "{err}");
}

#[tokio::test]
async fn audit_verify_exits_non_zero_on_a_broken_chain() {
    use sluice_agency::audit::{AuditLog, AuditOptions, AuditRecord};
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), AuditOptions::default()).await.unwrap();
    for n in 0..3 {
        let r = AuditRecord {
            request_id: format!("r{n}"),
            status: 200,
            ..AuditRecord::default()
        };
        log.append(r).await.unwrap();
    }
    log.close().await.unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, out, _) = sluice(&["audit", "verify", d]);
    assert_eq!(code, 0, "{out}");
    let seg = dir.path().join("audit-000001.jsonl");
    let text = std::fs::read_to_string(&seg).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&seg, format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1])).unwrap();
    let (code, out, err) = sluice(&["audit", "verify", d]);
    assert_ne!(code, 0);
    assert!(format!("{out}{err}").contains("line 2"), "{out}{err}");
}

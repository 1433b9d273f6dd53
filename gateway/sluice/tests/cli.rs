//! The `sluice` binary's operator commands: `check` (like `nginx -t`) on both kinds of config
//! (the registry's and a gateway's, told apart by their tables or `--kind`, each validated as
//! its server would at start) and `audit verify`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice::demo::config::{self, RegistryLink, FIRE};
use std::path::{Path, PathBuf};
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

    // A source credential: where it comes from is said, its value never.
    std::fs::write(dir.path().join("token"), "Bearer t0p-s3cret\n").unwrap();
    let with_token = dir.path().join("token.toml");
    std::fs::write(
        &with_token,
        CONFIG.replace(
            "url = \"http://127.0.0.1:9/parks\"",
            "url = \"http://127.0.0.1:9/parks\"\nheaders = [{ name = \"Authorization\", file = \"token\" }]",
        ),
    )
    .unwrap();
    let (code, out, err) = sluice(&["check", "--config", with_token.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("source credentials: parks Authorization from file "),
        "{out}"
    );
    assert!(
        !out.contains("t0p-s3cret") && !err.contains("t0p-s3cret"),
        "{out}{err}"
    );

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

fn check(file: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["check", "--config", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    sluice(&args)
}

/// A folder laid out like the demo's: the CA, the registry's and agency A's certificates, the
/// demo's `registry.toml` and agency A's `gateway.toml` (as `sluice demo` writes them).
struct Files {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    registry: PathBuf,
    gateway: PathBuf,
}

fn demo_files() -> Files {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let ca = sluice_certs::Ca::init(dir.join("ca"), sluice_certs::InitOptions::default()).unwrap();
    let certs = dir.join("certs");
    for name in [FIRE.server_cert, "registry"] {
        sluice_certs::issue_gateway(
            &ca,
            sluice_certs::IssueGateway {
                dns: vec!["localhost".into()],
                ips: vec![],
                days: 10,
            },
        )
        .unwrap()
        .write_to(&certs, name)
        .unwrap();
    }
    sluice_certs::issue_gateway_client(&ca, FIRE.id, 10)
        .unwrap()
        .write_to(&certs, &format!("{}-client", FIRE.id))
        .unwrap();

    let registry = dir.join("registry.toml");
    std::fs::write(&registry, config::registry_config()).unwrap();

    let signing = sluice_registry::keys::load_or_create(&dir.join("signing.key")).unwrap();
    let public_key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(signing.verifying_key().as_bytes())
    };
    let link = RegistryLink {
        url: "https://localhost:7443",
        public_key: &public_key,
    };
    let source = "127.0.0.1:9".parse().unwrap();
    let gateway = dir.join(FIRE.config_file);
    std::fs::write(
        &gateway,
        config::gateway_config(
            &dir,
            &FIRE,
            &link,
            &config::fire_sources(source),
            sluice::demo::DATASETS,
        ),
    )
    .unwrap();
    Files {
        _tmp: tmp,
        dir,
        registry,
        gateway,
    }
}

/// Writes `text` to `name` in the folder; returns its path.
fn write(f: &Files, name: &str, text: &str) -> PathBuf {
    let p = f.dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_accepts_the_demos_registry_config_and_a_gateway_config() {
    let f = demo_files();
    let (code, out, err) = check(&f.registry, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("registry.toml: ok (registry on 127.0.0.1:0, SQLite in "),
        "{out}"
    );
    // Checking makes nothing: no state folder, no signing key, no database.
    assert!(!f.dir.join("state-registry").exists());
    let (code, out, err) = check(&f.registry, &["--kind", "registry"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok (registry"), "{out}");

    let (code, out, err) = check(&f.gateway, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("gateway.toml: ok (2 datasets, 0 licences)"), "{out}");

    // Told the wrong kind, it fails naming the field and the kind it checked for.
    let (code, _, err) = check(&f.registry, &["--kind", "gateway"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown field `addr`"), "{err}");
    assert!(
        err.contains("checked as a gateway config (--kind gateway)"),
        "{err}"
    );
    assert!(err.contains("configuration test failed"), "{err}");
}

#[test]
fn check_names_the_bad_field_of_a_broken_registry_config() {
    let f = demo_files();
    let good = config::registry_config();
    let hint = "checked as a registry config (it has [registry] with `addr`); \
                if it is a gateway config, pass --kind gateway";

    let bad = write(&f, "bad-ca.toml", &good.replace("ca/ca.pem", "ca/nope.pem"));
    let (code, _, err) = check(&bad, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("registry.client_ca: ") && err.contains("nope.pem"),
        "{err}"
    );
    assert!(err.contains(hint), "{err}");
    assert!(err.contains("bad-ca.toml: configuration test failed"), "{err}");

    // A gateway's key in the registry's table: named by the parser.
    let bad = write(
        &f,
        "bad-key.toml",
        &good.replace("[registry]\n", "[registry]\nurl = \"https://localhost:7443\"\n"),
    );
    let (code, _, err) = check(&bad, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown field `url`"), "{err}");
    assert!(err.contains(hint), "{err}");

    let bad = write(
        &f,
        "bad-db.toml",
        &format!("{good}database_url = \"mysql://localhost/sluice\"\n"),
    );
    let (code, _, err) = check(&bad, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("registry.database_url"), "{err}");

    // TLS material is loaded, not only checked to exist.
    std::fs::write(f.dir.join("certs/registry.key"), "not a key").unwrap();
    let (code, _, err) = check(&f.registry, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("registry.key: "), "{err}");
}

#[test]
fn check_names_the_bad_field_of_a_broken_gateway_config() {
    let f = demo_files();
    let good = std::fs::read_to_string(&f.gateway).unwrap();
    let hint = "checked as a gateway config (it has [gateway]); \
                if it is a registry config, pass --kind registry";

    let bad = write(
        &f,
        "bad-interval.toml",
        &good.replace("[registry]\n", "[registry]\nusage_interval_s = 0\n"),
    );
    let (code, _, err) = check(&bad, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("registry.usage_interval_s"), "{err}");
    assert!(err.contains(hint), "{err}");
    assert!(err.contains("configuration test failed"), "{err}");

    // The registry's own key in a gateway's [registry]: the mix-up the other way round.
    let bad = write(
        &f,
        "bad-addr.toml",
        &good.replace("[registry]\n", "[registry]\naddr = \"127.0.0.1:7443\"\n"),
    );
    let (code, _, err) = check(&bad, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown field `addr`"), "{err}");
    assert!(err.contains(hint), "{err}");
}

#[test]
fn check_says_which_kinds_it_knows_when_it_cannot_tell() {
    let f = demo_files();
    let unknown = write(&f, "unknown.toml", "[server]\nport = 8443\n");
    let (code, out, err) = check(&unknown, &[]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains("cannot tell whether this is a gateway config"),
        "{err}"
    );
    assert!(err.contains("pass --kind gateway or --kind registry"), "{err}");

    // Only a gateway's [registry] (where the registry is): checked as a gateway config.
    let half = write(&f, "half.toml", "[registry]\nurl = \"https://localhost:7443\"\n");
    let (code, _, err) = check(&half, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("missing field `cert`"), "{err}");
    assert!(
        err.contains("checked as a gateway config (its [registry] has `url`, as a gateway's does)"),
        "{err}"
    );
}

/// `check --connect` reaches the sources: a SQLite register whose declared columns all exist
/// passes and says what it read; a declared column the table lacks, a dataset field the source
/// does not declare and an unreachable HTTP source each fail, named by path.
#[test]
fn check_connect_reaches_every_source_and_names_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let db = dir.path().join("utilities.sqlite");
    sluice::demo::utilities::write_sqlite(&db, &sluice::demo::utilities::generate()[..3]).unwrap();
    let sqlite = config::utilities_sources(&db);
    let datasets = config::UTILITIES_DATASETS;
    let base = CONFIG.replace(
        "[sources.parks]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/parks\"\n\n[[datasets]]\nid = \"parks\"\nfields = [{ name = \"name\" }]\n",
        "",
    );
    let good = dir.path().join("sqlite.toml");
    std::fs::write(&good, format!("{base}{sqlite}{datasets}")).unwrap();
    let (code, out, err) = sluice(&["check", "--connect", "--config", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("sources reached: enterprise-utilities (sqlite): 11 columns read, 1 row"),
        "{out}"
    );
    // Without --connect nothing is reached.
    let (code, out, _) = sluice(&["check", "--config", good.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(!out.contains("sources reached"), "{out}");

    // A licence that hides the key still sees its order: a warning, not a failure.
    let licence = |key_rule: &str| {
        format!(
            "\n[[licences]]\nid = \"l1\"\nlicensee = \"acme\"\ndataset = \"enterprise-utilities\"\n\
             scenario = \"s\"\nvalid_from = \"2025-01-01T00:00:00Z\"\nvalid_until = \"2035-01-01T00:00:00Z\"\n\
             fields.month = {{ rule = \"clear\" }}\n{key_rule}"
        )
    };
    let hidden = dir.path().join("hidden-key.toml");
    std::fs::write(&hidden, format!("{base}{sqlite}{datasets}{}", licence(""))).unwrap();
    let (code, _, err) = sluice(&["check", "--config", hidden.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "warning: licence l1 does not show enterprise-utilities's key column \"use_id\" in clear"
        ),
        "{err}"
    );

    // A declared column the table does not have.
    let missing = dir.path().join("missing.toml");
    std::fs::write(
        &missing,
        format!(
            "{base}{}{datasets}",
            sqlite.replace("use_id = \"text\",", "use_id = \"text\", meter = \"text\",")
        ),
    )
    .unwrap();
    let (code, _, err) = sluice(&["check", "--connect", "--config", missing.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("sources.enterprise-utilities (sqlite): ") && err.contains("meter"),
        "{err}"
    );

    // A dataset field the source does not declare, and an HTTP source nobody serves.
    let undeclared = dir.path().join("undeclared.toml");
    std::fs::write(
        &undeclared,
        format!(
            "{CONFIG}{}{datasets}",
            sqlite.replace(" contact_phone = \"text\",", "")
        ),
    )
    .unwrap();
    let (code, _, err) = sluice(&["check", "--connect", "--config", undeclared.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("sources.enterprise-utilities.table.columns: the dataset's field \"contact_phone\" is not a declared column"),
        "{err}"
    );
    assert!(err.contains("sources.parks (http): "), "{err}");
}

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A minimal valid gateway config in `dir` (placeholder TLS files written there).
pub(crate) fn base(dir: &Path) -> String {
    for f in ["cert.pem", "key.pem", "ca.pem"] {
        write(dir, f, "placeholder");
    }
    r#"
[gateway]
id = "gw-1"
state_dir = "state"

[listeners.data]
addr = "127.0.0.1:0"
cert = "cert.pem"
key = "key.pem"
client_ca = "ca.pem"

[sources.parks]
kind = "http"
url = "http://127.0.0.1:9/parks"

[[datasets]]
id = "parks"
fields = [{ name = "name" }, { name = "area" }]
"#
    .to_owned()
}

#[test]
fn a_good_config_loads_with_paths_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "gw.toml", &base(dir.path()));
    let cfg = Config::load(&path).unwrap();
    assert_eq!(cfg.listeners.data.cert, dir.path().join("cert.pem"));
    assert_eq!(cfg.gateway.state_dir, dir.path().join("state"));
    assert_eq!(cfg.limits.max_headers, Limits::default().max_headers);
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let text = base(dir.path()).replace("[gateway]\n", "[gateway]\ncolour = \"blue\"\n");
    let path = write(dir.path(), "gw.toml", &text);
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn every_bad_value_is_named_by_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let text = base(dir.path())
        .replace("id = \"gw-1\"", "id = \"gw 1\"")
        .replace("key = \"key.pem\"", "key = \"missing.pem\"")
        .replace("{ name = \"area\" }", "{ name = \"name\" }")
        + r#"
[sources.ghost]
kind = "http"
url = "ftp://x"

[[licences]]
id = "l1"
licensee = "acme"
dataset = "parks"
scenario = "s"
valid_from = "2026-01-01T00:00:00Z"
valid_until = "2025-01-01T00:00:00Z"
fields.height = { rule = "clear" }
"#;
    let path = write(dir.path(), "gw.toml", &text);
    let Err(ConfigError::Invalid(problems)) = Config::load(&path) else {
        panic!("expected invalid")
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    for expected in [
        "gateway.id",
        "listeners.data.key",
        "datasets[0].fields[1].name",
        "sources.ghost",
        "licences[0].valid_until",
        "licences[0].fields.height",
    ] {
        assert!(paths.contains(&expected), "{expected} not in {paths:?}");
    }
}

#[test]
fn bad_masking_rule_and_row_filter_fail_to_parse() {
    let dir = tempfile::tempdir().unwrap();
    let lic = |extra: &str| {
        format!(
            r#"
[[licences]]
id = "l1"
licensee = "acme"
dataset = "parks"
scenario = "s"
valid_from = "2026-01-01T00:00:00Z"
valid_until = "2027-01-01T00:00:00Z"
{extra}
"#
        )
    };
    let path = write(
        dir.path(),
        "a.toml",
        &(base(dir.path()) + &lic("fields.name = { rule = \"scramble\" }")),
    );
    assert!(Config::load(&path).unwrap_err().to_string().contains("scramble"));
    let path = write(
        dir.path(),
        "b.toml",
        &(base(dir.path()) + &lic("row_filter = \"name ~ 'x'\"\nfields.name = { rule = \"clear\" }")),
    );
    assert!(Config::load(&path)
        .unwrap_err()
        .to_string()
        .contains("row filter"));
}

fn with_registry(dir: &Path, extra: &str) -> String {
    let public = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        ed25519_dalek::SigningKey::from_bytes(&[3; 32])
            .verifying_key()
            .as_bytes(),
    );
    format!(
        "{}\n[registry]\nurl = \"https://127.0.0.1:7443\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\nca = \"ca.pem\"\npublic_key = \"{public}\"\n{extra}",
        base(dir)
    )
}

#[test]
fn usage_interval_defaults_to_a_minute_and_must_be_positive() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "gw.toml", &with_registry(dir.path(), ""));
    let cfg = Config::load(&path).unwrap();
    assert_eq!(cfg.registry.unwrap().usage_interval_s, 60);
    let path = write(
        dir.path(),
        "gw.toml",
        &with_registry(dir.path(), "usage_interval_s = 0\n"),
    );
    let Err(ConfigError::Invalid(problems)) = Config::load(&path) else {
        panic!("expected invalid")
    };
    assert!(
        problems.iter().any(|p| p.path == "registry.usage_interval_s"),
        "{problems:?}"
    );
}

#[test]
fn fingerprint_declarations_need_a_record_key_and_a_usable_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let marked = r#"fields = [{ name = "name" }, { name = "area", fingerprint = { tolerance = 0.01 } }]"#;
    let with = |fields: &str, key: Option<&str>| {
        let mut text = base(dir.path()).replace(r#"fields = [{ name = "name" }, { name = "area" }]"#, fields);
        if let Some(k) = key {
            text = text.replace(
                "id = \"parks\"\n",
                &format!("id = \"parks\"\nrecord_key = \"{k}\"\n"),
            );
        }
        Config::load(&write(dir.path(), "gw.toml", &text))
    };
    let problems = |r: Result<Config, ConfigError>| match r {
        Err(ConfigError::Invalid(p)) => p
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect::<Vec<_>>(),
        other => panic!("expected invalid, got {other:?}"),
    };
    let cfg = with(marked, Some("name")).unwrap();
    assert_eq!(cfg.datasets[0].record_key.as_deref(), Some("name"));
    let tol = cfg.datasets[0].fields[1].fingerprint.unwrap().tolerance();
    assert_eq!(tol, sluice_policy::mask::fingerprint::Tolerance::parse("0.01"));

    let p = problems(with(marked, None));
    assert!(
        p[0].starts_with("datasets[0].fields[1].fingerprint.tolerance: a fingerprinted field needs"),
        "{p:?}"
    );
    let p = problems(with(marked, Some("nope")));
    assert_eq!(
        p,
        ["datasets[0].record_key: must name one of the dataset's fields"]
    );
    let p = problems(with(marked, Some("area")));
    assert!(p[0].contains("the record key itself cannot carry marks"), "{p:?}");
    for bad in ["0", "-1", "0.1234567"] {
        let fields = marked.replace("0.01", bad);
        let p = problems(with(&fields, Some("name")));
        assert!(p[0].contains("at most six significant digits"), "{bad}: {p:?}");
    }
}

#[test]
fn aggregate_licences_name_fields_the_classification_lets_out() {
    let dir = tempfile::tempdir().unwrap();
    let licence = |mode: &str, aggregate: &str| {
        let text = base(dir.path()).replace(
            r#"fields = [{ name = "name" }, { name = "area" }]"#,
            r#"fields = [{ name = "name" }, { name = "area" }, { name = "warden", grades = { personal = "non_anonymous_non_sensitive" } }, { name = "secret", grades = { personal = "non_anonymous_sensitive" } }]"#,
        ) + &format!(
            "\n[[licences]]\nid = \"l1\"\nlicensee = \"acme\"\ndataset = \"parks\"\nscenario = \"s\"\n\
             valid_from = \"2026-01-01T00:00:00Z\"\nvalid_until = \"2027-01-01T00:00:00Z\"\n\
             fields = {{}}\nmode = \"{mode}\"\n{aggregate}"
        );
        match Config::load(&write(dir.path(), "gw.toml", &text)) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid(p)) => p
                .into_iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect(),
            Err(e) => panic!("{e}"),
        }
    };
    assert!(licence(
        "aggregate",
        r#"aggregate = { group_by = ["name"], measures = ["area"] }"#
    )
    .is_empty());
    assert_eq!(
        licence("aggregate", ""),
        ["licences[0].aggregate: an aggregate licence needs the fields it may group and measure"]
    );
    let p = licence(
        "records",
        r#"aggregate = { group_by = ["warden", "nope"], measures = ["secret"], k = 2 }"#,
    );
    for expected in [
        "licences[0].aggregate: aggregate k = 2 is below the minimum of 3",
        "licences[0].aggregate.group_by[0]: only fields the classification lets out in the clear may be grouped on",
        "licences[0].aggregate.group_by[1]: the dataset has no such field",
        "licences[0].aggregate.measures[0]: a non-open field cannot be measured",
    ] {
        assert!(p.iter().any(|x| x == expected), "{expected} not in {p:?}");
    }
    let p = licence(
        "aggregate",
        r#"aggregate = { group_by = ["name"], dp = { epsilon = 1.0, budget_per_day = 0.5 } }"#,
    );
    assert_eq!(
        p,
        ["licences[0].aggregate.dp: the daily privacy budget must be at least one answer's epsilon"]
    );
}

//! Emergency drills (`sluice admin drill`) with real processes on loopback: the registry, two
//! gateways registered with their data listener's url, the sample source, a drill licensee
//! licensed at both, and `sluice admin`. The drill closes the data through the snapshot feed,
//! measures each gateway's refusal and return, reopens, and the registry keeps the report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use support::federation::{Backend, Federation, Gateway, GatewayOptions, AGENCY, DATASET, RECORDS, SCENARIO};
use support::probe::{fetch, outcome, until};
use support::process::Proc;

/// Bound on waits for a change that has no deadline of its own (start-up, grants).
const EVENTUALLY: Duration = Duration::from_secs(15);
/// The drill licensee.
const PROBE: &str = "drill-probe";
/// Its scenario.
const DRILL_SCENARIO: &str = "emergency-drill";

/// Registers the drill licensee with its scenario and a licence on `fire-hydrants` (valid at
/// every gateway that offers it); returns its (certificate, key).
fn drill_licensee(fed: &Federation) -> (PathBuf, PathBuf) {
    let identity = fed.issue_licensee(PROBE);
    let code17 = "91310115MA1DR1LL0";
    let code = format!(
        "{code17}{}",
        sluice_registry::credit_code::check_char(code17).unwrap()
    );
    fed.admin_cli(&[
        "licensee",
        "add",
        PROBE,
        "--name",
        "Registry operations (drill probe)",
        "--credit-code",
        &code,
        "--reason",
        "emergency drills",
    ]);
    fed.admin_cli(&[
        "scenario",
        "add",
        DRILL_SCENARIO,
        "--title",
        "Emergency drill",
        "--dataset",
        DATASET,
    ]);
    fed.admin_cli(&[
        "grant",
        PROBE,
        DATASET,
        DRILL_SCENARIO,
        "--id",
        "lic-drill",
        "--field",
        "id=clear",
        "--from",
        "2025-01-01",
        "--until",
        "2035-01-01",
        "--rate",
        "1000",
        "--burst",
        "1000",
        "--reason",
        "emergency drills",
    ]);
    identity
}

/// `drill --dataset fire-hydrants` as the drill licensee, then `extra`.
fn drill_args(identity: &(PathBuf, PathBuf), extra: &[&str]) -> Vec<String> {
    drill_cmd(&["--dataset", DATASET], DRILL_SCENARIO, identity, extra)
}

/// `drill <scope>` as the drill licensee declaring `scenario`, then `extra`.
fn drill_cmd(scope: &[&str], scenario: &str, identity: &(PathBuf, PathBuf), extra: &[&str]) -> Vec<String> {
    let (cert, key) = (identity.0.to_str().unwrap(), identity.1.to_str().unwrap());
    let mut args = vec!["drill"];
    args.extend(scope);
    args.extend(["--probe-cert", cert, "--probe-key", key, "--scenario", scenario]);
    args.extend(extra);
    args.iter().map(|s| s.to_string()).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Waits until `gw` serves both the drill licensee and `acme`.
async fn serving(fed: &Federation, gw: &Gateway) {
    until(
        &fed.licensee_client_as(gw, PROBE),
        RECORDS,
        DRILL_SCENARIO,
        "",
        EVENTUALLY,
    )
    .await;
    until(&fed.licensee_client(gw), RECORDS, SCENARIO, "", EVENTUALLY).await;
}

/// The dataset's `closed` flag at the registry.
async fn closed_at_registry(fed: &Federation) -> bool {
    let catalog = fed.admin.get("/admin/datasets").await.unwrap().json();
    let entry = catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["spec"]["id"] == DATASET)
        .unwrap()
        .clone();
    entry["closed"].as_bool().unwrap()
}

fn gateway<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {report}"))
}

fn options() -> GatewayOptions {
    GatewayOptions::default()
}

async fn a_drill_closes_and_reopens_the_data_at_every_gateway(b: Backend) {
    let fed = Federation::start(b).await;
    let identity = drill_licensee(&fed);
    let running = [
        fed.gateway_with_url("gw-a", options()),
        fed.gateway_with_url("gw-b", options()),
    ];
    fed.grant("l1", SCENARIO);
    for gw in &running {
        serving(&fed, gw).await;
    }

    let args = drill_args(&identity, &["--duration", "300ms"]);
    let (code, out, err) = fed.admin_cli_raw(&strs(&args));
    assert_eq!(code, 0, "{out}\n{err}");
    let printed: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let id = printed["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            &printed["scope"],
            &printed["dataset"],
            &printed["bound_ms"],
            &printed["duration_ms"],
            &printed["admin"],
            &printed["complied_all"],
        ),
        (
            &json!("dataset"),
            &json!(DATASET),
            &json!(1000),
            &json!(300),
            &json!("alice"),
            &json!(true)
        ),
        "{printed}"
    );
    assert!(printed.get("error").is_none(), "{printed}");
    assert_eq!(printed["gateways"].as_array().unwrap().len(), 2);
    for gw in &running {
        let g = gateway(&printed, &gw.id);
        assert_eq!(g["complied"], true, "{g}");
        assert_eq!(g["url"], format!("https://localhost:{}", gw.data.port()));
        let closed = g["closed_after_ms"].as_u64().unwrap();
        let reopened = g["reopened_after_ms"].as_u64().unwrap();
        assert!(closed < 1000 && reopened < 1000, "{g}");
        eprintln!(
            "{}: refused after {closed} ms, served again after {reopened} ms",
            gw.id
        );
    }
    // The data stayed closed at least the duration.
    let at = |k: &str| {
        time::OffsetDateTime::parse(
            printed[k].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert!(at("finished_at") - at("started_at") >= time::Duration::milliseconds(300));
    assert!(
        err.contains(&format!("drill {id}: 2 of 2 gateways complied")),
        "{err}"
    );

    // Kept at the registry, as printed; `sluice admin drill list` shows it.
    let stored = fed.admin.get("/admin/drills").await.unwrap().json();
    assert_eq!(stored.as_array().unwrap().len(), 1);
    assert_eq!(stored[0], printed);
    assert_eq!(fed.admin_cli(&["drill", "list"]), stored);
    // The change log shows the drill's own changes.
    let changes = fed.admin_cli(&["changes"]);
    let reason = format!("drill {id}");
    let logged: Vec<(&str, &str)> = changes
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["reason"].as_str().unwrap().starts_with(&reason))
        .map(|c| (c["action"].as_str().unwrap(), c["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        logged,
        [
            ("dataset.close", DATASET),
            ("dataset.open", DATASET),
            ("drill.record", id.as_str())
        ]
    );

    // Open again everywhere.
    assert!(!closed_at_registry(&fed).await);
    for gw in &running {
        let r = fetch(&fed.licensee_client(gw), RECORDS, SCENARIO).await;
        assert_eq!(outcome(&r), "", "{}", gw.id);
    }

    // All conditional data at once, probed on fire-hydrants.
    let scope = ["--all-conditional", "--probe-dataset", DATASET];
    let args = drill_cmd(&scope, DRILL_SCENARIO, &identity, &["--duration", "0s"]);
    let (code, out, err) = fed.admin_cli_raw(&strs(&args));
    assert_eq!(code, 0, "{out}\n{err}");
    let all: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&all["scope"], &all["complied_all"]),
        (&json!("all-conditional"), &json!(true)),
        "{all}"
    );
    for gw in &running {
        let g = gateway(&all, &gw.id);
        assert!(g["closed_after_ms"].as_u64().unwrap() < 1000, "{g}");
    }
    let changes = fed.admin_cli(&["changes"]);
    let reason = format!("drill {}", all["id"].as_str().unwrap());
    let logged: Vec<&str> = changes
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["reason"].as_str().unwrap().starts_with(&reason))
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(logged, ["dataset.close-all", "dataset.open-all", "drill.record"]);
    let listed = fed.admin_cli(&["drill", "list"]);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [all["id"].as_str().unwrap(), id.as_str()],
        "the latest first"
    );
    for gw in &running {
        let r = fetch(&fed.licensee_client(gw), RECORDS, SCENARIO).await;
        assert_eq!(outcome(&r), "", "{}", gw.id);
    }
    drop(running);
    fed.finish().await;
}
both!(a_drill_closes_and_reopens_the_data_at_every_gateway);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_gateway_is_named_and_the_data_is_reopened_anyway() {
    let fed = Federation::start(Backend::Sqlite).await;
    let identity = drill_licensee(&fed);
    let gw_a = fed.gateway_with_url("gw-a", options());
    let mut gw_b = fed.gateway_with_url("gw-b", options());
    // Registered without a url: it cannot be probed.
    fed.admin_cli(&["gateway", "add", "gw-c", "--agency", AGENCY]);
    fed.grant("l1", SCENARIO);
    for gw in [&gw_a, &gw_b] {
        serving(&fed, gw).await;
    }
    gw_b.proc.kill();

    let args = drill_args(&identity, &["--duration", "0s", "--bound", "500ms"]);
    let (code, out, err) = fed.admin_cli_raw(&strs(&args));
    eprintln!("{err}");
    assert_eq!(code, 1, "{out}\n{err}");
    let printed: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(printed["complied_all"], false, "{printed}");
    let a = gateway(&printed, "gw-a");
    assert_eq!(a["complied"], true, "{a}");
    assert!(a["closed_after_ms"].as_u64().unwrap() <= 500, "{a}");
    let b = gateway(&printed, "gw-b");
    assert_eq!(
        (&b["complied"], &b["closed_after_ms"], &b["reopened_after_ms"]),
        (&json!(false), &Value::Null, &Value::Null),
        "{b}"
    );
    let why = b["error"].as_str().unwrap();
    assert!(why.contains("unreachable before the drill"), "{why}");
    assert!(
        why.contains("did not refuse with dataset-closed within 500 ms"),
        "{why}"
    );
    let c = gateway(&printed, "gw-c");
    assert_eq!((&c["complied"], &c["url"]), (&json!(false), &Value::Null), "{c}");
    assert!(c["error"].as_str().unwrap().starts_with("not probed"), "{c}");
    assert!(err.contains("not complied: gw-b, gw-c"), "{err}");
    let stored = fed.admin.get("/admin/drills").await.unwrap().json();
    assert_eq!(stored[0], printed);

    // Reopened anyway: the registry's switch is off and gw-a serves again.
    assert!(!closed_at_registry(&fed).await);
    let r = fetch(&fed.licensee_client(&gw_a), RECORDS, SCENARIO).await;
    assert_eq!(outcome(&r), "");
    let r = fetch(&fed.licensee_client_as(&gw_a, PROBE), RECORDS, DRILL_SCENARIO).await;
    assert_eq!(outcome(&r), "");

    // A drill never starts on data that is closed already (its end would reopen it), nor when
    // a gateway refuses the drill licensee: nothing is closed or reopened.
    let changes_before = fed.admin_cli(&["changes"]).as_array().unwrap().len();
    let args = drill_cmd(&["--dataset", DATASET], SCENARIO, &identity, &[]);
    let (code, _, err) = fed.admin_cli_raw(&strs(&args));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("gw-a refuses the drill probe (403 scenario-not-licensed"),
        "{err}"
    );
    assert!(err.contains("Nothing was closed"), "{err}");
    assert_eq!(
        fed.admin_cli(&["changes"]).as_array().unwrap().len(),
        changes_before
    );
    fed.admin_cli(&["dataset", "close", DATASET, "--reason", "incident 7"]);
    let (code, _, err) = fed.admin_cli_raw(&strs(&drill_args(&identity, &[])));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("dataset fire-hydrants is already closed"), "{err}");
    assert!(closed_at_registry(&fed).await, "still closed");
    fed.admin_cli(&["dataset", "open", DATASET, "--reason", "incident 7 over"]);
    fed.admin_cli(&["dataset", "close", "--all", "--reason", "incident 8"]);
    let scope = ["--all-conditional", "--probe-dataset", DATASET];
    let (code, _, err) = fed.admin_cli_raw(&strs(&drill_cmd(&scope, DRILL_SCENARIO, &identity, &[])));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("all conditional data is already closed"), "{err}");
    let (code, _, err) = fed.admin_cli_raw(&strs(&drill_args(&identity, &[])));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("all conditional data is already closed"), "{err}");
    let r = fetch(&fed.licensee_client(&gw_a), RECORDS, SCENARIO).await;
    assert_eq!(outcome(&r), "dataset-closed", "the switch stays on");
    drop((gw_a, gw_b));
    fed.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_drill_reopens_the_data_and_says_so() {
    let fed = Federation::start(Backend::Sqlite).await;
    let identity = drill_licensee(&fed);
    let gw = fed.gateway_with_url("gw-a", options());
    fed.grant("l1", SCENARIO);
    serving(&fed, &gw).await;

    let mut args = vec!["admin".to_owned()];
    args.extend(fed.admin_flags());
    args.extend(drill_args(&identity, &["--duration", "60s"]));
    let mut drill = Proc::spawn("sluice admin drill", &strs(&args));
    drill.wait_for(EVENTUALLY, |l| l.contains("closed for").then_some(()));
    // Held closed.
    assert!(closed_at_registry(&fed).await);
    let r = fetch(&fed.licensee_client(&gw), RECORDS, SCENARIO).await;
    assert_eq!(outcome(&r), "dataset-closed");

    let pid = drill.pid().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let code = drill.wait_exit(EVENTUALLY);
    assert_eq!(code, Some(1), "{}", drill.output());
    assert!(drill.printed("interrupted by SIGINT"), "{}", drill.output());

    assert!(!closed_at_registry(&fed).await);
    until(&fed.licensee_client(&gw), RECORDS, SCENARIO, "", EVENTUALLY).await;
    let stored = fed.admin.get("/admin/drills").await.unwrap().json();
    let report = &stored[0];
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("interrupted by SIGINT while closed; reopened at once"),
        "{report}"
    );
    assert_eq!(gateway(report, "gw-a")["complied"], true, "{report}");
    drop(gw);
    fed.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reopening_is_said_loudly_with_the_command_that_reopens() {
    let mut fed = Federation::start(Backend::Sqlite).await;
    let identity = drill_licensee(&fed);
    let gw = fed.gateway_with_url("gw-a", options());
    fed.grant("l1", SCENARIO);
    serving(&fed, &gw).await;

    let mut args = vec!["admin".to_owned()];
    args.extend(fed.admin_flags());
    args.extend(drill_args(&identity, &["--duration", "2s"]));
    let mut drill = Proc::spawn("sluice admin drill", &strs(&args));
    let id: String = drill.wait_for(EVENTUALLY, |l| {
        l.strip_prefix("drill ")
            .filter(|rest| rest.contains("closed for"))
            .and_then(|rest| rest.split(':').next())
            .map(str::to_owned)
    });
    // The registry dies while the data is held closed: the drill cannot reopen it.
    fed.kill_registry();
    assert_eq!(drill.wait_exit(EVENTUALLY), Some(1), "{}", drill.output());
    let out = drill.output();
    let command = format!("sluice admin dataset open {DATASET} --reason \"drill {id}\"");
    for want in [
        format!("!!! drill {id}: REOPENING FAILED"),
        format!("dataset {DATASET} IS STILL CLOSED. Reopen it now: {command}"),
        format!("drill {id}: the registry did not store the report"),
        "not measured: the data was not reopened".to_owned(),
    ] {
        assert!(out.contains(&want), "{want} not in:\n{out}");
    }

    // It is still closed, as said; the printed command reopens it.
    fed.start_registry().await;
    assert!(closed_at_registry(&fed).await);
    fed.admin_cli(&["dataset", "open", DATASET, "--reason", &format!("drill {id}")]);
    assert!(!closed_at_registry(&fed).await);
    drop(gw);
    fed.finish().await;
}

/// A consistent report of one complied gateway `gw-a`.
fn report(id: &str, started_at: &str) -> Value {
    json!({
        "id": id, "started_at": started_at, "finished_at": "2030-01-01T00:00:02Z",
        "scope": "dataset", "dataset": DATASET, "bound_ms": 1000, "duration_ms": 500,
        "gateways": [{ "id": "gw-a", "url": "https://localhost:9", "closed_after_ms": 40,
                       "reopened_after_ms": 35, "complied": true }],
        "complied_all": true,
    })
}

async fn drill_reports_and_gateway_urls_are_checked_at_the_registry(b: Backend) {
    let fed = Federation::start(b).await;
    let post = |path: &'static str, body: Value| {
        let admin = fed.admin.clone();
        async move { admin.post(path, &body).await.unwrap() }
    };
    let status_and_code =
        |r: &sluice_net::registry_client::Reply| (r.status.as_u16(), r.problem().unwrap_or_default());

    // Gateway urls: https, a host, no credentials, query or fragment.
    for (url, want) in [
        (json!("http://localhost:9"), (422, "invalid")),
        (json!("HTTPS://localhost:9"), (422, "invalid")),
        (json!("https://"), (422, "invalid")),
        (json!("https://user:pw@localhost:9"), (422, "invalid")),
        (json!("https://localhost:9/?q=1"), (422, "invalid")),
        (json!("https://localhost:9/#top"), (422, "invalid")),
        (
            json!(format!("https://{}", "h".repeat(2050))),
            (400, "bad-request"),
        ),
        (json!(9), (400, "bad-request")),
    ] {
        let r = post(
            "/admin/gateways",
            json!({ "id": "gw-x", "agency": AGENCY, "url": url }),
        )
        .await;
        assert_eq!(
            status_and_code(&r),
            (want.0, want.1.to_owned()),
            "{url}: {}",
            r.json()
        );
    }
    let r = post(
        "/admin/gateways",
        json!({ "id": "gw-a", "agency": AGENCY, "url": "https://localhost:9" }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["url"], "https://localhost:9");
    let listed = fed.admin_cli(&["gateway", "list"]);
    assert_eq!(listed[0]["url"], "https://localhost:9", "{listed}");

    // A consistent report is recorded as a change that leaves the snapshot revision.
    let revision =
        |r: &sluice_net::registry_client::Reply| r.headers["sluice-revision"].to_str().unwrap().to_owned();
    let before = fed
        .admin
        .get(&format!("/v1/snapshot?after={}", u64::MAX))
        .await
        .unwrap();
    let r = post("/admin/drills", report("drill-1", "2030-01-01T00:00:00Z")).await;
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(revision(&r), revision(&before));
    let rec = r.json();
    assert_eq!((&rec["admin"], &rec["id"]), (&json!("alice"), &json!("drill-1")));
    assert!(rec["recorded_at"].as_str().unwrap().starts_with("20"), "{rec}");
    let r = post("/admin/drills", report("drill-1", "2030-01-01T00:00:00Z")).await;
    assert_eq!(status_and_code(&r), (409, "conflict".into()));
    let changes = fed.admin_cli(&["changes"]);
    let last = changes.as_array().unwrap().last().unwrap();
    assert_eq!(
        (&last["action"], &last["target"], &last["reason"]),
        (
            &json!("drill.record"),
            &json!("drill-1"),
            &json!("drill drill-1: 1 of 1 gateways complied")
        )
    );

    // Newest first: by when the drill started, not when it was posted.
    post("/admin/drills", report("drill-0", "2029-12-31T23:00:00Z")).await;
    post("/admin/drills", report("drill-2", "2030-01-01T00:00:01+00:00")).await;
    let all = fed.admin.get("/admin/drills").await.unwrap().json();
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["drill-2", "drill-1", "drill-0"]);
    assert_eq!(all[0]["started_at"], "2030-01-01T00:00:01Z", "stored in UTC");

    // Bodies that break the document are bad requests; rules stated in words are invalid.
    let with = |k: &str, v: Value| {
        let mut r = report("drill-9", "2030-01-01T00:00:00Z");
        r[k] = v;
        r
    };
    let gw = |k: &str, v: Value| {
        let mut r = report("drill-9", "2030-01-01T00:00:00Z");
        r["gateways"][0][k] = v;
        r
    };
    let mut cases = vec![
        (json!({}), 400),
        (json!([]), 400),
        (with("extra", json!(1)), 400),
        (with("bound_ms", json!(0)), 400),
        (with("bound_ms", json!(3_600_001)), 400),
        (with("duration_ms", json!(86_400_001)), 400),
        (with("scope", json!("city")), 400),
        (with("gateways", json!([])), 400),
        (with("started_at", json!("today")), 400),
        (gw("closed_after_ms", json!(-5)), 400),
        (gw("note", json!("x")), 400),
        (with("id", json!("drill 9")), 422),
        (with("dataset", json!("no-such-dataset")), 422),
        (with("finished_at", json!("2029-12-31T23:59:59Z")), 422),
        (with("complied_all", json!(false)), 422),
        (gw("id", json!("gw-unregistered")), 422),
        (gw("closed_after_ms", json!(1001)), 422),
        (gw("reopened_after_ms", Value::Null), 422),
    ];
    let mut twice = report("drill-9", "2030-01-01T00:00:00Z");
    let first = twice["gateways"][0].clone();
    twice["gateways"].as_array_mut().unwrap().push(first);
    cases.push((twice, 422));
    for (body, want) in cases {
        let r = fed.admin.post("/admin/drills", &body).await.unwrap();
        let code = if want == 400 { "bad-request" } else { "invalid" };
        assert_eq!(
            status_and_code(&r),
            (want, code.to_owned()),
            "{body}: {}",
            r.json()
        );
    }
    let r = fed
        .admin
        .send(http::Method::POST, "/admin/drills", None, &[])
        .await
        .unwrap();
    assert_eq!(status_and_code(&r), (400, "bad-request".into()));
    assert_eq!(
        fed.admin
            .get("/admin/drills")
            .await
            .unwrap()
            .json()
            .as_array()
            .unwrap()
            .len(),
        3,
        "nothing refused was kept"
    );

    // Admin certificates only; GET and POST only.
    let anon =
        sluice_net::registry_client::RegistryClient::new(&fed.registry_url, &fed.ca_pem(), None).unwrap();
    let r = anon.get("/admin/drills").await.unwrap();
    assert_eq!(status_and_code(&r), (401, "unauthenticated".into()));
    let r = fed
        .admin
        .send(http::Method::PUT, "/admin/drills", Some(&json!({})), &[])
        .await
        .unwrap();
    assert_eq!(status_and_code(&r), (405, "method-not-allowed".into()));
    assert_eq!(r.headers["allow"], "GET, POST");
    fed.finish().await;
}
both!(drill_reports_and_gateway_urls_are_checked_at_the_registry);

//! `sluice demo` as a user runs it: the real binary on free loopback ports, its `demo.json`,
//! licensee requests over mTLS to both agencies' gateways, and the printed `sluice admin`
//! commands suspending and resuming a licence through the registry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sluice_net::registry_client::{RegistryClient, Reply};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// The demo process; killed if the test fails before stopping it.
struct DemoProcess {
    child: Option<Child>,
    stdout: Arc<Mutex<String>>,
}

impl DemoProcess {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(SLUICE)
            .args(["demo", "--dir"])
            .arg(dir)
            .env("SLUICE_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let sink = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Self {
            child: Some(child),
            stdout,
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits (bounded) until the walkthrough has been printed.
    async fn ready(&mut self) {
        let start = Instant::now();
        while !self.stdout().contains("Ctrl-C stops the demo.") {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the demo exited with {status}: {}", self.stdout());
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the demo did not start within 120 s: {}",
                self.stdout()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The printed line containing `needle`.
    fn line(&self, needle: &str) -> String {
        self.stdout()
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no printed line with {needle:?}"))
            .to_owned()
    }

    /// Ctrl-C (SIGINT to this child's pid); waits (bounded) for a clean exit.
    async fn interrupt(&mut self) {
        let mut child = self.child.take().unwrap();
        let ok = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "{status}");
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("the demo did not stop within 30 s of Ctrl-C");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("demo.json has no string at {pointer}: {v:#}"))
}

fn path(v: &Value, pointer: &str) -> PathBuf {
    let p = PathBuf::from(s(v, pointer));
    assert!(
        p.is_file() || p.is_dir(),
        "{pointer}: {} does not exist",
        p.display()
    );
    p
}

/// An mTLS client for `url` presenting a licensee's certificate from demo.json.
fn licensee(m: &Value, url: &str, index: usize) -> RegistryClient {
    let cert = path(m, &format!("/licensees/{index}/cert"));
    let key = path(m, &format!("/licensees/{index}/key"));
    RegistryClient::new(url, &path(m, "/ca"), Some((&cert, &key))).unwrap()
}

async fn records(c: &RegistryClient, dataset: &str, scenario: &str, query: &str) -> Reply {
    let p = format!("/v1/datasets/{dataset}/records?{query}");
    c.send(http::Method::GET, &p, None, &[("sluice-scenario", scenario)])
        .await
        .unwrap()
}

fn rows(r: &Reply) -> Vec<Value> {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json().as_array().cloned().unwrap()
}

/// `""` for a 200, the problem code otherwise.
fn outcome(r: &Reply) -> String {
    if r.status == 200 {
        String::new()
    } else {
        r.problem().unwrap_or_else(|| format!("status {}", r.status))
    }
}

/// Runs a printed shell command line.
fn run_printed(line: &str) -> String {
    let out = Command::new("sh").args(["-c", line]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{line}\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Asks until the outcome is `want`, for at most 10 s.
async fn until(c: &RegistryClient, dataset: &str, scenario: &str, want: &str) {
    let start = Instant::now();
    let mut last = String::from("-");
    while start.elapsed() < Duration::from_secs(10) {
        last = outcome(&records(c, dataset, scenario, "limit=1").await);
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("still `{last}` after 10 s, wanted `{want}`");
}

#[tokio::test]
async fn demo_runs_two_agencies_on_registry_licences_and_admin_commands_take_effect() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let mut demo = DemoProcess::start(&dir);
    demo.ready().await;
    let m: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("demo.json")).unwrap()).unwrap();

    // The fields README, tests/load/run.sh and users rely on are still there…
    path(&m, "/ca");
    assert_eq!(s(&m, "/gateways/0/id"), "shanghai-fire");
    assert!(s(&m, "/gateways/0/public_url").starts_with("https://localhost:"));
    assert!(s(&m, "/gateways/0/admin_url").starts_with("http://127.0.0.1:"));
    assert_eq!(s(&m, "/licensees/0/id"), "acme-insurance");
    path(&m, "/unlicensed/cert");
    assert!(s(&m, "/source_url").ends_with("/hydrants"));
    path(&m, "/audit_dir");
    // …and the registry and the second agency are added.
    let registry = s(&m, "/registry/admin_url");
    assert!(registry.starts_with("https://localhost:"));
    assert!(s(&m, "/registry/public_url").starts_with("https://localhost:"));
    let admin_cert = path(&m, "/registry/admin/cert");
    let admin_key = path(&m, "/registry/admin/key");
    let identity = sluice_certs::identity_from_pem(&std::fs::read(&admin_cert).unwrap()).unwrap();
    assert_eq!(identity.uri(), "urn:sluice:admin:demo-admin");
    assert_eq!(s(&m, "/gateways/1/id"), "shanghai-utilities");
    assert_eq!(
        m["gateways"][1]["datasets"],
        serde_json::json!(["enterprise-utilities"])
    );
    assert!(!std::fs::read_to_string(dir.join("gateway.toml"))
        .unwrap()
        .contains("licences_file"));
    assert!(std::fs::read_to_string(dir.join("utilities-gateway.toml"))
        .unwrap()
        .contains("[registry]"));

    // The registry knows the demo: licensees with credit codes, both agencies' datasets.
    let admin = RegistryClient::new(registry, &path(&m, "/ca"), Some((&admin_cert, &admin_key))).unwrap();
    let licensees = admin.get("/admin/licensees").await.unwrap().json();
    let codes: Vec<&str> = licensees
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["credit_code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 4, "{licensees}");
    for c in codes {
        sluice_registry::credit_code::validate(c).unwrap();
    }
    let gateways = admin.get("/admin/gateways").await.unwrap().json().to_string();
    assert!(
        gateways.contains("shanghai-fire") && gateways.contains("shanghai-utilities"),
        "{gateways}"
    );
    // The insurer's utilities licence completes the demo's fusion rule: granted on expert review.
    let lic = admin
        .get("/admin/licences/lic-acme-underwriting")
        .await
        .unwrap()
        .json();
    assert_eq!(lic["expert_review"], "ER-DEMO-2025-017", "{lic}");
    let rules = admin.get("/admin/fusion-rules").await.unwrap().json().to_string();
    assert!(rules.contains("hydrant-adopters-and-enterprise-power"), "{rules}");
    // city-maps holds hydrant adopters' names: the same grant without a review is refused.
    let grant = serde_json::json!({
        "licensee": "city-maps", "dataset": "enterprise-utilities", "scenario": "property-underwriting",
        "fields": { "electricity_kwh": { "rule": "range", "width": 10000 } },
        "valid_until": "2030-01-01T00:00:00Z", "reason": "test",
    });
    let r = admin.post("/admin/licences", &grant).await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.problem().as_deref()),
        (409, Some("fusion-conflict")),
        "{}",
        r.json()
    );
    let catalog = admin.get("/catalog").await.unwrap().json().to_string();
    assert!(catalog.contains("fire-hydrants") && catalog.contains("enterprise-utilities"));

    // Agency A: masked hydrant records for acme.
    let fire = s(&m, "/gateways/0/url");
    let acme_fire = licensee(&m, fire, 0);
    let r = rows(&records(&acme_fire, "fire-hydrants", "fire-hydrant-adoption", "limit=3").await);
    assert_eq!(r.len(), 3);
    for h in &r {
        let mobile = h["adopter_mobile"].as_str().unwrap();
        assert_eq!((mobile.len(), &mobile[3..7]), (11, "****"), "{h}");
        assert!(h.get("adopter_id_number").is_none(), "{h}");
    }

    // Agency B: the same licensee, another licence with its own masking.
    let util = s(&m, "/gateways/1/url");
    let acme_util = licensee(&m, util, 0);
    let r = rows(
        &records(
            &acme_util,
            "enterprise-utilities",
            "property-underwriting",
            "limit=24",
        )
        .await,
    );
    assert_eq!(r.len(), 24);
    for u in &r {
        let code = u["credit_code"].as_str().unwrap();
        assert!(code.starts_with("91") && code.ends_with("**********"), "{u}");
        assert!(u["enterprise_name"].as_str().unwrap().starts_with("p_"), "{u}");
        let kwh = u["electricity_kwh"].as_str().unwrap();
        let (lo, hi) = kwh.split_once('-').unwrap();
        let (lo, hi): (u64, u64) = (lo.parse().unwrap(), hi.parse().unwrap());
        assert_eq!((lo % 10_000, hi - lo), (0, 9_999), "{u}");
        assert!(u["water_m3"].is_u64(), "{u}");
        for absent in ["contact_phone", "tariff_cny_per_kwh", "address"] {
            assert!(u.get(absent).is_none(), "{absent}: {u}");
        }
    }
    // The bank's licence: Pudong only, identities clear, phone masked, tariff never.
    let bank = licensee(&m, util, 2);
    let r = rows(
        &records(
            &bank,
            "enterprise-utilities",
            "green-credit-scoring",
            "limit=50&month=eq.2025-07",
        )
        .await,
    );
    assert!(!r.is_empty());
    for u in &r {
        assert_eq!(u["district"], "Pudong", "{u}");
        assert_eq!(u["month"], "2025-07", "{u}");
        sluice_registry::credit_code::validate(u["credit_code"].as_str().unwrap()).unwrap();
        assert!(u["electricity_kwh"].is_u64(), "{u}");
        assert_eq!(&u["contact_phone"].as_str().unwrap()[3..7], "****", "{u}");
        assert!(u.get("tariff_cny_per_kwh").is_none(), "{u}");
    }
    // A licence for one agency's data does not open the other's.
    let r = records(&acme_util, "fire-hydrants", "fire-hydrant-adoption", "limit=1").await;
    assert_eq!(outcome(&r), "unknown-dataset");

    // The printed `sluice admin` suspend takes effect at the utilities gateway, not elsewhere…
    let suspend = demo.line(" admin --registry ");
    assert!(
        suspend.contains(&format!("--cert {}", admin_cert.display())),
        "{suspend}"
    );
    let out = run_printed(&demo.line(" suspend lic-acme-underwriting "));
    assert!(out.contains("suspended"), "{out}");
    until(
        &acme_util,
        "enterprise-utilities",
        "property-underwriting",
        "licence-suspended",
    )
    .await;
    let r = records(&acme_fire, "fire-hydrants", "fire-hydrant-adoption", "limit=1").await;
    assert_eq!(outcome(&r), "");
    // …and the printed resume restores it.
    run_printed(&demo.line(" resume lic-acme-underwriting "));
    until(&acme_util, "enterprise-utilities", "property-underwriting", "").await;
    let changes = run_printed(&demo.line(" changes"));
    assert!(
        changes.contains("licence.suspend") && changes.contains("demo-admin"),
        "{changes}"
    );

    // The printed fingerprint example: the maps company's crew-routing copy, downloaded as
    // printed, is traced back to it; the others are scored and not named. The same records as
    // the source has them (no marks) name nobody, with exit code 3.
    let leak_dir = tempfile::tempdir().unwrap();
    let in_dir = |line: &str| format!("cd {} && {line}", leak_dir.path().display());
    run_printed(&in_dir(&demo.line("crew-routing")));
    let leaked: Vec<Value> =
        serde_json::from_slice(&std::fs::read(leak_dir.path().join("leaked.json")).unwrap()).unwrap();
    assert_eq!(leaked.len(), 40);
    let trace = demo.line(" trace --config ");
    let out = run_printed(&in_dir(&format!("{trace} --format json")));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verdict"], "named", "{report}");
    assert_eq!(report["licensee"], s(&m, "/licensees/1/id"), "{report}");
    assert!(report["p_value"].as_f64().unwrap() < 1e-10, "{report}");
    assert_eq!(report["marks_used"], 80, "{report}");
    // The source's own page: what an insider at the agency could leak.
    run_printed(&in_dir(&format!(
        "curl -sf '{}?limit=40' > source.json",
        s(&m, "/source_url")
    )));
    // The marked coordinates are within half the tolerance (0.00001°) of the source's, and a
    // second download is identical (averaging downloads gains nothing).
    let source: Vec<Value> =
        serde_json::from_slice(&std::fs::read(leak_dir.path().join("source.json")).unwrap()).unwrap();
    let mut moved = 0;
    for (got, src) in leaked.iter().zip(&source) {
        assert_eq!(got["id"], src["id"]);
        for f in ["latitude", "longitude"] {
            let (g, o) = (got[f].as_f64().unwrap(), src[f].as_f64().unwrap());
            assert!((g - o).abs() <= 0.000_005 + 1e-12, "{f}: {g} vs {o}");
            moved += usize::from(g != o);
        }
    }
    assert!(moved > 40, "most values carry a mark: {moved} of 80 moved");
    run_printed(&in_dir(
        &demo.line("crew-routing").replace("leaked.json", "again.json"),
    ));
    assert_eq!(
        std::fs::read(leak_dir.path().join("again.json")).unwrap(),
        std::fs::read(leak_dir.path().join("leaked.json")).unwrap()
    );
    let out = Command::new("sh")
        .args(["-c", &in_dir(&trace.replace("leaked.json", "source.json"))])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cannot tell"));

    // The printed sandbox example: grouped sums equal a direct computation over the
    // utilities register's cells of at least 11 records (district × month, July),
    // and no record leaves.
    let out = run_printed(&demo.line("district-statistics"));
    let answer: Value = serde_json::from_str(&out).unwrap();
    let db = rusqlite::Connection::open(path(&m, "/utilities_database")).unwrap();
    let mut stmt = db
        .prepare(&format!(
            "SELECT district, SUM(n), SUM(total) FROM (SELECT district, COUNT(water_m3) AS n, SUM(water_m3) AS total \
             FROM {} WHERE month = '2025-07' GROUP BY district, month HAVING COUNT(water_m3) >= 11) \
             GROUP BY district ORDER BY district",
            sluice::demo::utilities::TABLE
        ))
        .unwrap();
    let direct: Vec<(String, i64, f64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let cells = answer["cells"].as_array().unwrap();
    assert!(!direct.is_empty(), "the demo's register has cells of 11");
    assert_eq!(cells.len(), direct.len(), "{answer}");
    for (cell, (district, n, total)) in cells.iter().zip(&direct) {
        assert_eq!(cell["district"], district.as_str(), "{answer}");
        assert_eq!(cell["count"].as_i64().unwrap(), *n, "{answer}");
        assert!((cell["value"].as_f64().unwrap() - total).abs() < 1e-6, "{answer}");
    }
    assert!(!out.contains("credit_code") && !out.contains("913101"), "{out}");

    // Ctrl-C stops everything cleanly; both audit chains verify.
    demo.interrupt().await;
    for audit in [s(&m, "/gateways/0/audit_dir"), s(&m, "/gateways/1/audit_dir")] {
        let out = Command::new(SLUICE)
            .args(["audit", "verify", audit])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

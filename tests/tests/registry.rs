//! The registry end to end: real mTLS on loopback, certificates from a per-test CA, the same
//! suite on SQLite and on PostgreSQL (one schema per test, dropped afterwards).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use sluice_gateway::registry::client::{RegistryClient, Reply};
use sluice_gateway::registry::config::RegistryConfig;
use sluice_gateway::registry::{pgtest, Running, VerifyingKey};
use sluice_policy::licence::LicenceStatus;
use sluice_policy::snapshot::{SignedSnapshot, Snapshot};
use sluice_tests::Pki;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Reg {
    pki: Pki,
    running: Option<Running>,
    schema: Option<String>,
    url: String,
    admin: RegistryClient,
    gateway: RegistryClient,
    licensee: RegistryClient,
    anon: RegistryClient,
}

impl Reg {
    async fn start(backend: Backend) -> Reg {
        let pki = Pki::new();
        let (schema, database_url) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let (s, u) = pgtest::create_schema("reg").await.unwrap();
                (Some(s), Some(u))
            }
        };
        let certs = pki.certs();
        let cfg = RegistryConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            cert: certs.join("gateway.pem"),
            key: certs.join("gateway.key"),
            client_ca: pki.ca_pem(),
            crl: None,
            state_dir: pki.dir.path().join("registry-state"),
            database_url,
            signing_key: None,
        };
        let running = sluice_gateway::registry::start(&cfg).await.unwrap();
        let url = format!("https://localhost:{}", running.addr.port());
        let issue = |kind: &str, id: &str| {
            let c = match kind {
                "admin" => sluice_certs::issue_admin(&pki.ca, id, 5),
                "gateway" => sluice_certs::issue_gateway_client(&pki.ca, id, 5),
                _ => sluice_certs::issue_licensee(&pki.ca, id, 5),
            };
            c.unwrap().write_to(&certs, &format!("{kind}-{id}")).unwrap();
            let cert = certs.join(format!("{kind}-{id}.pem"));
            let key = certs.join(format!("{kind}-{id}.key"));
            RegistryClient::new(&url, &pki.ca_pem(), Some((&cert, &key))).unwrap()
        };
        let admin = issue("admin", "alice");
        let gateway = issue("gateway", "gw1");
        let licensee = issue("licensee", "acme");
        let anon = RegistryClient::new(&url, &pki.ca_pem(), None).unwrap();
        // The gateway `gw1` of agency `fire-bureau` (revisions 1 and 2: see `SETUP`).
        for (path, body) in [
            (
                "/admin/agencies",
                json!({ "id": "fire-bureau", "name": "Fire and Rescue Bureau" }),
            ),
            ("/admin/gateways", json!({ "id": "gw1", "agency": "fire-bureau" })),
        ] {
            let r = admin.post(path, &body).await.unwrap();
            assert_eq!(r.status, 201, "{path}: {:?}", r.json());
        }
        Reg {
            pki,
            running: Some(running),
            schema,
            url,
            admin,
            gateway,
            licensee,
            anon,
        }
    }

    fn key(&self) -> VerifyingKey {
        self.running.as_ref().unwrap().public_key
    }

    async fn snapshot(&self) -> Snapshot {
        let r = self.gateway.get("/v1/snapshot").await.unwrap();
        assert_eq!(r.status, 200, "{:?}", r.json());
        let signed: SignedSnapshot = serde_json::from_slice(&r.body).unwrap();
        let snap = signed.verify(&[self.key()], 0).unwrap();
        assert_eq!(r.headers["sluice-revision"], snap.revision.to_string().as_str());
        snap
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        if let Some(s) = &self.schema {
            pgtest::drop_schema(s).await.unwrap();
        }
    }

    /// A licensee `acme`, the dataset `hydrants`, the scenario `fire-hydrant-adoption` and
    /// licence `l1` (revisions `SETUP` + 1 to 4).
    async fn seed(&self) {
        let r = self
            .admin
            .post(
                "/admin/licensees",
                &json!({ "id": "acme", "name": "Acme Data Ltd", "credit_code": "91350100M000100Y43" }),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{:?}", r.json());
        let spec = json!({
            "id": "hydrants", "title": "Fire hydrants", "owner": "fire-bureau", "update_frequency": "daily",
            "grades": { "personal": "non_anonymous_non_sensitive" },
            "fields": [
                { "name": "id" }, { "name": "district" },
                { "name": "adopter_mobile", "grades": { "personal": "non_anonymous_non_sensitive" } },
                { "name": "adopter_id_number", "grades": { "personal": "non_anonymous_sensitive" } },
            ],
        });
        let r = self
            .admin
            .post(
                "/admin/datasets",
                &json!({ "dataset": spec, "reason": "catalog" }),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{:?}", r.json());
        assert_eq!(r.json()["open_category"], "conditional");
        let scenario = json!({ "id": "fire-hydrant-adoption", "title": "Hydrant adoption insurance",
                               "datasets": ["hydrants"] });
        let r = self.admin.post("/admin/scenarios", &scenario).await.unwrap();
        assert_eq!(r.status, 201, "{:?}", r.json());
        let r = self.admin.post("/admin/licences", &grant("l1")).await.unwrap();
        assert_eq!(r.status, 201, "{:?}", r.json());
    }
}

fn grant(id: &str) -> Value {
    json!({
        "id": id, "licensee": "acme", "dataset": "hydrants", "scenario": "fire-hydrant-adoption",
        "fields": { "id": { "rule": "clear" }, "adopter_mobile": { "rule": "partial", "first": 3, "last": 4 } },
        "row_filter": "district = 'Huangpu'",
        "rate": { "per_second": 5, "burst": 10 }, "quota": { "records_per_day": 1000 },
        "valid_from": "2025-01-01T00:00:00Z", "valid_until": "2035-01-01T00:00:00Z",
        "reason": "application 2025-17",
    })
}

/// The revision after `Reg::start` registered the agency and the gateway.
const SETUP: u64 = 2;
/// The revision after `Reg::seed`.
const SEEDED: u64 = SETUP + 4;

fn rev(r: &Reply) -> u64 {
    r.headers["sluice-revision"].to_str().unwrap().parse().unwrap()
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await
            }
        }
    };
}

async fn grant_appears_in_signed_snapshot_and_status_changes_bump_revision(b: Backend) {
    let reg = Reg::start(b).await;
    assert_eq!(reg.snapshot().await.revision, SETUP);
    reg.seed().await;
    let snap = reg.snapshot().await;
    assert_eq!(snap.revision, SEEDED);
    assert_eq!(snap.licences.len(), 1);
    let l = &snap.licences[0];
    assert_eq!(
        (l.id.as_str(), l.licensee.as_str(), l.status.clone()),
        ("l1", "acme", LicenceStatus::Active)
    );
    assert_eq!(l.rate.per_second, 5);
    assert_eq!(l.quota.records_per_day, Some(1000));
    assert_eq!(l.row_filter.as_ref().unwrap().to_string(), "district = 'Huangpu'");

    let mut last = snap.revision;
    for (action, state) in [
        ("suspend", "suspended"),
        ("resume", "active"),
        ("revoke", "revoked"),
    ] {
        let r = reg
            .admin
            .post(
                &format!("/admin/licences/l1/{action}"),
                &json!({ "reason": "review" }),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{action}: {:?}", r.json());
        assert_eq!(r.json()["status"]["state"], state);
        assert_eq!(rev(&r), last + 1);
        last += 1;
        let snap = reg.snapshot().await;
        assert_eq!(snap.revision, last);
        let got = serde_json::to_value(&snap.licences[0].status).unwrap();
        assert_eq!(got["state"], state);
    }
    // Revoked is final.
    let r = reg
        .admin
        .post("/admin/licences/l1/resume", &json!({ "reason": "x" }))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.problem().as_deref()),
        (409, Some("conflict"))
    );
    // A reason is required.
    let r = reg
        .admin
        .post("/admin/licences/l1/suspend", &json!({}))
        .await
        .unwrap();
    assert_eq!(r.problem().as_deref(), Some("invalid"));
    let r = reg.admin.get("/admin/licences/l1").await.unwrap();
    assert_eq!(r.json()["status"]["state"], "revoked");
    let r = reg.admin.get("/admin/licences").await.unwrap();
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let r = reg.admin.get("/admin/changes").await.unwrap();
    let changes = r.json();
    let last_change = changes.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last_change["admin"], "alice");
    assert_eq!(last_change["action"], "licence.revoke");
    assert_eq!(last_change["reason"], "review");
    // The public key endpoint names the key that signs.
    let r = reg.anon.get("/v1/registry-key").await.unwrap();
    assert_eq!(
        r.json()["key_id"],
        sluice_policy::snapshot::key_id(&reg.key()).as_str()
    );
    assert_eq!(r.json()["public_key"].as_str().unwrap().len(), 44);
    reg.stop().await;
}
both!(grant_appears_in_signed_snapshot_and_status_changes_bump_revision);

async fn grants_are_validated(b: Backend) {
    let reg = Reg::start(b).await;
    reg.seed().await;
    let cases = [
        (json!({ "dataset": "nope" }), "unknown dataset"),
        (json!({ "licensee": "nobody" }), "unknown licensee"),
        (
            json!({ "fields": { "ghost": { "rule": "clear" } } }),
            "no field ghost",
        ),
        (
            json!({ "fields": { "adopter_id_number": { "rule": "redact" } } }),
            "non-open",
        ),
        (
            json!({ "fields": { "adopter_mobile": { "rule": "clear" } } }),
            "must be masked",
        ),
        (json!({ "row_filter": "street = 'x'" }), "unknown field street"),
        (json!({ "valid_until": "2024-01-01T00:00:00Z" }), "valid_until"),
        (json!({ "rate": { "per_second": 0, "burst": 1 } }), "rate"),
    ];
    for (i, (patch, want)) in cases.into_iter().enumerate() {
        let mut g = grant(&format!("bad{i}"));
        for (k, v) in patch.as_object().unwrap() {
            g[k] = v.clone();
        }
        let r = reg.admin.post("/admin/licences", &g).await.unwrap();
        assert_eq!(r.status, 422, "{want}: {:?}", r.json());
        assert_eq!(r.problem().as_deref(), Some("invalid"));
        let detail = r.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(want), "{detail} !~ {want}");
    }
    let r = reg.admin.post("/admin/licences", &grant("l1")).await.unwrap();
    assert_eq!(r.problem().as_deref(), Some("conflict"));
    let r = reg
        .admin
        .post("/admin/licences", &json!({ "bogus": 1 }))
        .await
        .unwrap();
    assert_eq!(r.problem().as_deref(), Some("bad-request"));
    assert_eq!(
        reg.snapshot().await.revision,
        SEEDED,
        "refused grants change nothing"
    );
    reg.stop().await;
}
both!(grants_are_validated);

async fn only_admins_administer_and_only_gateways_fetch_snapshots(b: Backend) {
    let reg = Reg::start(b).await;
    for client in [&reg.licensee, &reg.gateway] {
        for (post, path) in [
            (false, "/admin/licences"),
            (true, "/admin/licences"),
            (true, "/admin/datasets/close-all"),
        ] {
            let r = if post {
                client.post(path, &json!({ "reason": "x" })).await.unwrap()
            } else {
                client.get(path).await.unwrap()
            };
            assert_eq!(r.status, 403, "{path}");
            assert_eq!(r.problem().as_deref(), Some("forbidden"));
        }
    }
    let r = reg.anon.get("/admin/licences").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.problem().as_deref()),
        (401, Some("unauthenticated"))
    );
    let r = reg.licensee.get("/v1/snapshot").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.problem().as_deref()),
        (403, Some("forbidden"))
    );
    let r = reg.anon.get("/v1/snapshot").await.unwrap();
    assert_eq!(r.status, 401);
    // Public pages need no certificate.
    for path in ["/catalog", "/violations", "/openapi.json", "/v1/registry-key"] {
        let r = reg.anon.get(path).await.unwrap();
        assert_eq!(r.status, 200, "{path}");
    }
    let r = reg.anon.get("/openapi.json").await.unwrap();
    assert_eq!(r.json()["openapi"], "3.0.3");
    let r = reg.anon.get("/nope").await.unwrap();
    assert_eq!(r.problem().as_deref(), Some("not-found"));
    assert_eq!(reg.snapshot().await.revision, SETUP, "nothing changed");
    // A certificate from another CA is refused at the handshake.
    let other = Pki::new();
    let (cert, key) = other.licensee("mallory");
    let c = RegistryClient::new(&reg.url, &reg.pki.ca_pem(), Some((&cert, &key))).unwrap();
    assert!(c.get("/catalog").await.is_err());
    reg.stop().await;
}
both!(only_admins_administer_and_only_gateways_fetch_snapshots);

async fn long_poll_wakes_on_change(b: Backend) {
    let reg = Reg::start(b).await;
    let current = reg.snapshot().await.revision;
    // Nothing changes: 304 at the timeout.
    let t = Instant::now();
    let r = reg
        .gateway
        .get(&format!("/v1/snapshot?after={current}&wait=1"))
        .await
        .unwrap();
    assert_eq!(r.status, 304);
    assert!(t.elapsed() >= Duration::from_millis(900));
    // A change while waiting wakes the poll.
    let gw = reg.gateway.clone();
    let poll = tokio::spawn(async move {
        let t = Instant::now();
        let r = gw
            .get(&format!("/v1/snapshot?after={current}&wait=10"))
            .await
            .unwrap();
        (r, t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let changed = Instant::now();
    let r = reg
        .admin
        .post("/admin/datasets/close-all", &json!({ "reason": "drill" }))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let (r, _) = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .unwrap()
        .unwrap();
    assert!(
        changed.elapsed() < Duration::from_secs(2),
        "woke after {:?}",
        changed.elapsed()
    );
    assert_eq!(r.status, 200);
    let signed: SignedSnapshot = serde_json::from_slice(&r.body).unwrap();
    let snap = signed.verify(&[reg.key()], current + 1).unwrap();
    assert!(snap.all_conditional_closed);
    // Already newer: answered at once.
    let t = Instant::now();
    let r = reg
        .gateway
        .get(&format!("/v1/snapshot?after={current}&wait=30"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(t.elapsed() < Duration::from_secs(2));
    reg.stop().await;
}
both!(long_poll_wakes_on_change);

async fn credit_codes_are_checked(b: Backend) {
    let reg = Reg::start(b).await;
    for bad in ["91350100M000100Y44", "91350100M000100Y4", "91350100I000100Y43"] {
        let r = reg
            .admin
            .post(
                "/admin/licensees",
                &json!({ "id": "x", "name": "X", "credit_code": bad }),
            )
            .await
            .unwrap();
        assert_eq!(
            (r.status.as_u16(), r.problem().as_deref()),
            (422, Some("invalid")),
            "{bad}"
        );
    }
    let body = json!({ "id": "acme", "name": "Acme", "credit_code": "91350100M000100Y43" });
    assert_eq!(
        reg.admin.post("/admin/licensees", &body).await.unwrap().status,
        201
    );
    let r = reg.admin.post("/admin/licensees", &body).await.unwrap();
    assert_eq!(r.problem().as_deref(), Some("conflict"));
    let r = reg.admin.get("/admin/licensees").await.unwrap();
    assert_eq!(r.json()[0]["credit_code"], "91350100M000100Y43");
    reg.stop().await;
}
both!(credit_codes_are_checked);

async fn violations_restrict_and_datasets_close(b: Backend) {
    let reg = Reg::start(b).await;
    reg.seed().await;
    let warn =
        json!({ "licensee": "acme", "what": "late report", "measure": "warn", "reason": "first time" });
    assert_eq!(
        reg.admin.post("/admin/violations", &warn).await.unwrap().status,
        201
    );
    assert!(reg.snapshot().await.restricted_licensees.is_empty());
    let close = json!({ "licensee": "acme", "what": "resold records", "measure": "close", "reason": "breach of licence" });
    assert_eq!(
        reg.admin.post("/admin/violations", &close).await.unwrap().status,
        201
    );
    let unknown = json!({ "licensee": "nobody", "what": "x", "measure": "close", "reason": "x" });
    assert_eq!(
        reg.admin
            .post("/admin/violations", &unknown)
            .await
            .unwrap()
            .status,
        422
    );
    let snap = reg.snapshot().await;
    assert!(snap.restricted_licensees["acme"].contains("breach of licence"));
    // The public register.
    let r = reg.anon.get("/violations").await.unwrap();
    let list = r.json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["measure"], "close");
    assert_eq!(list[1]["what"], "resold records");
    let html = reg
        .anon
        .send(http::Method::GET, "/violations", None, &[("accept", "text/html")])
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&html.body).contains("<td>resold records</td>"));

    let r = reg
        .admin
        .post("/admin/datasets/hydrants/close", &json!({ "reason": "leak" }))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(reg.snapshot().await.closed_datasets, ["hydrants"]);
    let r = reg.anon.get("/catalog").await.unwrap();
    assert_eq!(r.json()[0]["closed"], true);
    let r = reg
        .admin
        .post("/admin/datasets/nope/close", &json!({ "reason": "x" }))
        .await
        .unwrap();
    assert_eq!(r.problem().as_deref(), Some("not-found"));
    reg.admin
        .post("/admin/datasets/hydrants/open", &json!({ "reason": "fixed" }))
        .await
        .unwrap();
    assert!(reg.snapshot().await.closed_datasets.is_empty());
    reg.admin
        .post("/admin/datasets/close-all", &json!({ "reason": "drill" }))
        .await
        .unwrap();
    assert!(reg.snapshot().await.all_conditional_closed);
    reg.admin
        .post("/admin/datasets/open-all", &json!({ "reason": "drill over" }))
        .await
        .unwrap();
    assert!(!reg.snapshot().await.all_conditional_closed);
    let r = reg
        .admin
        .post(
            "/admin/certs/revoke",
            &json!({ "serial": "0A:BC", "reason": "key lost" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(reg.snapshot().await.revoked_serials, ["0abc"]);
    reg.stop().await;
}
both!(violations_restrict_and_datasets_close);

async fn gateways_and_scenarios_must_be_registered(b: Backend) {
    let reg = Reg::start(b).await;
    reg.seed().await;
    // A gateway certificate from the right CA whose gateway is not registered gets nothing.
    let certs = reg.pki.certs();
    sluice_certs::issue_gateway_client(&reg.pki.ca, "gw2", 5)
        .unwrap()
        .write_to(&certs, "gateway-gw2")
        .unwrap();
    let (cert, key) = (certs.join("gateway-gw2.pem"), certs.join("gateway-gw2.key"));
    let gw2 = RegistryClient::new(&reg.url, &reg.pki.ca_pem(), Some((&cert, &key))).unwrap();
    let r = gw2.get("/v1/snapshot").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.problem().as_deref()),
        (403, Some("unknown-gateway"))
    );
    // Registered: served. Retired: refused again, and retiring twice is a conflict.
    let r = reg
        .admin
        .post(
            "/admin/gateways",
            &json!({ "id": "gw2", "agency": "fire-bureau" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(gw2.get("/v1/snapshot").await.unwrap().status, 200);
    let retire = json!({ "reason": "decommissioned" });
    let r = reg
        .admin
        .post("/admin/gateways/gw2/retire", &retire)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = gw2.get("/v1/snapshot").await.unwrap();
    assert_eq!(r.problem().as_deref(), Some("unknown-gateway"));
    let r = reg
        .admin
        .post("/admin/gateways/gw2/retire", &retire)
        .await
        .unwrap();
    assert_eq!(r.problem().as_deref(), Some("conflict"));
    let gateways = reg.admin.get("/admin/gateways").await.unwrap().json();
    assert_eq!(gateways[1]["id"], "gw2");
    assert_eq!(gateways[1]["retired"], true);
    // A gateway of an unknown agency is refused.
    let r = reg
        .admin
        .post("/admin/gateways", &json!({ "id": "gw3", "agency": "nobody" }))
        .await
        .unwrap();
    assert_eq!(r.problem().as_deref(), Some("invalid"));

    // Grants name a registered scenario that covers their dataset.
    let mut g = grant("l2");
    g["scenario"] = json!("marketing");
    let r = reg.admin.post("/admin/licences", &g).await.unwrap();
    assert_eq!(r.problem().as_deref(), Some("invalid"));
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("scenario marketing is not registered"));
    let r = reg
        .admin
        .post(
            "/admin/scenarios",
            &json!({ "id": "road-safety", "title": "Road safety", "datasets": ["hydrants"] }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.json());
    let r = reg
        .admin
        .post(
            "/admin/scenarios",
            &json!({ "id": "x", "title": "X", "datasets": ["nope"] }),
        )
        .await
        .unwrap();
    assert_eq!(
        r.problem().as_deref(),
        Some("invalid"),
        "scenarios name catalog datasets"
    );
    g["scenario"] = json!("road-safety");
    let r = reg.admin.post("/admin/licences", &g).await.unwrap();
    assert_eq!(r.status, 201, "{:?}", r.json());
    let scenarios = reg.admin.get("/admin/scenarios").await.unwrap().json();
    let ids: Vec<&str> = scenarios
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fire-hydrant-adoption", "road-safety"]);
    // Every registration is an audited change.
    let changes = reg.admin.get("/admin/changes").await.unwrap().json();
    let actions: Vec<&str> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    for a in ["agency.add", "gateway.add", "gateway.retire", "scenario.add"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    reg.stop().await;
}
both!(gateways_and_scenarios_must_be_registered);

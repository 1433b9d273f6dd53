//! A registry started in the test process on loopback, on SQLite or on PostgreSQL (one schema
//! per test, dropped by [`Reg::stop`]), with clients presenting certificates from a per-test CA.

use serde_json::{json, Value};
use sluice_net::registry_client::RegistryClient;
use sluice_registry::config::RegistryConfig;
use sluice_registry::{pgtest, Running};
use std::path::PathBuf;

use crate::Pki;

/// The store a test registry runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// A fresh schema of the test server ([`pgtest::base_url`]).
    Postgres,
}

/// A running registry and its clients.
pub struct Reg {
    /// The test CA and certificates.
    pub pki: Pki,
    running: Option<Running>,
    schema: Option<String>,
    /// `https://localhost:<port>`.
    pub url: String,
    /// Administrator `alice` (certificate `admin-alice.pem`).
    pub admin: RegistryClient,
    /// Licensee `acme`.
    pub licensee: RegistryClient,
    /// No certificate.
    pub anon: RegistryClient,
}

/// Issues a `kind` (`admin`, `gateway`, `licensee`) certificate for `id` from the test CA and
/// returns a registry client presenting it.
pub fn client(pki: &Pki, url: &str, kind: &str, id: &str) -> RegistryClient {
    let (cert, key) = cert(pki, kind, id);
    RegistryClient::new(url, &pki.ca_pem(), Some((&cert, &key))).unwrap()
}

/// Issues a `kind` certificate for `id`; returns (cert, key) paths
/// (`<certs>/<kind>-<id>.pem`, `.key`).
pub fn cert(pki: &Pki, kind: &str, id: &str) -> (PathBuf, PathBuf) {
    let certs = pki.certs();
    let c = match kind {
        "admin" => sluice_certs::issue_admin(&pki.ca, id, 5),
        "gateway" => sluice_certs::issue_gateway_client(&pki.ca, id, 5),
        _ => sluice_certs::issue_licensee(&pki.ca, id, 5),
    };
    c.unwrap().write_to(&certs, &format!("{kind}-{id}")).unwrap();
    (
        certs.join(format!("{kind}-{id}.pem")),
        certs.join(format!("{kind}-{id}.key")),
    )
}

impl Reg {
    /// Starts a registry with agency `fire-bureau` registered (one change).
    pub async fn start(backend: Backend) -> Reg {
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
        let running = sluice_registry::start(&cfg).await.unwrap();
        let url = format!("https://localhost:{}", running.addr.port());
        let admin = client(&pki, &url, "admin", "alice");
        let licensee = client(&pki, &url, "licensee", "acme");
        let anon = RegistryClient::new(&url, &pki.ca_pem(), None).unwrap();
        let r = admin
            .post(
                "/admin/agencies",
                &json!({ "id": "fire-bureau", "name": "Fire and Rescue Bureau" }),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{:?}", r.json());
        Reg {
            pki,
            running: Some(running),
            schema,
            url,
            admin,
            licensee,
            anon,
        }
    }

    /// The registry's snapshot signing key.
    pub fn public_key(&self) -> sluice_registry::VerifyingKey {
        self.running
            .as_ref()
            .expect("the registry runs until stop")
            .public_key
    }

    /// A client with a new `kind` certificate for `id`.
    pub fn client(&self, kind: &str, id: &str) -> RegistryClient {
        client(&self.pki, &self.url, kind, id)
    }

    /// The change log (`GET /admin/changes` as alice), oldest first.
    pub async fn changes(&self) -> Vec<Value> {
        let r = self.admin.get("/admin/changes").await.unwrap();
        assert_eq!(r.status, 200);
        r.json().as_array().unwrap().clone()
    }

    /// `sluice admin …` as the CLI runs it, with alice's certificate.
    pub async fn admin_cli(&self, command: sluice::admin::AdminCommand) -> sluice::admin::Output {
        let certs = self.pki.certs();
        sluice::admin::execute(sluice::admin::AdminArgs {
            registry: self.url.clone(),
            cert: certs.join("admin-alice.pem"),
            key: certs.join("admin-alice.key"),
            ca: self.pki.ca_pem(),
            command,
        })
        .await
        .unwrap()
    }

    /// Stops the registry and drops its PostgreSQL schema.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        if let Some(s) = &self.schema {
            pgtest::drop_schema(s).await.unwrap();
        }
    }
}

//! A federation of real `sluice` processes on loopback: a per-run CA, the registry (SQLite or
//! a per-run PostgreSQL schema), the sample agency source and any number of gateways
//! subscribed to the registry. Every listener binds port 0; addresses are read from what the
//! processes print.

use super::process::{run, Proc};
use serde_json::{json, Value};
use sluice_net::registry_client::RegistryClient;
use sluice_registry::pgtest;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a process may take to start listening.
const START: Duration = Duration::from_secs(30);

/// The conditional dataset the gateways offer and the registry licenses.
pub const DATASET: &str = "fire-hydrants";
/// A second conditional dataset (the adopters' contact details), for fusion rules.
pub const ADOPTERS: &str = "hydrant-adopters";
/// Records of [`ADOPTERS`].
pub const ADOPTER_RECORDS: &str = "/v1/datasets/hydrant-adopters/records?limit=2";
/// The gateways' catalog entry of [`ADOPTERS`], served from the same source.
const ADOPTERS_TOML: &str = r#"
[[datasets]]
id = "hydrant-adopters"
title = "Volunteer hydrant adopters"
owner = "Shanghai Fire and Rescue"
update_frequency = "daily"
grades = { personal = "non_anonymous_non_sensitive" }
fields = [
  { name = "id" },
  { name = "adopter_name", grades = { personal = "non_anonymous_non_sensitive" } },
  { name = "adopter_mobile", grades = { personal = "non_anonymous_non_sensitive" } },
]
"#;
/// The scenario of the test licences.
pub const SCENARIO: &str = "fire-hydrant-adoption";
/// The agency running the gateways.
pub const AGENCY: &str = "fire-bureau";
/// The licensee of the test licences.
pub const LICENSEE: &str = "acme";
/// Records of the conditional dataset.
pub const RECORDS: &str = "/v1/datasets/fire-hydrants/records?limit=2";
/// Records of the unconditional dataset (public listener).
pub const PUBLIC: &str = "/v1/datasets/hydrant-locations/records?limit=2";

/// The registry's database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `<state_dir>/registry.db`.
    Sqlite,
    /// A fresh schema on the local PostgreSQL server (see `registry::pgtest`).
    Postgres,
}

impl Backend {
    /// `SLUICE_BENCH_DB=postgres` selects PostgreSQL; SQLite otherwise.
    pub fn from_env() -> Backend {
        match std::env::var("SLUICE_BENCH_DB").as_deref() {
            Ok("postgres") | Ok("pg") => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

/// Settings of one gateway.
#[derive(Clone, Copy, Debug)]
pub struct GatewayOptions {
    /// `[registry] staleness_bound_s`.
    pub staleness_bound_s: u64,
    /// `[registry] poll_wait_s` (must be shorter than the bound for the gateway to stay fresh).
    pub poll_wait_s: u64,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            staleness_bound_s: 3,
            poll_wait_s: 1,
        }
    }
}

/// A running gateway process and its listeners.
pub struct Gateway {
    /// Its id (`[gateway] id`, and the registry client certificate's `urn:sluice:gateway:<id>`).
    pub id: String,
    /// Its folder (config, `state/`).
    pub dir: PathBuf,
    /// mTLS data listener.
    pub data: SocketAddr,
    /// Public listener (unconditional data, no client certificate).
    pub public: SocketAddr,
    /// Plain-HTTP admin listener (`/readyz`).
    pub admin: SocketAddr,
    /// The process.
    pub proc: Proc,
}

impl Gateway {
    /// `<dir>/state/snapshot.json`.
    pub fn snapshot_path(&self) -> PathBuf {
        self.dir.join("state").join("snapshot.json")
    }
}

/// A CA, the registry, the sample source; gateways are started on demand.
pub struct Federation {
    /// Temp folder holding everything.
    pub dir: tempfile::TempDir,
    /// The CA.
    pub ca: sluice_certs::Ca,
    /// The registry's database.
    pub backend: Backend,
    schema: Option<String>,
    database_url: Option<String>,
    /// The registry process (`None` once stopped).
    pub registry: Option<Proc>,
    /// `https://localhost:<port>`.
    pub registry_url: String,
    /// The registry's snapshot signing key, base64, as `/v1/registry-key` publishes it.
    pub registry_key: String,
    /// A client presenting the admin certificate `urn:sluice:admin:alice`.
    pub admin: RegistryClient,
    /// The sample agency source process.
    pub source: Proc,
    /// Its address.
    pub source_addr: SocketAddr,
    /// Environment added to the registry and gateway processes started from now on.
    pub child_env: Vec<(String, String)>,
}

impl Federation {
    /// Makes the PKI, starts the sample source and the registry, registers the licensee
    /// `acme` and the dataset `fire-hydrants` (through `sluice admin`).
    pub async fn start(backend: Backend) -> Federation {
        sluice_net::tls::install_provider();
        let dir = tempfile::tempdir().unwrap();
        let ca = sluice_certs::Ca::init(dir.path().join("ca"), sluice_certs::InitOptions::default()).unwrap();
        let certs = dir.path().join("certs");
        sluice_certs::issue_gateway(
            &ca,
            sluice_certs::IssueGateway {
                dns: vec!["localhost".into()],
                ips: vec!["127.0.0.1".parse().unwrap()],
                days: 30,
            },
        )
        .unwrap()
        .write_to(&certs, "server")
        .unwrap();
        sluice_certs::issue_admin(&ca, "alice", 5)
            .unwrap()
            .write_to(&certs, "admin")
            .unwrap();
        sluice_certs::issue_licensee(&ca, LICENSEE, 5)
            .unwrap()
            .write_to(&certs, LICENSEE)
            .unwrap();

        let source = Proc::spawn("sample-source", &["sample-source", "--addr", "127.0.0.1:0"]);
        let source_addr = source.wait_for(START, |l| {
            l.strip_prefix("sample source on http://")
                .and_then(|rest| rest.strip_suffix("/hydrants"))
                .and_then(|a| a.parse().ok())
        });

        let (schema, database_url) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let (s, u) = pgtest::create_schema("fed").await.unwrap();
                (Some(s), Some(u))
            }
        };
        let mut fed = Federation {
            ca,
            backend,
            schema,
            database_url,
            registry: None,
            registry_url: String::new(),
            registry_key: String::new(),
            admin: RegistryClient::new("https://localhost:1", &dir.path().join("ca/ca.pem"), None).unwrap(),
            source,
            source_addr,
            dir,
            child_env: Vec::new(),
        };
        fed.start_registry().await;
        fed.seed();
        fed
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The CA certificate.
    pub fn ca_pem(&self) -> PathBuf {
        self.path("ca/ca.pem")
    }

    /// Starts the registry process (again, on a new port, with the same state and database).
    pub async fn start_registry(&mut self) {
        let config = self.path("registry.toml");
        let db = self
            .database_url
            .as_ref()
            .map(|u| format!("database_url = {}\n", toml_str(u)))
            .unwrap_or_default();
        let text = format!(
            "[registry]\naddr = \"127.0.0.1:0\"\ncert = \"certs/server.pem\"\nkey = \"certs/server.key\"\n\
             client_ca = \"ca/ca.pem\"\nstate_dir = \"registry-state\"\n{db}"
        );
        std::fs::write(&config, text).unwrap();
        let proc = Proc::spawn_env(
            "registry",
            &["registry", "--config", config.to_str().unwrap()],
            &self.child_env,
        );
        let addr: SocketAddr = proc.wait_for(START, |l| {
            l.strip_prefix("registry on https://")
                .and_then(|a| a.parse().ok())
        });
        self.registry_url = format!("https://localhost:{}", addr.port());
        let anon = RegistryClient::new(&self.registry_url, &self.ca_pem(), None).unwrap();
        let r = anon.get("/v1/registry-key").await.unwrap();
        assert_eq!(r.status, 200);
        self.registry_key = r.json()["public_key"].as_str().unwrap().to_owned();
        self.admin = RegistryClient::new(
            &self.registry_url,
            &self.ca_pem(),
            Some((&self.path("certs/admin.pem"), &self.path("certs/admin.key"))),
        )
        .unwrap();
        self.registry = Some(proc);
    }

    /// Kills the registry process (SIGKILL: no drain, no goodbye to the gateways).
    pub fn kill_registry(&mut self) {
        if let Some(mut p) = self.registry.take() {
            p.kill();
        }
    }

    /// Runs `sluice admin <args>` against the registry with the admin certificate; panics
    /// unless it succeeds. Returns its stdout (the registry's JSON answer).
    pub fn admin_cli(&self, args: &[&str]) -> Value {
        let (code, out, err) = self.admin_cli_raw(args);
        assert_eq!(code, 0, "sluice admin {args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("sluice admin {args:?}: {e}: {out}"))
    }

    /// Runs `sluice admin <args>`; (exit code, stdout, stderr).
    pub fn admin_cli_raw(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["admin"];
        all.extend_from_slice(args);
        let env = [
            ("SLUICE_REGISTRY", self.registry_url.clone()),
            ("SLUICE_CA", path_str(&self.ca_pem())),
            ("SLUICE_ADMIN_CERT", path_str(&self.path("certs/admin.pem"))),
            ("SLUICE_ADMIN_KEY", path_str(&self.path("certs/admin.key"))),
        ];
        run(&all, &env)
    }

    /// The agency, the licensee `acme`, the catalog entry of `fire-hydrants` (the gateways'
    /// own spec) and the scenario [`SCENARIO`].
    fn seed(&self) {
        self.admin_cli(&["agency", "add", AGENCY, "--name", "Shanghai Fire and Rescue"]);
        self.admin_cli(&[
            "licensee",
            "add",
            LICENSEE,
            "--name",
            "Acme Insurance Ltd",
            "--credit-code",
            "91350100M000100Y43",
            "--reason",
            "approved",
        ]);
        for id in [DATASET, ADOPTERS] {
            let file = self.path(&format!("{id}.json"));
            std::fs::write(&file, serde_json::to_vec(&dataset_spec(id)).unwrap()).unwrap();
            self.admin_cli(&[
                "dataset",
                "register",
                file.to_str().unwrap(),
                "--reason",
                "catalog",
            ]);
        }
        self.scenario(SCENARIO);
    }

    /// Registers scenario `id` covering `fire-hydrants` and `hydrant-adopters`.
    pub fn scenario(&self, id: &str) -> Value {
        self.admin_cli(&[
            "scenario",
            "add",
            id,
            "--title",
            id,
            "--dataset",
            DATASET,
            "--dataset",
            ADOPTERS,
        ])
    }

    /// Grants licence `id` to `acme` on `fire-hydrants` for `scenario` with `sluice admin grant`.
    pub fn grant(&self, id: &str, scenario: &str) -> Value {
        self.admin_cli(
            &grant_args(id, scenario)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
    }

    /// Starts gateway `id` (its folder and state kept across restarts); the first time,
    /// registers it with the registry and issues its client certificate.
    pub fn gateway(&self, id: &str, options: GatewayOptions) -> Gateway {
        self.gateway_with(id, options, "")
    }

    /// [`Federation::gateway`] with `extra` TOML appended to its config (e.g. `[risk]`).
    pub fn gateway_with(&self, id: &str, options: GatewayOptions, extra: &str) -> Gateway {
        let dir = self.path(id);
        std::fs::create_dir_all(&dir).unwrap();
        let certs = self.path("certs");
        let (client, client_key) = self.gateway_identity(id);
        let text = format!(
            r#"[gateway]
id = "{id}"
state_dir = "state"
watch_interval_ms = 0

[listeners.data]
addr = "127.0.0.1:0"
cert = {server_cert}
key = {server_key}
client_ca = {ca}

[listeners.public]
addr = "127.0.0.1:0"
per_ip_per_second = 1000
per_ip_burst = 1000

[listeners.admin]
addr = "127.0.0.1:0"

[registry]
url = "{url}"
cert = {client_cert}
key = {client_key}
ca = {ca}
public_key = ["{key}"]
staleness_bound_s = {bound}
poll_wait_s = {wait}

[sources.fire-hydrants]
kind = "http"
url = "http://{src}/hydrants"
query_allow = ["district"]
filter_params = {{ district = "district" }}

[sources.hydrant-locations]
kind = "http"
url = "http://{src}/hydrants"

[sources.hydrant-adopters]
kind = "http"
url = "http://{src}/hydrants"
{datasets}{ADOPTERS_TOML}
{extra}"#,
            server_cert = toml_path(&certs.join("server.pem")),
            server_key = toml_path(&certs.join("server.key")),
            ca = toml_path(&self.ca_pem()),
            url = self.registry_url,
            client_cert = toml_path(&client),
            client_key = toml_path(&client_key),
            key = self.registry_key,
            bound = options.staleness_bound_s,
            wait = options.poll_wait_s,
            src = self.source_addr,
            datasets = sluice::demo::DATASETS,
        );
        let config = dir.join("gateway.toml");
        std::fs::write(&config, text).unwrap();
        let proc = Proc::spawn_env(
            &format!("gateway {id}"),
            &["gateway", "--log-json", "--config", config.to_str().unwrap()],
            &self.child_env,
        );
        let (data, public, admin) = proc.wait_for(START, listening);
        Gateway {
            id: id.to_owned(),
            dir,
            data,
            public,
            admin,
            proc,
        }
    }

    /// The registry client identity (certificate, key) of gateway `id`; the first time,
    /// registers the gateway with the registry and issues the certificate.
    pub fn gateway_identity(&self, id: &str) -> (PathBuf, PathBuf) {
        if !self.path("certs").join(format!("gw-{id}.pem")).exists() {
            self.admin_cli(&["gateway", "add", id, "--agency", AGENCY]);
        }
        self.gateway_client_cert(id)
    }

    /// Gateway `id`'s registry client certificate and key, issued the first time (without
    /// registering the gateway).
    pub fn gateway_client_cert(&self, id: &str) -> (PathBuf, PathBuf) {
        let certs = self.path("certs");
        let cert = certs.join(format!("gw-{id}.pem"));
        if !cert.exists() {
            sluice_certs::issue_gateway_client(&self.ca, id, 5)
                .unwrap()
                .write_to(&certs, &format!("gw-{id}"))
                .unwrap();
        }
        (cert, certs.join(format!("gw-{id}.key")))
    }

    /// Starts gateway `id` and only then registers it, with its data listener's URL
    /// (`sluice admin gateway add … --url`): a listener on port 0 has no URL before it starts.
    /// Until then its snapshot polls are refused (`unknown-gateway`) and retried.
    pub fn gateway_with_url(&self, id: &str, options: GatewayOptions) -> Gateway {
        self.gateway_client_cert(id);
        let gw = self.gateway(id, options);
        let url = format!("https://localhost:{}", gw.data.port());
        self.admin_cli(&["gateway", "add", id, "--agency", AGENCY, "--url", &url]);
        gw
    }

    /// A client of `gw`'s data listener presenting `acme`'s certificate.
    pub fn licensee_client(&self, gw: &Gateway) -> RegistryClient {
        self.licensee_client_as(gw, LICENSEE)
    }

    /// A client of `gw`'s data listener presenting licensee `id`'s certificate
    /// ([`Self::issue_licensee`]).
    pub fn licensee_client_as(&self, gw: &Gateway, id: &str) -> RegistryClient {
        let certs = self.path("certs");
        RegistryClient::new(
            &format!("https://localhost:{}", gw.data.port()),
            &self.ca_pem(),
            Some((&certs.join(format!("{id}.pem")), &certs.join(format!("{id}.key")))),
        )
        .unwrap()
    }

    /// Issues licensee `id`'s certificate; returns (certificate, key).
    pub fn issue_licensee(&self, id: &str) -> (PathBuf, PathBuf) {
        let certs = self.path("certs");
        sluice_certs::issue_licensee(&self.ca, id, 5)
            .unwrap()
            .write_to(&certs, id)
            .unwrap();
        (certs.join(format!("{id}.pem")), certs.join(format!("{id}.key")))
    }

    /// The flags `sluice admin` takes instead of its environment: registry, admin
    /// certificate and key, CA.
    pub fn admin_flags(&self) -> Vec<String> {
        vec![
            "--registry".into(),
            self.registry_url.clone(),
            "--cert".into(),
            path_str(&self.path("certs/admin.pem")),
            "--key".into(),
            path_str(&self.path("certs/admin.key")),
            "--ca".into(),
            path_str(&self.ca_pem()),
        ]
    }

    /// A client of `gw`'s public listener, without a certificate.
    pub fn public_client(&self, gw: &Gateway) -> RegistryClient {
        RegistryClient::new(
            &format!("https://localhost:{}", gw.public.port()),
            &self.ca_pem(),
            None,
        )
        .unwrap()
    }

    /// `acme`'s (certificate, key).
    pub fn licensee_identity(&self) -> (PathBuf, PathBuf) {
        let certs = self.path("certs");
        (
            certs.join(format!("{LICENSEE}.pem")),
            certs.join(format!("{LICENSEE}.key")),
        )
    }

    /// Kills every process and drops the PostgreSQL schema.
    pub async fn finish(mut self) {
        self.kill_registry();
        self.source.kill();
        if let Some(s) = self.schema.take() {
            pgtest::drop_schema(&s).await.unwrap();
        }
    }
}

impl Drop for Federation {
    /// A test that panicked never reached [`Federation::finish`]: kill the registry and drop
    /// its PostgreSQL schema anyway (on a runtime of its own; we may be inside an async test).
    fn drop(&mut self) {
        self.kill_registry();
        if let Some(schema) = self.schema.take() {
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(pgtest::drop_schema(&schema)))
            })
            .join();
        }
    }
}

/// The arguments of `sluice admin grant` for licence `id`: `id` and `district` in clear, a
/// rate high enough never to limit a test.
pub fn grant_args(id: &str, scenario: &str) -> Vec<String> {
    [
        "grant",
        LICENSEE,
        DATASET,
        scenario,
        "--id",
        id,
        "--field",
        "id=clear",
        "--field",
        "district=clear",
        "--from",
        "2025-01-01",
        "--until",
        "2035-01-01",
        "--rate",
        "100000",
        "--burst",
        "100000",
        "--reason",
        "application 2026-17",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The grant request body the admin API takes for licence `id` (what `sluice admin grant`
/// sends with [`grant_args`]).
pub fn grant_body(id: &str, scenario: &str) -> Value {
    json!({
        "id": id, "licensee": LICENSEE, "dataset": DATASET, "scenario": scenario,
        "fields": { "id": { "rule": "clear" }, "district": { "rule": "clear" } },
        "rate": { "per_second": 100000, "burst": 100000 }, "quota": {},
        "valid_from": "2025-01-01T00:00:00Z", "valid_until": "2035-01-01T00:00:00Z",
        "reason": "application 2026-17",
    })
}

/// The gateways' own catalog entry for `id` (from the demo's datasets), as JSON.
fn dataset_spec(id: &str) -> Value {
    #[derive(serde::Deserialize)]
    struct Datasets {
        datasets: Vec<sluice_policy::catalog::DatasetSpec>,
    }
    let text = format!("{}{ADOPTERS_TOML}", sluice::demo::DATASETS);
    let all: Datasets = toml::from_str(&text).unwrap();
    let spec = all.datasets.into_iter().find(|d| d.id == id).unwrap();
    serde_json::to_value(spec).unwrap()
}

/// Reads the addresses from the gateway's JSON log line `gateway listening`.
fn listening(line: &str) -> Option<(SocketAddr, SocketAddr, SocketAddr)> {
    let v: Value = serde_json::from_str(line).ok()?;
    let f = &v["fields"];
    if f["message"] != "gateway listening" {
        return None;
    }
    let addr = |k: &str| -> Option<SocketAddr> {
        let s = f[k].as_str()?;
        let s = s
            .strip_prefix("Some(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or(s);
        s.parse().ok()
    };
    Some((addr("data_addr")?, addr("public_addr")?, addr("admin_addr")?))
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

fn toml_path(p: &Path) -> String {
    toml_str(&path_str(p))
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

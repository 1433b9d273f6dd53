//! `sluice demo`: a whole federation on one machine with no set-up and no network.
//!
//! A fresh CA and certificates; the registry (SQLite in the demo folder) filled through its
//! admin API with licensees, both agencies' catalogs and the licences; two agency gateways,
//! each in front of its sample source and taking its licences from the registry's signed
//! snapshots. Writes `DIR/demo.json` once both gateways enforce the registry's licences, and
//! prints curl and `sluice admin` commands to try.

pub mod config;
pub mod hydrants;
pub mod seed;
pub mod source;
pub mod utilities;
mod walkthrough;

use anyhow::Context;
use config::{AgencyGateway, RegistryLink, FIRE, UTILITIES};
use serde_json::json;
use sluice_agency::gateway::{Gateway, Running};
use sluice_net::registry_client::RegistryClient;
use sluice_policy::catalog::DatasetSpec;
use source::SampleSource;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Licensee with a licence for the hydrant register (adoption scenario) and one for the
/// utilities register (underwriting): it holds licences at both agencies.
pub const ACME: &str = "acme-insurance";
/// Licensee with a row-filtered licence (Huangpu only, map overlay scenario).
pub const MAPS: &str = "city-maps";
/// Licensee with a row-filtered licence on the utilities register (Pudong only).
pub const GREEN_BANK: &str = "pudong-green-bank";
/// The city statistics office: aggregates only (the data sandbox), over the utilities register.
pub const STATS: &str = "city-statistics";
/// Client with a certificate from the CA but no licence.
pub const UNLICENSED: &str = "nobody-ltd";
/// The demo administrator (`urn:sluice:admin:demo-admin`).
pub const ADMIN: &str = "demo-admin";

/// How long the gateways may take to receive the registry's licences at start.
const SUBSCRIBE_WITHIN: Duration = Duration::from_secs(30);

/// The demo's files and processes.
pub struct Demo {
    /// The demo folder.
    pub dir: PathBuf,
    /// The hydrant register's source.
    pub source: SampleSource,
    /// The registry.
    pub registry: sluice_registry::Running,
    /// Agency A's gateway (fire bureau: hydrants).
    pub gateway: Running,
    /// Agency B's gateway (utilities bureau: enterprise water and electricity use).
    pub utilities_gateway: Running,
    /// The `demo.json` document.
    pub manifest: serde_json::Value,
}

impl Demo {
    /// Stops the gateways (draining, closing their audit logs), then the registry.
    pub async fn stop(self) {
        self.gateway.shutdown().await;
        self.utilities_gateway.shutdown().await;
        self.registry.stop().await;
    }
}

/// Runs the demo until interrupted.
pub async fn run(dir: &Path) -> anyhow::Result<()> {
    let demo = start(dir).await?;
    walkthrough::print(&demo);
    tokio::signal::ctrl_c().await?;
    println!("stopping…");
    demo.stop().await;
    Ok(())
}

fn prepare_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.join("demo.json").exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("removing the previous demo in {}", dir.display()))?;
    } else if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        anyhow::bail!(
            "{} exists and is not a demo folder; choose another --dir",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)?;
    Ok(dir.canonicalize()?)
}

/// Makes the CA and every certificate: the gateways' and the registry's server certificates,
/// the gateways' registry client certificates, the admin's and the licensees'.
fn issue_certificates(dir: &Path) -> anyhow::Result<sluice_certs::Ca> {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs)?;
    let ca = sluice_certs::Ca::init(dir.join("ca"), sluice_certs::InitOptions::default())?;
    let localhost: IpAddr = Ipv4Addr::LOCALHOST.into();
    for name in [FIRE.server_cert, UTILITIES.server_cert, "registry"] {
        sluice_certs::issue_gateway(
            &ca,
            sluice_certs::IssueGateway {
                dns: vec!["localhost".into()],
                ips: vec![localhost],
                days: 90,
            },
        )?
        .write_to(&certs, name)?;
    }
    for gw in [&FIRE, &UTILITIES] {
        sluice_certs::issue_gateway_client(&ca, gw.id, 90)?.write_to(&certs, &format!("{}-client", gw.id))?;
    }
    sluice_certs::issue_admin(&ca, ADMIN, 30)?.write_to(&certs, ADMIN)?;
    for id in [ACME, MAPS, GREEN_BANK, STATS, UNLICENSED] {
        sluice_certs::issue_licensee(&ca, id, 30)?.write_to(&certs, id)?;
    }
    Ok(ca)
}

/// The `[[datasets]]` of a TOML fragment.
fn dataset_specs(toml_text: &str) -> anyhow::Result<Vec<DatasetSpec>> {
    #[derive(serde::Deserialize)]
    struct Datasets {
        datasets: Vec<DatasetSpec>,
    }
    Ok(toml::from_str::<Datasets>(toml_text)?.datasets)
}

/// Starts a gateway and waits until it enforces registry revision `revision` or later.
async fn start_gateway(
    dir: &Path,
    gw: &AgencyGateway,
    link: &RegistryLink<'_>,
    sources: &str,
    datasets: &str,
    revision: u64,
) -> anyhow::Result<Running> {
    let path = dir.join(gw.config_file);
    std::fs::write(&path, config::gateway_config(dir, gw, link, sources, datasets))?;
    let running = Gateway::start(&path)
        .await
        .with_context(|| format!("starting gateway {}", gw.id))?;
    let sub = running
        .gateway
        .subscription()
        .cloned()
        .context("the gateway has no registry subscription")?;
    let started = Instant::now();
    while sub.revision() < revision {
        if started.elapsed() > SUBSCRIBE_WITHIN {
            anyhow::bail!(
                "gateway {} did not receive registry revision {revision} within {} s",
                gw.id,
                SUBSCRIBE_WITHIN.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(running)
}

fn https(addr: SocketAddr) -> String {
    format!("https://localhost:{}", addr.port())
}

/// Builds the demo in `dir` (which is recreated) and starts it on free loopback ports.
pub async fn start(dir: &Path) -> anyhow::Result<Demo> {
    let dir = prepare_dir(dir)?;
    let certs = dir.join("certs");
    let ca = issue_certificates(&dir)?;
    let ca_pem = ca.dir().join(sluice_certs::store::ROOT_CERT_FILE);
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let source = SampleSource::start(loopback).await?;
    let utilities_db = dir.join("utilities.sqlite");
    utilities::write_sqlite(&utilities_db, &utilities::generate())
        .context("writing the utilities register")?;

    let registry_toml = dir.join("registry.toml");
    std::fs::write(&registry_toml, config::registry_config())?;
    let registry = sluice_registry::start(&sluice_registry::config::RegistryConfig::load(&registry_toml)?)
        .await
        .context("starting the registry")?;
    let registry_url = https(registry.addr);
    let admin_cert = certs.join(format!("{ADMIN}.pem"));
    let admin_key = certs.join(format!("{ADMIN}.key"));
    let admin = RegistryClient::new(&registry_url, &ca_pem, Some((&admin_cert, &admin_key)))?;
    let mut specs: Vec<(DatasetSpec, &str)> = dataset_specs(DATASETS)?
        .into_iter()
        .map(|d| (d, FIRE.agency_id))
        .collect();
    specs.extend(
        dataset_specs(config::UTILITIES_DATASETS)?
            .into_iter()
            .map(|d| (d, UTILITIES.agency_id)),
    );
    let revision = seed::seed(&admin, &specs).await.context("filling the registry")?;
    let bank = RegistryClient::new(
        &registry_url,
        &ca_pem,
        Some((
            &certs.join(format!("{GREEN_BANK}.pem")),
            &certs.join(format!("{GREEN_BANK}.key")),
        )),
    )?;
    seed::apply(&bank).await.context("the demo application")?;
    let public = RegistryClient::new(&registry_url, &ca_pem, None)?;
    seed::demands(&public).await.context("the demo demands")?;

    let public_key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(registry.public_key.as_bytes())
    };
    let link = RegistryLink {
        url: &registry_url,
        public_key: &public_key,
    };
    let gateway = start_gateway(
        &dir,
        &FIRE,
        &link,
        &config::fire_sources(source.addr),
        DATASETS,
        revision,
    )
    .await?;
    let utilities_gateway = start_gateway(
        &dir,
        &UTILITIES,
        &link,
        &config::utilities_sources(&utilities_db),
        config::UTILITIES_DATASETS,
        revision,
    )
    .await?;

    let gateway_entry = |gw: &AgencyGateway, r: &Running| {
        json!({
            "id": gw.id,
            "agency": gw.agency,
            "agency_id": gw.agency_id,
            "url": https(r.data_addr),
            "public_url": r.public_addr.map(https),
            "admin_url": format!("http://{}", r.admin_addr),
            "datasets": gw.datasets,
            "audit_dir": dir.join(gw.state_dir).join("audit"),
            "config": dir.join(gw.config_file),
        })
    };
    let licensee_entry = |id: &str| {
        let licences: Vec<_> = seed::LICENCES
            .iter()
            .filter(|l| l.licensee == id)
            .map(|l| {
                let gw = [&FIRE, &UTILITIES]
                    .into_iter()
                    .find(|g| g.datasets.contains(&l.dataset))
                    .map(|g| g.id);
                json!({ "id": l.id, "dataset": l.dataset, "scenario": l.scenario, "gateway": gw })
            })
            .collect();
        json!({
            "id": id,
            "cert": certs.join(format!("{id}.pem")),
            "key": certs.join(format!("{id}.key")),
            "licences": licences,
        })
    };
    let manifest = json!({
        "ca": ca_pem,
        "gateways": [gateway_entry(&FIRE, &gateway), gateway_entry(&UTILITIES, &utilities_gateway)],
        "licensees": [licensee_entry(ACME), licensee_entry(MAPS), licensee_entry(GREEN_BANK), licensee_entry(STATS)],
        "unlicensed": {
            "id": UNLICENSED,
            "cert": certs.join(format!("{UNLICENSED}.pem")),
            "key": certs.join(format!("{UNLICENSED}.key")),
        },
        "registry": {
            "admin_url": registry_url,
            "public_url": registry_url,
            "catalog_url": format!("{registry_url}/catalog"),
            "violations_url": format!("{registry_url}/violations"),
            "public_key": public_key,
            "database": dir.join("state-registry").join("registry.db"),
            "admin": {
                "id": ADMIN,
                "cert": admin_cert,
                "key": admin_key,
            },
            "gateways": [FIRE.id, UTILITIES.id],
        },
        "source_url": source.url(),
        "utilities_database": utilities_db,
        "audit_dir": dir.join(FIRE.state_dir).join("audit"),
    });
    // Written last and atomically: its presence means the federation is serving.
    let tmp = dir.join("demo.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::rename(&tmp, dir.join("demo.json"))?;
    Ok(Demo {
        dir,
        source,
        registry,
        gateway,
        utilities_gateway,
        manifest,
    })
}

/// The demo's datasets: one conditional register and an unconditional view of it.
pub const DATASETS: &str = r#"
[[datasets]]
id = "fire-hydrants"
title = "Fire hydrant register with volunteer adopters"
owner = "Shanghai Fire and Rescue"
update_frequency = "daily"
grades = { personal = "non_anonymous_non_sensitive" }
# Every record has a stable id: fingerprint marks are keyed by it, and the audit digests the
# ids each response served.
record_key = "id"
# Codes that can hold no identifier are not scanned (`scan = false`): that also makes them
# filterable (`district=eq.Huangpu`); a scanned field never is. Coordinates a licence shows
# unrounded carry the licensee's fingerprint: each moves by at most half of 0.00001° (about
# half a metre), so a leaked copy names the licensee it was served to (`sluice trace`).
fields = [
  { name = "id", scan = false },
  { name = "district", scan = false },
  { name = "street" },
  { name = "latitude", grades = { object = "low_risk" }, fingerprint = { tolerance = 0.00001 } },
  { name = "longitude", grades = { object = "low_risk" }, fingerprint = { tolerance = 0.00001 } },
  { name = "status", scan = false },
  { name = "last_inspection" },
  { name = "adopter_name", grades = { personal = "non_anonymous_non_sensitive" } },
  { name = "adopter_mobile", grades = { personal = "non_anonymous_non_sensitive" } },
  { name = "adopter_id_number", grades = { personal = "non_anonymous_sensitive" } },
  { name = "notes", description = "inspector's free text; the detector safety net runs over it" },
]

[[datasets]]
id = "hydrant-locations"
title = "Fire hydrant locations"
owner = "Shanghai Fire and Rescue"
update_frequency = "daily"
fields = [
  { name = "id" },
  { name = "district" },
  { name = "street" },
  { name = "latitude" },
  { name = "longitude" },
  { name = "status" },
  { name = "adopter_name", grades = { personal = "non_anonymous_non_sensitive" } },
]
"#;

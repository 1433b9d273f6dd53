//! `sluice demo`: a whole federation on one machine with no set-up and no network.
//!
//! A fresh CA and certificates, the sample agency source, and a gateway in front of it with
//! licences for two licensees; writes `DIR/demo.json` and prints curl commands to try.

pub mod hydrants;
pub mod source;

use crate::gateway::{Gateway, Running};
use anyhow::Context;
use serde_json::json;
use source::SampleSource;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Licensee with a licence for the hydrant register (adoption scenario).
pub const ACME: &str = "acme-insurance";
/// Licensee with a row-filtered licence (Huangpu only, map overlay scenario).
pub const MAPS: &str = "city-maps";
/// Client with a certificate from the CA but no licence.
pub const UNLICENSED: &str = "nobody-ltd";

/// The demo's files and processes.
pub struct Demo {
    /// The demo folder.
    pub dir: PathBuf,
    /// The sample source.
    pub source: SampleSource,
    /// The gateway.
    pub gateway: Running,
    /// The `demo.json` document.
    pub manifest: serde_json::Value,
}

/// Runs the demo until interrupted.
pub async fn run(dir: &Path) -> anyhow::Result<()> {
    let demo = start(dir).await?;
    print_walkthrough(&demo);
    tokio::signal::ctrl_c().await?;
    println!("stopping…");
    demo.gateway.shutdown().await;
    Ok(())
}

/// Builds the demo in `dir` (which is recreated) and starts it on free loopback ports.
pub async fn start(dir: &Path) -> anyhow::Result<Demo> {
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
    let dir = dir.canonicalize()?;
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs)?;
    let ca = sluice_certs::Ca::init(dir.join("ca"), sluice_certs::InitOptions::default())?;
    let localhost: IpAddr = Ipv4Addr::LOCALHOST.into();
    sluice_certs::issue_gateway(
        &ca,
        sluice_certs::IssueGateway {
            dns: vec!["localhost".into()],
            ips: vec![localhost],
            days: 90,
        },
    )?
    .write_to(&certs, "gateway")?;
    for id in [ACME, MAPS, UNLICENSED] {
        sluice_certs::issue_licensee(&ca, id, 30)?.write_to(&certs, id)?;
    }
    let source = SampleSource::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let config_path = dir.join("gateway.toml");
    std::fs::write(&config_path, gateway_config(&dir, source.addr))?;
    std::fs::write(dir.join("licences.toml"), LICENCES)?;
    let gateway = Gateway::start(&config_path).await?;
    let manifest = json!({
        "ca": ca.dir().join(sluice_certs::store::ROOT_CERT_FILE),
        "gateways": [{
            "id": "shanghai-fire",
            "url": format!("https://localhost:{}", gateway.data_addr.port()),
            "public_url": gateway.public_addr.map(|a| format!("https://localhost:{}", a.port())),
            "admin_url": format!("http://{}", gateway.admin_addr),
            "datasets": ["fire-hydrants", "hydrant-locations"],
        }],
        "licensees": [
            {
                "id": ACME,
                "cert": certs.join(format!("{ACME}.pem")),
                "key": certs.join(format!("{ACME}.key")),
                "licences": [{"dataset": "fire-hydrants", "scenario": "fire-hydrant-adoption"}],
            },
            {
                "id": MAPS,
                "cert": certs.join(format!("{MAPS}.pem")),
                "key": certs.join(format!("{MAPS}.key")),
                "licences": [{"dataset": "fire-hydrants", "scenario": "map-overlay"}],
            },
        ],
        "unlicensed": {
            "id": UNLICENSED,
            "cert": certs.join(format!("{UNLICENSED}.pem")),
            "key": certs.join(format!("{UNLICENSED}.key")),
        },
        "source_url": format!("http://{}/hydrants", source.addr),
        "audit_dir": dir.join("state").join("audit"),
    });
    std::fs::write(dir.join("demo.json"), serde_json::to_vec_pretty(&manifest)?)?;
    Ok(Demo {
        dir,
        source,
        gateway,
        manifest,
    })
}

fn print_walkthrough(demo: &Demo) {
    let m = &demo.manifest;
    let url = m["gateways"][0]["url"].as_str().unwrap_or_default();
    let public = m["gateways"][0]["public_url"].as_str().unwrap_or_default();
    let admin = m["gateways"][0]["admin_url"].as_str().unwrap_or_default();
    let ca = m["ca"].as_str().unwrap_or_default();
    let c = |id: &str| {
        let d = demo.dir.join("certs");
        format!(
            "--cacert {ca} --cert {}/{id}.pem --key {}/{id}.key",
            d.display(),
            d.display()
        )
    };
    println!(
        "sluice demo is running; manifest: {}",
        demo.dir.join("demo.json").display()
    );
    println!();
    println!("# the catalog");
    println!("curl -s {} {url}/v1/catalog", c(ACME));
    println!("# licensed: masked hydrant records (adoption scenario)");
    println!("curl -s {} -H 'Sluice-Scenario: fire-hydrant-adoption' '{url}/v1/datasets/fire-hydrants/records?limit=3'", c(ACME));
    println!("# row-filtered licence (Huangpu only), CSV");
    println!("curl -s {} -H 'Sluice-Scenario: map-overlay' '{url}/v1/datasets/fire-hydrants/records?limit=5&format=csv'", c(MAPS));
    println!("# wrong scenario → problem+json");
    println!(
        "curl -s {} -H 'Sluice-Scenario: marketing' '{url}/v1/datasets/fire-hydrants/records'",
        c(ACME)
    );
    println!("# unlicensed certificate → problem+json");
    println!(
        "curl -s {} -H 'Sluice-Scenario: fire-hydrant-adoption' '{url}/v1/datasets/fire-hydrants/records'",
        c(UNLICENSED)
    );
    println!("# public listener: unconditional data, no client certificate");
    println!("curl -s --cacert {ca} '{public}/v1/datasets/hydrant-locations/records?limit=3'");
    println!("# metrics, and the audit chain");
    println!("curl -s {admin}/metrics | grep sluice_requests");
    println!(
        "sluice audit verify {}",
        m["audit_dir"].as_str().unwrap_or_default()
    );
    println!();
    println!("Ctrl-C stops the demo.");
}

fn gateway_config(dir: &Path, source: SocketAddr) -> String {
    format!(
        r#"# Generated by `sluice demo`.
licences_file = "licences.toml"

[gateway]
id = "shanghai-fire"
state_dir = "state"

[listeners.data]
addr = "127.0.0.1:0"
cert = "certs/gateway.pem"
key = "certs/gateway.key"
client_ca = "{ca}"

[listeners.public]
addr = "127.0.0.1:0"

[listeners.admin]
addr = "127.0.0.1:0"

[sources.fire-hydrants]
url = "http://{source}/hydrants"
query_allow = ["district"]
filter_params = {{ district = "district" }}

[sources.hydrant-locations]
url = "http://{source}/hydrants"
query_allow = ["district"]
filter_params = {{ district = "district" }}
{datasets}"#,
        ca = dir.join("ca").join("ca.pem").display(),
        datasets = DATASETS,
    )
}

/// The demo's datasets: one conditional register and an unconditional view of it.
pub const DATASETS: &str = r#"
[[datasets]]
id = "fire-hydrants"
title = "Fire hydrant register with volunteer adopters"
owner = "Shanghai Fire and Rescue"
update_frequency = "daily"
grades = { personal = "non_anonymous_non_sensitive" }
fields = [
  { name = "id" },
  { name = "district" },
  { name = "street" },
  { name = "latitude", grades = { object = "low_risk" } },
  { name = "longitude", grades = { object = "low_risk" } },
  { name = "status" },
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

/// The demo's licences.
pub const LICENCES: &str = r#"
[[licences]]
id = "lic-acme-adoption"
licensee = "acme-insurance"
dataset = "fire-hydrants"
scenario = "fire-hydrant-adoption"
valid_from = "2025-01-01T00:00:00Z"
valid_until = "2030-01-01T00:00:00Z"
rate = { per_second = 50000, burst = 100000 }
quota = { requests_per_day = 100000000, records_per_day = 10000000000 }
fields.id = { rule = "clear" }
fields.district = { rule = "clear" }
fields.street = { rule = "clear" }
fields.latitude = { rule = "decimals", places = 3 }
fields.longitude = { rule = "decimals", places = 3 }
fields.status = { rule = "clear" }
fields.last_inspection = { rule = "month" }
fields.adopter_name = { rule = "partial", first = 1, last = 0 }
fields.adopter_mobile = { rule = "partial", first = 3, last = 4 }
fields.notes = { rule = "clear" }

[[licences]]
id = "lic-maps-overlay"
licensee = "city-maps"
dataset = "fire-hydrants"
scenario = "map-overlay"
valid_from = "2025-01-01T00:00:00Z"
valid_until = "2030-01-01T00:00:00Z"
row_filter = "district = 'Huangpu'"
rate = { per_second = 5, burst = 10 }
quota = { requests_per_day = 1000, records_per_day = 50000 }
fields.id = { rule = "clear" }
fields.district = { rule = "clear" }
fields.latitude = { rule = "grid", cell = 0.01 }
fields.longitude = { rule = "grid", cell = 0.01 }
fields.status = { rule = "clear" }
fields.adopter_name = { rule = "pseudonym" }
"#;

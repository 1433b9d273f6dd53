//! End-to-end test harness for sluice: a CA and certificates made per test, a programmable
//! upstream on loopback, a gateway started on free ports, and a TLS client that presents a
//! client certificate and reports broken transfers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod browser;
pub mod client;
pub mod http2;
pub mod registry_double;
pub mod registry_harness;
pub mod upstream;

use sluice_agency::gateway::{Gateway, Running};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A CA with certificates for a gateway and some licensees, in a temp folder.
pub struct Pki {
    /// Temp folder holding everything.
    pub dir: tempfile::TempDir,
    /// The CA.
    pub ca: sluice_certs::Ca,
}

impl Pki {
    /// A fresh CA with a gateway certificate for localhost/127.0.0.1.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = sluice_certs::Ca::init(dir.path().join("ca"), sluice_certs::InitOptions::default()).unwrap();
        sluice_certs::issue_gateway(
            &ca,
            sluice_certs::IssueGateway {
                dns: vec!["localhost".into()],
                ips: vec!["127.0.0.1".parse().unwrap()],
                days: 30,
            },
        )
        .unwrap()
        .write_to(dir.path().join("certs"), "gateway")
        .unwrap();
        Self { dir, ca }
    }

    /// Issues a licensee certificate; returns (cert, key) paths.
    pub fn licensee(&self, id: &str) -> (PathBuf, PathBuf) {
        let certs = self.dir.path().join("certs");
        sluice_certs::issue_licensee(&self.ca, id, 5)
            .unwrap()
            .write_to(&certs, id)
            .unwrap();
        (certs.join(format!("{id}.pem")), certs.join(format!("{id}.key")))
    }

    /// The CA certificate.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca").join("ca.pem")
    }

    /// The folder of issued certificates.
    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// Where [`Pki::write_crl`] writes the CRL: `<dir>/ca/crl.pem`.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.path().join("ca").join("crl.pem")
    }

    /// Signs a CRL of every certificate revoked so far and replaces [`Pki::crl_path`] with it
    /// (write to a temp file, then rename); returns the path.
    pub fn write_crl(&self) -> PathBuf {
        let pem = sluice_certs::crl(&self.ca, 24).unwrap();
        let path = self.crl_path();
        replace_file(&path, pem.as_bytes());
        path
    }
}

/// Replaces a file atomically (temp file in the same folder, then rename), as deployment tools
/// do; a watcher never sees it half written.
pub fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-replace");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Settings of a test gateway beyond the defaults of [`write_config`].
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    /// `[listeners.data] crl`.
    pub crl: Option<PathBuf>,
    /// `[gateway] watch_interval_ms`; the gateway's default when `None`.
    pub watch_interval_ms: Option<u64>,
    /// More lines of the `[limits]` table, e.g. `write_stall_timeout_ms = 500`.
    pub limits: String,
    /// More lines of the `[sources.fire-hydrants]` table, e.g. `headers = [...]`.
    pub source: String,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes a gateway config in the PKI folder and starts the gateway.
pub async fn start_gateway(pki: &Pki, upstream: SocketAddr, licences: &str, extra: &str) -> Running {
    let path = write_config(pki, upstream, licences, extra);
    Gateway::start(&path).await.unwrap()
}

/// Writes a gateway config with `options` in the PKI folder and starts the gateway.
pub async fn start_gateway_with(
    pki: &Pki,
    upstream: SocketAddr,
    licences: &str,
    extra: &str,
    options: &GatewayOptions,
) -> Running {
    let path = write_config_with(pki, upstream, licences, extra, options);
    Gateway::start(&path).await.unwrap()
}

/// Writes the gateway config; returns its path.
pub fn write_config(pki: &Pki, upstream: SocketAddr, licences: &str, extra: &str) -> PathBuf {
    write_config_with(pki, upstream, licences, extra, &GatewayOptions::default())
}

/// Writes the gateway config with `options`; returns its path.
pub fn write_config_with(
    pki: &Pki,
    upstream: SocketAddr,
    licences: &str,
    extra: &str,
    options: &GatewayOptions,
) -> PathBuf {
    let dir = pki.dir.path();
    let gateway_extra = options
        .watch_interval_ms
        .map(|ms| format!("watch_interval_ms = {ms}\n"))
        .unwrap_or_default();
    let data_extra = options
        .crl
        .as_ref()
        .map(|p| format!("crl = {:?}\n", p.display().to_string()))
        .unwrap_or_default();
    let text = format!(
        r#"licences_file = "licences.toml"
{extra}
[gateway]
id = "test-gateway"
state_dir = "state"
{gateway_extra}
[listeners.data]
addr = "127.0.0.1:0"
cert = "certs/gateway.pem"
key = "certs/gateway.key"
client_ca = "ca/ca.pem"
{data_extra}
[listeners.public]
addr = "127.0.0.1:0"
per_ip_per_second = 1
per_ip_burst = 3

[listeners.admin]
addr = "127.0.0.1:0"

[limits]
handshake_timeout_ms = 2000
{limits_extra}

[sources.fire-hydrants]
kind = "http"
url = "http://{upstream}/hydrants"
query_allow = ["district"]
filter_params = {{ district = "district" }}
response_timeout_ms = 1000
read_timeout_ms = 1000
{source_extra}

[sources.hydrant-locations]
kind = "http"
url = "http://{upstream}/hydrants"
{datasets}"#,
        datasets = sluice::demo::DATASETS,
        limits_extra = options.limits,
        source_extra = options.source,
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::write(dir.join("licences.toml"), licences).unwrap();
    path
}

/// One `licences.toml` entry: licence `id` for `licensee` on `fire-hydrants` under the
/// `fire-hydrant-adoption` scenario, valid 2025–2035, with `rules` (field rules, rate, row
/// filter: any further licence keys) as written.
pub fn licence_toml(id: &str, licensee: &str, rules: &str) -> String {
    format!(
        r#"
[[licences]]
id = "{id}"
licensee = "{licensee}"
dataset = "fire-hydrants"
scenario = "fire-hydrant-adoption"
valid_from = "2025-01-01T00:00:00Z"
valid_until = "2035-01-01T00:00:00Z"
{rules}
"#
    )
}

/// The audit folder of a gateway started by [`start_gateway`].
pub fn audit_dir(pki: &Pki) -> PathBuf {
    pki.dir.path().join("state").join("audit")
}

/// Reads a file to a string.
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

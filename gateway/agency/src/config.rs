//! Gateway configuration (TOML): listeners, TLS files, datasets and their sources, licences.
//!
//! Every struct denies unknown fields; [`Config::validate`] names the path of each bad value,
//! and `sluice check --config FILE` runs it like `nginx -t`.

use serde::{Deserialize, Serialize};
use sluice_policy::catalog::DatasetSpec;
use sluice_policy::classify::RuleTable;
use sluice_policy::id::is_valid_id;
use sluice_policy::licence::Licence;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole gateway configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This gateway's identity and state.
    pub gateway: GatewaySection,
    /// Where the gateway listens.
    pub listeners: Listeners,
    /// Abuse limits.
    #[serde(default)]
    pub limits: Limits,
    /// Overrides of the classification rule table.
    #[serde(default)]
    pub classification: RuleTable,
    /// The datasets this gateway offers.
    #[serde(default)]
    pub datasets: Vec<DatasetSpec>,
    /// The source of each dataset, keyed by dataset id.
    #[serde(default)]
    pub sources: BTreeMap<String, sluice_connectors::SourceConfig>,
    /// A TOML file holding `[[licences]]`, relative to the config file (until the registry
    /// distributes them).
    #[serde(default)]
    pub licences_file: Option<PathBuf>,
    /// Licences given inline.
    #[serde(default)]
    pub licences: Vec<Licence>,
    /// Datasets closed by the emergency switch.
    #[serde(default)]
    pub closed_datasets: Vec<String>,
    /// The registry this gateway subscribes to; without it, local licences are used.
    #[serde(default)]
    pub registry: Option<RegistrySection>,
    /// Where risk alerts go besides the log, the metric and the registry.
    #[serde(default)]
    pub risk: RiskSection,
}

/// `[risk]`: the webhook risk alerts are posted to (the rules come from the registry).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSection {
    /// `http://` or `https://` URL each alert is POSTed to as JSON.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// The HMAC-SHA256 key of the `Sluice-Signature` header, from a file or a variable.
    #[serde(default)]
    pub webhook_secret: Option<sluice_connectors::secret::Secret>,
    /// Roots (and a client certificate) for an `https://` webhook.
    #[serde(default)]
    pub webhook_tls: Option<sluice_connectors::upstream_tls::UpstreamTls>,
}

/// `[registry]`: where the signed licence snapshot comes from and how fresh it must be.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// Base URL, e.g. `https://registry.example:7443`.
    pub url: String,
    /// This gateway's client certificate (`urn:sluice:gateway:<id>`), PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// CA bundle the registry's server certificate must chain to, PEM.
    pub ca: PathBuf,
    /// Trusted registry signing keys (base64 Ed25519): one string, or a list during a rotation.
    #[serde(deserialize_with = "one_or_many")]
    pub public_key: Vec<String>,
    /// Longest time without a confirmation from the registry before conditional data is refused.
    #[serde(default = "default_staleness_bound_s")]
    pub staleness_bound_s: u64,
    /// Long-poll wait asked of the registry, seconds (at most 30).
    #[serde(default = "default_poll_wait_s")]
    pub poll_wait_s: u64,
    /// How often usage counts are reported to the registry (`POST /v1/usage`), seconds.
    #[serde(default = "default_usage_interval_s")]
    pub usage_interval_s: u64,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

fn default_staleness_bound_s() -> u64 {
    60
}
fn default_poll_wait_s() -> u64 {
    25
}
fn default_usage_interval_s() -> u64 {
    60
}

/// Identity and state of this gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// Gateway id, e.g. `fire-bureau-1`.
    pub id: String,
    /// State folder (audit segments, keys), relative to the config file.
    pub state_dir: PathBuf,
    /// File holding the pseudonym master secret (created with 32 random bytes if missing).
    #[serde(default)]
    pub master_key_file: Option<PathBuf>,
    /// How often to poll the config, licences and TLS files for changes and reload, ms;
    /// 0 turns file watching off (SIGHUP still reloads).
    #[serde(default = "default_watch_interval_ms")]
    pub watch_interval_ms: u64,
}

fn default_watch_interval_ms() -> u64 {
    1_000
}

/// The listeners.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    /// The mTLS data listener for licensees.
    pub data: DataListener,
    /// An optional listener serving unconditional datasets without client certificates.
    #[serde(default)]
    pub public: Option<PublicListener>,
    /// Health, readiness and metrics (plain HTTP; loopback by default).
    #[serde(default)]
    pub admin: AdminListener,
}

/// The mTLS data listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataListener {
    /// Address to bind, e.g. `127.0.0.1:8443`.
    pub addr: SocketAddr,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA bundle client certificates must chain to (PEM).
    pub client_ca: PathBuf,
    /// Optional CRL (PEM) checked for every client certificate.
    #[serde(default)]
    pub crl: Option<PathBuf>,
}

/// The public listener (TLS, no client certificate).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicListener {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Requests per second per client IP.
    #[serde(default = "default_public_rate")]
    pub per_ip_per_second: u32,
    /// Burst per client IP.
    #[serde(default = "default_public_burst")]
    pub per_ip_burst: u32,
}

fn default_public_rate() -> u32 {
    5
}
fn default_public_burst() -> u32 {
    10
}

/// The admin listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminListener {
    /// Address to bind; loopback by default.
    #[serde(default = "default_admin_addr")]
    pub addr: SocketAddr,
}

impl Default for AdminListener {
    fn default() -> Self {
        Self {
            addr: default_admin_addr(),
        }
    }
}

fn default_admin_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}

/// Limits against abuse, with documented defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request head (request line and headers), bytes. Larger → 431.
    pub max_header_bytes: usize,
    /// Most request headers. More → 431.
    pub max_headers: usize,
    /// Time to complete the TLS handshake, ms.
    pub handshake_timeout_ms: u64,
    /// Time to receive a request's headers, ms; on HTTP/1.1 this includes idle time on a
    /// keep-alive connection, so it also closes idle connections.
    pub request_timeout_ms: u64,
    /// Concurrent connections per listener.
    pub max_connections: usize,
    /// `SO_SNDBUF` of client connections, bytes: bounds the kernel memory a client that does
    /// not read can hold (as nginx's `listen … sndbuf=`); the kernel's autotuning when unset.
    pub send_buffer_bytes: Option<usize>,
    /// Largest upstream body read for one request, bytes.
    pub max_upstream_bytes: u64,
    /// How long masked output may wait for a client that reads nothing, ms; then the stream is
    /// aborted and audited as `write-stalled` (and an HTTP/1.1 connection closed).
    pub write_stall_timeout_ms: u64,
    /// Largest single record, bytes.
    pub max_record_bytes: usize,
    /// Default page size.
    pub default_limit: u64,
    /// Largest page size a client may ask for.
    pub max_limit: u64,
    /// Time to drain connections on SIGTERM, ms.
    pub drain_timeout_ms: u64,
    /// Redis shared by replicas for daily quotas and per-licence rate limits
    /// (`redis://host:port`); local limits when unset.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this gateway writes.
    pub redis_prefix: String,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            handshake_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            max_connections: 4_096,
            send_buffer_bytes: None,
            max_upstream_bytes: 512 * 1024 * 1024,
            write_stall_timeout_ms: 30_000,
            max_record_bytes: 1024 * 1024,
            default_limit: 100,
            max_limit: 10_000,
            drain_timeout_ms: 10_000,
            redis_url: None,
            redis_prefix: "sluice".to_owned(),
        }
    }
}

/// A configuration error, with the path of the bad value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// File path.
        path: PathBuf,
        /// The parser's message, which names the key.
        message: String,
    },
    /// Values that parsed but make no sense.
    #[error("{}", .0.iter().map(|p| format!("{}: {}", p.path, p.message)).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<InvalidValue>),
}

/// One invalid value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue {
    /// Dotted path, e.g. `datasets[0].fields[2].name`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LicenceFile {
    #[serde(default)]
    licences: Vec<Licence>,
}

impl Config {
    /// Reads, parses and validates a config file. Relative paths are resolved against the
    /// file's folder; licences from `licences_file` are merged into `licences`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(&read(path)?, path)
    }

    /// Parses and validates config text as if read from `path` (relative paths resolve
    /// against its folder; `licences_file` is read from there). What `load` does after
    /// reading the file; the config fuzz target calls it directly.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: Config = parse(path, text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_paths(base);
        if let Some(file) = &cfg.licences_file {
            let text = read(file)?;
            let extra: LicenceFile = parse(file, &text)?;
            cfg.licences.extend(extra.licences);
        }
        cfg.validate().map_err(ConfigError::Invalid)?;
        Ok(cfg)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.gateway.state_dir);
        if let Some(p) = self.gateway.master_key_file.as_mut() {
            fix(p);
        }
        let d = &mut self.listeners.data;
        fix(&mut d.cert);
        fix(&mut d.key);
        fix(&mut d.client_ca);
        if let Some(p) = d.crl.as_mut() {
            fix(p);
        }
        if let Some(p) = self.licences_file.as_mut() {
            fix(p);
        }
        if let Some(r) = self.registry.as_mut() {
            fix(&mut r.cert);
            fix(&mut r.key);
            fix(&mut r.ca);
        }
        for source in self.sources.values_mut() {
            source.resolve_paths(base);
        }
        if let Some(f) = self.risk.webhook_secret.as_mut().and_then(|s| s.file.as_mut()) {
            fix(f);
        }
        if let Some(t) = self.risk.webhook_tls.as_mut() {
            t.resolve_paths(base);
        }
    }

    /// Checks every value; returns all problems found, each with its path.
    pub fn validate(&self) -> Result<(), Vec<InvalidValue>> {
        let mut problems = Vec::new();
        let mut bad = |path: String, message: &str| {
            problems.push(InvalidValue {
                path,
                message: message.to_owned(),
            })
        };
        if !is_valid_id(&self.gateway.id) {
            bad(
                "gateway.id".into(),
                "must be 1-64 characters of A-Z a-z 0-9 . _ -",
            );
        }
        if let Some(url) = &self.risk.webhook_url {
            if !matches!(url::Url::parse(url), Ok(u) if matches!(u.scheme(), "http" | "https")) {
                bad("risk.webhook_url".into(), "must be an http:// or https:// URL");
            }
            match &self.risk.webhook_secret {
                None => bad("risk.webhook_secret".into(), "required with webhook_url"),
                Some(s) => {
                    if let Err(e) = s.load() {
                        bad("risk.webhook_secret".into(), &e.to_string());
                    }
                }
            }
        } else if self.risk.webhook_secret.is_some() || self.risk.webhook_tls.is_some() {
            bad(
                "risk.webhook_url".into(),
                "required with webhook_secret or webhook_tls",
            );
        }
        for (name, p) in [
            ("listeners.data.cert", &self.listeners.data.cert),
            ("listeners.data.key", &self.listeners.data.key),
            ("listeners.data.client_ca", &self.listeners.data.client_ca),
        ] {
            if !p.is_file() {
                bad(name.into(), &format!("file {} does not exist", p.display()));
            }
        }
        if let Some(crl) = &self.listeners.data.crl {
            if !crl.is_file() {
                bad(
                    "listeners.data.crl".into(),
                    &format!("file {} does not exist", crl.display()),
                );
            }
        }
        let l = &self.limits;
        if l.max_headers == 0 || l.max_header_bytes < 1024 {
            bad(
                "limits.max_header_bytes".into(),
                "must be at least 1024 with max_headers > 0",
            );
        }
        if l.max_limit == 0 || l.default_limit == 0 || l.default_limit > l.max_limit {
            bad(
                "limits.default_limit".into(),
                "must be between 1 and limits.max_limit",
            );
        }
        if l.max_connections == 0 {
            bad("limits.max_connections".into(), "must be positive");
        }
        if l.write_stall_timeout_ms < 100 {
            bad("limits.write_stall_timeout_ms".into(), "must be at least 100");
        }
        let mut ids = HashSet::new();
        for (i, d) in self.datasets.iter().enumerate() {
            if !is_valid_id(&d.id) {
                bad(
                    format!("datasets[{i}].id"),
                    "must be 1-64 characters of A-Z a-z 0-9 . _ -",
                );
            }
            if !ids.insert(d.id.as_str()) {
                bad(format!("datasets[{i}].id"), "duplicate dataset id");
            }
            for p in d.problems() {
                bad(format!("datasets[{i}].{}", p.path), p.message);
            }
            match self.sources.get(&d.id) {
                None => bad(format!("sources.{}", d.id), "dataset has no source"),
                Some(s) => {
                    for m in s.validate() {
                        bad(format!("sources.{}.{}", d.id, m.0), &m.1);
                    }
                }
            }
        }
        for id in self.sources.keys() {
            if !ids.contains(id.as_str()) {
                bad(
                    format!("sources.{id}"),
                    "source for a dataset that is not declared",
                );
            }
        }
        let mut lids = HashSet::new();
        for (i, lic) in self.licences.iter().enumerate() {
            if !lids.insert(lic.id.as_str()) {
                bad(format!("licences[{i}].id"), "duplicate licence id");
            }
            if lic.valid_until <= lic.valid_from {
                bad(format!("licences[{i}].valid_until"), "must be after valid_from");
            }
            if lic.rate.per_second == 0 {
                bad(format!("licences[{i}].rate.per_second"), "must be positive");
            }
            match self.datasets.iter().find(|d| d.id == lic.dataset) {
                None => bad(
                    format!("licences[{i}].dataset"),
                    "dataset is not offered by this gateway",
                ),
                Some(d) => {
                    for name in lic.fields.keys() {
                        if d.field(name).is_none() {
                            bad(
                                format!("licences[{i}].fields.{name}"),
                                "dataset has no such field",
                            );
                        }
                    }
                    match &lic.aggregate {
                        None if lic.mode == sluice_policy::licence::Mode::Aggregate => bad(
                            format!("licences[{i}].aggregate"),
                            "an aggregate licence needs the fields it may group and measure",
                        ),
                        None => {}
                        Some(a) => {
                            for (path, message) in a.problems(d, &self.classification) {
                                let at = if path.is_empty() {
                                    String::new()
                                } else {
                                    format!(".{path}")
                                };
                                bad(format!("licences[{i}].aggregate{at}"), &message);
                            }
                        }
                    }
                }
            }
        }
        for (i, c) in self.closed_datasets.iter().enumerate() {
            if !ids.contains(c.as_str()) {
                bad(format!("closed_datasets[{i}]"), "dataset is not declared");
            }
        }
        if let Some(r) = &self.registry {
            validate_registry(r, &mut bad);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

fn validate_registry(r: &RegistrySection, bad: &mut impl FnMut(String, &str)) {
    if !r.url.starts_with("https://") {
        bad("registry.url".into(), "must be an https:// URL");
    }
    for (name, p) in [
        ("registry.cert", &r.cert),
        ("registry.key", &r.key),
        ("registry.ca", &r.ca),
    ] {
        if !p.is_file() {
            bad(name.into(), &format!("file {} does not exist", p.display()));
        }
    }
    if r.public_key.is_empty() {
        bad("registry.public_key".into(), "at least one trusted key is needed");
    }
    for (i, k) in r.public_key.iter().enumerate() {
        if sluice_policy::snapshot::parse_public_key(k).is_err() {
            bad(
                format!("registry.public_key[{i}]"),
                "not a base64 Ed25519 public key (32 bytes)",
            );
        }
    }
    if r.staleness_bound_s == 0 {
        bad("registry.staleness_bound_s".into(), "must be positive");
    }
    if !(1..=30).contains(&r.poll_wait_s) {
        bad("registry.poll_wait_s".into(), "must be from 1 to 30");
    }
    if r.usage_interval_s == 0 {
        bad("registry.usage_interval_s".into(), "must be positive");
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
pub(crate) mod tests;

//! `registry.toml`: where the registry listens, its TLS material, state and signing key.
//!
//! ```toml
//! [registry]
//! addr = "127.0.0.1:7443"
//! cert = "certs/registry.pem"      # server certificate (chain) and key
//! key = "certs/registry.key"
//! client_ca = "ca/ca.pem"          # admins and gateways present certificates from this CA
//! crl = "ca/crl.pem"               # optional
//! state_dir = "registry-state"     # registry.db (SQLite) and the signing key live here
//! database_url = "postgres://…"    # optional; SQLite in state_dir when absent
//! signing_key = "registry.key"     # optional; default <state_dir>/signing.key, made if missing
//! ```
//! Relative paths are relative to the config file's folder.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why the config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The TOML is invalid.
    #[error("{0}: {1}")]
    Parse(PathBuf, toml::de::Error),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    registry: RegistryConfig,
}

/// The `[registry]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Listener address (`127.0.0.1:0` picks a free port).
    pub addr: SocketAddr,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA bundle client certificates must chain to.
    pub client_ca: PathBuf,
    /// Optional CRL.
    #[serde(default)]
    pub crl: Option<PathBuf>,
    /// State folder.
    pub state_dir: PathBuf,
    /// Database URL; SQLite `<state_dir>/registry.db` when absent.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Ed25519 signing key file; `<state_dir>/signing.key` when absent.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
}

impl RegistryConfig {
    /// Loads a config file and resolves relative paths against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
        let file: File = toml::from_str(&text).map_err(|e| ConfigError::Parse(path.to_owned(), e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(file.registry.resolved(base))
    }

    /// Makes relative paths relative to `base`.
    pub fn resolved(mut self, base: &Path) -> Self {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.cert);
        fix(&mut self.key);
        fix(&mut self.client_ca);
        fix(&mut self.state_dir);
        if let Some(c) = self.crl.as_mut() {
            fix(c);
        }
        if let Some(k) = self.signing_key.as_mut() {
            fix(k);
        }
        self
    }

    /// The signing key path.
    pub fn signing_key_path(&self) -> PathBuf {
        self.signing_key
            .clone()
            .unwrap_or_else(|| self.state_dir.join("signing.key"))
    }
}

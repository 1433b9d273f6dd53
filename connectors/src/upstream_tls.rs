//! TLS to an HTTP source (`[sources.<id>.tls]`): the roots its certificate must chain to and,
//! for mutual TLS, the gateway's client certificate and key, all PEM files. There are no
//! system roots here: an `https://` source names its CA.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `tls = { ca = "…", cert = "…", key = "…" }` (relative paths from the config file's folder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// PEM bundle of the roots the source's certificate (and the token endpoint's) must chain
    /// to; required for `https://`.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Client certificate chain, PEM, for mutual TLS (with `key`).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key, PEM, read at start (never inline).
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// Why a TLS client config could not be built: the setting at fault (`tls.ca`, …) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct UpstreamTlsError {
    /// The setting, relative to the source: `tls.ca`, `tls.cert`, `tls.key`.
    pub field: &'static str,
    /// What went wrong (a path and the reason; never key material).
    pub message: String,
}

impl UpstreamTlsError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl UpstreamTls {
    /// Makes relative paths relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.ca, &mut self.cert, &mut self.key]
            .into_iter()
            .flatten()
        {
            crate::config::resolve_path(base, p);
        }
    }

    /// Reads the files and builds the client config (TLS 1.2 and 1.3, aws-lc-rs; the
    /// connector sets ALPN).
    pub fn client_config(&self) -> Result<ClientConfig, UpstreamTlsError> {
        let ca = self
            .ca
            .as_deref()
            .ok_or_else(|| UpstreamTlsError::new("tls.ca", "not set (there are no system roots)"))?;
        let mut roots = RootCertStore::empty();
        for c in read_certs(ca, "tls.ca")? {
            roots
                .add(c)
                .map_err(|e| UpstreamTlsError::new("tls.ca", format!("{}: {e}", ca.display())))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| UpstreamTlsError::new("tls", e.to_string()))?
            .with_root_certificates(roots);
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "tls.cert")?;
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| UpstreamTlsError::new("tls.key", format!("{}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| UpstreamTlsError::new("tls.key", format!("{}: {e}", key.display())))?
            }
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => return Err(UpstreamTlsError::new("tls.key", "tls.cert needs a key")),
            (None, Some(_)) => return Err(UpstreamTlsError::new("tls.cert", "tls.key needs a cert")),
        };
        Ok(config)
    }

    /// Problems with the settings, as (relative path, message); reads the files.
    pub fn validate(&self) -> Vec<(String, String)> {
        match self.client_config() {
            Ok(_) => Vec::new(),
            Err(e) => vec![(e.field.to_owned(), e.message)],
        }
    }
}

/// Every certificate of a PEM file; none is an error.
fn read_certs(path: &Path, field: &'static str) -> Result<Vec<CertificateDer<'static>>, UpstreamTlsError> {
    let err = |e: &dyn std::fmt::Display| UpstreamTlsError::new(field, format!("{}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(&e))?;
    if certs.is_empty() {
        return Err(err(&"no certificate in file"));
    }
    Ok(certs)
}

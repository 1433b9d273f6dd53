//! TLS server configs for every sluice listener (rustls, aws-lc-rs): TLS 1.2 and 1.3 only,
//! ALPN h2 and http/1.1, client certificates verified against a CA bundle and optional CRL.
//!
//! Configs are built from files; callers swap them whole on reload, so a bad new file is
//! refused and the old config stays in force, and existing connections keep the config they
//! started with.

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a TLS config could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// File path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the material.
    #[error("{0}")]
    Rustls(String),
}

/// Installs the process-wide crypto provider (aws-lc-rs). Idempotent.
pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    load_all(path, "certificate")
}

/// Reads the private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_err(path, e))
}

fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    load_all(path, "CRL")
}

/// Every `what` of a PEM file; none is an error.
fn load_all<T: PemObject>(path: &Path, what: &str) -> Result<Vec<T>, TlsError> {
    let items = T::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if items.is_empty() {
        return Err(file_err(path, format!("no {what} in file")));
    }
    Ok(items)
}

/// Whether and how client certificates are asked for.
#[derive(Debug, Clone, Copy)]
pub enum ClientAuth<'a> {
    /// No client certificate (the gateway's public listener).
    None,
    /// A certificate chained to `ca` is required (the gateway's data listener).
    Required {
        /// CA bundle client certificates must chain to.
        ca: &'a Path,
        /// CRL checked when given.
        crl: Option<&'a Path>,
    },
    /// A certificate is optional, but verified when presented (the registry: public pages
    /// need none, admin and gateway routes check the identity per route).
    Optional {
        /// CA bundle client certificates must chain to.
        ca: &'a Path,
        /// CRL checked when given.
        crl: Option<&'a Path>,
    },
}

/// Builds a server config from the server's certificate chain and key files.
pub fn server_config(cert: &Path, key: &Path, auth: ClientAuth<'_>) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match auth {
        ClientAuth::None => versions.with_no_client_auth(),
        ClientAuth::Required { ca, crl } | ClientAuth::Optional { ca, crl } => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(ca)? {
                roots.add(c).map_err(|e| file_err(ca, e))?;
            }
            let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if let Some(crl) = crl {
                verifier = verifier.with_crls(load_crls(crl)?);
            }
            if matches!(auth, ClientAuth::Optional { .. }) {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|e| TlsError::Rustls(e.to_string()))?;
            versions.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

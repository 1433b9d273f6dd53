//! TLS for the listeners (rustls, aws-lc-rs): TLS 1.2 and 1.3 only, client certificates
//! verified against the configured CA bundle and CRL on the data listener.
//!
//! Configs are built from files and swapped whole on reload: a bad new file is refused and the
//! old config stays in force; existing connections keep the config they started with.

use crate::config::DataListener;
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
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no certificate in file"));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_err(path, e))
}

fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let crls = CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if crls.is_empty() {
        return Err(file_err(path, "no CRL in file"));
    }
    Ok(crls)
}

fn builder() -> Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>, TlsError> {
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(e.to_string()))
}

/// The data listener's config: client certificate required, chained to `client_ca`, checked
/// against the CRL when one is configured.
pub fn data_server_config(l: &DataListener) -> Result<Arc<ServerConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in load_certs(&l.client_ca)? {
        roots.add(ca).map_err(|e| file_err(&l.client_ca, e))?;
    }
    let mut verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    );
    if let Some(crl) = &l.crl {
        verifier = verifier.with_crls(load_crls(crl)?);
    }
    let verifier = verifier.build().map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut cfg = builder()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&l.cert)?, load_key(&l.key)?)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The public listener's config: same server certificate, no client certificate.
pub fn public_server_config(l: &DataListener) -> Result<Arc<ServerConfig>, TlsError> {
    let mut cfg = builder()?
        .with_no_client_auth()
        .with_single_cert(load_certs(&l.cert)?, load_key(&l.key)?)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

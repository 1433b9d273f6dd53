//! The typed error of this crate.

use std::path::PathBuf;

/// Everything that can go wrong in `sluice-certs`.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// An OpenSSL call failed (key generation, signing, parsing).
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),

    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Refusing to overwrite something that already exists (a CA folder, a key file).
    #[error("{0} already exists; refusing to overwrite it")]
    AlreadyExists(PathBuf),

    /// The folder does not hold a usable CA.
    #[error("{path} is not a sluice CA folder: {reason}")]
    NotACa {
        /// The folder that was opened.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },

    /// The CA index (`index.json`) or metadata could not be parsed or written.
    #[error("CA index {path}: {reason}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// An argument was out of range or malformed (days, DNS names, serials…).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A licensee/admin/gateway id does not match `[A-Za-z0-9._-]{1,64}`.
    #[error("invalid sluice id {0:?}: expected 1 to 64 characters from [A-Za-z0-9._-]")]
    InvalidId(String),

    /// The certificate carries no sluice identity (no `urn:sluice:` SAN URI).
    #[error("certificate carries no sluice identity: {0}")]
    NoIdentity(String),

    /// The certificate carries more than one `urn:sluice:` SAN URI.
    #[error("certificate carries {0} urn:sluice: SAN URIs; exactly one is required")]
    AmbiguousIdentity(usize),

    /// A `urn:sluice:` SAN URI is present but malformed (unknown kind, wrong case…).
    #[error("malformed sluice identity URI {0:?}")]
    MalformedIdentity(String),

    /// The input is not a parsable certificate.
    #[error("not a certificate: {0}")]
    NotACertificate(String),

    /// The certificate was not signed by this CA.
    #[error("certificate was not issued by this CA ({0})")]
    NotIssuedByThisCa(String),

    /// No certificate with this serial is recorded in the CA index.
    #[error("no certificate with serial {0} in the CA index")]
    SerialNotFound(String),

    /// The certificate with this serial is already revoked.
    #[error("certificate {0} is already revoked")]
    AlreadyRevoked(String),
}

impl CertError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CertError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = CertError> = std::result::Result<T, E>;

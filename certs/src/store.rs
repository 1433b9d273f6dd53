//! The CA folder on disk: file names, metadata, the index of issued certificates, counters.
//!
//! Layout of a CA folder:
//!
//! ```text
//! <dir>/
//!   ca.key        the CA private key, PKCS#8 PEM, mode 0600
//!   ca.pem        the CA certificate
//!   ca.json       metadata: kind (root | intermediate), key algorithm, common name, creation time
//!   chain.pem     intermediate only: ca.pem followed by the issuing root certificate
//!   root.pem      the trust anchor: a copy of ca.pem for a root, the issuing root for an intermediate
//!   index.json    every certificate issued by this CA, with its revocation status
//!   crlnumber     the number the next CRL will carry (decimal)
//!   certs/        a copy of every issued certificate, `<serial>.pem` (no keys)
//!   issued/       default output folder of the CLI for issued certificates and keys
//!   crl.pem       default output of `sluice certs crl`
//! ```
//!
//! The folder assumes a single writer at a time (one CLI invocation or one process).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::crl::RevocationReason;
use crate::error::{CertError, Result};
use crate::keys::KeyAlgorithm;
use crate::util;

/// CA private key file name.
pub const CA_KEY_FILE: &str = "ca.key";
/// CA certificate file name.
pub const CA_CERT_FILE: &str = "ca.pem";
/// CA metadata file name.
pub const CA_META_FILE: &str = "ca.json";
/// Intermediate CA chain (intermediate + root) file name.
pub const CA_CHAIN_FILE: &str = "chain.pem";
/// Trust anchor file name.
pub const ROOT_CERT_FILE: &str = "root.pem";
/// Index of issued certificates.
pub const INDEX_FILE: &str = "index.json";
/// CRL number counter.
pub const CRL_NUMBER_FILE: &str = "crlnumber";
/// Folder of copies of issued certificates.
pub const CERTS_DIR: &str = "certs";
/// Default output folder of the CLI.
pub const ISSUED_DIR: &str = "issued";
/// Default CRL output file of the CLI.
pub const CRL_FILE: &str = "crl.pem";

/// Whether a CA is a self-signed root or an intermediate signed by a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaKind {
    /// Self-signed root CA.
    Root,
    /// Intermediate CA signed by a root CA (pathLen 0: it issues leaves only).
    Intermediate,
}

/// `ca.json`: what kind of CA the folder holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaMeta {
    /// Format version of the folder (currently 1).
    pub format: u32,
    /// Root or intermediate.
    pub kind: CaKind,
    /// Key algorithm of the CA (and of the certificates it issues).
    pub algorithm: KeyAlgorithm,
    /// Common name of the CA certificate.
    pub common_name: String,
    /// Creation time, unix seconds.
    pub created: i64,
}

/// What an issued certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssuedKind {
    /// An intermediate CA certificate (issued by a root).
    IntermediateCa,
    /// A gateway TLS server certificate (serverAuth, DNS/IP SANs).
    Gateway,
    /// A licensee client certificate (`urn:sluice:licensee:<id>`).
    Licensee,
    /// An administrator client certificate (`urn:sluice:admin:<name>`).
    Admin,
    /// A gateway's client certificate towards the registry (`urn:sluice:gateway:<id>`).
    GatewayClient,
}

impl std::fmt::Display for IssuedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IssuedKind::IntermediateCa => "intermediate-ca",
            IssuedKind::Gateway => "gateway",
            IssuedKind::Licensee => "licensee",
            IssuedKind::Admin => "admin",
            IssuedKind::GatewayClient => "gateway-client",
        })
    }
}

/// A revocation recorded in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Why the certificate was revoked.
    pub reason: RevocationReason,
    /// When, unix seconds.
    pub revoked_at: i64,
}

/// One issued certificate in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Serial number, lower-case hex without leading zeros.
    pub serial: String,
    /// What the certificate is for.
    pub kind: IssuedKind,
    /// Subject common name.
    pub subject: String,
    /// The sluice identity URI it carries (`urn:sluice:<kind>:<id>`), if any.
    pub identity: Option<String>,
    /// Subject alternative names, rendered (`DNS:…`, `IP:…`, `URI:…`).
    pub sans: Vec<String>,
    /// Start of validity, unix seconds.
    pub not_before: i64,
    /// End of validity, unix seconds.
    pub not_after: i64,
    /// SHA-256 fingerprint of the DER certificate, lower-case hex.
    pub sha256: String,
    /// Set once the certificate is revoked.
    pub revoked: Option<Revocation>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexFile {
    format: u32,
    entries: Vec<IndexEntry>,
}

/// Reads `ca.json`.
pub(crate) fn load_meta(dir: &Path) -> Result<CaMeta> {
    let path = dir.join(CA_META_FILE);
    let bytes = util::read(&path)?;
    serde_json::from_slice(&bytes).map_err(|e| CertError::Index {
        path,
        reason: e.to_string(),
    })
}

/// Writes `ca.json`.
pub(crate) fn save_meta(dir: &Path, meta: &CaMeta) -> Result<()> {
    write_json(&dir.join(CA_META_FILE), meta)
}

/// Reads the index of issued certificates.
pub(crate) fn load_index(dir: &Path) -> Result<Vec<IndexEntry>> {
    let path = dir.join(INDEX_FILE);
    let bytes = util::read(&path)?;
    let file: IndexFile = serde_json::from_slice(&bytes).map_err(|e| CertError::Index {
        path,
        reason: e.to_string(),
    })?;
    Ok(file.entries)
}

/// Replaces the index of issued certificates.
pub(crate) fn save_index(dir: &Path, entries: Vec<IndexEntry>) -> Result<()> {
    write_json(&dir.join(INDEX_FILE), &IndexFile { format: 1, entries })
}

/// Name of the lock file that serialises changes to one CA folder.
pub(crate) const LOCK_FILE: &str = ".lock";

/// Takes the CA folder's exclusive lock, waiting for another process (a concurrent
/// `sluice certs issue` or `revoke`) to finish its read-modify-write of the index or the CRL
/// counter. Released when the returned file is dropped.
pub(crate) fn lock_folder(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| CertError::io(&path, e))?;
    file.lock().map_err(|e| CertError::io(&path, e))?;
    Ok(file)
}

/// Returns the next CRL number and advances the counter.
pub(crate) fn take_crl_number(dir: &Path) -> Result<u64> {
    let path = dir.join(CRL_NUMBER_FILE);
    let text = String::from_utf8_lossy(&util::read(&path)?).into_owned();
    let n: u64 = text.trim().parse().map_err(|e| CertError::Index {
        path: path.clone(),
        reason: format!("bad CRL number: {e}"),
    })?;
    let next = n.checked_add(1).ok_or_else(|| CertError::Index {
        path: path.clone(),
        reason: "CRL number overflow".into(),
    })?;
    util::write_atomic(&path, format!("{next}\n").as_bytes(), 0o644)?;
    Ok(n)
}

/// Writes the initial CRL counter.
pub(crate) fn init_crl_number(dir: &Path) -> Result<()> {
    util::write_atomic(&dir.join(CRL_NUMBER_FILE), b"1\n", 0o644)
}

/// Path of the stored copy of an issued certificate.
pub(crate) fn issued_copy_path(dir: &Path, serial: &str) -> PathBuf {
    dir.join(CERTS_DIR).join(format!("{serial}.pem"))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| CertError::Index {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    text.push('\n');
    util::write_atomic(path, text.as_bytes(), 0o644)
}

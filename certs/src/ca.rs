//! A certificate authority kept in a folder: creating a root or an intermediate, opening one.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509Ref, X509};

use crate::error::{CertError, Result};
use crate::keys::KeyAlgorithm;
use crate::store::{self, CaKind, CaMeta, IndexEntry, IssuedKind};
use crate::template::{self, CertSpec, Profile};
use crate::util;

/// Options for [`Ca::init`] and [`Ca::init_intermediate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOptions {
    /// Key algorithm of the CA; certificates it issues use the same algorithm.
    pub algorithm: KeyAlgorithm,
    /// Common name of the CA certificate (1 to 64 bytes).
    pub common_name: String,
    /// Validity of the CA certificate in days (an intermediate never outlives its root).
    pub days: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            algorithm: KeyAlgorithm::EcP256,
            common_name: "sluice root CA".to_string(),
            days: 3650,
        }
    }
}

/// A CA opened from its folder: its certificate, its private key and its index.
///
/// See [`crate::store`] for the folder layout.
pub struct Ca {
    dir: PathBuf,
    cert: X509,
    key: PKey<Private>,
    meta: CaMeta,
    /// Certificates above this CA, nearest first (the root for an intermediate).
    parents: Vec<X509>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("dir", &self.dir)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Creates a self-signed root CA in `dir` (created if missing).
    ///
    /// Refuses with [`CertError::AlreadyExists`] if the folder already holds a CA key,
    /// certificate or metadata.
    pub fn init(dir: impl AsRef<Path>, options: InitOptions) -> Result<Ca> {
        let dir = dir.as_ref();
        prepare_dir(dir)?;
        let key = options.algorithm.generate()?;
        let spec = CertSpec {
            common_name: &options.common_name,
            days: options.days,
            profile: Profile::Ca { pathlen: Some(1) },
            sans: Vec::new(),
        };
        let cert = template::sign(&spec, &key, None, &key)?;
        write_ca(dir, &key, &cert, &[], CaKind::Root, &options)
    }

    /// Creates an intermediate CA in `dir`, signed by `root` (which must be a root CA).
    ///
    /// The intermediate has pathLen 0 (it issues leaves only) and is recorded in the root's
    /// index (kind `intermediate-ca`), so the root can revoke it. Leaves issued by the
    /// intermediate come with a chain (leaf + intermediate); `root.pem` stays the trust anchor.
    pub fn init_intermediate(root: &Ca, dir: impl AsRef<Path>, options: InitOptions) -> Result<Ca> {
        if root.is_intermediate() {
            return Err(CertError::InvalidInput(
                "an intermediate CA can only be signed by a root CA".to_string(),
            ));
        }
        let dir = dir.as_ref();
        if same_dir(dir, root.dir()) {
            return Err(CertError::AlreadyExists(dir.to_path_buf()));
        }
        prepare_dir(dir)?;
        let key = options.algorithm.generate()?;
        let spec = CertSpec {
            common_name: &options.common_name,
            days: options.days,
            profile: Profile::Ca { pathlen: Some(0) },
            sans: Vec::new(),
        };
        let cert = template::sign(&spec, &key, Some(root.certificate()), root.key())?;
        let ca = write_ca(
            dir,
            &key,
            &cert,
            std::slice::from_ref(&root.cert),
            CaKind::Intermediate,
            &options,
        )?;
        root.record(&cert, IssuedKind::IntermediateCa, None)?;
        Ok(ca)
    }

    /// Opens the CA in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Ca> {
        let dir = dir.as_ref();
        let not_a_ca = |reason: String| CertError::NotACa {
            path: dir.to_path_buf(),
            reason,
        };
        for f in [
            store::CA_KEY_FILE,
            store::CA_CERT_FILE,
            store::CA_META_FILE,
            store::INDEX_FILE,
        ] {
            if !dir.join(f).is_file() {
                return Err(not_a_ca(format!("{f} is missing")));
            }
        }
        let meta = store::load_meta(dir)?;
        let key = PKey::private_key_from_pem(&util::read(&dir.join(store::CA_KEY_FILE))?)?;
        let cert = X509::from_pem(&util::read(&dir.join(store::CA_CERT_FILE))?)?;
        if !cert.public_key()?.public_eq(&key) {
            return Err(not_a_ca("ca.key does not match ca.pem".to_string()));
        }
        let parents = match meta.kind {
            CaKind::Root => Vec::new(),
            CaKind::Intermediate => {
                let root = X509::from_pem(&util::read(&dir.join(store::ROOT_CERT_FILE))?)?;
                if !cert.verify(&*root.public_key()?)? {
                    return Err(not_a_ca("ca.pem is not signed by root.pem".to_string()));
                }
                vec![root]
            }
        };
        Ok(Ca {
            dir: dir.to_path_buf(),
            cert,
            key,
            meta,
            parents,
        })
    }

    /// The CA folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &X509Ref {
        &self.cert
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> Result<String> {
        pem_string(self.cert.to_pem()?)
    }

    /// The trust anchor to configure in relying parties (gateway client-cert roots, registry):
    /// this CA for a root, the issuing root for an intermediate.
    pub fn root_pem(&self) -> Result<String> {
        pem_string(self.parents.last().unwrap_or(&self.cert).to_pem()?)
    }

    /// This CA's certificate followed by its parents up to and including the root.
    pub fn chain_pem(&self) -> Result<String> {
        let mut out = self.cert_pem()?;
        for p in &self.parents {
            out.push_str(&pem_string(p.to_pem()?)?);
        }
        Ok(out)
    }

    /// Whether this CA is an intermediate (signed by a root).
    pub fn is_intermediate(&self) -> bool {
        self.meta.kind == CaKind::Intermediate
    }

    /// The CA metadata (`ca.json`).
    pub fn meta(&self) -> &CaMeta {
        &self.meta
    }

    /// Key algorithm of the CA and of the certificates it issues.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.meta.algorithm
    }

    /// Every certificate this CA has issued, in issue order.
    pub fn index(&self) -> Result<Vec<IndexEntry>> {
        store::load_index(&self.dir)
    }

    /// Looks up an issued certificate by serial (hex, any case, `:` allowed).
    pub fn find(&self, serial: &str) -> Result<Option<IndexEntry>> {
        let serial = util::normalize_serial(serial)?;
        Ok(self.index()?.into_iter().find(|e| e.serial == serial))
    }

    pub(crate) fn key(&self) -> &PKey<Private> {
        &self.key
    }

    /// Appends an issued certificate to the index and keeps a copy under `certs/`.
    pub(crate) fn record(&self, cert: &X509Ref, kind: IssuedKind, identity: Option<String>) -> Result<()> {
        let serial = util::serial_hex(cert.serial_number())?;
        let _lock = store::lock_folder(&self.dir)?;
        let mut entries = self.index()?;
        if entries.iter().any(|e| e.serial == serial) {
            // 128 random bits: this does not happen unless the index was tampered with.
            return Err(CertError::Index {
                path: self.dir.join(store::INDEX_FILE),
                reason: format!("serial {serial} already issued"),
            });
        }
        entries.push(IndexEntry {
            serial: serial.clone(),
            kind,
            subject: crate::inspect::common_name(cert.subject_name()),
            identity,
            sans: crate::inspect::render_sans(cert),
            not_before: util::asn1_to_unix(cert.not_before())?,
            not_after: util::asn1_to_unix(cert.not_after())?,
            sha256: hex::encode(cert.digest(MessageDigest::sha256())?),
            revoked: None,
        });
        util::create_dir(&self.dir.join(store::CERTS_DIR))?;
        util::write_atomic(
            &store::issued_copy_path(&self.dir, &serial),
            &cert.to_pem()?,
            0o644,
        )?;
        store::save_index(&self.dir, entries)
    }

    /// The certificates to append after a leaf in its chain file (the intermediate), if any.
    pub(crate) fn chain_for_leaf(&self) -> Option<&X509Ref> {
        self.is_intermediate().then_some(&*self.cert)
    }
}

fn pem_string(pem: Vec<u8>) -> Result<String> {
    String::from_utf8(pem).map_err(|e| CertError::InvalidInput(e.to_string()))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Creates the folder and refuses if it already holds (part of) a CA.
fn prepare_dir(dir: &Path) -> Result<()> {
    for f in [
        store::CA_KEY_FILE,
        store::CA_CERT_FILE,
        store::CA_META_FILE,
        store::INDEX_FILE,
    ] {
        let p = dir.join(f);
        if p.exists() {
            return Err(CertError::AlreadyExists(p));
        }
    }
    util::create_dir(dir)
}

/// Writes a new CA folder. The key is created with `O_EXCL`, so two concurrent inits cannot
/// both succeed and an existing key is never replaced.
fn write_ca(
    dir: &Path,
    key: &PKey<Private>,
    cert: &X509,
    parents: &[X509],
    kind: CaKind,
    options: &InitOptions,
) -> Result<Ca> {
    let key_path = dir.join(store::CA_KEY_FILE);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                CertError::AlreadyExists(key_path.clone())
            } else {
                CertError::io(&key_path, e)
            }
        })?;
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| CertError::io(&key_path, e))?;
    f.write_all(&key.private_key_to_pem_pkcs8()?)
        .map_err(|e| CertError::io(&key_path, e))?;
    f.sync_all().map_err(|e| CertError::io(&key_path, e))?;

    util::write_atomic(&dir.join(store::CA_CERT_FILE), &cert.to_pem()?, 0o644)?;
    let root = parents.last().unwrap_or(cert);
    util::write_atomic(&dir.join(store::ROOT_CERT_FILE), &root.to_pem()?, 0o644)?;
    if !parents.is_empty() {
        let mut chain = cert.to_pem()?;
        for p in parents {
            chain.extend_from_slice(&p.to_pem()?);
        }
        util::write_atomic(&dir.join(store::CA_CHAIN_FILE), &chain, 0o644)?;
    }
    store::init_crl_number(dir)?;
    store::save_index(dir, Vec::new())?;
    let meta = CaMeta {
        format: 1,
        kind,
        algorithm: options.algorithm,
        common_name: options.common_name.clone(),
        created: util::now_unix(),
    };
    // Metadata last: a folder without ca.json is not an (openable) CA.
    store::save_meta(dir, &meta)?;
    Ok(Ca {
        dir: dir.to_path_buf(),
        cert: cert.clone(),
        key: key.clone(),
        meta,
        parents: parents.to_vec(),
    })
}

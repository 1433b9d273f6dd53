//! Key algorithms and key generation.

use std::fmt;
use std::str::FromStr;

use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use serde::{Deserialize, Serialize};

use crate::error::{CertError, Result};

/// The key algorithm of a CA or of the certificates it issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256 (the default: small and fast).
    #[default]
    #[value(name = "ec-p256")]
    #[serde(rename = "ec-p256")]
    EcP256,
    /// RSA 3072 (PKCS#1 v1.5 signatures with SHA-256), for peers that cannot do ECDSA.
    #[value(name = "rsa3072")]
    #[serde(rename = "rsa3072")]
    Rsa3072,
}

impl KeyAlgorithm {
    /// Generates a fresh private key of this algorithm.
    pub fn generate(self) -> Result<PKey<Private>> {
        match self {
            KeyAlgorithm::EcP256 => {
                let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
                Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
            }
            KeyAlgorithm::Rsa3072 => Ok(PKey::from_rsa(Rsa::generate(3072)?)?),
        }
    }

    /// The algorithm of an existing key, if it is one this crate supports.
    pub fn of_key<T: openssl::pkey::HasPublic>(key: &PKeyRef<T>) -> Result<Self> {
        match key.id() {
            Id::EC if key.ec_key()?.group().curve_name() == Some(Nid::X9_62_PRIME256V1) => {
                Ok(KeyAlgorithm::EcP256)
            }
            Id::RSA if key.bits() == 3072 => Ok(KeyAlgorithm::Rsa3072),
            other => Err(CertError::InvalidInput(format!(
                "unsupported key type {other:?} ({} bits)",
                key.bits()
            ))),
        }
    }

    /// Whether keys of this algorithm also get the keyEncipherment key usage (RSA key transport).
    pub fn key_encipherment(self) -> bool {
        matches!(self, KeyAlgorithm::Rsa3072)
    }
}

/// The digest used for every signature this crate makes.
pub(crate) fn digest() -> MessageDigest {
    MessageDigest::sha256()
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::EcP256 => "ec-p256",
            KeyAlgorithm::Rsa3072 => "rsa3072",
        })
    }
}

impl FromStr for KeyAlgorithm {
    type Err = CertError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ec-p256" => Ok(KeyAlgorithm::EcP256),
            "rsa3072" => Ok(KeyAlgorithm::Rsa3072),
            other => Err(CertError::InvalidInput(format!(
                "unknown key algorithm {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_p256() {
        let key = KeyAlgorithm::EcP256.generate().unwrap();
        assert_eq!(KeyAlgorithm::of_key(&key).unwrap(), KeyAlgorithm::EcP256);
        assert_eq!(
            key.ec_key().unwrap().group().curve_name(),
            Some(Nid::X9_62_PRIME256V1)
        );
    }

    #[test]
    fn names_round_trip() {
        for a in [KeyAlgorithm::EcP256, KeyAlgorithm::Rsa3072] {
            assert_eq!(a.to_string().parse::<KeyAlgorithm>().unwrap(), a);
        }
        assert_eq!(KeyAlgorithm::default(), KeyAlgorithm::EcP256);
    }
}

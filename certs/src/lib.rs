//! sluice-certs: X.509 for sluice identities, built on the `openssl` crate.
//!
//! What it does:
//! * keeps a certificate authority in a folder ([`Ca`], layout in [`store`]): a self-signed
//!   root, optionally an intermediate signed by it;
//! * issues gateway TLS server certificates and client certificates that carry exactly one
//!   sluice identity as a SAN URI: `urn:sluice:licensee:<id>`, `urn:sluice:admin:<name>`,
//!   `urn:sluice:gateway:<id>` ([`issue_licensee`], [`issue_admin`], [`issue_gateway_client`],
//!   [`issue_gateway`]), renews them ([`renew`], [`renew_licensee`]);
//! * records revocations and produces signed v2 CRLs ([`revoke`], [`crl()`]);
//! * reads the identity out of a peer certificate ([`identity_from_der`]) under strict rules;
//! * describes certificates for humans ([`inspect()`], [`days_to_expiry`]);
//! * provides the `sluice certs …` subcommand ([`cli::CertsCommand`], [`cli::run`]).
//!
//! What it must not do:
//! * verify chains, signatures or revocation of peer certificates at connection time:
//!   [`identity_from_der`] trusts whatever certificate it is given, and the TLS layer
//!   (rustls in the gateway, configured with the root and CRLs produced here) does that job;
//! * take an identity from anything other than the SAN URI (never the subject CN);
//! * contain TLS code (no rustls here), or write private keys anywhere but the files it is
//!   asked to write (mode 0600).

pub mod ca;
pub mod cli;
pub mod crl;
pub mod error;
pub mod identity;
pub mod inspect;
pub mod issue;
pub mod keys;
pub mod store;
mod template;
mod util;

pub use ca::{Ca, InitOptions};
pub use crl::{crl, revoke, RevocationReason};
pub use error::{CertError, Result};
pub use identity::{identity_from_der, identity_from_pem, identity_of, validate_id, Identity, IdentityKind};
pub use inspect::{days_to_expiry, inspect};
pub use issue::{
    issue_admin, issue_gateway, issue_gateway_client, issue_identity, issue_licensee, renew, renew_licensee,
    IssueGateway, IssuedCert, WrittenFiles, DEFAULT_LEAF_DAYS,
};
pub use keys::KeyAlgorithm;
pub use store::{CaKind, CaMeta, IndexEntry, IssuedKind, Revocation};

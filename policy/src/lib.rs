//! sluice-policy: the pure domain every proxied request goes through.
//!
//! Classification on the seed's three dimensions, licences and the typed decision, masking
//! functions with a detector safety net, and the streaming JSON/CSV masker that applies a
//! field plan to a response body in constant memory. This crate performs no IO: no sockets,
//! no files, no clocks (the clock is passed in), no async runtime.
//!
//! It is also the one typed vocabulary the gateway and the registry share: the problem codes
//! ([`ProblemCode`]), validated ids ([`Id`], [`LicenseeId`]) and the usage report contract
//! ([`usage`]).

/// Aggregate-only licences: grouped answers with small-cell suppression and optional noise.
pub mod aggregate;
pub mod catalog;
pub mod classify;
pub mod decide;
/// Validated ids: the one `[A-Za-z0-9._-]{1,64}` rule, [`Id`] and [`LicenseeId`].
pub mod id;
pub mod licence;
pub mod mask;
pub mod objection;
pub mod plan;
/// Every stable problem type sluice emits, with its code, status and title.
pub mod problem_code;
pub mod query;
/// Risk warning: rules, the signals counted per licence, and alerts.
pub mod risk;
pub mod rowfilter;
/// Served-record digests: the record keys a response carried, as a Bloom filter for the audit.
pub mod served;
pub mod snapshot;
pub mod stream;
/// The `POST /v1/usage` contract: [`usage::UsageReport`], its rows and the registry's ack.
pub mod usage;

pub use decide::{Clock, Decision, Permit, PolicySet, Refusal, Request};
pub use id::{Id, IdError, LicenseeId};
pub use problem_code::ProblemCode;

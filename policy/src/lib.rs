//! sluice-policy: the pure domain every proxied request goes through.
//!
//! Classification on the seed's three dimensions, licences and the typed decision, masking
//! functions with a detector safety net, and the streaming JSON/CSV masker that applies a
//! field plan to a response body in constant memory. This crate performs no IO: no sockets,
//! no files, no clocks (the clock is passed in), no async runtime.

pub mod catalog;
pub mod classify;
pub mod decide;
pub mod licence;
pub mod mask;
pub mod plan;
pub mod rowfilter;
pub mod snapshot;
pub mod stream;

pub use decide::{Clock, Decision, Permit, PolicySet, Refusal, Request};

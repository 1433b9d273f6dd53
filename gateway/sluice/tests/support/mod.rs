//! Support for the federation tests and the revocation benchmark: real `sluice` processes
//! (registry, gateways, sample source) on loopback, and clients to probe them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod federation;
pub mod probe;
pub mod process;

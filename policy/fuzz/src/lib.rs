//! Shared harness code for the `sluice-policy` fuzz targets (see `README.md`).
//!
//! The targets in `fuzz_targets/` are thin: the checks live here so that they can be unit
//! tested (`cargo test` in this folder) and reused by regression tests.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod csvref;
pub mod gen;
pub mod jsonref;
pub mod masker;
pub mod query;
pub mod rowfilter;

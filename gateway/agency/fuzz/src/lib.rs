//! Shared harness code for the `sluice-agency` fuzz targets (see `README.md`).
//!
//! The targets in `fuzz_targets/` are thin: the checks live here so that they can be unit
//! tested (`cargo test` in this folder, which also replays every seed).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod config;
pub mod query;

/// Every seed of a target, for the unit tests.
#[cfg(test)]
pub(crate) fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

//! The gateway's config loader on untrusted text.
//!
//! Input: bytes taken as UTF-8 (lossily), parsed by `Config::from_toml` as if read from
//! `gateway.toml` in a scratch folder holding placeholder `cert.pem`, `key.pem` and `ca.pem`
//! (the validator checks that TLS files exist; it reads nothing else but `licences_file`).
//!
//! Asserts: the loader never panics; an accepted config validates again unchanged, every
//! dataset it offers has a source and a valid id, and every source belongs to a dataset; a
//! refusal names what is wrong (a non-empty message that names the file or a value's path).

use sluice_agency::config::{Config, ConfigError};
use sluice_policy::id::is_valid_id;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where the fuzzed text pretends to live: `gateway.toml` in a scratch folder, made once.
fn config_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sluice-agency-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["cert.pem", "key.pem", "ca.pem"] {
            std::fs::write(dir.join(f), "placeholder").unwrap();
        }
        dir.join("gateway.toml")
    })
}

/// Runs every check on one input.
pub fn check_bytes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Config::from_toml(&text, config_path()) {
        Ok(cfg) => {
            assert!(cfg.validate().is_ok(), "an accepted config fails validation");
            for d in &cfg.datasets {
                assert!(is_valid_id(&d.id), "dataset id {:?}", d.id);
                assert!(cfg.sources.contains_key(&d.id), "dataset {} has no source", d.id);
            }
            for id in cfg.sources.keys() {
                assert!(cfg.datasets.iter().any(|d| &d.id == id), "source {id} has no dataset");
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.trim().is_empty(), "empty error for {e:?}");
            match &e {
                ConfigError::Invalid(values) => {
                    assert!(!values.is_empty());
                    assert!(values.iter().all(|v| !v.path.is_empty() && !v.message.is_empty()), "{values:?}");
                }
                _ => assert!(msg.contains("sluice-agency-fuzz"), "error names no file: {msg}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_pass() {
        for s in crate::seeds("config_load") {
            check_bytes(&s);
        }
    }

    #[test]
    fn a_valid_seed_is_accepted() {
        let ok = crate::seeds("config_load")
            .iter()
            .filter(|s| Config::from_toml(&String::from_utf8_lossy(s), config_path()).is_ok())
            .count();
        assert!(ok > 0, "no seed is a valid config: the target would only fuzz the parser's errors");
    }
}

//! A secret (a database password, an OAuth2 client secret) from a file or an environment
//! variable, never written in the config: `password = { file = "secrets/pg" }` or
//! `client_secret = { env = "AGENCY_CLIENT_SECRET" }`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where a source's password comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Password {
    /// File holding the password (its content without the final line break; relative paths
    /// from the config file's folder).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub env: Option<String>,
}

/// Any secret read like a password.
pub type Secret = Password;

/// Why a password could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Neither or both of `file` and `env` were given.
    #[error("give exactly one of file and env")]
    Ambiguous,
    /// The file could not be read.
    #[error("{0}")]
    File(String),
    /// The variable is not set (or not Unicode).
    #[error("environment variable {0} is not set")]
    Env(String),
}

impl Password {
    /// Where the password comes from, for messages (never the value): `file /x`,
    /// `environment variable PGPW`.
    pub fn origin(&self) -> String {
        match (&self.file, &self.env) {
            (Some(f), _) => format!("file {}", f.display()),
            (None, Some(e)) => format!("environment variable {e}"),
            (None, None) => "nowhere".into(),
        }
    }

    /// Reads the password.
    pub fn load(&self) -> Result<String, PasswordError> {
        let raw = match (&self.file, &self.env) {
            (Some(f), None) => std::fs::read_to_string(f)
                .map_err(|e| PasswordError::File(format!("{}: {e}", f.display())))?,
            (None, Some(e)) => std::env::var(e).map_err(|_| PasswordError::Env(e.clone()))?,
            _ => return Err(PasswordError::Ambiguous),
        };
        let raw = raw.strip_suffix('\n').unwrap_or(&raw);
        Ok(raw.strip_suffix('\r').unwrap_or(raw).to_owned())
    }

    /// Makes a relative file relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        if let Some(f) = self.file.as_mut() {
            crate::config::resolve_path(base, f);
        }
    }
}

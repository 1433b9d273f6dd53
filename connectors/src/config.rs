//! Which connector a dataset's source uses: the tagged config (`kind = "http"`, …), what
//! the connectors of one gateway share, and [`connect`].

use crate::http::{HttpSource, HttpSourceConfig, UpstreamClient};
use crate::source::Connector;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// A dataset's source, by kind (`[sources.<dataset>] kind = "http"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// An agency REST endpoint.
    Http(HttpSourceConfig),
    /// A SQLite database file.
    #[cfg(feature = "sqlite")]
    Sqlite(crate::sqlite::SqliteSourceConfig),
}

impl SourceConfig {
    /// Problems with the config, as (path relative to the source, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        match self {
            Self::Http(c) => c.validate(),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(c) => c.validate(),
        }
    }

    /// Makes relative paths in the source's config relative to `base` (the config's folder).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        match self {
            Self::Http(c) => c.resolve_paths(base),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(c) => c.resolve_paths(base),
        }
    }

    /// Each credential the source uses, as (what, where it comes from), never its value:
    /// `("Authorization", "file /run/secrets/t")`.
    pub fn credentials(&self) -> Vec<(String, String)> {
        match self {
            Self::Http(c) => c.headers.iter().map(|h| (h.name.clone(), h.origin())).collect(),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => Vec::new(),
        }
    }

    /// Longest connect wait this source asks for, ms (the shared HTTP pool takes the largest).
    pub fn connect_timeout_ms(&self) -> u64 {
        match self {
            Self::Http(c) => c.connect_timeout_ms,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => 0,
        }
    }
}

/// What connectors of one gateway share: the pooled HTTP client.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Pooled client for every HTTP source.
    pub http: UpstreamClient,
}

impl Shared {
    /// Shared state for these sources (the HTTP pool connects within the largest timeout).
    pub fn for_sources<'a>(sources: impl IntoIterator<Item = &'a SourceConfig>) -> Self {
        let connect = sources
            .into_iter()
            .map(SourceConfig::connect_timeout_ms)
            .max()
            .unwrap_or(2_000);
        Self {
            http: UpstreamClient::new(Duration::from_millis(connect)),
        }
    }
}

/// The connector for a source config.
pub fn connect(config: &SourceConfig, shared: &Shared) -> Arc<dyn Connector> {
    match config {
        SourceConfig::Http(c) => Arc::new(HttpSource::new(c.clone(), shared.http.clone())),
        #[cfg(feature = "sqlite")]
        SourceConfig::Sqlite(c) => Arc::new(crate::sqlite::SqliteSource::new(c.clone())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[derive(Deserialize)]
    struct Sources {
        sources: std::collections::BTreeMap<String, SourceConfig>,
    }

    #[test]
    fn the_kind_picks_the_connector_and_unknown_fields_are_refused() {
        let s: Sources =
            toml::from_str("[sources.a]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/a\"\n").unwrap();
        let SourceConfig::Http(h) = &s.sources["a"] else {
            panic!("not http")
        };
        assert_eq!(h.url, "http://127.0.0.1:1/a");
        let e = toml::from_str::<Sources>("[sources.a]\nkind = \"http\"\nurl = \"http://x/\"\nbogus = 1\n")
            .err()
            .unwrap();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = toml::from_str::<Sources>("[sources.a]\nurl = \"http://x/\"\n")
            .err()
            .unwrap();
        assert!(e.to_string().contains("kind"), "{e}");
        let e = toml::from_str::<Sources>("[sources.a]\nkind = \"ftp\"\nurl = \"http://x/\"\n")
            .err()
            .unwrap();
        assert!(e.to_string().contains("ftp"), "{e}");
    }
}

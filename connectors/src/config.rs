//! Which connector a dataset's source uses: the tagged config (`kind = "http"`, …), what
//! the connectors of one gateway share, and [`connect`].

#[cfg(feature = "files")]
use crate::file::{FileFormat, FileSource, FileSourceConfig};
use crate::http::{HttpSource, HttpSourceConfig, UpstreamClient};
use crate::source::Connector;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A dataset's source, by kind (`[sources.<dataset>] kind = "http"`). Non-exhaustive: the
/// kinds depend on the crate's features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
// A handful per gateway, read once: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum SourceConfig {
    /// An agency REST endpoint.
    Http(HttpSourceConfig),
    /// A SQLite database file.
    #[cfg(feature = "sqlite")]
    Sqlite(crate::sqlite::SqliteSourceConfig),
    /// A PostgreSQL table or view.
    #[cfg(feature = "postgres")]
    Postgres(crate::postgres::PostgresSourceConfig),
    /// A MySQL or MariaDB table or view.
    #[cfg(feature = "mysql")]
    Mysql(crate::mysql::MysqlSourceConfig),
    /// A CSV file, or a folder of them read as one document.
    #[cfg(feature = "files")]
    Csv(FileSourceConfig),
    /// An NDJSON file, or a folder of them read as one document.
    #[cfg(feature = "files")]
    Ndjson(FileSourceConfig),
    /// A Parquet file, or a folder of them read as one dataset.
    #[cfg(feature = "parquet")]
    Parquet(crate::parquet::ParquetSourceConfig),
}

impl SourceConfig {
    /// Problems with the config, as (path relative to the source, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        match self {
            Self::Http(c) => c.validate(),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(c) => c.validate(),
            #[cfg(feature = "postgres")]
            Self::Postgres(c) => c.validate(),
            #[cfg(feature = "mysql")]
            Self::Mysql(c) => c.validate(),
            #[cfg(feature = "files")]
            Self::Csv(c) => c.validate(FileFormat::Csv),
            #[cfg(feature = "files")]
            Self::Ndjson(c) => c.validate(FileFormat::Ndjson),
            #[cfg(feature = "parquet")]
            Self::Parquet(c) => c.validate(),
        }
    }

    /// Makes relative paths in the source's config relative to `base` (the config's folder).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        match self {
            Self::Http(c) => c.resolve_paths(base),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(c) => c.resolve_paths(base),
            #[cfg(feature = "postgres")]
            Self::Postgres(c) => c.resolve_paths(base),
            #[cfg(feature = "mysql")]
            Self::Mysql(c) => c.resolve_paths(base),
            #[cfg(feature = "files")]
            Self::Csv(c) | Self::Ndjson(c) => c.resolve_paths(base),
            #[cfg(feature = "parquet")]
            Self::Parquet(c) => c.resolve_paths(base),
        }
    }

    /// The source's kind, as configured (`kind = "…"`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Http(_) => "http",
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => "postgres",
            #[cfg(feature = "mysql")]
            Self::Mysql(_) => "mysql",
            #[cfg(feature = "files")]
            Self::Csv(_) => "csv",
            #[cfg(feature = "files")]
            Self::Ndjson(_) => "ndjson",
            #[cfg(feature = "parquet")]
            Self::Parquet(_) => "parquet",
        }
    }

    /// The declared table of a SQL source.
    pub fn table(&self) -> Option<&crate::table::TableConfig> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(c) => Some(&c.table),
            #[cfg(feature = "postgres")]
            Self::Postgres(c) => Some(&c.table),
            #[cfg(feature = "mysql")]
            Self::Mysql(c) => Some(&c.table),
            _ => None,
        }
    }

    /// Each credential the source uses, as (what, where it comes from), never its value:
    /// `("Authorization", "file /run/secrets/t")`.
    pub fn credentials(&self) -> Vec<(String, String)> {
        match self {
            Self::Http(c) => c.credentials(),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => Vec::new(),
            #[cfg(feature = "postgres")]
            Self::Postgres(c) => c
                .password
                .iter()
                .map(|p| ("password".into(), p.origin()))
                .collect(),
            #[cfg(feature = "mysql")]
            Self::Mysql(c) => c
                .password
                .iter()
                .map(|p| ("password".into(), p.origin()))
                .collect(),
            #[cfg(feature = "files")]
            Self::Csv(_) | Self::Ndjson(_) => Vec::new(),
            #[cfg(feature = "parquet")]
            Self::Parquet(_) => Vec::new(),
        }
    }

    /// Longest connect wait this source asks for, ms (the shared HTTP pool takes the largest;
    /// an HTTP source with TLS settings has its own pool, with its own wait); 0 for a source
    /// that connects to nothing (files, Parquet) or through its own pool (databases).
    pub fn connect_timeout_ms(&self) -> u64 {
        match self {
            Self::Http(c) => c.connect_timeout_ms,
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => 0,
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => 0,
            #[cfg(feature = "mysql")]
            Self::Mysql(_) => 0,
            #[cfg(feature = "files")]
            Self::Csv(_) | Self::Ndjson(_) => 0,
            #[cfg(feature = "parquet")]
            Self::Parquet(_) => 0,
        }
    }
}

/// Makes a relative path relative to `base` (the config file's folder); an empty one stays
/// empty, so that validation names it.
pub(crate) fn resolve_path(base: &std::path::Path, path: &mut std::path::PathBuf) {
    if path.is_relative() && !path.as_os_str().is_empty() {
        *path = base.join(&*path);
    }
}

/// What connectors of one gateway share: the pooled HTTP client, and the connectors made so
/// far, so that a runtime rebuilt for a new licence snapshot keeps its sources' connection
/// pools instead of opening new ones.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Pooled client for every plain `http://` source (one with TLS settings has its own).
    pub http: UpstreamClient,
    made: Arc<Mutex<Vec<Made>>>,
}

/// A connector made for a config.
type Made = (SourceConfig, Arc<dyn Connector>);

impl Shared {
    /// Shared state for these sources (the HTTP pool connects within the largest timeout of
    /// the sources that connect, 2 s when none does).
    pub fn for_sources<'a>(sources: impl IntoIterator<Item = &'a SourceConfig>) -> Self {
        let connect = sources
            .into_iter()
            .map(SourceConfig::connect_timeout_ms)
            .filter(|ms| *ms > 0)
            .max()
            .unwrap_or(2_000);
        Self {
            http: UpstreamClient::new(Duration::from_millis(connect)),
            made: Arc::default(),
        }
    }
}

impl Shared {
    /// Forgets the connectors made so far: the next [`connect`] makes each anew, reading its
    /// credential files again (a configuration reload).
    pub fn renew(&self) {
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

/// The connector for a source config: the one made before for an equal config, or a new one.
pub fn connect(config: &SourceConfig, shared: &Shared) -> Arc<dyn Connector> {
    let mut made = shared
        .made
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, c)) = made.iter().find(|(c, _)| c == config) {
        return c.clone();
    }
    // Sources no runtime uses any more (a changed or removed config) are let go.
    made.retain(|(_, c)| Arc::strong_count(c) > 1);
    let c = make(config, shared);
    made.push((config.clone(), c.clone()));
    c
}

fn make(config: &SourceConfig, shared: &Shared) -> Arc<dyn Connector> {
    match config {
        SourceConfig::Http(c) => Arc::new(HttpSource::new(c.clone(), shared.http.clone())),
        #[cfg(feature = "sqlite")]
        SourceConfig::Sqlite(c) => Arc::new(crate::sqlite::SqliteSource::new(c.clone())),
        #[cfg(feature = "postgres")]
        SourceConfig::Postgres(c) => Arc::new(crate::postgres::PostgresSource::new(c.clone())),
        #[cfg(feature = "mysql")]
        SourceConfig::Mysql(c) => Arc::new(crate::mysql::MysqlSource::new(c.clone())),
        #[cfg(feature = "files")]
        SourceConfig::Csv(c) => Arc::new(FileSource::new(c.clone(), FileFormat::Csv)),
        #[cfg(feature = "files")]
        SourceConfig::Ndjson(c) => Arc::new(FileSource::new(c.clone(), FileFormat::Ndjson)),
        #[cfg(feature = "parquet")]
        SourceConfig::Parquet(c) => Arc::new(crate::parquet::ParquetSource::new(c.clone())),
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
    fn an_equal_config_gets_the_same_connector_a_changed_one_a_new_one() {
        let s: Sources =
            toml::from_str("[sources.a]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/a\"\n").unwrap();
        let a = &s.sources["a"];
        let shared = Shared::for_sources([a]);
        let one = connect(a, &shared);
        assert!(
            Arc::ptr_eq(&one, &connect(&a.clone(), &shared)),
            "kept across rebuilds"
        );
        let mut b = a.clone();
        let SourceConfig::Http(h) = &mut b else { panic!() };
        h.url = "http://127.0.0.1:2/b".into();
        assert!(
            !Arc::ptr_eq(&one, &connect(&b, &shared)),
            "a changed source is new"
        );
        let again = connect(a, &shared);
        shared.renew();
        assert!(
            !Arc::ptr_eq(&again, &connect(a, &shared)),
            "a reload makes it anew"
        );
    }

    #[test]
    fn the_kind_picks_the_connector_and_unknown_fields_are_refused() {
        let s: Sources =
            toml::from_str("[sources.a]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/a\"\n").unwrap();
        #[allow(irrefutable_let_patterns)] // without the `files` feature
        let SourceConfig::Http(h) = &s.sources["a"] else {
            panic!("{:?}", s.sources["a"])
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

    #[cfg(feature = "files")]
    #[test]
    fn file_sources_are_kinds_csv_and_ndjson() {
        let s: Sources = toml::from_str(
            "[sources.a]\nkind = \"csv\"\npath = \"data/a.csv\"\n\
             [sources.b]\nkind = \"ndjson\"\npath = \"b\"\nread_timeout_ms = 5\n",
        )
        .unwrap();
        let SourceConfig::Csv(a) = &s.sources["a"] else {
            panic!("{:?}", s.sources["a"])
        };
        assert_eq!((a.path.to_str(), a.read_timeout_ms), (Some("data/a.csv"), 10_000));
        let SourceConfig::Ndjson(b) = &s.sources["b"] else {
            panic!("{:?}", s.sources["b"])
        };
        assert_eq!((b.path.to_str(), b.read_timeout_ms), (Some("b"), 5));
        assert_eq!(s.sources["a"].connect_timeout_ms(), 0);
        let e = toml::from_str::<Sources>("[sources.a]\nkind = \"csv\"\npath = \"a\"\nurl = \"http://x/\"\n")
            .err()
            .unwrap();
        assert!(e.to_string().contains("url"), "{e}");
    }
}

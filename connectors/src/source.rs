//! The connector trait the data plane calls, and the config that picks a source's kind.

use crate::http::{HttpSource, HttpSourceConfig, UpstreamClient};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::combinators::BoxBody;
use serde::{Deserialize, Serialize};
use sluice_policy::rowfilter::RowFilter;
use sluice_policy::stream::InputFormat;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future, so connectors of every kind fit behind one `dyn Connector`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error in the middle of a source body (the connection broke, the source lied…).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

/// A source's records as a byte stream in its [`Connector::input_format`]; an error frame
/// ends it.
pub type SourceBody = BoxBody<Bytes, BodyError>;

/// One fetch: the page, the client's parameters and the licence's row filter.
#[derive(Debug, Clone, Default)]
pub struct Fetch<'a> {
    /// Page size.
    pub limit: u64,
    /// Offset into the source's records.
    pub offset: u64,
    /// Client query parameters (each connector passes only what its config allows).
    pub params: Vec<(&'a str, &'a str)>,
    /// The licence's row filter, pushed down where the source can take it (the masker
    /// applies it again to every record either way).
    pub row_filter: Option<&'a RowFilter>,
    /// Request id, forwarded to the source where it can log it.
    pub request_id: &'a str,
}

/// Why a fetch failed before its body started.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request to the source could not be built.
    #[error("bad upstream URL: {0}")]
    Url(String),
    /// Connecting or sending failed.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// No answer within the timeout.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The source answered with an error status.
    #[error("upstream answered {0}")]
    Status(StatusCode),
}

/// An agency source the data plane can fetch records from.
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// The format of the bytes [`Connector::fetch`] returns, for the masker.
    fn input_format(&self) -> InputFormat;

    /// Longest wait for the next chunk once a body has started.
    fn read_timeout(&self) -> Duration;

    /// Fetches one page; resolves when the body starts.
    fn fetch<'a>(&'a self, fetch: &'a Fetch<'a>) -> BoxFuture<'a, Result<SourceBody, FetchError>>;
}

/// A dataset's source, by kind (`[sources.<dataset>] kind = "http"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// An agency REST endpoint.
    Http(HttpSourceConfig),
}

impl SourceConfig {
    /// Problems with the config, as (path relative to the source, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        match self {
            Self::Http(c) => c.validate(),
        }
    }

    /// Longest connect wait this source asks for, ms (the shared HTTP pool takes the largest).
    pub fn connect_timeout_ms(&self) -> u64 {
        match self {
            Self::Http(c) => c.connect_timeout_ms,
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
        let SourceConfig::Http(h) = &s.sources["a"];
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

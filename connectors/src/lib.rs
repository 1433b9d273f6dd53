//! sluice-connectors: the agency side. Fetches records from agency sources as byte streams,
//! pushing row filters down where the source can. It never decides and never masks: the
//! gateway applies the policy crate's plan to whatever a connector returns.
//!
//! Every source kind implements [`Connector`]; the gateway's config names a source with a
//! [`SourceConfig`] (`kind = "http"`, `"csv"`, …) and [`connect`] turns it into a connector.
//! Source kinds other than HTTP are cargo features, all on by default: `files` for CSV and NDJSON
//! files, `sqlite`, `postgres`, `mysql` (MySQL and MariaDB), `parquet` (Parquet files). HTTP
//! sources may be `https://` (with mutual TLS, [`upstream_tls`]) and authenticate with OAuth2
//! client credentials ([`oauth`]).

mod config;
#[cfg(feature = "files")]
pub mod file;
pub mod http;
#[cfg(feature = "mysql")]
pub mod mysql;
pub mod oauth;
#[cfg(feature = "parquet")]
pub mod parquet;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod secret;
mod source;
pub mod sql;
pub mod sql_aggregate;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(all(test, any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
mod sqltest;
pub mod table;
pub mod upstream_tls;

pub use config::{connect, Shared, SourceConfig};
pub use source::{
    check_by_fetch, AggregateFetch, BodyError, BoxFuture, Connector, Fetch, FetchError, PageBodies, PageEnd,
    Paging, PoolStatus, RowBatches, RowStream, SourceBody, SourceData, SourcePages,
};

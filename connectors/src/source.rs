//! The connector trait the data plane calls, and what a fetch asks and returns.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::combinators::BoxBody;
use sluice_policy::aggregate::{AggregateError, BasePlan, BaseTable, EqFilter};
use sluice_policy::query::ClientQuery;
use sluice_policy::rowfilter::RowFilter;
use sluice_policy::stream::{InputFormat, RowBatch};
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

/// Batches of typed rows from a database cursor, read as the consumer polls (back-pressure
/// reaches the cursor); an error item ends it.
pub type RowBatches = Pin<Box<dyn futures_core::Stream<Item = Result<RowBatch, BodyError>> + Send>>;

/// How a source's records are paged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// The source takes [`Fetch::offset`] and [`Fetch::limit`] itself (an HTTP API).
    Source,
    /// The source streams from the start every time; the gateway skips `offset` records that
    /// pass the filters (files).
    Stream,
    /// By key: the source takes the client's `order` and a keyset position ([`Fetch::after`])
    /// and says where each page ends ([`RowStream::end`]) (SQL).
    Key,
}

/// Where a page ends, for a source that pages by key and can tell before the page streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageEnd {
    /// The source cannot tell in advance.
    Unknown,
    /// The data ends within this page: no next page.
    Last,
    /// Another page follows, after these values of the order's columns (the page's last row).
    After(Vec<Option<String>>),
}

/// A source's typed rows: the column of each cell, then the batches.
pub struct RowStream {
    /// Column names, in the order of each row's cells.
    pub columns: Arc<[String]>,
    /// The rows.
    pub batches: RowBatches,
    /// Where the page ends.
    pub end: PageEnd,
}

impl std::fmt::Debug for RowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowStream")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

/// What a fetch returns: bytes in the connector's [`Connector::input_format`], or typed rows
/// (a database source, [`InputFormat::Rows`]).
#[derive(Debug)]
pub enum SourceData {
    /// A body of bytes.
    Bytes(SourceBody),
    /// Typed rows.
    Rows(RowStream),
    /// The source's own pages, each a document of bytes, from its first record: for a source
    /// that cannot take the page's filters, so that the gateway fills its page (skipping the
    /// records of earlier pages itself).
    Pages(SourcePages),
}

/// A source's pages, read one after the other as the consumer asks.
pub struct SourcePages {
    /// The first page.
    pub first: SourceBody,
    /// Records the source puts in a full page: a page with fewer is its last.
    pub per_page: u64,
    /// The pages after the first, each fetched when polled.
    pub rest: PageBodies,
}

/// A source's pages after the first, each fetched when polled.
pub type PageBodies = Pin<Box<dyn futures_core::Stream<Item = Result<SourceBody, FetchError>> + Send>>;

impl std::fmt::Debug for SourcePages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourcePages")
            .field("per_page", &self.per_page)
            .finish_non_exhaustive()
    }
}

impl SourceData {
    /// The body of bytes, if that is what the source returned.
    pub fn into_bytes(self) -> Option<SourceBody> {
        match self {
            Self::Bytes(b) => Some(b),
            Self::Pages(p) => Some(p.first),
            Self::Rows(_) => None,
        }
    }
}

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
    /// The licensee's own filters (already authorized), pushed down where the source can take
    /// them, so that pages fill; the masker applies them again to every record either way.
    pub query: Option<&'a ClientQuery>,
    /// Request id, forwarded to the source where it can log it.
    pub request_id: &'a str,
    /// The licence's field plan: a SQL source reads only the planned fields' columns, plus
    /// what the filters and the order need.
    pub plan: Option<&'a sluice_policy::plan::FieldPlan>,
    /// Keyset position for sources that page by key: the values (text, `None` for null) of
    /// the order's columns in the last row of the previous page.
    pub after: Option<Vec<Option<String>>>,
}

/// Why a fetch failed before its body started.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request to the source could not be built.
    #[error("bad upstream URL: {0}")]
    Url(String),
    /// A credential could not be read or obtained (a header's value, the TLS client
    /// certificate or roots, an OAuth2 token); the message never holds a secret.
    #[error("source credentials unavailable: {0}")]
    Credentials(String),
    /// Connecting or sending failed.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// No answer within the timeout.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The source answered with an error status.
    #[error("upstream answered {0}")]
    Status(StatusCode),
    /// The query for the source could not be built (e.g. a field that is not a declared
    /// column); nothing was sent.
    #[error("query not built: {0}")]
    Query(String),
    /// The source refused or failed the query.
    #[error("source query failed: {0}")]
    Source(String),
    /// An aggregate push-down ([`Connector::aggregate`]) found more distinct base cells than
    /// the plan's `max_groups`; the gateway answers it as
    /// [`AggregateError::TooManyGroups`](sluice_policy::aggregate::AggregateError::TooManyGroups).
    #[error("more than {cap} distinct groups; group by fewer fields")]
    TooManyGroups {
        /// The cap ([`BasePlan::max_groups`]).
        cap: usize,
    },
    /// An aggregate push-down's rows did not make a base table (a group value too long, an
    /// inconsistent row, an overflow).
    #[error("aggregate push-down failed: {0}")]
    Aggregate(AggregateError),
}

/// One aggregate push-down: the base table of a licence's aggregate allowance, grouped in the
/// source ([`Connector::aggregate`]).
#[derive(Debug, Clone, Copy)]
pub struct AggregateFetch<'a> {
    /// What to group by and measure, the clamp and the cap on base cells.
    pub plan: &'a BasePlan,
    /// The licence's row filter: it defines the population every answer is drawn from.
    pub row_filter: Option<&'a RowFilter>,
    /// Equality filters on base fields (already checked against the allowance). They only
    /// drop whole base cells; [`BaseTable::release`] applies them again either way, so a
    /// source may push down some, all or none of them. Under
    /// [`Totals::AllRecords`](sluice_policy::aggregate::Totals::AllRecords) pass none: the
    /// suppression pattern must be computed on the whole base table.
    pub filters: &'a [EqFilter],
    /// Request id, for the source's logs.
    pub request_id: &'a str,
}

/// An agency source the data plane can fetch records from.
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// The format of what [`Connector::fetch`] returns, for the masker.
    fn input_format(&self) -> InputFormat;

    /// Longest wait for the next chunk once a body has started.
    fn read_timeout(&self) -> Duration;

    /// How the source's records are paged.
    fn paging(&self) -> Paging {
        Paging::Source
    }

    /// The connection pool's state, for a source that pools connections.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Connects and reads one record of every declared column: the source is reachable, its
    /// table and columns exist and (where a row shows it) have the declared types. `Ok` says
    /// what was checked; `Err` what failed (`sluice check --connect`).
    fn check(&self) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move { check_by_fetch(self, &Fetch::default()).await })
    }

    /// Fetches one page; resolves when the body starts.
    fn fetch<'a>(&'a self, fetch: &'a Fetch<'a>) -> BoxFuture<'a, Result<SourceData, FetchError>>;

    /// Builds the base table of `req` in the source (a SQL `GROUP BY` over the base fields),
    /// or `None` when this source cannot push this request down: the gateway then streams the
    /// records through an [`Aggregator`](sluice_policy::aggregate::Aggregator) instead. A
    /// source that answers must give exactly the table streaming would give (the same group
    /// value texts, the same numeric measures); more base cells than the plan's cap is
    /// [`FetchError::TooManyGroups`]. The default pushes nothing down.
    fn aggregate<'a>(
        &'a self,
        req: &'a AggregateFetch<'a>,
    ) -> Option<BoxFuture<'a, Result<BaseTable, FetchError>>> {
        let _ = req;
        None
    }
}

/// A source's connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Most connections.
    pub max: usize,
    /// Connections open.
    pub open: usize,
    /// Open connections idle in the pool.
    pub idle: usize,
}

/// Fetches one record with `fetch` (its limit set to 1) and reads the source's first output:
/// the check of a source whose fetch exercises everything a page needs.
pub async fn check_by_fetch<C: Connector + ?Sized>(source: &C, fetch: &Fetch<'_>) -> Result<String, String> {
    let fetch = Fetch {
        limit: 1,
        ..fetch.clone()
    };
    let data = source.fetch(&fetch).await.map_err(|e| e.to_string())?;
    let wait = source.read_timeout();
    let first = async {
        match data {
            SourceData::Bytes(mut body) | SourceData::Pages(SourcePages { first: mut body, .. }) => {
                use http_body_util::BodyExt as _;
                match body.frame().await {
                    Some(Err(e)) => Err(e.0),
                    Some(Ok(_)) => Ok("answered".to_owned()),
                    None => Ok("answered (no data)".to_owned()),
                }
            }
            SourceData::Rows(mut rows) => {
                match std::future::poll_fn(|cx| rows.batches.as_mut().poll_next(cx)).await {
                    Some(Err(e)) => Err(e.0),
                    Some(Ok(b)) => Ok(format!("{} columns read, {} row", rows.columns.len(), b.rows())),
                    None => Ok(format!("{} columns, table empty", rows.columns.len())),
                }
            }
        }
    };
    tokio::time::timeout(wait, first)
        .await
        .map_err(|_| format!("no data within {wait:?}"))?
}

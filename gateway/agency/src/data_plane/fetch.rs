//! Phase: fetch. One page from the dataset's source through its connector, the licence's
//! row filter pushed down where the source can take it.

use super::context::Ctx;
use super::route::RecordsQuery;
use sluice_connectors::{Connector, Fetch, FetchError, SourceData};
use sluice_net::problem::{Problem, ProblemCode};
use sluice_policy::Permit;

/// Fetches the page; resolves when the source's body starts.
pub async fn fetch(
    connector: &dyn Connector,
    query: &RecordsQuery,
    permit: &Permit,
    ctx: &Ctx,
) -> Result<SourceData, Problem> {
    let params: Vec<(&str, &str)> = query
        .passthrough
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let fetch = Fetch {
        limit: query.limit,
        offset: query.offset,
        params,
        row_filter: permit.plan.row_filter.as_ref(),
        query: Some(&query.query),
        request_id: &ctx.request_id,
        plan: Some(&permit.plan),
        after: None,
    };
    connector.fetch(&fetch).await.map_err(|e| {
        tracing::warn!(request_id = %ctx.request_id, dataset = ?ctx.dataset, error = %e, "upstream fetch failed");
        match e {
            FetchError::Timeout(_) => Problem::new(
                ProblemCode::UpstreamTimeout,
                "the data source did not answer in time",
            ),
            _ => Problem::new(
                ProblemCode::UpstreamFailed,
                "the data source could not be reached or failed",
            ),
        }
    })
}

/// The problem for a dataset that has no connector (a config the validator let through).
pub fn no_source() -> Problem {
    Problem::new(
        ProblemCode::UpstreamFailed,
        "the dataset has no source configured",
    )
}

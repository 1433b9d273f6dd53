//! Phase: fetch. One page from the dataset's source through its connector, the licence's
//! row filter pushed down where the source can take it.

use super::context::Ctx;
use super::cursor::CursorSeal;
use super::route::RecordsQuery;
use sluice_connectors::{Connector, Fetch, FetchError, Paging, SourceData};
use sluice_net::problem::{Problem, ProblemCode};
use sluice_policy::Permit;

/// Fetches the page; resolves when the source's body starts. A failure is the problem for
/// the client and the error for the logs and `/readyz`.
pub async fn fetch(
    connector: &dyn Connector,
    query: &RecordsQuery,
    page: Page,
    permit: &Permit,
    ctx: &Ctx,
) -> Result<SourceData, (Problem, String)> {
    let params: Vec<(&str, &str)> = query
        .passthrough
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let fetch = Fetch {
        limit: page.limit,
        offset: query.offset,
        params,
        row_filter: permit.plan.row_filter.as_ref(),
        query: Some(&query.query),
        request_id: &ctx.request_id,
        plan: Some(&permit.plan),
        after: page.after,
    };
    connector
        .fetch(&fetch)
        .await
        .map_err(|e| upstream_problem(e, ctx))
}

/// The problem for the client, and the error for the logs and `/readyz`, of a failed fetch.
pub fn upstream_problem(e: FetchError, ctx: &Ctx) -> (Problem, String) {
    {
        tracing::warn!(request_id = %ctx.request_id, dataset = ?ctx.dataset, error = %e, "upstream fetch failed");
        let error = e.to_string();
        let problem = match e {
            FetchError::Timeout(_) => Problem::new(
                ProblemCode::UpstreamTimeout,
                "the data source did not answer in time",
            ),
            // A query the source's declared columns cannot answer (a config that names a
            // field the table does not have, a cursor that does not fit the order).
            FetchError::Query(_) => Problem::new(
                ProblemCode::BadRequest,
                "the query cannot be answered by this dataset's source",
            ),
            _ => Problem::new(
                ProblemCode::UpstreamFailed,
                "the data source could not be reached or failed",
            ),
        };
        (problem, error)
    }
}

/// The page a fetch asks for.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Records in the page (the page size, cut to the grant).
    pub limit: u64,
    /// Keyset position, opened from the client's `after` cursor (sources paged by key).
    pub after: Option<Vec<Option<String>>>,
}

/// Where the page starts, by how the source pages: a keyset cursor opens only for the
/// licence, dataset and order it was made for; a source paged by key takes no offset, others
/// take no cursor and no order.
pub fn page(
    paging: Paging,
    query: &RecordsQuery,
    seal: &CursorSeal,
    context: &str,
    limit: u64,
) -> Result<Page, Problem> {
    let bad = |msg: &str| Problem::new(ProblemCode::BadRequest, msg.to_owned());
    // Only an HTTP source takes parameters of its own; elsewhere one would be ignored silently.
    if let (Paging::Stream | Paging::Key, Some((name, _))) = (paging, query.passthrough.first()) {
        return Err(bad(&format!(
            "unknown parameter {name:?}: this dataset's source takes filters as {name}=eq.value (eq, neq, lt, lte, gt, gte, in, like, is)"
        )));
    }
    if paging != Paging::Key {
        if !query.query.order.is_empty() || query.query.after.is_some() {
            return Err(bad(
                "order and after (keyset pages) are not available for this dataset's source; use limit and cursor",
            ));
        }
        return Ok(Page { limit, after: None });
    }
    if query.offset > 0 {
        return Err(bad(
            "this dataset pages by key: follow the Link header's next page (after=…) instead of offset or cursor",
        ));
    }
    let after = match &query.query.after {
        None => None,
        Some(c) => Some(seal.open(context, c).ok_or_else(|| {
            bad("after is not a cursor this gateway made for this licence, dataset and order")
        })?),
    };
    Ok(Page { limit, after })
}

/// The text a keyset cursor is bound to.
pub fn cursor_context(licence: Option<&str>, dataset: &str, query: &RecordsQuery) -> String {
    format!(
        "{}\n{dataset}\n{}",
        licence.unwrap_or(""),
        query.query.order_text()
    )
}

/// The problem for a dataset that has no connector (a config the validator let through).
pub fn no_source() -> Problem {
    Problem::new(
        ProblemCode::UpstreamFailed,
        "the dataset has no source configured",
    )
}

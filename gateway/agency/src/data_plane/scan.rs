//! Reading a whole dataset inside the gateway, record by record, for answers that are not
//! records: the data sandbox's streamed aggregates and `sluice trace`'s look-up of the
//! originals behind leaked pseudonyms. Page after page (by offset, by key or as one stream, as
//! the source pages), through the masker, which applies the row filter and the filters and
//! writes the plan's fields as NDJSON; nothing of it leaves the gateway.

use super::mask::MaskedBody;
use crate::config::Limits;
use sluice_connectors::{Connector, Fetch, FetchError, PageEnd, Paging, SourceData};
use sluice_policy::plan::FieldPlan;
use sluice_policy::query::ClientQuery;
use sluice_policy::rowfilter::RowFilter;
use sluice_policy::stream::{Masker, MaskerLimits, OutputFormat};
use std::sync::Arc;

/// Records asked of a source per page.
const PAGE: u64 = 10_000;

/// Why a scan stopped.
#[derive(Debug)]
pub enum ScanError<E> {
    /// A fetch failed before its body started.
    Fetch(FetchError),
    /// A body broke or did not parse (the masker's or the transfer's error).
    Body(String),
    /// The caller's handler refused a record.
    Handler(E),
}

/// What to read: the plan (whose fields are written), the row filter and the filters.
pub struct Scan<'a> {
    /// The fields to read, emitted in the clear; its row filter is applied by the masker.
    pub plan: Arc<FieldPlan>,
    /// The row filter, pushed down where the source can take it.
    pub row_filter: Option<&'a RowFilter>,
    /// Further filters (already checked), pushed down where possible and applied again.
    pub query: &'a ClientQuery,
    /// For the source's logs.
    pub request_id: &'a str,
}

/// Reads every record `scan` lets through, handing each NDJSON line to `on_record`.
pub async fn scan<E>(
    connector: &dyn Connector,
    limits: &Limits,
    scan: &Scan<'_>,
    mut on_record: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), ScanError<E>> {
    let query_arc = (!scan.query.filters.is_empty()).then(|| Arc::new(scan.query.clone()));
    let paging = connector.paging();
    let mut offset = 0u64;
    let mut after: Option<Vec<Option<String>>> = None;
    loop {
        let fetch = Fetch {
            limit: if paging == Paging::Stream { u64::MAX } else { PAGE },
            offset: if paging == Paging::Source { offset } else { 0 },
            params: Vec::new(),
            row_filter: scan.row_filter,
            query: Some(scan.query),
            request_id: scan.request_id,
            plan: Some(&scan.plan),
            after: after.take(),
        };
        let body = connector.fetch(&fetch).await.map_err(ScanError::Fetch)?;
        let next = match &body {
            SourceData::Rows(rows) => match &rows.end {
                PageEnd::After(values) => Some(values.clone()),
                PageEnd::Last | PageEnd::Unknown => None,
            },
            SourceData::Bytes(_) | SourceData::Pages(_) => None,
        };
        let masker_limits = MaskerLimits {
            max_records: None,
            max_record_bytes: limits.max_record_bytes,
        };
        let masker = match &body {
            SourceData::Rows(rows) => Masker::typed(
                scan.plan.clone(),
                query_arc.clone(),
                &rows.columns,
                OutputFormat::Ndjson,
                masker_limits,
            ),
            _ => Masker::filtered(
                scan.plan.clone(),
                query_arc.clone(),
                connector.input_format(),
                OutputFormat::Ndjson,
                masker_limits,
            ),
        };
        let mut masked = MaskedBody::new(body, masker, connector.read_timeout(), limits.max_upstream_bytes);
        let mut carry: Vec<u8> = Vec::new();
        while let Some(chunk) = masked
            .next_output()
            .await
            .map_err(|e| ScanError::Body(e.to_string()))?
        {
            carry.extend_from_slice(&chunk);
            let end = carry.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            for line in carry[..end].split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                on_record(line).map_err(ScanError::Handler)?;
            }
            carry.drain(..end);
        }
        if !carry.is_empty() {
            on_record(&carry).map_err(ScanError::Handler)?;
        }
        let read = masked.stats().records_in;
        match paging {
            Paging::Stream => break,
            Paging::Source if read < PAGE => break,
            Paging::Source => offset += read,
            Paging::Key => match next {
                Some(values) => after = Some(values),
                None => break,
            },
        }
    }
    Ok(())
}

/// The text of one member of an NDJSON record as the masker wrote it: a string's text, a
/// number's (or literal's) text exactly as written, `None` for null or a missing member.
pub fn member_text(
    record: &std::collections::HashMap<String, Box<serde_json::value::RawValue>>,
    name: &str,
) -> Option<String> {
    let raw = record.get(name)?.get();
    match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str(raw).ok(),
        _ if raw == "null" => None,
        _ => Some(raw.to_owned()),
    }
}

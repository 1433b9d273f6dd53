//! The data sandbox (数据沙箱, 可用不可见): `GET /v1/datasets/<id>/aggregate?group_by=a,b&
//! metric=count|sum(f)|avg(f)|min(f)|max(f)&<field>=eq.<value>`. Only grouped counts, sums,
//! averages, minima and maxima leave, computed from the licence's base table with small cells
//! suppressed ([`sluice_policy::aggregate`]); no record does.
//!
//! The base table is grouped in the source when its connector can push the grouping down (a
//! SQL `GROUP BY`), or by streaming the source's records through an
//! [`Aggregator`] whose memory the allowance's `max_groups` bounds. Either way the licence's
//! row filter defines the population, and the answer is audited before it is sent.

use super::context::Ctx;
use super::decide::{check_fresh, Inputs};
use super::fetch::upstream_problem;
use super::limit;
use super::outcome::{set_request_id, Sent};
use super::scan::{member_text, scan, Scan, ScanError};
use crate::limits::privacy::Spend;
use crate::runtime::Runtime;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use rand_core::{OsRng, TryRngCore};
use sluice_connectors::{AggregateFetch, Connector, FetchError};
use sluice_net::body::{full, RespBody};
use sluice_net::problem::{Problem, ProblemCode};
use sluice_policy::aggregate::{
    add_noise, cost, query_fingerprint, AggregateError, AggregateQuery, Aggregator, BasePlan, BaseTable,
    EqFilter, Metric, Refusal as AggRefusal, Totals,
};
use sluice_policy::decide::SystemClock;
use sluice_policy::id::LicenseeId;
use sluice_policy::licence::Licence;
use sluice_policy::mask::PseudonymKey;
use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
use sluice_policy::query::ClientQuery;
use sluice_policy::stream::MaskStats;
use sluice_policy::Permit;
use std::collections::HashMap;
use std::sync::Arc;

/// What an aggregate request asks: the query, its equality filters and the totals mode.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRequest {
    /// Grouping and metric.
    pub query: AggregateQuery,
    /// `field=eq.value` filters (on base fields, checked against the allowance).
    pub filters: Vec<EqFilter>,
}

impl AggregateRequest {
    /// Parses the query string: `group_by`, `metric` and `<field>=eq.<value>` filters, each
    /// parameter at most once.
    pub fn parse(query: &str) -> Result<Self, Problem> {
        let bad = |m: String| Problem::new(ProblemCode::BadRequest, m);
        let mut group_by = None;
        let mut metric = None;
        let mut filters: Vec<EqFilter> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if !seen.insert(k.clone()) {
                return Err(bad(format!("query parameter `{k}` given twice")));
            }
            match &*k {
                "group_by" => group_by = Some(v.into_owned()),
                "metric" => metric = Some(v.into_owned()),
                field => match v.strip_prefix("eq.") {
                    Some(value) => filters.push(EqFilter::new(field, Some(value.to_owned()))),
                    None => {
                        return Err(bad(format!(
                            "`{field}={v}`: an aggregate takes only group_by, metric and `field=eq.value` filters"
                        )))
                    }
                },
            }
        }
        let query =
            AggregateQuery::parse(group_by.as_deref(), metric.as_deref()).map_err(|e| bad(e.to_string()))?;
        Ok(Self { query, filters })
    }
}

/// Answers an aggregate request on the data listener.
pub async fn respond(
    inputs: &Inputs<'_>,
    limiter: &Arc<crate::limits::Limiter>,
    licensee: Option<&LicenseeId>,
    dataset: &str,
    query: Option<&str>,
    ctx: &mut Ctx,
) -> Result<Response<RespBody>, Problem> {
    let rt = inputs.rt;
    let asked = AggregateRequest::parse(query.unwrap_or(""))?;
    check_fresh(rt, inputs.subscription, dataset)?;
    let licence = rt
        .policy
        .decide_aggregate(
            &sluice_policy::Request {
                licensee: licensee.map(LicenseeId::as_str),
                dataset,
                scenario: ctx.scenario.as_deref(),
                fields: None,
            },
            &SystemClock,
        )
        .map_err(|r| {
            if let Some(l) = licensee {
                ctx.attributed = rt.policy.licence_ids(l.as_str(), dataset);
            }
            Problem::from(&r)
        })?;
    ctx.licence = Some(licence.id.clone());
    super::decide::held(inputs.outcomes, ctx.licence.as_deref())?;
    let allowance = licence.aggregate.as_ref().ok_or_else(|| {
        Problem::new(
            ProblemCode::AggregateNotLicensed,
            "the licence allows no aggregates",
        )
    })?;
    allowance.check(&asked.query, &asked.filters).map_err(refusal)?;
    let dp = allowance.dp;
    if let Some(dp) = &dp {
        let unavailable = match &asked.query.metric {
            Metric::Min(_) | Metric::Max(_) => Some("minimum and maximum have no bounded sensitivity"),
            Metric::Sum(_) | Metric::Avg(_) if dp.clamp.is_none() => {
                Some("sums and averages need the licence's clamp")
            }
            _ => None,
        };
        if let Some(why) = unavailable {
            return Err(Problem::new(
                ProblemCode::FieldNotAggregable,
                format!(
                    "{} is not available under this licence's differential privacy: {why}",
                    asked.query.metric
                ),
            ));
        }
    }
    let plan = BasePlan::new(&asked.query, allowance).map_err(refusal)?;
    let plan = match dp.and_then(|d| d.clamp) {
        Some(clamp) => plan.with_clamp(clamp),
        None => plan,
    };
    // One request against the licence's rate and daily request quota; no record leaves.
    let permit = Permit {
        licence: Some(licence.clone()),
        plan: Arc::new(FieldPlan {
            fields: Vec::new(),
            row_filter: None,
            key: PseudonymKey::derive(b"", "", ""),
            record_key: None,
            marks: None,
        }),
        withheld: Arc::from([]),
    };
    let grant = limit::admit(limiter, &permit, 1).await?;
    grant.settle(0);
    inputs.outcomes.check_audit()?;
    // Differential privacy: ε is reserved before the answer is computed; the same question
    // asked again today gets the same noisy answer and spends nothing.
    let day = limit::today();
    let question = query_fingerprint(&asked.query, &asked.filters);
    let mut epsilon = None;
    if let Some(dp) = &dp {
        let micros = |e: f64, round: fn(f64) -> f64| round(e * 1e6).max(0.0) as u64;
        let cost = micros(cost(&dp.params()), f64::ceil);
        let budget = micros(dp.budget_per_day, f64::floor);
        match limiter
            .spend_privacy(&licence.id, day, question, cost, budget)
            .await
            .map_err(limit::refused)?
        {
            Spend::Cached(body) => return answer(inputs, ctx, &licence.id, body, 0, None).await,
            Spend::Exhausted { remaining } => return Err(limit::budget_exhausted(remaining, dp.epsilon)),
            Spend::Charged => epsilon = Some(dp.epsilon),
        }
    }
    let Some(connector) = rt.sources.get(dataset) else {
        return Err(super::fetch::no_source());
    };
    let table = match base_table(connector.as_ref(), rt, &licence, &plan, &asked.filters, ctx).await {
        Ok(t) => t,
        Err(Failure::Problem(p)) => return Err(p),
        Err(Failure::Upstream(p, error)) => {
            inputs.outcomes.upstream_error(ctx, &error);
            return Err(p);
        }
    };
    let mut released = table
        .release(&asked.query, &asked.filters, allowance.k, Totals::ReleasedCells)
        .map_err(aggregate_problem)?;
    if let Some(dp) = &dp {
        add_noise(&mut released, &dp.params(), &mut OsRng.unwrap_err())
            .map_err(|e| Problem::new(ProblemCode::Internal, format!("noise: {e}")))?;
    }
    let cells = released.cells.len() as u64;
    let body = Bytes::from(serde_json::to_vec(&released).map_err(|e| {
        Problem::new(
            ProblemCode::Internal,
            format!("the answer could not be written: {e}"),
        )
    })?);
    // Another gateway may have answered the same question meanwhile: every one sends the
    // answer kept first.
    let body = match &dp {
        Some(_) => limiter
            .keep_answer(&licence.id, day, question, body)
            .await
            .map_err(limit::refused)?,
        None => body,
    };
    answer(inputs, ctx, &licence.id, body, cells, epsilon).await
}

/// Audits an answer, then sends it.
async fn answer(
    inputs: &Inputs<'_>,
    ctx: &Ctx,
    licence: &str,
    body: Bytes,
    cells: u64,
    epsilon: Option<f64>,
) -> Result<Response<RespBody>, Problem> {
    let sent = Sent {
        stats: MaskStats {
            records_out: cells,
            bytes_out: body.len() as u64,
            ..MaskStats::default()
        },
        served: None,
        epsilon,
    };
    inputs.outcomes.audit_whole(ctx, &sent).await?;
    if let Some(e) = epsilon {
        inputs.outcomes.count_epsilon(ctx, e);
    }
    let mut resp = Response::new(full(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(licence) {
        h.insert("sluice-licence", v);
    }
    *resp.status_mut() = StatusCode::OK;
    set_request_id(&mut resp, &ctx.request_id);
    Ok(resp)
}

/// Why a base table could not be built: a problem for the client, and for a source failure
/// the error for the logs and `/readyz`.
enum Failure {
    Problem(Problem),
    Upstream(Problem, String),
}

impl From<Problem> for Failure {
    fn from(p: Problem) -> Self {
        Failure::Problem(p)
    }
}

fn refusal(r: AggRefusal) -> Problem {
    Problem::new(ProblemCode::FieldNotAggregable, r.to_string())
}

fn aggregate_problem(e: AggregateError) -> Problem {
    match e {
        AggregateError::TooManyGroups { .. } => Problem::new(ProblemCode::TooManyGroups, e.to_string()),
        other => Problem::new(ProblemCode::BadRequest, other.to_string()),
    }
}

fn fetch_failure(e: FetchError, ctx: &Ctx) -> Failure {
    match e {
        FetchError::TooManyGroups { cap } => {
            Failure::Problem(aggregate_problem(AggregateError::TooManyGroups { cap }))
        }
        e => {
            let (p, error) = upstream_problem(e, ctx);
            Failure::Upstream(p, error)
        }
    }
}

/// The licence's base table: pushed down to the source when it can group, else streamed.
async fn base_table(
    connector: &dyn Connector,
    rt: &Runtime,
    licence: &Licence,
    plan: &BasePlan,
    filters: &[EqFilter],
    ctx: &Ctx,
) -> Result<BaseTable, Failure> {
    let req = AggregateFetch {
        plan,
        row_filter: licence.row_filter.as_ref(),
        filters,
        request_id: &ctx.request_id,
    };
    // A source groups every record it holds: with records suppressed by an upheld objection
    // the table is streamed through the masker, which drops them.
    let suppressed = rt
        .policy
        .record_marks(&licence.dataset)
        .is_some_and(|(_, m)| !m.suppressed.is_empty());
    if !suppressed {
        if let Some(pushed) = connector.aggregate(&req) {
            return pushed.await.map_err(|e| fetch_failure(e, ctx));
        }
    }
    stream_table(connector, rt, licence, plan, filters, ctx).await
}

/// Streams every record the licence's row filter and the filters let through, page by page,
/// into an [`Aggregator`]: the base fields and the measure only, read as the masker reads
/// them, never sent anywhere.
async fn stream_table(
    connector: &dyn Connector,
    rt: &Runtime,
    licence: &Licence,
    plan: &BasePlan,
    filters: &[EqFilter],
    ctx: &Ctx,
) -> Result<BaseTable, Failure> {
    let mut names: Vec<&str> = plan.fields().iter().map(String::as_str).collect();
    if let Some(m) = plan.measure() {
        if !names.contains(&m) {
            names.push(m);
        }
    }
    let marks = rt.policy.record_marks(&licence.dataset);
    let field_plan = Arc::new(FieldPlan {
        fields: names
            .iter()
            .map(|n| PlannedField {
                name: (*n).to_owned(),
                action: FieldAction::Emit { scan: false },
            })
            .collect(),
        row_filter: licence.row_filter.clone(),
        key: PseudonymKey::derive(b"", "", ""),
        record_key: marks.map(|(k, _)| k.to_owned()),
        marks: marks.map(|(_, m)| m.clone()),
    });
    let pairs: Vec<(String, String)> = filters
        .iter()
        .filter_map(|f| Some((f.field.clone(), format!("eq.{}", f.value.as_ref()?))))
        .collect();
    let query = ClientQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| Problem::new(ProblemCode::BadRequest, e.to_string()))?;
    let mut agg = Aggregator::new(plan);
    let read = Scan {
        plan: field_plan,
        row_filter: licence.row_filter.as_ref(),
        query: &query,
        request_id: &ctx.request_id,
    };
    scan(connector, &rt.config.limits, &read, |line| {
        push_line(&mut agg, plan, line)
    })
    .await
    .map_err(|e| match e {
        ScanError::Fetch(e) => fetch_failure(e, ctx),
        ScanError::Body(error) => Failure::Upstream(
            Problem::new(
                ProblemCode::UpstreamFailed,
                "the data source sent data that could not be verified",
            ),
            error,
        ),
        ScanError::Handler(f) => f,
    })?;
    Ok(agg.finish())
}

/// Adds one NDJSON record (the base fields and the measure, as the masker wrote them): a
/// string's text, a number's text exactly as written (as a SQL push-down renders it), `null`
/// as no value.
fn push_line(agg: &mut Aggregator, plan: &BasePlan, line: &[u8]) -> Result<(), Failure> {
    let rec: HashMap<String, Box<serde_json::value::RawValue>> = serde_json::from_slice(line)
        .map_err(|e| Problem::new(ProblemCode::Internal, format!("aggregate record: {e}")))?;
    let text = |name: &str| member_text(&rec, name);
    let groups: Vec<Option<String>> = plan.fields().iter().map(|f| text(f)).collect();
    let group_refs: Vec<Option<&str>> = groups.iter().map(|g| g.as_deref()).collect();
    let measure = plan.measure().and_then(text);
    agg.push(&group_refs, measure.as_deref())
        .map_err(|e| Failure::Problem(aggregate_problem(e)))
}

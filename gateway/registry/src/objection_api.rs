//! The objection routes: filing and following a case in public (no certificate), the public
//! register and form, and the administrators' review.
//!
//! Filing is open to anyone, so it is bounded: a per-address rate ([`Filings`]), a body cap,
//! field caps ([`crate::objection::NewObjection::check`]) and a cap on open cases. A filer's
//! contact is shown to administrators only.

use super::action::Action;
use super::model::ReasonBody;
use super::objection::{Decision, NewObjection, PublicStatus, Status};
use super::problem::{Problem, ProblemCode as P};
use super::public::{esc, html_response, wants_html};
use super::request::ApiBody;
use super::request::{body, json_response, need_reason};
use super::scope::Scope;
use super::snapshot::Distributor;
use super::store::{Change, Store};
use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use sluice_net::body::RespBody;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

type Reply = Result<Response<RespBody>, Problem>;

/// Largest filing body in bytes (the field caps in characters fit well inside).
pub const MAX_FILING_BYTES: usize = 64 * 1024;
/// Filings one address may make at once; then one more every [`FILING_EVERY`].
pub const FILING_BURST: u32 = 10;
/// How often an address may file once its burst is spent.
pub const FILING_EVERY: Duration = Duration::from_secs(6);
/// Most open cases; filings beyond wait until some are decided (`rate-limited`).
pub const MAX_OPEN: u64 = 10_000;
/// Addresses remembered by the rate limiter before idle ones are forgotten.
const MAX_TRACKED: usize = 100_000;

/// The per-address filing rate (GCRA, governor).
pub struct Filings {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for Filings {
    fn default() -> Self {
        let burst = NonZeroU32::new(FILING_BURST).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(FILING_EVERY)
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            limiter: RateLimiter::keyed(quota),
        }
    }
}

impl Filings {
    /// A public filing's body once the address's rate admits it: whether it came from the
    /// HTML form (`application/x-www-form-urlencoded`), and its bytes, at most
    /// [`MAX_FILING_BYTES`] (`bad-request` beyond).
    pub(crate) async fn read(&self, peer: IpAddr, req: Request<ApiBody>) -> Result<(bool, Bytes), Problem> {
        self.admit(peer)?;
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let bytes = Limited::new(req.into_body(), MAX_FILING_BYTES)
            .collect()
            .await
            .map_err(|e| Problem::new(P::BadRequest, format!("request body: {e}")))?
            .to_bytes();
        Ok((form, bytes))
    }

    /// Admits one filing from `ip`, or refuses it with `Retry-After` (also the demand list's
    /// limiter: an instance of its own).
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<(), Problem> {
        if self.limiter.len() > MAX_TRACKED {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until
                .wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ))
                .as_secs()
                + 1;
            Problem::new(
                P::RateLimited,
                format!("too many filings from this address; try again in {wait} s"),
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from(wait))
        })
    }
}

/// `POST /v1/objections`: JSON (answered with JSON) or the public form's fields (answered
/// with a page naming the tracking id). `201` with `Location`, the id and the status URL.
pub async fn file(store: &Store, filings: &Filings, peer: IpAddr, req: Request<ApiBody>) -> Reply {
    let (form, bytes) = filings.read(peer, req).await?;
    let filing: NewObjection = if form {
        form_filing(&bytes)?
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| Problem::new(P::BadRequest, format!("request body: {e}")))?
    };
    filing.check().map_err(|m| Problem::new(P::Invalid, m))?;
    let dataset = store
        .dataset(&filing.dataset)
        .await
        .map_err(|_| Problem::new(P::Invalid, format!("unknown dataset {:?}", filing.dataset)))?;
    if dataset.spec.record_key.is_none() {
        return Err(Problem::new(
            P::Invalid,
            format!(
                "dataset {:?} declares no record key: write to its owner, {}",
                filing.dataset, dataset.spec.owner
            ),
        ));
    }
    if store.open_objections().await? >= MAX_OPEN {
        return Err(
            Problem::new(P::RateLimited, "the objection queue is full; try again later")
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("3600")),
        );
    }
    let rec = store.file_objection(&filing).await?;
    let status_url = format!("/v1/objections/{}", rec.id);
    tracing::info!(objection = %rec.id, dataset = %rec.dataset, kind = rec.kind.as_str(), "objection filed");
    let r = if form {
        html_response(
            "Filed",
            &format!(
                "<p>Your {kind} about a record of <code>{ds}</code> is filed. Keep its tracking id: \
                 <strong id=\"tracking-id\">{id}</strong>.</p><p>Follow it at <a href=\"{url}\">{url}</a>. \
                 The agency's decision and its reason will show there.</p>",
                kind = rec.kind.as_str(),
                ds = esc(&rec.dataset),
                id = esc(&rec.id),
                url = esc(&status_url),
            ),
        )
    } else {
        json_response(
            StatusCode::CREATED,
            &serde_json::json!({
                "id": rec.id,
                "status": rec.status,
                "status_url": status_url,
            }),
            None,
        )
    };
    Ok(super::request::created_at(r, &status_url))
}

/// The public form's fields as a filing: the same members as the JSON body, each once.
fn form_filing(bytes: &[u8]) -> Result<NewObjection, Problem> {
    let mut map = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(bytes) {
        if map
            .insert(k.to_string(), serde_json::Value::String(v.into_owned()))
            .is_some()
        {
            return Err(Problem::new(P::BadRequest, format!("form field {k} given twice")));
        }
    }
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| Problem::new(P::BadRequest, format!("form: {e}")))
}

/// `GET /v1/objections/<id>`: where the case stands and the decision's reason, never the
/// filer's contact, evidence or the record key.
pub async fn status<B>(store: &Store, id: &str, req: &Request<B>) -> Reply {
    let rec = store.objection(id).await?;
    let view = PublicStatus::from(&rec);
    if wants_html(req) {
        let row = |k: &str, v: &str| format!("<tr><th scope=\"row\">{}</th><td>{}</td></tr>", esc(k), esc(v));
        let mut rows = String::new();
        rows.push_str(&row("tracking id", view.id));
        rows.push_str(&row("dataset", view.dataset));
        rows.push_str(&row("kind", view.kind.as_str()));
        rows.push_str(&row("status", view.status.as_str()));
        rows.push_str(&row("filed", view.filed_at));
        rows.push_str(&row("decided", view.decided_at.unwrap_or("")));
        rows.push_str(&row("reason given", view.decision_reason.unwrap_or("")));
        rows.push_str(&row("closed", view.closed_at.unwrap_or("")));
        return Ok(html_response(
            "Objection status",
            &format!("<table>{rows}</table>"),
        ));
    }
    Ok(json_response(StatusCode::OK, &view, None))
}

/// `GET /objections`: the register of decided cases (dataset, kind, decision, date).
pub async fn register<B>(store: &Store, req: &Request<B>) -> Reply {
    let list = store.objection_register().await?;
    if wants_html(req) {
        let mut rows = String::new();
        for e in &list {
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.dataset),
                e.kind.as_str(),
                e.status.as_str(),
                esc(&e.decided_on)
            ));
        }
        return Ok(html_response(
            "sluice objection register",
            &format!(
                "<p>Decided objections and corrections. <a href=\"/objections/new\">Object to a record \
                 or report an error</a>.</p><table><tr><th>dataset</th><th>kind</th><th>decision</th>\
                 <th>decided</th></tr>{rows}</table>"
            ),
        ));
    }
    Ok(json_response(StatusCode::OK, &list, None))
}

/// `GET /objections/new`: the public filing form (no script; posts the form's fields).
pub fn form() -> Response<RespBody> {
    html_response(
        "Object to a record or report an error",
        "<form method=\"post\" action=\"/v1/objections\">\
         <p><label for=\"dataset\">Dataset id</label><br><input id=\"dataset\" name=\"dataset\" required maxlength=\"64\"></p>\
         <p><label for=\"record_key\">Record key (as the dataset shows it)</label><br>\
         <input id=\"record_key\" name=\"record_key\" required maxlength=\"256\"></p>\
         <fieldset><legend>What do you ask for?</legend>\
         <p><input type=\"radio\" id=\"k-objection\" name=\"kind\" value=\"objection\" checked>\
         <label for=\"k-objection\">Objection: the record infringes my privacy or trade secrets</label></p>\
         <p><input type=\"radio\" id=\"k-correction\" name=\"kind\" value=\"correction\">\
         <label for=\"k-correction\">Correction: the record is wrong</label></p></fieldset>\
         <p><label for=\"reason\">Reason</label><br><textarea id=\"reason\" name=\"reason\" required maxlength=\"4000\" rows=\"5\" cols=\"60\"></textarea></p>\
         <p><label for=\"evidence\">Evidence (optional)</label><br><textarea id=\"evidence\" name=\"evidence\" maxlength=\"8000\" rows=\"5\" cols=\"60\"></textarea></p>\
         <p><label for=\"contact\">How the agency can reach you (optional; seen by its administrators only)</label><br>\
         <input id=\"contact\" name=\"contact\" maxlength=\"320\" size=\"60\"></p>\
         <p><button type=\"submit\">File</button></p></form>\
         <p><a href=\"/catalog\">Catalog</a> · <a href=\"/objections\">Objection register</a></p>",
    )
}

/// `/admin/objections…`: list (`?status=`), show, and decide (`uphold`, `reject`,
/// `withdraw`, `resolve`, each with a reason, each an admin change). An agency's
/// administrator sees and decides the cases against its agency's datasets only.
#[allow(clippy::too_many_arguments)]
pub async fn admin(
    store: &Store,
    dist: &Distributor,
    admin: &str,
    scope: &Scope,
    segs: &[&str],
    method: &Method,
    query: Option<&str>,
    req: Request<ApiBody>,
) -> Reply {
    match (segs, method) {
        (["admin", "objections"], &Method::GET) => {
            let status = match super::request::query_str(query, "status") {
                None => None,
                Some(s) => Some(Status::parse(s).ok_or_else(|| {
                    Problem::new(
                        P::BadRequest,
                        "status must be open, upheld, rejected, withdrawn or resolved",
                    )
                })?),
            };
            let mut cases = store.objections(status).await?;
            if *scope != Scope::City {
                let owners: std::collections::HashMap<String, Option<String>> = store
                    .datasets()
                    .await?
                    .into_iter()
                    .map(|d| (d.spec.id, d.agency))
                    .collect();
                cases.retain(|c| scope.covers(owners.get(&c.dataset).and_then(Option::as_deref)));
            }
            Ok(json_response(StatusCode::OK, &cases, None))
        }
        (["admin", "objections", id], &Method::GET) => {
            let rec = store.objection(id).await?;
            scope.require_dataset(store, &rec.dataset).await?;
            Ok(json_response(StatusCode::OK, &rec, None))
        }
        (["admin", "objections", id, verb], &Method::POST) => {
            let Some(decision) = Decision::parse(verb) else {
                return Err(super::routes::not_routed(method, segs));
            };
            let b: ReasonBody = body(req).await?;
            need_reason(&b.reason)?;
            if *scope != Scope::City {
                let dataset = store.objection(id).await?.dataset;
                scope.require_dataset(store, &dataset).await?;
            }
            let action = match decision {
                Decision::Uphold => Action::ObjectionUphold,
                Decision::Reject => Action::ObjectionReject,
                Decision::Withdraw => Action::ObjectionWithdraw,
                Decision::Resolve => Action::ObjectionResolve,
            };
            let ch = Change {
                admin,
                action,
                target: id,
                reason: &b.reason,
            };
            let (rec, rev) = store.decide_objection(id, decision, &ch).await?;
            dist.advance(rev.revision);
            Ok(json_response(StatusCode::OK, &rec, Some(rev.revision)))
        }
        _ => Err(super::routes::not_routed(method, segs)),
    }
}

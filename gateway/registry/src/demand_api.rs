//! The demand list's routes: filing in public (no certificate, JSON or the public form), the
//! public list and one entry, the form, and the administrators' answers.
//!
//! Filing is open to anyone, so it is bounded like objections: a per-address rate (a
//! [`Filings`] instance of its own), a 64 KiB body cap, field caps
//! ([`crate::demand::NewDemand::check`]) and at most [`MAX_OPEN`] unanswered entries (a filing
//! that joins an existing entry is always taken). The public sees no request's `why` or
//! `contact`: only the title or catalog id, the fields, the count and the answer.

use super::action::Action;
use super::demand::{form_fields, merge_key, resolve, Listed, NewAnswer, NewDemand, PublicDemand, Status};
use super::objection_api::Filings;
use super::problem::{Problem, ProblemCode as P};
use super::public::{esc, html_response, wants_html};
use super::request::ApiBody;
use super::request::{body, json_response, query_str};
use super::scope::Scope;
use super::store::{Change, Store, StoreError};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use sluice_net::body::RespBody;
use sluice_policy::classify::OpenCategory;
use std::net::IpAddr;

type Reply = Result<Response<RespBody>, Problem>;

/// Most unanswered entries; a filing that would open one more waits (`rate-limited`).
pub const MAX_OPEN: u64 = 10_000;

/// `POST /v1/demands`: JSON (answered with JSON) or the public form's fields (answered with a
/// page). `201` with `Location` (the entry's status URL), the entry's id and its count: also
/// when the filing joined an existing entry.
pub async fn file(store: &Store, filings: &Filings, peer: IpAddr, req: Request<ApiBody>) -> Reply {
    let (form, bytes) = filings.read(peer, req).await?;
    let filing: NewDemand = if form {
        form_filing(&bytes)?
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| Problem::new(P::BadRequest, format!("request body: {e}")))?
    };
    filing.check().map_err(|m| Problem::new(P::Invalid, m))?;
    let entry = match store.dataset(filing.dataset.trim()).await {
        Ok(d) => Some(d),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let names: Vec<&str> = entry
        .as_ref()
        .map(|d| d.spec.fields.iter().map(|f| f.name.as_str()).collect())
        .unwrap_or_default();
    let listed = entry.as_ref().map(|d| Listed {
        open: d.open_category == OpenCategory::Unconditional && !d.closed,
        fields: &names,
    });
    let (target, fields) = resolve(&filing, listed).map_err(|m| Problem::new(P::Invalid, m))?;
    let key = merge_key(filing.kind, &target, &fields);
    if store.open_demands().await? >= MAX_OPEN && !store.demand_key_exists(&key).await? {
        return Err(
            Problem::new(P::RateLimited, "the demand list is full; try again later")
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("3600")),
        );
    }
    let (id, count) = store
        .file_demand(&key, filing.kind, &target, &fields, &filing.why, &filing.contact)
        .await?;
    let status_url = format!("/v1/demands/{id}");
    tracing::info!(demand = %id, count, kind = filing.kind.as_str(), "demand filed");
    let r = if form {
        html_response(
            "Request recorded",
            &format!(
                "<p>Your request is recorded. Requests for the same thing so far: \
                 <strong id=\"count\">{count}</strong>. Its entry: <strong id=\"demand-id\">{id}</strong>.</p>\
                 <p>The agency's answer will show at <a href=\"{url}\">{url}</a> and in the \
                 <a href=\"/demands\">demand list</a>.</p>",
                id = esc(&id),
                url = esc(&status_url),
            ),
        )
    } else {
        json_response(
            StatusCode::CREATED,
            &serde_json::json!({ "id": id, "count": count, "status_url": status_url }),
            None,
        )
    };
    Ok(super::request::created_at(r, &status_url))
}

/// The public form's fields as a filing: the JSON body's members, each once; `fields` is one
/// text of names separated by commas or line breaks.
fn form_filing(bytes: &[u8]) -> Result<NewDemand, Problem> {
    let mut map = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(bytes) {
        let value = if k == "fields" {
            serde_json::json!(form_fields(&v).map_err(|m| Problem::new(P::Invalid, m))?)
        } else {
            serde_json::Value::String(v.into_owned())
        };
        if map.insert(k.to_string(), value).is_some() {
            return Err(Problem::new(P::BadRequest, format!("form field {k} given twice")));
        }
    }
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| Problem::new(P::BadRequest, format!("form: {e}")))
}

/// HTML when `format=html`, JSON when `format=json`, else as `Accept` asks.
fn html_wanted<B>(req: &Request<B>) -> Result<bool, Problem> {
    match query_str(req.uri().query(), "format") {
        None => Ok(wants_html(req)),
        Some("html") => Ok(true),
        Some("json") => Ok(false),
        Some(_) => Err(Problem::new(P::BadRequest, "format must be html or json")),
    }
}

fn what(d: &PublicDemand) -> String {
    match (&d.dataset, &d.title) {
        (Some(id), _) => format!("<code>{}</code>", esc(id)),
        (None, Some(t)) => esc(t),
        (None, None) => String::new(),
    }
}

fn answer_cells(d: &PublicDemand) -> String {
    match &d.answer {
        Some(a) => format!(
            "<td>{}</td><td>{}</td><td>{}</td>",
            d.status.as_str(),
            esc(a.date.as_deref().unwrap_or("")),
            esc(&a.reason)
        ),
        None => "<td>open</td><td></td><td></td>".to_owned(),
    }
}

/// `GET /demands`: every entry, the most requested first, with its count and answer; never a
/// request's why or contact.
pub async fn list<B>(store: &Store, req: &Request<B>) -> Reply {
    let html = html_wanted(req)?;
    let list: Vec<PublicDemand> = store
        .demands(None, false)
        .await?
        .into_iter()
        .map(PublicDemand::from)
        .collect();
    if html {
        let mut rows = String::new();
        for d in &list {
            rows.push_str(&format!(
                "<tr><td><a href=\"/v1/demands/{id}\">{id}</a></td><td>{kind}</td><td>{what}</td><td>{fields}</td>\
                 <td>{count}</td><td>{first}</td><td>{last}</td>{answer}</tr>",
                id = esc(&d.id),
                kind = d.kind.as_str(),
                what = what(d),
                fields = esc(&d.fields.join(", ")),
                count = d.count,
                first = esc(&d.first_filed_on),
                last = esc(&d.last_filed_on),
                answer = answer_cells(d),
            ));
        }
        return Ok(html_response(
            "sluice demand list",
            &format!(
                "<p>Requests from the public for data to be opened or for more fields, merged and counted, \
                 with the agencies' answers. <a href=\"/demands/new\">Ask for data</a> · \
                 <a href=\"/catalog\">Catalog</a></p><table><tr><th>entry</th><th>kind</th><th>dataset or title</th>\
                 <th>fields</th><th>requests</th><th>first filed</th><th>last filed</th><th>answer</th>\
                 <th>date</th><th>reason</th></tr>{rows}</table>"
            ),
        ));
    }
    Ok(json_response(StatusCode::OK, &list, None))
}

/// `GET /v1/demands/<id>`: one entry as the public list shows it.
pub async fn status<B>(store: &Store, id: &str, req: &Request<B>) -> Reply {
    let html = html_wanted(req)?;
    let d = PublicDemand::from(store.demand(id, false).await?);
    if html {
        let row = |k: &str, v: String| format!("<tr><th scope=\"row\">{}</th><td>{v}</td></tr>", esc(k));
        let mut rows = String::new();
        rows.push_str(&row("entry", esc(&d.id)));
        rows.push_str(&row("kind", d.kind.as_str().to_owned()));
        rows.push_str(&row("dataset or title", what(&d)));
        rows.push_str(&row("fields", esc(&d.fields.join(", "))));
        rows.push_str(&row("requests", d.count.to_string()));
        rows.push_str(&row("first filed", esc(&d.first_filed_on)));
        rows.push_str(&row("last filed", esc(&d.last_filed_on)));
        rows.push_str(&row("status", d.status.as_str().to_owned()));
        let a = d.answer.as_ref();
        rows.push_str(&row("date", esc(a.and_then(|a| a.date.as_deref()).unwrap_or(""))));
        rows.push_str(&row("reason given", esc(a.map_or("", |a| a.reason.as_str()))));
        return Ok(html_response(
            "Demand",
            &format!("<table>{rows}</table><p><a href=\"/demands\">Demand list</a></p>"),
        ));
    }
    Ok(json_response(StatusCode::OK, &d, None))
}

/// `GET /demands/new`: the public form (no script; posts the form's fields).
pub fn form() -> Response<RespBody> {
    html_response(
        "Ask for data to be opened",
        "<form method=\"post\" action=\"/v1/demands\">\
         <fieldset><legend>What do you ask for?</legend>\
         <p><input type=\"radio\" id=\"k-open\" name=\"kind\" value=\"open-dataset\" checked>\
         <label for=\"k-open\">Open a dataset (one the catalog lists but does not open, or data it does not list)</label></p>\
         <p><input type=\"radio\" id=\"k-fields\" name=\"kind\" value=\"more-fields\">\
         <label for=\"k-fields\">More fields of a dataset in the catalog</label></p></fieldset>\
         <p><label for=\"dataset\">Dataset id from the catalog, or the title of the data you want</label><br>\
         <input id=\"dataset\" name=\"dataset\" required maxlength=\"200\" size=\"60\"></p>\
         <p><label for=\"fields\">Fields wanted (more fields only; separated by commas)</label><br>\
         <input id=\"fields\" name=\"fields\" maxlength=\"1500\" size=\"60\"></p>\
         <p><label for=\"why\">Why (seen by the agency's administrators only)</label><br>\
         <textarea id=\"why\" name=\"why\" required maxlength=\"2000\" rows=\"5\" cols=\"60\"></textarea></p>\
         <p><label for=\"contact\">How the agency can reach you (optional; seen by its administrators only)</label><br>\
         <input id=\"contact\" name=\"contact\" maxlength=\"320\" size=\"60\"></p>\
         <p>Requests for the same thing are merged and counted; the list shows the dataset or title, the \
         fields, the count and the agency's answer, never your reason or contact.</p>\
         <p><button type=\"submit\">Ask</button></p></form>\
         <p><a href=\"/catalog\">Catalog</a> · <a href=\"/demands\">Demand list</a></p>",
    )
}

/// `forbidden` unless `scope` covers the entry: its catalog entry's agency; an entry naming no
/// catalog entry is for city-wide administrators.
async fn require(scope: &Scope, store: &Store, id: &str, dataset: Option<&str>) -> Result<(), Problem> {
    match dataset {
        Some(d) => scope.require_dataset(store, d).await,
        None => scope.require(None, &format!("demand {id}")),
    }
}

/// `/admin/demands…`: list (`?status=`, with every request's why and contact), show, and
/// answer (an admin change, `demand.answer`; answering again replaces the answer). An agency's
/// administrator sees the entries about its agency's datasets only.
#[allow(clippy::too_many_arguments)]
pub async fn admin(
    store: &Store,
    admin: &str,
    scope: &Scope,
    segs: &[&str],
    method: &Method,
    query: Option<&str>,
    req: Request<ApiBody>,
) -> Reply {
    match (segs, method) {
        (["admin", "demands"], &Method::GET) => {
            let status = match query_str(query, "status") {
                None => None,
                Some(s) => Some(Status::parse(s).ok_or_else(|| {
                    Problem::new(P::BadRequest, "status must be open, planned, opened or refused")
                })?),
            };
            let mut list = store.demands(status, true).await?;
            if *scope != Scope::City {
                let owners: std::collections::HashMap<String, Option<String>> = store
                    .datasets()
                    .await?
                    .into_iter()
                    .map(|d| (d.spec.id, d.agency))
                    .collect();
                list.retain(|d| {
                    d.dataset
                        .as_ref()
                        .is_some_and(|ds| scope.covers(owners.get(ds).and_then(Option::as_deref)))
                });
            }
            Ok(json_response(StatusCode::OK, &list, None))
        }
        (["admin", "demands", id], &Method::GET) => {
            let rec = store.demand(id, true).await?;
            require(scope, store, id, rec.dataset.as_deref()).await?;
            Ok(json_response(StatusCode::OK, &rec, None))
        }
        (["admin", "demands", id, "answer"], &Method::POST) => {
            let b: NewAnswer = body(req).await?;
            let today = time::OffsetDateTime::now_utc().date();
            let today = format!(
                "{:04}-{:02}-{:02}",
                today.year(),
                u8::from(today.month()),
                today.day()
            );
            b.check(&today).map_err(|m| Problem::new(P::Invalid, m))?;
            if *scope != Scope::City {
                let dataset = store.demand(id, false).await?.dataset;
                require(scope, store, id, dataset.as_deref()).await?;
            }
            let logged = b.logged();
            let ch = Change {
                admin,
                action: Action::DemandAnswer,
                target: id,
                reason: &logged,
            };
            let (rec, rev) = store.answer_demand(id, &b, &ch).await?;
            tracing::info!(demand = %id, status = rec.status.as_str(), "demand answered");
            Ok(json_response(StatusCode::OK, &rec, Some(rev.revision)))
        }
        _ => Err(super::routes::not_routed(method, segs)),
    }
}

//! The registry's other parties of record: agencies (the data owners), the gateways they run,
//! and scenarios (declared purposes) that licences are granted for.
//!
//! Only registered, unretired gateways receive snapshots; a grant must name a registered
//! scenario, and a scenario that lists datasets only covers those.
//!
//! This module holds the admin routes and the grant-time scenario check; the records are in
//! [`crate::model`], their tables and queries in the store (`store/parties.rs`).

use super::action::Action;
use super::model::{NewAgency, NewGateway, NewScenario, ReasonBody};
use super::problem::{Problem, ProblemCode as P};
use super::request::ApiBody;
use super::request::{body, json_response, need_reason, valid_id};
use super::snapshot::Distributor;
use super::store::{Change, Store};
use http::{Method, Request, Response, StatusCode};

/// Checks that a grant's scenario is registered and covers its dataset.
pub async fn check_scenario(store: &Store, scenario: &str, dataset: &str) -> Result<(), Problem> {
    match store.scenario(scenario).await? {
        None => Err(Problem::new(
            P::Invalid,
            format!("scenario {scenario} is not registered (sluice admin scenario add)"),
        )),
        Some(s) if !s.datasets.is_empty() && !s.datasets.iter().any(|d| d == dataset) => Err(Problem::new(
            P::Invalid,
            format!(
                "scenario {scenario} covers {}, not {dataset}",
                s.datasets.join(", ")
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Longest gateway URL, in characters (`maxLength` in `openapi.json`; longer is `bad-request`).
pub const MAX_URL_CHARS: usize = 2048;

/// Checks a gateway's data listener URL: `https://host[:port][/base]`, without credentials,
/// query or fragment (`invalid` otherwise), at most [`MAX_URL_CHARS`] characters.
pub fn check_gateway_url(url: &str) -> Result<(), Problem> {
    if url.chars().count() > MAX_URL_CHARS {
        return Err(Problem::new(
            P::BadRequest,
            format!("url must be at most {MAX_URL_CHARS} characters"),
        ));
    }
    let bad = |why: &str| Problem::new(P::Invalid, format!("url {url:?}: {why}"));
    if !url.starts_with("https://") {
        return Err(bad("must start with https://"));
    }
    let u = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(())
}

fn not_empty(what: &str, v: &str) -> Result<(), Problem> {
    if v.trim().is_empty() {
        return Err(Problem::new(P::Invalid, format!("{what} must not be empty")));
    }
    Ok(())
}

/// `/admin/agencies`, `/admin/gateways[/<id>/retire]`, `/admin/gateways/health`
/// ([`crate::gateway_health`]), `/admin/scenarios`.
pub async fn admin(
    store: &Store,
    dist: &Distributor,
    admin: &str,
    segs: &[&str],
    method: &Method,
    req: Request<ApiBody>,
) -> Result<Response<sluice_net::body::RespBody>, Problem> {
    let (get, post) = (method == Method::GET, method == Method::POST);
    match segs {
        ["admin", "agencies"] if get => Ok(json_response(StatusCode::OK, &store.agencies().await?, None)),
        ["admin", "agencies"] if post => {
            let b: NewAgency = body(req).await?;
            valid_id(&b.id)?;
            not_empty("name", &b.name)?;
            if let Some(d) = b.review_days {
                if !(1..=crate::application::MAX_REVIEW_DAYS).contains(&d) {
                    return Err(Problem::new(
                        P::Invalid,
                        format!(
                            "review_days must be from 1 to {} working days",
                            crate::application::MAX_REVIEW_DAYS
                        ),
                    ));
                }
            }
            let ch = Change {
                admin,
                action: Action::AgencyAdd,
                target: &b.id,
                reason: &b.reason,
            };
            let (rec, rev) = store.add_agency(&b, &ch).await?;
            dist.advance(rev.revision);
            Ok(json_response(StatusCode::CREATED, &rec, Some(rev.revision)))
        }
        ["admin", "gateways"] if get => Ok(json_response(StatusCode::OK, &store.gateways().await?, None)),
        ["admin", "gateways", "health"] if get => super::gateway_health::get(store, dist.current()).await,
        ["admin", "gateways"] if post => {
            let b: NewGateway = body(req).await?;
            valid_id(&b.id)?;
            if let Some(url) = &b.url {
                check_gateway_url(url)?;
            }
            let ch = Change {
                admin,
                action: Action::GatewayAdd,
                target: &b.id,
                reason: &b.reason,
            };
            let (rec, rev) = store.add_gateway(&b, &ch).await?;
            dist.advance(rev.revision);
            Ok(json_response(StatusCode::CREATED, &rec, Some(rev.revision)))
        }
        ["admin", "gateways", id, "retire"] if post => {
            let b: ReasonBody = body(req).await?;
            need_reason(&b.reason)?;
            let ch = Change {
                admin,
                action: Action::GatewayRetire,
                target: id,
                reason: &b.reason,
            };
            let rev = store.retire_gateway(id, &ch).await?;
            dist.advance(rev.revision);
            let v = serde_json::json!({ "gateway": id, "retired": true });
            Ok(json_response(StatusCode::OK, &v, Some(rev.revision)))
        }
        ["admin", "scenarios"] if get => Ok(json_response(StatusCode::OK, &store.scenarios().await?, None)),
        ["admin", "scenarios"] if post => {
            let b: NewScenario = body(req).await?;
            valid_id(&b.id)?;
            not_empty("title", &b.title)?;
            let ch = Change {
                admin,
                action: Action::ScenarioAdd,
                target: &b.id,
                reason: &b.reason,
            };
            let (rec, rev) = store.add_scenario(&b, &ch).await?;
            dist.advance(rev.revision);
            Ok(json_response(StatusCode::CREATED, &rec, Some(rev.revision)))
        }
        _ => Err(super::routes::not_routed(method, segs)),
    }
}

//! The registry's HTTP routes: admin API (admin certificates), snapshot distribution (gateway
//! or admin certificates) and public pages (no certificate). See `openapi.json`.

use super::action::Action;
use super::fusion::NewFusionRule;
use super::grant::build_licence;
use super::model::{NewDataset, NewLicensee, NewViolation, ReasonBody, RevokeSerial};
use super::objection_api;
use super::problem::{Problem, ProblemCode as P};
use super::public;
use super::request::{body, json_response, need_reason, query_str, valid_dataset, valid_id, ApiBody};
use super::scope::Scope;
use super::snapshot::Distributor;
use super::store::{Change, Store, StoreError};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use sluice_net::body::{full, RespBody};
use sluice_net::identity::{Peer, PeerIdentity};
use sluice_net::server::Conn;
use sluice_policy::licence::LicenceStatus;
use std::sync::Arc;
use std::time::Duration;

/// The OpenAPI 3 document of these routes.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Longest long-poll wait in seconds; a longer `wait` is refused (`bad-request`).
pub const MAX_WAIT_SECS: u64 = 30;

/// What every request handler shares.
pub struct Api {
    /// The store.
    pub store: Store,
    /// Snapshot signer and revision feed.
    pub dist: Arc<Distributor>,
    /// The per-address rate of public objection filings.
    pub filings: super::objection_api::Filings,
    /// The per-address rate of public demand filings (a limiter of its own).
    pub demand_filings: super::objection_api::Filings,
}

type Reply = Result<Response<RespBody>, Problem>;

fn query_u64(query: Option<&str>, name: &str) -> Result<Option<u64>, Problem> {
    for pair in query.unwrap_or("").split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            if k == name {
                return v.parse().map(Some).map_err(|_| {
                    Problem::new(P::BadRequest, format!("query parameter {name} must be a number"))
                });
            }
        }
    }
    Ok(None)
}

impl Api {
    /// Handles one request.
    pub async fn handle(self: Arc<Self>, conn: Arc<Conn>, req: Request<Incoming>) -> Response<RespBody> {
        let path = req.uri().path().to_owned();
        let req = req.map(http_body_util::BodyExt::boxed);
        match self.route(&conn, req).await {
            Ok(r) => r,
            Err(p) => p.into_response(&path, None),
        }
    }

    async fn route(&self, conn: &Conn, req: Request<ApiBody>) -> Reply {
        let caller = &conn.identity;
        let path = req.uri().path().to_owned();
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let get = req.method() == Method::GET;
        match segs.as_slice() {
            ["openapi.json"] if get => {
                let mut r = Response::new(full(OPENAPI));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok(r)
            }
            ["catalog"] if get => public::catalog(&self.store, &req).await,
            ["catalog", id, "history"] if get => {
                super::catalog_history_api::history(&self.store, id, &req).await
            }
            ["violations"] if get => public::violations(&self.store, &req).await,
            ["objections"] if get => objection_api::register(&self.store, &req).await,
            ["objections", "new"] if get => Ok(objection_api::form()),
            ["v1", "objections"] if req.method() == Method::POST => {
                objection_api::file(&self.store, &self.filings, conn.peer.ip(), req).await
            }
            ["v1", "objections", id] if get => objection_api::status(&self.store, id, &req).await,
            ["v1", "agreements", dataset] if get => {
                super::application_api::agreement(&self.store, dataset).await
            }
            ["v1", "applications", ..] => {
                super::application_api::licensee(&self.store, caller, &segs, req).await
            }
            ["demands"] if get => super::demand_api::list(&self.store, &req).await,
            ["demands", "new"] if get => Ok(super::demand_api::form()),
            ["v1", "demands"] if req.method() == Method::POST => {
                super::demand_api::file(&self.store, &self.demand_filings, conn.peer.ip(), req).await
            }
            ["v1", "demands", id] if get => super::demand_api::status(&self.store, id, &req).await,
            ["v1", "registry-key"] if get => Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "algorithm": "ed25519",
                    "key_id": self.dist.key_id(),
                    "public_key": self.dist.public_key_b64(),
                }),
                None,
            )),
            ["v1", "snapshot"] if get => {
                match caller {
                    PeerIdentity::Admin(_) => {}
                    PeerIdentity::Gateway(Peer { id, .. }) => {
                        if !self.store.gateway_active(id).await? {
                            return Err(Problem::new(
                                P::UnknownGateway,
                                format!("gateway {id} is not registered or is retired"),
                            ));
                        }
                    }
                    PeerIdentity::None => {
                        return Err(Problem::new(
                            P::Unauthenticated,
                            "snapshots need a gateway certificate",
                        ))
                    }
                    other => {
                        return Err(Problem::new(
                            P::Forbidden,
                            format!("snapshots are for gateways; the caller is {}", other.describe()),
                        ))
                    }
                }
                let reply = self.snapshot(req.uri().query()).await;
                if let (PeerIdentity::Gateway(peer), Ok(r)) = (caller, &reply) {
                    // The revision answered: the one sent, or (304) the current one it holds.
                    let rev = r
                        .headers()
                        .get("sluice-revision")
                        .and_then(|v| v.to_str().ok()?.parse().ok());
                    if let Some(rev) = rev {
                        self.dist.record_contact(peer, rev).await;
                    }
                }
                reply
            }
            ["console", ..] => {
                let admin = admin_id(caller)?;
                super::console::handle(self, &admin, req).await
            }
            ["admin", ..] => {
                let admin = admin_id(caller)?;
                self.admin(&admin, req).await
            }
            ["metrics"] if get => {
                admin_id(caller)?;
                super::metrics::get(&self.store, &self.dist).await
            }
            ["reports", "usage"] if get => {
                admin_id(caller)?;
                super::report::get(&self.store, &req).await
            }
            ["v1", "usage"] if req.method() == Method::POST => {
                super::usage::post(&self.store, caller, req).await
            }
            ["v1", "risk-alerts"] if req.method() == Method::POST => {
                super::risk_api::post_alert(&self.store, &self.dist, caller, req).await
            }
            _ => Err(super::routes::not_routed(req.method(), &segs)),
        }
    }

    /// `GET /v1/snapshot[?after=R&wait=S&delta=1]`. A poll waits on the revision this process
    /// knows and reads nothing while it waits; with `delta=1` a newer revision comes as a
    /// signed delta from `after` when one can be made, else (and without `after`) as the whole
    /// snapshot.
    async fn snapshot(&self, query: Option<&str>) -> Reply {
        let after = query_u64(query, "after")?;
        let wait = query_u64(query, "wait")?.unwrap_or(0);
        if wait > MAX_WAIT_SECS {
            return Err(Problem::new(
                P::BadRequest,
                format!("query parameter wait must be at most {MAX_WAIT_SECS} (seconds)"),
            ));
        }
        let delta = match query_u64(query, "delta")? {
            None | Some(0) => false,
            Some(1) => true,
            Some(_) => {
                return Err(Problem::new(
                    P::BadRequest,
                    "query parameter delta must be 0 or 1",
                ))
            }
        };
        if let Some(after) = after {
            if self.dist.current() <= after
                && (wait == 0 || !self.dist.wait_after(after, Duration::from_secs(wait)).await)
            {
                let mut r = Response::new(full(Bytes::new()));
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                r.headers_mut()
                    .insert("sluice-revision", HeaderValue::from(self.dist.current()));
                return Ok(r);
            }
            if delta {
                if let Some((rev, bytes)) = self.dist.delta(after).await.map_err(internal)? {
                    let mut r = snapshot_response(rev, bytes);
                    r.headers_mut()
                        .insert("sluice-delta-base", HeaderValue::from(after));
                    return Ok(r);
                }
            }
        }
        let (rev, bytes) = self.dist.signed().await.map_err(internal)?;
        Ok(snapshot_response(rev, bytes))
    }

    /// Calls the admin API as `admin` (the console's only way to read or change anything):
    /// `uri` is a path with its query, `body` the JSON of a change. Answers the response's
    /// JSON (`null` for an empty body) or the refusal.
    pub(crate) async fn call_admin(
        &self,
        admin: &str,
        method: Method,
        uri: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, Problem> {
        use http_body_util::BodyExt;
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(super::request::api_body(bytes))
            .map_err(|e| Problem::new(P::BadRequest, format!("{uri}: {e}")))?;
        let resp = self.admin(admin, req).await?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|_| Problem::new(P::Internal, "the admin API's answer could not be read"))?
            .to_bytes();
        if bytes.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|_| Problem::new(P::Internal, "the admin API's answer is not JSON"))
    }

    async fn admin(&self, admin: &str, req: Request<ApiBody>) -> Reply {
        let path = req.uri().path().to_owned();
        let query = req.uri().query().map(str::to_owned);
        let segs: Vec<String> = path.trim_matches('/').split('/').map(str::to_owned).collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let method = req.method().clone();
        let post = method == Method::POST;
        let get = method == Method::GET;
        let scope = Scope::of(&self.store, admin).await?;
        if !scope.may_attempt(&segs, &method) {
            return Err(scope.city_only(&method, &segs));
        }
        match segs.as_slice() {
            ["admin", "licensees"] if get => Ok(json_response(
                StatusCode::OK,
                &self.store.licensees().await?,
                None,
            )),
            ["admin", "licensees"] if post => {
                let b: NewLicensee = body(req).await?;
                valid_id(&b.id)?;
                super::credit_code::validate(&b.credit_code)
                    .map_err(|e| Problem::new(P::Invalid, e.to_string()))?;
                if b.name.trim().is_empty() {
                    return Err(Problem::new(P::Invalid, "name must not be empty"));
                }
                let rec = super::model::LicenseeRecord {
                    id: b.id.clone(),
                    name: b.name,
                    credit_code: b.credit_code,
                    created_at: String::new(),
                };
                let ch = Change {
                    admin,
                    action: Action::LicenseeAdd,
                    target: &b.id,
                    reason: &b.reason,
                };
                let (rec, rev) = self.store.add_licensee(&rec, &ch).await?;
                self.dist.advance(rev.revision);
                Ok(json_response(StatusCode::CREATED, &rec, Some(rev.revision)))
            }
            ["admin", "licences"] if get => {
                let licensee = query_str(query.as_deref(), "licensee");
                Ok(json_response(
                    StatusCode::OK,
                    &self.store.licences(licensee).await?,
                    None,
                ))
            }
            ["admin", "licences"] if post => {
                let b: super::model::GrantRequest = body(req).await?;
                scope.require_dataset(&self.store, &b.dataset).await?;
                let lic = build_licence(&self.store, b.clone()).await?;
                let ch = Change {
                    admin,
                    action: Action::LicenceGrant,
                    target: &lic.id,
                    reason: &b.reason,
                };
                let rev = self.store.insert_licence(&lic, &ch).await?;
                self.dist.advance(rev.revision);
                Ok(json_response(StatusCode::CREATED, &lic, Some(rev.revision)))
            }
            ["admin", "licences", id] if get => Ok(json_response(
                StatusCode::OK,
                &self.store.licence(id).await?,
                None,
            )),
            ["admin", "licences", id, action] if post => {
                let b: ReasonBody = body(req).await?;
                let (status, name) = match *action {
                    "suspend" => (
                        LicenceStatus::Suspended {
                            reason: b.reason.clone(),
                        },
                        Action::LicenceSuspend,
                    ),
                    "resume" => (LicenceStatus::Active, Action::LicenceResume),
                    "revoke" => (
                        LicenceStatus::Revoked {
                            reason: b.reason.clone(),
                        },
                        Action::LicenceRevoke,
                    ),
                    _ => return Err(Problem::new(P::NotFound, format!("no route {path}"))),
                };
                need_reason(&b.reason)?;
                if scope != Scope::City {
                    let dataset = self.store.licence(id).await?.dataset;
                    scope.require_dataset(&self.store, &dataset).await?;
                }
                let ch = Change {
                    admin,
                    action: name,
                    target: id,
                    reason: &b.reason,
                };
                let (lic, rev) = self.store.set_licence_status(id, status, &ch).await?;
                self.dist.advance(rev.revision);
                Ok(json_response(StatusCode::OK, &lic, Some(rev.revision)))
            }
            ["admin", "violations"] if get => Ok(json_response(
                StatusCode::OK,
                &self.store.violations().await?,
                None,
            )),
            ["admin", "violations"] if post => {
                let b: NewViolation = body(req).await?;
                need_reason(&b.reason)?;
                if b.measure == super::model::Measure::Suspend {
                    return Err(Problem::new(
                        P::Invalid,
                        "measure suspend is recorded by risk alerts; suspend a licence with POST /admin/licences/<id>/suspend",
                    ));
                }
                if !self.store.licensee_exists(&b.licensee).await? {
                    return Err(Problem::new(
                        P::Invalid,
                        format!("unknown licensee {}", b.licensee),
                    ));
                }
                let ch = Change {
                    admin,
                    action: Action::ViolationRecord,
                    target: &b.licensee,
                    reason: &b.reason,
                };
                let (v, rev) = self
                    .store
                    .add_violation(&b.licensee, &b.what, b.measure, &ch)
                    .await?;
                self.dist.advance(rev.revision);
                Ok(json_response(StatusCode::CREATED, &v, Some(rev.revision)))
            }
            ["admin", "violations", id, "lift"] if post => {
                let b: ReasonBody = body(req).await?;
                need_reason(&b.reason)?;
                let ch = Change {
                    admin,
                    action: Action::ViolationLift,
                    target: id,
                    reason: &b.reason,
                };
                let (v, rev) = self.store.lift_violation(id, &ch).await?;
                self.dist.advance(rev.revision);
                Ok(json_response(StatusCode::OK, &v, Some(rev.revision)))
            }
            ["admin", "fusion-rules"] if get => Ok(json_response(
                StatusCode::OK,
                &self.store.fusion_rules().await?,
                None,
            )),
            ["admin", "fusion-rules"] if post => {
                let b: NewFusionRule = body(req).await?;
                need_reason(&b.reason)?;
                let reason = b.reason.clone();
                let rule = super::fusion_admin::validate(&self.store, b).await?;
                let ch = Change {
                    admin,
                    action: Action::FusionRuleAdd,
                    target: &rule.id,
                    reason: &reason,
                };
                let rev = self.store.add_fusion_rule(&rule, &ch).await?;
                self.dist.advance(rev.revision);
                Ok(json_response(StatusCode::CREATED, &rule, Some(rev.revision)))
            }
            ["admin", "fusion-rules", id] if method == Method::DELETE => {
                let b: ReasonBody = body(req).await?;
                need_reason(&b.reason)?;
                let ch = Change {
                    admin,
                    action: Action::FusionRuleRemove,
                    target: id,
                    reason: &b.reason,
                };
                let rev = self.store.remove_fusion_rule(id, &ch).await?;
                self.dist.advance(rev.revision);
                Ok(json_response(
                    StatusCode::OK,
                    &serde_json::json!({ "removed": id }),
                    Some(rev.revision),
                ))
            }
            ["admin", "usage"] if get => super::usage::report(&self.store, query.as_deref()).await,
            ["admin", "datasets"] if get => {
                Ok(json_response(StatusCode::OK, &self.store.datasets().await?, None))
            }
            ["admin", "datasets"] if post => {
                let b: NewDataset = body(req).await?;
                valid_dataset(&b.dataset)?;
                // An agency's administrator registers its own agency's entries only.
                let agency = match &scope {
                    Scope::City => b.agency.clone(),
                    Scope::Agency(a) => {
                        scope.require(b.agency.as_deref().or(Some(a)), "the entry")?;
                        match self.store.dataset_agency(&b.dataset.id).await {
                            Ok(owner) => {
                                scope.require(owner.as_deref(), &format!("dataset {}", b.dataset.id))?
                            }
                            Err(StoreError::NotFound(_)) => {}
                            Err(e) => return Err(e.into()),
                        }
                        Some(a.clone())
                    }
                };
                let ch = Change {
                    admin,
                    action: Action::DatasetRegister,
                    target: &b.dataset.id,
                    reason: &b.reason,
                };
                let (d, rev) = self.store.put_dataset(&b.dataset, agency.as_deref(), &ch).await?;
                self.dist.advance(rev.revision);
                Ok(json_response(StatusCode::CREATED, &d, Some(rev.revision)))
            }
            ["admin", "datasets", which @ ("close-all" | "open-all")] if post => {
                let b: ReasonBody = body(req).await?;
                need_reason(&b.reason)?;
                let close = *which == "close-all";
                let action = if close {
                    Action::DatasetCloseAll
                } else {
                    Action::DatasetOpenAll
                };
                let ch = Change {
                    admin,
                    action,
                    target: "*",
                    reason: &b.reason,
                };
                let rev = self.store.set_all_closed(close, &ch).await?;
                self.dist.advance(rev.revision);
                let v = serde_json::json!({ "all_conditional_closed": close });
                Ok(json_response(StatusCode::OK, &v, Some(rev.revision)))
            }
            ["admin", "datasets", id, which @ ("close" | "open")] if post => {
                let b: ReasonBody = body(req).await?;
                need_reason(&b.reason)?;
                scope.require_dataset(&self.store, id).await?;
                let close = *which == "close";
                let action = if close {
                    Action::DatasetClose
                } else {
                    Action::DatasetOpen
                };
                let ch = Change {
                    admin,
                    action,
                    target: id,
                    reason: &b.reason,
                };
                let rev = self.store.set_dataset_closed(id, close, &ch).await?;
                self.dist.advance(rev.revision);
                let v = serde_json::json!({ "dataset": id, "closed": close });
                Ok(json_response(StatusCode::OK, &v, Some(rev.revision)))
            }
            ["admin", "datasets", id, "evaluation"] if post => {
                super::catalog_history_api::evaluate(&self.store, &self.dist, admin, &scope, id, req).await
            }
            ["admin", "certs", "revoke"] if post => {
                let b: RevokeSerial = body(req).await?;
                need_reason(&b.reason)?;
                let serial: String = b
                    .serial
                    .chars()
                    .filter(|c| *c != ':')
                    .collect::<String>()
                    .to_lowercase();
                if serial.is_empty() || !serial.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(Problem::new(P::Invalid, "serial must be hexadecimal"));
                }
                let ch = Change {
                    admin,
                    action: Action::CertRevoke,
                    target: &serial,
                    reason: &b.reason,
                };
                let rev = self.store.revoke_serial(&serial, &ch).await?;
                self.dist.advance(rev.revision);
                Ok(json_response(
                    StatusCode::CREATED,
                    &serde_json::json!({ "serial": serial }),
                    Some(rev.revision),
                ))
            }
            ["admin", "admins", ..] => {
                super::scope::admin(&self.store, admin, &scope, &segs, &method, req).await
            }
            ["admin", "agreements"] if post => {
                super::application_api::publish(&self.store, admin, &scope, req).await
            }
            ["admin", "applications", ..] => {
                super::application_api::admin(
                    &self.store,
                    &self.dist,
                    admin,
                    &scope,
                    &segs,
                    query.as_deref(),
                    req,
                )
                .await
            }
            ["admin", "objections", ..] => {
                objection_api::admin(
                    &self.store,
                    &self.dist,
                    admin,
                    &scope,
                    &segs,
                    &method,
                    query.as_deref(),
                    req,
                )
                .await
            }
            ["admin", "demands", ..] => {
                super::demand_api::admin(&self.store, admin, &scope, &segs, &method, query.as_deref(), req)
                    .await
            }
            ["admin", "agencies" | "gateways" | "scenarios", ..] => {
                super::parties::admin(&self.store, &self.dist, admin, &segs, &method, req).await
            }
            ["admin", "risk", ..] => {
                super::risk_api::admin(&self.store, &self.dist, admin, &segs, &method, req).await
            }
            ["admin", "drills"] => super::drill::admin(&self.store, &self.dist, admin, &method, req).await,
            ["admin", "changes"] if get => {
                Ok(json_response(StatusCode::OK, &self.store.changes().await?, None))
            }
            _ => Err(super::routes::not_routed(&method, &segs)),
        }
    }
}

/// The admin id of an admin certificate; `unauthenticated` without a certificate, `forbidden`
/// for any other. Every admin route (`/admin/…`, `/reports/…`) checks its caller with it.
pub(crate) fn admin_id(caller: &PeerIdentity) -> Result<String, Problem> {
    match caller {
        PeerIdentity::Admin(a) => Ok(a.id.clone()),
        PeerIdentity::None => Err(Problem::new(
            P::Unauthenticated,
            "admin routes need an admin certificate",
        )),
        other => Err(Problem::new(
            P::Forbidden,
            format!(
                "admin routes need an admin certificate; the caller is {}",
                other.describe()
            ),
        )),
    }
}

/// A signed snapshot or delta at `rev`.
fn snapshot_response(rev: u64, bytes: Bytes) -> Response<RespBody> {
    let mut r = Response::new(full(bytes));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("sluice-revision", HeaderValue::from(rev));
    r
}

fn internal(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "registry snapshot failed");
    Problem::new(P::Internal, "the registry could not produce a snapshot")
}

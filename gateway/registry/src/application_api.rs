//! The application routes. Licensees (their certificates) read a dataset's data-use agreement
//! (`GET /v1/agreements/<dataset>`, public), apply (`POST /v1/applications`), follow their own
//! applications (`GET /v1/applications[/<id>]`) and answer the agency's questions
//! (`POST /v1/applications/<id>/answer`). The owning agency's administrators publish
//! agreements (`POST /admin/agreements`) and review (`/admin/applications…`: list, show with
//! the renewed licence's record, `approve`, `reject`, `ask`). See [`crate::application`].

use super::action::Action;
use super::application::{
    add_working_days, format_day, text_problem, Acceptance, ApplicationRecord, Message, NewAgreement,
    NewApplication, Status, MAX_AGREEMENT_CHARS, MAX_OPEN_PER_LICENSEE, MAX_TEXT_CHARS,
};
use super::grant::build_licence;
use super::model::{GrantRequest, ReasonBody};
use super::problem::{Problem, ProblemCode as P};
use super::request::ApiBody;
use super::request::{body, created_at, json_response, need_reason, query_str, valid_id};
use super::scope::Scope;
use super::store::{now, Change, Store, StoreError};
use http::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use sluice_net::body::RespBody;
use sluice_net::identity::{Peer, PeerIdentity};
use sluice_policy::classify::{OpenCategory, RuleTable};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

type Reply = Result<Response<RespBody>, Problem>;

/// `POST /v1/applications/<id>/answer`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    text: String,
}

/// An application as administrators list it: the record and whether it is overdue today.
#[derive(Debug, Serialize)]
pub struct Reviewed {
    /// The application.
    #[serde(flatten)]
    pub application: ApplicationRecord,
    /// Open past its deadline.
    pub overdue: bool,
}

/// What a reviewer sees beside a renewal: the renewed licence's use and record since it began.
#[derive(Debug, Serialize)]
pub struct RenewalContext {
    /// The licence renewed.
    pub licence: sluice_policy::licence::Licence,
    /// Requests, records and refusals under it, from the gateways' usage reports.
    pub requests: u64,
    /// Records delivered under it.
    pub records: u64,
    /// Refused requests under it.
    pub refusals: u64,
    /// Violations recorded against the licensee since the licence began.
    pub violations: Vec<super::model::ViolationRecord>,
    /// Objections filed against the dataset since the licence began (without the filers'
    /// personal data).
    pub objections: u64,
}

fn today() -> time::Date {
    OffsetDateTime::now_utc().date()
}

fn licensee_of(caller: &PeerIdentity) -> Result<&str, Problem> {
    match caller {
        PeerIdentity::Licensee(Peer { id, .. }) => Ok(id),
        PeerIdentity::None => Err(Problem::new(
            P::Unauthenticated,
            "applications need a licensee certificate",
        )),
        other => Err(Problem::new(
            P::Forbidden,
            format!(
                "applications are filed by licensees; the caller is {}",
                other.describe()
            ),
        )),
    }
}

fn invalid(msg: impl Into<String>) -> Problem {
    Problem::new(P::Invalid, msg)
}

/// `GET /v1/agreements/<dataset>`: the current version of the dataset's agreement.
pub async fn agreement(store: &Store, dataset: &str) -> Reply {
    match store.agreement(dataset).await? {
        Some(a) => Ok(json_response(StatusCode::OK, &a, None)),
        None => Err(Problem::new(
            P::NotFound,
            format!("dataset {dataset} has no data-use agreement"),
        )),
    }
}

/// `/v1/applications…` for a licensee's certificate.
pub async fn licensee(store: &Store, caller: &PeerIdentity, segs: &[&str], req: Request<ApiBody>) -> Reply {
    let method = req.method().clone();
    let routed = matches!(
        (segs, &method),
        (["v1", "applications"], &Method::GET | &Method::POST)
            | (["v1", "applications", _], &Method::GET)
            | (["v1", "applications", _, "answer"], &Method::POST)
    );
    if !routed {
        return Err(super::routes::not_routed(&method, segs));
    }
    let licensee = licensee_of(caller)?.to_owned();
    match (segs, &method) {
        (["v1", "applications"], &Method::POST) => file(store, &licensee, req).await,
        (["v1", "applications"], &Method::GET) => {
            let own: Vec<ApplicationRecord> = store
                .applications(Some(&licensee), None)
                .await?
                .iter()
                .map(ApplicationRecord::for_applicant)
                .collect();
            Ok(json_response(StatusCode::OK, &own, None))
        }
        (["v1", "applications", id], &Method::GET) => {
            let a = own(store, &licensee, id).await?;
            Ok(json_response(StatusCode::OK, &a.for_applicant(), None))
        }
        (["v1", "applications", id, "answer"], &Method::POST) => {
            let b: Answer = body(req).await?;
            if let Some(p) = text_problem("text", &b.text, MAX_TEXT_CHARS) {
                return Err(invalid(p));
            }
            let a = own(store, &licensee, id).await?;
            if a.status != Status::MoreInfo {
                return Err(Problem::new(
                    P::Conflict,
                    format!(
                        "application {id} is {}, not waiting for an answer",
                        a.status.as_str()
                    ),
                ));
            }
            let days = store.review_days(a.agency.as_deref()).await?;
            let (rec, _) = store
                .update_application(id, None, |a| {
                    if a.status != Status::MoreInfo {
                        return;
                    }
                    a.status = Status::Open;
                    a.due_by = Some(format_day(add_working_days(today(), days)));
                    a.messages.push(Message {
                        at: now(),
                        from: "applicant".into(),
                        text: b.text.clone(),
                    });
                })
                .await?;
            Ok(json_response(StatusCode::OK, &rec.for_applicant(), None))
        }
        _ => Err(super::routes::not_routed(&method, segs)),
    }
}

/// The licensee's own application; another's is `not-found`, as if it did not exist.
async fn own(store: &Store, licensee: &str, id: &str) -> Result<ApplicationRecord, Problem> {
    match store.application(id).await {
        Ok(a) if a.licensee == licensee => Ok(a),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(Problem::new(P::NotFound, format!("application {id}"))),
        Err(e) => Err(e.into()),
    }
}

async fn file(store: &Store, licensee: &str, req: Request<ApiBody>) -> Reply {
    let b: NewApplication = body(req).await?;
    let now_t = OffsetDateTime::now_utc();
    if let Some(p) = b.problem(now_t) {
        return Err(invalid(p));
    }
    if !store.licensee_exists(licensee).await? {
        return Err(Problem::new(
            P::Forbidden,
            format!("{licensee} is not a registered licensee"),
        ));
    }
    let dataset = match store.dataset(&b.dataset).await {
        Ok(d) => d,
        Err(StoreError::NotFound(_)) => return Err(invalid(format!("unknown dataset {}", b.dataset))),
        Err(e) => return Err(e.into()),
    };
    match dataset.open_category {
        OpenCategory::Conditional => {}
        OpenCategory::Unconditional => {
            return Err(invalid(format!(
                "dataset {} is open to everyone without a licence",
                b.dataset
            )))
        }
        OpenCategory::NonOpen => return Err(invalid(format!("dataset {} is not open", b.dataset))),
    }
    let rules = RuleTable::default();
    for f in &b.fields {
        let spec = dataset
            .spec
            .field(f)
            .ok_or_else(|| invalid(format!("dataset {} has no field {f}", b.dataset)))?;
        if rules.category(&spec.grades) == OpenCategory::NonOpen {
            return Err(invalid(format!("field {f} is non-open and cannot be licensed")));
        }
    }
    super::parties::check_scenario(store, &b.scenario, &b.dataset).await?;
    let current = store.agreement(&b.dataset).await?.ok_or_else(|| {
        invalid(format!(
            "dataset {} has no data-use agreement yet; its agency publishes one first",
            b.dataset
        ))
    })?;
    if (current.version, current.digest.as_str()) != (b.agreement.version, b.agreement.digest.as_str()) {
        return Err(Problem::new(
            P::Conflict,
            format!(
                "the agreement of {} is at version {} (digest {}); read it at /v1/agreements/{} and accept that one",
                b.dataset, current.version, current.digest, b.dataset
            ),
        ));
    }
    if let Some(l) = &b.renews {
        let renewed = match store.licence(l).await {
            Ok(lic) => lic,
            Err(StoreError::NotFound(_)) => return Err(invalid(format!("unknown licence {l}"))),
            Err(e) => return Err(e.into()),
        };
        if renewed.licensee != licensee || renewed.dataset != b.dataset {
            return Err(invalid(format!(
                "licence {l} is not {licensee}'s licence for {}",
                b.dataset
            )));
        }
    }
    let days = store.review_days(dataset.agency.as_deref()).await?;
    let at = now();
    let rfc = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let rec = ApplicationRecord {
        id: format!("app-{}", uuid::Uuid::new_v4().simple()),
        licensee: licensee.to_owned(),
        dataset: b.dataset.clone(),
        agency: dataset.agency.clone(),
        scenario: b.scenario,
        purpose: b.purpose,
        fields: b.fields,
        valid_from: b.valid_from.map(rfc),
        valid_until: rfc(b.valid_until),
        volume: b.volume,
        renews: b.renews,
        agreement: Acceptance {
            licensee: licensee.to_owned(),
            version: current.version,
            digest: current.digest,
            accepted_at: at.clone(),
        },
        status: Status::Open,
        filed_at: at,
        due_by: Some(format_day(add_working_days(now_t.date(), days))),
        decided_at: None,
        decided_by: None,
        decision_reason: None,
        licence: None,
        messages: Vec::new(),
    };
    store.file_application(&rec, MAX_OPEN_PER_LICENSEE).await?;
    tracing::info!(application = %rec.id, licensee, dataset = %rec.dataset, "application filed");
    let location = format!("/v1/applications/{}", rec.id);
    Ok(created_at(
        json_response(StatusCode::CREATED, &rec.for_applicant(), None),
        &location,
    ))
}

/// `POST /admin/agreements`: the next version of a dataset's agreement (`201`).
pub async fn publish(store: &Store, admin: &str, scope: &Scope, req: Request<ApiBody>) -> Reply {
    let b: NewAgreement = body(req).await?;
    need_reason(&b.reason)?;
    if let Some(p) = text_problem("text", &b.text, MAX_AGREEMENT_CHARS) {
        return Err(invalid(p));
    }
    scope.require_dataset(store, &b.dataset).await?;
    let ch = Change {
        admin,
        action: Action::AgreementPublish,
        target: &b.dataset,
        reason: &b.reason,
    };
    let (a, rev) = store.publish_agreement(&b.dataset, &b.text, &ch).await?;
    Ok(json_response(StatusCode::CREATED, &a, Some(rev.revision)))
}

/// `/admin/applications…`: list (`?status=`, `?overdue=1`, `?on=YYYY-MM-DD` to judge deadlines
/// as of that day), show, `approve`, `reject`, `ask`.
pub async fn admin(
    store: &Store,
    dist: &super::snapshot::Distributor,
    admin: &str,
    scope: &Scope,
    segs: &[&str],
    query: Option<&str>,
    req: Request<ApiBody>,
) -> Reply {
    let method = req.method().clone();
    match (segs, &method) {
        (["admin", "applications"], &Method::GET) => {
            let status = match query_str(query, "status") {
                None => None,
                Some(s) => Some(Status::parse(s).ok_or_else(|| {
                    Problem::new(
                        P::BadRequest,
                        "status must be open, more-info, approved or rejected",
                    )
                })?),
            };
            let only_overdue = match query_str(query, "overdue") {
                None | Some("0") => false,
                Some("1") => true,
                Some(_) => return Err(Problem::new(P::BadRequest, "overdue must be 0 or 1")),
            };
            // `on`: judge the deadlines as of another day (what will be overdue by then).
            let day = match query_str(query, "on") {
                None => today(),
                Some(d) => super::application::parse_day(d)
                    .ok_or_else(|| Problem::new(P::BadRequest, "on must be a day, YYYY-MM-DD"))?,
            };
            let list: Vec<Reviewed> = store
                .applications(None, status)
                .await?
                .into_iter()
                .filter(|a| scope.covers(a.agency.as_deref()))
                .map(|a| Reviewed {
                    overdue: a.overdue(day),
                    application: a,
                })
                .filter(|r| !only_overdue || r.overdue)
                .collect();
            Ok(json_response(StatusCode::OK, &list, None))
        }
        (["admin", "applications", id], &Method::GET) => {
            let a = store.application(id).await?;
            scope.require(a.agency.as_deref(), &format!("application {id}"))?;
            let renewal = match &a.renews {
                Some(l) => Some(renewal_context(store, l, &a).await?),
                None => None,
            };
            let overdue = a.overdue(today());
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "application": Reviewed { application: a, overdue }, "renewal": renewal }),
                None,
            ))
        }
        (["admin", "applications", id, verb @ ("reject" | "ask")], &Method::POST) => {
            let b: ReasonBody = body(req).await?;
            need_reason(&b.reason)?;
            let a = store.application(id).await?;
            scope.require(a.agency.as_deref(), &format!("application {id}"))?;
            let reject = *verb == "reject";
            if !reject && a.status != Status::Open {
                return Err(Problem::new(
                    P::Conflict,
                    format!("application {id} is {}, not open", a.status.as_str()),
                ));
            }
            let ch = Change {
                admin,
                action: if reject {
                    Action::ApplicationReject
                } else {
                    Action::ApplicationAsk
                },
                target: id,
                reason: &b.reason,
            };
            let (rec, rev) = store
                .update_application(id, Some(&ch), |a| {
                    a.due_by = None;
                    if reject {
                        a.status = Status::Rejected;
                        a.decided_at = Some(now());
                        a.decided_by = Some(admin.to_owned());
                        a.decision_reason = Some(b.reason.clone());
                    } else {
                        a.status = Status::MoreInfo;
                        a.messages.push(Message {
                            at: now(),
                            from: "agency".into(),
                            text: b.reason.clone(),
                        });
                    }
                })
                .await?;
            Ok(json_response(StatusCode::OK, &rec, rev.map(|r| r.revision)))
        }
        (["admin", "applications", id, "approve"], &Method::POST) => {
            let a = store.application(id).await?;
            scope.require(a.agency.as_deref(), &format!("application {id}"))?;
            let raw: serde_json::Map<String, serde_json::Value> = body(req).await?;
            let grant = approval(&a, raw)?;
            need_reason(&grant.reason)?;
            let reason = grant.reason.clone();
            let lic = build_licence(store, grant).await?;
            let grant_change = Change {
                admin,
                action: Action::LicenceGrant,
                target: &lic.id,
                reason: &format!("application {id}: {reason}"),
            };
            let approve = Change {
                admin,
                action: Action::ApplicationApprove,
                target: id,
                reason: &reason,
            };
            let (rec, rev) = store
                .approve_application(id, &lic, &grant_change, &approve, |a| {
                    a.status = Status::Approved;
                    a.due_by = None;
                    a.decided_at = Some(now());
                    a.decided_by = Some(admin.to_owned());
                    a.decision_reason = Some(reason.clone());
                    a.licence = Some(lic.id.clone());
                })
                .await?;
            dist.advance(rev.revision);
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "application": rec, "licence": lic }),
                Some(rev.revision),
            ))
        }
        _ => Err(super::routes::not_routed(&method, segs)),
    }
}

/// The grant an approval makes: the body's members (those of `POST /admin/licences` but the
/// licensee, dataset and scenario, which are the application's), the period the application
/// asked for unless the body narrows it. The reviewer may grant fewer fields and a shorter
/// period than asked, never more.
fn approval(
    a: &ApplicationRecord,
    mut raw: serde_json::Map<String, serde_json::Value>,
) -> Result<GrantRequest, Problem> {
    for fixed in ["licensee", "dataset", "scenario"] {
        if raw.contains_key(fixed) {
            return Err(invalid(format!("{fixed} is the application's; leave it out")));
        }
    }
    raw.insert("licensee".into(), a.licensee.clone().into());
    raw.insert("dataset".into(), a.dataset.clone().into());
    raw.insert("scenario".into(), a.scenario.clone().into());
    if !raw.contains_key("valid_until") {
        raw.insert("valid_until".into(), a.valid_until.clone().into());
    }
    if let (false, Some(from)) = (raw.contains_key("valid_from"), &a.valid_from) {
        raw.insert("valid_from".into(), from.clone().into());
    }
    let g: GrantRequest = serde_json::from_value(serde_json::Value::Object(raw))
        .map_err(|e| Problem::new(P::BadRequest, format!("approval: {e}")))?;
    if let Some(id) = &g.id {
        valid_id(id)?;
    }
    if let Some(f) = g.fields.keys().find(|f| !a.fields.contains(f)) {
        return Err(invalid(format!("field {f} was not asked for")));
    }
    let parse = |s: &str| OffsetDateTime::parse(s, &Rfc3339).ok();
    if parse(&a.valid_until).is_some_and(|until| g.valid_until > until) {
        return Err(invalid(format!(
            "valid_until is later than the {} asked for",
            a.valid_until
        )));
    }
    if let (Some(asked), Some(from)) = (a.valid_from.as_deref().and_then(parse), g.valid_from) {
        if from < asked {
            return Err(invalid("valid_from is earlier than asked for"));
        }
    }
    Ok(g)
}

async fn renewal_context(
    store: &Store,
    licence: &str,
    a: &ApplicationRecord,
) -> Result<RenewalContext, Problem> {
    let lic = store.licence(licence).await?;
    let since = lic.valid_from.format(&Rfc3339).unwrap_or_default();
    let first_month = since.get(..7).unwrap_or("0000-01").to_owned();
    let last_month = format_day(today()).get(..7).unwrap_or("9999-12").to_owned();
    let data = store.report_data(&first_month, &last_month).await?;
    let (mut requests, mut records, mut refusals) = (0u64, 0u64, 0u64);
    for u in data
        .usage
        .iter()
        .filter(|u| u.licence.as_deref() == Some(licence))
    {
        requests = requests.saturating_add(u.requests);
        records = records.saturating_add(u.records);
        refusals = refusals.saturating_add(u.refusals);
    }
    let violations = store
        .violations()
        .await?
        .into_iter()
        .filter(|v| v.licensee == a.licensee && v.at >= since)
        .collect();
    let objections = store
        .objections(None)
        .await?
        .iter()
        .filter(|o| o.dataset == a.dataset && o.filed_at >= since)
        .count() as u64;
    Ok(RenewalContext {
        licence: lic,
        requests,
        records,
        refusals,
        violations,
        objections,
    })
}

//! The risk routes: administrators declare and remove risk rules (`/admin/risk/rules`) and
//! read the alerts (`/admin/risk/alerts`); registered, active gateways report alerts
//! (`POST /v1/risk-alerts`, see [`crate::risk`]).

use super::action::Action;
use super::model::ReasonBody;
use super::problem::{Problem, ProblemCode as P};
use super::request::ApiBody;
use super::request::{body, json_response, need_reason};
use super::risk::{alert_problem, NewRiskRule};
use super::snapshot::Distributor;
use super::store::{AlertRecorded, Change, Store, StoreError};
use http::{Method, Request, Response, StatusCode};
use sluice_net::body::RespBody;
use sluice_net::identity::PeerIdentity;
use sluice_policy::risk::RiskAlert;

type Reply = Result<Response<RespBody>, Problem>;

/// `/admin/risk/…`: list, declare (`201` with the rule) and remove (`{removed: id}`) rules,
/// each change with a reason; list alerts, newest first.
pub async fn admin(
    store: &Store,
    dist: &Distributor,
    admin: &str,
    segs: &[&str],
    method: &Method,
    req: Request<ApiBody>,
) -> Reply {
    match (segs, method) {
        (["admin", "risk", "rules"], &Method::GET) => {
            Ok(json_response(StatusCode::OK, &store.risk_rules().await?, None))
        }
        (["admin", "risk", "rules"], &Method::POST) => {
            let b: NewRiskRule = body(req).await?;
            need_reason(&b.reason)?;
            if let Some(why) = b.rule.problem() {
                return Err(Problem::new(P::Invalid, format!("risk rule: {why}")));
            }
            if let Some(l) = &b.rule.licence {
                match store.licence(l).await {
                    Ok(_) => {}
                    Err(StoreError::NotFound(_)) => {
                        return Err(Problem::new(P::Invalid, format!("unknown licence {l}")))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let ch = Change {
                admin,
                action: Action::RiskRuleAdd,
                target: &b.rule.id,
                reason: &b.reason,
            };
            let rev = store.add_risk_rule(&b.rule, &ch).await?;
            dist.advance(rev.revision);
            Ok(json_response(StatusCode::CREATED, &b.rule, Some(rev.revision)))
        }
        (["admin", "risk", "rules", id], &Method::DELETE) => {
            let b: ReasonBody = body(req).await?;
            need_reason(&b.reason)?;
            let ch = Change {
                admin,
                action: Action::RiskRuleRemove,
                target: id,
                reason: &b.reason,
            };
            let rev = store.remove_risk_rule(id, &ch).await?;
            dist.advance(rev.revision);
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "removed": id }),
                Some(rev.revision),
            ))
        }
        (["admin", "risk", "alerts"], &Method::GET) => {
            Ok(json_response(StatusCode::OK, &store.risk_alerts().await?, None))
        }
        _ => Err(super::routes::not_routed(method, segs)),
    }
}

/// `POST /v1/risk-alerts` from a registered, active gateway's certificate (the gateway id is
/// the certificate's): `201` with what the registry did and `Sluice-Revision`; a repeat of
/// the gateway's alert id `200` with the stored outcome and the current snapshot revision,
/// nothing changed.
pub async fn post_alert(
    store: &Store,
    dist: &Distributor,
    caller: &PeerIdentity,
    req: Request<ApiBody>,
) -> Reply {
    let gateway = super::usage::gateway_caller(caller, "risk alerts")?;
    if !store.gateway_active(gateway).await? {
        return Err(Problem::new(
            P::UnknownGateway,
            format!("gateway {gateway} is not registered or is retired"),
        ));
    }
    let alert: RiskAlert = body(req).await?;
    if let Some(why) = alert_problem(&alert) {
        return Err(Problem::new(P::Invalid, format!("risk alert: {why}")));
    }
    let (rec, committed) = store.record_risk_alert(gateway, &alert).await?;
    match committed {
        AlertRecorded::Repeat { revision } => Ok(json_response(StatusCode::OK, &rec.outcome, Some(revision))),
        AlertRecorded::New(c) => {
            dist.advance(c.revision);
            tracing::warn!(
                gateway,
                licence = %alert.licence,
                rule = %alert.rule,
                action = alert.action.as_str(),
                suspended = rec.outcome.suspended,
                "risk alert recorded"
            );
            Ok(json_response(StatusCode::CREATED, &rec.outcome, Some(c.revision)))
        }
    }
}

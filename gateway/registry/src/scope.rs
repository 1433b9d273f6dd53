//! Administrators of one agency. The opening rules make the agency that owns data answerable
//! for it: its administrators decide about its datasets (objections, grants, closing), and not
//! about another agency's. An administrator is city-wide unless a city-wide administrator
//! limits it to an agency (`POST /admin/admins`); catalog entries name their owning agency
//! (`agency` in `POST /admin/datasets`).
//!
//! A limited administrator reads what every administrator reads, except the filers' contacts
//! and evidence of objections against other agencies' data; it may change only what its agency
//! owns: register and update that agency's catalog entries, close and reopen them, mark them
//! under evaluation, grant
//! licences to them and suspend, resume or revoke those licences, decide objections
//! against them and answer the public's demands about them (a demand for data the catalog
//! does not list is city-wide). Every other change is city-wide (`forbidden`). A catalog entry that names no
//! agency belongs to the city-wide administrators only.

use super::action::Action;
use super::model::ReasonBody;
use super::problem::{Problem, ProblemCode as P};
use super::request::ApiBody;
use super::request::{body, json_response, need_reason, valid_id};
use super::store::{Change, Store, StoreError};
use http::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use sluice_net::body::RespBody;

/// What an administrator may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    City,
    /// What this agency owns.
    Agency(String),
}

/// An administrator limited to one agency (`GET /admin/admins`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopedAdmin {
    /// The administrator's id, as in its certificate.
    pub id: String,
    /// The agency whose data it administers.
    pub agency: String,
    /// Since when (RFC 3339).
    pub created_at: String,
}

/// `POST /admin/admins`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewScope {
    /// The administrator's id.
    pub id: String,
    /// A registered agency.
    pub agency: String,
    /// Why (recorded, required).
    pub reason: String,
}

impl Scope {
    /// The scope of `admin`, from the store.
    pub async fn of(store: &Store, admin: &str) -> Result<Self, Problem> {
        Ok(match store.admin_scope(admin).await? {
            Some(agency) => Self::Agency(agency),
            None => Self::City,
        })
    }

    /// Whether it may change data owned by `owner` (`None`: owned by no agency).
    pub fn covers(&self, owner: Option<&str>) -> bool {
        match self {
            Self::City => true,
            Self::Agency(a) => owner == Some(a.as_str()),
        }
    }

    /// `forbidden` unless it covers `owner`; `what` names the object in the message.
    pub fn require(&self, owner: Option<&str>, what: &str) -> Result<(), Problem> {
        match self {
            Self::Agency(a) if !self.covers(owner) => Err(Problem::new(
                P::Forbidden,
                format!(
                    "this administrator acts for agency {a}; {what} belongs to {}",
                    owner.map_or_else(
                        || "no agency (city-wide administrators only)".to_owned(),
                        |o| format!("agency {o}")
                    )
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `forbidden` unless it covers the owner of catalog entry `dataset`; an unknown dataset
    /// is owned by nobody.
    pub async fn require_dataset(&self, store: &Store, dataset: &str) -> Result<(), Problem> {
        if *self == Self::City {
            return Ok(());
        }
        let owner = match store.dataset_agency(dataset).await {
            Ok(o) => o,
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        self.require(owner.as_deref(), &format!("dataset {dataset}"))
    }

    /// Whether a limited administrator may send this change at all (each such route then
    /// checks the owner of what it changes); reads are always let through.
    pub fn may_attempt(&self, segs: &[&str], method: &Method) -> bool {
        if *self == Self::City || method == Method::GET {
            return true;
        }
        matches!(
            (segs, method),
            (["admin", "licences"], &Method::POST)
                | (
                    ["admin", "licences", _, "suspend" | "resume" | "revoke"],
                    &Method::POST
                )
                | (["admin", "datasets"], &Method::POST)
                | (
                    ["admin", "datasets", _, "close" | "open" | "evaluation"],
                    &Method::POST
                )
                | (["admin", "objections", _, _], &Method::POST)
                | (["admin", "demands", _, "answer"], &Method::POST)
                | (["admin", "applications", _, _], &Method::POST)
                | (["admin", "agreements"], &Method::POST)
        )
    }

    /// The refusal of a change only city-wide administrators make.
    pub fn city_only(&self, method: &Method, segs: &[&str]) -> Problem {
        let agency = match self {
            Self::Agency(a) => a.as_str(),
            Self::City => "",
        };
        Problem::new(
            P::Forbidden,
            format!(
                "{method} /{} is for city-wide administrators; this one acts for agency {agency}",
                segs.join("/")
            ),
        )
    }
}

/// `/admin/admins`: list the limited administrators; limit one to an agency (`201`); lift a
/// limit (`DELETE /admin/admins/<id>` with a reason). City-wide administrators only.
pub async fn admin(
    store: &Store,
    admin: &str,
    scope: &Scope,
    segs: &[&str],
    method: &Method,
    req: Request<ApiBody>,
) -> Result<Response<RespBody>, Problem> {
    if *scope != Scope::City {
        return Err(scope.city_only(method, segs));
    }
    match (segs, method) {
        (["admin", "admins"], &Method::GET) => {
            Ok(json_response(StatusCode::OK, &store.admin_scopes().await?, None))
        }
        (["admin", "admins"], &Method::POST) => {
            let b: NewScope = body(req).await?;
            valid_id(&b.id)?;
            need_reason(&b.reason)?;
            if b.id == admin {
                return Err(Problem::new(
                    P::Invalid,
                    "an administrator cannot limit itself (another city-wide administrator can)",
                ));
            }
            let ch = Change {
                admin,
                action: Action::AdminScope,
                target: &b.id,
                reason: &b.reason,
            };
            let (rec, rev) = store.set_admin_scope(&b.id, &b.agency, &ch).await?;
            Ok(json_response(StatusCode::CREATED, &rec, Some(rev.revision)))
        }
        (["admin", "admins", id], &Method::DELETE) => {
            let b: ReasonBody = body(req).await?;
            need_reason(&b.reason)?;
            let ch = Change {
                admin,
                action: Action::AdminUnscope,
                target: id,
                reason: &b.reason,
            };
            let rev = store.remove_admin_scope(id, &ch).await?;
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "id": id, "agency": null }),
                Some(rev.revision),
            ))
        }
        _ => Err(super::routes::not_routed(method, segs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agency_administrator_covers_its_own_data_only() {
        let fire = Scope::Agency("fire".into());
        assert!(fire.covers(Some("fire")));
        assert!(!fire.covers(Some("water")) && !fire.covers(None));
        assert!(Scope::City.covers(None) && Scope::City.covers(Some("water")));
        let p = fire.require(Some("water"), "dataset d").unwrap_err();
        assert_eq!(p.code, P::Forbidden);
        assert!(Scope::City.require(None, "dataset d").is_ok());
    }

    #[test]
    fn an_agency_administrator_may_attempt_only_the_changes_an_agency_owns() {
        let fire = Scope::Agency("fire".into());
        let post = Method::POST;
        for ok in [
            &["admin", "licences"][..],
            &["admin", "licences", "l1", "suspend"],
            &["admin", "datasets"],
            &["admin", "datasets", "d", "close"],
            &["admin", "objections", "o1", "uphold"],
        ] {
            assert!(fire.may_attempt(ok, &post), "{ok:?}");
        }
        for no in [
            &["admin", "licensees"][..],
            &["admin", "violations"],
            &["admin", "fusion-rules"],
            &["admin", "datasets", "close-all"],
            &["admin", "certs", "revoke"],
            &["admin", "agencies"],
            &["admin", "risk", "rules"],
            &["admin", "admins"],
        ] {
            assert!(!fire.may_attempt(no, &post), "{no:?}");
            assert!(Scope::City.may_attempt(no, &post));
        }
        assert!(fire.may_attempt(&["admin", "fusion-rules"], &Method::GET));
        assert!(!fire.may_attempt(&["admin", "fusion-rules", "f"], &Method::DELETE));
    }
}

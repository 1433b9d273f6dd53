//! The living open list's routes: each entry's history in public (`GET /catalog/<id>/history`,
//! JSON or HTML), and marking an entry that is not
//! open yet as under evaluation (`POST /admin/datasets/<id>/evaluation`).
//!
//! The public pages show what the catalog shows (the entry, its category, state and dates) and
//! each change's reason; never who made it or the change number.

use super::action::Action;
use super::catalog_history::{self as history, CatalogEntry, CatalogVersion};
use super::problem::{Problem, ProblemCode as P};
use super::public::{esc, html_response, wants_html};
use super::request::ApiBody;
use super::request::{body, json_response, need_reason};
use super::scope::Scope;
use super::snapshot::Distributor;
use super::store::{Change, Store};
use http::{header, HeaderValue, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use sluice_net::body::RespBody;

type Reply = Result<Response<RespBody>, Problem>;

/// `POST /admin/datasets/<id>/evaluation`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvaluation {
    /// The next evaluation date, `YYYY-MM-DD`, today or later.
    pub next: String,
    /// Why (recorded and shown in the history, required).
    pub reason: String,
}

/// One version as the public history shows it.
#[derive(Debug, Serialize)]
struct VersionView<'a> {
    #[serde(flatten)]
    version: &'a CatalogVersion,
    summary: String,
}

/// `GET /catalog/<id>/history`: the entry's versions, newest first (date, action, what
/// changed as data and in words, the reason, the state after it), as JSON or, with
/// `Accept: text/html`, a table. `404` for an entry not in the catalog.
pub async fn history<B>(store: &Store, id: &str, req: &Request<B>) -> Reply {
    let entry = store.dataset(id).await?;
    let versions = store.catalog_history(id).await?;
    if wants_html(req) {
        let mut rows =
            String::from("<tr><th>date</th><th>action</th><th>what changed</th><th>reason</th></tr>");
        for v in &versions {
            rows.push_str(&format!(
                "<tr><td><time datetime=\"{at}\">{day}</time></td><td>{action}</td><td>{what}</td>\
                 <td>{reason}</td></tr>",
                at = esc(&v.at),
                day = esc(v.at.get(..10).unwrap_or(&v.at)),
                action = v.action.as_str(),
                what = esc(&v.summary()),
                reason = esc(&v.reason),
            ));
        }
        let body = format!(
            "<p><strong>{title}</strong> ({id}), version {version}, {category}: \
             <span id=\"status\">{status}</span>.</p><table>{rows}</table>\
             <p><a href=\"/catalog\">Catalog</a></p>",
            title = esc(&entry.spec.title),
            id = esc(&entry.spec.id),
            version = entry.spec.version,
            category = entry.open_category.as_str(),
            status = esc(&history::status_words(&entry)),
        );
        let mut r = html_response(&format!("History of {}", entry.spec.id), &body);
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(r);
    }
    let view = serde_json::json!({
        "dataset": entry.spec.id,
        "title": entry.spec.title,
        "open_category": entry.open_category,
        "closed": entry.closed,
        "status": history::status(&entry),
        "next_evaluation": entry.next_evaluation,
        "versions": versions
            .iter()
            .map(|version| VersionView { version, summary: version.summary() })
            .collect::<Vec<_>>(),
    });
    let mut r = json_response(StatusCode::OK, &view, None);
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(r)
}

/// Today (UTC) as `YYYY-MM-DD`.
fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// Checks a next evaluation date: `bad-request` unless it is a date `YYYY-MM-DD`, `invalid`
/// when it is before `today`.
pub fn check_next(next: &str, today: time::Date) -> Result<(), Problem> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let date = match time::Date::parse(next, &fmt) {
        Ok(d) if next.len() == 10 => d,
        _ => {
            return Err(Problem::new(
                P::BadRequest,
                format!("next must be a date YYYY-MM-DD, not {next:?}"),
            ))
        }
    };
    if date < today {
        return Err(Problem::new(
            P::Invalid,
            format!("next evaluation {next} is in the past (today is {today})"),
        ));
    }
    Ok(())
}

/// `POST /admin/datasets/<id>/evaluation` `{next, reason}`: marks an entry that is not open
/// yet (non-open, or closed) as under evaluation until `next`; `422` for a date in the past or
/// an open entry, `404` for an unknown one, `403` for another agency's entry. An audited
/// change (`dataset.evaluation`) and a version of the entry.
pub async fn evaluate(
    store: &Store,
    dist: &Distributor,
    admin: &str,
    scope: &Scope,
    id: &str,
    req: Request<ApiBody>,
) -> Reply {
    let b: NewEvaluation = body(req).await?;
    need_reason(&b.reason)?;
    check_next(&b.next, today())?;
    scope.require_dataset(store, id).await?;
    let ch = Change {
        admin,
        action: Action::DatasetEvaluation,
        target: id,
        reason: &b.reason,
    };
    let (d, rev) = store.set_next_evaluation(id, &b.next, &ch).await?;
    dist.advance(rev.revision);
    Ok(json_response(
        StatusCode::OK,
        &CatalogEntry::of(&d),
        Some(rev.revision),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn next_evaluation_dates_are_dates_from_today() {
        let today = time::macros::date!(2026 - 05 - 10);
        assert!(check_next("2026-05-10", today).is_ok());
        assert!(check_next("2027-03-01", today).is_ok());
        assert_eq!(check_next("2026-05-09", today).unwrap_err().code, P::Invalid);
        // Any date the document allows parses: an old one is in the past, not malformed.
        assert_eq!(check_next("0000-01-01", today).unwrap_err().code, P::Invalid);
        assert!(check_next("9999-12-31", today).is_ok());
        for bad in ["2026-5-10", "2026-13-01", "tomorrow", "", "2026-05-10T00:00:00Z"] {
            assert_eq!(check_next(bad, today).unwrap_err().code, P::BadRequest, "{bad}");
        }
    }
}

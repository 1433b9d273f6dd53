//! The start page: what needs an administrator now (stale gateways, waiting applications,
//! open objections, violations in force) and the licences by state, each a link to its page.

use super::lists::rows_of;
use super::{page_or_refusal, Ctx, Reply};
use crate::problem::Problem;
use maud::html;
use serde_json::Value;

/// `GET /console/`.
pub async fn page(ctx: &Ctx<'_>) -> Reply {
    let l = ctx.l;
    let body = async {
        let licences = rows_of(ctx.get("/admin/licences").await?);
        let state_count = |s: &str| {
            licences
                .iter()
                .filter(|x| x.pointer("/status/state") == Some(&Value::from(s)))
                .count()
        };
        let gateways = rows_of(ctx.get("/admin/gateways/health").await?);
        let stale = gateways
            .iter()
            .filter(|g| g["stale"] == Value::Bool(true) && g["retired"] != Value::Bool(true))
            .count();
        let count_where = |rows: Vec<Value>, key: &str, value: &str| {
            rows.iter().filter(|r| r[key] == value).count()
        };
        let applications = count_where(rows_of(ctx.get("/admin/applications").await?), "status", "open");
        let objections = count_where(rows_of(ctx.get("/admin/objections").await?), "status", "open");
        let violations = rows_of(ctx.get("/admin/violations").await?)
            .iter()
            .filter(|v| v["lifted_at"].is_null())
            .count();
        Ok::<_, Problem>(html! {
            section aria-labelledby="now" {
                h2 #now { (l.summary) }
                ul.tiles {
                    li { a href="/console/gateways" { span.n { (stale) } " " (l.stale_gateways) } }
                    li { a href="/console/applications" { span.n { (applications) } " " (l.applications) " · " (l.waiting) } }
                    li { a href="/console/objections" { span.n { (objections) } " " (l.objections) " · " (l.waiting) } }
                    li { a href="/console/violations" { span.n { (violations) } " " (l.violations) " · " (l.in_force) } }
                }
            }
            section aria-labelledby="lic" {
                h2 #lic { (l.licences) }
                ul.tiles {
                    li { a href="/console/licences?state=active" { span.n { (state_count("active")) } " " (l.value("active")) } }
                    li { a href="/console/licences?state=suspended" { span.n { (state_count("suspended")) } " " (l.value("suspended")) } }
                    li { a href="/console/licences?state=revoked" { span.n { (state_count("revoked")) } " " (l.value("revoked")) } }
                }
                p { a.button href="/console/licences/new" { (l.grant_licence) } }
            }
        })
    }
    .await;
    page_or_refusal(ctx, "", &l.console, body)
}

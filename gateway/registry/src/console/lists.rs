//! The console's read pages: one admin API list each, as a searchable table. Filtering by
//! the search text happens here, over the columns shown; with htmx the results update as the
//! administrator types, without it the form submits.

use super::form::Form;
use super::layout::{self, col, urlencode, Column, Label};
use super::{csrf, page_with_status, see_other, Ctx, Reply};
use crate::problem::{Problem, ProblemCode as P};
use http::StatusCode;
use maud::{html, Markup};
use serde_json::{json, Value};

/// One read page.
pub struct List {
    slug: &'static str,
    title: super::layout::Label,
    /// The admin API route it reads (a list).
    api: &'static str,
    cols: &'static [Column],
    /// Where the first column links to (its value appended).
    link: Option<&'static str>,
    /// Newest last in the API; shown newest first.
    newest_first: bool,
    /// What a row offers to change.
    actions: &'static [RowAction],
}

/// A change a row offers: an admin API action on the row's id (its first column) that takes a
/// reason and nothing else, `POST {api}<id>/{verb}`.
pub struct RowAction {
    verb: &'static str,
    label: Label,
    api: &'static str,
    /// Whether the row's state allows it (the API decides; this only keeps the page short).
    when: fn(&Value) -> bool,
}

macro_rules! act {
    ($verb:literal, $label:ident, $api:literal, $when:expr) => {
        RowAction {
            verb: $verb,
            label: |l| &l.$label,
            api: $api,
            when: $when,
        }
    };
}

fn is(row: &Value, key: &str, value: &str) -> bool {
    row[key] == value
}

const LISTS: &[List] = &[
    List {
        slug: "licensees",
        title: |l| &l.licensees,
        api: "/admin/licensees",
        cols: &[
            col!(id, "/id"),
            col!(name, "/name"),
            col!(credit_code, "/credit_code"),
            col!(created_at, "/created_at"),
        ],
        link: Some("/console/licences?licensee="),
        newest_first: false,
        actions: &[],
    },
    List {
        slug: "agencies",
        title: |l| &l.agencies,
        api: "/admin/agencies",
        cols: &[
            col!(id, "/id"),
            col!(name, "/name"),
            col!(review_days, "/review_days"),
            col!(created_at, "/created_at"),
        ],
        link: None,
        newest_first: false,
        actions: &[],
    },
    List {
        slug: "gateways",
        title: |l| &l.federation_health,
        api: "/admin/gateways/health",
        cols: &[
            col!(id, "/id"),
            col!(agency, "/agency"),
            col!(stale, "/stale"),
            col!(revision, "/revision"),
            col!(registry_revision, "/registry_revision"),
            col!(behind, "/revisions_behind"),
            col!(last_seen, "/last_seen"),
            col!(age_s, "/age_s"),
            col!(last_usage_report, "/last_usage_report/received_at"),
            col!(cert_not_after, "/cert_not_after"),
            col!(cert_days_left, "/cert_days_left"),
            col!(url, "/url"),
            col!(retired, "/retired"),
        ],
        link: None,
        newest_first: false,
        actions: &[act!("retire", retire, "/admin/gateways/", |r| r["retired"] == false)],
    },
    List {
        slug: "datasets",
        title: |l| &l.datasets,
        api: "/admin/datasets",
        cols: &[
            col!(id, "/spec/id"),
            col!(title, "/spec/title"),
            col!(agency, "/agency"),
            col!(grades, "/spec/grades"),
            col!(open_category, "/open_category", values),
            col!(closed, "/closed"),
        ],
        link: Some("/console/licences?dataset="),
        newest_first: false,
        actions: &[
            act!("close", close, "/admin/datasets/", |r| r["closed"] == false),
            act!("open", reopen, "/admin/datasets/", |r| r["closed"] == true),
        ],
    },
    List {
        slug: "scenarios",
        title: |l| &l.scenarios,
        api: "/admin/scenarios",
        cols: &[
            col!(id, "/id"),
            col!(title, "/title"),
            col!(datasets, "/datasets"),
            col!(description, "/description"),
        ],
        link: Some("/console/licences?scenario="),
        newest_first: false,
        actions: &[],
    },
    List {
        slug: "fusion-rules",
        title: |l| &l.fusion_rules,
        api: "/admin/fusion-rules",
        cols: &[
            col!(id, "/id"),
            col!(description, "/description"),
            col!(members, "/members"),
        ],
        link: None,
        newest_first: false,
        actions: &[],
    },
    List {
        slug: "violations",
        title: |l| &l.violations,
        api: "/admin/violations",
        cols: &[
            col!(id, "/id"),
            col!(licensee, "/licensee"),
            col!(what, "/what"),
            col!(measure, "/measure", values),
            col!(at, "/at"),
            col!(reason, "/reason"),
            col!(lifted_at, "/lifted_at"),
        ],
        link: None,
        newest_first: true,
        actions: &[act!("lift", lift, "/admin/violations/", |r| r["lifted_at"].is_null())],
    },
    List {
        slug: "objections",
        title: |l| &l.objections,
        api: "/admin/objections",
        cols: &[
            col!(id, "/id"),
            col!(dataset, "/dataset"),
            col!(record_key, "/record_key"),
            col!(kind, "/kind", values),
            col!(status, "/status", values),
            col!(filed_at, "/filed_at"),
            col!(reason, "/reason"),
        ],
        link: None,
        newest_first: false,
        actions: &[
            act!("uphold", uphold, "/admin/objections/", |r| is(
                r, "status", "open"
            )),
            act!("reject", reject, "/admin/objections/", |r| is(
                r, "status", "open"
            )),
            act!("withdraw", withdraw, "/admin/objections/", |r| is(
                r, "status", "open"
            )),
            act!("resolve", resolve, "/admin/objections/", |r| is(
                r, "status", "upheld"
            )),
        ],
    },
    List {
        slug: "applications",
        title: |l| &l.applications,
        api: "/admin/applications",
        cols: &[
            col!(id, "/id"),
            col!(licensee, "/licensee"),
            col!(dataset, "/dataset"),
            col!(scenario, "/scenario"),
            col!(fields, "/fields"),
            col!(status, "/status", values),
            col!(filed_at, "/filed_at"),
            col!(due_by, "/due_by"),
        ],
        link: Some("/console/licences/new?application="),
        newest_first: false,
        actions: &[
            act!("ask", ask, "/admin/applications/", |r| is(r, "status", "open")),
            act!("reject", reject, "/admin/applications/", |r| is(
                r, "status", "open"
            ) || is(
                r,
                "status",
                "more-info"
            )),
        ],
    },
    List {
        slug: "demands",
        title: |l| &l.demands,
        api: "/admin/demands",
        cols: &[
            col!(id, "/id"),
            col!(kind, "/kind", values),
            col!(dataset, "/dataset"),
            col!(title, "/title"),
            col!(fields, "/fields"),
            col!(count, "/count"),
            col!(status, "/status", values),
        ],
        link: None,
        newest_first: false,
        actions: &[],
    },
    List {
        slug: "usage",
        title: |l| &l.usage,
        api: "/admin/usage",
        cols: &[
            col!(licensee, "/licensee"),
            col!(dataset, "/dataset"),
            col!(requests, "/requests"),
            col!(records, "/records"),
            col!(refusals, "/refusals"),
            col!(quota_requests, "/quota_requests"),
            col!(quota_records, "/quota_records"),
        ],
        link: Some("/console/licences?licensee="),
        newest_first: false,
        actions: &[],
    },
    List {
        slug: "changes",
        title: |l| &l.changes,
        api: "/admin/changes",
        cols: &[
            col!(revision, "/revision"),
            col!(at, "/at"),
            col!(admin, "/admin"),
            col!(action, "/action"),
            col!(target, "/target"),
            col!(reason, "/reason"),
        ],
        link: None,
        newest_first: true,
        actions: &[],
    },
];

/// The read page at `slug`.
pub fn find(slug: &str) -> Option<&'static List> {
    LISTS.iter().find(|p| p.slug == slug)
}

/// `GET /console/<slug>[?q=…][&done=<verb>]` (usage also `month=YYYY-MM`, this month by
/// default).
pub async fn page(ctx: &Ctx<'_>, list: &List, query: &Form) -> Reply {
    let done = list
        .actions
        .iter()
        .any(|a| a.verb == query.get("done"))
        .then(|| layout::notice(&ctx.l.recorded));
    render(ctx, list, query, done, StatusCode::OK).await
}

/// `POST /console/<slug>/<id>/<verb>` (form: `reason`): the row action through the admin API,
/// then back to the list; a refusal is shown above the list, with its status.
pub async fn act(ctx: &Ctx<'_>, list: &List, id: &str, verb: &str, form: &Form) -> Reply {
    let Some(action) = list.actions.iter().find(|a| a.verb == verb) else {
        return Err(Problem::new(
            P::NotFound,
            format!("no console action {verb} on {}", list.slug),
        ));
    };
    // The admin API refuses an empty reason (`invalid`), shown above the list.
    let uri = format!("{}{}/{}", action.api, urlencode(id), action.verb);
    let result = ctx.post(&uri, &json!({ "reason": form.get("reason") })).await;
    match result {
        Ok(_) => Ok(see_other(&format!("/console/{}?done={verb}", list.slug))),
        Err(p) => {
            let status = p.status();
            render(
                ctx,
                list,
                &Form::default(),
                Some(layout::refusal(ctx.l, &p)),
                status,
            )
            .await
        }
    }
}

async fn render(
    ctx: &Ctx<'_>,
    list: &List,
    query: &Form,
    above: Option<Markup>,
    status: StatusCode,
) -> Reply {
    let slug = list.slug;
    let title = (list.title)(ctx.l);
    let q = query.get("q");
    let month = query.opt("month").map(str::to_owned).unwrap_or_else(this_month);
    let body = async {
        let mut rows = if slug == "usage" {
            usage_with_quotas(ctx, &month).await?
        } else {
            rows_of(ctx.get(list.api).await?)
        };
        if list.newest_first {
            rows.reverse();
        }
        let shown: Vec<&Value> = rows
            .iter()
            .filter(|r| layout::matches(ctx.l, r, list.cols, q))
            .collect();
        let actions = |row: &Value| row_actions(ctx, list, row);
        let actions: Option<layout::RowActions<'_>> = (!list.actions.is_empty()).then_some(&actions);
        Ok(html! {
            @if let Some(m) = &above { (m) }
            @if !ctx.partial {
                (search_form(ctx, slug, q, (slug == "usage").then_some(month.as_str())))
            }
            div #results aria-live="polite" {
                (layout::table(ctx.l, title, list.cols, &shown, list.link, actions))
            }
        })
    }
    .await;
    page_with_status(ctx, slug, title, body, status)
}

/// The forms of the actions `row`'s state allows, each with its reason field.
fn row_actions(ctx: &Ctx<'_>, list: &List, row: &Value) -> Markup {
    let l = ctx.l;
    let Some(id) = list
        .cols
        .first()
        .and_then(|c| row.pointer(c.pointer))
        .and_then(Value::as_str)
    else {
        return html! {};
    };
    html! {
        @for a in list.actions.iter().filter(|a| (a.when)(row)) {
            @let field = format!("{}-{id}-{}", list.slug, a.verb);
            form.row-action method="post" action=(format!("/console/{}/{}/{}", list.slug, urlencode(id), a.verb)) {
                input type="hidden" name=(csrf::FIELD) value=(ctx.csrf);
                label.sr for=(field) { ((a.label)(l)) " " (id) ": " (l.reason) }
                input #(field) name="reason" required placeholder=(l.reason);
                button type="submit" { ((a.label)(l)) }
            }
        }
    }
}

fn search_form(ctx: &Ctx<'_>, slug: &str, q: &str, month: Option<&str>) -> Markup {
    let l = ctx.l;
    let action = format!("/console/{slug}");
    html! {
        form.search method="get" action=(action) role="search"
            hx-get=(action) hx-target="#results" hx-select="#results" hx-swap="outerHTML"
            hx-trigger="input delay:300ms, change, submit" hx-push-url="true" {
            @if let Some(m) = month {
                label for="month" { (l.month) }
                input #month type="month" name="month" value=(m);
            }
            label for="q" { (l.search_text) }
            input #q type="search" name="q" value=(q);
            button type="submit" { (l.search) }
        }
    }
}

/// A list answer's rows (a JSON array; anything else shows as nothing).
pub fn rows_of(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        _ => Vec::new(),
    }
}

fn this_month() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}", now.year(), u8::from(now.month()))
}

/// The month's usage per licensee and dataset, with the daily quotas of the licences in
/// force on that pair.
async fn usage_with_quotas(ctx: &Ctx<'_>, month: &str) -> Result<Vec<Value>, crate::problem::Problem> {
    let usage = rows_of(
        ctx.get(&format!("/admin/usage?month={}", urlencode(month)))
            .await?,
    );
    let licences = rows_of(ctx.get("/admin/licences").await?);
    Ok(usage
        .into_iter()
        .map(|mut row| {
            let held: Vec<&Value> = licences
                .iter()
                .filter(|l| {
                    l["licensee"] == row["licensee"]
                        && l["dataset"] == row["dataset"]
                        && l.pointer("/status/state") == Some(&Value::from("active"))
                })
                .collect();
            for (key, quota) in [
                ("quota_requests", "requests_per_day"),
                ("quota_records", "records_per_day"),
            ] {
                let quotas: Vec<Value> = held
                    .iter()
                    .map(|l| l["quota"][quota].clone())
                    .filter(|q| !q.is_null())
                    .collect();
                row[key] = Value::Array(quotas);
            }
            row
        })
        .collect())
}

//! Licences in the console: search by licensee, dataset, scenario and state; one licence's
//! terms, history and actions (suspend, resume, revoke, each with a reason); and the grant
//! form, which shows a fusion conflict beside the expert-review field and keeps what was
//! typed.

use super::form::Form;
use super::layout::{self, cell, col, urlencode, Column};
use super::lists::rows_of;
use super::{csrf, html, page_or_refusal, page_with_status, see_other, Ctx, Reply};
use crate::problem::{Problem, ProblemCode as P};
use crate::request::need_reason;
use crate::terms::{parse_date, parse_field};
use http::StatusCode;
use maud::{html, Markup};
use serde_json::{json, Map, Value};

const COLS: &[Column] = &[
    col!(licence, "/id"),
    col!(licensee, "/licensee"),
    col!(dataset, "/dataset"),
    col!(scenario, "/scenario"),
    col!(state, "/status/state", values),
    col!(valid_until, "/valid_until"),
    col!(mode, "/mode", values),
];

const STATES: [&str; 3] = ["active", "suspended", "revoked"];

/// `GET /console/licences[?licensee=&dataset=&scenario=&state=]`.
pub async fn search(ctx: &Ctx<'_>, query: &Form) -> Reply {
    let l = ctx.l;
    let body = async {
        // The admin API selects by licensee; the other criteria are applied here.
        let uri = match query.opt("licensee") {
            Some(id) => format!("/admin/licences?licensee={}", urlencode(id)),
            None => "/admin/licences".to_owned(),
        };
        let licences = rows_of(ctx.get(&uri).await?);
        let want = |key: &str, v: &Value| query.opt(key).is_none_or(|q| v.as_str() == Some(q));
        let shown: Vec<&Value> = licences
            .iter()
            .filter(|x| {
                want("dataset", &x["dataset"])
                    && want("scenario", &x["scenario"])
                    && want("state", x.pointer("/status/state").unwrap_or(&Value::Null))
            })
            .collect();
        let results = html! {
            div #results aria-live="polite" {
                (layout::table(l, &l.licences, COLS, &shown, Some("/console/licences/"), None))
            }
        };
        if ctx.partial {
            return Ok(results);
        }
        let licensees = ids(ctx, "/admin/licensees", "/id").await?;
        let datasets = ids(ctx, "/admin/datasets", "/spec/id").await?;
        let scenarios = ids(ctx, "/admin/scenarios", "/id").await?;
        let states: Vec<String> = STATES.iter().map(|s| s.to_string()).collect();
        Ok::<_, Problem>(html! {
            p { a.button href="/console/licences/new" { (l.grant_licence) } }
            form.search method="get" action="/console/licences" role="search"
                hx-get="/console/licences" hx-target="#results" hx-select="#results" hx-swap="outerHTML"
                hx-trigger="change, submit" hx-push-url="true" {
                (select(l, "licensee", &l.licensee, &licensees, query.get("licensee"), false, |_, v| v.to_owned()))
                (select(l, "dataset", &l.dataset, &datasets, query.get("dataset"), false, |_, v| v.to_owned()))
                (select(l, "scenario", &l.scenario, &scenarios, query.get("scenario"), false, |_, v| v.to_owned()))
                (select(l, "state", &l.state, &states, query.get("state"), false, |l, v| l.value(v).to_owned()))
                button type="submit" { (l.search) }
            }
            (results)
        })
    }
    .await;
    page_or_refusal(ctx, "licences", &l.licences, body)
}

/// The values at `pointer` of the rows of list `uri`, sorted.
async fn ids(ctx: &Ctx<'_>, uri: &str, pointer: &str) -> Result<Vec<String>, Problem> {
    Ok(ids_of(&rows_of(ctx.get(uri).await?), pointer))
}

/// The values at `pointer` of `rows`, sorted.
fn ids_of(rows: &[Value], pointer: &str) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .filter_map(|r| r.pointer(pointer)?.as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

/// A labelled `<select>` of `options` (shown through `show`), `current` selected; an empty
/// first option ("any", or "choose" when `required`).
fn select(
    l: &super::Labels,
    name: &str,
    label: &str,
    options: &[String],
    current: &str,
    required: bool,
    show: impl Fn(&super::Labels, &str) -> String,
) -> Markup {
    html! {
        label for=(name) { (label) }
        select #(name) name=(name) required[required] {
            option value="" { @if required { (l.choose) } @else { (l.any) } }
            @for o in options {
                option value=(o) selected[o == current] { (show(l, o)) }
            }
        }
    }
}

/// `GET /console/licences/<id>[?done=…]`: terms, history and the actions its state allows.
pub async fn show(ctx: &Ctx<'_>, id: &str, query: &Form) -> Reply {
    let l = ctx.l;
    let done = match query.get("done") {
        "granted" => Some(&l.granted),
        "suspend" => Some(&l.suspended),
        "resume" => Some(&l.resumed),
        "revoke" => Some(&l.revoked),
        _ => None,
    };
    licence_page(ctx, id, done.map(|s| layout::notice(s)), StatusCode::OK).await
}

async fn licence_page(ctx: &Ctx<'_>, id: &str, above: Option<Markup>, status: StatusCode) -> Reply {
    let l = ctx.l;
    let title = format!("{} {id}", l.licence);
    let body = async {
        let lic = ctx.get(&format!("/admin/licences/{}", urlencode(id))).await?;
        let changes = rows_of(ctx.get("/admin/changes").await?);
        let history: Vec<&Value> = changes
            .iter()
            .rev()
            .filter(|c| c["target"].as_str() == Some(id))
            .collect();
        let state = lic.pointer("/status/state").and_then(Value::as_str).unwrap_or("");
        const HISTORY: &[Column] = &[
            col!(revision, "/revision"),
            col!(at, "/at"),
            col!(admin, "/admin"),
            col!(action, "/action"),
            col!(reason, "/reason"),
        ];
        Ok::<_, Problem>(html! {
            @if let Some(m) = &above { (m) }
            dl.terms {
                @for (label, key) in [(&l.licensee, "licensee"), (&l.dataset, "dataset"), (&l.scenario, "scenario"), (&l.mode, "mode"),
                                      (&l.valid_from, "valid_from"), (&l.valid_until, "valid_until"), (&l.row_filter, "row_filter"),
                                      (&l.expert_review, "expert_review")] {
                    dt { (label) } dd { (cell(l, &lic[key])) }
                }
                dt { (l.state) } dd.state { strong { (l.value(state)) } @if let Some(r) = lic.pointer("/status/reason") { " — " (cell(l, r)) } }
                dt { (l.rate_per_second) } dd { (cell(l, &lic["rate"])) }
                dt { (l.requests_per_day) " / " (l.records_per_day) } dd { (cell(l, &lic["quota"])) }
            }
            h2 { (l.fields) }
            table {
                thead { tr { th scope="col" { (l.name) } th scope="col" { (l.field_rule) } } }
                tbody {
                    @if let Some(fields) = lic["fields"].as_object() {
                        @for (name, rule) in fields { tr { th scope="row" { (name) } td { (cell(l, rule)) } } }
                    }
                }
            }
            @for action in actions(state) {
                (action_form(ctx, id, action))
            }
            h2 { (l.history) }
            (layout::table(l, &l.history, HISTORY, &history, None, None))
        })
    }
    .await;
    page_with_status(ctx, "licences", &title, body, status)
}

/// The actions a licence in `state` allows.
fn actions(state: &str) -> &'static [&'static str] {
    match state {
        "active" => &["suspend", "revoke"],
        "suspended" => &["resume", "revoke"],
        _ => &[],
    }
}

fn action_form(ctx: &Ctx<'_>, id: &str, action: &str) -> Markup {
    let l = ctx.l;
    let label = match action {
        "suspend" => &l.suspend,
        "resume" => &l.resume,
        _ => &l.revoke,
    };
    let field = format!("reason-{action}");
    html! {
        form.action method="post" action=(format!("/console/licences/{}/{action}", urlencode(id))) {
            h2 { (label) }
            input type="hidden" name=(csrf::FIELD) value=(ctx.csrf);
            @if action == "revoke" { p { (l.revoke_warning) } }
            label for=(field) { (l.reason) }
            textarea #(field) name="reason" required rows="2" aria-describedby=(format!("{field}-help")) {}
            p.help #(format!("{field}-help")) { (l.reason_help) }
            button type="submit" #(format!("do-{action}")) { (label) }
        }
    }
}

/// `POST /console/licences/<id>/<suspend|resume|revoke>` (form: `reason`).
pub async fn change(ctx: &Ctx<'_>, id: &str, action: &str, form: &Form) -> Reply {
    // The admin API refuses an empty reason (`invalid`), shown on the licence's page.
    let result = ctx
        .post(
            &format!("/admin/licences/{}/{action}", urlencode(id)),
            &json!({ "reason": form.get("reason") }),
        )
        .await;
    match result {
        Ok(_) => Ok(see_other(&format!(
            "/console/licences/{}?done={action}",
            urlencode(id)
        ))),
        Err(p) => {
            let status = p.status();
            licence_page(ctx, id, Some(layout::refusal(ctx.l, &p)), status).await
        }
    }
}

/// `GET /console/licences/new[?licensee=&dataset=&scenario=]`.
pub async fn grant_form(ctx: &Ctx<'_>, query: &Form) -> Reply {
    grant_page(ctx, query, None, StatusCode::OK).await
}

/// `POST /console/licences`: the grant form, turned into the admin API's grant request; with
/// `application`, its approval (`POST /admin/applications/<id>/approve`, which grants on the
/// application's licensee, dataset and scenario).
pub async fn grant(ctx: &Ctx<'_>, form: &Form) -> Reply {
    let result = match (grant_request(form), form.opt("application")) {
        (Ok(body), None) => ctx.post("/admin/licences", &body).await,
        (Ok(body), Some(app)) => {
            let uri = format!("/admin/applications/{}/approve", urlencode(app));
            ctx.post(&uri, &body).await.map(|r| r["licence"].clone())
        }
        (Err(p), _) => Err(p),
    };
    match result {
        Ok(lic) => {
            let id = lic["id"].as_str().unwrap_or("");
            Ok(see_other(&format!(
                "/console/licences/{}?done=granted",
                urlencode(id)
            )))
        }
        Err(p) => {
            let status = p.status();
            grant_page(ctx, form, Some(p), status).await
        }
    }
}

/// The grant request the form asks for (for an approval, its terms only); `invalid` for what
/// the form cannot say.
fn grant_request(form: &Form) -> Result<Value, Problem> {
    let invalid = |m: String| Problem::new(P::Invalid, m);
    let mut fields = Map::new();
    for line in form
        .get("fields")
        .lines()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (name, rule) = parse_field(line).map_err(|e| invalid(format!("fields: {e}")))?;
        fields.insert(name, rule);
    }
    // Grants need a reason here although the admin API records one without it.
    need_reason(form.get("reason"))?;
    let mut body = json!({
        "fields": fields,
        "mode": form.opt("mode").unwrap_or("records"),
        "reason": form.get("reason"),
    });
    // An approval grants on the application's parties and, unless narrowed, its period.
    if form.opt("application").is_none() {
        for key in ["licensee", "dataset", "scenario"] {
            body[key] = json!(form.get(key));
        }
        if form.opt("valid_until").is_none() {
            return Err(invalid("valid until is required".into()));
        }
    }
    if let Some(until) = form.opt("valid_until") {
        body["valid_until"] = json!(parse_date(until).map_err(|e| invalid(format!("valid until: {e}")))?);
    }
    if let Some(from) = form.opt("valid_from") {
        body["valid_from"] = json!(parse_date(from).map_err(|e| invalid(format!("valid from: {e}")))?);
    }
    if let Some(f) = form.opt("row_filter") {
        body["row_filter"] = json!(f);
    }
    if let Some(r) = form.opt("expert_review") {
        body["expert_review"] = json!(r);
    }
    let number = |name: &str| -> Result<Option<u64>, Problem> {
        form.opt(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| invalid(format!("{name} must be a whole number")))
            })
            .transpose()
    };
    let (rate, burst) = (number("rate")?, number("burst")?);
    if rate.is_some() || burst.is_some() {
        let d = sluice_policy::licence::RateLimit::default();
        body["rate"] = json!({
            "per_second": rate.unwrap_or(d.per_second.into()),
            "burst": burst.unwrap_or(d.burst.into()),
        });
    }
    let mut quota = Map::new();
    for name in ["requests_per_day", "records_per_day"] {
        if let Some(n) = number(name)? {
            quota.insert(name.into(), json!(n));
        }
    }
    body["quota"] = Value::Object(quota);
    Ok(body)
}

async fn grant_page(ctx: &Ctx<'_>, form: &Form, refused: Option<Problem>, status: StatusCode) -> Reply {
    let l = ctx.l;
    let application = form.opt("application");
    let title = match application {
        Some(id) => format!("{} {id}", l.approve_application),
        None => l.grant_licence.clone(),
    };
    let body = async {
        let app = match application {
            Some(id) => {
                let reviewed = ctx.get(&format!("/admin/applications/{}", urlencode(id))).await?;
                Some(reviewed["application"].clone())
            }
            None => None,
        };
        let licensees = ids(ctx, "/admin/licensees", "/id").await?;
        let catalog = rows_of(ctx.get("/admin/datasets").await?);
        let datasets = ids_of(&catalog, "/spec/id");
        let scenarios = ids(ctx, "/admin/scenarios", "/id").await?;
        let fusion = refused.as_ref().filter(|p| p.code == P::FusionConflict);
        let other = refused.as_ref().filter(|p| p.code != P::FusionConflict);
        let modes = ["records".to_string(), "aggregate".to_string()];
        let dataset = app.as_ref().and_then(|a| a["dataset"].as_str()).unwrap_or(form.get("dataset"));
        let fields_help = dataset_fields_markup(l, &catalog, dataset);
        Ok::<_, Problem>(html! {
            @if let Some(p) = other { (layout::refusal(l, p)) }
            form.grant method="post" action="/console/licences" {
                input type="hidden" name=(csrf::FIELD) value=(ctx.csrf);
                @if let (Some(id), Some(app)) = (application, &app) {
                    input type="hidden" name="application" value=(id);
                    dl.terms {
                        @for (label, key) in [(&l.licensee, "licensee"), (&l.dataset, "dataset"), (&l.scenario, "scenario"),
                                              (&l.purpose, "purpose"), (&l.fields_asked, "fields"), (&l.valid_until, "valid_until"),
                                              (&l.status, "status")] {
                            dt { (label) } dd { (cell(l, &app[key])) }
                        }
                    }
                    (fields_help)
                } @else {
                    div.row { (select(l, "licensee", &l.licensee, &licensees, form.get("licensee"), true, |_, v| v.to_owned())) }
                    div.row {
                        label for="dataset" { (l.dataset) }
                        select #dataset name="dataset" required
                            hx-get="/console/fragments/dataset-fields" hx-target="#dataset-fields" hx-trigger="change" {
                            option value="" { (l.choose) }
                            @for o in &datasets { option value=(o) selected[o == form.get("dataset")] { (o) } }
                        }
                    }
                    div #dataset-fields { (fields_help) }
                    div.row { (select(l, "scenario", &l.scenario, &scenarios, form.get("scenario"), true, |_, v| v.to_owned())) }
                }
                div.row {
                    label for="fields" { (l.fields) }
                    textarea #fields name="fields" rows="4" required aria-describedby="fields-help" { (form.get("fields")) }
                    p.help #fields-help { (l.fields_help) }
                }
                div.row { label for="row_filter" { (l.row_filter) } input #row_filter name="row_filter" value=(form.get("row_filter")); }
                div.row.inline {
                    span { label for="rate" { (l.rate_per_second) } input #rate name="rate" inputmode="numeric" value=(form.get("rate")); }
                    span { label for="burst" { (l.burst) } input #burst name="burst" inputmode="numeric" value=(form.get("burst")); }
                    span { label for="requests_per_day" { (l.requests_per_day) } input #requests_per_day name="requests_per_day" inputmode="numeric" value=(form.get("requests_per_day")); }
                    span { label for="records_per_day" { (l.records_per_day) } input #records_per_day name="records_per_day" inputmode="numeric" value=(form.get("records_per_day")); }
                }
                div.row.inline {
                    span { label for="valid_from" { (l.valid_from) } input #valid_from type="date" name="valid_from" value=(form.get("valid_from")); }
                    span { label for="valid_until" { (l.valid_until) } input #valid_until type="date" name="valid_until" required[application.is_none()] value=(form.get("valid_until")); }
                    span { (select(l, "mode", &l.mode, &modes, form.opt("mode").unwrap_or("records"), true, |_, v| v.to_owned())) }
                }
                div.row.expert[fusion.is_some()] {
                    @if let Some(p) = fusion {
                        div.refusal #fusion-conflict role="alert" {
                            p { strong { (l.fusion_conflict) " (" (p.status().as_u16()) " " code { (p.code.code()) } ")" } }
                            p { (p.detail) }
                            p { (l.fusion_conflict_help) }
                        }
                    }
                    label for="expert_review" { (l.expert_review) }
                    input #expert_review name="expert_review" value=(form.get("expert_review"))
                        aria-describedby="expert-help" aria-invalid=[fusion.is_some().then_some("true")] autofocus[fusion.is_some()];
                    p.help #expert-help { (l.expert_review_help) }
                }
                div.row {
                    label for="reason" { (l.reason) }
                    textarea #reason name="reason" rows="2" required aria-describedby="reason-help" { (form.get("reason")) }
                    p.help #reason-help { (l.reason_help) }
                }
                button type="submit" #do-grant { @if application.is_some() { (l.approve) } @else { (l.grant) } }
            }
        })
    }
    .await;
    page_with_status(ctx, "licences", &title, body, status)
}

/// `GET /console/fragments/dataset-fields?dataset=…` (htmx): the dataset's fields with their
/// grade and open category, beside the grant form.
pub async fn dataset_fields(ctx: &Ctx<'_>, query: &Form) -> Reply {
    let dataset = query.get("dataset");
    // A catalog that cannot be read shows no fields, as an unknown dataset does.
    let catalog = match dataset {
        "" => Vec::new(),
        _ => ctx.get("/admin/datasets").await.map(rows_of).unwrap_or_default(),
    };
    Ok(html(
        StatusCode::OK,
        dataset_fields_markup(ctx.l, &catalog, dataset),
    ))
}

/// The fields of `dataset` in `catalog` (the admin API's datasets) with their grades;
/// nothing for no or an unknown dataset.
fn dataset_fields_markup(l: &super::Labels, catalog: &[Value], dataset: &str) -> Markup {
    let Some(d) = catalog
        .iter()
        .find(|d| !dataset.is_empty() && d.pointer("/spec/id").and_then(Value::as_str) == Some(dataset))
    else {
        return html! {};
    };
    let fields = d
        .pointer("/spec/fields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    html! {
        details open {
            summary { (l.dataset_fields) }
            ul.fields {
                @for f in &fields {
                    li { code { (cell(l, &f["name"])) } " · " (l.grades) ": " (cell(l, &f["grades"])) }
                }
            }
        }
    }
}

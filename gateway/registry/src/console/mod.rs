//! The administrators' console: server-rendered pages at `/console/` on the registry's
//! mutual-TLS listener. Only admin certificates reach it (anything else gets the usual
//! `401`/`403` problem); every read and change goes through the admin API
//! ([`Api::call_admin`]), so scopes, validation and the change record are the API's own.
//! Pages read without JavaScript; one vendored script (htmx, `static/`) updates search
//! results in place. A change is an HTML form post with a CSRF token ([`csrf`]); answers carry
//! a Content-Security-Policy of `default-src 'self'`.

mod csrf;
mod form;
mod layout;
mod licences;
mod lists;
pub mod locale;
mod start;

use crate::api::Api;
use crate::problem::{Problem, ProblemCode as P};
use crate::request::ApiBody;
use form::Form;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use locale::{Labels, Lang};
use maud::Markup;
use serde_json::Value;
use sluice_net::body::{full, RespBody};

type Reply = Result<Response<RespBody>, Problem>;

/// What a console page knows about its request.
pub struct Ctx<'a> {
    api: &'a Api,
    /// The administrator (from the certificate).
    pub admin: &'a str,
    /// The page's language.
    pub lang: Lang,
    /// Its labels.
    pub l: &'static Labels,
    /// The path and query asked for (where the language switch returns to).
    pub path_and_query: String,
    /// The CSRF token the page's forms carry.
    pub csrf: String,
    /// An htmx request for part of a page.
    pub partial: bool,
}

impl Ctx<'_> {
    /// Reads `uri` from the admin API.
    pub async fn get(&self, uri: &str) -> Result<Value, Problem> {
        self.api.call_admin(self.admin, Method::GET, uri, None).await
    }

    /// Sends a change to the admin API.
    pub async fn post(&self, uri: &str, body: &Value) -> Result<Value, Problem> {
        self.api
            .call_admin(self.admin, Method::POST, uri, Some(body))
            .await
    }
}

/// `/console/…` for administrator `admin`.
pub(crate) async fn handle(api: &Api, admin: &str, req: Request<ApiBody>) -> Reply {
    let path = req.uri().path().to_owned();
    let lang = Lang::negotiate(req.headers());
    let ctx = Ctx {
        api,
        admin,
        lang,
        l: lang.labels(),
        path_and_query: req
            .uri()
            .path_and_query()
            .map_or_else(|| path.clone(), |p| p.as_str().to_owned()),
        csrf: csrf::token(&api.dist, admin),
        partial: req.headers().contains_key("hx-request"),
    };
    let query = Form::parse(req.uri().query().unwrap_or("").as_bytes());
    let rest = path.strip_prefix("/console").unwrap_or("");
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    let resp = match (&method, segs.as_slice()) {
        (&Method::GET, [""]) if rest.is_empty() => Ok(see_other("/console/")),
        (&Method::GET, [""]) => start::page(&ctx).await,
        (&Method::GET, ["static", name]) => static_file(name),
        (&Method::GET, ["lang", tag]) => switch_language(tag, query.get("back")),
        (&Method::GET, ["licences"]) => licences::search(&ctx, &query).await,
        (&Method::GET, ["licences", "new"]) => licences::grant_form(&ctx, &query).await,
        (&Method::GET, ["fragments", "dataset-fields"]) => licences::dataset_fields(&ctx, &query).await,
        (&Method::GET, ["licences", id]) => licences::show(&ctx, id, &query).await,
        (&Method::POST, ["licences"]) => {
            let form = checked_form(&ctx, req).await?;
            licences::grant(&ctx, &form).await
        }
        (&Method::POST, ["licences", id, action @ ("suspend" | "resume" | "revoke")]) => {
            let form = checked_form(&ctx, req).await?;
            licences::change(&ctx, id, action, &form).await
        }
        (&Method::GET, [section]) => match lists::find(section) {
            Some(list) => lists::page(&ctx, list, &query).await,
            None => Err(no_page(&path)),
        },
        (&Method::POST, [section, id, verb]) => match lists::find(section) {
            Some(list) => {
                let form = checked_form(&ctx, req).await?;
                lists::act(&ctx, list, id, verb, &form).await
            }
            None => Err(no_page(&path)),
        },
        (&Method::GET | &Method::POST, _) => Err(no_page(&path)),
        _ => Err(Problem::new(
            P::MethodNotAllowed,
            format!("the console answers GET and form POST, not {method}"),
        )),
    };
    resp.map(secure)
}

fn no_page(path: &str) -> Problem {
    Problem::new(P::NotFound, format!("no console page {path}"))
}

/// Reads a change's form after its CSRF check.
async fn checked_form(ctx: &Ctx<'_>, req: Request<ApiBody>) -> Result<Form, Problem> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    let headers = req.headers().clone();
    let form = Form::read(req).await?;
    csrf::check(&ctx.api.dist, ctx.admin, &host, &headers, form.opt(csrf::FIELD))?;
    Ok(form)
}

/// An HTML answer with `status`.
fn html(status: StatusCode, markup: Markup) -> Response<RespBody> {
    let mut r = Response::new(full(markup.into_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// `303 See Other` to `location` (after a change, so reloading does not send it again).
fn see_other(location: &str) -> Response<RespBody> {
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The console's headers on every answer: a strict CSP, no framing, no sniffing, no caching
/// of administrators' pages, and a referrer for the console's own requests only
/// (`same-origin`: with `no-referrer` browsers send `Origin: null`, which the CSRF check
/// refuses).
fn secure(mut r: Response<RespBody>) -> Response<RespBody> {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// The vendored script, its licence and the style sheet.
fn static_file(name: &str) -> Reply {
    let (body, kind): (&'static [u8], &'static str) = match name {
        "htmx.min.js" => (
            include_bytes!("static/htmx-2.0.11.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "htmx-LICENSE.txt" => (
            include_bytes!("static/htmx-LICENSE.txt"),
            "text/plain; charset=utf-8",
        ),
        "console.css" => (include_bytes!("static/console.css"), "text/css; charset=utf-8"),
        _ => return Err(Problem::new(P::NotFound, format!("no console file {name}"))),
    };
    let mut r = Response::new(full(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(r)
}

/// `GET /console/lang/<tag>?back=<path>`: keeps the choice in a cookie and returns to `back`
/// (a console path only).
fn switch_language(tag: &str, back: &str) -> Reply {
    let lang = Lang::from_tag(tag)
        .ok_or_else(|| Problem::new(P::NotFound, format!("the console does not speak {tag:?}")))?;
    let back = if back.starts_with("/console/") && !back.contains("//") && !back.contains('\\') {
        back
    } else {
        "/console/"
    };
    let mut r = see_other(back);
    let cookie = format!(
        "{}={}; Path=/console; Max-Age=31536000; Secure; HttpOnly; SameSite=Strict",
        locale::COOKIE,
        lang.tag()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// A page, or the refusal that kept it from being read, shown as a page with its status. An
/// htmx request gets the body alone (a search's results).
fn page_or_refusal(ctx: &Ctx<'_>, section: &str, title: &str, result: Result<Markup, Problem>) -> Reply {
    page_with_status(ctx, section, title, result, StatusCode::OK)
}

/// [`page_or_refusal`], answered with `status` when the page could be read (a form shown
/// again with the refusal of what it sent).
fn page_with_status(
    ctx: &Ctx<'_>,
    section: &str,
    title: &str,
    result: Result<Markup, Problem>,
    status: StatusCode,
) -> Reply {
    Ok(match result {
        Ok(body) if ctx.partial => html(status, body),
        Ok(body) => html(status, layout::page(ctx, section, title, body)),
        Err(p) => html(
            p.status(),
            layout::page(ctx, section, title, layout::refusal(ctx.l, &p)),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_switch_returns_to_console_pages_only() {
        let location = |back: &str| {
            let r = switch_language("zh", back).unwrap();
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
            let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
            assert!(
                cookie.starts_with("sluice_lang=zh;") && cookie.contains("Secure; HttpOnly"),
                "{cookie}"
            );
            r.headers()[header::LOCATION].to_str().unwrap().to_owned()
        };
        assert_eq!(
            location("/console/licences?state=active"),
            "/console/licences?state=active"
        );
        for away in [
            "https://evil.example/",
            "//evil.example/console/",
            "/console//evil.example",
            "/admin/licences",
            "/console/\\evil",
            "",
        ] {
            assert_eq!(location(away), "/console/", "{away}");
        }
        assert_eq!(switch_language("fr", "/console/").unwrap_err().code, P::NotFound);
    }

    #[test]
    fn values_from_the_store_are_escaped() {
        let l = Lang::En.labels();
        let row =
            serde_json::json!({"id": "<script>alert(1)</script>", "name": "\"><img src=x onerror=alert(1)>"});
        let cols = [
            layout::Column {
                label: |l| &l.id,
                pointer: "/id",
                values: false,
            },
            layout::Column {
                label: |l| &l.name,
                pointer: "/name",
                values: false,
            },
        ];
        let html =
            layout::table(l, "t", &cols, &[&row], Some("/console/licences?licensee="), None).into_string();
        assert!(!html.contains("<script>") && !html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(
            html.contains("href=\"/console/licences?licensee=%3Cscript%3E"),
            "{html}"
        );
    }

    #[test]
    fn only_the_vendored_files_are_served() {
        let js = static_file("htmx.min.js").unwrap();
        assert_eq!(
            js.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(static_file("htmx-LICENSE.txt").is_ok() && static_file("console.css").is_ok());
        for other in ["../lib.rs", "htmx.js", "", "mod.rs"] {
            assert_eq!(static_file(other).unwrap_err().code, P::NotFound, "{other}");
        }
    }
}

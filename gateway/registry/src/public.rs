//! Public pages, no certificate needed: the catalog and the violation register, as JSON or,
//! with `Accept: text/html`, as a plain HTML table.

use super::problem::{Problem, ProblemCode};
use super::store::Store;
use http::{header, HeaderValue, Request, Response};
use sluice_net::body::{full, RespBody};

/// Whether the client asked for HTML (`Accept: text/html`).
pub(crate) fn wants_html<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// Escapes text for HTML (and SVG) content and attribute values, quoted either way: the
/// registry's hand-written pages all escape with it.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn respond(html: Option<String>, json: serde_json::Value) -> Response<RespBody> {
    let (body, ct) = match html {
        Some(h) => (h.into_bytes(), "text/html; charset=utf-8"),
        None => (serde_json::to_vec(&json).unwrap_or_default(), "application/json"),
    };
    let mut r = Response::new(full(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    r
}

/// A public HTML page around `body` (already escaped HTML): no script, no external asset,
/// and a Content-Security-Policy that allows none and posts forms only here.
pub(crate) fn html_response(title: &str, body: &str) -> Response<RespBody> {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    );
    let mut r = respond(Some(html), serde_json::Value::Null);
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    r
}

fn page(title: &str, head: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut out = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><table><tr>",
        t = esc(title)
    );
    for h in head {
        out.push_str(&format!("<th>{}</th>", esc(h)));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            out.push_str(&format!("<td>{}</td>", esc(&cell)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></body></html>");
    out
}

/// The `/catalog` table: each entry's id links to its history (`/catalog/<id>/history`), and
/// its status names the next evaluation date of an entry under evaluation.
fn catalog_table(datasets: &[super::model::DatasetRecord]) -> String {
    const END: &str = "</table></body></html>";
    let head = [
        "id", "title", "owner", "category", "updated", "version", "state", "status",
    ];
    let mut out = page("sluice catalog", &head, Vec::new());
    out.truncate(out.len() - END.len());
    for d in datasets {
        let id = esc(&d.spec.id);
        out.push_str(&format!(
            "<tr><td><a href=\"/catalog/{id}/history\">{id}</a></td>"
        ));
        for cell in [
            d.spec.title.clone(),
            d.spec.owner.clone(),
            d.open_category.as_str().to_owned(),
            d.spec.update_frequency.clone(),
            d.spec.version.to_string(),
            if d.closed { "closed" } else { "open" }.to_owned(),
            super::catalog_history::status_words(d),
        ] {
            out.push_str(&format!("<td>{}</td>", esc(&cell)));
        }
        out.push_str("</tr>");
    }
    out.push_str(END);
    out
}

/// Datasets in a page of `/catalog` when `limit` is not given.
pub const CATALOG_PAGE: usize = 1_000;
/// Most datasets in a page of `/catalog`.
pub const CATALOG_PAGE_MAX: usize = 10_000;
/// Largest `offset` of `/catalog` (as the OpenAPI document declares).
pub const CATALOG_OFFSET_MAX: usize = 1_000_000_000;

/// `limit` and `offset` of a catalog request; anything else is refused.
fn catalog_page(query: Option<&str>) -> Result<(usize, usize), Problem> {
    let bad = |m: String| Problem::new(ProblemCode::BadRequest, m);
    let (mut limit, mut offset) = (None, None);
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = match &*k {
            "limit" => &mut limit,
            "offset" => &mut offset,
            other => return Err(bad(format!("unknown parameter {other:?}: use limit and offset"))),
        };
        if slot.is_some() {
            return Err(bad(format!("{k} given twice")));
        }
        *slot = Some(
            v.parse::<usize>()
                .map_err(|_| bad(format!("{k} must be a non-negative integer")))?,
        );
    }
    let limit = limit.unwrap_or(CATALOG_PAGE);
    if limit == 0 || limit > CATALOG_PAGE_MAX {
        return Err(bad(format!("limit must be from 1 to {CATALOG_PAGE_MAX}")));
    }
    let offset = offset.unwrap_or(0);
    if offset > CATALOG_OFFSET_MAX {
        return Err(bad(format!("offset must be at most {CATALOG_OFFSET_MAX}")));
    }
    Ok((limit, offset))
}

/// `GET /catalog?limit=&offset=`: a page of the datasets (each with its owner, grades,
/// fields, open category and state), `Link: rel="next"` while more follow. The `ETag` names
/// the registry's last change and the page: a client that sends it back in `If-None-Match`
/// gets `304 Not Modified` without the catalog being read.
pub async fn catalog<B>(store: &Store, req: &Request<B>) -> Result<Response<RespBody>, Problem> {
    let (limit, offset) = catalog_page(req.uri().query())?;
    let html_wanted = wants_html(req);
    // The revision is read first: a body read after a change carries an older tag, which can
    // only miss, never serve stale data.
    let revision = store.last_change().await?;
    let etag = format!(
        "W/\"{revision}-{offset}-{limit}-{}\"",
        if html_wanted { "html" } else { "json" }
    );
    let tag = HeaderValue::from_str(&etag).unwrap_or_else(|_| HeaderValue::from_static("W/\"0\""));
    let matches = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == etag || t.trim() == "*");
    if matches {
        let mut r = Response::new(full(Vec::new()));
        *r.status_mut() = http::StatusCode::NOT_MODIFIED;
        r.headers_mut().insert(header::ETAG, tag);
        r.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept"));
        return Ok(r);
    }
    let (datasets, more) = store.datasets_page(limit, offset).await?;
    let html = html_wanted.then(|| {
        catalog_table(&datasets).replace(
            "</h1>",
            "</h1><p><a href=\"/objections/new\">Object to a record or report an error</a> · \
             <a href=\"/objections\">Objection register</a> · \
             <a href=\"/demands/new\">Ask for data to be opened</a> · \
             <a href=\"/demands\">Demand list</a></p>",
        )
    });
    let mut r = respond(html, super::catalog_history::catalog_json(&datasets));
    r.headers_mut().insert(header::ETAG, tag);
    if more {
        let next = format!("</catalog?limit={limit}&offset={}>; rel=\"next\"", offset + limit);
        if let Ok(v) = HeaderValue::from_str(&next) {
            r.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(r)
}

/// `GET /violations`: the published violation register, lifted measures included (with when
/// and why they were lifted).
pub async fn violations<B>(store: &Store, req: &Request<B>) -> Result<Response<RespBody>, Problem> {
    let list = store.violations().await?;
    let html = wants_html(req).then(|| {
        let rows = list
            .iter()
            .map(|v| {
                vec![
                    v.licensee.clone(),
                    v.what.clone(),
                    v.at.clone(),
                    v.measure.as_str().to_owned(),
                    v.reason.clone(),
                    match (&v.lifted_at, &v.lifted_reason) {
                        (Some(at), why) => format!("{at}: {}", why.as_deref().unwrap_or("")),
                        (None, _) => String::new(),
                    },
                ]
            })
            .collect();
        page(
            "sluice violation register",
            &["licensee", "what", "when", "measure", "reason", "lifted"],
            rows,
        )
    });
    Ok(respond(html, serde_json::to_value(&list).unwrap_or_default()))
}

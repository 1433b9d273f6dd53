//! Public pages, no certificate needed: the catalog and the violation register, as JSON or,
//! with `Accept: text/html`, as a plain HTML table.

use super::problem::Problem;
use super::store::Store;
use http::{header, HeaderValue, Request, Response};
use sluice_net::body::{full, RespBody};

fn wants_html<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

/// `GET /catalog`: every dataset with its owner, grades, fields, open category and state.
pub async fn catalog<B>(store: &Store, req: &Request<B>) -> Result<Response<RespBody>, Problem> {
    let datasets = store.datasets().await?;
    let html = wants_html(req).then(|| {
        let rows = datasets
            .iter()
            .map(|d| {
                vec![
                    d.spec.id.clone(),
                    d.spec.title.clone(),
                    d.spec.owner.clone(),
                    d.open_category.as_str().to_owned(),
                    d.spec.update_frequency.clone(),
                    d.spec.version.to_string(),
                    if d.closed { "closed" } else { "open" }.to_owned(),
                ]
            })
            .collect();
        page(
            "sluice catalog",
            &["id", "title", "owner", "category", "updated", "version", "state"],
            rows,
        )
    });
    Ok(respond(html, serde_json::to_value(&datasets).unwrap_or_default()))
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

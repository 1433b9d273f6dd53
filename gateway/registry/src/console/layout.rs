//! The console's page shell (heading, navigation, language switch) and the pieces every page
//! uses: tables of admin API rows, notices, a refusal shown in place.

use super::locale::{Labels, Lang};
use super::Ctx;
use crate::problem::Problem;
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

/// A label picked from the labels of the page's language.
pub type Label = fn(&Labels) -> &str;

/// The sections of the navigation: path segment under `/console/` and label.
pub const SECTIONS: &[(&str, Label)] = &[
    ("", |l| &l.start),
    ("licences", |l| &l.licences),
    ("licensees", |l| &l.licensees),
    ("agencies", |l| &l.agencies),
    ("gateways", |l| &l.gateways),
    ("datasets", |l| &l.datasets),
    ("scenarios", |l| &l.scenarios),
    ("fusion-rules", |l| &l.fusion_rules),
    ("violations", |l| &l.violations),
    ("objections", |l| &l.objections),
    ("applications", |l| &l.applications),
    ("demands", |l| &l.demands),
    ("usage", |l| &l.usage),
    ("changes", |l| &l.changes),
];

/// A whole page: `section` is the navigation entry it belongs to.
pub fn page(ctx: &Ctx<'_>, section: &str, title: &str, body: Markup) -> Markup {
    let l = ctx.l;
    html! {
        (DOCTYPE)
        html lang=(ctx.lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
                title { @if title != l.console { (title) " · " } (l.console) }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/htmx.min.js" defer {}
            }
            body {
                a.skip href="#main" { (l.skip_to_content) }
                header {
                    p.brand { a href="/console/" { (l.console) } }
                    p.who { (l.signed_in_as) " " strong { (ctx.admin) } }
                    nav.lang aria-label="Language" {
                        @for lang in Lang::ALL {
                            @if lang == ctx.lang {
                                span aria-current="true" lang=(lang.tag()) { (lang.labels().language_name) }
                            } @else {
                                a href=(format!("/console/lang/{}?back={}", lang.tag(), urlencode(&ctx.path_and_query)))
                                  lang=(lang.tag()) hreflang=(lang.tag()) { (lang.labels().language_name) }
                            }
                            " "
                        }
                    }
                }
                nav.sections aria-label=(l.nav_label) {
                    ul {
                        @for (slug, label) in SECTIONS {
                            li {
                                a href=(format!("/console/{slug}"))
                                  aria-current=[(*slug == section).then_some("page")] { (label(l)) }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A notice after a change went through.
pub fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}

/// A refusal of the admin API, shown where it happened.
pub fn refusal(l: &Labels, p: &Problem) -> Markup {
    html! {
        div.refusal role="alert" {
            p { strong { (l.refused) " (" (p.status().as_u16()) " " code { (p.code.code()) } ")" } }
            p { (p.detail) }
        }
    }
}

/// A [`Column`]: `col!(label, "/pointer")` names the label member of [`Labels`];
/// `col!(label, "/pointer", values)` is a column of enumerated values, shown in the page's
/// language ([`Labels::value`]).
macro_rules! col {
    ($label:ident, $pointer:literal) => {
        $crate::console::layout::Column {
            label: |l| &l.$label,
            pointer: $pointer,
            values: false,
        }
    };
    ($label:ident, $pointer:literal, values) => {
        $crate::console::layout::Column {
            label: |l| &l.$label,
            pointer: $pointer,
            values: true,
        }
    };
}
pub(crate) use col;

/// One column of a table: its label and where its value sits in a row (JSON pointer).
pub struct Column {
    /// The heading.
    pub label: Label,
    /// The JSON pointer of the value in a row.
    pub pointer: &'static str,
    /// Whether the values are enumerated (states, statuses…), shown in the page's language.
    pub values: bool,
}

impl Column {
    /// This column's value of `row` as the page shows it.
    pub fn shown(&self, l: &Labels, row: &Value) -> String {
        let v = row.pointer(self.pointer).unwrap_or(&Value::Null);
        match v.as_str() {
            Some(s) if self.values => l.value(s).to_owned(),
            _ => cell(l, v),
        }
    }
}

/// What a row offers to change (forms), as the last column.
pub type RowActions<'a> = &'a dyn Fn(&Value) -> Markup;

/// A table of admin API rows. `link` makes the first column a link to `link` + its value;
/// `actions` adds a last column of what each row offers to change.
pub fn table(
    l: &Labels,
    caption: &str,
    cols: &[Column],
    rows: &[&Value],
    link: Option<&str>,
    actions: Option<RowActions<'_>>,
) -> Markup {
    html! {
        @if rows.is_empty() {
            p { (l.no_rows) }
        } @else {
            div.scroll {
                table {
                    caption { (caption) " — " (rows.len()) " " (l.rows_shown) }
                    thead { tr {
                        @for c in cols { th scope="col" { ((c.label)(l)) } }
                        @if actions.is_some() { th scope="col" { (l.actions) } }
                    } }
                    tbody {
                        @for row in rows {
                            tr {
                                @for (i, c) in cols.iter().enumerate() {
                                    @let v = c.shown(l, row);
                                    @if i == 0 {
                                        @if let Some(prefix) = link {
                                            th scope="row" { a href=(format!("{prefix}{}", urlencode(&v))) { (v) } }
                                        } @else {
                                            th scope="row" { (v) }
                                        }
                                    } @else {
                                        td { (v) }
                                    }
                                }
                                @if let Some(actions) = actions { td.actions { (actions(row)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A JSON value as a table cell: text as is, `null` as a dash, lists joined, objects as
/// `key: value` pairs.
pub fn cell(l: &Labels, v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::Bool(true) => l.yes.clone(),
        Value::Bool(false) => l.no.clone(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => a.iter().map(|v| cell(l, v)).collect::<Vec<_>>().join(", "),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}: {}", cell(l, v)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Whether any of `cols` of `row` contains `needle` (case-insensitive; empty matches all).
pub fn matches(l: &Labels, row: &Value, cols: &[Column], needle: &str) -> bool {
    let needle = needle.to_lowercase();
    needle.is_empty()
        || cols
            .iter()
            .any(|c| c.shown(l, row).to_lowercase().contains(&needle))
}

/// `s` percent-encoded for a query value or path segment.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

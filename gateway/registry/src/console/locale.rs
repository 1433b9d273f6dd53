//! The console's languages: one TOML file of labels per locale (`locales/en.toml`,
//! `locales/zh.toml`), read into [`Labels`] whose every member is required, so a file that
//! misses or misspells a label fails the unit test, not a page.

use http::HeaderMap;
use serde::Deserialize;
use std::sync::LazyLock;

/// A language the console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Simplified Chinese.
    Zh,
}

/// The cookie that keeps an administrator's choice of language.
pub const COOKIE: &str = "sluice_lang";

impl Lang {
    /// Every language, in the order the switch shows them.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Zh];

    /// The BCP 47 tag (`lang` attribute, cookie value, URL segment).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The language for tag `t`.
    pub fn from_tag(t: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.tag() == t)
    }

    /// The labels in this language.
    pub fn labels(self) -> &'static Labels {
        static EN: LazyLock<Labels> = LazyLock::new(|| parse(include_str!("locales/en.toml")));
        static ZH: LazyLock<Labels> = LazyLock::new(|| parse(include_str!("locales/zh.toml")));
        match self {
            Lang::En => &EN,
            Lang::Zh => &ZH,
        }
    }

    /// The language of a request: the cookie's choice, else the first of `Accept-Language`
    /// the console speaks, else English.
    pub fn negotiate(headers: &HeaderMap) -> Lang {
        let cookie = headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .and_then(|(_, v)| Lang::from_tag(v));
        if let Some(l) = cookie {
            return l;
        }
        headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(',')
            .filter_map(|part| {
                let tag = part.split(';').next()?.trim().to_ascii_lowercase();
                Lang::ALL
                    .into_iter()
                    .find(|l| tag == l.tag() || tag.starts_with(&format!("{}-", l.tag())))
            })
            .next()
            .unwrap_or(Lang::En)
    }
}

// The files are compiled in and checked by the unit test below: a broken file is a build
// that never ships, not a page that fails.
#[allow(clippy::expect_used)]
fn parse(text: &str) -> Labels {
    toml::from_str(text).expect("console locale file")
}

/// Every label the console shows, in one language.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Labels {
    pub language_name: String,
    pub console: String,
    pub skip_to_content: String,
    pub signed_in_as: String,
    pub nav_label: String,
    pub start: String,
    pub licences: String,
    pub licensees: String,
    pub agencies: String,
    pub gateways: String,
    pub datasets: String,
    pub scenarios: String,
    pub fusion_rules: String,
    pub violations: String,
    pub objections: String,
    pub applications: String,
    pub demands: String,
    pub usage: String,
    pub changes: String,
    pub search: String,
    pub search_text: String,
    pub any: String,
    pub no_rows: String,
    pub rows_shown: String,
    pub open: String,
    pub grant_licence: String,
    pub grant: String,
    pub licence: String,
    pub licensee: String,
    pub dataset: String,
    pub scenario: String,
    pub state: String,
    pub fields: String,
    pub fields_help: String,
    pub field_rule: String,
    pub row_filter: String,
    pub rate_per_second: String,
    pub burst: String,
    pub requests_per_day: String,
    pub records_per_day: String,
    pub valid_from: String,
    pub valid_until: String,
    pub mode: String,
    pub reason: String,
    pub reason_help: String,
    pub expert_review: String,
    pub expert_review_help: String,
    pub fusion_conflict: String,
    pub fusion_conflict_help: String,
    pub suspend: String,
    pub resume: String,
    pub revoke: String,
    pub revoke_warning: String,
    pub granted: String,
    pub suspended: String,
    pub resumed: String,
    pub revoked: String,
    pub refused: String,
    pub choose: String,
    pub terms: String,
    pub history: String,
    pub id: String,
    pub name: String,
    pub title: String,
    pub description: String,
    pub credit_code: String,
    pub created_at: String,
    pub review_days: String,
    pub agency: String,
    pub url: String,
    pub retired: String,
    pub revision: String,
    pub registry_revision: String,
    pub behind: String,
    pub last_seen: String,
    pub age_s: String,
    pub stale: String,
    pub last_usage_report: String,
    pub cert_not_after: String,
    pub cert_days_left: String,
    pub federation_health: String,
    pub stale_gateways: String,
    pub open_category: String,
    pub grades: String,
    pub closed: String,
    pub members: String,
    pub what: String,
    pub measure: String,
    pub at: String,
    pub lifted_at: String,
    pub kind: String,
    pub record_key: String,
    pub status: String,
    pub filed_at: String,
    pub due_by: String,
    pub count: String,
    pub month: String,
    pub requests: String,
    pub records: String,
    pub refusals: String,
    pub quota_requests: String,
    pub quota_records: String,
    pub admin: String,
    pub action: String,
    pub target: String,
    pub yes: String,
    pub no: String,
    pub waiting: String,
    pub in_force: String,
    pub summary: String,
    pub error: String,
    pub dataset_fields: String,
    pub actions: String,
    pub recorded: String,
    pub close: String,
    pub reopen: String,
    pub lift: String,
    pub retire: String,
    pub reject: String,
    pub ask: String,
    pub uphold: String,
    pub withdraw: String,
    pub resolve: String,
    pub approve: String,
    pub approve_application: String,
    pub purpose: String,
    pub fields_asked: String,
    /// The words for the values of states, statuses, measures, categories and kinds the
    /// admin API answers (`suspended`, `non_open`, `more-info`…); a value not listed shows as
    /// the API writes it.
    pub values: std::collections::BTreeMap<String, String>,
}

impl Labels {
    /// How value `v` of an enumerated column reads in this language.
    pub fn value<'a>(&'a self, v: &'a str) -> &'a str {
        self.values.get(v).map_or(v, String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn every_locale_file_holds_every_label() {
        for l in Lang::ALL {
            let labels: Labels = toml::from_str(match l {
                Lang::En => include_str!("locales/en.toml"),
                Lang::Zh => include_str!("locales/zh.toml"),
            })
            .unwrap_or_else(|e| panic!("locales/{}.toml: {e}", l.tag()));
            assert!(!labels.licences.is_empty());
        }
        assert_eq!(Lang::Zh.labels().licences, "许可");
        assert_eq!(Lang::Zh.labels().value("suspended"), "已暂停");
        assert_eq!(Lang::Zh.labels().value("lic-1"), "lic-1");
        let en: Vec<&String> = Lang::En.labels().values.keys().collect();
        let zh: Vec<&String> = Lang::Zh.labels().values.keys().collect();
        assert_eq!(en, zh, "both languages name the same values");
        assert_eq!(Lang::En.labels().licences, "Licences");
    }

    #[test]
    fn the_cookie_wins_over_accept_language() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::negotiate(&h), Lang::En);
        h.insert(
            http::header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("fr;q=1, zh-CN;q=0.9, en;q=0.5"),
        );
        assert_eq!(Lang::negotiate(&h), Lang::Zh);
        h.insert(
            http::header::COOKIE,
            HeaderValue::from_static("a=b; sluice_lang=en"),
        );
        assert_eq!(Lang::negotiate(&h), Lang::En);
        h.insert(http::header::COOKIE, HeaderValue::from_static("sluice_lang=xx"));
        assert_eq!(Lang::negotiate(&h), Lang::Zh);
    }
}

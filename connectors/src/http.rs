//! The HTTP connector: an agency REST endpoint reached with a pooled hyper client.
//!
//! Only allow-listed query parameters pass, the row filter's equality conditions are pushed
//! down as query parameters when mapped, hop-by-hop headers never cross, and both the connect
//! and the response-head waits are bounded. Plain `http://` sources share one pool; a source
//! with TLS settings (`https://`, mutual TLS: [`crate::upstream_tls`]) has its own. A source
//! may authenticate with static headers, a client certificate, OAuth2 client credentials
//! ([`crate::oauth`]) or several of them.

use crate::oauth::{OAuth2Config, TokenSource};
use crate::source::{
    BodyError, BoxFuture, Connector, Fetch, FetchError, SourceBody, SourceData, SourcePages,
};
use crate::upstream_tls::UpstreamTls;
use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use sluice_policy::query::{ClientQuery, FilterOp};
use sluice_policy::rowfilter::{Op, RowFilter};
use sluice_policy::stream::InputFormat;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How a dataset's records are fetched from an HTTP source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// Upstream URL of the records, e.g. `http://127.0.0.1:9000/hydrants`.
    pub url: String,
    /// Body format: `json` (array), `ndjson` or `csv`.
    #[serde(default)]
    pub format: SourceFormat,
    /// For `json`: dotted path of the records array inside an envelope object, e.g. `data.items`.
    #[serde(default)]
    pub records_path: Option<String>,
    /// Client query parameters passed to the upstream (all others are dropped).
    #[serde(default)]
    pub query_allow: Vec<String>,
    /// Upstream parameter carrying the page size.
    #[serde(default = "default_limit_param")]
    pub limit_param: String,
    /// Upstream parameter carrying the offset.
    #[serde(default = "default_offset_param")]
    pub offset_param: String,
    /// Row-filter fields the upstream can filter on, mapped to its query parameter.
    #[serde(default)]
    pub filter_params: BTreeMap<String, String>,
    /// Connect timeout, ms.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Time to the response head, ms.
    #[serde(default = "default_response_timeout")]
    pub response_timeout_ms: u64,
    /// Longest wait for the next body chunk, ms.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
    /// Request headers for the source (an API key, a bearer token), each value read from a
    /// file or an environment variable, never written in the config.
    #[serde(default)]
    pub headers: Vec<SecretHeader>,
    /// TLS settings: the roots for an `https://` URL, a client certificate for mutual TLS.
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    /// OAuth2 client credentials: a bearer token from the token endpoint on every request.
    #[serde(default)]
    pub oauth2: Option<OAuth2Config>,
    /// Records the gateway asks the source for per request when the page's filters cannot
    /// all be pushed down (at most what the source serves in one page): the gateway then
    /// reads the source's pages from its first record until its own page is full.
    #[serde(default = "default_page_size")]
    pub page_size: u64,
}

fn default_page_size() -> u64 {
    1_000
}

/// A request header whose value comes from a file (its content, without the final line
/// break) or from an environment variable: `{ name = "Authorization", file = "/run/secrets/t" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretHeader {
    /// Header name.
    pub name: String,
    /// File holding the value (relative paths from the config file's folder).
    #[serde(default)]
    pub file: Option<std::path::PathBuf>,
    /// Environment variable holding the value.
    #[serde(default)]
    pub env: Option<String>,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded, never configurable.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers the gateway sets itself on a source request: not configurable either.
const GATEWAY_HEADERS: [&str; 4] = ["host", "accept", "x-request-id", "content-length"];

impl SecretHeader {
    /// Where the value comes from, for messages (never the value).
    pub fn origin(&self) -> String {
        match (&self.file, &self.env) {
            (Some(f), _) => format!("file {}", f.display()),
            (None, Some(e)) => format!("environment variable {e}"),
            (None, None) => "nowhere".into(),
        }
    }

    /// Reads the value and checks the name: the header as sent, marked sensitive.
    pub fn load(&self) -> Result<(header::HeaderName, header::HeaderValue), String> {
        let name = header::HeaderName::from_bytes(self.name.as_bytes())
            .map_err(|_| format!("{:?} is not a header name", self.name))?;
        if GATEWAY_HEADERS.contains(&name.as_str()) || HOP_BY_HOP.contains(&name.as_str()) {
            return Err(format!("{name} is set by the gateway, not by the config"));
        }
        let raw = match (&self.file, &self.env) {
            (Some(f), None) => std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?,
            (None, Some(e)) => {
                std::env::var(e).map_err(|_| format!("environment variable {e} is not set"))?
            }
            _ => return Err("give exactly one of file and env".into()),
        };
        let raw = raw.strip_suffix('\n').unwrap_or(&raw);
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let mut value = header::HeaderValue::from_str(raw)
            .map_err(|_| format!("the value from {} is not a valid header value", self.origin()))?;
        value.set_sensitive(true);
        Ok((name, value))
    }
}

fn default_limit_param() -> String {
    "limit".into()
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_connect_timeout() -> u64 {
    2_000
}
fn default_response_timeout() -> u64 {
    10_000
}
fn default_read_timeout() -> u64 {
    10_000
}

/// Body format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// JSON array, or an envelope with `records_path`.
    #[default]
    Json,
    /// Newline-delimited JSON.
    Ndjson,
    /// CSV with a header row.
    Csv,
}

impl HttpSourceConfig {
    /// Problems with the config, as (relative path, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match self.url.parse::<Uri>() {
            Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {}
            Ok(_) => out.push(("url".into(), "must be an absolute http:// or https:// URL".into())),
            Err(e) => out.push(("url".into(), format!("not a URL: {e}"))),
        }
        let https =
            self.url.starts_with("https://") || self.oauth2.as_ref().is_some_and(OAuth2Config::is_https);
        match &self.tls {
            None if https => out.push((
                "tls.ca".into(),
                "an https:// URL needs the CA its certificate chains to (there are no system roots)".into(),
            )),
            None => {}
            Some(_) if !https => out.push((
                "tls".into(),
                "the source has no https:// URL (url or oauth2.token_url)".into(),
            )),
            Some(t) => out.extend(t.validate()),
        }
        if let Some(o) = &self.oauth2 {
            out.extend(o.validate());
        }
        if self.records_path.is_some() && self.format != SourceFormat::Json {
            out.push(("records_path".into(), "only applies to format = \"json\"".into()));
        }
        if self.connect_timeout_ms == 0 || self.response_timeout_ms == 0 || self.read_timeout_ms == 0 {
            out.push(("connect_timeout_ms".into(), "timeouts must be positive".into()));
        }
        for (i, h) in self.headers.iter().enumerate() {
            if let Err(e) = h.load() {
                out.push((format!("headers[{i}]"), e));
            } else if self.oauth2.is_some() && h.name.eq_ignore_ascii_case("authorization") {
                out.push((format!("headers[{i}]"), "Authorization is set by oauth2".into()));
            }
        }
        out
    }

    /// Makes relative header, TLS and secret files relative to `base` (the config file's
    /// folder).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        for h in &mut self.headers {
            if let Some(f) = h.file.as_mut() {
                crate::config::resolve_path(base, f);
            }
        }
        if let Some(t) = &mut self.tls {
            t.resolve_paths(base);
        }
        if let Some(o) = &mut self.oauth2 {
            o.resolve_paths(base);
        }
    }

    /// Each credential, as (what, where it comes from), never its value.
    pub fn credentials(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.origin()))
            .collect();
        if let Some(UpstreamTls {
            cert: Some(cert),
            key: Some(key),
            ..
        }) = &self.tls
        {
            out.push((
                "client certificate".into(),
                format!("file {} (key file {})", cert.display(), key.display()),
            ));
        }
        if let Some(o) = &self.oauth2 {
            out.push(("oauth2 client secret".into(), o.client_secret.origin()));
        }
        out
    }

    /// The policy crate's input format for this source.
    pub fn input_format(&self) -> InputFormat {
        match (self.format, &self.records_path) {
            (SourceFormat::Json, None) => InputFormat::JsonArray,
            (SourceFormat::Json, Some(p)) => InputFormat::JsonAt(p.split('.').map(str::to_owned).collect()),
            (SourceFormat::Ndjson, _) => InputFormat::Ndjson,
            (SourceFormat::Csv, _) => InputFormat::Csv,
        }
    }
}

/// A pooled HTTP client: the one all plain `http://` sources of a gateway share, or a source's
/// own with its TLS settings.
#[derive(Clone)]
pub struct UpstreamClient {
    pool: Pool,
}

#[derive(Clone)]
enum Pool {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamClient")
    }
}

impl UpstreamClient {
    /// A client with connection pooling; `connect_timeout` bounds TCP connects.
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            pool: Pool::Plain(builder().build(connector(connect_timeout))),
        }
    }

    /// A client that speaks TLS with `config` to `https://` URLs (and plain HTTP to
    /// `http://` ones, e.g. a token endpoint on the same host).
    pub fn with_tls(connect_timeout: Duration, config: rustls::ClientConfig) -> Self {
        let mut http = connector(connect_timeout);
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Self {
            pool: Pool::Tls(builder().build(https)),
        }
    }

    /// Sends a request; resolves when the response head arrives (unbounded: callers set the
    /// wait).
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<hyper::body::Incoming>, FetchError> {
        match &self.pool {
            Pool::Plain(c) => c.request(req).await,
            Pool::Tls(c) => c.request(req).await,
        }
        .map_err(|e| FetchError::Unreachable(error_chain(&e)))
    }

    /// Fetches one page with the source's headers (and a bearer token); resolves when the
    /// response head arrives.
    pub async fn fetch(
        &self,
        source: &HttpSourceConfig,
        extra: &[(header::HeaderName, header::HeaderValue)],
        authorization: Option<header::HeaderValue>,
        fetch: &Fetch<'_>,
    ) -> Result<(HeaderMap, SourceBody), FetchError> {
        let uri = build_uri(source, fetch)?;
        let mut req = Request::get(uri)
            .header(header::ACCEPT, accept_of(source.format))
            .header("x-request-id", fetch.request_id)
            .body(Full::default())
            .map_err(|e| FetchError::Url(e.to_string()))?;
        for (name, value) in extra {
            req.headers_mut().append(name.clone(), value.clone());
        }
        if let Some(value) = authorization {
            req.headers_mut().insert(header::AUTHORIZATION, value);
        }
        let wait = Duration::from_millis(source.response_timeout_ms);
        let resp = tokio::time::timeout(wait, self.send(req))
            .await
            .map_err(|_| FetchError::Timeout(wait))??;
        if !resp.status().is_success() {
            return Err(FetchError::Status(resp.status()));
        }
        let (parts, body) = resp.into_parts();
        let body = body.map_err(|e| BodyError(error_chain(&e))).boxed();
        Ok((strip_hop_by_hop(parts.headers), body))
    }
}

fn connector(connect_timeout: Duration) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http
}

fn builder() -> hyper_util::client::legacy::Builder {
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64);
    b
}

/// An HTTP source: its config and what its fetches need, read when it was made.
#[derive(Debug)]
pub struct HttpSource {
    config: Arc<HttpSourceConfig>,
    /// `Err` when a credential or TLS file could not be read: every fetch is refused.
    ready: Result<Arc<Ready>, String>,
}

/// A fetch that owns what it names, for the source's later pages.
struct OwnedFetch {
    params: Vec<(String, String)>,
    row_filter: Option<RowFilter>,
    query: Option<ClientQuery>,
    request_id: String,
}

impl OwnedFetch {
    fn new(f: &Fetch<'_>) -> Self {
        Self {
            params: f
                .params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            row_filter: f.row_filter.cloned(),
            query: f.query.cloned(),
            request_id: f.request_id.to_owned(),
        }
    }

    fn page(&self, offset: u64, limit: u64) -> Fetch<'_> {
        Fetch {
            limit,
            offset,
            params: self
                .params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            row_filter: self.row_filter.as_ref(),
            query: self.query.as_ref(),
            request_id: &self.request_id,
            plan: None,
            after: None,
        }
    }
}

/// The query parameters a fetch's filters push down to the source (each an equality on a
/// field `filter_params` maps; the first value per parameter wins), and whether they are all
/// of its filters: then the source's pages are the gateway's pages.
fn pushed_filters<'s, 'f>(
    source: &'s HttpSourceConfig,
    fetch: &Fetch<'f>,
) -> (Vec<(&'s str, &'f str)>, bool) {
    let mut pushed: Vec<(&'s str, &'f str)> = Vec::new();
    let mut all = true;
    let mut take = |field: &str, value: &'f str| -> bool {
        let Some(param) = source.filter_params.get(field) else {
            return false;
        };
        match pushed.iter().find(|(p, _)| *p == param.as_str()) {
            Some((_, v)) => *v == value,
            None => {
                pushed.push((param.as_str(), value));
                true
            }
        }
    };
    for c in fetch.row_filter.iter().flat_map(|f| &f.conditions) {
        all &= match (c.op, c.values.first()) {
            (Op::Eq, Some(v)) => take(&c.field, v) && c.values.len() == 1,
            _ => false,
        };
    }
    for f in fetch.query.iter().flat_map(|q| &q.filters) {
        all &= match (&f.op, f.negated) {
            (FilterOp::Eq(v), false) => take(&f.column, v),
            _ => false,
        };
    }
    (pushed, all)
}

/// Whether the source takes every filter of the fetch ([`pushed_filters`]).
pub fn pushes_down_all(source: &HttpSourceConfig, fetch: &Fetch<'_>) -> bool {
    pushed_filters(source, fetch).1
}

/// What an HTTP source's fetches use.
struct Ready {
    headers: Vec<(header::HeaderName, header::HeaderValue)>,
    client: UpstreamClient,
    oauth: Option<TokenSource>,
}

impl std::fmt::Debug for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ready")
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("oauth", &self.oauth)
            .finish_non_exhaustive()
    }
}

impl HttpSource {
    /// A connector for `config`, over the `shared` pool unless it has TLS settings (then over
    /// its own). Header values, the TLS files and the OAuth2 secret are read now (the config
    /// was validated, which read them too); one that cannot be read any more fails every
    /// fetch of this source until the next reload, never sends without it.
    pub fn new(config: HttpSourceConfig, shared: UpstreamClient) -> Self {
        let ready = Ready::load(&config, shared).map(Arc::new);
        if let Err(e) = &ready {
            tracing::error!(url = %config.url, error = %e, "source credentials unavailable; the source is refused until a reload");
        }
        Self {
            config: Arc::new(config),
            ready,
        }
    }

    fn ready(&self) -> Result<Arc<Ready>, FetchError> {
        self.ready.clone().map_err(FetchError::Credentials)
    }
}

/// One request to the source, with its OAuth2 token when it has one.
async fn fetch_page(
    config: &HttpSourceConfig,
    ready: &Ready,
    fetch: &Fetch<'_>,
) -> Result<SourceBody, FetchError> {
    let page = |token: Option<header::HeaderValue>| ready.client.fetch(config, &ready.headers, token, fetch);
    let Some(oauth) = &ready.oauth else {
        return page(None).await.map(|(_, body)| body);
    };
    let token = oauth.token().await?;
    match page(Some(token.header.clone())).await {
        // The upstream refused the token (revoked, rotated, expired early): one new
        // token, one more try.
        Err(FetchError::Status(StatusCode::UNAUTHORIZED)) => {
            tracing::info!(url = %config.url, request_id = fetch.request_id, "upstream refused the oauth2 token; asking for a new one");
            oauth.refused(&token).await;
            let token = oauth.token().await?;
            page(Some(token.header)).await
        }
        other => other,
    }
    .map(|(_, body)| body)
}

impl Ready {
    fn load(config: &HttpSourceConfig, shared: UpstreamClient) -> Result<Self, String> {
        let headers = config
            .headers
            .iter()
            .map(SecretHeader::load)
            .collect::<Result<Vec<_>, _>>()?;
        let client = match &config.tls {
            Some(tls) => UpstreamClient::with_tls(
                Duration::from_millis(config.connect_timeout_ms),
                tls.client_config().map_err(|e| e.to_string())?,
            ),
            None => shared,
        };
        let oauth = config
            .oauth2
            .as_ref()
            .map(|o| {
                TokenSource::new(
                    o,
                    client.clone(),
                    Duration::from_millis(config.response_timeout_ms),
                )
            })
            .transpose()?;
        Ok(Self {
            headers,
            client,
            oauth,
        })
    }
}

impl Connector for HttpSource {
    fn input_format(&self) -> InputFormat {
        self.config.input_format()
    }

    fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.config.read_timeout_ms)
    }

    fn fetch<'a>(&'a self, fetch: &'a Fetch<'a>) -> BoxFuture<'a, Result<SourceData, FetchError>> {
        Box::pin(async move {
            let ready = self.ready()?;
            if pushes_down_all(&self.config, fetch) {
                return fetch_page(&self.config, &ready, fetch)
                    .await
                    .map(SourceData::Bytes);
            }
            // Filters the source cannot take: its pages from its first record, each asked for
            // when the gateway's page needs more; the gateway skips earlier pages' records.
            let per_page = self.config.page_size;
            let owned = Arc::new(OwnedFetch::new(fetch));
            let first = fetch_page(&self.config, &ready, &owned.page(0, per_page)).await?;
            let config = self.config.clone();
            let rest = futures_util::stream::unfold(1u64, move |k| {
                let (config, ready, owned) = (config.clone(), ready.clone(), owned.clone());
                async move {
                    let offset = k.checked_mul(per_page)?;
                    let page = fetch_page(&config, &ready, &owned.page(offset, per_page)).await;
                    Some((page, k + 1))
                }
            });
            Ok(SourceData::Pages(SourcePages {
                first,
                per_page,
                rest: Box::pin(rest),
            }))
        })
    }
}

fn accept_of(f: SourceFormat) -> &'static str {
    match f {
        SourceFormat::Json => "application/json",
        SourceFormat::Ndjson => "application/x-ndjson",
        SourceFormat::Csv => "text/csv",
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Builds the upstream URI: the source URL, allow-listed client parameters, pushed-down
/// filter conditions (the row filter's `=` conditions and the licensee's `eq` filters on
/// fields mapped in `filter_params`; a parameter is sent once, the row filter's first), and
/// the page. The masker applies every filter again, so a source that ignores one only makes
/// pages shorter.
pub fn build_uri(source: &HttpSourceConfig, fetch: &Fetch<'_>) -> Result<Uri, FetchError> {
    let mut url = url::Url::parse(&source.url).map_err(|e| FetchError::Url(e.to_string()))?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in &fetch.params {
            if source.query_allow.iter().any(|a| a == k)
                && *k != source.limit_param
                && *k != source.offset_param
            {
                q.append_pair(k, v);
            }
        }
        for (param, value) in pushed_filters(source, fetch).0 {
            q.append_pair(param, value);
        }
        q.append_pair(&source.limit_param, &fetch.limit.to_string());
        q.append_pair(&source.offset_param, &fetch.offset.to_string());
    }
    url.as_str()
        .parse::<Uri>()
        .map_err(|e| FetchError::Url(e.to_string()))
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those named by `Connection`.
pub fn strip_hop_by_hop(mut headers: HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for h in named {
        headers.remove(h.as_str());
    }
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_policy::query::ClientQuery;
    use sluice_policy::rowfilter::RowFilter;

    fn source() -> HttpSourceConfig {
        toml_like(
            "http://127.0.0.1:9/hydrants?token=fixed",
            vec!["district".into()],
            [("district".to_owned(), "d".to_owned())].into(),
        )
    }

    fn toml_like(
        url: &str,
        query_allow: Vec<String>,
        filter_params: BTreeMap<String, String>,
    ) -> HttpSourceConfig {
        HttpSourceConfig {
            url: url.into(),
            format: SourceFormat::Json,
            records_path: None,
            query_allow,
            limit_param: "limit".into(),
            offset_param: "offset".into(),
            filter_params,
            connect_timeout_ms: 1000,
            response_timeout_ms: 1000,
            read_timeout_ms: 1000,
            headers: Vec::new(),
            tls: None,
            oauth2: None,
            page_size: 1000,
        }
    }

    #[test]
    fn a_fetch_is_pushed_down_whole_only_when_every_filter_is_an_equality_on_one_mapped_value() {
        let source = toml_like(
            "http://127.0.0.1:9/hydrants",
            Vec::new(),
            [
                ("district".to_owned(), "d".to_owned()),
                ("status".to_owned(), "s".to_owned()),
            ]
            .into_iter()
            .collect(),
        );
        let q = |pairs: &[(&str, &str)]| ClientQuery::from_pairs(pairs.iter().copied()).unwrap();
        let whole = |rf: Option<&str>, query: &ClientQuery| {
            let rf = rf.map(|r| RowFilter::parse(r).unwrap());
            let fetch = Fetch {
                row_filter: rf.as_ref(),
                query: Some(query),
                ..Fetch::default()
            };
            pushes_down_all(&source, &fetch)
        };
        assert!(whole(None, &q(&[])));
        assert!(whole(Some("district = 'A'"), &q(&[("status", "eq.x")])));
        assert!(
            whole(Some("district = 'A'"), &q(&[("district", "eq.A")])),
            "the same value twice"
        );
        assert!(
            !whole(Some("district = 'A'"), &q(&[("district", "eq.B")])),
            "one parameter, two values"
        );
        assert!(!whole(Some("district != 'A'"), &q(&[])), "not an equality");
        assert!(!whole(None, &q(&[("status", "not.eq.x")])), "negated");
        assert!(!whole(None, &q(&[("status", "in.(x,y)")])));
        assert!(!whole(None, &q(&[("id", "eq.H1")])), "not mapped");
    }

    #[test]
    fn only_allowed_parameters_pass_and_filters_push_down() {
        let f = RowFilter::parse("district = 'Huang pu' and status != 'x'").unwrap();
        let fetch = Fetch {
            limit: 10,
            offset: 20,
            params: vec![("district", "a&b"), ("secret", "1"), ("limit", "999")],
            row_filter: Some(&f),
            query: None,
            request_id: "r1",
            ..Fetch::default()
        };
        let uri = build_uri(&source(), &fetch).unwrap().to_string();
        assert_eq!(
            uri,
            "http://127.0.0.1:9/hydrants?token=fixed&district=a%26b&d=Huang+pu&limit=10&offset=20"
        );
    }

    #[test]
    fn the_licensees_eq_filters_push_down_once_and_never_negated() {
        let q = |pairs: &[(&str, &str)]| ClientQuery::from_pairs(pairs.iter().copied()).unwrap();
        let uri = |row: Option<&RowFilter>, query: &ClientQuery| {
            let fetch = Fetch {
                limit: 10,
                offset: 0,
                params: Vec::new(),
                row_filter: row,
                query: Some(query),
                request_id: "r1",
                ..Fetch::default()
            };
            build_uri(&source(), &fetch).unwrap().to_string()
        };
        let base = "http://127.0.0.1:9/hydrants?token=fixed";
        assert_eq!(
            uri(None, &q(&[("district", "eq.Xu hui")])),
            format!("{base}&d=Xu+hui&limit=10&offset=0")
        );
        // Negated, other operators and unmapped fields stay with the masker.
        for pairs in [
            &[("district", "not.eq.A")][..],
            &[("district", "in.(A,B)")],
            &[("status", "eq.ok")],
        ] {
            assert_eq!(
                uri(None, &q(pairs)),
                format!("{base}&limit=10&offset=0"),
                "{pairs:?}"
            );
        }
        // The row filter's condition goes first; the parameter is sent once.
        let f = RowFilter::parse("district = 'Huangpu'").unwrap();
        assert_eq!(
            uri(Some(&f), &q(&[("district", "eq.Xuhui")])),
            format!("{base}&d=Huangpu&limit=10&offset=0")
        );
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("content-type", "application/json".parse().unwrap());
        let h = strip_hop_by_hop(h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }

    #[test]
    fn validate_names_bad_values() {
        let mut s = source();
        s.url = "ftp://x/y".into();
        s.format = SourceFormat::Csv;
        s.records_path = Some("data".into());
        let problems: Vec<String> = s.validate().into_iter().map(|p| p.0).collect();
        assert_eq!(problems, ["url", "records_path"]);
    }
}

//! OAuth2 client credentials for an HTTP source (`[sources.<id>.oauth2]`): the gateway asks
//! the token endpoint for an access token with its client id and secret (HTTP Basic, RFC 6749
//! §2.3.1), sends it as `Authorization: Bearer …`, and keeps it in a cache until
//! `refresh_before_s` before it expires (a token without `expires_in` is kept until an
//! upstream refuses it). Concurrent fetches that find no token wait for one token request; an
//! upstream's 401 drops the token it refused (once, however many fetches saw it refused). A
//! failed token request is not cached: the next fetch asks again.
//!
//! The protocol is the `oauth2` crate's; its requests go through the source's own hyper client
//! (so the token endpoint is reached with the source's TLS settings).

use crate::http::UpstreamClient;
use crate::secret::Secret;
use crate::source::FetchError;
use bytes::Bytes;
use http::header::HeaderValue;
use http_body_util::{BodyExt, Full, Limited};
use moka::future::Cache;
use moka::ops::compute::Op;
use oauth2::basic::BasicClient;
use oauth2::{
    ClientId, ClientSecret, EndpointNotSet, EndpointSet, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `[sources.<id>.oauth2]`: the client credentials grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// The token endpoint, `http://` or `https://` (then with `tls.ca`).
    pub token_url: String,
    /// The gateway's client id at the authorization server.
    pub client_id: String,
    /// The client secret, from a file or an environment variable: `{ file = "…" }`.
    pub client_secret: Secret,
    /// Scopes asked for (none: the server's default).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// How long before its expiry a token is replaced, s (at most half its lifetime).
    #[serde(default = "default_refresh_before")]
    pub refresh_before_s: u64,
}

fn default_refresh_before() -> u64 {
    30
}

impl OAuth2Config {
    /// Problems with the settings, as (path relative to the source, message); reads the secret.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match url::Url::parse(&self.token_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            Ok(_) => out.push((
                "oauth2.token_url".into(),
                "must be an absolute http:// or https:// URL".into(),
            )),
            Err(e) => out.push(("oauth2.token_url".into(), format!("not a URL: {e}"))),
        }
        if self.client_id.is_empty() {
            out.push(("oauth2.client_id".into(), "must not be empty".into()));
        }
        if let Err(e) = self.client_secret.load() {
            out.push(("oauth2.client_secret".into(), e.to_string()));
        }
        out
    }

    /// Whether the token endpoint is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.token_url.starts_with("https://")
    }

    /// Makes a relative secret file relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        self.client_secret.resolve_paths(base);
    }
}

/// Why no token could be had. Never carries the secret or a token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("oauth2 token: {0}")]
pub struct TokenError(String);

/// A transport failure of a token request, for the `oauth2` crate.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TokenHttpError(String);

/// An access token as sent (`Bearer …`, a sensitive header value), and which one it is.
#[derive(Clone)]
pub(crate) struct Token {
    /// The `Authorization` header value.
    pub header: HeaderValue,
    /// Counts the tokens this source obtained, so a refused one is dropped only once.
    generation: u64,
    /// How long it stays cached (`None`: until an upstream refuses it).
    keep: Option<Duration>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("generation", &self.generation)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

/// Each token lives in the cache for its own [`Token::keep`].
struct TokenExpiry;

impl moka::Expiry<(), Token> for TokenExpiry {
    fn expire_after_create(&self, _: &(), token: &Token, _: Instant) -> Option<Duration> {
        token.keep
    }
}

/// How long a token with this `expires_in` is used: until `refresh_before` before it expires,
/// but at least half its lifetime (a short-lived token is not fetched for every request).
fn keep_for(expires_in: Option<Duration>, refresh_before: Duration) -> Option<Duration> {
    expires_in.map(|e| e.saturating_sub(refresh_before).max(e / 2))
}

type TokenClient = BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Where an HTTP source's tokens come from, and the current one.
pub(crate) struct TokenSource {
    client: TokenClient,
    scopes: Vec<Scope>,
    http: UpstreamClient,
    wait: Duration,
    refresh_before: Duration,
    cache: Cache<(), Token>,
    issued: AtomicU64,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.client.token_uri().as_str())
            .field("client_id", &self.client.client_id().as_str())
            .finish_non_exhaustive()
    }
}

/// The largest token response read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

impl TokenSource {
    /// Reads the secret now; token requests go through `http`, each bounded by `wait`.
    pub fn new(config: &OAuth2Config, http: UpstreamClient, wait: Duration) -> Result<Self, String> {
        let secret = config
            .client_secret
            .load()
            .map_err(|e| format!("oauth2.client_secret: {e}"))?;
        let token_url =
            TokenUrl::new(config.token_url.clone()).map_err(|e| format!("oauth2.token_url: {e}"))?;
        let client = BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(secret))
            .set_token_uri(token_url);
        let cache = Cache::builder().max_capacity(1).expire_after(TokenExpiry).build();
        Ok(Self {
            client,
            scopes: config.scopes.iter().cloned().map(Scope::new).collect(),
            http,
            wait,
            refresh_before: Duration::from_secs(config.refresh_before_s),
            cache,
            issued: AtomicU64::new(0),
        })
    }

    /// The current token; without one, a new one (concurrent callers share one request).
    pub async fn token(&self) -> Result<Token, FetchError> {
        self.cache
            .try_get_with((), self.request())
            .await
            .map_err(|e| FetchError::Credentials(e.to_string()))
    }

    /// Drops `token` after an upstream refused it, unless it was already replaced.
    pub async fn refused(&self, token: &Token) {
        let generation = token.generation;
        self.cache
            .entry(())
            .and_compute_with(|current| async move {
                match current {
                    Some(t) if t.value().generation == generation => Op::Remove,
                    _ => Op::Nop,
                }
            })
            .await;
    }

    /// Asks the token endpoint for a token.
    async fn request(&self) -> Result<Token, TokenError> {
        // The client owns its pool handle (a cheap clone), so its futures borrow nothing.
        let (http, wait) = (self.http.clone(), self.wait);
        let send = move |req: oauth2::HttpRequest| send(http.clone(), wait, req);
        let response = self
            .client
            .exchange_client_credentials()
            .add_scopes(self.scopes.iter().cloned())
            .request_async(&send)
            .await
            .map_err(|e| TokenError(describe(e)))?;
        let mut header = HeaderValue::from_str(&format!("Bearer {}", response.access_token().secret()))
            .map_err(|_| TokenError("the token endpoint issued a token that is not a header value".into()))?;
        header.set_sensitive(true);
        let generation = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
        let keep = keep_for(response.expires_in(), self.refresh_before);
        tracing::debug!(token_url = %self.client.token_uri().as_str(), generation, ?keep, "oauth2 token obtained");
        Ok(Token {
            header,
            generation,
            keep,
        })
    }
}

/// What went wrong with a token request, in words that carry neither the secret nor any part
/// of the endpoint's answer but its error code and description.
fn describe(e: RequestTokenError<TokenHttpError, oauth2::basic::BasicErrorResponse>) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => format!("the token endpoint refused: {r}"),
        RequestTokenError::Request(e) => format!("token endpoint unreachable: {e}"),
        RequestTokenError::Parse(..) => "the token endpoint's answer is not a token response".into(),
        RequestTokenError::Other(m) => format!("token endpoint: {m}"),
    }
}

/// The `oauth2` crate's HTTP client: one request over the source's hyper client, the answer
/// read whole (up to 64 KiB) within `wait`.
async fn send(
    http: UpstreamClient,
    wait: Duration,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, TokenHttpError> {
    let request = request.map(|b| Full::new(Bytes::from(b)));
    let exchange = async {
        let response = http
            .send(request)
            .await
            .map_err(|e| TokenHttpError(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_TOKEN_RESPONSE)
            .collect()
            .await
            .map_err(|e| TokenHttpError(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok(http::Response::from_parts(parts, body.to_vec()))
    };
    tokio::time::timeout(wait, exchange)
        .await
        .map_err(|_| TokenHttpError(format!("no answer within {wait:?}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_kept_until_shortly_before_expiry_or_half_its_life() {
        let s = Duration::from_secs;
        assert_eq!(keep_for(Some(s(3600)), s(30)), Some(s(3570)));
        assert_eq!(keep_for(Some(s(40)), s(30)), Some(s(20)));
        assert_eq!(keep_for(Some(s(2)), s(30)), Some(s(1)));
        assert_eq!(keep_for(Some(s(2)), s(0)), Some(s(2)));
        assert_eq!(keep_for(None, s(30)), None);
    }
}

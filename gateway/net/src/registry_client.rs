//! The one HTTPS client that talks to the registry: hyper over tokio-rustls, presenting a
//! gateway or admin certificate (or none, for public pages), the registry's server certificate
//! verified against the configured CA.
//!
//! The gateway uses [`RegistryClient::poll`] and [`RegistryClient::report_usage`]; these keep
//! their connection open after a complete answer and reuse it for the next call (a gateway
//! long-polls back to back, so a change costs the registry one request per gateway, not a TLS
//! handshake and a certificate parse each). Both are safe to send twice (a poll reads; a usage
//! report carries its id and a repeat is acknowledged as a duplicate), so one that fails on a
//! reused connection before any answer (the registry closed it meanwhile) is sent again once
//! on a new connection. `sluice admin`, the demo and the tests use [`RegistryClient::send`]
//! and its shorthands, which open a connection per request (a new handshake each, so a
//! changed certificate or revocation list is met at once).
//!
//! Contract: `GET /v1/snapshot` answers the current `SignedSnapshot`;
//! `GET /v1/snapshot?after=<rev>&wait=<s>` answers when the revision exceeds `after`, else 304
//! (or 204) at the timeout; with `&delta=1` the answer may be a `SignedDelta` from `after`
//! (header `Sluice-Delta-Base`); `POST /v1/usage` takes a usage report and answers
//! `{"accepted": n, "duplicate": bool}`.

use crate::tls::{install_provider, load_certs, load_key, TlsError};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use serde::Serialize;
use sluice_policy::snapshot::{SignedDelta, SignedSnapshot};
pub use sluice_policy::usage::UsageAck;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Largest response body accepted (a whole snapshot), bytes. A city-scale registry's snapshot
/// (200,000 licences) is about 111 MB signed; deltas are a few kilobytes.
const MAX_BODY: usize = 512 * 1024 * 1024;
/// Time to connect and complete the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for the registry to answer a usage report once connected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept for reuse (a gateway has a poll and at most a usage report in flight).
const IDLE_KEPT: usize = 2;
/// How long after its last answer an idle connection is still reused; an older one is closed
/// instead. Below the registry's 10 s header-read timeout, which closes idle connections, so a
/// request rarely meets a connection the registry is closing (and is sent again if it does).
const IDLE_REUSE: Duration = Duration::from_secs(4);

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `https://host[:port][/base]`.
    #[error("registry URL {url}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS material could not be loaded.
    #[error(transparent)]
    File(#[from] TlsError),
    /// rustls refused the material.
    #[error("TLS: {0}")]
    Tls(String),
    /// Connecting, TLS or HTTP failed.
    #[error("{0}")]
    Transport(String),
    /// The registry answered something unexpected.
    #[error("registry answered {status}: {detail}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        detail: String,
    },
    /// The body is not what the contract says.
    #[error("unexpected body: {0}")]
    Body(String),
}

/// A response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The problem code (last segment of `type`) of a problem+json reply.
    pub fn problem(&self) -> Option<String> {
        let ct = self.headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
        if ct != "application/problem+json" {
            return None;
        }
        self.json()["type"]
            .as_str()?
            .rsplit('/')
            .next()
            .map(str::to_owned)
    }

    fn unexpected(&self) -> ClientError {
        ClientError::Status {
            status: self.status.as_u16(),
            detail: String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).into_owned(),
        }
    }
}

/// What a snapshot poll brought.
#[derive(Debug, Clone)]
pub enum Update {
    /// A whole snapshot.
    Snapshot(SignedSnapshot),
    /// A delta from the revision the poll named.
    Delta(SignedDelta),
}

/// A configured client for one registry. Clones share the idle connections.
#[derive(Clone)]
pub struct RegistryClient {
    tls: TlsConnector,
    host: String,
    port: u16,
    base_path: String,
    server_name: ServerName<'static>,
    idle: Arc<Mutex<Vec<Connection>>>,
    opened: Arc<std::sync::atomic::AtomicU64>,
}

/// One HTTP/1.1 connection: the request side and the task driving it (aborted when dropped).
struct Connection {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    task: tokio::task::JoinHandle<()>,
    idle_since: Instant,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether a connection is opened for the request and closed after it, or reused.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reuse {
    No,
    /// Keep the connection for later; the request may be sent twice.
    Yes,
}

impl RegistryClient {
    /// A client for `url` (`https://host[:port][/base]`) trusting `ca`, presenting
    /// `identity` (certificate chain, key) when given.
    pub fn new(url: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Self, ClientError> {
        install_provider();
        let bad = |reason: &dyn std::fmt::Display| ClientError::Url {
            url: url.to_owned(),
            reason: reason.to_string(),
        };
        let u = url::Url::parse(url).map_err(|e| bad(&e))?;
        if u.scheme() != "https" {
            return Err(bad(&"scheme must be https"));
        }
        let host = u
            .host_str()
            .ok_or_else(|| bad(&"no host"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = u.port_or_known_default().unwrap_or(443);
        let server_name = ServerName::try_from(host.clone()).map_err(|e| bad(&e))?;
        let mut roots = RootCertStore::empty();
        for c in load_certs(ca)? {
            roots
                .add(c)
                .map_err(|e| ClientError::Tls(format!("{}: {e}", ca.display())))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
                .map_err(|e| ClientError::Tls(format!("{}: {e}", key.display())))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            host,
            port,
            base_path: u.path().trim_end_matches('/').to_owned(),
            server_name,
            idle: Arc::default(),
            opened: Arc::default(),
        })
    }

    /// Connections this client (and its clones) opened so far.
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends one request to `path` (below the URL's base path); `body` is sent as JSON.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, ClientError> {
        let bytes = match body {
            Some(v) => Some(Bytes::from(
                serde_json::to_vec(v).map_err(|e| ClientError::Body(e.to_string()))?,
            )),
            None => None,
        };
        self.exchange(method, path, bytes, headers, Reuse::No).await
    }

    /// Sends one request with `body` as it is, of `content_type` (a form, a raw document).
    pub async fn send_bytes(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, ClientError> {
        let mut all = vec![("content-type", content_type)];
        all.extend_from_slice(headers);
        self.exchange(method, path, Some(body), &all, Reuse::No).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Reply, ClientError> {
        self.send(Method::GET, path, None, &[]).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Result<Reply, ClientError> {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    /// Asks for a snapshot newer than revision `after` (the one held; revision 0 is a
    /// snapshot too), waiting up to `wait`, or for the current one at once when none is held.
    /// With `delta`, a newer revision may come as a delta from `after`. `Ok(None)` is the
    /// registry confirming nothing changed.
    pub async fn poll(
        &self,
        after: Option<u64>,
        wait: Duration,
        delta: bool,
    ) -> Result<Option<Update>, ClientError> {
        let path = match after {
            None => "/v1/snapshot".to_owned(),
            Some(after) => format!(
                "/v1/snapshot?after={after}&wait={}{}",
                wait.as_secs(),
                if delta { "&delta=1" } else { "" }
            ),
        };
        let deadline = wait + CONNECT_TIMEOUT + Duration::from_secs(5);
        let reply = tokio::time::timeout(deadline, self.exchange(Method::GET, &path, None, &[], Reuse::Yes))
            .await
            .map_err(|_| ClientError::Transport(format!("no answer within {deadline:?}")))??;
        let parse = |what: &str| ClientError::Body(format!("not a signed {what}"));
        match reply.status {
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED => Ok(None),
            StatusCode::OK if reply.headers.contains_key("sluice-delta-base") => {
                serde_json::from_slice(&reply.body)
                    .map(|d| Some(Update::Delta(d)))
                    .map_err(|e| parse(&format!("delta: {e}")))
            }
            StatusCode::OK => serde_json::from_slice(&reply.body)
                .map(|s| Some(Update::Snapshot(s)))
                .map_err(|e| parse(&format!("snapshot: {e}"))),
            _ => Err(reply.unexpected()),
        }
    }

    /// Sends a usage report (`POST /v1/usage`). `Ok` only when the registry accepted it (or
    /// already had it: the answer then says `duplicate`).
    pub async fn report_usage(&self, report: &impl Serialize) -> Result<UsageAck, ClientError> {
        let body = serde_json::to_vec(report).map_err(|e| ClientError::Body(e.to_string()))?;
        let deadline = CONNECT_TIMEOUT + REQUEST_TIMEOUT;
        let reply = tokio::time::timeout(
            deadline,
            self.exchange(
                Method::POST,
                "/v1/usage",
                Some(Bytes::from(body)),
                &[],
                Reuse::Yes,
            ),
        )
        .await
        .map_err(|_| ClientError::Transport(format!("no answer within {deadline:?}")))??;
        match reply.status {
            StatusCode::OK => {
                serde_json::from_slice(&reply.body).map_err(|e| ClientError::Body(e.to_string()))
            }
            _ => Err(reply.unexpected()),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
        reuse: Reuse,
    ) -> Result<Reply, ClientError> {
        let t = |e: &dyn std::fmt::Display| ClientError::Transport(e.to_string());
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_path))
            .header(http::header::HOST, format!("{}:{}", self.host, self.port));
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.unwrap_or_default())).map_err(|e| t(&e))?;
        if reuse == Reuse::Yes {
            if let Some(conn) = self.take_idle().await {
                match self.request(conn, req.clone(), reuse).await {
                    Ok(reply) => return Ok(reply),
                    // No answer at all: the registry may have closed the idle connection as
                    // it was taken. Once more on a new one.
                    Err(Failure::Unanswered(e)) => {
                        tracing::debug!(error = %e, "reused registry connection failed; sending again");
                    }
                    Err(Failure::Answered(e)) => return Err(e),
                }
            }
        }
        let conn = self.connect().await?;
        self.request(conn, req, reuse).await.map_err(Failure::into_error)
    }

    /// A new connection: TCP, TLS handshake, HTTP/1.1.
    async fn connect(&self) -> Result<Connection, ClientError> {
        let t = |e: &dyn std::fmt::Display| ClientError::Transport(e.to_string());
        let connect = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| t(&format!("connect {}:{}: {e}", self.host, self.port)))?;
            let _ = tcp.set_nodelay(true);
            self.tls
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| t(&format!("TLS handshake: {e}")))
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| ClientError::Transport("connect/TLS handshake timed out".into()))??;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| t(&e))?;
        self.opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Connection {
            send,
            task: tokio::spawn(async move {
                let _ = conn.await;
            }),
            idle_since: Instant::now(),
        })
    }

    /// An idle connection still fit for a request, if one is kept; closes the others it meets.
    async fn take_idle(&self) -> Option<Connection> {
        loop {
            let mut conn = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
            if conn.idle_since.elapsed() < IDLE_REUSE
                && !conn.send.is_closed()
                && conn.send.ready().await.is_ok()
            {
                return Some(conn);
            }
        }
    }

    /// Sends `req` on `conn` and reads the whole answer; with [`Reuse::Yes`] keeps the
    /// connection for the next request when the answer came complete and the registry keeps
    /// it open.
    async fn request(
        &self,
        mut conn: Connection,
        req: Request<Full<Bytes>>,
        reuse: Reuse,
    ) -> Result<Reply, Failure> {
        let t = |e: &dyn std::fmt::Display| ClientError::Transport(e.to_string());
        let resp = conn
            .send
            .send_request(req)
            .await
            .map_err(|e| Failure::Unanswered(t(&format!("request: {e}"))))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| Failure::Answered(t(&format!("response: {e}"))))?
            .to_bytes();
        let closing = headers
            .get_all(http::header::CONNECTION)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains("close")));
        if reuse == Reuse::Yes && !closing {
            conn.idle_since = Instant::now();
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < IDLE_KEPT {
                idle.push(conn);
            }
        }
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// How a request failed: before any answer came (it may be sent again on a reused
/// connection) or after.
enum Failure {
    Unanswered(ClientError),
    Answered(ClientError),
}

impl Failure {
    fn into_error(self) -> ClientError {
        match self {
            Self::Unanswered(e) | Self::Answered(e) => e,
        }
    }
}

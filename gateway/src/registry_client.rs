//! The HTTPS client the gateway uses to reach the registry: mTLS with the gateway's client
//! certificate (`urn:sluice:gateway:<id>`), the registry's server certificate verified against
//! the configured CA. One connection per poll; a poll lasts at most the long-poll wait.
//!
//! Contract: `GET /v1/snapshot` answers the current `SignedSnapshot`;
//! `GET /v1/snapshot?after=<rev>&wait=<s>` answers when the revision exceeds `after`, else 204
//! at the timeout; `POST /v1/usage` takes a usage report and answers
//! `{"accepted": n, "duplicate": bool}`.

use crate::config::RegistrySection;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use sluice_policy::snapshot::SignedSnapshot;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Largest snapshot body accepted, bytes.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Time to connect and complete the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for the registry to answer a usage report once connected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TLS material could not be loaded.
    #[error("{path}: {message}")]
    File {
        /// File path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The URL is not `https://host[:port][/base]`.
    #[error("registry.url: {0}")]
    Url(String),
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
    /// The body is not a signed snapshot.
    #[error("not a signed snapshot: {0}")]
    Body(String),
}

/// A configured client for one registry.
#[derive(Clone)]
pub struct RegistryClient {
    tls: TlsConnector,
    host: String,
    port: u16,
    base_path: String,
    server_name: ServerName<'static>,
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl RegistryClient {
    /// Builds the client from `[registry]`.
    pub fn new(cfg: &RegistrySection) -> Result<Self, ClientError> {
        let url = url::Url::parse(&cfg.url).map_err(|e| ClientError::Url(e.to_string()))?;
        if url.scheme() != "https" {
            return Err(ClientError::Url("must be https".into()));
        }
        let host = url
            .host_str()
            .ok_or_else(|| ClientError::Url("no host".into()))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let server_name = ServerName::try_from(host.clone()).map_err(|e| ClientError::Url(e.to_string()))?;
        let mut roots = RootCertStore::empty();
        for c in load_certs(&cfg.ca)? {
            roots.add(c).map_err(|e| file_err(&cfg.ca, e))?;
        }
        let chain = load_certs(&cfg.cert)?;
        let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| file_err(&cfg.key, e))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ClientError::Transport(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| file_err(&cfg.key, e))?;
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            host,
            port,
            base_path: url.path().trim_end_matches('/').to_owned(),
            server_name,
        })
    }

    /// Asks for a snapshot newer than `after` (the current one when `after` is 0), waiting up
    /// to `wait`. `Ok(None)` is the registry confirming nothing changed.
    pub async fn poll(&self, after: u64, wait: Duration) -> Result<Option<SignedSnapshot>, ClientError> {
        let path = if after == 0 {
            format!("{}/v1/snapshot", self.base_path)
        } else {
            format!(
                "{}/v1/snapshot?after={after}&wait={}",
                self.base_path,
                wait.as_secs()
            )
        };
        let deadline = wait + CONNECT_TIMEOUT + Duration::from_secs(5);
        let (status, body) = tokio::time::timeout(deadline, self.get(&path))
            .await
            .map_err(|_| ClientError::Transport(format!("no answer within {deadline:?}")))??;
        match status {
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED => Ok(None),
            StatusCode::OK => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| ClientError::Body(e.to_string())),
            s => Err(ClientError::Status {
                status: s.as_u16(),
                detail: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            }),
        }
    }

    /// Sends a usage report (`POST /v1/usage`). `Ok` only when the registry accepted it (or
    /// already had it: the answer then says `duplicate`).
    pub async fn report_usage(
        &self,
        report: &crate::usage_report::UsageReport,
    ) -> Result<UsageAck, ClientError> {
        let body = serde_json::to_vec(report).map_err(|e| ClientError::Body(e.to_string()))?;
        let path = format!("{}/v1/usage", self.base_path);
        let deadline = CONNECT_TIMEOUT + REQUEST_TIMEOUT;
        let (status, body) =
            tokio::time::timeout(deadline, self.send(Method::POST, &path, Bytes::from(body)))
                .await
                .map_err(|_| ClientError::Transport(format!("no answer within {deadline:?}")))??;
        match status {
            StatusCode::OK => serde_json::from_slice(&body).map_err(|e| ClientError::Body(e.to_string())),
            s => Err(ClientError::Status {
                status: s.as_u16(),
                detail: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            }),
        }
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, Bytes), ClientError> {
        self.send(Method::GET, path, Bytes::new()).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let t = |e: &dyn std::fmt::Display| ClientError::Transport(e.to_string());
        let connect = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| t(&e))?;
            let _ = tcp.set_nodelay(true);
            self.tls
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| t(&e))
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| ClientError::Transport("connect/TLS handshake timed out".into()))??;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| t(&e))?;
        let conn = tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, format!("{}:{}", self.host, self.port));
        if !body.is_empty() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(body)).map_err(|e| t(&e))?;
        let result = async {
            let resp = send.send_request(req).await.map_err(|e| t(&e))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| t(&*e))?
                .to_bytes();
            Ok((status, body))
        }
        .await;
        conn.abort();
        result
    }
}

/// The registry's answer to a usage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct UsageAck {
    /// Count rows taken (0 for a repeat).
    pub accepted: u64,
    /// The registry already had this report id from this gateway.
    pub duplicate: bool,
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    crate::tls::load_certs(path).map_err(|e| match e {
        crate::tls::TlsError::File { message, .. } => file_err(path, message),
        other => file_err(path, other),
    })
}

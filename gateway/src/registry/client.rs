//! A small HTTPS client for the registry (hyper over tokio-rustls, one connection per
//! request), presenting an admin or gateway certificate.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a request failed before a response arrived.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad registry URL.
    #[error("registry URL {0}: {1}")]
    Url(String, String),
    /// Certificate or key file.
    #[error("{0}: {1}")]
    File(String, String),
    /// TLS configuration.
    #[error("TLS: {0}")]
    Tls(String),
    /// Connecting, the handshake or HTTP failed.
    #[error("{0}")]
    Transport(String),
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
}

/// A client for one registry.
#[derive(Clone)]
pub struct RegistryClient {
    tls: Arc<ClientConfig>,
    host: String,
    port: u16,
}

fn file_err(p: &Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::File(p.display().to_string(), e.to_string())
}

impl RegistryClient {
    /// A client for `url` (`https://host:port`) trusting `ca`, presenting `identity`
    /// (certificate, key) when given.
    pub fn new(url: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Self, ClientError> {
        crate::tls::install_provider();
        let u = url::Url::parse(url).map_err(|e| ClientError::Url(url.into(), e.to_string()))?;
        if u.scheme() != "https" {
            return Err(ClientError::Url(url.into(), "scheme must be https".into()));
        }
        let host = u
            .host_str()
            .ok_or_else(|| ClientError::Url(url.into(), "no host".into()))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let port = u.port().unwrap_or(443);
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).map_err(|e| file_err(ca, e))? {
            roots
                .add(c.map_err(|e| file_err(ca, e))?)
                .map_err(|e| file_err(ca, e))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let b = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots);
        let mut cfg = match identity {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| file_err(cert, e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| file_err(cert, e))?;
                let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
                b.with_client_auth_cert(chain, key_der)
                    .map_err(|e| ClientError::Tls(e.to_string()))?
            }
            None => b.with_no_client_auth(),
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: Arc::new(cfg),
            host,
            port,
        })
    }

    /// Sends one request; `body` is sent as JSON.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, ClientError> {
        let t = |e: &dyn std::fmt::Display| ClientError::Transport(e.to_string());
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| t(&format!("connect {}:{}: {e}", self.host, self.port)))?;
        let name = ServerName::try_from(self.host.clone()).map_err(|e| t(&e))?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| t(&format!("TLS handshake: {e}")))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| t(&e))?;
        tokio::spawn(conn);
        let bytes = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v).map_err(|e| t(&e))?),
            None => Bytes::new(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, format!("{}:{}", self.host, self.port));
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(bytes)).map_err(|e| t(&e))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| t(&format!("request: {e}")))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| t(&format!("response: {e}")))?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Reply, ClientError> {
        self.send(Method::GET, path, None, &[]).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Result<Reply, ClientError> {
        self.send(Method::POST, path, Some(body), &[]).await
    }
}

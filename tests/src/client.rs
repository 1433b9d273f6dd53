//! A minimal HTTPS client over hyper and rustls that presents a client certificate and tells
//! a complete body from a broken transfer.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A response as a test sees it.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The body, or the error that broke the transfer (with the bytes received before it).
    pub body: Result<Bytes, (String, Bytes)>,
}

impl Reply {
    /// The body as text; panics on a broken transfer.
    pub fn text(&self) -> String {
        match &self.body {
            Ok(b) => String::from_utf8_lossy(b).into_owned(),
            Err((e, _)) => panic!("broken transfer: {e}"),
        }
    }

    /// The body as JSON; panics on a broken transfer or invalid JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The problem type code (last segment of `type`) of a problem+json reply.
    pub fn problem(&self) -> String {
        assert_eq!(
            self.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "not a problem: {} {:?}",
            self.status,
            self.body
        );
        let j = self.json();
        j["type"].as_str().unwrap().rsplit('/').next().unwrap().to_owned()
    }
}

/// A TLS client configuration trusting `ca`, presenting `identity` when given.
pub fn tls_config(ca: &Path, identity: Option<(&Path, &Path)>) -> Arc<ClientConfig> {
    sluice_net::tls::install_provider();
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let b = ClientConfig::builder().with_root_certificates(roots);
    let cfg = match identity {
        Some((cert, key)) => {
            let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap())
                .unwrap()
        }
        None => b.with_no_client_auth(),
    };
    Arc::new(cfg)
}

/// Sends one GET over a new TLS connection. `Err` when the connection or handshake fails.
pub async fn get(
    tls: &Arc<ClientConfig>,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("http: {e}"))?;
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .map_err(|e| format!("request: {e}"))?;
    Ok(read_reply(resp).await)
}

async fn read_reply(resp: http::Response<hyper::body::Incoming>) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut got = Vec::new();
    let body = loop {
        match body.frame().await {
            None => break Ok(Bytes::from(got)),
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    got.extend_from_slice(&d);
                }
            }
            Some(Err(e)) => break Err((e.to_string(), Bytes::from(got))),
        }
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// An open HTTP/1.1 keep-alive connection over TLS, for several requests in a row.
pub struct Conn {
    send: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    server_chain: Vec<CertificateDer<'static>>,
}

impl Conn {
    /// Connects and completes the TLS handshake. `Err` when the connection or handshake fails
    /// (a client certificate refused by a TLS 1.3 server may only show at the first request).
    pub async fn open(tls: &Arc<ClientConfig>, addr: SocketAddr) -> Result<Conn, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = ServerName::try_from("localhost").unwrap();
        let tls = TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {}", causes(&e)))?;
        let server_chain = tls
            .get_ref()
            .1
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.clone().into_owned())
            .collect();
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("http: {}", causes(&e)))?;
        tokio::spawn(conn);
        Ok(Conn { send, server_chain })
    }

    /// The certificate chain the server presented, leaf first.
    pub fn server_chain(&self) -> &[CertificateDer<'static>] {
        &self.server_chain
    }

    /// Sends one GET on this connection and reads the whole reply.
    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
        self.send
            .ready()
            .await
            .map_err(|e| format!("connection: {}", causes(&e)))?;
        let mut req = Request::get(path).header("host", "localhost");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .send
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .map_err(|e| format!("request: {}", causes(&e)))?;
        Ok(read_reply(resp).await)
    }
}

/// An error with its chain of causes, `outer: inner: …` (TLS alerts hide under hyper's errors).
pub fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// `GET path` on a gateway's plain-HTTP admin listener (`/readyz`, `/metrics`): the whole
/// reply, head included; fails unless it is a 200.
pub async fn admin_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

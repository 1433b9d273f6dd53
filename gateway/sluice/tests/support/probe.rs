//! Asking gateways what they decide: one-shot requests, bounded waits for an outcome,
//! `/readyz`, and a keep-alive connection for tight polling.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use sluice_net::registry_client::{RegistryClient, Reply};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The outcome of a data request: `""` when served (200), the problem code when refused.
pub fn outcome(r: &Reply) -> String {
    if r.status == StatusCode::OK {
        String::new()
    } else {
        r.problem()
            .unwrap_or_else(|| format!("status {} without a problem body", r.status))
    }
}

/// One GET of `path` declaring `scenario` (no `Sluice-Scenario` header when empty).
pub async fn fetch(client: &RegistryClient, path: &str, scenario: &str) -> Reply {
    let header = [("sluice-scenario", scenario)];
    let headers: &[(&str, &str)] = if scenario.is_empty() { &[] } else { &header };
    client.send(http::Method::GET, path, None, headers).await.unwrap()
}

/// Requests `path` until the outcome is `want`, for at most `within`; returns the last reply.
/// Panics naming the last outcome otherwise.
pub async fn until(
    client: &RegistryClient,
    path: &str,
    scenario: &str,
    want: &str,
    within: Duration,
) -> Reply {
    let start = Instant::now();
    loop {
        let r = fetch(client, path, scenario).await;
        let got = outcome(&r);
        if got == want {
            return r;
        }
        if start.elapsed() > within {
            panic!("still `{got}` after {within:?}, wanted `{want}`");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /readyz` on a gateway's admin listener: (status, body).
pub async fn readyz(admin: SocketAddr) -> (u16, String) {
    admin_get(admin, "/readyz").await
}

/// `GET path` on a gateway's plain-HTTP admin listener: (status, the whole response).
pub async fn admin_get(admin: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(admin).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    (out[9..12].parse().unwrap(), out)
}

/// A TLS client config trusting `ca` and presenting (certificate, key).
pub fn client_tls(ca: &Path, cert: &Path, key: &Path) -> Arc<ClientConfig> {
    sluice_net::tls::install_provider();
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let cfg = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap())
        .unwrap();
    Arc::new(cfg)
}

/// An HTTP/1.1 keep-alive connection to one gateway, reopened when the gateway closes it.
pub struct KeepAlive {
    tls: Arc<ClientConfig>,
    addr: SocketAddr,
    send: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
}

/// An HTTP/1.1 connection over mutual TLS to `addr` (server name `localhost`, `TCP_NODELAY`),
/// its driver spawned.
pub async fn connect(
    tls: Arc<ClientConfig>,
    addr: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let tls = TlsConnector::from(tls)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

impl KeepAlive {
    /// A connection (opened lazily) to `addr`.
    pub fn new(tls: Arc<ClientConfig>, addr: SocketAddr) -> KeepAlive {
        KeepAlive {
            tls,
            addr,
            send: None,
        }
    }

    /// GETs `path` declaring `scenario`: (status, problem code or `""`).
    pub async fn get(&mut self, path: &str, scenario: &str) -> (StatusCode, String) {
        for _ in 0..3 {
            let mut send = match self.send.take() {
                Some(s) if !s.is_closed() => s,
                _ => connect(self.tls.clone(), self.addr).await,
            };
            if send.ready().await.is_err() {
                continue;
            }
            let req = Request::get(path)
                .header("host", "localhost")
                .header("sluice-scenario", scenario)
                .body(Empty::<Bytes>::new())
                .unwrap();
            let Ok(resp) = send.send_request(req).await else {
                continue;
            };
            let status = resp.status();
            let Ok(body) = resp.into_body().collect().await else {
                continue;
            };
            self.send = Some(send);
            let code = if status == StatusCode::OK {
                String::new()
            } else {
                let v: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap_or_default();
                v["type"]
                    .as_str()
                    .and_then(|t| t.rsplit('/').next())
                    .unwrap_or("")
                    .to_owned()
            };
            return (status, code);
        }
        panic!("{}: three connections in a row failed", self.addr);
    }
}

//! The registry's HTTPS listener: one port, client certificates optional at the TLS layer
//! (verified against the client CA when presented), the caller's identity read once per
//! connection. Public pages need no certificate; admin routes need an admin identity and the
//! snapshot a gateway (or admin) identity — enforced per route by the API.
//!
//! The data plane's `server::serve` is not reused: it reads only licensee identities and
//! requires a certificate on its mTLS listener; the registry needs the admin and gateway kinds
//! and optional client auth on one listener.

use super::config::RegistryConfig;
use crate::body::RespBody;
use crate::tls::{load_certs, TlsError};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use sluice_certs::{identity_from_der, IdentityKind};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Who is calling, from the connection's client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No certificate.
    Anonymous,
    /// `urn:sluice:admin:<name>`.
    Admin(String),
    /// `urn:sluice:gateway:<id>`.
    Gateway(String),
    /// `urn:sluice:licensee:<id>`.
    Licensee(String),
    /// A verified certificate without a usable identity; why.
    Invalid(String),
}

impl Caller {
    /// Reads the caller from a verified peer chain (leaf first).
    pub fn from_chain(chain: Option<&[CertificateDer<'_>]>) -> Self {
        let Some(leaf) = chain.and_then(|c| c.first()) else {
            return Caller::Anonymous;
        };
        match identity_from_der(leaf.as_ref()) {
            Ok(id) => match id.kind {
                IdentityKind::Admin => Caller::Admin(id.id),
                IdentityKind::Gateway => Caller::Gateway(id.id),
                IdentityKind::Licensee => Caller::Licensee(id.id),
            },
            Err(e) => Caller::Invalid(e.to_string()),
        }
    }

    /// How the caller is described in refusals.
    pub fn describe(&self) -> String {
        match self {
            Caller::Anonymous => "no client certificate".into(),
            Caller::Admin(n) => format!("admin {n}"),
            Caller::Gateway(n) => format!("gateway {n}"),
            Caller::Licensee(n) => format!("licensee {n}"),
            Caller::Invalid(why) => format!("a certificate without a sluice identity ({why})"),
        }
    }
}

fn file_err(path: &std::path::Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// The listener's TLS config: server certificate, client certificates optional but verified.
pub fn server_config(cfg: &RegistryConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in load_certs(&cfg.client_ca)? {
        roots.add(ca).map_err(|e| file_err(&cfg.client_ca, e))?;
    }
    let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if let Some(crl) = &cfg.crl {
        let crls = CertificateRevocationListDer::pem_file_iter(crl)
            .map_err(|e| file_err(crl, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_err(crl, e))?;
        verifier = verifier.with_crls(crls);
    }
    let verifier = verifier
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| file_err(&cfg.key, e))?;
    let mut sc = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&cfg.cert)?, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(sc))
}

/// Serves until `shutdown` turns true, then drains for up to 5 s.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    mut shutdown: watch::Receiver<bool>,
    handler: H,
) where
    H: Fn(Arc<Caller>, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<RespBody>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let builder = Arc::new(builder);
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "registry accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "registry TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let caller = Arc::new(Caller::from_chain(stream.get_ref().1.peer_certificates()));
            let svc = hyper::service::service_fn(move |req| {
                let fut = handler(caller.clone(), req);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), svc).into_owned());
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "registry connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

//! The accept loop: connection cap, TLS handshake with a timeout, identity read once per
//! connection, HTTP/1.1 and HTTP/2 with header limits and timeouts, graceful drain.

use crate::body::RespBody;
use crate::config::Limits;
use crate::identity::{peer_identity, PeerIdentity};
use crate::metrics::Metrics;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

/// Which listener a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// mTLS data listener.
    Data,
    /// Public listener (no client certificate).
    Public,
}

/// What the request path knows about a connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Listener.
    pub listener: ListenerKind,
    /// The identity from the client certificate (data listener), read once at handshake.
    pub identity: PeerIdentity,
}

/// Serves TLS connections on `listener` until `shutdown` turns true, then drains for up to
/// `limits.drain_timeout_ms`. `tls` gives the current config for each new connection.
pub async fn serve<H, F>(
    listener: TcpListener,
    kind: ListenerKind,
    tls: impl Fn() -> Arc<ServerConfig> + Send + Sync + 'static,
    limits: Limits,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    handler: H,
) where
    H: Fn(Arc<ConnInfo>, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<RespBody>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.request_timeout_ms))
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection cap reached; closing new connection");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(tls());
        let handshake_timeout = Duration::from_millis(limits.handshake_timeout_ms);
        let handler = handler.clone();
        let metrics = metrics.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    metrics.handshake_failures.inc();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics.handshake_failures.inc();
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let identity = match kind {
                ListenerKind::Data => peer_identity(stream.get_ref().1.peer_certificates()),
                ListenerKind::Public => PeerIdentity::None,
            };
            let info = Arc::new(ConnInfo {
                peer,
                listener: kind,
                identity,
            });
            metrics.connections.inc();
            let svc = hyper::service::service_fn(move |req| {
                let fut = handler(info.clone(), req);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            let conn = watcher.watch(conn.into_owned());
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            metrics.connections.dec();
        });
    }
    drop(listener);
    let drain = Duration::from_millis(limits.drain_timeout_ms);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(?kind, "drain timeout; closing remaining connections");
    }
}

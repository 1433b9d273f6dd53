//! The one accept loop of every sluice listener: connection cap, TLS handshake with a
//! timeout, the peer's identity read once per connection, HTTP/1.1 and HTTP/2 with header
//! limits and timeouts, graceful drain.

use crate::body::RespBody;
use crate::identity::PeerIdentity;
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
use tokio::sync::{watch, Notify, Semaphore};
use tokio_rustls::TlsAcceptor;

/// What the request path knows about a connection.
#[derive(Debug)]
pub struct Conn {
    /// The client's address.
    pub peer: SocketAddr,
    /// The identity from the verified client certificate, read once at the handshake.
    pub identity: PeerIdentity,
    closer: Notify,
}

impl Conn {
    /// A connection from `peer` proven as `identity`.
    pub fn new(peer: SocketAddr, identity: PeerIdentity) -> Self {
        Self {
            peer,
            identity,
            closer: Notify::new(),
        }
    }

    /// Closes the connection now, whatever it is doing (e.g. its client stopped reading).
    pub fn close(&self) {
        self.closer.notify_one();
    }
}

/// The limits and timeouts of one listener.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Most connections open at once; a new one past it is closed at once.
    pub max_connections: Option<usize>,
    /// Time for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time to read a request's headers (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// Largest request head, bytes (HTTP/1.1 buffer and HTTP/2 header list).
    pub max_header_bytes: Option<usize>,
    /// Most request headers (HTTP/1.1).
    pub max_headers: Option<usize>,
    /// Most concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: Option<u32>,
    /// HTTP/2 keep-alive ping interval.
    pub h2_keep_alive_interval: Option<Duration>,
    /// Longest wait for open connections to finish after shutdown.
    pub drain_timeout: Duration,
    /// `SO_SNDBUF` of accepted connections, bounding the kernel memory a client that does not
    /// read can hold; the kernel's autotuning when `None`.
    pub send_buffer_bytes: Option<usize>,
}

/// Connection events a listener reports (metrics); every method defaults to nothing.
pub trait ConnEvents: Send + Sync + 'static {
    /// A TLS handshake failed or timed out.
    fn handshake_failed(&self) {}
    /// A connection completed its handshake.
    fn opened(&self) {}
    /// A connection closed.
    fn closed(&self) {}
}

impl ConnEvents for () {}

/// Serves TLS connections on `listener` until `shutdown` turns true, then drains for up to
/// `limits.drain_timeout`. `tls` gives the current config for each new connection (so a
/// reload applies to new connections only). `name` labels the log lines.
#[allow(clippy::too_many_arguments)]
pub async fn serve<H, F>(
    name: &'static str,
    listener: TcpListener,
    tls: impl Fn() -> Arc<ServerConfig> + Send + Sync + 'static,
    limits: ServeLimits,
    events: Arc<dyn ConnEvents>,
    mut shutdown: watch::Receiver<bool>,
    handler: H,
) where
    H: Fn(Arc<Conn>, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<RespBody>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let slots = limits.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    let builder = Arc::new(http_builder(&limits));
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let slot = match &slots {
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    tracing::warn!(listener = name, %peer, "connection cap reached; closing new connection");
                    drop(tcp);
                    continue;
                }
            },
            None => None,
        };
        let _ = tcp.set_nodelay(true);
        if let Some(n) = limits.send_buffer_bytes {
            if let Err(e) = socket2::SockRef::from(&tcp).set_send_buffer_size(n) {
                tracing::warn!(listener = name, %peer, error = %e, "cannot set the send buffer");
            }
        }
        let acceptor = TlsAcceptor::from(tls());
        let handshake_timeout = limits.handshake_timeout;
        let handler = handler.clone();
        let events = events.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    events.handshake_failed();
                    tracing::debug!(listener = name, %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    events.handshake_failed();
                    tracing::debug!(listener = name, %peer, "TLS handshake timed out");
                    return;
                }
            };
            let conn = Arc::new(Conn::new(
                peer,
                PeerIdentity::from_chain(stream.get_ref().1.peer_certificates()),
            ));
            events.opened();
            let served_conn = conn.clone();
            let svc = hyper::service::service_fn(move |req| {
                let fut = handler(served_conn.clone(), req);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let served = watcher.watch(builder.serve_connection(TokioIo::new(stream), svc).into_owned());
            tokio::select! {
                r = served => if let Err(e) = r {
                    tracing::debug!(listener = name, %peer, error = %e, "connection ended with an error");
                },
                () = conn.closer.notified() => {
                    tracing::debug!(listener = name, %peer, "connection closed by the gateway");
                }
            }
            events.closed();
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(listener = name, "drain timeout; closing remaining connections");
    }
}

fn http_builder(limits: &ServeLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    {
        let mut h1 = builder.http1();
        h1.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true);
        if let Some(n) = limits.max_header_bytes {
            h1.max_buf_size(n.max(8192));
        }
        if let Some(n) = limits.max_headers {
            h1.max_headers(n);
        }
    }
    {
        let mut h2 = builder.http2();
        h2.timer(TokioTimer::new());
        if let Some(n) = limits.max_header_bytes {
            h2.max_header_list_size(u32::try_from(n).unwrap_or(u32::MAX));
        }
        if let Some(n) = limits.max_concurrent_streams {
            h2.max_concurrent_streams(n);
        }
        if limits.h2_keep_alive_interval.is_some() {
            h2.keep_alive_interval(limits.h2_keep_alive_interval);
        }
    }
    builder
}

//! The one accept loop of every sluice listener: connection cap, TLS handshake with a
//! timeout, the peer's identity read once per connection, HTTP/1.1 and HTTP/2 with header
//! limits and timeouts, graceful drain.

use crate::body::RespBody;
use crate::identity::PeerIdentity;
use crate::problem::{Problem, ProblemCode};
use http::{Method, Request, Response};
use http_body::Body as _;
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
    /// Largest request head, bytes. Checked per request by [`check_head`] (so the caller
    /// answers with its documented problem); the HTTP layer refuses on its own, bare, at
    /// [`HTTP_LAYER_MARGIN`] times this (HTTP/1.1 buffer, HTTP/2 header list).
    pub max_header_bytes: Option<usize>,
    /// Most request headers; like `max_header_bytes`, checked by [`check_head`] with the HTTP
    /// layer's own limit (HTTP/1.1) at [`HTTP_LAYER_MARGIN`] times it.
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

/// How far above the listener's own head limits the HTTP layer's limits sit: heads in between
/// reach the handler, which refuses them with its problem (and audit); only heads beyond meet
/// the HTTP layer's bare 431 or a closed connection.
pub const HTTP_LAYER_MARGIN: usize = 2;

/// Refuses a request head over `max_headers` headers or `max_bytes` bytes (request line and
/// header fields as sent on HTTP/1.1) with `headers-too-large`.
pub fn check_head<B>(req: &Request<B>, max_headers: usize, max_bytes: usize) -> Result<(), Problem> {
    let headers = req.headers();
    if headers.len() > max_headers {
        return Err(Problem::new(
            ProblemCode::HeadersTooLarge,
            format!("more than {max_headers} request headers"),
        ));
    }
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    let line = req.method().as_str().len() + target + " HTTP/1.1\r\n".len();
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + ": \r\n".len())
        .sum();
    if line + fields > max_bytes {
        return Err(Problem::new(
            ProblemCode::HeadersTooLarge,
            format!("request head larger than {max_bytes} bytes"),
        ));
    }
    Ok(())
}

/// Connection events a listener reports (metrics); every method defaults to nothing.
pub trait ConnEvents: Send + Sync + 'static {
    /// A TLS handshake failed or timed out.
    fn handshake_failed(&self) {}
    /// The HTTP layer refused what the client sent as unparsable or oversized (a garbage
    /// request line, bytes it does not accept in the target or a header, a head beyond its
    /// limits); it answered a bare 400/431 or closed the connection, without the handler.
    fn protocol_error(&self) {}
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
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let head = req.method() == Method::HEAD;
                let fut = handler(served_conn.clone(), req);
                async move {
                    let resp = fut.await;
                    Ok::<_, Infallible>(if head { without_body(resp) } else { resp })
                }
            });
            let served = watcher.watch(builder.serve_connection(TokioIo::new(stream), svc).into_owned());
            tokio::select! {
                r = served => if let Err(e) = r {
                    if e.downcast_ref::<hyper::Error>().is_some_and(|e| e.is_parse() || e.is_parse_too_large()) {
                        events.protocol_error();
                    }
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

/// The response to a HEAD request: the headers, with the would-be body's length, and no body
/// (HTTP/1.1 drops it on its own; HTTP/2 would send it, RFC 9110 §9.3.2).
fn without_body(resp: Response<RespBody>) -> Response<RespBody> {
    let length = resp.body().size_hint().exact();
    let (mut parts, _) = resp.into_parts();
    if let Some(n) = length {
        parts
            .headers
            .entry(http::header::CONTENT_LENGTH)
            .or_insert_with(|| http::HeaderValue::from(n));
    }
    Response::from_parts(parts, crate::body::full(bytes::Bytes::new()))
}

fn http_builder(limits: &ServeLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    {
        let mut h1 = builder.http1();
        h1.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true);
        if let Some(n) = limits.max_header_bytes {
            h1.max_buf_size(n.saturating_mul(HTTP_LAYER_MARGIN).max(8192));
        }
        if let Some(n) = limits.max_headers {
            h1.max_headers(n.saturating_mul(HTTP_LAYER_MARGIN));
        }
    }
    {
        let mut h2 = builder.http2();
        h2.timer(TokioTimer::new());
        if let Some(n) = limits.max_header_bytes {
            let n = n.saturating_mul(HTTP_LAYER_MARGIN);
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

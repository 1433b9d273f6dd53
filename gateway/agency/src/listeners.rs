//! The gateway's two TLS listeners as the shared plumbing sees them: their rustls configs
//! (the data listener requires a licensee certificate, the public one asks for none) and
//! their limits, from `[listeners]` and `[limits]`.

use crate::config::{DataListener, Limits};
use rustls::ServerConfig;
use sluice_net::server::ServeLimits;
use sluice_net::tls::{server_config, ClientAuth, TlsError};
use std::sync::Arc;
use std::time::Duration;

/// Which listener a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// mTLS data listener.
    Data,
    /// Public listener (no client certificate).
    Public,
}

/// The data listener's config: client certificate required, chained to `client_ca`, checked
/// against the CRL when one is configured.
pub fn data_tls(l: &DataListener) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(
        &l.cert,
        &l.key,
        ClientAuth::Required {
            ca: &l.client_ca,
            crl: l.crl.as_deref(),
        },
    )
}

/// The public listener's config: same server certificate, no client certificate.
pub fn public_tls(l: &DataListener) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(&l.cert, &l.key, ClientAuth::None)
}

/// The accept loop's limits for either listener.
pub fn serve_limits(l: &Limits) -> ServeLimits {
    ServeLimits {
        max_connections: Some(l.max_connections),
        handshake_timeout: Duration::from_millis(l.handshake_timeout_ms),
        header_read_timeout: Duration::from_millis(l.request_timeout_ms),
        max_header_bytes: Some(l.max_header_bytes),
        max_headers: Some(l.max_headers),
        max_concurrent_streams: Some(256),
        h2_keep_alive_interval: Some(Duration::from_secs(30)),
        drain_timeout: Duration::from_millis(l.drain_timeout_ms),
        send_buffer_bytes: l.send_buffer_bytes,
    }
}

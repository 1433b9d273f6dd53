//! An HTTP/2 client over TLS (the `h2` crate) for what hyper's client does not expose: a
//! receive window held at zero, raw response frames, arbitrary header lists.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

/// An HTTP/2 connection.
pub struct H2 {
    send: h2::client::SendRequest<Bytes>,
    window: mpsc::UnboundedSender<u32>,
}

/// A response's head and its body stream.
pub struct H2Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The body as it arrives.
    pub body: h2::RecvStream,
}

impl H2 {
    /// Connects with ALPN `h2`, announcing `window` as every stream's initial receive window
    /// (0: the server may send headers but no data until the window is raised).
    pub async fn connect(tls: &Arc<ClientConfig>, addr: SocketAddr, window: u32) -> H2 {
        let mut cfg = ClientConfig::clone(tls);
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            Some(&b"h2"[..]),
            "server did not pick h2"
        );
        let (send, mut conn) = h2::client::Builder::new()
            .initial_window_size(window)
            .handshake::<_, Bytes>(tls)
            .await
            .unwrap();
        let (window, mut raise) = mpsc::unbounded_channel::<u32>();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut conn => return,
                    w = raise.recv() => match w {
                        Some(w) => { let _ = conn.set_initial_window_size(w); }
                        None => {
                            let _ = (&mut conn).await;
                            return;
                        }
                    },
                }
            }
        });
        H2 { send, window }
    }

    /// Raises every stream's receive window (a SETTINGS frame).
    pub fn set_window(&self, window: u32) {
        let _ = self.window.send(window);
    }

    /// Sends a request without a body; returns its response head and body stream.
    pub async fn request(&mut self, req: Request<()>) -> Result<H2Reply, h2::Error> {
        let send = self.send.clone().ready().await?;
        self.send = send;
        let (resp, _) = self.send.send_request(req, true)?;
        let resp = resp.await?;
        let (parts, body) = resp.into_parts();
        Ok(H2Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

impl H2Reply {
    /// Reads the body to its end, releasing flow-control capacity as data arrives. `Err` holds
    /// the error that broke the stream and the bytes received before it.
    pub async fn read_all(mut self) -> Result<Bytes, (String, Bytes)> {
        let mut got = Vec::new();
        while let Some(data) = self.body.data().await {
            match data {
                Ok(d) => {
                    let _ = self.body.flow_control().release_capacity(d.len());
                    got.extend_from_slice(&d);
                }
                Err(e) => return Err((e.to_string(), Bytes::from(got))),
            }
        }
        Ok(Bytes::from(got))
    }
}

//! A tiny in-test registry: signs real snapshots with an Ed25519 key and serves the registry's
//! gateway contract over real mTLS (client certificate chained to the test CA required):
//! `GET /v1/snapshot`, `GET /v1/snapshot?after=<rev>&wait=<s>` (long-poll, 204 at the
//! timeout) and `GET /v1/registry-key`. Only the server is a double; the gateway's client is
//! the real one.

use crate::Pki;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use sluice_policy::licence::Licence;
use sluice_policy::snapshot::{key_id, SignedSnapshot, Snapshot};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// What the double serves now.
#[derive(Clone)]
struct Current {
    revision: u64,
    signed: SignedSnapshot,
}

/// A running registry double.
pub struct RegistryDouble {
    /// Bound address.
    pub addr: SocketAddr,
    /// The signing key.
    pub key: SigningKey,
    /// The latest snapshot published (unsigned form).
    pub snapshot: Mutex<Snapshot>,
    current: Arc<watch::Sender<Current>>,
    task: Mutex<Option<JoinHandle<()>>>,
    tls: Arc<ServerConfig>,
}

/// The gateway's client identity for the registry, issued once per PKI: (cert, key).
pub fn gateway_client_identity(pki: &Pki) -> (PathBuf, PathBuf) {
    let certs = pki.certs();
    let cert = certs.join("gw-client.pem");
    if !cert.exists() {
        sluice_certs::issue_gateway_client(&pki.ca, "test-gateway", 5)
            .unwrap()
            .write_to(&certs, "gw-client")
            .unwrap();
    }
    (cert, certs.join("gw-client.key"))
}

impl RegistryDouble {
    /// Starts on a free loopback port with key seed `seed`, serving revision 1 with `licences`.
    pub async fn start(pki: &Pki, seed: u8, licences: Vec<Licence>) -> Arc<Self> {
        sluice_gateway::tls::install_provider();
        let key = SigningKey::from_bytes(&[seed; 32]);
        let snapshot = Snapshot {
            revision: 1,
            issued_at: 1,
            licences,
            ..Snapshot::default()
        };
        let signed = SignedSnapshot::sign(&snapshot, &key).unwrap();
        let (tx, _) = watch::channel(Current { revision: 1, signed });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let double = Arc::new(Self {
            addr,
            key,
            snapshot: Mutex::new(snapshot),
            current: Arc::new(tx),
            task: Mutex::new(None),
            tls: server_config(pki),
        });
        double.serve(listener);
        double
    }

    fn serve(&self, listener: TcpListener) {
        let acceptor = TlsAcceptor::from(self.tls.clone());
        let current = self.current.clone();
        let public_key = STANDARD.encode(self.key.verifying_key().as_bytes());
        let kid = key_id(&self.key.verifying_key());
        let task =
            tokio::spawn(async move {
                // Dropping the set (when this task is aborted) aborts every open connection too.
                let mut conns = tokio::task::JoinSet::new();
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    let current = current.clone();
                    let key_doc = serde_json::json!({ "key_id": kid, "public_key": public_key }).to_string();
                    conns.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let svc = hyper::service::service_fn(move |req| {
                        let current = current.clone();
                        let key_doc = key_doc.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(req, &current, key_doc).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
                }
            });
        *self.task.lock().unwrap() = Some(task);
    }

    /// The base URL to configure.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// The public key, base64.
    pub fn public_key_b64(&self) -> String {
        STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    /// Changes the snapshot with `f`, bumps the revision, signs and publishes it; returns the
    /// new revision.
    pub fn publish(&self, f: impl FnOnce(&mut Snapshot)) -> u64 {
        let mut snap = self.snapshot.lock().unwrap();
        f(&mut snap);
        snap.revision += 1;
        let signed = SignedSnapshot::sign(&snap, &self.key).unwrap();
        let revision = snap.revision;
        self.current.send_replace(Current { revision, signed });
        revision
    }

    /// Publishes a next revision whose payload was changed after signing (one byte flipped).
    pub fn publish_tampered(&self, f: impl FnOnce(&mut Snapshot)) -> u64 {
        let mut snap = self.snapshot.lock().unwrap().clone();
        f(&mut snap);
        snap.revision += 1;
        let signed = SignedSnapshot::sign(&snap, &self.key).unwrap();
        let mut bytes = STANDARD.decode(&signed.payload).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        let tampered = SignedSnapshot {
            payload: STANDARD.encode(&bytes),
            ..signed
        };
        self.current.send_replace(Current {
            revision: snap.revision,
            signed: tampered,
        });
        snap.revision
    }

    /// Stops serving: the listener and every open connection close.
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }
}

impl Drop for RegistryDouble {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn answer(
    req: Request<Incoming>,
    current: &watch::Sender<Current>,
    key_doc: String,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: Vec<u8>| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r
    };
    match req.uri().path() {
        "/v1/registry-key" => reply(StatusCode::OK, key_doc.into_bytes()),
        "/v1/snapshot" => {
            let mut after = None;
            let mut wait = 0u64;
            for pair in req.uri().query().unwrap_or("").split('&') {
                match pair.split_once('=') {
                    Some(("after", v)) => after = v.parse::<u64>().ok(),
                    Some(("wait", v)) => wait = v.parse::<u64>().unwrap_or(0).min(30),
                    _ => {}
                }
            }
            let mut rx = current.subscribe();
            let newer = |c: &Current| after.is_none_or(|a| c.revision > a);
            let deadline = tokio::time::sleep(Duration::from_secs(wait));
            tokio::pin!(deadline);
            loop {
                let c = rx.borrow_and_update().clone();
                if newer(&c) {
                    return reply(StatusCode::OK, serde_json::to_vec(&c.signed).unwrap());
                }
                tokio::select! {
                    _ = &mut deadline => return reply(StatusCode::NO_CONTENT, Vec::new()),
                    r = rx.changed() => if r.is_err() { return reply(StatusCode::NO_CONTENT, Vec::new()) },
                }
            }
        }
        _ => reply(StatusCode::NOT_FOUND, Vec::new()),
    }
}

fn server_config(pki: &Pki) -> Arc<ServerConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.ca_pem()).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots)).build().unwrap();
    let chain: Vec<_> = CertificateDer::pem_file_iter(pki.certs().join("gateway.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(pki.certs().join("gateway.key")).unwrap();
    Arc::new(
        ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

/// The `[registry]` section for a gateway subscribing to `double`.
pub fn registry_section(pki: &Pki, double: &RegistryDouble, staleness_bound_s: u64) -> String {
    let (cert, key) = gateway_client_identity(pki);
    format!(
        "[registry]\nurl = {:?}\ncert = {:?}\nkey = {:?}\nca = {:?}\npublic_key = [{:?}]\nstaleness_bound_s = {staleness_bound_s}\npoll_wait_s = 1\n",
        double.url(),
        cert.display().to_string(),
        key.display().to_string(),
        pki.ca_pem().display().to_string(),
        double.public_key_b64(),
    )
}

//! A tiny in-test registry: signs real snapshots with an Ed25519 key and serves the registry's
//! gateway contract over real mTLS (a client certificate, when presented, must chain to the
//! test CA): `GET /v1/snapshot`, `GET /v1/snapshot?after=<rev>&wait=<s>` (long-poll, 204 at the
//! timeout; with `delta=1`, the delta from `after` when one was published with
//! [`RegistryDouble::publish_delta`]) for gateway certificates, `POST /v1/usage` (gateway certificates; validated,
//! recorded, idempotent by gateway and `report_id`; can be told to fail) and
//! `GET /v1/registry-key`. Only the server is a double; the gateway's client is the real one.

use crate::Pki;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use sluice_net::identity::{Peer, PeerIdentity};
use sluice_policy::licence::Licence;
use sluice_policy::snapshot::{key_id, Delta, SignedDelta, SignedSnapshot, Snapshot};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// Answers counted per revision.
type Served = Arc<Mutex<std::collections::HashMap<u64, usize>>>;

/// What the double serves now.
#[derive(Clone)]
struct Current {
    revision: u64,
    signed: SignedSnapshot,
    /// A delta to `revision` and its base.
    delta: Option<(u64, SignedDelta)>,
}

/// How the double answers `POST /v1/usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UsageMode {
    /// Validate, record (once per gateway and report id) and answer 200.
    #[default]
    Accept,
    /// Answer 503 without recording.
    Unavailable,
    /// Record the report, then answer 503 as if the answer were lost.
    LoseAnswer,
}

/// One `POST /v1/usage` the double received.
#[derive(Debug, Clone)]
pub struct UsageAttempt {
    /// The gateway id from the client certificate, if it was a gateway certificate.
    pub gateway: Option<String>,
    /// `report_id` of the body, if it had one.
    pub report_id: Option<String>,
    /// Status answered.
    pub status: u16,
}

/// Usage reports received and the switch that makes them fail.
#[derive(Debug, Default)]
pub struct UsageLog {
    /// How to answer.
    pub mode: UsageMode,
    /// Every attempt, in order.
    pub attempts: Vec<UsageAttempt>,
    /// Reports taken, once each: (gateway id, body).
    pub accepted: Vec<(String, serde_json::Value)>,
}

impl UsageLog {
    /// Sums of the accepted reports per (licensee, dataset, licence): [requests, records,
    /// refusals].
    pub fn totals(&self) -> std::collections::BTreeMap<(String, String, Option<String>), [u64; 3]> {
        let mut out = std::collections::BTreeMap::new();
        for (_, body) in &self.accepted {
            for row in body["counts"].as_array().unwrap() {
                let key = (
                    row["licensee"].as_str().unwrap().to_owned(),
                    row["dataset"].as_str().unwrap().to_owned(),
                    row["licence"].as_str().map(str::to_owned),
                );
                let sums: &mut [u64; 3] = out.entry(key).or_default();
                for (i, f) in ["requests", "records", "refusals"].iter().enumerate() {
                    sums[i] += row[*f].as_u64().unwrap();
                }
            }
        }
        out
    }
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
    usage: Arc<Mutex<UsageLog>>,
    /// How many times each revision was answered to a snapshot request.
    served: Arc<Mutex<std::collections::HashMap<u64, usize>>>,
    /// How many times a delta to each revision was answered.
    served_deltas: Arc<Mutex<std::collections::HashMap<u64, usize>>>,
    /// TLS connections accepted (handshakes completed).
    connections: Arc<std::sync::atomic::AtomicUsize>,
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
        sluice_net::tls::install_provider();
        let key = SigningKey::from_bytes(&[seed; 32]);
        let snapshot = Snapshot {
            revision: 1,
            issued_at: 1,
            licences: licences.into_iter().map(std::sync::Arc::new).collect(),
            ..Snapshot::default()
        };
        let signed = SignedSnapshot::sign(&snapshot, &key).unwrap();
        let (tx, _) = watch::channel(Current {
            revision: 1,
            signed,
            delta: None,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let double = Arc::new(Self {
            addr,
            key,
            snapshot: Mutex::new(snapshot),
            current: Arc::new(tx),
            task: Mutex::new(None),
            tls: server_config(pki),
            usage: Arc::default(),
            served: Arc::default(),
            served_deltas: Arc::default(),
            connections: Arc::default(),
        });
        double.serve(listener);
        double
    }

    fn serve(&self, listener: TcpListener) {
        let acceptor = TlsAcceptor::from(self.tls.clone());
        let current = self.current.clone();
        let usage = self.usage.clone();
        let served = (self.served.clone(), self.served_deltas.clone());
        let public_key = STANDARD.encode(self.key.verifying_key().as_bytes());
        let kid = key_id(&self.key.verifying_key());
        let connections = self.connections.clone();
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every open connection too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let current = current.clone();
                let usage = usage.clone();
                let served = served.clone();
                let key_doc = serde_json::json!({ "key_id": kid, "public_key": public_key }).to_string();
                let connections = connections.clone();
                conns.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let caller = Arc::new(PeerIdentity::from_chain(tls.get_ref().1.peer_certificates()));
                    let svc = hyper::service::service_fn(move |req| {
                        let current = current.clone();
                        let usage = usage.clone();
                        let served = served.clone();
                        let caller = caller.clone();
                        let key_doc = key_doc.clone();
                        async move {
                            let resp = if req.uri().path() == "/v1/usage" {
                                usage_answer(req, &caller, &usage).await
                            } else {
                                answer(req, &caller, &current, &served, key_doc).await
                            };
                            Ok::<_, std::convert::Infallible>(resp)
                        }
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
        self.current.send_replace(Current {
            revision,
            signed,
            delta: None,
        });
        revision
    }

    /// Like [`Self::publish`], and also serves a delta from the previous revision (carrying
    /// every licence) to polls that ask for one; with `tamper`, the delta's payload is changed
    /// after signing (the whole snapshot stays honest). Returns the new revision.
    pub fn publish_delta(&self, f: impl FnOnce(&mut Snapshot), tamper: bool) -> u64 {
        let mut snap = self.snapshot.lock().unwrap();
        let base = snap.revision;
        f(&mut snap);
        snap.revision += 1;
        let signed = SignedSnapshot::sign(&snap, &self.key).unwrap();
        let delta = Delta {
            base,
            revision: snap.revision,
            issued_at: snap.issued_at,
            licences: snap
                .licences
                .iter()
                .map(|l| sluice_policy::licence::Licence::clone(l))
                .collect(),
            closed_datasets: snap.closed_datasets.clone(),
            all_conditional_closed: snap.all_conditional_closed,
            restricted_licensees: snap.restricted_licensees.clone(),
            revoked_serials: snap.revoked_serials.clone(),
            record_marks: snap.record_marks.clone(),
            risk_rules: snap.risk_rules.clone(),
        };
        let mut signed_delta = SignedDelta::sign(&delta, &self.key).unwrap();
        if tamper {
            let mut forged = delta.clone();
            forged.revoked_serials.push("00".into());
            signed_delta.payload = STANDARD.encode(serde_json::to_vec(&forged).unwrap());
        }
        let revision = snap.revision;
        self.current.send_replace(Current {
            revision,
            signed,
            delta: Some((base, signed_delta)),
        });
        revision
    }

    /// How many times a delta to `revision` was answered.
    pub fn served_delta(&self, revision: u64) -> usize {
        self.served_deltas
            .lock()
            .unwrap()
            .get(&revision)
            .copied()
            .unwrap_or(0)
    }

    /// Publishes a forgery: the signature and key id of the honest next revision over the
    /// snapshot changed by `f`. The payload is valid JSON, so only the signature check can
    /// refuse it (asserted here). Returns its revision.
    pub fn publish_tampered(&self, f: impl FnOnce(&mut Snapshot)) -> u64 {
        let mut snap = self.snapshot.lock().unwrap().clone();
        snap.revision += 1;
        let honest = SignedSnapshot::sign(&snap, &self.key).unwrap();
        f(&mut snap);
        let forged = SignedSnapshot {
            payload: STANDARD.encode(serde_json::to_vec(&snap).unwrap()),
            ..honest
        };
        let verdict = forged.verify(&[self.key.verifying_key()], 0);
        assert!(
            matches!(verdict, Err(sluice_policy::snapshot::SnapshotError::BadSignature)),
            "the forgery must fail on its signature: {verdict:?}"
        );
        self.current.send_replace(Current {
            revision: snap.revision,
            signed: forged,
            delta: None,
        });
        snap.revision
    }

    /// How many times `revision` was answered to a snapshot request.
    pub fn served(&self, revision: u64) -> usize {
        self.served.lock().unwrap().get(&revision).copied().unwrap_or(0)
    }

    /// Sets how `POST /v1/usage` is answered from now on.
    pub fn set_usage_mode(&self, mode: UsageMode) {
        self.usage.lock().unwrap().mode = mode;
    }

    /// TLS connections accepted so far (across [`Self::stop`] and [`Self::resume`]).
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `f` on the usage reports received so far.
    pub fn usage<T>(&self, f: impl FnOnce(&UsageLog) -> T) -> T {
        f(&self.usage.lock().unwrap())
    }

    /// Serves again on the same address after [`RegistryDouble::stop`]: the registry coming
    /// back from an outage.
    pub async fn resume(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
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
    caller: &PeerIdentity,
    current: &watch::Sender<Current>,
    served: &(Served, Served),
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
            if let Err(refused) = gateway_only(caller) {
                return refused;
            }
            let mut after = None;
            let mut wait = 0u64;
            let mut delta = false;
            for pair in req.uri().query().unwrap_or("").split('&') {
                match pair.split_once('=') {
                    Some(("after", v)) => after = v.parse::<u64>().ok(),
                    Some(("wait", v)) => wait = v.parse::<u64>().unwrap_or(0).min(30),
                    Some(("delta", "1")) => delta = true,
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
                    if let Some((base, d)) = c.delta.as_ref().filter(|(b, _)| delta && after == Some(*b)) {
                        *served.1.lock().unwrap().entry(c.revision).or_default() += 1;
                        let mut r = reply(StatusCode::OK, serde_json::to_vec(d).unwrap());
                        r.headers_mut().insert("sluice-delta-base", (*base).into());
                        return r;
                    }
                    *served.0.lock().unwrap().entry(c.revision).or_default() += 1;
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

fn problem(code: &str, status: StatusCode, detail: &str, path: &str) -> Response<Full<Bytes>> {
    let code: sluice_net::problem::ProblemCode = code.parse().expect("a sluice problem code");
    assert_eq!(code.status(), status.as_u16(), "{code} has another status");
    sluice_net::problem::render(code, detail, path, None)
}

/// The gateway id of a gateway caller; 401 without a certificate, 403 for any other kind.
#[allow(clippy::result_large_err)]
fn gateway_only(caller: &PeerIdentity) -> Result<String, Response<Full<Bytes>>> {
    match caller {
        PeerIdentity::Gateway(Peer { id, .. }) => Ok(id.clone()),
        PeerIdentity::None => Err(problem(
            "unauthenticated",
            StatusCode::UNAUTHORIZED,
            "a gateway certificate is required",
            "",
        )),
        other => Err(problem(
            "forbidden",
            StatusCode::FORBIDDEN,
            &format!("{} is not a gateway", other.describe()),
            "",
        )),
    }
}

/// `POST /v1/usage` per the shared contract.
async fn usage_answer(
    req: Request<Incoming>,
    caller: &PeerIdentity,
    log: &Mutex<UsageLog>,
) -> Response<Full<Bytes>> {
    let path = "/v1/usage";
    let gateway = match gateway_only(caller) {
        Ok(g) => Some(g),
        Err(refused) => {
            log.lock().unwrap().attempts.push(UsageAttempt {
                gateway: None,
                report_id: None,
                status: refused.status().as_u16(),
            });
            return refused;
        }
    };
    if req.method() != Method::POST {
        return problem(
            "method-not-allowed",
            StatusCode::METHOD_NOT_ALLOWED,
            "POST only",
            path,
        );
    }
    let body = match Limited::new(req.into_body(), 8 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return problem("bad-request", StatusCode::BAD_REQUEST, "unreadable body", path),
    };
    let parsed = serde_json::from_slice::<serde_json::Value>(&body)
        .map_err(|e| e.to_string())
        .and_then(|v| validate_report(&v).map(|()| v));
    let mut log = log.lock().unwrap();
    let report_id = parsed
        .as_ref()
        .ok()
        .and_then(|v| v["report_id"].as_str().map(str::to_owned));
    let (status, resp) = match parsed {
        Err(why) => (
            StatusCode::BAD_REQUEST,
            problem("bad-request", StatusCode::BAD_REQUEST, &why, path),
        ),
        Ok(_) if log.mode == UsageMode::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            problem("unavailable", StatusCode::SERVICE_UNAVAILABLE, "try later", path),
        ),
        Ok(v) => {
            let gw = gateway.clone().unwrap_or_default();
            let duplicate = log
                .accepted
                .iter()
                .any(|(g, b)| *g == gw && b["report_id"] == v["report_id"]);
            let rows = v["counts"].as_array().map_or(0, Vec::len);
            if !duplicate {
                log.accepted.push((gw, v));
            }
            if log.mode == UsageMode::LoseAnswer {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    problem(
                        "unavailable",
                        StatusCode::SERVICE_UNAVAILABLE,
                        "answer lost",
                        path,
                    ),
                )
            } else {
                let ack = serde_json::json!({
                    "accepted": if duplicate { 0 } else { rows },
                    "duplicate": duplicate,
                });
                let mut r = Response::new(Full::new(Bytes::from(ack.to_string())));
                r.headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                (StatusCode::OK, r)
            }
        }
    };
    log.attempts.push(UsageAttempt {
        gateway,
        report_id,
        status: status.as_u16(),
    });
    resp
}

/// The contract's checks: exactly the known fields (the optional ones only when not zero or
/// empty), a report id, `until` ≥ `from` (RFC 3339
/// UTC seconds), at most 10,000 rows, named licensees and datasets, non-negative integers.
fn validate_report(v: &serde_json::Value) -> Result<(), String> {
    let exact = |o: &serde_json::Value, keys: &[&str]| -> Result<(), String> {
        let o = o.as_object().ok_or("not an object")?;
        let mut got: Vec<&str> = o.keys().map(String::as_str).collect();
        got.sort_unstable();
        let mut want = keys.to_vec();
        want.sort_unstable();
        if got == want {
            Ok(())
        } else {
            Err(format!("fields {got:?}, expected {want:?}"))
        }
    };
    exact(v, &["report_id", "from", "until", "counts"])?;
    if v["report_id"].as_str().is_none_or(str::is_empty) {
        return Err("report_id must be a non-empty string".into());
    }
    let utc = |k: &str| {
        v[k].as_str()
            .filter(|s| s.len() == 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T')
            .ok_or(format!("{k} must be RFC 3339 UTC"))
    };
    if utc("until")? < utc("from")? {
        return Err("until is before from".into());
    }
    let rows = v["counts"].as_array().ok_or("counts must be an array")?;
    if rows.len() > 10_000 {
        return Err("more than 10,000 rows".into());
    }
    for row in rows {
        // Left out when zero or empty: epsilon_micros, refusals_by_code, masked_fields.
        let mut keys = vec![
            "licensee", "dataset", "licence", "requests", "records", "refusals",
        ];
        for optional in ["epsilon_micros", "refusals_by_code", "masked_fields"] {
            if row.get(optional).is_some() {
                keys.push(optional);
            }
        }
        exact(row, &keys)?;
        for k in ["epsilon_micros", "masked_fields"] {
            if row.get(k).is_some_and(|v| v.as_u64().is_none_or(|n| n == 0)) {
                return Err(format!("{k} must be a positive integer when present"));
            }
        }
        if let Some(codes) = row.get("refusals_by_code") {
            let codes = codes.as_object().ok_or("refusals_by_code must be an object")?;
            if codes.is_empty() || codes.values().any(|n| n.as_u64().is_none()) {
                return Err("refusals_by_code must map codes to counts when present".into());
            }
        }
        for k in ["licensee", "dataset"] {
            if row[k].as_str().is_none_or(str::is_empty) {
                return Err(format!("{k} must be a non-empty string"));
            }
        }
        if !(row["licence"].is_null() || row["licence"].is_string()) {
            return Err("licence must be a string or null".into());
        }
        for k in ["requests", "records", "refusals"] {
            if row[k].as_u64().is_none() {
                return Err(format!("{k} must be a non-negative integer"));
            }
        }
    }
    Ok(())
}

fn server_config(pki: &Pki) -> Arc<ServerConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.ca_pem()).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .unwrap();
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

/// A fire-hydrant licence with two clear fields and a rate high enough not to interfere.
pub fn hydrant_licence(id: &str, licensee: &str) -> Licence {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "licensee": licensee,
        "dataset": "fire-hydrants",
        "scenario": "fire-hydrant-adoption",
        "valid_from": "2025-01-01T00:00:00Z",
        "valid_until": "2035-01-01T00:00:00Z",
        "fields": { "id": { "rule": "clear" }, "district": { "rule": "clear" } },
        "rate": { "per_second": 10000, "burst": 10000 },
    }))
    .unwrap()
}

/// The public key (base64) a double started with key seed `seed` signs with.
pub fn public_key_b64_of(seed: u8) -> String {
    STANDARD.encode(SigningKey::from_bytes(&[seed; 32]).verifying_key().as_bytes())
}

/// The `[registry]` section for a gateway subscribing to `double`.
pub fn registry_section(pki: &Pki, double: &RegistryDouble, staleness_bound_s: u64) -> String {
    registry_section_trusting(pki, double, staleness_bound_s, &double.public_key_b64())
}

/// The `[registry]` section for a gateway subscribing to `double` but trusting only
/// `public_key` (base64) for its snapshots.
pub fn registry_section_trusting(
    pki: &Pki,
    double: &RegistryDouble,
    staleness_bound_s: u64,
    public_key: &str,
) -> String {
    let (cert, key) = gateway_client_identity(pki);
    format!(
        "[registry]\nurl = {:?}\ncert = {:?}\nkey = {:?}\nca = {:?}\npublic_key = [{:?}]\nstaleness_bound_s = {staleness_bound_s}\npoll_wait_s = 1\n",
        double.url(),
        cert.display().to_string(),
        key.display().to_string(),
        pki.ca_pem().display().to_string(),
        public_key,
    )
}

//! The demo's sample agency source: the hydrant register over plain HTTP on loopback, as an
//! agency's own REST API would serve it (`GET /hydrants?limit=&offset=&district=`).

use super::hydrants::{generate, Hydrant};
use crate::body::{full, RespBody};
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running sample source.
pub struct SampleSource {
    /// Bound address.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for SampleSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Register {
    records: Vec<Hydrant>,
    json: Vec<Bytes>,
}

impl SampleSource {
    /// Generates the register and serves it on `addr` (port 0 picks a free port).
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let records = generate();
        let json = records
            .iter()
            .map(|h| Bytes::from(serde_json::to_vec(h).unwrap_or_default()))
            .collect();
        let register = Arc::new(Register { records, json });
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let register = register.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let register = register.clone();
                        async move { Ok::<_, Infallible>(serve(&register, &req)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }
}

fn serve(reg: &Register, req: &Request<Incoming>) -> Response<RespBody> {
    if req.uri().path() != "/hydrants" {
        let mut r = Response::new(full("not found\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    }
    let mut limit = 100usize;
    let mut offset = 0usize;
    let mut district: Option<String> = None;
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*k {
            "limit" => limit = v.parse().unwrap_or(100).min(20_000),
            "offset" => offset = v.parse().unwrap_or(0),
            "district" => district = Some(v.into_owned()),
            _ => {}
        }
    }
    let mut body = Vec::with_capacity(limit.min(2_000) * 400);
    body.push(b'[');
    let selected = reg
        .records
        .iter()
        .zip(&reg.json)
        .filter(|(h, _)| district.as_deref().is_none_or(|d| h.district == d))
        .skip(offset)
        .take(limit);
    for (n, (_, json)) in selected.enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(json);
    }
    body.push(b']');
    let mut r = Response::new(full(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

//! The demo's sample agency sources over plain HTTP on loopback, as an agency's own REST API
//! would serve them: the hydrant register (`GET /hydrants?limit=&offset=&district=`) and the
//! utilities bureau's register (`GET /utilities?limit=&offset=&district=&month=`).

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_net::body::{full, RespBody};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running sample source.
pub struct SampleSource {
    /// Bound address.
    pub addr: SocketAddr,
    /// The register's path, e.g. `/hydrants`.
    pub path: &'static str,
    task: JoinHandle<()>,
}

impl Drop for SampleSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A register served by a sample source: its path, the query parameters that filter it
/// (exact match), and each record's filter values and JSON.
struct Register {
    path: &'static str,
    filters: &'static [&'static str],
    rows: Vec<(Vec<String>, Bytes)>,
}

impl Register {
    fn new<T: serde::Serialize>(
        path: &'static str,
        filters: &'static [&'static str],
        records: &[T],
        values: impl Fn(&T) -> Vec<String>,
    ) -> Self {
        let rows = records
            .iter()
            .map(|r| (values(r), Bytes::from(serde_json::to_vec(r).unwrap_or_default())))
            .collect();
        Self { path, filters, rows }
    }
}

impl SampleSource {
    /// Generates the hydrant register and serves it at `/hydrants` on `addr` (port 0 picks a
    /// free port).
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let records = super::hydrants::generate();
        let register = Register::new("/hydrants", &["district"], &records, |h| {
            vec![h.district.to_owned()]
        });
        Self::serve(addr, register).await
    }

    /// Generates the utilities bureau's register and serves it at `/utilities` on `addr`.
    pub async fn start_utilities(addr: SocketAddr) -> std::io::Result<Self> {
        let records = super::utilities::generate();
        let register = Register::new("/utilities", &["district", "month"], &records, |u| {
            vec![u.district.to_owned(), u.month.clone()]
        });
        Self::serve(addr, register).await
    }

    /// The register's URL.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }

    async fn serve(addr: SocketAddr, register: Register) -> std::io::Result<Self> {
        let path = register.path;
        let register = Arc::new(register);
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
        Ok(Self { addr, path, task })
    }
}

fn serve(reg: &Register, req: &Request<Incoming>) -> Response<RespBody> {
    if req.uri().path() != reg.path {
        let mut r = Response::new(full("not found\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    }
    let mut limit = 100usize;
    let mut offset = 0usize;
    let mut wanted: Vec<(usize, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*k {
            "limit" => limit = v.parse().unwrap_or(100).min(20_000),
            "offset" => offset = v.parse().unwrap_or(0),
            other => {
                if let Some(i) = reg.filters.iter().position(|f| *f == other) {
                    wanted.push((i, v.into_owned()));
                }
            }
        }
    }
    let mut body = Vec::with_capacity(limit.min(2_000) * 400);
    body.push(b'[');
    let selected = reg
        .rows
        .iter()
        .filter(|(values, _)| wanted.iter().all(|(i, v)| values[*i] == *v))
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

//! The admin listener: `/healthz`, `/readyz` and Prometheus `/metrics`, plain HTTP on loopback.

use crate::audit::AuditLog;
use crate::metrics::Metrics;
use crate::subscription::Subscription;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_net::body::{full, RespBody};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the admin endpoints report on.
pub struct Health {
    /// The audit log (failing = not ready).
    pub audit: Arc<AuditLog>,
    /// The registry subscription (stale = not ready).
    pub subscription: Option<Arc<Subscription>>,
    /// The metrics rendered at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The runtime in force (its sources' pools).
    pub runtime: Arc<arc_swap::ArcSwap<crate::runtime::Runtime>>,
    /// Each source's last outcome.
    pub sources: Arc<crate::source_health::SourceHealth>,
}

/// Serves the admin endpoints until `shutdown` turns true.
pub async fn serve(listener: TcpListener, gw: Arc<Health>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = shutdown.changed() => return,
        };
        let gw = gw.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let gw = gw.clone();
                async move { Ok::<_, Infallible>(route(&gw, &req)) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn route(gw: &Health, req: &Request<Incoming>) -> Response<RespBody> {
    let (status, ctype, body) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" => {
            // Each source's health follows, one line each (a failing source is named, but
            // does not make the gateway unready: it still serves the other datasets).
            let sources = gw.sources.report(&gw.runtime.load());
            let (status, first) = match readiness(gw) {
                Ok(()) => (StatusCode::OK, "ready".to_owned()),
                Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")),
            };
            let mut body = first;
            for line in sources {
                body.push('\n');
                body.push_str(&line);
            }
            body.push('\n');
            (status, "text/plain", body)
        }
        "/metrics" => {
            if let (Some(reg), Some(f)) = (&gw.subscription, &gw.metrics.freshness) {
                f.set(reg.revision(), reg.unconfirmed_for(), reg.freshness().is_err());
            }
            for (dataset, source) in gw.runtime.load().sources.iter() {
                if let Some(p) = source.pool_status() {
                    for (state, n) in [("open", p.open), ("idle", p.idle), ("max", p.max)] {
                        let labels = crate::metrics::PoolLabels {
                            dataset: dataset.clone(),
                            state,
                        };
                        gw.metrics
                            .source_pool
                            .get_or_create(&labels)
                            .set(i64::try_from(n).unwrap_or(i64::MAX));
                    }
                }
            }
            (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                gw.metrics.render(),
            )
        }
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_owned()),
    };
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    if let Ok(v) = ctype.parse() {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// Why the gateway is not ready, if it is not.
pub fn readiness(gw: &Health) -> Result<(), String> {
    gw.audit.health().map_err(|e| format!("audit log failing: {e}"))?;
    if let Some(reg) = &gw.subscription {
        reg.freshness()
            .map_err(|e| format!("registry snapshot stale: {e}"))?;
    }
    Ok(())
}

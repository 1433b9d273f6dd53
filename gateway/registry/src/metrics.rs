//! `GET /metrics` on the admin listener (administrator certificates): the registry's state in
//! the Prometheus text format, read from the store at each scrape, so replicas agree and
//! nothing is counted twice. Applications waiting and overdue per owning agency (the review
//! deadlines of issue 16), open objections, the snapshot revision this process serves, and
//! each unretired gateway's health ([`crate::gateway_health`]): whether it is stale, and, once
//! it has been answered a snapshot, the seconds since, the revisions it is behind and when its
//! certificate expires.

use super::problem::Problem;
use super::snapshot::Distributor;
use super::store::Store;
use http::{header, HeaderValue, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sluice_net::body::{full, RespBody};

/// The agency an application is for (`-`: its dataset names none).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgencyLabels {
    agency: String,
}

/// A gateway (`gateway_…` gauges).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GatewayLabels {
    gateway: String,
}

fn gauge(v: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    g
}

/// The metrics as Prometheus text (`sluice_registry_…`).
pub async fn render(store: &Store, dist: &Distributor) -> Result<String, Problem> {
    let mut reg = Registry::with_prefix("sluice_registry");
    let waiting = Family::<AgencyLabels, Gauge>::default();
    let overdue = Family::<AgencyLabels, Gauge>::default();
    let today = time::OffsetDateTime::now_utc().date();
    for a in store.applications(None, None).await? {
        let labels = AgencyLabels {
            agency: a.agency.clone().unwrap_or_else(|| "-".to_owned()),
        };
        if matches!(
            a.status,
            super::application::Status::Open | super::application::Status::MoreInfo
        ) {
            waiting.get_or_create(&labels).inc();
            // Present for every agency with waiting applications, 0 when none is late.
            let late = overdue.get_or_create(&labels);
            if a.overdue(today) {
                late.inc();
            }
        }
    }
    reg.register(
        "applications_waiting",
        "Applications open or waiting for the applicant, per owning agency",
        waiting,
    );
    reg.register(
        "applications_overdue",
        "Applications open past their agency's review deadline, per owning agency",
        overdue,
    );
    reg.register(
        "objections_open",
        "Objections and corrections not decided yet",
        gauge(store.open_objections().await?),
    );
    reg.register(
        "snapshot_revision",
        "The snapshot revision this registry process serves",
        gauge(dist.current()),
    );
    let (age, behind, stale, cert) = (
        Family::<GatewayLabels, Gauge>::default(),
        Family::<GatewayLabels, Gauge>::default(),
        Family::<GatewayLabels, Gauge>::default(),
        Family::<GatewayLabels, Gauge>::default(),
    );
    let health = super::gateway_health::read(store, dist.current()).await?;
    for h in health.iter().filter(|h| !h.retired) {
        let labels = GatewayLabels {
            gateway: h.id.clone(),
        };
        stale.get_or_create(&labels).set(i64::from(h.stale));
        if let (Some(a), Some(b)) = (h.age_s, h.revisions_behind) {
            age.get_or_create(&labels).set(a);
            behind
                .get_or_create(&labels)
                .set(i64::try_from(b).unwrap_or(i64::MAX));
        }
        let not_after = h.cert_not_after.as_deref().and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        });
        if let Some(t) = not_after {
            cert.get_or_create(&labels).set(t.unix_timestamp());
        }
    }
    reg.register(
        "gateway_contact_age_seconds",
        "Seconds since the gateway was last answered a snapshot (a 304 included), per unretired gateway once seen",
        age,
    );
    reg.register(
        "gateway_revisions_behind",
        "The registry's snapshot revision less the one the gateway was last answered, per unretired gateway once seen",
        behind,
    );
    reg.register(
        "gateway_stale",
        "1 when the gateway is stale (never seen, not seen for 90 s, or behind a revision made over 10 s ago), per unretired gateway",
        stale,
    );
    reg.register(
        "gateway_cert_expiry_timestamp_seconds",
        "End of validity of the client certificate the gateway last came with, unix seconds",
        cert,
    );
    let mut out = String::new();
    encode(&mut out, &reg).map_err(|e| Problem::new(super::problem::ProblemCode::Internal, e.to_string()))?;
    Ok(out)
}

/// The response of `GET /metrics`.
pub async fn get(store: &Store, dist: &Distributor) -> Result<Response<RespBody>, Problem> {
    let body = render(store, dist).await?;
    let mut r = Response::new(full(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

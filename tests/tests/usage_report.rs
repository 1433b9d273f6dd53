//! Usage reporting end to end: requests through a real gateway over mTLS, the real reporter
//! posting to a registry double (real mTLS, gateway certificate checked), retries with the same
//! report id, the shutdown flush, and the registry freshness metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_tests::client::{get, tls_config};
use sluice_tests::registry_double::{
    hydrant_licence, public_key_b64_of, registry_section, registry_section_trusting, RegistryDouble,
    UsageMode,
};
use sluice_tests::upstream::{Mode, Upstream};
use sluice_tests::{write_config, Pki};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SCENARIO: (&str, &str) = ("sluice-scenario", "fire-hydrant-adoption");
const RECORDS: &str = "/v1/datasets/fire-hydrants/records?limit=2";
const HYDRANTS: &str = "fire-hydrants";

type Totals = BTreeMap<(String, String, Option<String>), [u64; 3]>;

fn row(
    licensee: &str,
    dataset: &str,
    licence: Option<&str>,
    counts: [u64; 3],
) -> ((String, String, Option<String>), [u64; 3]) {
    (
        (licensee.into(), dataset.into(), licence.map(str::to_owned)),
        counts,
    )
}

/// The gateway's `/metrics` text.
async fn metrics(admin: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// The value of an unlabelled metric, if exposed.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls `check` every 50 ms until it returns true; panics with `what` after `limit`.
async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within {limit:?}: {what}");
}

/// Waits until the gateway holds `revision` and the registry confirmed it.
async fn wait_for_revision(admin: SocketAddr, revision: f64) {
    wait_until(Duration::from_secs(10), "snapshot revision", || async move {
        let m = metrics(admin).await;
        metric(&m, "sluice_registry_snapshot_revision") == Some(revision)
            && metric(&m, "sluice_registry_stale") == Some(0.0)
    })
    .await;
}

/// Waits until the gateway has finished counting `n` requests (usage is counted with them).
async fn wait_for_requests(admin: SocketAddr, n: u64) {
    wait_until(Duration::from_secs(10), "requests counted", || async move {
        let m = metrics(admin).await;
        let counted: f64 = m
            .lines()
            .filter(|l| l.starts_with("sluice_requests_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        counted as u64 == n
    })
    .await;
}

async fn wait_for_totals(registry: &RegistryDouble, want: &Totals) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if registry.usage(|u| u.totals()) == *want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = registry.usage(|u| u.totals());
    panic!("usage totals {got:?}, wanted {want:?}");
}

#[tokio::test]
async fn requests_records_and_refusals_reach_the_registry_per_licence() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let registry = RegistryDouble::start(&pki, 7, vec![hydrant_licence("l1", "acme")]).await;
    let section = registry_section(&pki, &registry, 60) + "usage_interval_s = 1\n";
    let path = write_config(&pki, up.addr, "", &section);
    let gw = sluice_agency::gateway::Gateway::start(&path).await.unwrap();
    wait_for_revision(gw.admin_addr, 1.0).await;
    let (cert, key) = pki.licensee("acme");
    let acme = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let (cert, key) = pki.licensee("bob");
    let bob = tls_config(&pki.ca_pem(), Some((&cert, &key)));

    for _ in 0..3 {
        let r = get(&acme, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.json().as_array().unwrap().len(), 2);
    }
    // Refused before a licence was found: counted without one.
    let r = get(
        &acme,
        gw.data_addr,
        "/v1/datasets/fire-hydrants/records?limit=0",
        &[SCENARIO],
    )
    .await
    .unwrap();
    assert_eq!(r.problem(), "bad-request");
    // The catalog names no dataset.
    let r = get(&acme, gw.data_addr, "/v1/catalog", &[]).await.unwrap();
    assert_eq!(r.status, 200);
    // An aborted stream counts the one record that left before the break.
    up.set_mode(Mode::BrokenMidStream);
    let r = get(&acme, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    let (_, partial) = r.body.expect_err("the stream must be aborted");
    assert!(String::from_utf8_lossy(&partial).contains("SH-1"));
    up.set_mode(Mode::Good);
    for _ in 0..2 {
        let r = get(&bob, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
        assert_eq!(r.problem(), "no-licence");
    }
    // Anonymous requests on the public listener are nobody's usage.
    let anon = tls_config(&pki.ca_pem(), None);
    let r = get(
        &anon,
        gw.public_addr.unwrap(),
        "/v1/datasets/hydrant-locations/records?limit=2",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);

    let want: Totals = [
        row("acme", "-", None, [1, 0, 0]),
        row("acme", HYDRANTS, None, [1, 0, 1]),
        row("acme", HYDRANTS, Some("l1"), [4, 7, 0]),
        row("bob", HYDRANTS, None, [2, 0, 2]),
    ]
    .into();
    wait_for_totals(&registry, &want).await;
    registry.usage(|u| {
        assert!(u.accepted.iter().all(|(gw, _)| gw == "test-gateway"));
        let mut ids: Vec<_> = u.accepted.iter().map(|(_, b)| b["report_id"].clone()).collect();
        ids.dedup();
        assert_eq!(ids.len(), u.accepted.len(), "each report has its own id");
        assert!(u.attempts.iter().all(|a| a.status == 200));
    });
    // Only gateway certificates may report.
    let r = get(&acme, registry.addr, "/v1/usage", &[]).await.unwrap();
    assert_eq!((r.status.as_u16(), r.problem().as_str()), (403, "forbidden"));
    let r = get(&anon, registry.addr, "/v1/usage", &[]).await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.problem().as_str()),
        (401, "unauthenticated")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_failed_report_is_sent_again_unchanged_and_counted_once() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let registry = RegistryDouble::start(&pki, 7, vec![hydrant_licence("l1", "acme")]).await;
    let section = registry_section(&pki, &registry, 60) + "usage_interval_s = 1\n";
    let path = write_config(&pki, up.addr, "", &section);
    let gw = sluice_agency::gateway::Gateway::start(&path).await.unwrap();
    wait_for_revision(gw.admin_addr, 1.0).await;
    let (cert, key) = pki.licensee("acme");
    let acme = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let ok = || async {
        let r = get(&acme, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
    };

    // The registry is unavailable: the report is tried again with the same id.
    registry.set_usage_mode(UsageMode::Unavailable);
    ok().await;
    ok().await;
    wait_until(Duration::from_secs(10), "two failed attempts", || async {
        registry.usage(|u| u.attempts.iter().filter(|a| a.status == 503).count() >= 2)
    })
    .await;
    let first = registry.usage(|u| {
        let ids: Vec<_> = u.attempts.iter().map(|a| a.report_id.clone().unwrap()).collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        assert!(u.accepted.is_empty());
        ids[0].clone()
    });

    // The registry takes the report but the answer is lost: the retry must not count twice.
    registry.set_usage_mode(UsageMode::LoseAnswer);
    wait_until(Duration::from_secs(10), "the report taken", || async {
        registry.usage(|u| !u.accepted.is_empty())
    })
    .await;
    ok().await;
    registry.set_usage_mode(UsageMode::Accept);
    let want: Totals = [row("acme", HYDRANTS, Some("l1"), [3, 6, 0])].into();
    wait_for_totals(&registry, &want).await;
    registry.usage(|u| {
        let same: Vec<u16> = u
            .attempts
            .iter()
            .filter(|a| a.report_id.as_deref() == Some(first.as_str()))
            .map(|a| a.status)
            .collect();
        assert_eq!(same.last(), Some(&200), "{same:?}");
        assert_eq!(
            u.accepted
                .iter()
                .filter(|(_, b)| b["report_id"] == first.as_str())
                .count(),
            1
        );
        assert_eq!(u.accepted[0].1["counts"][0]["requests"], 2);
    });
    let m = metrics(gw.admin_addr).await;
    assert!(
        metric(&m, "sluice_usage_report_failures_total").unwrap() >= 3.0,
        "{m}"
    );

    // Graceful shutdown reports what is left.
    ok().await;
    wait_for_requests(gw.admin_addr, 4).await;
    gw.shutdown().await;
    let want: Totals = [row("acme", HYDRANTS, Some("l1"), [4, 8, 0])].into();
    assert_eq!(registry.usage(|u| u.totals()), want);
}

#[tokio::test]
async fn freshness_metrics_and_usage_unsent_at_shutdown_survive_a_restart() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let registry = RegistryDouble::start(&pki, 7, vec![hydrant_licence("l1", "acme")]).await;
    // Reports only at shutdown; the snapshot is stale 2 s after the last confirmation.
    let section = registry_section(&pki, &registry, 2) + "usage_interval_s = 3600\n";
    let path = write_config(&pki, up.addr, "", &section);
    let gw = sluice_agency::gateway::Gateway::start(&path).await.unwrap();
    wait_for_revision(gw.admin_addr, 1.0).await;
    registry.publish(|s| s.issued_at = 2);
    wait_for_revision(gw.admin_addr, 2.0).await;
    let m = metrics(gw.admin_addr).await;
    assert!(
        metric(&m, "sluice_registry_snapshot_age_seconds").unwrap() < 2.0,
        "{m}"
    );

    let (cert, key) = pki.licensee("acme");
    let acme = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let r = get(&acme, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    wait_for_requests(gw.admin_addr, 1).await;

    // The registry goes away: the metrics say stale once the bound has passed.
    registry.stop();
    wait_until(Duration::from_secs(10), "stale", || async {
        let m = metrics(gw.admin_addr).await;
        metric(&m, "sluice_registry_stale") == Some(1.0)
            && metric(&m, "sluice_registry_snapshot_age_seconds").unwrap() >= 2.0
            && metric(&m, "sluice_registry_snapshot_revision") == Some(2.0)
    })
    .await;
    let r = get(&acme, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.problem(), "registry-stale");
    wait_for_requests(gw.admin_addr, 2).await;

    // The shutdown flush cannot reach the registry: the report is saved, not dropped.
    gw.shutdown().await;
    let unsent = pki.dir.path().join("state").join("usage-unsent.json");
    let saved: serde_json::Value = serde_json::from_str(&sluice_tests::read(&unsent)).unwrap();
    let saved_id = saved[0]["report_id"].as_str().unwrap().to_owned();
    assert_eq!(saved.as_array().unwrap().len(), 1);

    // After a restart against a registry that answers, the saved report goes first, unchanged.
    let registry = RegistryDouble::start(&pki, 7, vec![hydrant_licence("l1", "acme")]).await;
    let section = registry_section(&pki, &registry, 60) + "usage_interval_s = 1\n";
    let path = write_config(&pki, up.addr, "", &section);
    let gw = sluice_agency::gateway::Gateway::start(&path).await.unwrap();
    let want: Totals = [
        row("acme", HYDRANTS, Some("l1"), [1, 2, 0]),
        row("acme", HYDRANTS, None, [1, 0, 1]),
    ]
    .into();
    wait_for_totals(&registry, &want).await;
    assert_eq!(
        registry.usage(|u| u.accepted[0].1["report_id"].clone()),
        saved_id.as_str()
    );
    wait_until(Duration::from_secs(5), "the saved file removed", || async {
        !unsent.exists()
    })
    .await;
    gw.shutdown().await;
}

#[tokio::test]
async fn never_confirmed_is_stale_with_the_age_counted_from_start() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    // The registry signs with key 9, the gateway trusts key 7: nothing is ever confirmed.
    let rogue = RegistryDouble::start(&pki, 9, vec![hydrant_licence("l1", "acme")]).await;
    let section = registry_section_trusting(&pki, &rogue, 60, &public_key_b64_of(7));
    let path = write_config(&pki, up.addr, "", &section);
    let gw = sluice_agency::gateway::Gateway::start(&path).await.unwrap();
    wait_until(Duration::from_secs(10), "age counted from start", || async {
        let m = metrics(gw.admin_addr).await;
        metric(&m, "sluice_registry_snapshot_revision") == Some(0.0)
            && metric(&m, "sluice_registry_stale") == Some(1.0)
            && metric(&m, "sluice_registry_snapshot_age_seconds").unwrap() >= 1.0
    })
    .await;
    gw.shutdown().await;
}

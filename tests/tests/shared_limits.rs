//! Two gateway replicas sharing daily quotas through Redis (127.0.0.1:6379, running here and
//! in CI) never deliver more than one quota together.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_tests::client::{get, tls_config};
use sluice_tests::upstream::Upstream;
use sluice_tests::{write_config, Pki};
use std::time::{SystemTime, UNIX_EPOCH};

const SCENARIO: (&str, &str) = ("sluice-scenario", "fire-hydrant-adoption");

const LICENCE: &str = r#"
[[licences]]
id = "shared-l1"
licensee = "acme"
dataset = "fire-hydrants"
scenario = "fire-hydrant-adoption"
valid_from = "2025-01-01T00:00:00Z"
valid_until = "2035-01-01T00:00:00Z"
fields.id = { rule = "clear" }
rate = { per_second = 1000, burst = 1000 }
quota = { records_per_day = 30 }
"#;

/// Starts a replica with its own PKI and state, sharing Redis under `prefix`.
async fn replica(
    up: std::net::SocketAddr,
    redis_url: &str,
    prefix: &str,
) -> (Pki, sluice_agency::gateway::Running) {
    let pki = Pki::new();
    let path = write_config(&pki, up, LICENCE, "");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[limits]\n",
        &format!("[limits]\nredis_url = {redis_url:?}\nredis_prefix = {prefix:?}\n"),
    );
    std::fs::write(&path, text).unwrap();
    let gw = sluice_agency::gateway::Gateway::start(&path).await.unwrap();
    (pki, gw)
}

#[tokio::test]
async fn replicas_share_one_records_quota() {
    let up = Upstream::start().await;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let prefix = format!("sluice-test-{nanos}");
    let (pki_a, a) = replica(up.addr, "redis://127.0.0.1:6379", &prefix).await;
    let (pki_b, b) = replica(up.addr, "redis://127.0.0.1:6379", &prefix).await;
    let mut tasks = Vec::new();
    for (pki, gw) in [(&pki_a, &a), (&pki_b, &b)] {
        let (cert, key) = pki.licensee("acme");
        let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
        for _ in 0..4 {
            let (tls, addr) = (tls.clone(), gw.data_addr);
            tasks.push(tokio::spawn(async move {
                let r = get(
                    &tls,
                    addr,
                    "/v1/datasets/fire-hydrants/records?limit=20",
                    &[SCENARIO],
                )
                .await
                .unwrap();
                if r.status == 200 {
                    r.json().as_array().unwrap().len()
                } else {
                    assert_eq!(r.problem(), "quota-exhausted");
                    0
                }
            }));
        }
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 30, "both replicas together deliver exactly one quota");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn unreachable_redis_fails_closed_for_licensed_requests() {
    let up = Upstream::start().await;
    let (pki, gw) = replica(up.addr, "redis://127.0.0.1:1", "sluice-test-down").await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let r = get(
        &tls,
        gw.data_addr,
        "/v1/datasets/fire-hydrants/records?limit=2",
        &[SCENARIO],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.problem(), "unavailable");
    // Unconditional data on the public listener needs no licence limits.
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
    gw.shutdown().await;
}

//! The gateway's registry subscription end to end: a registry double signing real snapshots
//! over real mTLS, the real gateway client, persistence, freshness and revoked serials.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_policy::licence::LicenceStatus;
use sluice_policy::snapshot::SignedSnapshot;
use sluice_tests::client::{get, tls_config, Reply};
use sluice_tests::registry_double::{
    hydrant_licence, public_key_b64_of, registry_section, registry_section_trusting, RegistryDouble,
};
use sluice_tests::upstream::Upstream;
use sluice_tests::{read, write_config, Pki};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SCENARIO: (&str, &str) = ("sluice-scenario", "fire-hydrant-adoption");
const RECORDS: &str = "/v1/datasets/fire-hydrants/records?limit=2";
const PUBLIC: &str = "/v1/datasets/hydrant-locations/records?limit=2";

fn set_status(status: LicenceStatus) -> impl FnOnce(&mut sluice_policy::snapshot::Snapshot) {
    move |s| std::sync::Arc::make_mut(&mut s.licences[0]).status = status
}

/// `""` for a 200, the problem code otherwise.
fn outcome(r: &Reply) -> String {
    if r.status == 200 {
        String::new()
    } else {
        r.problem()
    }
}

/// Requests until the outcome is `want` (bounded); returns the time it took.
async fn until(tls: &Arc<rustls::ClientConfig>, addr: SocketAddr, path: &str, want: &str) -> Duration {
    let start = Instant::now();
    let mut last = String::from("-");
    while start.elapsed() < Duration::from_secs(5) {
        let r = get(tls, addr, path, &[SCENARIO]).await.unwrap();
        last = outcome(&r);
        if last == want {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("still `{last}` after 5 s, wanted `{want}`");
}

async fn readyz(addr: SocketAddr) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out)
}

fn persisted_revision(pki: &Pki) -> u64 {
    let signed: SignedSnapshot =
        serde_json::from_str(&read(&pki.dir.path().join("state").join("snapshot.json"))).unwrap();
    let bytes = base64_decode(&signed.payload);
    let snap: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    snap["revision"].as_u64().unwrap()
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test]
async fn snapshots_drive_decisions_and_the_gateway_fails_closed_when_stale() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let registry = RegistryDouble::start(&pki, 7, Vec::new()).await;
    // A local licence is ignored once [registry] is configured.
    let local = "[[licences]]\nid = \"local\"\nlicensee = \"acme\"\ndataset = \"fire-hydrants\"\nscenario = \"fire-hydrant-adoption\"\nvalid_from = \"2025-01-01T00:00:00Z\"\nvalid_until = \"2035-01-01T00:00:00Z\"\nfields.id = { rule = \"clear\" }\n";
    let path = write_config(&pki, up.addr, local, &registry_section(&pki, &registry, 2));
    let gw = sluice_agency::gateway::Gateway::start(&path).await.unwrap();
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let data = gw.data_addr;

    until(&tls, data, RECORDS, "no-licence").await;
    // Grant.
    registry.publish(|s| s.licences.push(hydrant_licence("l1", "acme").into()));
    until(&tls, data, RECORDS, "").await;
    // Suspend.
    registry.publish(set_status(LicenceStatus::Suspended {
        reason: "audit".into(),
    }));
    until(&tls, data, RECORDS, "licence-suspended").await;
    // Revoke and re-grant, timing each change from publication to enforcement.
    let mut revocations = Vec::new();
    for _ in 0..20 {
        registry.publish(set_status(LicenceStatus::Active));
        until(&tls, data, RECORDS, "").await;
        registry.publish(set_status(LicenceStatus::Revoked {
            reason: "violation".into(),
        }));
        let took = until(&tls, data, RECORDS, "licence-revoked").await;
        assert!(took < Duration::from_secs(1), "revocation took {took:?}");
        revocations.push(took);
    }
    revocations.sort();
    eprintln!(
        "revocation latency over {} revocations: p50 {:?}, p99 {:?}, max {:?}",
        revocations.len(),
        percentile(&revocations, 0.5),
        percentile(&revocations, 0.99),
        revocations[revocations.len() - 1]
    );
    let held = persisted_revision(&pki);

    // A forged snapshot (re-activating the licence, valid JSON, signature of another payload)
    // is rejected; the previous state stays. Rejected, it is fetched again (the gateway still
    // asks for what follows the revision it holds), so a second fetch shows the verdict is in.
    let forged = registry.publish_tampered(set_status(LicenceStatus::Active));
    let start = Instant::now();
    while registry.served(forged) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the forged snapshot was not fetched twice"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = get(&tls, data, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(outcome(&r), "licence-revoked");
    assert_eq!(persisted_revision(&pki), held);

    // Re-grant, then revoke the licensee's certificate serial: refused before any CRL.
    registry.publish(set_status(LicenceStatus::Active));
    until(&tls, data, RECORDS, "").await;
    let serial = sluice_certs::identity_from_pem(read(&cert).as_bytes())
        .unwrap()
        .serial_hex;
    registry.publish(|s| s.revoked_serials = vec![serial.to_uppercase()]);
    until(&tls, data, RECORDS, "certificate-revoked").await;
    let audit = std::fs::read_dir(sluice_tests::audit_dir(&pki))
        .unwrap()
        .map(|e| read(&e.unwrap().path()))
        .collect::<String>();
    assert!(audit.contains("certificate-revoked"));
    registry.publish(|s| s.revoked_serials.clear());
    until(&tls, data, RECORDS, "").await;
    let (status, _) = readyz(gw.admin_addr).await;
    assert_eq!(status, 200);

    // The registry goes away: served from the snapshot held, then refused once stale.
    registry.stop();
    let stopped = Instant::now();
    let r = get(&tls, data, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 200);
    let took = until(&tls, data, RECORDS, "registry-stale").await;
    assert!(
        stopped.elapsed() >= Duration::from_secs(1),
        "stale too early: {took:?}"
    );
    let r = get(&tls, data, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 503);
    assert!(r.json()["detail"].as_str().unwrap().contains("the bound is 2 s"));
    // Unconditional data on the public listener is still served.
    let anon = tls_config(&pki.ca_pem(), None);
    let r = get(&anon, gw.public_addr.unwrap(), PUBLIC, &[]).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (status, body) = readyz(gw.admin_addr).await;
    assert_eq!(status, 503);
    assert!(body.contains("registry snapshot stale"), "{body}");
    gw.shutdown().await;

    // Restart with the registry still down (and a longer bound): the persisted snapshot is
    // loaded, verified again and enforced.
    let path = write_config(&pki, up.addr, local, &registry_section(&pki, &registry, 60));
    let gw = sluice_agency::gateway::Gateway::start(&path).await.unwrap();
    let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.headers["sluice-licence"], "l1");
    gw.shutdown().await;
}

#[tokio::test]
async fn snapshot_signed_by_an_unknown_key_is_ignored() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    // The registry signs with key 9, the gateway trusts key 7.
    let rogue = RegistryDouble::start(&pki, 9, vec![hydrant_licence("l1", "acme")]).await;
    let section = registry_section_trusting(&pki, &rogue, 60, &public_key_b64_of(7));
    let path = write_config(&pki, up.addr, "", &section);
    let gw = sluice_agency::gateway::Gateway::start(&path).await.unwrap();
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    // Until the gateway has had its say on the rogue's snapshot (revision 1): refused and
    // fetched again, or (wrongly) taken.
    let subscription = gw.gateway.subscription().unwrap().clone();
    let start = Instant::now();
    while rogue.served(1) < 2 && subscription.revision() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the gateway neither refused nor took the rogue snapshot within 10 s (fetched {})",
            rogue.served(1)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Never confirmed by a verified snapshot: conditional data is refused.
    let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(outcome(&r), "registry-stale");
    assert!(!pki.dir.path().join("state").join("snapshot.json").exists());
    assert_eq!(
        subscription.revision(),
        0,
        "a snapshot signed by an unknown key was taken"
    );
    gw.shutdown().await;
}

/// Issue 11, item 15: after a registry outage the gateway is fresh again within one round trip
/// of the registry coming back (plus the retry backoff, at most 5 s), not after a whole
/// long-poll wait (20 s here): the first poll after a failure does not wait.
#[tokio::test]
async fn freshness_returns_promptly_when_the_registry_comes_back() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let registry = RegistryDouble::start(&pki, 7, vec![hydrant_licence("l1", "acme")]).await;
    let section = registry_section(&pki, &registry, 2).replace("poll_wait_s = 1", "poll_wait_s = 20");
    assert!(section.contains("poll_wait_s = 20"), "{section}");
    let path = write_config(&pki, up.addr, "", &section);
    let gw = sluice_agency::gateway::Gateway::start(&path).await.unwrap();
    let ready_within = |bound: Duration, want: u16| async move {
        let start = Instant::now();
        loop {
            let (status, body) = readyz(gw.admin_addr).await;
            if status == want {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < bound,
                "/readyz still {status} after {bound:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    ready_within(Duration::from_secs(10), 200).await;
    registry.stop();
    ready_within(Duration::from_secs(10), 503).await;
    registry.resume().await;
    let back = ready_within(Duration::from_secs(15), 200).await;
    assert!(back < Duration::from_secs(8), "fresh again only after {back:?}");
    gw.shutdown().await;
}

/// Issue 12, item 5: a gateway holding a snapshot asks for deltas; a verified delta is
/// enforced and persisted after the snapshot, so a restart with the registry down starts from
/// both; a delta whose signature fails is refused (the previous state stays) and the next poll
/// asks for, and takes, the whole snapshot.
#[tokio::test]
async fn deltas_are_applied_and_persisted_and_a_refused_one_falls_back_to_the_whole_snapshot() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let registry = RegistryDouble::start(&pki, 7, vec![hydrant_licence("l1", "acme")]).await;
    let path = write_config(&pki, up.addr, "", &registry_section(&pki, &registry, 60));
    let gw = sluice_agency::gateway::Gateway::start(&path).await.unwrap();
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    until(&tls, gw.data_addr, RECORDS, "").await;
    let deltas = pki.dir.path().join("state").join("snapshot-deltas.json");

    // A delta: suspended.
    let suspended = registry.publish_delta(
        set_status(LicenceStatus::Suspended {
            reason: "audit".into(),
        }),
        false,
    );
    until(&tls, gw.data_addr, RECORDS, "licence-suspended").await;
    assert_eq!(
        (registry.served_delta(suspended), registry.served(suspended)),
        (1, 0)
    );
    assert_eq!(persisted_revision(&pki), 1, "the whole snapshot stays as it was");
    let chain: Vec<serde_json::Value> = serde_json::from_str(&read(&deltas)).unwrap();
    assert_eq!(chain.len(), 1);

    // Restart with the registry down: snapshot 1 and the delta to 2, both verified again.
    gw.shutdown().await;
    registry.stop();
    let gw = sluice_agency::gateway::Gateway::start(&path).await.unwrap();
    let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(outcome(&r), "licence-suspended");
    assert_eq!(gw.gateway.subscription().unwrap().revision(), suspended);
    registry.resume().await;

    // A tampered delta (resuming, and a forged revoked serial): refused, then the whole
    // snapshot is fetched and taken, and the chain it replaces is gone.
    let resumed = registry.publish_delta(set_status(LicenceStatus::Active), true);
    until(&tls, gw.data_addr, RECORDS, "").await;
    assert!(registry.served_delta(resumed) >= 1, "the delta was not asked for");
    assert_eq!(
        registry.served(resumed),
        1,
        "the whole snapshot once, after the refusal"
    );
    let held = gw.gateway.subscription().unwrap().current().unwrap();
    assert_eq!(held.revision, resumed);
    assert!(held.revoked_serials.is_empty(), "the forged serial was taken");
    assert_eq!(persisted_revision(&pki), resumed);
    assert!(!deltas.exists());
    gw.shutdown().await;
}

/// The gateway's registry client keeps its connection: back-to-back polls (answered at once,
/// and a long-poll woken by a change) go over one connection, one TLS handshake at the
/// registry; when the registry closes it (here by going down and coming back) the next poll is
/// answered over a new one without an error; `send` (the admin tool's) opens one per request.
#[tokio::test]
async fn the_registry_client_reuses_one_connection_for_its_polls() {
    use sluice_net::registry_client::{RegistryClient, Update};
    let pki = Pki::new();
    let registry = RegistryDouble::start(&pki, 7, vec![hydrant_licence("l1", "acme")]).await;
    let (cert, key) = sluice_tests::registry_double::gateway_client_identity(&pki);
    let client = RegistryClient::new(&registry.url(), &pki.ca_pem(), Some((&cert, &key))).unwrap();

    let Some(Update::Snapshot(_)) = client.poll(None, Duration::ZERO, true).await.unwrap() else {
        panic!("no whole snapshot");
    };
    for _ in 0..5 {
        assert!(client
            .poll(Some(1), Duration::ZERO, true)
            .await
            .unwrap()
            .is_none());
    }
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.poll(Some(1), Duration::from_secs(10), false).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rev = registry.publish(set_status(LicenceStatus::Active));
    let Some(Update::Snapshot(s)) = waiting.await.unwrap().unwrap() else {
        panic!("the long-poll brought nothing");
    };
    let trusted = [sluice_policy::snapshot::parse_public_key(&registry.public_key_b64()).unwrap()];
    assert_eq!(s.verify(&trusted, 0).unwrap().revision, rev);
    assert!(client
        .poll(Some(rev), Duration::ZERO, true)
        .await
        .unwrap()
        .is_none());
    assert_eq!((client.connections_opened(), registry.connections()), (1, 1));

    // The registry closes the connection: the next poll is answered over a new one.
    registry.stop();
    // The abort takes effect when the runtime next polls the serving task.
    tokio::time::sleep(Duration::from_millis(200)).await;
    registry.resume().await;
    assert!(client
        .poll(Some(rev), Duration::ZERO, true)
        .await
        .unwrap()
        .is_none());
    assert!(client
        .poll(Some(rev), Duration::ZERO, true)
        .await
        .unwrap()
        .is_none());
    assert_eq!((client.connections_opened(), registry.connections()), (2, 2));

    // `send` and its shorthands: a connection per request, none kept.
    for _ in 0..2 {
        assert_eq!(client.get("/v1/registry-key").await.unwrap().status, 200);
    }
    assert!(client
        .poll(Some(rev), Duration::ZERO, true)
        .await
        .unwrap()
        .is_none());
    assert_eq!((client.connections_opened(), registry.connections()), (4, 4));
}

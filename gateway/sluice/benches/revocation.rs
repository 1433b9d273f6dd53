//! Revocation latency across a federation of real processes on loopback: one `sluice registry`,
//! three `sluice gateway`s (default long-poll and staleness settings), one `sluice
//! sample-source`. Each round grants a fresh licence, waits until every gateway serves it,
//! then revokes it while each gateway is polled in a tight loop over a keep-alive connection;
//! the latency is the time from the admin API's 200 to the first refused (`licence-revoked`)
//! reply, per gateway. Also printed, to show where the time goes: the registry answering a
//! waiting long-poll of the bench's own, each gateway's log line applying the revision, and
//! the round trip of the refused request (the measurement's resolution).
//!
//! `cargo bench -p sluice --bench revocation`; `SLUICE_BENCH_DB=postgres` puts the registry on
//! PostgreSQL (a fresh schema, see `registry::pgtest`), `SLUICE_BENCH_ROUNDS` (default 100).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use sluice_net::registry_client::{RegistryClient, Reply};
use std::time::{Duration, Instant};
use support::federation::{grant_body, Backend, Federation, Gateway, GatewayOptions, RECORDS, SCENARIO};
use support::probe::{client_tls, KeepAlive};

/// Bound on every wait: a round that takes longer is a failure, not a sample.
const BOUND: Duration = Duration::from_secs(10);
/// The goal from issue 4: refused at every gateway within 1 s.
const GOAL: Duration = Duration::from_secs(1);

fn main() {
    let rounds: usize = std::env::var("SLUICE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench(Backend::from_env(), rounds));
}

/// Polls until the reply's outcome is `want` (`""` = served); returns the time it came and
/// the round trip of the last request (the measurement's resolution).
async fn poll_until(conn: &mut KeepAlive, want: &str) -> (Instant, Duration) {
    let start = Instant::now();
    loop {
        let sent = Instant::now();
        let (_, code) = conn.get(RECORDS, SCENARIO).await;
        if code == want {
            let now = Instant::now();
            return (now, now - sent);
        }
        if !want.is_empty() && !code.is_empty() {
            panic!("refused with `{code}`, wanted `{want}`");
        }
        assert!(
            start.elapsed() < BOUND,
            "still `{code}` after {BOUND:?}, wanted `{want}`"
        );
    }
}

async fn bench(backend: Backend, rounds: usize) {
    let fed = Federation::start(backend).await;
    let defaults = GatewayOptions {
        staleness_bound_s: 60,
        poll_wait_s: 25,
    };
    let gateways: Vec<Gateway> = ["gw-1", "gw-2", "gw-3"]
        .iter()
        .map(|id| fed.gateway(id, defaults))
        .collect();
    let (cert, key) = fed.licensee_identity();
    let tls = client_tls(&fed.ca_pem(), &cert, &key);
    let mut conns: Vec<KeepAlive> = gateways
        .iter()
        .map(|g| KeepAlive::new(tls.clone(), g.data))
        .collect();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); gateways.len()];
    // Per gateway, from the 200 to its log line `registry snapshot applied` for the revision.
    let mut applied: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); gateways.len()];
    // From the 200 to the registry answering a waiting long-poll (the registry's share).
    let mut long_polls: Vec<Duration> = Vec::with_capacity(rounds);
    let (cert, key) = fed.gateway_identity("bench-probe");
    let probe = RegistryClient::new(&fed.registry_url, &fed.ca_pem(), Some((&cert, &key))).unwrap();
    let mut round_trips: Vec<Duration> = Vec::with_capacity(rounds * gateways.len());
    // Per revocation, the last gateway to refuse.
    let mut slowest: Vec<Duration> = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let id = format!("rev-{round}");
        let r = fed
            .admin
            .post("/admin/licences", &grant_body(&id, SCENARIO))
            .await
            .unwrap();
        assert_eq!(r.status, 201, "grant {id}: {:?}", r.json());
        let granted = revision(&r);
        for c in &mut conns {
            poll_until(c, "").await;
        }
        let pollers: Vec<_> = conns
            .drain(..)
            .map(|mut c| {
                tokio::spawn(async move {
                    let (at, rtt) = poll_until(&mut c, "licence-revoked").await;
                    (at, rtt, c)
                })
            })
            .collect();
        // A long-poll of the registry's own, as a gateway's subscription makes it.
        let probe = probe.clone();
        let answered = tokio::spawn(async move {
            let r = probe
                .get(&format!("/v1/snapshot?after={granted}&wait=25"))
                .await
                .unwrap();
            assert_eq!(r.status, 200);
            Instant::now()
        });
        let path = format!("/admin/licences/{id}/revoke");
        let r = fed
            .admin
            .post(&path, &serde_json::json!({ "reason": "benchmark" }))
            .await
            .unwrap();
        let revoked = Instant::now();
        let revoked_wall = time::OffsetDateTime::now_utc();
        assert_eq!(r.status, 200, "revoke {id}: {:?}", r.json());
        let revision = revision(&r);
        long_polls.push(answered.await.unwrap().saturating_duration_since(revoked));
        let mut last = Duration::ZERO;
        for (i, p) in pollers.into_iter().enumerate() {
            let (at, rtt, c) = p.await.unwrap();
            round_trips.push(rtt);
            let took = at.saturating_duration_since(revoked);
            samples[i].push(took);
            applied[i].push(applied_after(&gateways[i], revision, revoked_wall));
            last = last.max(took);
            conns.push(c);
        }
        slowest.push(last);
    }

    println!(
        "revocation latency: registry on {:?}, {} gateways, {rounds} revocations \
         (admin API 200 → first refused request)",
        fed.backend,
        gateways.len()
    );
    let mut all = Vec::new();
    for (gw, s) in gateways.iter().zip(&mut samples) {
        println!("  {:<8} {}", gw.id, summary(s));
        all.extend_from_slice(s);
    }
    println!("  {:<8} {}", "overall", summary(&mut all));
    println!(
        "  {:<8} {}  (last gateway to refuse, per revocation)",
        "all 3",
        summary(&mut slowest)
    );
    println!(
        "  {:<8} {}  (200 → the registry answering a waiting long-poll)",
        "answered",
        summary(&mut long_polls)
    );
    let mut all_applied: Vec<Duration> = applied.concat();
    println!(
        "  {:<8} {}  (200 → the gateway's log line `registry snapshot applied`)",
        "applied",
        summary(&mut all_applied)
    );
    println!(
        "  {:<8} {}  (round trip of the refused request: the resolution)",
        "poll",
        summary(&mut round_trips)
    );
    let within = slowest.iter().filter(|d| **d <= GOAL).count();
    println!(
        "  revocations refused at every gateway within {GOAL:?}: {within}/{}",
        slowest.len()
    );
    drop(gateways);
    fed.finish().await;
}

/// The `Sluice-Revision` of an admin API answer.
fn revision(r: &Reply) -> u64 {
    r.headers["sluice-revision"].to_str().unwrap().parse().unwrap()
}

/// Time from `since` to gateway `gw`'s log line applying `revision` (its wall-clock timestamp).
fn applied_after(gw: &Gateway, revision: u64, since: time::OffsetDateTime) -> Duration {
    let at = gw.proc.wait_for(BOUND, |line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let f = &v["fields"];
        if f["message"] != "registry snapshot applied" || f["revision"].as_u64()? != revision {
            return None;
        }
        let ts = v["timestamp"].as_str()?;
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()
    });
    Duration::try_from(at - since).unwrap_or_default()
}

fn summary(s: &mut [Duration]) -> String {
    s.sort();
    let pct = |p: f64| s[((s.len() as f64 - 1.0) * p).round() as usize];
    format!(
        "p50 {:>9.3} ms  p99 {:>9.3} ms  max {:>9.3} ms",
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(s[s.len() - 1])
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

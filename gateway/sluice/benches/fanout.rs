//! Registry fan-out at city scale: one `sluice registry` process on PostgreSQL (a fresh
//! schema) holding 15,000 datasets, 50,000 licensees and 200,000 licences, and 1,000 simulated
//! gateways in this process, each a long-poller with its own client certificate (issued here
//! from one CA) using the gateway's own registry client (`RegistryClient::poll`, asking for
//! deltas, over the connection it keeps; the connections opened are printed). Each round
//! revokes a licence through the admin API and measures the time from its 200 to the last
//! gateway having received (and verified: signature, base revision) that revision; also
//! printed: the snapshot and delta sizes, the registry's CPU seconds per change (utime + stime
//! from `/proc/<pid>/stat`) and the status of every HTTP response (a run with unexpected ones is
//! void). At the end, `/catalog` latency with the city's datasets (first and last page of
//! 1,000, a revalidation), as the gateways wait in their polls.
//!
//! The data are loaded straight into the store's tables in one transaction, with the change
//! log rows the admin API would have written (one `licence.grant` per licence…), then served
//! by the registry like any other; the gateways start from one whole snapshot fetched and
//! verified here (as gateways restarting from their persisted snapshot would).
//!
//! `cargo bench -p sluice --bench fanout`; `SLUICE_FANOUT_GATEWAYS` (1000),
//! `SLUICE_FANOUT_ROUNDS` (20), `SLUICE_FANOUT_DATASETS` (15000), `SLUICE_FANOUT_LICENSEES`
//! (50000), `SLUICE_FANOUT_LICENCES` (200000). Needs the PostgreSQL of the registry tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::json;
use sluice_net::registry_client::{ClientError, RegistryClient, Update};
use sluice_policy::snapshot::{parse_public_key, SignedSnapshot, Snapshot};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::process::Proc;

/// Bound on every wait: a round that takes longer is a failure, not a sample.
const BOUND: Duration = Duration::from_secs(60);
/// The goal of issue 12, item 5: every gateway has the revocation within 1 s (p99).
const GOAL: Duration = Duration::from_secs(1);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let scale = Scale {
        gateways: env("SLUICE_FANOUT_GATEWAYS", 1_000),
        rounds: env("SLUICE_FANOUT_ROUNDS", 20),
        datasets: env("SLUICE_FANOUT_DATASETS", 15_000),
        licensees: env("SLUICE_FANOUT_LICENSEES", 50_000),
        licences: env("SLUICE_FANOUT_LICENCES", 200_000),
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench(scale));
}

#[derive(Clone, Copy, Debug)]
struct Scale {
    gateways: usize,
    rounds: usize,
    datasets: usize,
    licensees: usize,
    licences: usize,
}

/// Statuses of every HTTP response, by name.
#[derive(Default)]
struct Statuses(Mutex<BTreeMap<String, u64>>);

impl Statuses {
    fn count(&self, what: impl Into<String>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(what.into())
            .or_default() += 1;
    }
}

async fn bench(scale: Scale) {
    sluice_net::tls::install_provider();
    let dir = tempfile::tempdir().unwrap();
    let path = |rel: &str| dir.path().join(rel);
    let ca = sluice_certs::Ca::init(path("ca"), sluice_certs::InitOptions::default()).unwrap();
    let certs = path("certs");
    sluice_certs::issue_gateway(
        &ca,
        sluice_certs::IssueGateway {
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
            days: 30,
        },
    )
    .unwrap()
    .write_to(&certs, "server")
    .unwrap();
    sluice_certs::issue_admin(&ca, "alice", 5)
        .unwrap()
        .write_to(&certs, "admin")
        .unwrap();
    let ca_pem = path("ca/ca.pem");

    let (schema, url) = sluice_registry::pgtest::create_schema("fanout").await.unwrap();
    let config = path("registry.toml");
    std::fs::write(
        &config,
        format!(
            "[registry]\naddr = \"127.0.0.1:0\"\ncert = \"certs/server.pem\"\nkey = \"certs/server.key\"\n\
             client_ca = \"ca/ca.pem\"\nstate_dir = \"registry-state\"\ndatabase_url = \"{url}\"\n"
        ),
    )
    .unwrap();
    let registry = Proc::spawn("registry", &["registry", "--config", config.to_str().unwrap()]);
    let addr: std::net::SocketAddr = registry.wait_for(Duration::from_secs(30), |l| {
        l.strip_prefix("registry on https://")
            .and_then(|a| a.parse().ok())
    });
    let registry_url = format!("https://localhost:{}", addr.port());
    let statuses = Arc::new(Statuses::default());
    let admin = RegistryClient::new(
        &registry_url,
        &ca_pem,
        Some((&certs.join("admin.pem"), &certs.join("admin.key"))),
    )
    .unwrap();

    // The city's registry, straight into the tables (the registry created them).
    let t = Instant::now();
    let revision = load(&url, scale).await;
    println!(
        "loaded {} datasets, {} licensees, {} licences in {:.1} s (snapshot revision {revision})",
        scale.datasets,
        scale.licensees,
        scale.licences,
        t.elapsed().as_secs_f64()
    );
    let r = admin
        .post(
            "/admin/agencies",
            &json!({ "id": "city", "name": "City agencies" }),
        )
        .await
        .unwrap();
    statuses.count(format!("admin {}", r.status.as_u16()));
    assert_eq!(r.status, 201, "{:?}", r.json());

    // 1,000 gateways: registered through the admin API, each with its own certificate.
    let t = Instant::now();
    let ids: Vec<String> = (0..scale.gateways).map(|i| format!("gw-{i:04}")).collect();
    let identities: Vec<(PathBuf, PathBuf)> = ids
        .iter()
        .map(|id| {
            sluice_certs::issue_gateway_client(&ca, id, 5)
                .unwrap()
                .write_to(&certs, id)
                .unwrap();
            (certs.join(format!("{id}.pem")), certs.join(format!("{id}.key")))
        })
        .collect();
    let issued = t.elapsed();
    let t = Instant::now();
    for chunk in ids.chunks(8) {
        let calls = chunk.iter().map(|id| {
            let admin = admin.clone();
            let body = json!({ "id": id, "agency": "city", "reason": "fan-out bench" });
            async move { admin.post("/admin/gateways", &body).await.unwrap() }
        });
        for r in futures_util::future::join_all(calls).await {
            statuses.count(format!("admin {}", r.status.as_u16()));
            assert_eq!(r.status, 201, "{:?}", r.json());
        }
    }
    println!(
        "{} gateway certificates issued in {:.2} s, registered in {:.2} s",
        scale.gateways,
        issued.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );

    // One whole snapshot, as every gateway holds it at the start.
    let key = admin.get("/v1/registry-key").await.unwrap();
    statuses.count(format!("key {}", key.status.as_u16()));
    let trusted = [parse_public_key(key.json()["public_key"].as_str().unwrap()).unwrap()];
    let (first, whole) = fetch_whole(&registry_url, &ca_pem, &identities[0], &statuses).await;
    let (again, _) = fetch_whole(&registry_url, &ca_pem, &identities[0], &statuses).await;
    let t = Instant::now();
    let signed: SignedSnapshot = serde_json::from_slice(&whole).unwrap();
    let base: Snapshot = signed.verify(&trusted, 0).unwrap();
    println!(
        "whole snapshot: revision {}, {} licences, {:.1} MB; first fetch (read, sign, send) {:.2} s, \
         cached {:.2} s; verified and parsed here in {:.2} s",
        base.revision,
        base.licences.len(),
        whole.len() as f64 / 1e6,
        first.as_secs_f64(),
        again.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(base.revision, revision);
    let whole_mb = whole.len() as f64 / 1e6;
    drop((signed, whole));

    // The gateways: each holds `base.revision` and long-polls for deltas.
    let received: Arc<Mutex<HashMap<u64, Vec<Instant>>>> = Arc::default();
    let delta_bytes: Arc<Mutex<Vec<usize>>> = Arc::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut clients = Vec::new();
    for (cert, key) in &identities {
        let client = RegistryClient::new(&registry_url, &ca_pem, Some((cert, key))).unwrap();
        clients.push(client.clone());
        let (received, statuses, delta_bytes) = (received.clone(), statuses.clone(), delta_bytes.clone());
        let mut stopped = stopped.clone();
        let mut held = base.revision;
        tasks.push(tokio::spawn(async move {
            loop {
                let answer = tokio::select! {
                    a = client.poll(Some(held), Duration::from_secs(25), true) => a,
                    _ = stopped.changed() => return,
                };
                match answer {
                    Ok(Some(Update::Delta(d))) => {
                        statuses.count("poll 200 delta");
                        let delta = d.verify(&trusted).unwrap();
                        assert_eq!(delta.base, held, "a delta for another base");
                        delta_bytes
                            .lock()
                            .unwrap()
                            .push(d.payload.len() + d.signature.len() + d.key_id.len());
                        held = delta.revision;
                        received
                            .lock()
                            .unwrap()
                            .entry(held)
                            .or_default()
                            .push(Instant::now());
                    }
                    Ok(Some(Update::Snapshot(_))) => statuses.count("poll 200 whole (unexpected)"),
                    Ok(None) => statuses.count("poll 304"),
                    Err(ClientError::Status { status, .. }) => statuses.count(format!("poll {status}")),
                    Err(e) => {
                        statuses.count("poll transport error");
                        eprintln!("poll: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    // Every gateway connected and waiting.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let cpu_before = cpu_seconds(registry.pid());
    let mut slowest = Vec::with_capacity(scale.rounds);
    let mut every = Vec::with_capacity(scale.rounds * scale.gateways);
    for round in 0..scale.rounds {
        let id = format!("lic-{:06}", (round * 9_973 + 17) % scale.licences);
        let r = admin
            .post(
                &format!("/admin/licences/{id}/revoke"),
                &json!({ "reason": "fan-out bench" }),
            )
            .await
            .unwrap();
        let revoked = Instant::now();
        statuses.count(format!("admin {}", r.status.as_u16()));
        assert_eq!(r.status, 200, "revoke {id}: {:?}", r.json());
        let rev: u64 = r.headers["sluice-revision"].to_str().unwrap().parse().unwrap();
        let times = loop {
            if let Some(v) = received.lock().unwrap().get(&rev) {
                if v.len() == scale.gateways {
                    break v.clone();
                }
            }
            assert!(
                revoked.elapsed() < BOUND,
                "round {round}: revision {rev} not at every gateway after {BOUND:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let took: Vec<Duration> = times
            .iter()
            .map(|t| t.saturating_duration_since(revoked))
            .collect();
        let last = took.iter().copied().max().unwrap_or_default();
        println!(
            "  round {round:>2}: revision {rev}, last gateway {:.1} ms",
            ms(last)
        );
        slowest.push(last);
        every.extend(took);
        // The gateways poll again before the next change.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    let cpu = cpu_seconds(registry.pid()) - cpu_before;
    let opened: u64 = clients.iter().map(RegistryClient::connections_opened).sum();

    // The public catalog of the city's datasets, while the gateways wait in their long-polls.
    let catalog = catalog_latency(&registry_url, &ca_pem, &identities[0], scale.datasets, &statuses).await;
    stop.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }

    let mut sizes = delta_bytes.lock().unwrap().clone();
    sizes.sort_unstable();
    println!(
        "fan-out: registry on PostgreSQL, {} gateways, {} revocations (admin API 200 → every gateway holds the revision)",
        scale.gateways, scale.rounds
    );
    println!("  last gateway   {}", summary(&mut slowest));
    println!("  every gateway  {}", summary(&mut every));
    println!(
        "  delta size {} bytes (median of {}), whole snapshot {:.1} MB",
        sizes.get(sizes.len() / 2).copied().unwrap_or(0),
        sizes.len(),
        whole_mb
    );
    println!(
        "  registry CPU {:.3} s per change ({:.2} s over {} changes, the gateways' new polls included)",
        cpu / scale.rounds as f64,
        cpu,
        scale.rounds
    );
    println!(
        "  gateway connections opened: {opened} ({:.2} per gateway over {} polls each)",
        opened as f64 / scale.gateways as f64,
        scale.rounds + 1
    );
    for line in catalog {
        println!("  {line}");
    }
    let within = slowest.iter().filter(|d| **d <= GOAL).count();
    println!(
        "  revocations at every gateway within {GOAL:?}: {within}/{}",
        slowest.len()
    );
    println!("  HTTP responses:");
    for (what, n) in statuses.0.lock().unwrap().iter() {
        println!("    {what:<32} {n}");
    }
    drop(registry);
    sluice_registry::pgtest::drop_schema(&schema).await.unwrap();
}

/// `GET /v1/snapshot` as gateway `identity`, the body read whole (however large): (time, body).
async fn fetch_whole(
    url: &str,
    ca: &Path,
    identity: &(PathBuf, PathBuf),
    statuses: &Statuses,
) -> (Duration, Bytes) {
    let tls = support::probe::client_tls(ca, &identity.0, &identity.1);
    let t = Instant::now();
    let mut send = support::probe::connect(tls, loopback(url)).await;
    let req = http::Request::get("/v1/snapshot")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    statuses.count(format!("whole {}", resp.status().as_u16()));
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (t.elapsed(), body)
}

/// The loopback address of the registry at `url` (`https://localhost:PORT`).
fn loopback(url: &str) -> std::net::SocketAddr {
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    ([127, 0, 0, 1], port).into()
}

/// `GET /catalog` latency over one keep-alive connection (as a browser or a script would
/// hold it): the first page of 1,000 and the last page, [`CATALOG_REQUESTS`] each, and a
/// revalidation with `If-None-Match`; lines to print.
async fn catalog_latency(
    url: &str,
    ca: &Path,
    identity: &(PathBuf, PathBuf),
    datasets: usize,
    statuses: &Statuses,
) -> Vec<String> {
    let tls = support::probe::client_tls(ca, &identity.0, &identity.1);
    let mut send = support::probe::connect(tls, loopback(url)).await;
    let mut get = async |path: &str, etag: Option<&http::HeaderValue>| {
        send.ready().await.unwrap();
        let mut req = http::Request::get(path).header("host", "localhost");
        if let Some(etag) = etag {
            req = req.header("if-none-match", etag);
        }
        let t = Instant::now();
        let resp = send
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let etag = resp.headers().get("etag").cloned();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let took = t.elapsed();
        statuses.count(format!("catalog {}", status.as_u16()));
        (took, status, etag, body.len())
    };
    let (_, status, etag, first_len) = get("/catalog", None).await;
    assert_eq!(status, 200);
    let etag = etag.expect("the catalog has an ETag");
    let last = format!("/catalog?offset={}", datasets.saturating_sub(1_000));
    let mut lines = Vec::new();
    for (what, path, tag) in [
        ("first page of 1,000", "/catalog", None),
        ("last page of 1,000 ", last.as_str(), None),
        ("revalidation (304)  ", "/catalog", Some(&etag)),
    ] {
        let mut times = Vec::with_capacity(CATALOG_REQUESTS);
        for _ in 0..CATALOG_REQUESTS {
            times.push(get(path, tag).await.0);
        }
        lines.push(format!("/catalog {what} {}", summary(&mut times)));
    }
    lines.push(format!(
        "/catalog: {datasets} datasets, a page of 1,000 is {:.2} MB; {CATALOG_REQUESTS} requests each, one keep-alive connection",
        first_len as f64 / 1e6
    ));
    lines
}

/// Requests per `/catalog` figure.
const CATALOG_REQUESTS: usize = 50;

/// utime + stime of process `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Loads the city into the registry's tables in one transaction, with the change log the
/// admin API would have written; returns the snapshot revision (the last grant's number).
async fn load(url: &str, s: Scale) -> u64 {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let now = "2026-12-01T00:00:00Z";
    let field = |name: &str, grades: serde_json::Value| json!({ "name": name, "grades": grades });
    // Datasets: six fields, one personal (conditional).
    let (mut ids, mut specs) = (Vec::new(), Vec::new());
    for i in 0..s.datasets {
        let id = format!("ds-{i:05}");
        let spec = json!({
            "id": id, "title": format!("Dataset {i}"), "owner": format!("agency-{}", i % 40),
            "update_frequency": "daily", "version": 1,
            "fields": [
                field("id", json!({})), field("district", json!({})), field("address", json!({})),
                field("category", json!({})), field("updated", json!({})),
                field("contact_mobile", json!({ "personal": "non_anonymous_non_sensitive" })),
            ],
        });
        ids.push(id);
        specs.push(spec.to_string());
    }
    let n = ids.len();
    sqlx::query(
        "INSERT INTO datasets (id, title, owner, update_frequency, version, open_category, closed, spec) \
         SELECT id, 'Dataset', 'agency', 'daily', 1, 'conditional', 0, spec FROM UNNEST($1::text[], $2::text[]) AS t(id, spec)",
    )
    .bind(&ids)
    .bind(&specs)
    .execute(&mut *tx)
    .await
    .unwrap();
    let mut log: Vec<(String, String)> = ids
        .iter()
        .map(|id| ("dataset.register".into(), id.clone()))
        .collect();
    let licensees: Vec<String> = (0..s.licensees).map(|i| format!("le-{i:05}")).collect();
    let codes: Vec<String> = (0..s.licensees).map(|i| format!("91350100M{i:09}")).collect();
    sqlx::query(
        "INSERT INTO licensees (id, name, credit_code, created_at) \
         SELECT id, 'Licensee ' || id, code, $3 FROM UNNEST($1::text[], $2::text[]) AS t(id, code)",
    )
    .bind(&licensees)
    .bind(&codes)
    .bind(now)
    .execute(&mut *tx)
    .await
    .unwrap();
    log.extend(licensees.iter().map(|id| ("licensee.add".into(), id.clone())));
    sqlx::query(
        "INSERT INTO scenarios (id, title, description, datasets, created_at) VALUES ('city', 'City', '', '[]', $1)",
    )
    .bind(now)
    .execute(&mut *tx)
    .await
    .unwrap();
    log.push(("scenario.add".into(), "city".into()));
    // Licences: three fields (clear, clear, partial), a row filter, rate and quota.
    let (mut lids, mut lees, mut dss, mut bodies) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..s.licences {
        let id = format!("lic-{i:06}");
        let licensee = licensees[i % licensees.len()].clone();
        let dataset = ids[(i * 7) % n].clone();
        let body = json!({
            "id": id, "licensee": licensee, "dataset": dataset, "scenario": "city",
            "fields": {
                "id": { "rule": "clear" }, "district": { "rule": "clear" },
                "contact_mobile": { "rule": "partial", "first": 3, "last": 4 },
            },
            "row_filter": format!("district = 'D{}'", i % 16),
            "rate": { "per_second": 20, "burst": 40 }, "quota": { "records_per_day": 100000 },
            "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2028-01-01T00:00:00Z",
        });
        // Through the policy type, as the registry stores it.
        let lic: sluice_policy::licence::Licence = serde_json::from_value(body).unwrap();
        bodies.push(serde_json::to_string(&lic).unwrap());
        log.push(("licence.grant".into(), id.clone()));
        lids.push(id);
        lees.push(licensee);
        dss.push(dataset);
    }
    sqlx::query(
        "INSERT INTO licences (id, licensee, dataset, scenario, state, body) \
         SELECT id, licensee, dataset, 'city', 'active', body \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS t(id, licensee, dataset, body)",
    )
    .bind(&lids)
    .bind(&lees)
    .bind(&dss)
    .bind(&bodies)
    .execute(&mut *tx)
    .await
    .unwrap();
    let last = log.len() as i64;
    let (actions, targets): (Vec<String>, Vec<String>) = log.into_iter().unzip();
    let change_ids: Vec<String> = (0..actions.len())
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    sqlx::query(
        "INSERT INTO admin_changes (id, revision, admin, at, action, target, reason) \
         SELECT id, n, 'loader', $4, action, target, 'fan-out bench' \
         FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(id, action, target, n)",
    )
    .bind(&change_ids)
    .bind(&actions)
    .bind(&targets)
    .bind(now)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE registry_meta SET v = $1 WHERE k IN ('revision', 'snapshot_revision')")
        .bind(last)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    pool.close().await;
    // The registry learns of the new revision by its once-a-second check (no notification
    // was sent).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    last as u64
}

fn summary(s: &mut [Duration]) -> String {
    s.sort();
    let pct = |p: f64| s[((s.len() as f64 - 1.0) * p).round() as usize];
    format!(
        "p50 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms",
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(s[s.len() - 1])
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

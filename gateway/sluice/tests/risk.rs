//! Risk warning end to end with real processes (issue 14, items 5–7): a rule declared with
//! `sluice admin risk rule add` reaches both `sluice gateway`s through the snapshot; a
//! licensee pulling far beyond it at one gateway is refused there at once and at the other
//! within a second; the registry records the violation with its evidence; the webhook gets
//! a signed alert; `resume` restores the licence. Runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::federation::{Backend, Federation, Gateway, GatewayOptions, SCENARIO};
use support::probe::{admin_get, fetch, outcome, until};

/// Bound on waits for a change that has no deadline of its own (start-up, grants).
const EVENTUALLY: Duration = Duration::from_secs(15);
/// The bound: suspended at every gateway within a second of crossing the threshold.
const BOUND: Duration = Duration::from_secs(1);
/// Five records a request.
const PAGE: &str = "/v1/datasets/fire-hydrants/records?limit=5";
const SECRET: &str = "webhook-shared-secret";

type Received = Arc<Mutex<Vec<(String, Bytes)>>>;

/// A webhook receiver on loopback (hyper, HTTP/1.1): keeps each POST's `Sluice-Signature`
/// and body, answers 200.
async fn webhook() -> (std::net::SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Received = Arc::default();
    let keep = got.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let keep = keep.clone();
                        async move {
                            let sig = req
                                .headers()
                                .get("sluice-signature")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            keep.lock().unwrap().push((sig, body));
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (addr, got)
}

async fn a_licensee_beyond_its_rule_is_suspended_everywhere_within_a_second(b: Backend) {
    let fed = Federation::start(b).await;
    let (hook, received) = webhook().await;
    let secret = fed.dir.path().join("webhook.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let extra = format!(
        "[risk]\nwebhook_url = \"http://{hook}/sluice-alerts\"\nwebhook_secret = {{ file = \"{}\" }}\n",
        secret.display()
    );
    let running = [
        fed.gateway_with("gw-a", GatewayOptions::default(), &extra),
        fed.gateway_with("gw-b", GatewayOptions::default(), &extra),
    ];
    let gws: Vec<&Gateway> = running.iter().collect();
    fed.grant("l1", SCENARIO);
    for gw in &gws {
        until(&fed.licensee_client(gw), PAGE, SCENARIO, "", EVENTUALLY).await;
    }
    // Normal use first: a baseline of a few requests.
    for _ in 0..2 {
        assert_eq!(
            outcome(&fetch(&fed.licensee_client(gws[0]), PAGE, SCENARIO).await),
            ""
        );
    }

    fed.admin_cli(&[
        "risk",
        "rule",
        "add",
        "bulk",
        "--signal",
        "records",
        "--window",
        "minute",
        "--threshold",
        "60",
        "--licence",
        "l1",
        "--action",
        "suspend",
        "--reason",
        "bulk extraction",
    ]);
    fed.admin_cli(&[
        "risk",
        "rule",
        "add",
        "probe",
        "--signal",
        "refusals",
        "--window",
        "minute",
        "--threshold",
        "3",
        "--code",
        "field-not-filterable",
        "--code",
        "scenario-not-licensed",
        "--action",
        "alert",
        "--reason",
        "probing masked fields",
    ]);
    fed.admin_cli(&[
        "risk",
        "rule",
        "add",
        "harvest",
        "--signal",
        "keys",
        "--window",
        "hour",
        "--threshold",
        "8",
        "--licence",
        "l1",
        "--action",
        "alert",
        "--reason",
        "harvesting record by record",
    ]);
    let rules = fed.admin_cli(&["risk", "rule", "list"]);
    assert_eq!(rules.as_array().unwrap().len(), 3, "{rules:?}");
    wait_for_rules(&fed, &gws).await;

    // Probing at gw-b: two refused filters on a masked field and a scenario l1 does not
    // license (refused before any licence allowed it, counted against l1 all the same) raise
    // an alert, nothing more.
    let probe = "/v1/datasets/fire-hydrants/records?limit=1&adopter_mobile=eq.13800138000";
    for _ in 0..2 {
        let r = fetch(&fed.licensee_client(gws[1]), probe, SCENARIO).await;
        assert_eq!(outcome(&r), "field-not-filterable");
    }
    let r = fetch(&fed.licensee_client(gws[1]), PAGE, "marketing").await;
    assert_eq!(outcome(&r), "scenario-not-licensed");
    let start = Instant::now();
    loop {
        let (_, metrics) = admin_get(gws[1].admin, "/metrics").await;
        if metrics.contains("sluice_risk_alerts_total{licence=\"l1\",rule=\"probe\"} 1") {
            break;
        }
        assert!(start.elapsed() < EVENTUALLY, "no probe alert in {metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        outcome(&fetch(&fed.licensee_client(gws[1]), PAGE, SCENARIO).await),
        ""
    );

    // Distinct records at gw-b: the same five again count once (no alert at 8); ten
    // different ones cross the harvest rule.
    let harvest = "sluice_risk_alerts_total{licence=\"l1\",rule=\"harvest\"} 1";
    assert_eq!(
        outcome(&fetch(&fed.licensee_client(gws[1]), PAGE, SCENARIO).await),
        ""
    );
    let (_, metrics) = admin_get(gws[1].admin, "/metrics").await;
    assert!(
        !metrics.contains(harvest),
        "the same records counted twice: {metrics}"
    );
    let ten = "/v1/datasets/fire-hydrants/records?limit=10";
    assert_eq!(
        outcome(&fetch(&fed.licensee_client(gws[1]), ten, SCENARIO).await),
        ""
    );
    let start = Instant::now();
    loop {
        let (_, metrics) = admin_get(gws[1].admin, "/metrics").await;
        if metrics.contains(harvest) {
            break;
        }
        assert!(start.elapsed() < EVENTUALLY, "no harvest alert in {metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Pulling far beyond the rule at gw-a: refused there from the next request on.
    let client = fed.licensee_client(gws[0]);
    let mut served = 0;
    let crossed = loop {
        let r = fetch(&client, PAGE, SCENARIO).await;
        match outcome(&r).as_str() {
            "" => served += r.json().as_array().unwrap().len(),
            "licence-suspended" => break Instant::now(),
            other => panic!("unexpected {other}"),
        }
        assert!(served <= 200, "never suspended after {served} records");
    };
    assert!(
        (60..=65).contains(&served),
        "served {served} records before the hold"
    );
    // gw-b, which saw none of it, refuses within the bound.
    let b_client = fed.licensee_client(gws[1]);
    loop {
        let r = fetch(&b_client, PAGE, SCENARIO).await;
        if outcome(&r) == "licence-suspended" {
            break;
        }
        assert!(
            crossed.elapsed() < BOUND,
            "gw-b still serves {:?} after {BOUND:?}",
            crossed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("suspended at gw-b {:?} after gw-a's hold", crossed.elapsed());

    // The registry: the licence suspended, a violation with the evidence, the alerts listed.
    let lic = fed.admin_cli(&["show", "l1"]);
    assert_eq!(lic["status"]["state"], "suspended", "{lic:?}");
    let register = fed.admin.get("/violations").await.unwrap().json();
    let v = register
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["what"].as_str().unwrap_or("").contains("risk rule bulk"))
        .unwrap_or_else(|| panic!("no violation in {register:?}"));
    assert_eq!(v["measure"], "suspend");
    assert!(v["what"].as_str().unwrap().contains("l1"), "{v:?}");
    let alerts = fed.admin_cli(&["risk", "alerts"]);
    let rules: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert"]["rule"].as_str().or(a["rule"].as_str()).unwrap())
        .collect();
    for rule in ["bulk", "probe", "harvest"] {
        assert!(rules.contains(&rule), "{rule}: {alerts:?}");
    }

    // The webhook got the three alerts, signed with the shared secret.
    let start = Instant::now();
    loop {
        let got = received.lock().unwrap().clone();
        let bodies: Vec<Value> = got
            .iter()
            .map(|(sig, body)| {
                assert!(
                    sluice_agency::risk::verify(SECRET.as_bytes(), sig, body),
                    "bad signature {sig}"
                );
                serde_json::from_slice(body).unwrap()
            })
            .collect();
        let rules: Vec<&str> = bodies
            .iter()
            .filter_map(|b| b["alert"]["rule"].as_str())
            .collect();
        if ["bulk", "probe", "harvest"].iter().all(|r| rules.contains(r)) {
            break;
        }
        assert!(start.elapsed() < EVENTUALLY, "webhook got {bodies:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Resume: both gateways serve again (gw-a's own hold is released by the snapshot).
    fed.admin_cli(&["resume", "l1", "--reason", "explained: a one-off migration"]);
    for gw in &gws {
        until(&fed.licensee_client(gw), PAGE, SCENARIO, "", EVENTUALLY).await;
    }
    drop(running);
    fed.finish().await;
}
both!(a_licensee_beyond_its_rule_is_suspended_everywhere_within_a_second);

/// Waits until every gateway holds a snapshot with the risk rules: its `/metrics` shows the
/// registry revision of the last rule added.
async fn wait_for_rules(fed: &Federation, gws: &[&Gateway]) {
    let changes = fed.admin_cli(&["changes"]);
    let last = changes.as_array().unwrap().last().unwrap()["revision"]
        .as_u64()
        .unwrap();
    for gw in gws {
        let start = Instant::now();
        loop {
            let (_, metrics) = admin_get(gw.admin, "/metrics").await;
            let held = metrics
                .lines()
                .find(|l| l.starts_with("sluice_registry_snapshot_revision "))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok());
            if held.is_some_and(|h| h >= last) {
                break;
            }
            assert!(
                start.elapsed() < EVENTUALLY,
                "{} holds {held:?}, wanted {last}",
                gw.id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

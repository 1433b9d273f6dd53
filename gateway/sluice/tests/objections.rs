//! Objections and corrections end to end with real processes (issue 14, items 1–4): the
//! public files at `sluice registry`, an administrator decides with `sluice admin objection`,
//! and both `sluice gateway`s apply the decision to the records they serve within the
//! revocation bound. Runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use sluice_net::registry_client::RegistryClient;
use std::time::{Duration, Instant};
use support::federation::{Backend, Federation, Gateway, GatewayOptions, DATASET, SCENARIO};
use support::probe::{fetch, until};

/// Bound on waits for a change that has no deadline of its own (start-up, grants).
const EVENTUALLY: Duration = Duration::from_secs(15);
/// What the issue asks of a decision: in force at every gateway within the revocation bound.
const BOUND: Duration = Duration::from_secs(1);
/// Enough records to see the ones the test marks.
const PAGE: &str = "/v1/datasets/fire-hydrants/records?limit=5";

/// The records a gateway serves the licensee.
async fn records(fed: &Federation, gw: &Gateway) -> Vec<Value> {
    let r = fetch(&fed.licensee_client(gw), PAGE, SCENARIO).await;
    assert_eq!(r.status, 200, "{}: {:?}", gw.id, r.json());
    r.json().as_array().unwrap().clone()
}

/// Polls every gateway until `holds` is true of what it serves; returns the time it took
/// for the last one. Panics with what was served when `within` passes.
async fn at_every(
    fed: &Federation,
    gws: &[&Gateway],
    within: Duration,
    holds: impl Fn(&[Value]) -> bool,
) -> Duration {
    let start = Instant::now();
    for gw in gws {
        loop {
            let recs = records(fed, gw).await;
            if holds(&recs) {
                break;
            }
            assert!(
                start.elapsed() < within,
                "{} still serves {recs:?} after {within:?}",
                gw.id
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    start.elapsed()
}

fn ids(recs: &[Value]) -> Vec<String> {
    recs.iter().map(|r| r["id"].to_string()).collect()
}

/// The record key as the gateways read it: a string's text, a number's JSON text.
fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn file(public: &RegistryClient, key: &str, kind: &str, contact: &str) -> String {
    let r = public
        .post(
            "/v1/objections",
            &json!({ "dataset": DATASET, "record_key": key, "kind": kind,
                     "reason": "this hydrant is on my private land", "contact": contact }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.json());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.headers["location"], format!("/v1/objections/{id}").as_str());
    id
}

async fn objections_reach_every_gateway_within_the_bound(b: Backend) {
    let fed = Federation::start(b).await;
    let running = [
        fed.gateway("gw-a", GatewayOptions::default()),
        fed.gateway("gw-b", GatewayOptions::default()),
    ];
    let gws: Vec<&Gateway> = running.iter().collect();
    fed.grant("l1", SCENARIO);
    for gw in &gws {
        until(&fed.licensee_client(gw), PAGE, SCENARIO, "", EVENTUALLY).await;
    }
    let before = records(&fed, gws[0]).await;
    assert_eq!(before.len(), 5);
    let (objected, corrected, rejected) = (
        key_text(&before[0]["id"]),
        key_text(&before[1]["id"]),
        key_text(&before[2]["id"]),
    );
    let public = RegistryClient::new(&fed.registry_url, &fed.ca_pem(), None).unwrap();
    let obj = file(&public, &objected, "objection", "owner@example.com").await;
    let cor = file(&public, &corrected, "correction", "").await;
    let rej = file(&public, &rejected, "objection", "").await;

    // Filing alone changes nothing anywhere.
    for gw in &gws {
        assert_eq!(ids(&records(&fed, gw).await), ids(&before), "{}", gw.id);
    }

    // Reject: nothing changes, and the filer sees the decision and its reason.
    let r = fed.admin_cli(&[
        "objection",
        "reject",
        &rej,
        "--reason",
        "public infrastructure, not private data",
    ]);
    assert_eq!(r["status"], "rejected");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for gw in &gws {
        assert_eq!(records(&fed, gw).await, before, "{}", gw.id);
    }
    let seen = public.get(&format!("/v1/objections/{rej}")).await.unwrap().json();
    assert_eq!(
        (&seen["status"], &seen["decision_reason"]),
        (
            &json!("rejected"),
            &json!("public infrastructure, not private data")
        )
    );

    // Uphold the objection: the record is gone at both gateways within the bound, and only
    // it (this HTTP source pages itself: the page is one record short, as with a row filter).
    let r = fed.admin_cli(&[
        "objection",
        "uphold",
        &obj,
        "--reason",
        "confirmed with the owner",
    ]);
    assert_eq!(r["status"], "upheld");
    let rest: Vec<Value> = before[1..].to_vec();
    let took = at_every(&fed, &gws, BOUND, |recs| recs == rest.as_slice()).await;
    println!("suppression in force at both gateways {took:?} after the decision");

    // Uphold the correction: the record is served marked with the case's id.
    let r = fed.admin_cli(&["objection", "uphold", &cor, "--reason", "the district is wrong"]);
    assert_eq!(r["status"], "upheld");
    at_every(&fed, &gws, BOUND, |recs| {
        recs.iter()
            .any(|r| key_text(&r["id"]) == corrected && r["_sluice_disputed"] == json!(cor))
            && recs
                .iter()
                .filter(|r| r.get("_sluice_disputed").is_some())
                .count()
                == 1
    })
    .await;
    // The filer's view never shows the contact or the record key; the administrator's does.
    let seen = public.get(&format!("/v1/objections/{obj}")).await.unwrap();
    let text = String::from_utf8_lossy(&seen.body).into_owned();
    assert!(
        !text.contains("owner@example.com") && !text.contains(&objected),
        "{text}"
    );
    let admin_view = fed.admin_cli(&["objection", "show", &obj]);
    assert_eq!(admin_view["contact"], "owner@example.com");
    // Each gateway audited the records it suppressed.
    for gw in &gws {
        let mut suppressed = 0;
        for f in std::fs::read_dir(gw.dir.join("state/audit")).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    let rec: Value = serde_json::from_str(line).unwrap();
                    suppressed += rec["suppressed"].as_u64().unwrap_or(0);
                }
            }
        }
        assert!(
            suppressed >= 1,
            "{}: no audit record counts a suppressed record",
            gw.id
        );
    }
    let register = public.get("/objections").await.unwrap().json();
    assert_eq!(register.as_array().unwrap().len(), 3, "{register:?}");
    assert!(!register.to_string().contains("owner@example.com"));

    // Withdraw and resolve: the record is back, the mark is gone.
    fed.admin_cli(&[
        "objection",
        "withdraw",
        &obj,
        "--reason",
        "the owner sold the land",
    ]);
    fed.admin_cli(&[
        "objection",
        "resolve",
        &cor,
        "--reason",
        "district corrected at the source",
    ]);
    at_every(&fed, &gws, BOUND, |recs| {
        ids(recs) == ids(&before) && recs.iter().all(|r| r.get("_sluice_disputed").is_none())
    })
    .await;
    // Every decision is an audited admin change.
    let changes = fed.admin_cli(&["changes"]);
    let actions: Vec<&str> = changes
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["target"] == json!(obj) || c["target"] == json!(cor) || c["target"] == json!(rej))
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "objection.reject",
            "objection.uphold",
            "objection.uphold",
            "objection.withdraw",
            "objection.resolve"
        ]
    );
    drop(running);
    fed.finish().await;
}
both!(objections_reach_every_gateway_within_the_bound);

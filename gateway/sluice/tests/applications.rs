//! Applications end to end with real processes (issue 16): a licensee applies at `sluice
//! registry` under the dataset's data-use agreement, the agency approves with fewer fields
//! than asked (`sluice admin application approve`), and `sluice gateway` serves exactly the
//! approved fields within the revocation bound. Runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use sluice_net::registry_client::RegistryClient;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::federation::{Backend, Federation, GatewayOptions, DATASET, SCENARIO};
use support::probe::{fetch, outcome, until};

/// Bound on waits for a change that has no deadline of its own (start-up).
const EVENTUALLY: Duration = Duration::from_secs(15);
/// The revocation bound: an approval is in force at the gateway within it.
const BOUND: Duration = Duration::from_secs(1);
const PAGE: &str = "/v1/datasets/fire-hydrants/records?limit=3";

async fn an_approved_application_is_served_with_exactly_the_approved_fields(b: Backend) {
    let fed = Federation::start(b).await;
    let gw = fed.gateway("gw-a", GatewayOptions::default());
    let terms = fed.dir.path().join("terms.txt");
    std::fs::write(&terms, "Use for the declared scenario only.\n").unwrap();
    let published = fed.admin_cli(&[
        "agreement",
        "publish",
        DATASET,
        "--file",
        terms.to_str().unwrap(),
        "--reason",
        "terms of use",
    ]);
    assert_eq!(published["version"], 1, "{published:?}");

    // The licensee, with its own certificate, at the registry.
    let (cert, key) = fed.licensee_identity();
    let acme = RegistryClient::new(&fed.registry_url, &fed.ca_pem(), Some((&cert, &key))).unwrap();
    let agreement = acme
        .get(&format!("/v1/agreements/{DATASET}"))
        .await
        .unwrap()
        .json();
    let body = json!({
        "dataset": DATASET, "scenario": SCENARIO, "purpose": "pricing adoption cover",
        "fields": ["id", "district", "status"], "valid_until": "2030-01-01T00:00:00Z",
        "volume": 100, "agreement": { "version": agreement["version"], "digest": agreement["digest"] },
    });
    let r = acme.post("/v1/applications", &body).await.unwrap();
    assert_eq!(r.status, 201, "{:?}", r.json());
    let id = r.json()["id"].as_str().unwrap().to_owned();

    // Nothing is served before the agency decides.
    let client = fed.licensee_client(&gw);
    until(&client, PAGE, SCENARIO, "no-licence", EVENTUALLY).await;

    let approved = fed.admin_cli(&[
        "application",
        "approve",
        &id,
        "--id",
        "l-app",
        "--field",
        "id=clear",
        "--field",
        "district=clear",
        "--rate",
        "100000",
        "--burst",
        "100000",
        "--reason",
        "the scenario needs no status",
    ]);
    let decided = Instant::now();
    assert_eq!(approved["application"]["status"], "approved", "{approved:?}");
    let served = loop {
        let r = fetch(&client, PAGE, SCENARIO).await;
        if outcome(&r).is_empty() {
            break r.json();
        }
        assert!(
            decided.elapsed() < BOUND,
            "still {} {:?} after the approval",
            outcome(&r),
            decided.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("served {:?} after the approval", decided.elapsed());
    let records = served.as_array().unwrap();
    assert!(!records.is_empty());
    for rec in records {
        let keys: BTreeSet<&str> = rec.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["district", "id"]), "{rec}");
    }
    // The applicant sees the decision and its reason.
    let seen: Value = acme.get(&format!("/v1/applications/{id}")).await.unwrap().json();
    assert_eq!(
        (&seen["status"], &seen["licence"]),
        (&json!("approved"), &json!("l-app"))
    );
    assert_eq!(seen["decision_reason"], "the scenario needs no status");
    drop(gw);
    fed.finish().await;
}
both!(an_approved_application_is_served_with_exactly_the_approved_fields);

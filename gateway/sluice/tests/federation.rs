//! The federation end to end with real processes on loopback: `sluice registry`, two
//! `sluice gateway`s subscribed to it, `sluice sample-source` as the agency source, and
//! `sluice admin` for every administrative change. Each test runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sluice_policy::snapshot::SignedSnapshot;
use std::time::Duration;
use support::federation::{
    Backend, Federation, Gateway, GatewayOptions, ADOPTERS, ADOPTER_RECORDS, LICENSEE, PUBLIC, RECORDS,
    SCENARIO,
};
use support::probe::{fetch, outcome, readyz, until};

/// Bound on waits for a change that has no deadline of its own (start-up, grants).
const EVENTUALLY: Duration = Duration::from_secs(15);

/// Waits until every gateway answers `want` for `scenario`.
async fn at_every(fed: &Federation, gws: &[&Gateway], scenario: &str, want: &str, within: Duration) {
    for gw in gws {
        until(&fed.licensee_client(gw), RECORDS, scenario, want, within).await;
    }
}

fn options() -> GatewayOptions {
    GatewayOptions::default()
}

async fn licence_lifecycle_is_enforced_at_every_gateway(b: Backend) {
    let fed = Federation::start(b).await;
    let running = [fed.gateway("gw-a", options()), fed.gateway("gw-b", options())];
    let gws: Vec<&Gateway> = running.iter().collect();
    let bound = Duration::from_secs(options().staleness_bound_s);

    at_every(&fed, &gws, SCENARIO, "no-licence", EVENTUALLY).await;

    let granted = fed.grant("l1", SCENARIO);
    assert_eq!(granted["status"]["state"], "active");
    at_every(&fed, &gws, SCENARIO, "", EVENTUALLY).await;
    for gw in &gws {
        let r = fetch(&fed.licensee_client(gw), RECORDS, SCENARIO).await;
        assert_eq!(r.headers["sluice-licence"], "l1", "{}", gw.id);
        let records = r.json();
        let records = records.as_array().unwrap();
        assert_eq!(records.len(), 2);
        // The licence grants `id` and `district` only: every other field is dropped.
        // (Sorted: serde_json keeps the gateway's order when a workspace build enables
        // `preserve_order`.)
        let mut keys: Vec<&String> = records[0].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["district", "id"], "{}", gw.id);
    }

    fed.admin_cli(&["suspend", "l1", "--reason", "audit of the adoption scheme"]);
    at_every(&fed, &gws, SCENARIO, "licence-suspended", bound).await;

    fed.admin_cli(&["resume", "l1", "--reason", "audit passed"]);
    at_every(&fed, &gws, SCENARIO, "", bound).await;

    let revoked = fed.admin_cli(&["revoke", "l1", "--reason", "records resold"]);
    assert_eq!(revoked["status"]["state"], "revoked");
    // Refused everywhere within the staleness bound (a gateway that missed the change would
    // refuse by then anyway, as stale).
    at_every(&fed, &gws, SCENARIO, "licence-revoked", bound).await;
    for gw in &gws {
        let r = fetch(&fed.licensee_client(gw), RECORDS, SCENARIO).await;
        assert_eq!(r.status, 403);
        assert!(
            r.json()["detail"].as_str().unwrap().contains("l1"),
            "{:?}",
            r.json()
        );
    }
    // The registry recorded who did it and why.
    let changes = fed.admin_cli(&["changes"]);
    let last = changes.as_array().unwrap().last().unwrap();
    assert_eq!(
        (&last["admin"], &last["action"], &last["reason"]),
        (
            &"alice".into(),
            &"licence.revoke".into(),
            &"records resold".into()
        )
    );
    drop(running);
    fed.finish().await;
}
both!(licence_lifecycle_is_enforced_at_every_gateway);

/// Rewrites one byte of the signed payload in a persisted snapshot (its JSON stays valid): a
/// digit of its revision (the licences may have come in deltas after it).
fn tamper(path: &std::path::Path) {
    let mut signed: SignedSnapshot = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut payload = STANDARD.decode(&signed.payload).unwrap();
    let key = b"\"revision\":";
    let at = payload
        .windows(key.len())
        .position(|w| w == key)
        .expect("a revision in the snapshot")
        + key.len();
    payload[at] = if payload[at] == b'7' { b'8' } else { b'7' };
    signed.payload = STANDARD.encode(&payload);
    std::fs::write(path, serde_json::to_vec(&signed).unwrap()).unwrap();
}

/// Like [`tamper`], for the last delta of a persisted chain (`snapshot-deltas.json`).
fn tamper_last_delta(path: &std::path::Path) {
    let mut chain: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let last = chain.last_mut().expect("a delta in the chain");
    let mut payload = STANDARD.decode(last["payload"].as_str().unwrap()).unwrap();
    let key = b"\"revision\":";
    let at = payload
        .windows(key.len())
        .position(|w| w == key)
        .expect("a revision in the delta")
        + key.len();
    payload[at] = if payload[at] == b'7' { b'8' } else { b'7' };
    last["payload"] = STANDARD.encode(&payload).into();
    std::fs::write(path, serde_json::to_vec(&chain).unwrap()).unwrap();
}

async fn registry_down_snapshot_then_stale_and_tampered_snapshot_rejected(b: Backend) {
    let mut fed = Federation::start(b).await;
    let gw_a = fed.gateway("gw-a", options());
    let mut gw_b = fed.gateway("gw-b", options());
    fed.grant("l1", SCENARIO);
    fed.scenario("hydrant-maintenance-research");
    fed.grant("l2", "hydrant-maintenance-research");
    fed.admin_cli(&["suspend", "l2", "--reason", "ethics review pending"]);
    for gw in [&gw_a, &gw_b] {
        let c = fed.licensee_client(gw);
        until(
            &c,
            RECORDS,
            "hydrant-maintenance-research",
            "licence-suspended",
            EVENTUALLY,
        )
        .await;
        until(&c, RECORDS, SCENARIO, "", EVENTUALLY).await;
        assert_eq!(readyz(gw.admin).await.0, 200, "{}", gw.id);
    }

    // The registry dies: the gateways serve from the snapshot they hold, and nothing but
    // `registry-stale` ever replaces that answer.
    fed.kill_registry();
    for gw in [&gw_a, &gw_b] {
        let c = fed.licensee_client(gw);
        let r = fetch(&c, RECORDS, SCENARIO).await;
        assert_eq!(outcome(&r), "", "{} right after the registry died", gw.id);
    }
    for gw in [&gw_a, &gw_b] {
        let c = fed.licensee_client(gw);
        let start = std::time::Instant::now();
        let stale = loop {
            let r = fetch(&c, RECORDS, SCENARIO).await;
            match outcome(&r).as_str() {
                "" => {}
                "registry-stale" => break r,
                other => panic!("{}: `{other}` while the registry is down", gw.id),
            }
            assert!(start.elapsed() < EVENTUALLY, "{} never went stale", gw.id);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(stale.status, 503);
        let detail = stale.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("the bound is 3 s"), "{detail}");
        // Unconditional data is still served, without a certificate.
        let r = fetch(&fed.public_client(gw), PUBLIC, "").await;
        assert_eq!(r.status, 200, "{}: {:?}", gw.id, r.body);
        assert_eq!(r.json().as_array().unwrap().len(), 2);
        let (status, body) = readyz(gw.admin).await;
        assert_eq!(status, 503, "{}: {body}", gw.id);
        assert!(body.contains("registry snapshot stale"), "{body}");
    }

    // gw-b restarts while the registry is still down (with a bound its snapshot is within):
    // it starts from the persisted snapshot, licences and suspensions alike.
    gw_b.proc.kill();
    let restarted = GatewayOptions {
        staleness_bound_s: 120,
        ..options()
    };
    gw_b = fed.gateway("gw-b", restarted);
    assert!(gw_b.proc.printed("starting from the persisted registry snapshot"));
    let c = fed.licensee_client(&gw_b);
    let r = fetch(&c, RECORDS, SCENARIO).await;
    assert_eq!(outcome(&r), "");
    assert_eq!(r.headers["sluice-licence"], "l1");
    let r = fetch(&c, RECORDS, "hydrant-maintenance-research").await;
    assert_eq!(outcome(&r), "licence-suspended");

    // A tampered delta after an intact snapshot is not trusted on start either (the snapshot
    // alone would undo the changes the chain carried): conditional data is refused.
    gw_b.proc.kill();
    let deltas = gw_b.snapshot_path().with_file_name("snapshot-deltas.json");
    let intact = std::fs::read(&deltas).expect("the grant and suspension came as deltas");
    tamper_last_delta(&deltas);
    gw_b = fed.gateway("gw-b", restarted);
    assert!(
        gw_b.proc.printed("persisted snapshot rejected"),
        "{}",
        gw_b.proc.output()
    );
    let r = fetch(&fed.licensee_client(&gw_b), RECORDS, SCENARIO).await;
    assert_eq!(outcome(&r), "registry-stale");

    // A tampered snapshot (with its chain intact again) is not trusted on start: conditional
    // data is refused.
    gw_b.proc.kill();
    std::fs::write(&deltas, intact).unwrap();
    tamper(&gw_b.snapshot_path());
    gw_b = fed.gateway("gw-b", restarted);
    assert!(
        gw_b.proc.printed("persisted snapshot rejected"),
        "{}",
        gw_b.proc.output()
    );
    let c = fed.licensee_client(&gw_b);
    for scenario in [SCENARIO, "hydrant-maintenance-research"] {
        let r = fetch(&c, RECORDS, scenario).await;
        assert_eq!(outcome(&r), "registry-stale", "{scenario}");
        let detail = r.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("has not yet confirmed"), "{detail}");
    }
    let r = fetch(&fed.public_client(&gw_b), PUBLIC, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(readyz(gw_b.admin).await.0, 503);

    drop((gw_a, gw_b));
    fed.finish().await;
}
both!(registry_down_snapshot_then_stale_and_tampered_snapshot_rejected);

async fn fusion_rule_blocks_a_grant_unless_expert_reviewed(b: Backend) {
    let fed = Federation::start(b).await;
    let running = [fed.gateway("gw-a", options()), fed.gateway("gw-b", options())];
    let gws: Vec<&Gateway> = running.iter().collect();
    let rule = fed.admin_cli(&[
        "fusion",
        "add",
        "locations-and-adopters",
        "--member",
        "fire-hydrants",
        "--member",
        "hydrant-adopters:adopter_name,adopter_mobile",
        "--description",
        "hydrant locations with their adopters' contacts locate the adopters",
        "--reason",
        "DPIA 2026-7",
    ]);
    assert_eq!(rule["id"], "locations-and-adopters", "{rule}");
    fed.grant("l1", SCENARIO);
    at_every(&fed, &gws, SCENARIO, "", EVENTUALLY).await;

    // The adopters' mobiles would complete the rule: refused, naming the rule and l1.
    let adopters = |id: &str| -> Vec<String> {
        [
            "grant",
            LICENSEE,
            ADOPTERS,
            SCENARIO,
            "--id",
            id,
            "--field",
            "id=clear",
            "--field",
            "adopter_mobile=partial:first=3,last=4",
            "--until",
            "2035-01-01",
            "--from",
            "2025-01-01",
            "--reason",
            "outreach campaign",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let args = adopters("l2");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = fed.admin_cli_raw(&args);
    assert_ne!(code, 0, "{out}");
    for want in ["409", "fusion-conflict", "locations-and-adopters", "l1"] {
        assert!(err.contains(want), "{want} not in {err}");
    }
    let licences = fed.admin_cli(&["list"]);
    let ids: Vec<&str> = licences
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["l1"]);
    for gw in &gws {
        let r = fetch(&fed.licensee_client(gw), ADOPTER_RECORDS, SCENARIO).await;
        assert_eq!(outcome(&r), "no-licence", "{}", gw.id);
    }

    // With an expert review reference it is granted, recorded, and served everywhere.
    let mut args = adopters("l2");
    args.extend(["--expert-review".to_owned(), "ER-2026-041".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let granted = fed.admin_cli(&args);
    assert_eq!(granted["expert_review"], "ER-2026-041", "{granted}");
    let shown = fed.admin_cli(&["show", "l2"]);
    assert_eq!(shown["expert_review"], "ER-2026-041");
    let changes = fed.admin_cli(&["changes"]);
    let last = changes.as_array().unwrap().last().unwrap();
    assert!(last.to_string().contains("ER-2026-041"), "{last}");
    for gw in &gws {
        let c = fed.licensee_client(gw);
        let r = until(&c, ADOPTER_RECORDS, SCENARIO, "", EVENTUALLY).await;
        assert_eq!(r.headers["sluice-licence"], "l2", "{}", gw.id);
        let rec = &r.json()[0];
        let mobile = rec["adopter_mobile"].as_str().unwrap();
        assert!(mobile.contains("****"), "{}: {rec}", gw.id);
        assert!(rec.get("adopter_name").is_none(), "{}: {rec}", gw.id);
        // The first dataset is still served under l1.
        let r = fetch(&c, RECORDS, SCENARIO).await;
        assert_eq!(r.headers["sluice-licence"], "l1");
    }
    drop(running);
    fed.finish().await;
}
both!(fusion_rule_blocks_a_grant_unless_expert_reviewed);

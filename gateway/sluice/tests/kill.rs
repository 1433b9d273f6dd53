//! `kill -9` under load: a real gateway process serves 16 concurrent clients and is killed
//! mid-stream, then restarted on the same state. Every response a client received complete has
//! its audit record (the end of a response is sent only once its record is durable), and
//! `sluice audit verify` passes on the log the crash left.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use sluice_agency::audit::{query, Filter};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::federation::{Backend, Federation, GatewayOptions, SCENARIO};
use support::probe::until;
use support::process::sluice_bin;

/// Concurrent clients, as in the attack (oha -c 16).
const CLIENTS: usize = 16;
/// Load before the kill.
const LOAD: Duration = Duration::from_millis(2500);
/// Records per response: small responses, so that many complete while the kill lands.
const PATH: &str = "/v1/datasets/fire-hydrants/records?limit=20";
/// A page larger than the read-ahead (64 KiB of output): it streams, and its end waits for its
/// record. Half the clients ask for it; the others' pages are audited before they are sent.
const LONG_PATH: &str = "/v1/datasets/fire-hydrants/records?limit=1000";

/// Request ids of every audit record in `dir`.
fn audited(dir: &Path) -> HashSet<String> {
    query(dir, &Filter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_received_complete_survives_kill_9_in_the_audit_log() {
    let fed = Federation::start(Backend::Sqlite).await;
    fed.grant("l1", SCENARIO);
    let mut gw = fed.gateway("gw1", GatewayOptions::default());
    let client = Arc::new(fed.licensee_client(&gw));
    until(&client, PATH, SCENARIO, "", Duration::from_secs(15)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let complete = Arc::new(Mutex::new(Vec::<String>::new()));
    let long_complete = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for n in 0..CLIENTS {
        let (client, stop, complete) = (client.clone(), stop.clone(), complete.clone());
        let long_complete = long_complete.clone();
        let path = if n % 2 == 0 { PATH } else { LONG_PATH };
        tasks.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let sent = client
                    .send(http::Method::GET, path, None, &[("sluice-scenario", SCENARIO)])
                    .await;
                // Ok is a body received to its end (a cut transfer is an error).
                if let Ok(r) = sent {
                    if r.status == 200 {
                        let id = r.headers["sluice-request-id"].to_str().unwrap().to_owned();
                        complete.lock().unwrap().push(id);
                        if path == LONG_PATH {
                            long_complete.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(LOAD).await;
    gw.proc.kill(); // SIGKILL
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let complete = complete.lock().unwrap().clone();
    let long_complete = long_complete.load(Ordering::Relaxed);
    assert!(
        long_complete > 20,
        "too few streamed pages to mean anything: {long_complete}"
    );
    assert!(
        complete.len() > 200,
        "too little load to mean anything: {}",
        complete.len()
    );

    // Restart on the same state: the log opens (an incomplete last line is cut away) and the
    // gateway serves again.
    let gw = fed.gateway("gw1", GatewayOptions::default());
    let client = fed.licensee_client(&gw);
    until(&client, PATH, SCENARIO, "", Duration::from_secs(15)).await;

    let audit_dir = gw.dir.join("state").join("audit");
    let verify = std::process::Command::new(sluice_bin())
        .args(["audit", "verify", audit_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "audit verify failed:\n{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let audited = audited(&audit_dir);
    let missing: Vec<_> = complete.iter().filter(|id| !audited.contains(*id)).collect();
    println!(
        "kill -9 under load: {} responses received complete ({} streamed), {} audit records, {} complete responses without a record",
        complete.len(),
        long_complete,
        audited.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} of {} complete responses have no audit record, e.g. {:?}",
        missing.len(),
        complete.len(),
        missing.first()
    );
    fed.finish().await;
}

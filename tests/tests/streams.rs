//! Streams and the clients that read them: a client that stops reading stops the source and is
//! cut off after the write-stall timeout (audited as `write-stalled`), over HTTP/1.1 and over
//! HTTP/2 with a zero receive window; a stream that breaks right after its first records still
//! shows the client its 200 head.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sluice_agency::audit::{query, AuditRecord, Filter};
use sluice_tests::client::{get, tls_config};
use sluice_tests::http2::H2;
use sluice_tests::upstream::{Mode, Upstream};
use sluice_tests::{audit_dir, licence_toml, start_gateway_with, GatewayOptions, Pki};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCENARIO: (&str, &str) = ("sluice-scenario", "fire-hydrant-adoption");
const RECORDS: &str = "/v1/datasets/fire-hydrants/records";
/// Records asked for: over 1 MB of masked output, far more than any buffer on the way.
const MANY: u64 = 10_000;

/// The licence of these tests.
fn licence() -> String {
    licence_toml(
        "l1",
        "acme",
        r#"fields.id = { rule = "clear" }
fields.district = { rule = "clear" }
fields.adopter_mobile = { rule = "partial", first = 3, last = 4 }
fields.notes = { rule = "clear" }
rate = { per_second = 1000, burst = 1000 }"#,
    )
}

fn stall_options() -> GatewayOptions {
    GatewayOptions {
        // A small kernel send buffer, so that what a non-reading client holds is the gateway's
        // doing, not the loopback's autotuned buffers (which take megabytes).
        limits: "write_stall_timeout_ms = 500\nsend_buffer_bytes = 16384".into(),
        ..Default::default()
    }
}

/// Waits (at most 10 s) for the audit record of `request_id`.
async fn record_of(dir: &Path, request_id: &str) -> AuditRecord {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = query(dir, &Filter::default())
            .unwrap()
            .into_iter()
            .find(|r| r.request_id == request_id)
        {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no audit record for {request_id} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_http1_client_that_stops_reading_stops_the_source_and_is_cut_off() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway_with(&pki, up.addr, &licence(), "", &stall_options()).await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));

    // A well-behaved read of the same request, for its size.
    let full = get(
        &tls,
        gw.data_addr,
        &format!("{RECORDS}?limit={MANY}"),
        &[SCENARIO],
    )
    .await
    .unwrap();
    let full_len = full.text().len();
    assert!(full_len > 1_000_000, "{full_len}");

    // Now a client that reads the head and then nothing, with a small receive buffer.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(gw.data_addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .unwrap();
    let req = format!(
        "GET {RECORDS}?limit={MANY} HTTP/1.1\r\nhost: localhost\r\n{}: {}\r\n\r\n",
        SCENARIO.0, SCENARIO.1
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&got).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let request_id = head
        .lines()
        .find_map(|l| l.strip_prefix("sluice-request-id: "))
        .unwrap()
        .trim()
        .to_owned();

    // The client reads nothing more: after the stall timeout the stream is aborted and audited,
    // with far less than the whole answer masked (the source was not read on).
    let record = record_of(&audit_dir(&pki), &request_id).await;
    assert_eq!(record.reason.as_deref(), Some("write-stalled"), "{record:?}");
    assert_eq!(record.decision, "allow");
    let bytes_out = record.bytes_out;
    assert!(
        bytes_out < (full_len as u64) / 2,
        "masked {bytes_out} of {full_len} bytes for a client that read nothing"
    );
    assert!(record.records_out < MANY);

    // And the connection is closed: what was in flight arrives, then the end of the
    // connection, never the last chunk of a complete response.
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(rest.is_ok(), "the gateway kept the stalled connection open");
    assert!(
        !got.ends_with(b"0\r\n\r\n"),
        "a cut stream must not look complete"
    );
    assert!(got.len() < full_len, "got {} of {full_len}", got.len());
    let labels = sluice_agency::metrics::DatasetLabels {
        dataset: "fire-hydrants".into(),
    };
    assert_eq!(
        gw.gateway.metrics().aborted_streams.get_or_create(&labels).get(),
        1
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn an_http2_stream_held_at_a_zero_window_is_aborted_and_audited() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway_with(&pki, up.addr, &licence(), "", &stall_options()).await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));

    let mut h2 = H2::connect(&tls, gw.data_addr, 0).await;
    let req = http::Request::get(format!("https://localhost{RECORDS}?limit={MANY}"))
        .header(SCENARIO.0, SCENARIO.1)
        .body(())
        .unwrap();
    let reply = h2.request(req).await.unwrap();
    assert_eq!(reply.status, 200);
    let request_id = reply.headers["sluice-request-id"].to_str().unwrap().to_owned();

    let record = record_of(&audit_dir(&pki), &request_id).await;
    assert_eq!(record.reason.as_deref(), Some("write-stalled"), "{record:?}");
    assert!(
        record.bytes_out <= 256 * 1024,
        "more than 256 KiB masked for a stream that could take nothing: {record:?}"
    );

    // The stream is dead: once the client opens its window it gets a reset, not the data.
    h2.set_window(4 << 20);
    let body = tokio::time::timeout(Duration::from_secs(10), reply.read_all())
        .await
        .expect("the aborted stream neither ended nor was reset");
    assert!(body.is_err(), "a stalled stream must not complete");

    // The connection itself still serves.
    let req = http::Request::get(format!("https://localhost{RECORDS}?limit=3"))
        .header(SCENARIO.0, SCENARIO.1)
        .body(())
        .unwrap();
    let reply = h2.request(req).await.unwrap();
    assert_eq!(reply.status, 200);
    let body = reply.read_all().await.unwrap();
    let records: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 3);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stream_broken_right_after_its_first_record_still_shows_its_head() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway_with(&pki, up.addr, &licence(), "", &GatewayOptions::default()).await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    up.set_mode(Mode::BrokenInFirstChunk);
    // The first record and the break arrive in one source chunk: the head and that record must
    // reach the client before the transfer is cut, every time.
    for i in 0..50 {
        let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO])
            .await
            .unwrap_or_else(|e| panic!("attempt {i}: no response at all ({e})"));
        assert_eq!(r.status, 200, "attempt {i}");
        let (_, partial) = r.body.expect_err("the stream must be aborted");
        let partial = String::from_utf8_lossy(&partial);
        assert!(partial.contains("138****5678"), "attempt {i}: {partial}");
        assert!(!partial.contains("13812345678"));
    }
    gw.shutdown().await;
}

//! HTTP by the book at the gateway: heads over the documented limits get the documented
//! problem and an audit record (HTTP/1.1 and HTTP/2), a HEAD over HTTP/2 gets no body, and what
//! only the HTTP layer can refuse is counted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sluice_agency::audit::{query, Filter};
use sluice_tests::client::{get, tls_config};
use sluice_tests::http2::H2;
use sluice_tests::upstream::Upstream;
use sluice_tests::{audit_dir, licence_toml, start_gateway, Pki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCENARIO: (&str, &str) = ("sluice-scenario", "fire-hydrant-adoption");
const RECORDS: &str = "/v1/datasets/fire-hydrants/records";
/// The licence of these tests.
fn licence() -> String {
    licence_toml("l1", "acme", r#"fields.id = { rule = "clear" }"#)
}

#[tokio::test]
async fn heads_over_the_limits_get_the_documented_problem_and_are_audited() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licence(), "").await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));

    // HTTP/1.1: 100 headers (the limit is 64), then one 20 KB header (the limit is 16 KiB).
    let many: Vec<(String, String)> = (0..100).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let mut headers: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    headers.push(SCENARIO);
    let r = get(&tls, gw.data_addr, RECORDS, &headers).await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.problem().as_str()),
        (431, "headers-too-large")
    );
    assert!(
        r.json()["detail"].as_str().unwrap().contains("64"),
        "{:?}",
        r.body
    );
    let big = "x".repeat(20 * 1024);
    let r = get(&tls, gw.data_addr, RECORDS, &[("x-big", &big), SCENARIO])
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.problem().as_str()),
        (431, "headers-too-large")
    );

    // HTTP/2: 200 headers are refused the same way.
    let mut h2 = H2::connect(&tls, gw.data_addr, 1 << 20).await;
    let mut req = http::Request::get(format!("https://localhost{RECORDS}")).header(SCENARIO.0, SCENARIO.1);
    for i in 0..200 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let reply = h2.request(req.body(()).unwrap()).await.unwrap();
    assert_eq!(reply.status, 431);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    let body: Value = serde_json::from_slice(&reply.read_all().await.unwrap()).unwrap();
    assert!(
        body["type"].as_str().unwrap().ends_with("/headers-too-large"),
        "{body}"
    );

    // Within the limits, the same connection serves.
    let req = http::Request::get(format!("https://localhost{RECORDS}?limit=1"))
        .header(SCENARIO.0, SCENARIO.1)
        .body(())
        .unwrap();
    assert_eq!(h2.request(req).await.unwrap().status, 200);

    let records = query(&audit_dir(&pki), &Filter::default()).unwrap();
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r.reason.as_deref() == Some("headers-too-large"))
        .collect();
    assert_eq!(refused.len(), 3, "{records:?}");
    assert!(
        refused
            .iter()
            .all(|r| r.status == 431 && r.licensee.as_deref() == Some("acme")),
        "{refused:?}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_head_request_over_http2_gets_its_status_and_no_body() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licence(), "").await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let mut h2 = H2::connect(&tls, gw.data_addr, 1 << 20).await;
    let req = http::Request::head(format!("https://localhost{RECORDS}"))
        .header(SCENARIO.0, SCENARIO.1)
        .body(())
        .unwrap();
    let reply = h2.request(req).await.unwrap();
    assert_eq!(reply.status, 405);
    assert_eq!(reply.headers["allow"], "GET");
    let length: usize = reply.headers["content-length"].to_str().unwrap().parse().unwrap();
    assert!(length > 0, "the length of the problem a GET would get");
    assert!(
        reply.body.is_end_stream(),
        "END_STREAM on the headers: no DATA frames"
    );
    assert!(reply.read_all().await.unwrap().is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn what_only_the_http_layer_can_refuse_is_counted() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licence(), "").await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let before = gw.gateway.metrics().protocol_errors.get();
    // A garbage request line, a NUL in a header, a head past twice the limit.
    let big = "x".repeat(40 * 1024);
    let garbage = [
        "GARBAGE\r\n\r\n".to_owned(),
        "GET / HTTP/1.1\r\nhost: localhost\r\nx-a: a\0b\r\n\r\n".to_owned(),
        format!("GET / HTTP/1.1\r\nhost: localhost\r\nx-big: {big}\r\n\r\n"),
    ];
    for raw in &garbage {
        let tcp = tokio::net::TcpStream::connect(gw.data_addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .unwrap();
        let _ = conn.write_all(raw.as_bytes()).await;
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read_to_end(&mut reply)).await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 400") || reply.starts_with("HTTP/1.1 431"),
            "{reply}"
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while gw.gateway.metrics().protocol_errors.get() < before + 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "protocol errors counted: {}",
            gw.gateway.metrics().protocol_errors.get() - before
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    gw.shutdown().await;
}

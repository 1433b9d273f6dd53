//! Credentials for a source: request headers whose values come from a file or an environment
//! variable, never from the config itself; a source that needs one is refused without it, and
//! a config naming an unreadable one does not load.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_agency::gateway::Gateway;
use sluice_tests::client::{get, tls_config};
use sluice_tests::upstream::{Mode, Upstream};
use sluice_tests::{licence_toml, start_gateway_with, write_config_with, GatewayOptions, Pki};

const SCENARIO: (&str, &str) = ("sluice-scenario", "fire-hydrant-adoption");
const RECORDS: &str = "/v1/datasets/fire-hydrants/records?limit=2";
/// The licence of these tests.
fn licence() -> String {
    licence_toml("l1", "acme", r#"fields.id = { rule = "clear" }"#)
}

fn with_headers(lines: &str) -> GatewayOptions {
    GatewayOptions {
        source: lines.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_token_from_a_file_reaches_the_source_and_nothing_else_does() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    up.set_mode(Mode::RequireToken);
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));

    // The token file, relative to the config's folder, with the final line break editors add.
    std::fs::write(pki.dir.path().join("token"), "Bearer s3cret\n").unwrap();
    let options = with_headers(r#"headers = [{ name = "Authorization", file = "token" }]"#);
    let gw = start_gateway_with(&pki, up.addr, &licence(), "", &options).await;
    let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    gw.shutdown().await;

    // Without it (or with a wrong one) the source says 401 and the licensee gets 502.
    for lines in [
        "",
        r#"headers = [{ name = "Authorization", env = "SLUICE_TEST_WRONG_TOKEN" }]"#,
    ] {
        std::env::set_var("SLUICE_TEST_WRONG_TOKEN", "Bearer nope");
        let gw = start_gateway_with(&pki, up.addr, &licence(), "", &with_headers(lines)).await;
        let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
        assert_eq!(
            (r.status.as_u16(), r.problem().as_str()),
            (502, "upstream-failed"),
            "{lines}"
        );
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn a_header_that_cannot_be_read_or_is_written_inline_stops_the_config() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let cases = [
        (
            r#"headers = [{ name = "Authorization", file = "missing-token" }]"#,
            "headers[0]",
        ),
        (
            r#"headers = [{ name = "Authorization", env = "SLUICE_TEST_UNSET_VARIABLE" }]"#,
            "headers[0]",
        ),
        (
            r#"headers = [{ name = "Authorization", value = "Bearer inline" }]"#,
            "value",
        ),
        (r#"headers = [{ name = "Host", env = "HOME" }]"#, "headers[0]"),
        (
            r#"headers = [{ name = "X-Key", file = "a", env = "HOME" }]"#,
            "headers[0]",
        ),
    ];
    for (lines, says) in cases {
        let path = write_config_with(&pki, up.addr, &licence(), "", &with_headers(lines));
        let err = match Gateway::start(&path).await {
            Ok(_) => panic!("started with {lines}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(says), "{lines}: {err}");
        assert!(
            !err.contains("inline") || says == "value",
            "the error must not echo a value: {err}"
        );
    }
}

/// A rotated credential is read at the next reload (SIGHUP, a changed config file, or
/// `Gateway::reload`), while licence snapshots keep the connectors they have.
#[tokio::test]
async fn a_rotated_token_file_is_read_again_at_reload() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    up.set_mode(Mode::RequireToken);
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let token = pki.dir.path().join("token");
    std::fs::write(&token, "Bearer expired\n").unwrap();
    let options = with_headers(r#"headers = [{ name = "Authorization", file = "token" }]"#);
    let gw = start_gateway_with(&pki, up.addr, &licence(), "", &options).await;
    let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 502, "the old token is refused");
    std::fs::write(&token, "Bearer s3cret\n").unwrap();
    gw.gateway.reload().unwrap();
    let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 200, "the new token after the reload: {:?}", r.body);
    gw.shutdown().await;
}

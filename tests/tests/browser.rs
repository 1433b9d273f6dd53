//! Real Chromium logs in to the registry with an administrator's client certificate
//! ([`sluice_tests::browser`]): the harness the console's browser tests stand on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fantoccini::Locator;
use serde_json::{json, Value};
use sluice_tests::browser::{skip_without_browser, Browser};
use sluice_tests::registry_harness::{Backend, Reg};
use std::time::Instant;

/// The text Chromium shows for the page: the `<pre>` it wraps a JSON (or plain text) response
/// in, else the body's text.
async fn page_text(browser: &Browser) -> String {
    let element = match browser.client.find(Locator::Css("body > pre")).await {
        Ok(pre) => pre,
        Err(_) => browser.client.find(Locator::Css("body")).await.unwrap(),
    };
    element.text().await.unwrap()
}

/// Headless Chromium, trusting the test CA and holding alice's admin certificate, opens an
/// admin-certificate-only JSON route of a real registry on `https://127.0.0.1:<port>` (and
/// `https://localhost:<port>`) and sees the list, not an `unauthenticated` problem: the
/// `AutoSelectCertificateForUrls` policy presented the certificate without a dialog. Skipped,
/// loudly, when a tool is missing and `SLUICE_REQUIRE_CHROMIUM` is not set.
#[tokio::test]
async fn chromium_presents_the_admin_certificate_to_the_registry() {
    if skip_without_browser("chromium_presents_the_admin_certificate_to_the_registry") {
        return;
    }
    let reg = Reg::start(Backend::Sqlite).await;
    let r = reg
        .admin
        .post(
            "/admin/licensees",
            &json!({ "id": "acme", "name": "Acme Data Ltd", "credit_code": "91350100M000100Y43" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.json());
    let expected = reg.admin.get("/admin/licensees").await.unwrap().json();
    assert!(expected.as_array().is_some_and(|a| !a.is_empty()), "{expected}");

    // Alice's certificate, as the harness issued it for `reg.admin`.
    let (cert_pem, key_pem) = (
        reg.pki.certs().join("admin-alice.pem"),
        reg.pki.certs().join("admin-alice.key"),
    );
    let started = Instant::now();
    let browser = Browser::launch(&reg.pki.ca_pem(), &cert_pem, &key_pem)
        .await
        .unwrap_or_else(|e| panic!("launching Chromium: {e}"));
    eprintln!("browser launched in {:?}", started.elapsed());

    let port = url::Url::parse(&reg.url).unwrap().port().unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{port}/admin/licensees");
        let t = Instant::now();
        browser
            .client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let text = page_text(&browser).await;
        eprintln!("{url} in {:?}: {text}", t.elapsed());
        let shot = browser
            .screenshot(&format!("browser-admin-licensees-{host}"))
            .await;
        assert!(
            std::fs::metadata(&shot).unwrap().len() > 1_000,
            "{}",
            shot.display()
        );
        assert!(
            !text.contains("unauthenticated") && !text.contains("forbidden"),
            "{url} refused the certificate: {text}"
        );
        assert!(text.trim_start().starts_with('['), "{url} shows: {text}");
        let shown: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"));
        assert_eq!(shown, expected, "{url}");
    }
    browser.close().await;
    reg.stop().await;
}

//! The certificate lifecycle end to end: revocation through CRLs, reload without restarts
//! (file watching), server certificate rotation, key usage and validity enforced at the
//! handshake, identity confusion, short-lived and renewed certificates, expiry metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use rustls::pki_types::CertificateDer;
use sluice_certs::RevocationReason;
use sluice_tests::client::{admin_get, get, tls_config, Conn};
use sluice_tests::upstream::Upstream;
use sluice_tests::{audit_dir, licence_toml, read, start_gateway, start_gateway_with, GatewayOptions, Pki};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SCENARIO: (&str, &str) = ("sluice-scenario", "fire-hydrant-adoption");
const RECORDS: &str = "/v1/datasets/fire-hydrants/records?limit=2";
/// Poll interval of the file watcher in these tests.
const WATCH_MS: u64 = 100;

fn licence(id: &str, licensee: &str) -> String {
    licence_toml(
        id,
        licensee,
        r#"fields.id = { rule = "clear" }
fields.adopter_mobile = { rule = "partial", first = 3, last = 4 }"#,
    )
}

fn licences(licensees: &[&str]) -> String {
    licensees
        .iter()
        .map(|l| licence(&format!("lic-{l}"), l))
        .collect()
}

fn watching(crl: Option<PathBuf>) -> GatewayOptions {
    GatewayOptions {
        crl,
        watch_interval_ms: Some(WATCH_MS),
        ..Default::default()
    }
}

/// Polls `check` every 50 ms until it holds; fails the test after 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn serial_of(der: &CertificateDer<'_>) -> String {
    let cert = X509::from_der(der.as_ref()).unwrap();
    cert.serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_ascii_lowercase()
}

fn serial_of_file(pem: &Path) -> String {
    let cert = X509::from_pem(read(pem).as_bytes()).unwrap();
    serial_of(&CertificateDer::from(cert.to_der().unwrap()))
}

/// One request on a new connection with the certificate `id` from the PKI folder: the status,
/// or `Err` when the connection was refused before any HTTP reply.
async fn status_as(pki: &Pki, addr: SocketAddr, id: &str) -> Result<u16, String> {
    let certs = pki.certs();
    let (cert, key) = (certs.join(format!("{id}.pem")), certs.join(format!("{id}.key")));
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let r = Conn::open(&tls, addr).await?.get(RECORDS, &[SCENARIO]).await?;
    if r.status == 200 {
        r.text();
    }
    Ok(r.status.as_u16())
}

/// Whether a new connection with the certificate `id` is refused at the handshake because the
/// certificate is revoked.
async fn is_revoked(pki: &Pki, addr: SocketAddr, id: &str) -> bool {
    match status_as(pki, addr, id).await {
        Ok(_) => false,
        Err(why) => {
            assert!(why.contains("CertificateRevoked"), "{why}");
            true
        }
    }
}

/// The serial of the certificate the server presents to a new connection.
async fn server_serial(pki: &Pki, addr: SocketAddr, client: &str) -> String {
    let certs = pki.certs();
    let tls = tls_config(
        &pki.ca_pem(),
        Some((
            &certs.join(format!("{client}.pem")),
            &certs.join(format!("{client}.key")),
        )),
    );
    let conn = Conn::open(&tls, addr).await.unwrap();
    serial_of(&conn.server_chain()[0])
}

/// `sluice_cert_days_to_expiry{cert="<name>"}` from `/metrics`.
async fn days_metric(admin: SocketAddr, name: &str) -> Option<i64> {
    let text = admin_get(admin, "/metrics").await;
    let prefix = format!("sluice_cert_days_to_expiry{{cert=\"{name}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| v.trim().parse().unwrap())
}

/// A client certificate crafted with openssl and signed by the test CA's key, for what
/// `sluice_certs` refuses to issue. Writes `<certs>/<name>.pem|.key`.
struct Craft<'a> {
    name: &'a str,
    /// The subject CN; `name` when `None`.
    common_name: Option<&'a str>,
    /// SAN URIs; no SAN extension at all when empty.
    uris: &'a [&'a str],
    /// Validity relative to now, seconds.
    not_before: i64,
    not_after: i64,
}

impl Craft<'_> {
    fn write(&self, pki: &Pki) -> (PathBuf, PathBuf) {
        let ca_dir = pki.dir.path().join("ca");
        let ca_key = PKey::private_key_from_pem(read(&ca_dir.join("ca.key")).as_bytes()).unwrap();
        let ca_cert = X509::from_pem(read(&ca_dir.join("ca.pem")).as_bytes()).unwrap();
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(127, MsbOption::MAYBE_ZERO, false).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap()).unwrap();
        let mut subject = X509NameBuilder::new().unwrap();
        subject
            .append_entry_by_text("CN", self.common_name.unwrap_or(self.name))
            .unwrap();
        b.set_subject_name(&subject.build()).unwrap();
        b.set_issuer_name(ca_cert.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        b.set_not_before(&Asn1Time::from_unix(now + self.not_before).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(now + self.not_after).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().build().unwrap())
            .unwrap();
        b.append_extension(KeyUsage::new().critical().digital_signature().build().unwrap())
            .unwrap();
        b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap())
            .unwrap();
        if !self.uris.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for u in self.uris {
                san.uri(u);
            }
            let san = san.build(&b.x509v3_context(Some(&ca_cert), None)).unwrap();
            b.append_extension(san).unwrap();
        }
        b.sign(&ca_key, MessageDigest::sha256()).unwrap();
        let cert = b.build();
        let certs = pki.certs();
        let (cp, kp) = (
            certs.join(format!("{}.pem", self.name)),
            certs.join(format!("{}.key", self.name)),
        );
        std::fs::write(&cp, cert.to_pem().unwrap()).unwrap();
        std::fs::write(&kp, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        (cp, kp)
    }
}

#[tokio::test]
async fn revoked_licensee_is_refused_at_the_handshake_others_are_served() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let (acme, _) = pki.licensee("acme");
    pki.licensee("other-co");
    let serial = serial_of_file(&acme);
    sluice_certs::revoke(&pki.ca, &serial, RevocationReason::KeyCompromise).unwrap();
    let crl = pki.write_crl();
    let options = GatewayOptions {
        crl: Some(crl),
        ..Default::default()
    };
    let gw = start_gateway_with(&pki, up.addr, &licences(&["acme", "other-co"]), "", &options).await;
    let failures_before = gw.gateway.metrics().handshake_failures.get();

    let refused = status_as(&pki, gw.data_addr, "acme").await;
    let why = refused.expect_err("a revoked certificate gets no HTTP reply");
    assert!(why.contains("CertificateRevoked"), "{why}");
    assert_eq!(status_as(&pki, gw.data_addr, "other-co").await, Ok(200));
    eventually("the handshake failure to be counted", || async {
        gw.gateway.metrics().handshake_failures.get() > failures_before
    })
    .await;
    gw.shutdown().await;
    // Refused before HTTP: only other-co's request is in the audit log.
    let records = sluice_agency::audit::tail(&audit_dir(&pki), 10).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].licensee.as_deref(), Some("other-co"));
}

#[tokio::test]
async fn a_new_crl_is_picked_up_without_restart() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let (acme, acme_key) = pki.licensee("acme");
    pki.licensee("other-co");
    let crl = pki.write_crl(); // nothing revoked yet
    let gw = start_gateway_with(
        &pki,
        up.addr,
        &licences(&["acme", "other-co"]),
        "",
        &watching(Some(crl)),
    )
    .await;
    let tls = tls_config(&pki.ca_pem(), Some((&acme, &acme_key)));
    let mut open = Conn::open(&tls, gw.data_addr).await.unwrap();
    let r = open.get(RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 200);
    r.text();

    sluice_certs::revoke(
        &pki.ca,
        &serial_of_file(&acme),
        RevocationReason::PrivilegeWithdrawn,
    )
    .unwrap();
    pki.write_crl();
    eventually(
        "new connections with the revoked certificate to be refused",
        || async { is_revoked(&pki, gw.data_addr, "acme").await },
    )
    .await;
    assert_eq!(gw.gateway.reload_stats().failed, 0);
    assert!(gw.gateway.reload_stats().ok >= 1);
    assert_eq!(status_as(&pki, gw.data_addr, "other-co").await, Ok(200));
    // rustls checks revocation at the handshake only: a connection opened before the new CRL
    // keeps working until it closes (at the latest after `request_timeout_ms` idle).
    let r = open.get(RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 200);
    r.text();
    gw.shutdown().await;
}

#[tokio::test]
async fn rotated_server_certificate_is_served_to_new_connections() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let (acme, acme_key) = pki.licensee("acme");
    let gw = start_gateway_with(&pki, up.addr, &licences(&["acme"]), "", &watching(None)).await;
    let old_serial = serial_of_file(&pki.certs().join("gateway.pem"));
    let tls = tls_config(&pki.ca_pem(), Some((&acme, &acme_key)));
    let mut open = Conn::open(&tls, gw.data_addr).await.unwrap();
    assert_eq!(serial_of(&open.server_chain()[0]), old_serial);
    let r = open.get(RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 200);
    r.text();

    let rotated = sluice_certs::issue_gateway(
        &pki.ca,
        sluice_certs::IssueGateway {
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
            days: 90,
        },
    )
    .unwrap();
    assert_ne!(rotated.serial_hex, old_serial);
    // Half a rotation (the new key beside the old certificate) is refused; service continues.
    sluice_tests::replace_file(&pki.certs().join("gateway.key"), rotated.key_pem.as_bytes());
    eventually("the mismatched key to be refused", || async {
        gw.gateway.reload_stats().failed >= 1
    })
    .await;
    assert_eq!(server_serial(&pki, gw.data_addr, "acme").await, old_serial);
    assert_eq!(status_as(&pki, gw.data_addr, "acme").await, Ok(200));

    rotated.write_to(pki.certs(), "gateway").unwrap();
    eventually("new connections to see the rotated certificate", || async {
        server_serial(&pki, gw.data_addr, "acme").await == rotated.serial_hex
    })
    .await;
    let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 200);
    // The keep-alive connection opened before the rotation still completes requests.
    let r = open.get(RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    assert_eq!(gw.gateway.reload_stats().failed, 1);
    // The expiry gauge follows the rotated certificate.
    let admin = gw.admin_addr;
    eventually("the server expiry gauge to follow the rotation", || async {
        matches!(days_metric(admin, "server").await, Some(89 | 90))
    })
    .await;
    gw.shutdown().await;
}

#[tokio::test]
async fn a_malformed_crl_is_refused_and_service_continues() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let (revoked, _) = pki.licensee("revoked-co");
    pki.licensee("acme");
    sluice_certs::revoke(
        &pki.ca,
        &serial_of_file(&revoked),
        RevocationReason::KeyCompromise,
    )
    .unwrap();
    let crl = pki.write_crl();
    let good_crl = read(&crl);
    let gw = start_gateway_with(
        &pki,
        up.addr,
        &licences(&["acme", "revoked-co"]),
        "",
        &watching(Some(crl.clone())),
    )
    .await;
    assert_eq!(status_as(&pki, gw.data_addr, "acme").await, Ok(200));
    assert!(is_revoked(&pki, gw.data_addr, "revoked-co").await);

    // Well-formed PEM around a truncated DER body: it parses as PEM, not as a CRL.
    let lines: Vec<&str> = good_crl.lines().collect();
    let truncated = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[lines.len() - 1]);
    sluice_tests::replace_file(&crl, truncated.as_bytes());
    eventually("the reload of the malformed CRL to be refused", || async {
        gw.gateway.reload_stats().failed >= 1
    })
    .await;
    assert_eq!(gw.gateway.reload_stats().ok, 0);
    assert_eq!(status_as(&pki, gw.data_addr, "acme").await, Ok(200));
    assert!(is_revoked(&pki, gw.data_addr, "revoked-co").await);
    // Refused once per change, not at every poll: five more polls change nothing.
    let polls = gw.gateway.reload_stats().watch_polls;
    eventually("five more polls of the watcher", || async {
        gw.gateway.reload_stats().watch_polls >= polls + 5
    })
    .await;
    assert_eq!(gw.gateway.reload_stats().failed, 1);

    // Garbage that is not even PEM is refused too; the fix is picked up.
    sluice_tests::replace_file(&crl, b"not a CRL\n");
    eventually("the second refusal", || async {
        gw.gateway.reload_stats().failed >= 2
    })
    .await;
    sluice_tests::replace_file(&crl, good_crl.as_bytes());
    eventually("the fixed CRL to be loaded", || async {
        gw.gateway.reload_stats().ok >= 1
    })
    .await;
    // One refusal per bad file, one reload of the fix.
    let stats = gw.gateway.reload_stats();
    assert_eq!((stats.ok, stats.failed), (1, 2));
    assert_eq!(status_as(&pki, gw.data_addr, "acme").await, Ok(200));
    assert!(is_revoked(&pki, gw.data_addr, "revoked-co").await);
    gw.shutdown().await;
}

#[tokio::test]
async fn two_licensee_uris_are_an_unknown_licensee() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licences(&["acme", "evil-co"]), "").await;
    Craft {
        name: "confused",
        common_name: None,
        uris: &["urn:sluice:licensee:acme", "urn:sluice:licensee:evil-co"],
        not_before: -3600,
        not_after: 86_400,
    }
    .write(&pki);
    // A crafted certificate with one licensee URI is served: the crafting itself is sound.
    Craft {
        name: "crafted-acme",
        common_name: None,
        uris: &["urn:sluice:licensee:acme"],
        not_before: -3600,
        not_after: 86_400,
    }
    .write(&pki);
    assert_eq!(status_as(&pki, gw.data_addr, "crafted-acme").await, Ok(200));

    let certs = pki.certs();
    let tls = tls_config(
        &pki.ca_pem(),
        Some((&certs.join("confused.pem"), &certs.join("confused.key"))),
    );
    let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.problem(), "unknown-licensee");
    gw.shutdown().await;
    let records = sluice_agency::audit::tail(&audit_dir(&pki), 10).unwrap();
    let denied = records.iter().find(|r| r.decision == "deny").unwrap();
    assert_eq!(denied.reason.as_deref(), Some("unknown-licensee"));
    assert_eq!(denied.licensee, None);
}

/// Issue 11, item 21: a certificate that chains to the CA but names its holder only in the
/// subject CN (no SAN at all) is no licensee, even when the CN is a licensed licensee's id or
/// its `urn:sluice:licensee:` URI: the identity comes from the SAN URI alone. Refused with the
/// documented problem (403 `unknown-licensee`) and audited with the certificate's fingerprint
/// and no licensee.
#[tokio::test]
async fn a_certificate_with_only_a_common_name_is_an_unknown_licensee() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licences(&["acme"]), "").await;
    // The licence is in force for acme's issued certificate.
    pki.licensee("acme");
    assert_eq!(status_as(&pki, gw.data_addr, "acme").await, Ok(200));
    let mut refused = Vec::new();
    for (name, cn) in [("cn-only", "acme"), ("cn-urn", "urn:sluice:licensee:acme")] {
        let (cert, key) = Craft {
            name,
            common_name: Some(cn),
            uris: &[],
            not_before: -3600,
            not_after: 86_400,
        }
        .write(&pki);
        let x509 = X509::from_pem(read(&cert).as_bytes()).unwrap();
        assert!(x509.subject_alt_names().is_none(), "{name} has a SAN");
        let subject_cn = x509
            .subject_name()
            .entries_by_nid(Nid::COMMONNAME)
            .next()
            .unwrap();
        assert_eq!(subject_cn.data().to_string().unwrap(), cn);
        let fingerprint: String = x509
            .digest(MessageDigest::sha256())
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();

        let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
        let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
        assert_eq!(r.status, 403, "{name}: {:?}", r.body);
        assert_eq!(r.problem(), "unknown-licensee", "{name}");
        let problem = r.json();
        assert_eq!(problem["type"], "https://sluice.dev/problems/unknown-licensee");
        assert_eq!(problem["status"], 403);
        assert!(
            r.headers.get("sluice-licence").is_none(),
            "{name}: {:?}",
            r.headers
        );
        let request_id = problem["request_id"].as_str().unwrap().to_owned();
        refused.push((name, request_id, fingerprint));
    }
    gw.shutdown().await;
    let records = sluice_agency::audit::tail(&audit_dir(&pki), 10).unwrap();
    assert_eq!(records.len(), 3, "{records:?}");
    for (name, request_id, fingerprint) in refused {
        let r = records
            .iter()
            .find(|r| r.request_id == request_id)
            .unwrap_or_else(|| panic!("{name}: no audit record {request_id}: {records:?}"));
        assert_eq!(
            (r.decision.as_str(), r.reason.as_deref(), r.status),
            ("deny", Some("unknown-licensee"), 403),
            "{name}"
        );
        assert_eq!(r.licensee, None, "{name}");
        assert_eq!(r.licence, None, "{name}");
        assert_eq!(
            r.cert_fingerprint.as_deref(),
            Some(fingerprint.as_str()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn key_usage_and_validity_are_enforced() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licences(&["acme", "ops"]), "").await;
    // An admin certificate has clientAuth and chains to the CA, but is no licensee.
    sluice_certs::issue_admin(&pki.ca, "ops", 5)
        .unwrap()
        .write_to(pki.certs(), "admin-ops")
        .unwrap();
    let certs = pki.certs();
    let tls = tls_config(
        &pki.ca_pem(),
        Some((&certs.join("admin-ops.pem"), &certs.join("admin-ops.key"))),
    );
    let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.problem().as_str()),
        (403, "unknown-licensee")
    );

    // The gateway's own server certificate (serverAuth only) as a client certificate.
    // rustls's WebPki verifier requires the clientAuth extended key usage.
    let why = status_as(&pki, gw.data_addr, "gateway").await.unwrap_err();
    assert!(why.contains("UnsupportedCertificate"), "{why}");

    // Expired, and not yet valid, both carrying a licensee identity.
    let uris = ["urn:sluice:licensee:acme"];
    for (name, not_before, not_after) in [
        ("expired", -10 * 86_400, -86_400),
        ("not-yet-valid", 86_400, 10 * 86_400),
    ] {
        Craft {
            name,
            common_name: None,
            uris: &uris,
            not_before,
            not_after,
        }
        .write(&pki);
        let refused = status_as(&pki, gw.data_addr, name).await;
        let why = refused.expect_err(name);
        // rustls sends the certificate_expired alert for both.
        assert!(why.contains("CertificateExpired"), "{name}: {why}");
    }
    pki.licensee("acme");
    assert_eq!(status_as(&pki, gw.data_addr, "acme").await, Ok(200));
    gw.shutdown().await;
}

#[tokio::test]
async fn short_lived_and_renewed_licensee_certificates() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let one_day = sluice_certs::issue_licensee(&pki.ca, "acme", 1).unwrap();
    one_day.write_to(pki.certs(), "acme").unwrap();
    let crl = pki.write_crl();
    let gw = start_gateway_with(&pki, up.addr, &licences(&["acme"]), "", &watching(Some(crl))).await;
    assert_eq!(status_as(&pki, gw.data_addr, "acme").await, Ok(200));

    let renewed = sluice_certs::renew_licensee(&pki.ca, &one_day.cert_pem, 1).unwrap();
    assert_ne!(renewed.serial_hex, one_day.serial_hex);
    let id = sluice_certs::identity_from_pem(renewed.cert_pem.as_bytes()).unwrap();
    assert_eq!(
        (id.kind, id.id.as_str()),
        (sluice_certs::IdentityKind::Licensee, "acme")
    );
    renewed.write_to(pki.certs(), "acme-renewed").unwrap();
    assert_eq!(status_as(&pki, gw.data_addr, "acme-renewed").await, Ok(200));
    // Both are valid until the old one is revoked as superseded.
    assert_eq!(status_as(&pki, gw.data_addr, "acme").await, Ok(200));
    sluice_certs::revoke(&pki.ca, &one_day.serial_hex, RevocationReason::Superseded).unwrap();
    pki.write_crl();
    eventually("the superseded certificate to be refused", || async {
        is_revoked(&pki, gw.data_addr, "acme").await
    })
    .await;
    assert_eq!(status_as(&pki, gw.data_addr, "acme-renewed").await, Ok(200));
    gw.shutdown().await;

    let records = sluice_agency::audit::tail(&audit_dir(&pki), 20).unwrap();
    assert!(records
        .iter()
        .all(|r| r.licensee.as_deref() == Some("acme") && r.status == 200));
    let serials: std::collections::BTreeSet<_> =
        records.iter().filter_map(|r| r.cert_serial.clone()).collect();
    let normalize = |s: &str| s.trim_start_matches('0').to_ascii_lowercase();
    let serials: std::collections::BTreeSet<_> = serials.iter().map(|s| normalize(s)).collect();
    let expected: std::collections::BTreeSet<_> =
        [normalize(&one_day.serial_hex), normalize(&renewed.serial_hex)].into();
    assert_eq!(serials, expected);
}

#[tokio::test]
async fn expiry_metrics_on_the_admin_listener() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licences(&["acme"]), "").await;
    // The harness's gateway certificate lasts 30 days, the CA 3650.
    let server = days_metric(gw.admin_addr, "server").await;
    assert!(matches!(server, Some(29 | 30)), "{server:?}");
    let ca = days_metric(gw.admin_addr, "client_ca").await;
    assert!(matches!(ca, Some(3649 | 3650)), "{ca:?}");
    gw.shutdown().await;
}

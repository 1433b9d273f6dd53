//! CA folder, issuance, renewal, revocation and CRL tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;

use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{CrlStatus, ReasonCode, X509Crl, X509ExtendedKeyUsage, X509StoreContext, X509};
use sluice_certs::*;

fn root(dir: &std::path::Path) -> Ca {
    Ca::init(dir.join("root"), InitOptions::default()).unwrap()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_layout_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = root(tmp.path());
    let dir = tmp.path().join("root");
    for f in [
        "ca.key",
        "ca.pem",
        "ca.json",
        "root.pem",
        "index.json",
        "crlnumber",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert!(!ca.is_intermediate());
    let err = Ca::init(&dir, InitOptions::default()).unwrap_err();
    assert!(matches!(err, CertError::AlreadyExists(_)), "{err}");
    // The existing CA is untouched and still opens.
    let reopened = Ca::open(&dir).unwrap();
    assert_eq!(reopened.cert_pem().unwrap(), ca.cert_pem().unwrap());
    // A stray key alone is enough to refuse.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("ca.key"), "x").unwrap();
    assert!(matches!(
        Ca::init(&other, InitOptions::default()),
        Err(CertError::AlreadyExists(_))
    ));
    assert!(matches!(
        Ca::open(tmp.path().join("missing")),
        Err(CertError::NotACa { .. })
    ));
}

#[test]
fn licensee_round_trip_and_key_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = root(tmp.path());
    let issued = issue_licensee(&ca, "acme-corp", 30).unwrap();
    assert!(issued.chain_pem.is_none());
    let id = identity_from_pem(issued.cert_pem.as_bytes()).unwrap();
    assert_eq!(id.kind, IdentityKind::Licensee);
    assert_eq!(id.id, "acme-corp");
    assert_eq!(id.serial_hex, issued.serial_hex);
    assert_eq!(id.sha256_fingerprint_hex.len(), 64);
    assert!(id.not_before < id.not_after);

    let cert = X509::from_pem(issued.cert_pem.as_bytes()).unwrap();
    let der_id = identity_from_der(&cert.to_der().unwrap()).unwrap();
    assert_eq!(der_id, id);
    assert!(cert.verify(&ca.certificate().public_key().unwrap()).unwrap());
    assert_eq!(cert.extended_key_usage(), Some(X509ExtendedKeyUsage::SSL_CLIENT));
    assert!(cert.subject_key_id().is_some());
    assert_eq!(
        cert.authority_key_id().unwrap().as_slice(),
        ca.certificate().subject_key_id().unwrap().as_slice()
    );
    // The key is PKCS#8 and matches the certificate.
    assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let key = openssl::pkey::PKey::private_key_from_pem(issued.key_pem.as_bytes()).unwrap();
    assert!(cert.public_key().unwrap().public_eq(&key));

    let files = issued
        .write_to(tmp.path().join("out"), "licensee-acme-corp")
        .unwrap();
    assert_eq!(mode(&files.key), 0o600);
    assert!(files.chain.is_none());
    // Rewriting over a key file with loose permissions still leaves 0600.
    std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    issued
        .write_to(tmp.path().join("out"), "licensee-acme-corp")
        .unwrap();
    assert_eq!(mode(&files.key), 0o600);
    assert!(format!("{issued:?}").contains("redacted"));
    assert!(!format!("{issued:?}").contains("PRIVATE"));

    let index = ca.index().unwrap();
    assert_eq!(index.len(), 1);
    assert_eq!(index[0].serial, issued.serial_hex);
    assert_eq!(index[0].kind, IssuedKind::Licensee);
    assert_eq!(
        index[0].identity.as_deref(),
        Some("urn:sluice:licensee:acme-corp")
    );
}

#[test]
fn admin_and_gateway_client_identities() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = root(tmp.path());
    let admin = issue_admin(&ca, "alice", 7).unwrap();
    let id = identity_from_pem(admin.cert_pem.as_bytes()).unwrap();
    assert_eq!((id.kind, id.id.as_str()), (IdentityKind::Admin, "alice"));
    let gw = issue_gateway_client(&ca, "agency-a", 7).unwrap();
    let id = identity_from_pem(gw.cert_pem.as_bytes()).unwrap();
    assert_eq!((id.kind, id.id.as_str()), (IdentityKind::Gateway, "agency-a"));
    assert!(matches!(
        issue_licensee(&ca, "bad id", 7),
        Err(CertError::InvalidId(_))
    ));
    assert!(matches!(issue_admin(&ca, "", 7), Err(CertError::InvalidId(_))));
    assert!(matches!(
        issue_licensee(&ca, "x", 0),
        Err(CertError::InvalidInput(_))
    ));
}

#[test]
fn gateway_server_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = root(tmp.path());
    let issued = issue_gateway(
        &ca,
        IssueGateway {
            dns: vec!["localhost".into(), "gw.agency-a.example".into()],
            ips: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
            days: 90,
        },
    )
    .unwrap();
    let cert = X509::from_pem(issued.cert_pem.as_bytes()).unwrap();
    assert_eq!(cert.extended_key_usage(), Some(X509ExtendedKeyUsage::SSL_SERVER));
    let text = inspect(&issued.cert_pem).unwrap();
    for needle in [
        "DNS:localhost",
        "DNS:gw.agency-a.example",
        "IP:127.0.0.1",
        "IP:::1",
        "serverAuth",
        "CA:           no",
    ] {
        assert!(text.contains(needle), "{needle} in\n{text}");
    }
    // A server certificate carries no sluice identity.
    assert!(matches!(
        identity_from_pem(issued.cert_pem.as_bytes()),
        Err(CertError::NoIdentity(_))
    ));
    assert!(text.contains("sluice id:    none"));
    assert!(issue_gateway(
        &ca,
        &IssueGateway {
            dns: vec![],
            ips: vec![],
            days: 1
        }
    )
    .is_err());
    assert!(issue_gateway(
        &ca,
        IssueGateway {
            dns: vec!["a b".into()],
            ips: vec![],
            days: 1
        }
    )
    .is_err());
}

#[test]
fn one_day_certificates_and_expiry() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = root(tmp.path());
    let issued = issue_licensee(&ca, "shortlived", 1).unwrap();
    let id = identity_from_pem(issued.cert_pem.as_bytes()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Starts a few minutes in the past (clock skew), ends one day from now.
    assert!(
        id.not_before <= now - 60 && id.not_before >= now - 600,
        "{} vs {now}",
        id.not_before
    );
    assert!((id.not_after - (now + 86_400)).abs() < 60);
    assert_eq!(id.not_after - id.not_before, 86_400 + 300);
    assert!(matches!(days_to_expiry(&issued.cert_pem).unwrap(), 0 | 1));
    let year = issue_licensee(&ca, "longer", 365).unwrap();
    assert!(matches!(days_to_expiry(&year.cert_pem).unwrap(), 364 | 365));
    assert!(days_to_expiry("not pem").is_err());
}

#[test]
fn leaves_never_outlive_their_issuer() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(
        tmp.path().join("short"),
        InitOptions {
            days: 10,
            ..InitOptions::default()
        },
    )
    .unwrap();
    let issued = issue_licensee(&ca, "acme", 365).unwrap();
    let leaf = X509::from_pem(issued.cert_pem.as_bytes()).unwrap();
    assert!(leaf.not_after() <= ca.certificate().not_after());
}

#[test]
fn renew_keeps_identity_with_a_new_key() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = root(tmp.path());
    let old = issue_licensee(&ca, "acme", 30).unwrap();
    let new = renew_licensee(&ca, &old.cert_pem, 60).unwrap();
    assert_ne!(old.serial_hex, new.serial_hex);
    assert_ne!(old.key_pem, new.key_pem);
    let (a, b) = (
        identity_from_pem(old.cert_pem.as_bytes()).unwrap(),
        identity_from_pem(new.cert_pem.as_bytes()).unwrap(),
    );
    assert_eq!((a.kind, a.id), (b.kind, b.id));
    assert!(b.not_after > a.not_after);

    // renew_licensee refuses other kinds; renew handles them.
    let admin = issue_admin(&ca, "alice", 30).unwrap();
    assert!(renew_licensee(&ca, &admin.cert_pem, 30).is_err());
    let renewed = renew(&ca, &admin.cert_pem, 30).unwrap();
    assert_eq!(
        identity_from_pem(renewed.cert_pem.as_bytes()).unwrap().id,
        "alice"
    );
    let gw = issue_gateway(
        &ca,
        IssueGateway {
            dns: vec!["gw.example".into()],
            ips: vec![],
            days: 5,
        },
    )
    .unwrap();
    let renewed = renew(&ca, &gw.cert_pem, 5).unwrap();
    assert!(inspect(&renewed.cert_pem).unwrap().contains("DNS:gw.example"));

    // A certificate from another CA is refused.
    let other = Ca::init(tmp.path().join("other"), InitOptions::default()).unwrap();
    let foreign = issue_licensee(&other, "acme", 30).unwrap();
    assert!(matches!(
        renew_licensee(&ca, &foreign.cert_pem, 30),
        Err(CertError::NotIssuedByThisCa(_))
    ));
}

#[test]
fn revoke_and_crl() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = root(tmp.path());
    let a = issue_licensee(&ca, "a", 30).unwrap();
    let b = issue_licensee(&ca, "b", 30).unwrap();
    let c = issue_licensee(&ca, "c", 30).unwrap();

    // An empty CRL is valid too.
    let empty = X509Crl::from_pem(crl(&ca, 24).unwrap().as_bytes()).unwrap();
    assert!(empty.get_revoked().is_none());
    assert!(empty.verify(&ca.certificate().public_key().unwrap()).unwrap());

    revoke(&ca, &a.serial_hex.to_uppercase(), RevocationReason::KeyCompromise).unwrap();
    revoke(&ca, &b.serial_hex, RevocationReason::Unspecified).unwrap();
    assert!(matches!(
        revoke(&ca, &a.serial_hex, RevocationReason::Superseded),
        Err(CertError::AlreadyRevoked(_))
    ));
    assert!(matches!(
        revoke(&ca, "abcdef", RevocationReason::Superseded),
        Err(CertError::SerialNotFound(_))
    ));

    let pem = crl(&ca, 48).unwrap();
    let parsed = X509Crl::from_pem(pem.as_bytes()).unwrap();
    assert!(parsed.verify(&ca.certificate().public_key().unwrap()).unwrap());
    let other = Ca::init(tmp.path().join("other"), InitOptions::default()).unwrap();
    assert!(!parsed
        .verify(&other.certificate().public_key().unwrap())
        .unwrap_or(false));
    assert_eq!(
        parsed.issuer_name().to_der().unwrap(),
        ca.certificate().subject_name().to_der().unwrap()
    );
    assert_eq!(parsed.get_revoked().unwrap().len(), 2);
    assert!(parsed.next_update().is_some());

    let cert_a = X509::from_pem(a.cert_pem.as_bytes()).unwrap();
    let cert_b = X509::from_pem(b.cert_pem.as_bytes()).unwrap();
    let cert_c = X509::from_pem(c.cert_pem.as_bytes()).unwrap();
    match parsed.get_by_cert(&cert_a) {
        CrlStatus::Revoked(entry) => {
            let (_, reason) = entry.extension::<ReasonCode>().unwrap().unwrap();
            assert_eq!(reason.get_i64().unwrap(), 1);
        }
        _ => panic!("a must be revoked"),
    }
    match parsed.get_by_cert(&cert_b) {
        CrlStatus::Revoked(entry) => assert!(entry.extension::<ReasonCode>().unwrap().is_none()),
        _ => panic!("b must be revoked"),
    }
    assert!(matches!(parsed.get_by_cert(&cert_c), CrlStatus::NotRevoked));

    // CRL numbers increase; version is 2 (DER version field INTEGER 1).
    let (_, n1) = parsed.extension::<openssl::x509::CrlNumber>().unwrap().unwrap();
    let next = X509Crl::from_pem(crl(&ca, 1).unwrap().as_bytes()).unwrap();
    let (_, n2) = next.extension::<openssl::x509::CrlNumber>().unwrap().unwrap();
    assert!(n2.to_bn().unwrap() > n1.to_bn().unwrap());
    let der = parsed.to_der().unwrap();
    assert!(der.windows(3).any(|w| w == [0x02, 0x01, 0x01]));
    assert!(crl(&ca, 0).is_err());

    let index = ca.index().unwrap();
    let ra = index.iter().find(|e| e.serial == a.serial_hex).unwrap();
    assert_eq!(
        ra.revoked.as_ref().unwrap().reason,
        RevocationReason::KeyCompromise
    );

    // The openssl command-line verifier honours the CRL. It is required (`.ci/run` installs
    // it with libssl-dev's openssl package): a missing binary fails the test, it does not skip
    // the check (issue 11, item 21).
    let files = tmp.path().join("crlcheck");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("ca.pem"), ca.cert_pem().unwrap()).unwrap();
    std::fs::write(files.join("crl.pem"), &pem).unwrap();
    std::fs::write(files.join("a.pem"), &a.cert_pem).unwrap();
    std::fs::write(files.join("c.pem"), &c.cert_pem).unwrap();
    let verify = |leaf: &str| {
        std::process::Command::new("openssl")
            .args([
                "verify",
                "-crl_check",
                "-CAfile",
                "ca.pem",
                "-CRLfile",
                "crl.pem",
                leaf,
            ])
            .current_dir(&files)
            .output()
            .expect("the openssl command (package openssl) is needed for this check")
            .status
            .success()
    };
    assert!(
        !verify("a.pem"),
        "revoked certificate must fail openssl verify -crl_check"
    );
    assert!(
        verify("c.pem"),
        "unrevoked certificate must pass openssl verify -crl_check"
    );
    let _ = (&cert_b, X509StoreBuilder::new());
}

#[test]
fn intermediate_chain_verifies_against_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = root(tmp.path());
    let inter = Ca::init_intermediate(
        &root,
        tmp.path().join("inter"),
        InitOptions {
            common_name: "sluice intermediate CA".into(),
            ..InitOptions::default()
        },
    )
    .unwrap();
    assert!(inter.is_intermediate());
    assert_eq!(inter.root_pem().unwrap(), root.cert_pem().unwrap());
    assert!(tmp.path().join("inter/chain.pem").is_file());
    // The intermediate is recorded (and revocable) at the root.
    let root_index = root.index().unwrap();
    assert_eq!(root_index.len(), 1);
    assert_eq!(root_index[0].kind, IssuedKind::IntermediateCa);
    // No intermediate below an intermediate, and no intermediate on top of the root folder.
    assert!(Ca::init_intermediate(&inter, tmp.path().join("x"), InitOptions::default()).is_err());
    assert!(Ca::init_intermediate(&root, tmp.path().join("root"), InitOptions::default()).is_err());

    let inter = Ca::open(tmp.path().join("inter")).unwrap();
    let issued = issue_licensee(&inter, "acme", 30).unwrap();
    let chain_pem = issued.chain_pem.clone().unwrap();
    let chain = X509::stack_from_pem(chain_pem.as_bytes()).unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(
        chain[0].to_der().unwrap(),
        X509::from_pem(issued.cert_pem.as_bytes())
            .unwrap()
            .to_der()
            .unwrap()
    );
    let files = issued.write_to(tmp.path().join("out"), "acme").unwrap();
    assert!(files.chain.unwrap().is_file());

    let mut store = X509StoreBuilder::new().unwrap();
    store
        .add_cert(X509::from_pem(root.cert_pem().unwrap().as_bytes()).unwrap())
        .unwrap();
    let store = store.build();
    let verify = |untrusted: &[X509]| {
        let mut stack = Stack::new().unwrap();
        for c in untrusted {
            stack.push(c.clone()).unwrap();
        }
        let mut ctx = X509StoreContext::new().unwrap();
        ctx.init(&store, &chain[0], &stack, |c| c.verify_cert()).unwrap()
    };
    assert!(
        verify(&chain[1..]),
        "leaf + intermediate must verify against the root"
    );
    assert!(
        !verify(&[]),
        "the leaf alone must not verify without the intermediate"
    );

    // The identity is the same whatever the issuer.
    assert_eq!(identity_from_pem(chain_pem.as_bytes()).unwrap().id, "acme");
}

#[test]
fn rsa_ca_issues_rsa_leaves_with_key_encipherment() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(
        tmp.path().join("rsa"),
        InitOptions {
            algorithm: KeyAlgorithm::Rsa3072,
            ..InitOptions::default()
        },
    )
    .unwrap();
    let ca = Ca::open(ca.dir()).unwrap();
    assert_eq!(ca.algorithm(), KeyAlgorithm::Rsa3072);
    let issued = issue_licensee(&ca, "acme", 5).unwrap();
    let text = inspect(&issued.cert_pem).unwrap();
    assert!(text.contains("RSA 3072 bits"), "{text}");
    assert!(text.contains("keyEncipherment"), "{text}");
    assert!(text.contains("sluice id:    urn:sluice:licensee:acme"), "{text}");
}

/// Concurrent issuers and revokers on one CA folder (as separate `sluice certs` processes
/// would be: each opens the folder itself) lose no index entry and no revocation.
#[test]
fn concurrent_changes_to_one_ca_folder_are_all_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("root");
    root(tmp.path());
    let first = issue_licensee(&Ca::open(&dir).unwrap(), "first", 30).unwrap();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let ca = Ca::open(&dir).unwrap();
                (0..4)
                    .map(|i| {
                        issue_licensee(&ca, &format!("lic-{t}-{i}"), 30)
                            .unwrap()
                            .serial_hex
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let crls: Vec<_> = (0..3)
        .map(|_| {
            let dir = dir.clone();
            std::thread::spawn(move || crl(&Ca::open(&dir).unwrap(), 24).unwrap())
        })
        .collect();
    revoke(
        &Ca::open(&dir).unwrap(),
        &first.serial_hex,
        RevocationReason::KeyCompromise,
    )
    .unwrap();
    let mut issued: Vec<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let mut numbers: Vec<_> = crls
        .into_iter()
        .map(|t| {
            let pem = t.join().unwrap();
            let crl = X509Crl::from_pem(pem.as_bytes()).unwrap();
            crl.extension::<openssl::x509::extension::CrlNumber>()
                .unwrap()
                .unwrap()
                .1
                .to_bn()
                .unwrap()
                .to_dec_str()
                .unwrap()
                .to_string()
        })
        .collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), 3, "every CRL has its own number");
    issued.push(first.serial_hex.clone());
    let index = Ca::open(&dir).unwrap().index().unwrap();
    let mut in_index: Vec<String> = index.iter().map(|e| e.serial.clone()).collect();
    issued.sort();
    in_index.sort();
    assert_eq!(in_index, issued);
    let revoked: Vec<_> = index.iter().filter(|e| e.revoked.is_some()).collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].serial, first.serial_hex);
}

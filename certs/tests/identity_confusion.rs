//! Crafted certificates that try to confuse identity parsing.
//!
//! `identity_from_der` must take the identity only from exactly one `urn:sluice:` SAN URI.
//! It does not check the issuer: that is the TLS layer's job (see `foreign_ca_same_identity`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use sluice_certs::*;

enum Name<'a> {
    Uri(&'a str),
    Dns(&'a str),
    Email(&'a str),
}

fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// A self-issued certificate with the given CN and SANs, signed by `signer`.
fn craft(cn: &str, names: &[Name<'_>], signer: &PKey<Private>) -> X509 {
    let subject_key = key();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(4242).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&subject_key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
    if !names.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for n in names {
            match n {
                Name::Uri(u) => san.uri(u),
                Name::Dns(d) => san.dns(d),
                Name::Email(e) => san.email(e),
            };
        }
        let ext = san.build(&b.x509v3_context(None, None)).unwrap();
        b.append_extension(ext).unwrap();
    }
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

fn parse(cn: &str, names: &[Name<'_>]) -> Result<Identity> {
    identity_from_der(&craft(cn, names, &key()).to_der().unwrap())
}

#[test]
fn single_uri_is_the_identity() {
    let id = parse("whatever", &[Name::Uri("urn:sluice:licensee:acme")]).unwrap();
    assert_eq!((id.kind, id.id.as_str()), (IdentityKind::Licensee, "acme"));
    assert_eq!(id.serial_hex, "1092"); // 4242
    assert_eq!(id.uri(), "urn:sluice:licensee:acme");
}

#[test]
fn two_sluice_uris_are_rejected() {
    let two = [
        Name::Uri("urn:sluice:licensee:acme"),
        Name::Uri("urn:sluice:licensee:evil"),
    ];
    assert!(matches!(
        parse("acme", &two),
        Err(CertError::AmbiguousIdentity(2))
    ));
    let same = [
        Name::Uri("urn:sluice:licensee:acme"),
        Name::Uri("urn:sluice:licensee:acme"),
    ];
    assert!(matches!(
        parse("acme", &same),
        Err(CertError::AmbiguousIdentity(2))
    ));
    let kinds = [
        Name::Uri("urn:sluice:licensee:acme"),
        Name::Uri("urn:sluice:admin:acme"),
    ];
    assert!(matches!(
        parse("acme", &kinds),
        Err(CertError::AmbiguousIdentity(2))
    ));
    // A differently-cased second one still counts.
    let cased = [
        Name::Uri("urn:sluice:licensee:acme"),
        Name::Uri("URN:SLUICE:admin:root"),
    ];
    assert!(matches!(
        parse("acme", &cased),
        Err(CertError::AmbiguousIdentity(2))
    ));
}

#[test]
fn other_schemes_only_are_rejected() {
    for uri in [
        "https://example.org/urn:sluice:licensee:x",
        "urn:other:licensee:x",
        "urn:sluicex:licensee:x",
        "spiffe://sluice/licensee/x",
        "xurn:sluice:licensee:x",
    ] {
        let err = parse("x", &[Name::Uri(uri)]).unwrap_err();
        assert!(matches!(err, CertError::NoIdentity(_)), "{uri}: {err}");
    }
}

#[test]
fn other_schemes_beside_one_sluice_uri_are_ignored() {
    let names = [
        Name::Uri("https://acme.example/"),
        Name::Uri("urn:other:licensee:evil"),
        Name::Dns("acme.example"),
        Name::Uri("urn:sluice:licensee:acme"),
    ];
    assert_eq!(parse("evil", &names).unwrap().id, "acme");
}

#[test]
fn common_name_is_never_the_identity() {
    let err = parse("urn:sluice:licensee:evil", &[]).unwrap_err();
    match err {
        CertError::NoIdentity(reason) => assert!(reason.contains("CN"), "{reason}"),
        other => panic!("{other}"),
    }
    assert!(matches!(parse("evil", &[]), Err(CertError::NoIdentity(_))));
    assert!(matches!(
        parse("urn:sluice:licensee:evil", &[Name::Dns("evil.example")]),
        Err(CertError::NoIdentity(_))
    ));
    // The SAN wins over a CN that disagrees.
    let id = parse(
        "urn:sluice:licensee:evil",
        &[Name::Uri("urn:sluice:licensee:good")],
    )
    .unwrap();
    assert_eq!(id.id, "good");
}

#[test]
fn sluice_strings_in_non_uri_names_are_ignored() {
    for names in [
        [Name::Dns("urn:sluice:licensee:evil")],
        [Name::Email("urn:sluice:licensee:evil")],
    ] {
        assert!(matches!(parse("x", &names), Err(CertError::NoIdentity(_))));
    }
}

#[test]
fn malformed_sluice_uris_are_rejected() {
    for uri in [
        "URN:SLUICE:licensee:acme",
        "urn:sluice:Licensee:acme",
        "urn:sluice:root:acme",
        "urn:sluice:licensee",
        "urn:sluice:",
    ] {
        let err = parse("x", &[Name::Uri(uri)]).unwrap_err();
        assert!(matches!(err, CertError::MalformedIdentity(_)), "{uri}: {err}");
    }
}

#[test]
fn invalid_id_characters_are_rejected() {
    let long = format!("urn:sluice:licensee:{}", "a".repeat(65));
    for uri in [
        "urn:sluice:licensee:",
        "urn:sluice:licensee:a b",
        "urn:sluice:licensee:../etc",
        "urn:sluice:licensee:a/b",
        "urn:sluice:licensee:a:b",
        "urn:sluice:licensee:a%2fb",
        "urn:sluice:licensee:acme\u{0}evil",
        "urn:sluice:licensee:ac\u{e9}me",
        long.as_str(),
    ] {
        let err = parse("x", &[Name::Uri(uri)]).unwrap_err();
        assert!(
            matches!(err, CertError::InvalidId(_) | CertError::NoIdentity(_)),
            "{uri:?}: {err}"
        );
    }
    let max = format!("urn:sluice:licensee:{}", "a".repeat(64));
    assert_eq!(parse("x", &[Name::Uri(&max)]).unwrap().id.len(), 64);
}

/// A certificate from an unrelated CA, with the same subject and SAN as a genuine one,
/// yields the same identity: this function does not (and must not pretend to) check the
/// issuer. The gateway's rustls client verifier rejects such a certificate during the
/// handshake, before identity parsing; the gateway's tests check that.
#[test]
fn foreign_ca_same_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = Ca::init(tmp.path().join("ours"), InitOptions::default()).unwrap();
    let theirs = Ca::init(tmp.path().join("theirs"), InitOptions::default()).unwrap();
    let genuine = issue_licensee(&ours, "acme", 5).unwrap();
    let forged = issue_licensee(&theirs, "acme", 5).unwrap();
    let a = identity_from_pem(genuine.cert_pem.as_bytes()).unwrap();
    let b = identity_from_pem(forged.cert_pem.as_bytes()).unwrap();
    assert_eq!((a.kind, &a.id), (b.kind, &b.id));
    assert_ne!(a.sha256_fingerprint_hex, b.sha256_fingerprint_hex);
    // Only a signature check against our CA tells them apart.
    let ours_key = ours.certificate().public_key().unwrap();
    assert!(X509::from_pem(genuine.cert_pem.as_bytes())
        .unwrap()
        .verify(&ours_key)
        .unwrap());
    assert!(!X509::from_pem(forged.cert_pem.as_bytes())
        .unwrap()
        .verify(&ours_key)
        .unwrap());
}

#[test]
fn garbage_is_not_a_certificate() {
    assert!(matches!(
        identity_from_der(b"not der"),
        Err(CertError::NotACertificate(_))
    ));
    assert!(matches!(
        identity_from_der(&[]),
        Err(CertError::NotACertificate(_))
    ));
    assert!(matches!(
        identity_from_pem(b"-----BEGIN CERTIFICATE-----\n"),
        Err(CertError::NotACertificate(_))
    ));
}

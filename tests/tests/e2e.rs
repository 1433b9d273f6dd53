//! End-to-end: real TLS, a real upstream, the gateway on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice::demo::hydrants::{Hydrant, Identifier};
use sluice_tests::client::{get, tls_config};
use sluice_tests::upstream::{Mode, Upstream};
use sluice_tests::{audit_dir, licence_toml, start_gateway, Pki};

const SCENARIO: (&str, &str) = ("sluice-scenario", "fire-hydrant-adoption");
const RECORDS: &str = "/v1/datasets/fire-hydrants/records";

fn licence(id: &str, licensee: &str, extra: &str) -> String {
    licence_toml(
        id,
        licensee,
        &format!(
            r#"fields.id = {{ rule = "clear" }}
fields.district = {{ rule = "clear" }}
fields.adopter_name = {{ rule = "partial", first = 1, last = 0 }}
fields.adopter_mobile = {{ rule = "partial", first = 3, last = 4 }}
fields.adopter_id_number = {{ rule = "clear" }}
fields.notes = {{ rule = "clear" }}
{extra}"#
        ),
    )
}

/// The masked form the README ("The detector safety net") gives an identifier written as
/// `value`.
fn masked(class: Identifier, value: &str) -> String {
    // Digits (and a check `X`) starred but the first `first` and the last `last`; separators
    // and length kept.
    let star = |first: usize, last: usize| {
        let total = value.chars().filter(|c| c.is_ascii_digit() || *c == 'X').count();
        let mut i = 0;
        value
            .chars()
            .map(|c| {
                if !(c.is_ascii_digit() || c == 'X') {
                    return c;
                }
                i += 1;
                if i > first && i <= total - last {
                    '*'
                } else {
                    c
                }
            })
            .collect::<String>()
    };
    let digits = value.chars().filter(char::is_ascii_digit).count();
    match class {
        // The middle four of the 11 digits, after a `86` prefix if any.
        Identifier::Mobile => star(digits - 8, 4),
        // The first 3 and the check character kept.
        Identifier::ResidentId => star(3, 1),
        // The first 6 and the last 4 digits kept.
        Identifier::BankCard => star(6, 4),
        // The first character of the local part and the domain kept.
        Identifier::Email => {
            let (local, domain) = value.split_once('@').unwrap();
            format!("{}***@{domain}", &local[..1])
        }
    }
}

/// The caretaker's phone (written after "reachable at ") and the planted identifier of the
/// register's `records`, as (record id, class, value).
fn planted_in(records: &[Hydrant]) -> Vec<(String, Identifier, String)> {
    let mut all: Vec<_> = sluice::demo::hydrants::planted(records)
        .into_iter()
        .map(|p| (p.id, p.class, p.value))
        .collect();
    for h in records {
        if let Some(at) = h.notes.find("reachable at ") {
            let phone = &h.notes[at + "reachable at ".len()..][..11];
            assert!(phone.bytes().all(|b| b.is_ascii_digit()), "{:?}", h.notes);
            all.push((h.id.clone(), Identifier::Mobile, phone.to_owned()));
        }
    }
    all
}

/// A record's notes as the licence plans them: clear, with every identifier masked.
fn masked_notes(h: &Hydrant) -> String {
    planted_in(std::slice::from_ref(h))
        .iter()
        .fold(h.notes.clone(), |notes, (_, class, value)| {
            assert!(notes.contains(value.as_str()), "{value} not in {notes:?}");
            notes.replace(value.as_str(), &masked(*class, value))
        })
}

/// Every planted identifier is absent from `body`, its masked form present; every class was
/// planted at least twice.
fn assert_masked(body: &str, plants: &[(String, Identifier, String)], format: &str) {
    for class in Identifier::ALL {
        let n = plants.iter().filter(|p| p.1 == class).count();
        assert!(n >= 2, "{format}: {class:?} planted {n} times in the page");
    }
    for (id, class, value) in plants {
        assert!(
            !body.contains(value.as_str()),
            "{format}: {class:?} {value} of {id} left unmasked"
        );
        let m = masked(*class, value);
        assert!(
            body.contains(&m),
            "{format}: {class:?} of {id}: no {m} in the body"
        );
    }
}

#[tokio::test]
async fn licensed_call_is_masked_as_planned() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licence("l1", "acme", ""), "").await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let r = get(&tls, gw.data_addr, &format!("{RECORDS}?limit=50"), &[SCENARIO])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.headers["sluice-licence"], "l1");
    let records = r.json();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 50);
    let register = sluice::demo::hydrants::generate();
    let page = &register[..50];
    // The detector safety net, class by class, on the values planted in the notes: each is
    // absent from the response and its masked form present, in JSON and in CSV. The mobile
    // and ID numbers planted are the adopters' own (issue 11, item 19: the number checked
    // must be the one planted).
    let plants = planted_in(page);
    let body = r.text();
    assert_masked(&body, &plants, "JSON");
    let csv = get(
        &tls,
        gw.data_addr,
        &format!("{RECORDS}?limit=50&format=csv"),
        &[SCENARIO],
    )
    .await
    .unwrap();
    assert_eq!(csv.status, 200, "{:?}", csv.body);
    assert_masked(&csv.text(), &plants, "CSV");
    for (rec, src) in records.iter().zip(page) {
        let obj = rec.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        // Plan order; non-open adopter_id_number never leaves, whatever the licence says.
        assert_eq!(
            keys,
            ["id", "district", "adopter_name", "adopter_mobile", "notes"]
        );
        assert_eq!(obj["id"], src.id.as_str());
        let mobile = obj["adopter_mobile"].as_str().unwrap();
        assert_eq!(
            mobile,
            format!("{}****{}", &src.adopter_mobile[..3], &src.adopter_mobile[7..])
        );
        let name = obj["adopter_name"].as_str().unwrap();
        assert_eq!(name.chars().next(), src.adopter_name.chars().next());
        assert!(name.chars().skip(1).all(|c| c == '*'));
        // The notes leave with every identifier the source wrote in them masked as the README
        // states, and nothing else changed.
        assert_eq!(obj["notes"].as_str().unwrap(), masked_notes(src), "{}", src.id);
    }
    for src in page {
        assert!(!body.contains(&src.adopter_id_number), "{}", src.id);
        assert!(!body.contains(&src.adopter_mobile), "{}", src.id);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn formats_and_paging() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licence("l1", "acme", ""), "").await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let r = get(
        &tls,
        gw.data_addr,
        &format!("{RECORDS}?limit=3&format=csv"),
        &[SCENARIO],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,district,adopter_name,adopter_mobile,notes");
    assert_eq!(lines.len(), 4);
    let r = get(
        &tls,
        gw.data_addr,
        &format!("{RECORDS}?limit=2&format=ndjson&offset=5"),
        &[SCENARIO],
    )
    .await
    .unwrap();
    let text = r.text();
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["SH-HYD-000006", "SH-HYD-000007"]);
    gw.shutdown().await;
}

/// A page at the last representable offset has no next page: the gateway answers it without
/// a `Link` (computing one used to overflow, which killed the connection in debug builds).
#[tokio::test]
async fn the_page_at_the_last_offset_has_no_next_link() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licence("l1", "acme", ""), "").await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let r = get(
        &tls,
        gw.data_addr,
        &format!("{RECORDS}?limit=2&offset={}", u64::MAX - 1),
        &[SCENARIO],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json(), serde_json::json!([]));
    assert!(!r.headers.contains_key("link"), "{:?}", r.headers);
    let r = get(
        &tls,
        gw.data_addr,
        &format!("{RECORDS}?limit=2&offset=4"),
        &[SCENARIO],
    )
    .await
    .unwrap();
    assert!(
        r.headers["link"]
            .to_str()
            .unwrap()
            .contains("limit=2>; rel=\"next\""),
        "{:?}",
        r.headers
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn refusals_are_problems_and_audited() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let licences = format!(
        "{}{}{}",
        licence("l1", "acme", ""),
        licence(
            "l2",
            "revoked-co",
            "status = { state = \"revoked\", reason = \"misuse\" }"
        ),
        licence("l3", "late-co", "").replace("2035-01-01", "2025-06-01"),
    );
    let gw = start_gateway(&pki, up.addr, &licences, "").await;
    let ca = pki.ca_pem();
    let acme = pki.licensee("acme");
    let nobody = pki.licensee("nobody");
    let revoked = pki.licensee("revoked-co");
    let late = pki.licensee("late-co");
    type Case<'a> = (
        (std::path::PathBuf, std::path::PathBuf),
        Vec<(&'a str, &'a str)>,
        &'a str,
        u16,
    );
    let cases: Vec<Case> = vec![
        (
            acme.clone(),
            vec![("sluice-scenario", "marketing")],
            "scenario-not-licensed",
            403,
        ),
        (acme.clone(), vec![], "scenario-missing", 400),
        (nobody, vec![SCENARIO], "no-licence", 403),
        (revoked, vec![SCENARIO], "licence-revoked", 403),
        (late, vec![SCENARIO], "licence-expired", 403),
    ];
    for ((cert, key), headers, code, status) in cases {
        let tls = tls_config(&ca, Some((&cert, &key)));
        let r = get(&tls, gw.data_addr, RECORDS, &headers).await.unwrap();
        assert_eq!(r.status, status, "{code}");
        assert_eq!(r.problem(), code);
        let j = r.json();
        assert_eq!(j["status"], status);
        assert!(j["request_id"].as_str().is_some());
    }
    let tls = tls_config(&ca, Some((&acme.0, &acme.1)));
    let r = get(&tls, gw.data_addr, "/v1/datasets/nope/records", &[SCENARIO])
        .await
        .unwrap();
    assert_eq!(r.problem(), "unknown-dataset");
    let r = get(&tls, gw.data_addr, "/v2/else", &[]).await.unwrap();
    assert_eq!(r.problem(), "not-found");
    let r = get(&tls, gw.data_addr, &format!("{RECORDS}?limit=abc"), &[SCENARIO])
        .await
        .unwrap();
    assert_eq!(r.problem(), "bad-request");
    gw.shutdown().await;
    let report = sluice_agency::audit::verify_dir(&audit_dir(&pki)).unwrap();
    assert!(report.first_bad.is_none());
    assert_eq!(report.records, 8);
}

#[tokio::test]
async fn no_certificate_or_foreign_ca_is_refused_at_the_handshake() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licence("l1", "acme", ""), "").await;
    let tls = tls_config(&pki.ca_pem(), None);
    let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await;
    assert!(
        r.is_err(),
        "a connection without a client certificate must fail: {r:?}"
    );
    // Same licensee id, same subject, but issued by another CA.
    let other = Pki::new();
    let (cert, key) = other.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    assert!(get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.is_err());
    // On the public listener, conditional data needs a licence: a clear problem.
    let public = gw.public_addr.unwrap();
    let tls = tls_config(&pki.ca_pem(), None);
    let r = get(&tls, public, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.problem(), "unauthenticated");
    // Unconditional data is served there, only its unconditional fields.
    let r = get(
        &tls,
        public,
        "/v1/datasets/hydrant-locations/records?limit=2",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let recs = r.json();
    let keys: Vec<&str> = recs[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["id", "district", "street", "latitude", "longitude", "status"]
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn rate_limit_and_quota() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let licences = format!(
        "{}{}",
        licence("fast", "acme", "rate = { per_second = 1, burst = 2 }"),
        licence(
            "small",
            "small-co",
            "quota = { requests_per_day = 100, records_per_day = 25 }"
        ),
    );
    let gw = start_gateway(&pki, up.addr, &licences, "").await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..4 {
        let r = get(&tls, gw.data_addr, &format!("{RECORDS}?limit=1"), &[SCENARIO])
            .await
            .unwrap();
        statuses.push(r.status.as_u16());
        if r.status == 429 {
            limited = Some(r);
        }
    }
    assert_eq!(&statuses[..2], [200, 200]);
    let r = limited.expect("a request over the burst is limited");
    assert_eq!(r.problem(), "rate-limited");
    assert!(r.headers.contains_key("retry-after"));
    assert!(r.headers.contains_key("ratelimit-policy"));
    assert!(r.headers.contains_key("ratelimit"));

    let (cert, key) = pki.licensee("small-co");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let r = get(&tls, gw.data_addr, &format!("{RECORDS}?limit=20"), &[SCENARIO])
        .await
        .unwrap();
    assert_eq!(r.json().as_array().unwrap().len(), 20);
    // Only 5 records of the day's 25 are left: the page is cut to them.
    let r = get(&tls, gw.data_addr, &format!("{RECORDS}?limit=20"), &[SCENARIO])
        .await
        .unwrap();
    assert_eq!(r.json().as_array().unwrap().len(), 5);
    let r = get(&tls, gw.data_addr, &format!("{RECORDS}?limit=20"), &[SCENARIO])
        .await
        .unwrap();
    assert_eq!(r.problem(), "quota-exhausted");
    assert!(r.headers.contains_key("retry-after"));
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_failures() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licence("l1", "acme", ""), "").await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));

    up.set_mode(Mode::Error);
    let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.problem().as_str()),
        (502, "upstream-failed")
    );

    up.set_mode(Mode::Slow);
    let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.problem().as_str()),
        (504, "upstream-timeout")
    );

    // Invalid JSON after the first record: the client sees a broken transfer, and what it got
    // before the break holds only masked data.
    up.set_mode(Mode::BrokenMidStream);
    let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 200);
    let (_, partial) = r.body.expect_err("the stream must be aborted");
    let partial = String::from_utf8_lossy(&partial);
    assert!(partial.contains("138****5678"), "{partial}");
    assert!(!partial.contains("13812345678") && !partial.contains("13987654321"));

    drop(up);
    let r = get(&tls, gw.data_addr, RECORDS, &[SCENARIO]).await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.problem().as_str()),
        (502, "upstream-failed")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn audit_chain_detects_tampering() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licence("l1", "acme", ""), "").await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    for _ in 0..3 {
        let r = get(&tls, gw.data_addr, &format!("{RECORDS}?limit=2"), &[SCENARIO])
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        r.text();
    }
    let r = get(&tls, gw.data_addr, RECORDS, &[("sluice-scenario", "other")])
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    gw.shutdown().await;
    let dir = audit_dir(&pki);
    let report = sluice_agency::audit::verify_dir(&dir).unwrap();
    assert_eq!(report.records, 4);
    assert!(report.first_bad.is_none());
    let records = sluice_agency::audit::tail(&dir, 10).unwrap();
    let allowed: Vec<_> = records.iter().filter(|r| r.decision == "allow").collect();
    assert_eq!(allowed.len(), 3);
    assert!(allowed
        .iter()
        .all(|r| r.records_out == 2 && r.licence.as_deref() == Some("l1")));
    assert!(allowed
        .iter()
        .all(|r| r.cert_fingerprint.as_ref().is_some_and(|f| f.len() == 64)));
    let denied = records.iter().find(|r| r.decision == "deny").unwrap();
    assert_eq!(denied.reason.as_deref(), Some("scenario-not-licensed"));

    // Edit one record: the chain names it.
    let segment = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(&segment).unwrap();
    let tampered = text.replacen("\"records_out\":2", "\"records_out\":1", 1);
    assert_ne!(text, tampered);
    std::fs::write(&segment, tampered).unwrap();
    let report = sluice_agency::audit::verify_dir(&dir).unwrap();
    let bad = report.first_bad.expect("tampering is detected");
    assert_eq!(bad.line, 1);
}

#[tokio::test]
async fn row_filter_field_subset_and_pseudonyms() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let extra = "row_filter = \"district = 'Huangpu'\"";
    let licences = format!(
        "{}{}",
        licence("maps", "maps-co", extra)
            .replace("rule = \"partial\", first = 1, last = 0", "rule = \"pseudonym\""),
        licence("other", "other-co", "")
            .replace("rule = \"partial\", first = 1, last = 0", "rule = \"pseudonym\""),
    );
    let gw = start_gateway(&pki, up.addr, &licences, "").await;
    let (cert, key) = pki.licensee("maps-co");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let r = get(&tls, gw.data_addr, &format!("{RECORDS}?limit=1000"), &[SCENARIO])
        .await
        .unwrap();
    let recs = r.json();
    let recs = recs.as_array().unwrap();
    assert!(!recs.is_empty());
    assert!(
        recs.iter().all(|r| r["district"] == "Huangpu"),
        "row filter holds"
    );
    // fields= narrows the plan; asking for a field outside it is refused.
    let r = get(
        &tls,
        gw.data_addr,
        &format!("{RECORDS}?limit=2&fields=adopter_name,id"),
        &[SCENARIO],
    )
    .await
    .unwrap();
    let recs2 = r.json();
    let keys: Vec<&str> = recs2[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "adopter_name"]);
    let r = get(
        &tls,
        gw.data_addr,
        &format!("{RECORDS}?fields=adopter_id_number"),
        &[SCENARIO],
    )
    .await
    .unwrap();
    assert_eq!(r.problem(), "field-not-allowed");
    // Pseudonyms are stable for one licensee and differ across licensees.
    let first_id = recs[0]["id"].as_str().unwrap().to_owned();
    let p1 = recs[0]["adopter_name"].as_str().unwrap().to_owned();
    let again = get(&tls, gw.data_addr, &format!("{RECORDS}?limit=1"), &[SCENARIO])
        .await
        .unwrap()
        .json();
    assert_eq!(again[0]["adopter_name"], p1.as_str());
    let (cert, key) = pki.licensee("other-co");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let all = get(&tls, gw.data_addr, &format!("{RECORDS}?limit=1000"), &[SCENARIO])
        .await
        .unwrap()
        .json();
    let same = all
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == first_id.as_str())
        .unwrap();
    assert!(p1.starts_with("p_"));
    assert_ne!(same["adopter_name"], p1.as_str());
    gw.shutdown().await;
}

#[tokio::test]
async fn catalog_header_limits_and_public_rate_limit() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licence("l1", "acme", ""), "").await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let cat = get(&tls, gw.data_addr, "/v1/catalog", &[]).await.unwrap().json();
    let ds = cat["datasets"].as_array().unwrap();
    assert_eq!(ds.len(), 2);
    let hydrants = ds.iter().find(|d| d["id"] == "fire-hydrants").unwrap();
    assert_eq!(hydrants["open_category"], "conditional");
    let idn = hydrants["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "adopter_id_number")
        .unwrap();
    assert_eq!(idn["open_category"], "non_open");

    // Too many headers → 431 from the HTTP layer, never reaching the data plane.
    let many: Vec<(String, String)> = (0..100).map(|i| (format!("x-h{i}"), "v".to_owned())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = get(&tls, gw.data_addr, "/v1/catalog", &many).await.unwrap();
    assert_eq!(r.status, 431);
    let big = "x".repeat(20_000);
    let r = get(&tls, gw.data_addr, "/v1/catalog", &[("x-big", big.as_str())])
        .await
        .unwrap();
    assert_eq!(r.status, 431);

    // The public listener lists only unconditional datasets and limits per client IP (burst 3).
    let public = gw.public_addr.unwrap();
    let anon = tls_config(&pki.ca_pem(), None);
    let cat = get(&anon, public, "/v1/catalog", &[]).await.unwrap().json();
    let ids: Vec<&str> = cat["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["hydrant-locations"]);
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(
            get(&anon, public, "/v1/catalog", &[])
                .await
                .unwrap()
                .status
                .as_u16(),
        );
    }
    assert!(codes.contains(&429), "{codes:?}");
    gw.shutdown().await;
}

/// A dataset over the hydrant register whose coordinates are graded by object, high risk
/// (the exact location of critical water mains): non-open, while the dataset is conditional.
const MAINS: &str = r#"
[[datasets]]
id = "hydrant-mains"
title = "Hydrants on the critical water mains"
grades = { object = "public_security" }
fields = [
  { name = "id" },
  { name = "district" },
  { name = "latitude", grades = { object = "high_risk" } },
  { name = "longitude", grades = { object = "high_risk" } },
  { name = "status" },
]
"#;

/// Issue 11, item 21: fields graded non-open by organisation (the utilities bureau's
/// negotiated tariff, a trade secret) or by object (coordinates of critical mains, high
/// risk) never leave, in JSON or CSV, even when the licence names them with `clear`; a request
/// selecting one with `fields=` is refused `field-not-allowed`, and audited.
#[tokio::test]
async fn non_open_organisation_and_object_fields_never_leave() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let utilities = sluice::demo::source::SampleSource::start_utilities("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let extra = format!(
        r#"
[sources.enterprise-utilities]
kind = "http"
url = "{utilities}"

[sources.hydrant-mains]
kind = "http"
url = "http://{upstream}/hydrants"
{datasets}{MAINS}"#,
        utilities = utilities.url(),
        upstream = up.addr,
        datasets = sluice::demo::config::UTILITIES_DATASETS,
    );
    let licences = r#"
[[licences]]
id = "l-util"
licensee = "acme"
dataset = "enterprise-utilities"
scenario = "property-underwriting"
valid_from = "2025-01-01T00:00:00Z"
valid_until = "2035-01-01T00:00:00Z"
fields.credit_code = { rule = "clear" }
fields.month = { rule = "clear" }
fields.electricity_kwh = { rule = "clear" }
fields.tariff_cny_per_kwh = { rule = "clear" }

[[licences]]
id = "l-mains"
licensee = "acme"
dataset = "hydrant-mains"
scenario = "fire-hydrant-adoption"
valid_from = "2025-01-01T00:00:00Z"
valid_until = "2035-01-01T00:00:00Z"
fields.id = { rule = "clear" }
fields.latitude = { rule = "clear" }
fields.longitude = { rule = "decimals", places = 3 }
fields.status = { rule = "clear" }
"#;
    let gw = start_gateway(&pki, up.addr, licences, &extra).await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));

    // The catalog says so.
    let cat = get(&tls, gw.data_addr, "/v1/catalog", &[]).await.unwrap().json();
    let category = |dataset: &str, field: &str| {
        let ds = cat["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == dataset)
            .unwrap_or_else(|| panic!("{dataset} not in the catalog: {cat}"));
        let f = ds["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == field)
            .unwrap();
        f["open_category"].as_str().unwrap().to_owned()
    };
    assert_eq!(category("enterprise-utilities", "tariff_cny_per_kwh"), "non_open");
    assert_eq!(category("hydrant-mains", "latitude"), "non_open");
    assert_eq!(category("hydrant-mains", "longitude"), "non_open");

    let util = ("sluice-scenario", "property-underwriting");
    let source = sluice::demo::utilities::generate();
    let r = get(
        &tls,
        gw.data_addr,
        "/v1/datasets/enterprise-utilities/records?limit=24",
        &[util],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = r.text();
    assert!(!body.contains("tariff"), "{body}");
    let recs = r.json();
    let recs = recs.as_array().unwrap();
    assert_eq!(recs.len(), 24);
    for (rec, src) in recs.iter().zip(&source) {
        let keys: Vec<&str> = rec.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["credit_code", "month", "electricity_kwh"]);
        assert_eq!(rec["credit_code"], src.credit_code.as_str());
        assert_eq!(rec["electricity_kwh"], src.electricity_kwh);
    }
    let r = get(
        &tls,
        gw.data_addr,
        "/v1/datasets/enterprise-utilities/records?limit=24&format=csv",
        &[util],
    )
    .await
    .unwrap();
    let csv = r.text();
    assert_eq!(csv.lines().next(), Some("credit_code,month,electricity_kwh"));
    assert_eq!(csv.lines().count(), 25);
    assert!(!csv.contains("tariff"), "{csv}");
    // The tariffs of the enterprises on the page (two, twelve months each) appear nowhere.
    for src in &source[..24] {
        let tariff = src.tariff_cny_per_kwh.to_string();
        assert!(!body.contains(&tariff) && !csv.contains(&tariff), "{tariff}");
    }

    let mains = "/v1/datasets/hydrant-mains/records?limit=20";
    let register = sluice::demo::hydrants::generate();
    let r = get(&tls, gw.data_addr, mains, &[SCENARIO]).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = r.text();
    let recs = r.json();
    for (rec, src) in recs.as_array().unwrap().iter().zip(&register) {
        let keys: Vec<&str> = rec.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "status"]);
        assert_eq!(rec["id"], src.id.as_str());
    }
    let csv = get(&tls, gw.data_addr, &format!("{mains}&format=csv"), &[SCENARIO])
        .await
        .unwrap()
        .text();
    assert_eq!(csv.lines().next(), Some("id,status"));
    assert_eq!(csv.lines().count(), 21);
    for src in &register[..20] {
        // Neither exact nor cut to the licence's 3 decimals.
        for v in [src.latitude, src.longitude] {
            let cut = format!("{:.3}", v);
            for text in [&body, &csv] {
                assert!(
                    !text.contains(&v.to_string()) && !text.contains(&cut),
                    "{v} in {text}"
                );
            }
        }
    }

    // Asking for them by name is refused, also next to an allowed field.
    for (path, scenario) in [
        (
            "/v1/datasets/enterprise-utilities/records?fields=tariff_cny_per_kwh",
            util,
        ),
        (
            "/v1/datasets/enterprise-utilities/records?fields=credit_code,tariff_cny_per_kwh",
            util,
        ),
        ("/v1/datasets/hydrant-mains/records?fields=latitude", SCENARIO),
        ("/v1/datasets/hydrant-mains/records?fields=id,longitude", SCENARIO),
    ] {
        let r = get(&tls, gw.data_addr, path, &[scenario]).await.unwrap();
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.problem(), "field-not-allowed", "{path}");
        let detail = r.json()["detail"].as_str().unwrap().to_owned();
        let field = path.rsplit([',', '=']).next().unwrap();
        assert!(detail.contains(field), "{path}: {detail}");
    }
    gw.shutdown().await;
    let records = sluice_agency::audit::tail(&audit_dir(&pki), 20).unwrap();
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r.reason.as_deref() == Some("field-not-allowed"))
        .collect();
    assert_eq!(refused.len(), 4, "{records:?}");
    assert!(refused
        .iter()
        .all(|r| r.decision == "deny" && r.status == 400 && r.licensee.as_deref() == Some("acme")));
}

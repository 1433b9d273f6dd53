//! The licensee's query interface at the gateway (PostgREST conventions): filters on fields
//! the licence shows in clear narrow the page; a filter on anything else (masked, non-open,
//! scanned free text, unknown) is `field-not-filterable`, the same answer whether or not the
//! field exists; a filter never widens the licence's row filter; each refusal is audited.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sluice_agency::audit::{query, Filter};
use sluice_tests::client::{get, tls_config, Reply};
use sluice_tests::upstream::Upstream;
use sluice_tests::{audit_dir, licence_toml, start_gateway, Pki};

const SCENARIO: (&str, &str) = ("sluice-scenario", "fire-hydrant-adoption");
const RECORDS: &str = "/v1/datasets/fire-hydrants/records";

fn licence(row_filter: &str) -> String {
    licence_toml(
        "l1",
        "acme",
        &format!(
            r#"fields.id = {{ rule = "clear" }}
fields.district = {{ rule = "clear" }}
fields.status = {{ rule = "clear" }}
fields.adopter_mobile = {{ rule = "partial", first = 3, last = 4 }}
fields.adopter_id_number = {{ rule = "clear" }}
fields.notes = {{ rule = "clear" }}
rate = {{ per_second = 1000, burst = 1000 }}
{row_filter}"#
        ),
    )
}

fn records(r: &Reply) -> Vec<Value> {
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json().as_array().unwrap().clone()
}

#[tokio::test]
async fn filters_on_clear_fields_narrow_the_page() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licence(""), "").await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let register = sluice::demo::hydrants::generate();

    // `eq` on a field the source maps (`filter_params`) is pushed down: the page is full, the
    // first 20 hydrants in Huangpu.
    let r = get(
        &tls,
        gw.data_addr,
        &format!("{RECORDS}?limit=20&district=eq.Huangpu"),
        &[SCENARIO],
    )
    .await
    .unwrap();
    let got: Vec<String> = records(&r)
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect();
    let want: Vec<String> = register
        .iter()
        .filter(|h| h.district == "Huangpu")
        .take(20)
        .map(|h| h.id.clone())
        .collect();
    assert_eq!(got, want);

    // What the source cannot take is filtered in the stream, and the gateway reads the
    // source's pages (`page_size` records each) until its own page is full: pages hold `limit`
    // records, and following the links gives every matching record once.
    let matching: Vec<String> = register
        .iter()
        .filter(|h| h.district != "Huangpu" && h.district != "Xuhui")
        .map(|h| h.id.clone())
        .collect();
    let mut path = format!("{RECORDS}?limit=700&district=not.in.(Huangpu,Xuhui)&select=id,district");
    let mut got: Vec<String> = Vec::new();
    for page in 0..3 {
        let r = get(&tls, gw.data_addr, &path, &[SCENARIO]).await.unwrap();
        let recs = records(&r);
        assert_eq!(recs.len(), 700, "page {page} is full");
        for rec in &recs {
            let keys: Vec<&str> = rec.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, ["id", "district"]);
        }
        got.extend(recs.iter().map(|x| x["id"].as_str().unwrap().to_owned()));
        let link = r.headers["link"].to_str().unwrap().to_owned();
        assert!(
            link.contains("district=not.in.") && link.contains("limit=700"),
            "{link}"
        );
        path = link
            .strip_prefix('<')
            .unwrap()
            .split_once('>')
            .unwrap()
            .0
            .to_owned();
    }
    assert_eq!(got, matching[..2100], "every matching record once, in order");
    // The page that runs out of matching records is the last: no link.
    let tail = matching.len() - 3;
    let r = get(
        &tls,
        gw.data_addr,
        &format!("{RECORDS}?limit=700&offset={tail}&district=not.in.(Huangpu,Xuhui)&select=id,district"),
        &[SCENARIO],
    )
    .await
    .unwrap();
    let recs = records(&r);
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[2]["id"], matching[matching.len() - 1].as_str());
    assert!(!r.headers.contains_key("link"), "{:?}", r.headers);
    gw.shutdown().await;
}

#[tokio::test]
async fn filters_on_what_the_licensee_cannot_see_are_refused_and_audited() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licence(""), "").await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    let h = &sluice::demo::hydrants::generate()[0];
    let probes = [
        // masked by the licence: an oracle on the hidden digits
        format!("adopter_mobile=eq.{}", h.adopter_mobile),
        // non-open (the licence says clear; the catalog forbids it)
        format!("adopter_id_number=eq.{}", h.adopter_id_number),
        // scanned free text: a like on it would find a masked phone
        "notes=like.*138*".to_owned(),
        // not in the licence, and not in the source at all: the same answer
        "adopter_name=eq.x".to_owned(),
        "no_such_field=eq.x".to_owned(),
    ];
    for probe in &probes {
        let r = get(&tls, gw.data_addr, &format!("{RECORDS}?{probe}"), &[SCENARIO])
            .await
            .unwrap();
        assert_eq!(
            (r.status.as_u16(), r.problem().as_str()),
            (400, "field-not-filterable"),
            "{probe}"
        );
    }
    // Malformed and unsupported queries are bad requests.
    for bad in [
        "district=eq.a&district=eq.a",
        "district=in.()",
        "order=id.desc",
        "or=(a.eq.1)",
    ] {
        let r = get(&tls, gw.data_addr, &format!("{RECORDS}?{bad}"), &[SCENARIO])
            .await
            .unwrap();
        assert_eq!(
            (r.status.as_u16(), r.problem().as_str()),
            (400, "bad-request"),
            "{bad}"
        );
    }
    let audit = query(&audit_dir(&pki), &Filter::default()).unwrap();
    let refused = audit
        .iter()
        .filter(|r| r.reason.as_deref() == Some("field-not-filterable"))
        .count();
    assert_eq!(refused, probes.len());
    gw.shutdown().await;
}

#[tokio::test]
async fn a_filter_never_widens_the_row_filter() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(
        &pki,
        up.addr,
        &licence(r#"row_filter = "district = 'Huangpu'""#),
        "",
    )
    .await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    for q in [
        "district=eq.Xuhui",
        "district=in.(Xuhui,Minhang)",
        "district=not.eq.Huangpu",
        "district=is.null",
        "district=like.*u*",
        "id=not.is.null",
    ] {
        let r = get(
            &tls,
            gw.data_addr,
            &format!("{RECORDS}?limit=300&{q}"),
            &[SCENARIO],
        )
        .await
        .unwrap();
        for rec in records(&r) {
            assert_eq!(rec["district"], "Huangpu", "{q}: {rec}");
        }
    }
    gw.shutdown().await;
}

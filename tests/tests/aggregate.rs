//! The data sandbox end to end: aggregate-only licences over a real gateway and a real
//! upstream, answers checked against a direct computation over the source's records.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sluice::demo::hydrants::{generate, Hydrant};
use sluice_policy::aggregate::Decimal;
use sluice_tests::client::{get, tls_config};
use sluice_tests::upstream::Upstream;
use sluice_tests::{audit_dir, licence_toml, start_gateway, Pki};
use std::collections::BTreeMap;

const SCENARIO: (&str, &str) = ("sluice-scenario", "fire-hydrant-adoption");
const AGGREGATE: &str = "/v1/datasets/fire-hydrants/aggregate";

/// Base cells (district, status) of the register with their records.
fn base_cells(records: &[Hydrant]) -> BTreeMap<(String, String), Vec<&Hydrant>> {
    let mut cells: BTreeMap<(String, String), Vec<&Hydrant>> = BTreeMap::new();
    for h in records {
        cells
            .entry((h.district.to_owned(), h.status.to_owned()))
            .or_default()
            .push(h);
    }
    cells
}

/// A `k` that suppresses some base cells and releases others.
fn pick_k(cells: &BTreeMap<(String, String), Vec<&Hydrant>>) -> usize {
    let mut sizes: Vec<usize> = cells.values().map(Vec::len).collect();
    sizes.sort_unstable();
    sizes[sizes.len() / 3] + 1
}

fn licences(k: usize) -> String {
    licence_toml(
        "agg-stats",
        "stats-office",
        &format!(
            "mode = \"aggregate\"\nfields = {{}}\n\
             aggregate = {{ group_by = [\"district\", \"status\"], measures = [\"latitude\"], k = {k} }}"
        ),
    ) + &licence_toml(
        "agg-ids",
        "prober",
        "mode = \"aggregate\"\nfields = {}\n\
         aggregate = { group_by = [\"id\"], measures = [\"latitude\"], k = 3, max_groups = 20000 }",
    ) + &licence_toml(
        "agg-capped",
        "capped",
        "mode = \"aggregate\"\nfields = {}\naggregate = { group_by = [\"id\"], max_groups = 100 }",
    ) + &licence_toml(
        "records-only",
        "acme",
        "fields.id = { rule = \"clear\" }\nfields.district = { rule = \"clear\" }",
    )
}

#[tokio::test]
async fn aggregates_equal_a_direct_computation_on_the_released_cells_and_no_record_leaves() {
    let records = generate();
    let cells = base_cells(&records);
    let k = pick_k(&cells);
    let pki = Pki::new();
    let up = Upstream::start().await;
    let gw = start_gateway(&pki, up.addr, &licences(k), "").await;
    let client = |who: &str| {
        let (cert, key) = pki.licensee(who);
        tls_config(&pki.ca_pem(), Some((&cert, &key)))
    };
    let stats = client("stats-office");
    let ask = |tls: std::sync::Arc<rustls::ClientConfig>, q: String| {
        let addr = gw.data_addr;
        async move {
            get(&tls, addr, &format!("{AGGREGATE}?{q}"), &[SCENARIO])
                .await
                .unwrap()
        }
    };
    let released: Vec<(&(String, String), &Vec<&Hydrant>)> =
        cells.iter().filter(|(_, v)| v.len() >= k).collect();
    assert!(
        released.len() > 1 && released.len() < cells.len(),
        "k = {k} must split the cells"
    );

    // Counts by district: the sum of each district's released base cells.
    let r = ask(stats.clone(), "group_by=district&metric=count".into()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let mut want: BTreeMap<&str, u64> = BTreeMap::new();
    for ((d, _), v) in &released {
        *want.entry(d.as_str()).or_default() += v.len() as u64;
    }
    let got: BTreeMap<String, u64> = body["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["district"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: BTreeMap<String, u64> = want.into_iter().map(|(d, n)| (d.to_owned(), n)).collect();
    assert_eq!(got, want, "{body}");
    assert!(got.values().all(|n| *n >= k as u64));

    // The total is the total of the released cells, so subtracting one answer from another
    // isolates nothing smaller than a released cell.
    let total = ask(stats.clone(), "metric=count".into()).await.json();
    assert_eq!(
        total["cells"][0]["count"].as_u64().unwrap(),
        got.values().sum::<u64>()
    );

    // Sums of latitude by status, with a district filter: exact decimal sums of the released
    // cells the filter selects.
    let district = released[0].0 .0.clone();
    let r = ask(
        stats.clone(),
        format!("group_by=status&metric=sum(latitude)&district=eq.{district}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    for cell in body["cells"].as_array().unwrap() {
        let status = cell["status"].as_str().unwrap();
        let members = &cells[&(district.clone(), status.to_owned())];
        assert!(members.len() >= k);
        let mut sum = Decimal::parse("0").unwrap();
        for h in members {
            let text = serde_json::to_string(&h.latitude).unwrap();
            sum = sum.checked_add(Decimal::parse(&text).unwrap()).unwrap();
        }
        let value = cell["value"].as_f64().unwrap();
        assert!((value - sum.to_f64()).abs() < 1e-6, "{cell} vs {sum}");
    }

    // Refusals: a field the allowance does not name, a metric on a field it does not allow,
    // records under an aggregate licence, aggregates under a records licence.
    for (q, code) in [
        ("group_by=street", "field-not-aggregable"),
        (
            "group_by=district&metric=max(adopter_mobile)",
            "field-not-aggregable",
        ),
        ("group_by=district&street=eq.x", "field-not-aggregable"),
        ("group_by=district&district=gt.A", "bad-request"),
        ("metric=median(latitude)", "bad-request"),
    ] {
        let r = ask(stats.clone(), q.into()).await;
        assert_eq!(r.problem(), code, "{q}: {}", r.text());
    }
    let r = get(
        &stats,
        gw.data_addr,
        "/v1/datasets/fire-hydrants/records?limit=1",
        &[SCENARIO],
    )
    .await
    .unwrap();
    assert_eq!(r.problem(), "aggregate-only");
    let r = ask(client("acme"), "group_by=district".into()).await;
    assert_eq!(r.problem(), "aggregate-not-licensed");

    // More base cells than the licence allows are refused, whatever the query groups by.
    let r = ask(client("capped"), "metric=count".into()).await;
    assert_eq!(r.problem(), "too-many-groups", "{}", r.text());

    // Grouping by a key unique per record releases nothing, minimum or not.
    let r = ask(client("prober"), "group_by=id&metric=min(latitude)".into()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let body = r.json();
    assert_eq!(body["cells"].as_array().unwrap().len(), 0, "{text:.300}");
    assert!(!text.contains("SH-HYD-"), "{text:.300}");
    for h in records.iter().take(50) {
        assert!(!text.contains(&h.latitude.to_string()), "{text:.300}");
    }

    // Every answer and refusal is audited under the licence.
    let log: String = std::fs::read_dir(audit_dir(&pki))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let answers = log
        .lines()
        .filter(|l| l.contains("\"licence\":\"agg-stats\"") && l.contains("\"decision\":\"allow\""))
        .count();
    assert_eq!(answers, 3, "{log:.2000}");
    assert!(log.contains("field-not-aggregable"));
    gw.shutdown().await;
}

const DP_LICENCE: &str = r#"
[[licences]]
id = "agg-dp"
licensee = "stats-office"
dataset = "fire-hydrants"
scenario = "fire-hydrant-adoption"
valid_from = "2025-01-01T00:00:00Z"
valid_until = "2035-01-01T00:00:00Z"
mode = "aggregate"
fields = {}
rate = { per_second = 1000, burst = 1000 }
aggregate = { group_by = ["district", "status"], measures = ["latitude"], k = 11, dp = { epsilon = 0.5, budget_per_day = 2.0, clamp = { lower = 30, upper = 32 } } }
"#;

/// A replica with its own PKI and state, sharing Redis under `prefix`.
async fn replica(up: std::net::SocketAddr, prefix: &str) -> (Pki, sluice_agency::gateway::Running) {
    let pki = Pki::new();
    let path = sluice_tests::write_config(&pki, up, DP_LICENCE, "");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[limits]\n",
        &format!("[limits]\nredis_url = \"redis://127.0.0.1:6379\"\nredis_prefix = {prefix:?}\n"),
    );
    std::fs::write(&path, text).unwrap();
    (pki, sluice_agency::gateway::Gateway::start(&path).await.unwrap())
}

#[tokio::test]
async fn a_privacy_budget_is_one_across_replicas_and_repeated_questions_cost_nothing() {
    let up = Upstream::start().await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("sluice-test-dp-{nanos}");
    let (pki_a, a) = replica(up.addr, &prefix).await;
    let (pki_b, b) = replica(up.addr, &prefix).await;
    let tls = |pki: &Pki| {
        let (cert, key) = pki.licensee("stats-office");
        tls_config(&pki.ca_pem(), Some((&cert, &key)))
    };
    let (tls_a, tls_b) = (tls(&pki_a), tls(&pki_b));
    let ask = |tls: &std::sync::Arc<rustls::ClientConfig>, addr, q: &str| {
        let (tls, q) = (tls.clone(), q.to_owned());
        async move {
            get(&tls, addr, &format!("{AGGREGATE}?{q}"), &[SCENARIO])
                .await
                .unwrap()
        }
    };
    // Four different questions spend the day's 2.0 at 0.5 each, across both replicas.
    let questions = [
        "group_by=district",
        "group_by=status",
        "group_by=district&metric=sum(latitude)",
        "metric=count",
    ];
    let mut answers = Vec::new();
    for (i, q) in questions.iter().enumerate() {
        let (tls, addr) = if i % 2 == 0 {
            (&tls_a, a.data_addr)
        } else {
            (&tls_b, b.data_addr)
        };
        let r = ask(tls, addr, q).await;
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        let body = r.json();
        assert_eq!(body["noise"]["epsilon"].as_f64(), Some(0.5), "{body}");
        answers.push(r.text());
    }
    // The noisy counts stay near the released ones (scale 1/ε = 2 per count).
    let exact: u64 = base_cells(&generate())
        .values()
        .filter(|v| v.len() >= 11)
        .map(|v| v.len() as u64)
        .sum();
    let total: Value = serde_json::from_str(&answers[3]).unwrap();
    let noisy = total["cells"][0]["count"].as_u64().unwrap();
    assert!(noisy.abs_diff(exact) < 60, "{noisy} vs {exact}");
    // The fifth question finds the shared budget spent, on either replica.
    for (tls, addr) in [(&tls_a, a.data_addr), (&tls_b, b.data_addr)] {
        let r = ask(tls, addr, "group_by=district&metric=avg(latitude)").await;
        assert_eq!(r.problem(), "privacy-budget-exhausted", "{}", r.text());
        assert!(r.headers.contains_key("retry-after"));
    }
    // A question asked before gets the same noisy answer again, from either replica, free.
    for (tls, addr) in [(&tls_a, a.data_addr), (&tls_b, b.data_addr)] {
        let r = ask(tls, addr, questions[0]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), answers[0]);
    }
    // Minimum and maximum have no bounded sensitivity: refused before anything is spent.
    let r = ask(&tls_a, a.data_addr, "group_by=district&metric=min(latitude)").await;
    assert_eq!(r.problem(), "field-not-aggregable", "{}", r.text());
    // ε spent is in the audit, per answer: 0.5 twice at each replica, none for repeats.
    for pki in [&pki_a, &pki_b] {
        let log: String = std::fs::read_dir(audit_dir(pki))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        assert_eq!(log.matches("\"epsilon\":0.5").count(), 2, "{log:.3000}");
    }
    a.shutdown().await;
    b.shutdown().await;
}

//! SQL sources through a real gateway: the same register served by an HTTP API, a SQLite file,
//! the machine's PostgreSQL and its MariaDB gives the same bytes under the same licence; keyset
//! pages follow `Link: rel="next"` through the whole filtered, ordered data once and the last
//! page has no link; cursors are sealed, bound to the licence, dataset and order; offsets,
//! unknown parameters, filters on masked fields and injections in values and identifier
//! positions (select, order, filter names) are refused or inert, on every database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sluice::demo::source::SampleSource;
use sluice::demo::utilities::{self, UtilityUse};
use sluice_tests::client::{admin_get, get, tls_config, Reply};
use sluice_tests::upstream::Upstream;
use sluice_tests::{start_gateway, Pki};

const SCENARIO: (&str, &str) = ("sluice-scenario", "green-credit-scoring");
const HTTP: &str = "/v1/datasets/enterprise-utilities/records";
const SQL: &str = "/v1/datasets/enterprise-utilities-db/records";
const PG: &str = "/v1/datasets/enterprise-utilities-pg/records";
const MY: &str = "/v1/datasets/enterprise-utilities-my/records";

fn licence(id: &str, dataset: &str) -> String {
    format!(
        r#"
[[licences]]
id = "{id}"
licensee = "acme"
dataset = "{dataset}"
scenario = "green-credit-scoring"
valid_from = "2025-01-01T00:00:00Z"
valid_until = "2035-01-01T00:00:00Z"
row_filter = "district = 'Pudong'"
rate = {{ per_second = 1000, burst = 1000 }}
fields.credit_code = {{ rule = "clear" }}
fields.enterprise_name = {{ rule = "clear" }}
fields.district = {{ rule = "clear" }}
fields.month = {{ rule = "clear" }}
fields.industry_code = {{ rule = "clear" }}
fields.electricity_kwh = {{ rule = "clear" }}
fields.water_m3 = {{ rule = "clear" }}
fields.contact_phone = {{ rule = "partial", first = 3, last = 4 }}
fields.tariff_cny_per_kwh = {{ rule = "clear" }}
"#
    )
}

struct Setup {
    _pki: Pki,
    _http: SampleSource,
    gw: sluice_agency::gateway::Running,
    tls: std::sync::Arc<rustls::ClientConfig>,
    register: Vec<UtilityUse>,
    /// The register's table in PostgreSQL and MariaDB (dropped on drop).
    table: String,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let table = self.table.clone();
        // A fresh thread with its own runtime: drop runs inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((c, conn)) = tokio_postgres::connect(PG_URL, tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    let _ = c.batch_execute(&format!("DROP TABLE IF EXISTS {table}")).await;
                }
                if let Ok(mut c) = <sqlx::MySqlConnection as sqlx::Connection>::connect(MY_URL).await {
                    let _ = sqlx::Executor::execute(&mut c, format!("DROP TABLE IF EXISTS {table}").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const MY_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// The register as multi-row `INSERT` statements for `table` (values as SQL literals: the
/// generated register holds no quote, checked here).
fn inserts(table: &str, register: &[UtilityUse]) -> Vec<String> {
    register
        .chunks(500)
        .enumerate()
        .map(|(c, chunk)| {
            let rows: Vec<String> = chunk
                .iter()
                .enumerate()
                .map(|(i, u)| {
                    // A literal: quotes doubled; no backslash (MySQL would read it as an escape).
                    let q = |t: &str| {
                        assert!(!t.contains('\\'), "{t}");
                        format!("'{}'", t.replace('\'', "''"))
                    };
                    format!(
                        "('{:05}', {}, {}, {}, {}, {}, {}, {:?}, {}, {}, {:?})",
                        c * 500 + i,
                        q(&u.credit_code),
                        q(&u.enterprise_name),
                        q(u.district),
                        q(&u.address),
                        q(u.industry_code),
                        q(&u.month),
                        u.water_m3,
                        u.electricity_kwh,
                        q(&u.contact_phone),
                        u.tariff_cny_per_kwh
                    )
                })
                .collect();
            format!("INSERT INTO {table} VALUES {}", rows.join(", "))
        })
        .collect()
}

/// Loads the register into PostgreSQL and MariaDB as `table`.
async fn load_servers(table: &str, register: &[UtilityUse]) {
    let columns = |text: &str, float: &str, int: &str| {
        format!(
            "(use_id {text} PRIMARY KEY, credit_code {text}, enterprise_name {text}, district {text}, \
             address {text}, industry_code {text}, month {text}, water_m3 {float}, electricity_kwh {int}, \
             contact_phone {text}, tariff_cny_per_kwh {float})"
        )
    };
    let (pg, conn) = tokio_postgres::connect(PG_URL, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    pg.batch_execute(&format!(
        "CREATE TABLE {table} {}",
        columns("text", "double precision", "bigint")
    ))
    .await
    .unwrap();
    let mut my = <sqlx::MySqlConnection as sqlx::Connection>::connect(MY_URL)
        .await
        .unwrap();
    sqlx::Executor::execute(
        &mut my,
        format!(
            "CREATE TABLE {table} {} CHARACTER SET utf8mb4",
            columns("varchar(200)", "double", "bigint")
        )
        .as_str(),
    )
    .await
    .unwrap();
    for insert in inserts(table, register) {
        pg.batch_execute(&insert).await.unwrap();
        sqlx::Executor::execute(&mut my, insert.as_str()).await.unwrap();
    }
}

async fn setup() -> Setup {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let http = SampleSource::start_utilities("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let register = utilities::generate();
    let db = pki.dir.path().join("utilities.sqlite");
    utilities::write_sqlite(&db, &register).unwrap();
    // The same dataset twice: from the bureau's HTTP API and from its database.
    let datasets = sluice::demo::config::UTILITIES_DATASETS;
    let db_dataset = datasets.replace(
        "id = \"enterprise-utilities\"",
        "id = \"enterprise-utilities-db\"",
    );
    let sqlite = sluice::demo::config::utilities_sources(&db)
        .replace("sources.enterprise-utilities", "sources.enterprise-utilities-db");
    // The same register in PostgreSQL and MariaDB, read through their connectors.
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let table = format!(
        "sluice_e2e_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    load_servers(&table, &register).await;
    let server_table = |kind: &str, url: &str, id: &str| {
        sqlite
            .replace("sources.enterprise-utilities-db", &format!("sources.{id}"))
            .replace(
                "kind = \"sqlite\"",
                &format!("kind = \"{kind}\"\nurl = \"{url}\""),
            )
            .lines()
            .filter(|l| !l.starts_with("path = "))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("name = \"enterprise_use\"", &format!("name = \"{table}\""))
    };
    let servers = format!(
        "{}\n{}\n",
        server_table("postgres", PG_URL, "enterprise-utilities-pg"),
        server_table("mysql", MY_URL, "enterprise-utilities-my")
    );
    let server_datasets = ["pg", "my"]
        .map(|k| {
            datasets.replace(
                "id = \"enterprise-utilities\"",
                &format!("id = \"enterprise-utilities-{k}\""),
            )
        })
        .join("\n");
    let extra = format!(
        r#"
[sources.enterprise-utilities]
kind = "http"
url = "{url}"
query_allow = ["district", "month"]
filter_params = {{ district = "district", month = "month" }}
{sqlite}{servers}{datasets}{db_dataset}{server_datasets}"#,
        url = http.url(),
    );
    let licences = format!(
        "{}{}{}{}",
        licence("l-http", "enterprise-utilities"),
        licence("l-sql", "enterprise-utilities-db"),
        licence("l-pg", "enterprise-utilities-pg"),
        licence("l-my", "enterprise-utilities-my")
    );
    let gw = start_gateway(&pki, up.addr, &licences, &extra).await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    Setup {
        _pki: pki,
        _http: http,
        gw,
        tls,
        register,
        table,
    }
}

async fn fetch(s: &Setup, path: &str) -> Reply {
    get(&s.tls, s.gw.data_addr, path, &[SCENARIO]).await.unwrap()
}

fn problem_type(r: &Reply) -> String {
    assert_eq!(r.status, 400, "{:?}", r.body);
    let t = r.json()["type"].as_str().unwrap().to_owned();
    t.rsplit('/').next().unwrap().to_owned()
}

/// The `?…` of the `Link: rel="next"` target, if any.
fn next_query(r: &Reply) -> Option<String> {
    let link = r.headers.get("link")?.to_str().unwrap().to_owned();
    let target = link
        .strip_prefix('<')
        .unwrap()
        .split_once('>')
        .unwrap()
        .0
        .to_owned();
    Some(target.split_once('?').unwrap().1.to_owned())
}

#[tokio::test]
async fn an_http_source_and_a_sqlite_source_of_the_same_register_give_the_same_bytes() {
    let s = setup().await;
    for q in [
        "limit=100",
        "limit=100&format=ndjson",
        "limit=100&format=csv",
        "limit=30&district=eq.Pudong&month=eq.2025-07&format=csv",
        "limit=50&select=credit_code,contact_phone,water_m3&month=eq.2025-03",
    ] {
        let http = fetch(&s, &format!("{HTTP}?{q}")).await;
        assert_eq!(http.status, 200, "{q}: {:?}", http.body);
        let http = http.body.unwrap();
        assert!(http.len() > 100, "{q}");
        for source in [SQL, PG, MY] {
            let sql = fetch(&s, &format!("{source}?{q}")).await;
            assert_eq!(sql.status, 200, "{source}?{q}: {:?}", sql.body);
            assert_eq!(
                String::from_utf8_lossy(&sql.body.unwrap()),
                String::from_utf8_lossy(&http),
                "{source}?{q}: the same licence, the same bytes"
            );
        }
    }
    // And what they hold: Pudong only, phones masked, the trade secret never.
    let page = fetch(&s, &format!("{SQL}?limit=100")).await.json();
    let page = page.as_array().unwrap();
    assert_eq!(page.len(), 100);
    for u in page {
        assert_eq!(u["district"], "Pudong");
        assert_eq!(&u["contact_phone"].as_str().unwrap()[3..7], "****", "{u}");
        assert!(
            u.get("tariff_cny_per_kwh").is_none() && u.get("use_id").is_none(),
            "{u}"
        );
    }
}

#[tokio::test]
async fn keyset_pages_walk_the_filtered_ordered_data_once_and_the_last_has_no_link() {
    let s = setup().await;
    for source in [SQL, PG, MY] {
        keyset_walk(&s, source).await;
    }
}

async fn keyset_walk(s: &Setup, source: &str) {
    let mut want: Vec<&UtilityUse> = s
        .register
        .iter()
        .filter(|u| u.district == "Pudong" && u.month == "2025-07" && u.industry_code != "C2710")
        .collect();
    // Electricity descending, then the key (the register's order) ascending.
    want.sort_by_key(|u| std::cmp::Reverse(u.electricity_kwh));
    assert!(want.len() > 7, "{}", want.len());
    let mut query = "limit=7&order=electricity_kwh.desc&month=eq.2025-07&industry_code=neq.C2710&select=credit_code,electricity_kwh"
        .to_owned();
    let mut got: Vec<Value> = Vec::new();
    let mut pages = 0;
    let mut first_next = None;
    loop {
        pages += 1;
        assert!(pages < 50, "pages do not end");
        let r = fetch(s, &format!("{source}?{query}")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let recs = r.json().as_array().unwrap().clone();
        let next = next_query(&r);
        match next {
            Some(n) => {
                assert_eq!(recs.len(), 7, "a page with a next page is full");
                assert!(!n.contains("offset") && n.contains("after="), "{n}");
                first_next.get_or_insert_with(|| n.clone());
                query = n;
            }
            None => {
                assert!(
                    !recs.is_empty() && recs.len() <= 7,
                    "the last page holds the rest"
                );
                got.extend(recs);
                break;
            }
        }
        got.extend(recs);
    }
    let kwh: Vec<u64> = got
        .iter()
        .map(|u| u["electricity_kwh"].as_u64().unwrap())
        .collect();
    let want_kwh: Vec<u64> = want.iter().map(|u| u.electricity_kwh).collect();
    assert_eq!(kwh, want_kwh, "{source}: every row once, in order");
    let codes: Vec<&str> = got.iter().map(|u| u["credit_code"].as_str().unwrap()).collect();
    let want_codes: Vec<&str> = want.iter().map(|u| u.credit_code.as_str()).collect();
    assert_eq!(codes, want_codes);

    // The cursor is sealed: it hides the key, opens only unaltered and for the same order.
    let next = first_next.unwrap();
    let cursor = url::form_urlencoded::parse(next.as_bytes())
        .find(|(k, _)| k == "after")
        .unwrap()
        .1
        .into_owned();
    assert!(!cursor.contains("000"), "{cursor}");
    let mut bent = cursor.clone().into_bytes();
    bent[20] = if bent[20] == b'A' { b'B' } else { b'A' };
    let bent = String::from_utf8(bent).unwrap();
    for q in [
        next.replace(&cursor, &bent),
        next.replace("electricity_kwh.desc", "electricity_kwh.asc"),
    ] {
        let r = fetch(s, &format!("{source}?{q}")).await;
        assert_eq!(problem_type(&r), "bad-request", "{q}");
    }
    // The same cursor for the HTTP dataset is no cursor there either.
    let r = fetch(s, &format!("{HTTP}?{next}")).await;
    assert_eq!(problem_type(&r), "bad-request");
}

#[tokio::test]
async fn offsets_unknown_parameters_and_filters_on_masked_fields_are_refused() {
    let s = setup().await;
    for source in [SQL, PG, MY] {
        refusals(&s, source).await;
    }
}

async fn refusals(s: &Setup, source: &str) {
    for (q, want) in [
        ("offset=7", "bad-request"),
        ("month=2025-07", "bad-request"),
        ("contact_phone=eq.13800138000", "field-not-filterable"),
        ("order=contact_phone.asc", "field-not-filterable"),
        ("tariff_cny_per_kwh=gt.0.7", "field-not-filterable"),
        ("use_id=eq.00001", "field-not-filterable"),
        ("month=eq.x%27%3B%20DROP%20TABLE%20enterprise_use%3B--", "ok"),
        ("month=in.(%22a%22,%22b%27)%20OR%201%3D1--%22)", "ok"),
        ("district=like.*%27%20OR%20%271%27%3D%271", "ok"),
        // Identifier positions: select, order, a filter's name.
        (
            "select=credit_code,month%22%3B%20DROP%20TABLE%20x%3B--",
            "bad-request",
        ),
        ("select=credit_code,%60month%60", "bad-request"),
        ("order=month%22%20DESC%3B--.asc", "bad-request"),
        ("order=month.asc%3BDROP", "bad-request"),
        ("month%22%3D1%20OR%201%3D1--=eq.x", "bad-request"),
        ("or=(month.eq.2025-07,district.eq.Xuhui)", "bad-request"),
    ] {
        let r = fetch(s, &format!("{source}?{q}")).await;
        if want == "ok" {
            assert_eq!(r.status, 200, "{q}: {:?}", r.body);
            assert_eq!(r.json(), serde_json::json!([]), "{q}");
        } else {
            assert_eq!(problem_type(&r), want, "{q}");
        }
    }
    // The table is still there.
    let r = fetch(s, &format!("{source}?limit=1")).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
}

/// `/readyz` names every source with its health and pool; `/metrics` counts what sources
/// read, how long they took to answer and their pools; a source that fails is named failing
/// (with its error) while the gateway stays ready for the others.
#[tokio::test]
async fn readyz_and_metrics_report_each_source() {
    let s = setup().await;
    let ready = admin_get(s.gw.admin_addr, "/readyz").await;
    assert!(
        ready.contains("source enterprise-utilities-db: no page yet; pool 0 of 4 open, 0 idle"),
        "{ready}"
    );
    let r = fetch(&s, &format!("{SQL}?limit=5")).await;
    assert_eq!(r.status, 200);
    let ready = admin_get(s.gw.admin_addr, "/readyz").await;
    assert!(
        ready.contains("\nready\n") || ready.contains("\r\n\r\nready\n"),
        "{ready}"
    );
    assert!(
        ready.contains("source enterprise-utilities-db: ok for "),
        "{ready}"
    );
    assert!(ready.contains("pool 1 of 4 open, 1 idle"), "{ready}");
    assert!(
        ready.contains("source enterprise-utilities: no page yet\n"),
        "{ready}"
    );
    let metrics = admin_get(s.gw.admin_addr, "/metrics").await;
    for want in [
        "sluice_source_pool_connections{dataset=\"enterprise-utilities-db\",state=\"max\"} 4",
        "sluice_source_pool_connections{dataset=\"enterprise-utilities-db\",state=\"open\"} 1",
        "sluice_source_records_total{dataset=\"enterprise-utilities-db\"} 5",
        "sluice_source_first_output_seconds_count{dataset=\"enterprise-utilities-db\"} 1",
    ] {
        assert!(metrics.contains(want), "{want} not in {metrics}");
    }
    // The table goes away: the source is named failing, with the error; still ready.
    let db = s._pki.dir.path().join("utilities.sqlite");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("DROP TABLE enterprise_use")
        .unwrap();
    let r = fetch(&s, &format!("{SQL}?limit=5&order=month.desc")).await;
    assert_eq!(r.status, 502, "{:?}", r.body);
    let ready = admin_get(s.gw.admin_addr, "/readyz").await;
    assert!(
        ready.contains("source enterprise-utilities-db: failing for "),
        "{ready}"
    );
    assert!(
        ready.contains("(1 failures): source query failed: no such table"),
        "{ready}"
    );
}

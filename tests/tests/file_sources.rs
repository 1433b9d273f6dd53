//! File sources through a real gateway: a CSV file and a Parquet file of the same records,
//! filtered in the stream and paged by offset into the filtered records (`Link: rel="next"`),
//! give every matching record once, in file order, the same bytes from both, and the last
//! page has no link.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use sluice_tests::client::{get, tls_config, Reply};
use sluice_tests::upstream::Upstream;
use sluice_tests::{start_gateway, Pki};
use std::path::Path;
use std::sync::Arc;

const SCENARIO: (&str, &str) = ("sluice-scenario", "park-planning");

/// 50 parks: `P00`…`P49`, districts A, B, C in turn, visitors `i * 7`.
fn parks() -> Vec<(String, &'static str, i64)> {
    (0..50)
        .map(|i| (format!("P{i:02}"), ["A", "B", "C"][i % 3], i as i64 * 7))
        .collect()
}

fn write_csv(path: &Path) {
    let mut out = String::from("id,district,visitors\n");
    for (id, d, v) in parks() {
        out.push_str(&format!("{id},{d},{v}\n"));
    }
    std::fs::write(path, out).unwrap();
}

fn write_parquet(path: &Path) {
    let schema = Arc::new(
        parse_message_type(
            "message parks { required binary id (UTF8); required binary district (UTF8); required int64 visitors; }",
        )
        .unwrap(),
    );
    let props = Arc::new(WriterProperties::builder().build());
    let mut w = SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
    let rows = parks();
    let mut g = w.next_row_group().unwrap();
    let ids: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r.0.as_str())).collect();
    let districts: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r.1)).collect();
    let visitors: Vec<i64> = rows.iter().map(|r| r.2).collect();
    let mut c = g.next_column().unwrap().unwrap();
    c.typed::<ByteArrayType>().write_batch(&ids, None, None).unwrap();
    c.close().unwrap();
    let mut c = g.next_column().unwrap().unwrap();
    c.typed::<ByteArrayType>()
        .write_batch(&districts, None, None)
        .unwrap();
    c.close().unwrap();
    let mut c = g.next_column().unwrap().unwrap();
    c.typed::<Int64Type>().write_batch(&visitors, None, None).unwrap();
    c.close().unwrap();
    g.close().unwrap();
    w.close().unwrap();
}

fn dataset(id: &str) -> String {
    format!(
        r#"
[[datasets]]
id = "{id}"
title = "Parks"
fields = [
  {{ name = "id", scan = false }},
  {{ name = "district", scan = false }},
  {{ name = "visitors", scan = false }},
]

[[licences]]
id = "l-{id}"
licensee = "acme"
dataset = "{id}"
scenario = "park-planning"
valid_from = "2025-01-01T00:00:00Z"
valid_until = "2035-01-01T00:00:00Z"
rate = {{ per_second = 1000, burst = 1000 }}
fields.id = {{ rule = "clear" }}
fields.district = {{ rule = "clear" }}
fields.visitors = {{ rule = "clear" }}
"#
    )
}

/// Follows `Link: rel="next"` from `first`; the records of every page and the pages' sizes.
async fn walk(
    tls: &Arc<rustls::ClientConfig>,
    gw: std::net::SocketAddr,
    first: &str,
) -> (Vec<String>, Vec<usize>) {
    let mut path = first.to_owned();
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..30 {
        let r: Reply = get(tls, gw, &path, &[SCENARIO]).await.unwrap();
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        let page = r.json();
        let page = page.as_array().unwrap();
        sizes.push(page.len());
        ids.extend(page.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        match r.headers.get("link") {
            Some(l) => {
                let l = l.to_str().unwrap();
                path = l.strip_prefix('<').unwrap().split_once('>').unwrap().0.to_owned();
            }
            None => return (ids, sizes),
        }
    }
    panic!("pages do not end");
}

#[tokio::test]
async fn csv_and_parquet_files_page_through_their_filtered_records_once() {
    let pki = Pki::new();
    let up = Upstream::start().await;
    let (csv, pq) = (
        pki.dir.path().join("parks.csv"),
        pki.dir.path().join("parks.parquet"),
    );
    write_csv(&csv);
    write_parquet(&pq);
    let extra = format!(
        r#"
[sources.parks-csv]
kind = "csv"
path = "parks.csv"

[sources.parks-pq]
kind = "parquet"
path = "parks.parquet"
{}{}"#,
        dataset("parks-csv"),
        dataset("parks-pq")
    );
    let gw = start_gateway(&pki, up.addr, "", &extra).await;
    let (cert, key) = pki.licensee("acme");
    let tls = tls_config(&pki.ca_pem(), Some((&cert, &key)));
    // District B: 17 of the 50 parks. Pages of 4: 4 × 4 and a last page of 1 without a link.
    let want: Vec<String> = parks().into_iter().filter(|p| p.1 == "B").map(|p| p.0).collect();
    for ds in ["parks-csv", "parks-pq"] {
        let (ids, sizes) = walk(
            &tls,
            gw.data_addr,
            &format!("/v1/datasets/{ds}/records?limit=4&district=eq.B"),
        )
        .await;
        assert_eq!(ids, want, "{ds}");
        assert_eq!(sizes, [4, 4, 4, 4, 1], "{ds}");
        // 16 parks with visitors ≥ 238: the fourth page is full, so it links an empty last page.
        let (ids, sizes) = walk(
            &tls,
            gw.data_addr,
            &format!("/v1/datasets/{ds}/records?limit=4&visitors=gte.238"),
        )
        .await;
        assert_eq!(ids.len(), 16, "{ds}");
        assert_eq!(
            sizes,
            [4, 4, 4, 4, 0],
            "{ds}: an empty page without a link is the end"
        );
    }
    // The same records from both kinds, byte for byte.
    let a = get(
        &tls,
        gw.data_addr,
        "/v1/datasets/parks-csv/records?limit=50&format=csv",
        &[SCENARIO],
    )
    .await
    .unwrap();
    let b = get(
        &tls,
        gw.data_addr,
        "/v1/datasets/parks-pq/records?limit=50&format=csv",
        &[SCENARIO],
    )
    .await
    .unwrap();
    assert_eq!(a.body.unwrap(), b.body.unwrap());
}

use super::*;
use crate::audit::{AuditLog, AuditOptions, AuditRecord};
use sluice_policy::mask::fingerprint::Marker;
use sluice_policy::mask::PseudonymKey;
use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
use sluice_policy::stream::{InputFormat, Masker, MaskerLimits, OutputFormat};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

const MASTER: &[u8] = b"trace test master key, 32 bytes or more";
const LICENSEES: [&str; 5] = ["acme", "globex", "initech", "umbrella", "hooli"];

/// A gateway config whose `parks` dataset has a record key and two tolerant fields, with a
/// licence for each of [`LICENSEES`], and its master key in the state folder.
fn config(dir: &Path) -> Config {
    let mut text = crate::config::tests::base(dir).replace(
        "[[datasets]]\nid = \"parks\"\nfields = [{ name = \"name\" }, { name = \"area\" }]",
        "[[datasets]]\nid = \"parks\"\nrecord_key = \"id\"\nfields = [{ name = \"id\" }, \
         { name = \"lat\", fingerprint = { tolerance = 0.0001 } }, \
         { name = \"lon\", fingerprint = { tolerance = 0.0001 } }, { name = \"name\" }]",
    );
    for l in LICENSEES {
        text += &format!(
            "\n[[licences]]\nid = \"lic-{l}\"\nlicensee = \"{l}\"\ndataset = \"parks\"\nscenario = \"s\"\n\
             valid_from = \"2026-01-01T00:00:00Z\"\nvalid_until = \"2027-01-01T00:00:00Z\"\n\
             fields = {{ id = {{ rule = \"clear\" }}, lat = {{ rule = \"clear\" }}, lon = {{ rule = \"clear\" }}, name = {{ rule = \"clear\" }} }}\n"
        );
    }
    let path = dir.join("gw.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    std::fs::create_dir_all(&config.gateway.state_dir).unwrap();
    std::fs::write(config.gateway.state_dir.join("pseudonym.key"), MASTER).unwrap();
    config
}

/// The source's records `from..to`.
fn source(from: usize, to: usize) -> String {
    let recs: Vec<String> = (from..to)
        .map(|i| {
            format!(
                r#"{{"id":"P-{i}","lat":{:.6},"lon":{:.6},"name":"Park {i}"}}"#,
                31.1 + i as f64 * 0.0137,
                121.3 + i as f64 * 0.0071
            )
        })
        .collect();
    format!("[{}]", recs.join(","))
}

/// What the gateway serves `licensee` (its marks, as the decision plans them) and the digest
/// of the records served.
fn served(licensee: &str, doc: &str) -> (String, ServedDigest) {
    let marker = Arc::new(Marker {
        key: FingerprintKey::derive(MASTER, licensee, "parks"),
        tolerance: Tolerance::parse("0.0001").unwrap(),
        record_key: "id".into(),
    });
    let field = |name: &str, action: FieldAction| PlannedField {
        name: name.into(),
        action,
    };
    let plan = FieldPlan {
        fields: vec![
            field("id", FieldAction::Emit { scan: true }),
            field(
                "lat",
                FieldAction::Fingerprint {
                    marker: marker.clone(),
                    scan: true,
                },
            ),
            field("lon", FieldAction::Fingerprint { marker, scan: true }),
            field("name", FieldAction::Emit { scan: true }),
        ],
        row_filter: None,
        key: PseudonymKey::derive(MASTER, licensee, "parks"),
        record_key: Some("id".into()),
        marks: None,
    };
    let mut m = Masker::new(
        Arc::new(plan),
        InputFormat::JsonArray,
        OutputFormat::Json,
        MaskerLimits::default(),
    );
    let mut out = Vec::new();
    m.feed(doc.as_bytes(), &mut out).unwrap();
    m.finish(&mut out).unwrap();
    (String::from_utf8(out).unwrap(), m.served().unwrap())
}

/// Audits a response of `parks` served to `licensee`, as the data plane does.
async fn audit(log: &AuditLog, licensee: &str, digest: &ServedDigest) {
    log.append(AuditRecord {
        request_id: format!("r-{licensee}"),
        licensee: Some(licensee.into()),
        dataset: Some("parks".into()),
        decision: "allow".into(),
        status: 200,
        method: "GET".into(),
        path: "/v1/datasets/parks/records".into(),
        served: Some(digest.encode()),
        ..AuditRecord::default()
    })
    .await
    .unwrap();
}

/// Each licensee downloaded its own 60 records of the 300 (acme: 0..60, globex: 60..120, …),
/// and acme and globex also downloaded records 240..300.
async fn federation(dir: &Path) -> (Config, Vec<String>) {
    let config = config(dir);
    let log = AuditLog::open(&config.gateway.state_dir.join("audit"), AuditOptions::default())
        .await
        .unwrap();
    let mut copies = Vec::new();
    for (i, l) in LICENSEES.iter().enumerate() {
        let (copy, digest) = served(l, &source(i * 60, i * 60 + 60));
        audit(&log, l, &digest).await;
        copies.push(copy);
    }
    for l in ["acme", "globex"] {
        let (_, digest) = served(l, &source(240, 300));
        audit(&log, l, &digest).await;
    }
    log.close().await.unwrap();
    (config, copies)
}

/// The leak as CSV: some columns, reordered, a subset of the records.
fn as_csv(json: &str, take: usize) -> String {
    let recs: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
    let mut out = String::from("lon,id,lat\n");
    for r in recs.iter().rev().take(take) {
        out += &format!("{},{},{}\n", r["lon"], r["id"].as_str().unwrap(), r["lat"]);
    }
    out
}

#[tokio::test]
async fn a_leaked_copy_names_its_licensee_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let (config, copies) = federation(dir.path()).await;
    let key = read_master_key(&config).unwrap();
    let ndjson: String = serde_json::from_str::<Vec<serde_json::Value>>(&copies[2])
        .unwrap()
        .iter()
        .map(|r| format!("{r}\n"))
        .collect();
    for (who, leak) in [
        ("acme", copies[0].clone()),
        ("globex", as_csv(&copies[1], 20)),
        ("initech", ndjson),
        ("umbrella", format!(r#"{{"data":{}}}"#, copies[3])),
    ] {
        let r = trace(&config, &key, None, leak.as_bytes()).unwrap();
        assert_eq!(r.verdict, "named", "{who}: {r:?}");
        assert_eq!(r.licensee.as_deref(), Some(who), "{r:?}");
        assert!(r.p_value.unwrap() <= DEFAULT_ALPHA, "{r:?}");
        assert_eq!(r.candidates.len(), LICENSEES.len());
        // Only the records a candidate received count: nobody else received these, so the
        // others read only the digests' false positives (about 1 % per response), and those
        // match by chance.
        let others = r.candidates.iter().filter(|c| c.licensee != who);
        assert!(
            others
                .clone()
                .all(|c| c.marks * 6 < r.marks_used && c.p_value > 1e-3),
            "{r:?}"
        );
        assert!(r.marks_used >= 40, "{r:?}");
    }
}

#[tokio::test]
async fn records_two_licensees_received_are_told_apart_by_their_marks() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = federation(dir.path()).await;
    let key = read_master_key(&config).unwrap();
    let (globex_copy, _) = served("globex", &source(240, 300));
    let r = trace(&config, &key, Some("parks"), as_csv(&globex_copy, 30).as_bytes()).unwrap();
    assert_eq!(r.licensee.as_deref(), Some("globex"), "{r:?}");
    let acme = r.candidates.iter().find(|c| c.licensee == "acme").unwrap();
    assert_eq!(acme.marks, 60, "acme received these records too: {r:?}");
    assert!(acme.p_value > 1e-3, "{r:?}");
}

#[tokio::test]
async fn data_that_did_not_come_through_the_gateway_names_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = federation(dir.path()).await;
    let key = read_master_key(&config).unwrap();
    // The source's own values (an insider at the agency, or another channel), and the same
    // records nudged at random within the tolerance.
    let raw = source(0, 300);
    let r = trace(&config, &key, None, raw.as_bytes()).unwrap();
    assert_eq!(r.verdict, "cannot-tell", "{r:?}");
    assert!(r.licensee.is_none());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let nudged: Vec<String> = (0..300)
        .map(|i| {
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 10_000) as f64 / 1e8 - 0.00005
            };
            format!(
                r#"{{"id":"P-{i}","lat":{:.8},"lon":{:.8}}}"#,
                31.1 + i as f64 * 0.0137 + next(),
                121.3 + i as f64 * 0.0071 + next()
            )
        })
        .collect();
    let r = trace(&config, &key, None, format!("[{}]", nudged.join(",")).as_bytes()).unwrap();
    assert_eq!(r.verdict, "cannot-tell", "{r:?}");
}

#[test]
fn bad_leaks_and_datasets_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    for bad in ["", "[1,2", "{\"a\":1}\n{oops\n"] {
        assert!(
            matches!(
                trace(&config, MASTER, None, bad.as_bytes()),
                Err(TraceError::Leak(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        trace(&config, MASTER, Some("nope"), b"[]"),
        Err(TraceError::UnknownDataset(_))
    ));
    assert!(matches!(
        trace(&config, MASTER, None, b"name,area\nx,1\n"),
        Err(TraceError::NoDataset(_))
    ));
    let mut plain = config.clone();
    plain.datasets[0].record_key = None;
    assert!(matches!(
        trace(&plain, MASTER, Some("parks"), b"[]"),
        Err(TraceError::NotFingerprinted(_))
    ));
}

/// The federation's config with the parks register in an NDJSON file the gateway reads (a real
/// file source), each park with an owner.
fn config_with_file_source(dir: &Path) -> Config {
    config(dir);
    let path = dir.join("gw.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "kind = \"http\"\nurl = \"http://127.0.0.1:9/parks\"",
            "kind = \"ndjson\"\npath = \"parks.ndjson\"",
        )
        .replace(
            "{ name = \"name\" }]",
            "{ name = \"name\" }, { name = \"owner\" }]",
        );
    std::fs::write(&path, text).unwrap();
    let records: String = (0..300)
        .map(|i| format!("{{\"id\":\"P-{i}\",\"lat\":31.{i:04},\"lon\":121.{i:04},\"name\":\"Park {i}\",\"owner\":\"Owner {i}\"}}\n"))
        .collect();
    std::fs::write(dir.join("parks.ndjson"), records).unwrap();
    Config::load(&path).unwrap()
}

#[tokio::test]
async fn one_leaked_row_with_its_pseudonym_names_the_licensee() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_file_source(dir.path());
    let key = read_master_key(&config).unwrap();
    // globex's copy of park 7's row: the owner pseudonymised with globex's key, no coordinates.
    let pseudonym = PseudonymKey::derive(MASTER, "globex", "parks").pseudonym(b"Owner 7");
    let leak = format!("id,owner\nP-7,{pseudonym}\n");
    let read = Leak::read(&config, Some("parks"), leak.as_bytes()).unwrap();
    assert_eq!(read.pseudonymised_keys(), HashSet::from(["P-7".to_owned()]));
    let originals = originals(&config, read.dataset(), &read.pseudonymised_keys())
        .await
        .unwrap();
    assert_eq!(originals["P-7"]["owner"], "Owner 7");
    let r = trace_leak(&config, &key, &read, &originals).unwrap();
    assert_eq!(r.verdict, "named", "{r:?}");
    assert_eq!(r.licensee.as_deref(), Some("globex"), "{r:?}");
    assert!(r.p_value.unwrap() < 1e-30, "{r:?}");
    assert_eq!(r.pseudonyms_checked, 1);
    // A pseudonym no candidate computed (another gateway's key, or made up) names nobody.
    let other =
        PseudonymKey::derive(b"another gateway's master key....", "globex", "parks").pseudonym(b"Owner 7");
    let read = Leak::read(
        &config,
        Some("parks"),
        format!("id,owner\nP-7,{other}\n").as_bytes(),
    )
    .unwrap();
    let r = trace_leak(&config, &key, &read, &originals).unwrap();
    assert_eq!(r.verdict, "cannot-tell", "{r:?}");
    // Without the source's values there is nothing to check the pseudonym against.
    let r = trace_leak(&config, &key, &read, &Originals::new()).unwrap();
    assert_eq!((r.verdict, r.pseudonyms_checked), ("cannot-tell", 0), "{r:?}");
}

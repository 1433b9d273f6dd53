//! Leak tracing (`sluice trace`): reads a leaked copy of a dataset, scores every licensee who
//! holds or held a licence for it against the fingerprint marks its copy would carry, and names
//! one only when the evidence is strong ([`sluice_policy::mask::fingerprint`]).
//!
//! The candidates are the licensees of the gateway's licences for the dataset (its config and
//! the persisted registry snapshot) and every licensee its audit log shows was served the
//! dataset. A candidate's score reads only the leaked records its served-record digests hold
//! ([`sluice_policy::served`]): records it never received cannot carry its marks. A candidate
//! with no digest (served before digests existed, or never) is scored on every record.

use crate::audit::{query, AuditError, Filter};
use crate::config::Config;
use crate::subscription::Subscription;
use serde::Serialize;
use sluice_policy::catalog::DatasetSpec;
use sluice_policy::mask::fingerprint::{
    verdict, Evidence, FingerprintKey, Observation, Tolerance, Verdict, DEFAULT_ALPHA,
};
use sluice_policy::mask::PseudonymKey;
use sluice_policy::served::ServedDigest;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

/// Why a trace could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The leaked file is not JSON, NDJSON or CSV records.
    #[error("cannot read the leaked file: {0}")]
    Leak(String),
    /// No dataset was given and none of the gateway's fingerprinted datasets has the leak's
    /// key and tolerant columns.
    #[error("cannot tell which dataset the leak is from: give --dataset ({0})")]
    NoDataset(String),
    /// The dataset named is not one of the gateway's.
    #[error("the gateway has no dataset {0:?}")]
    UnknownDataset(String),
    /// The dataset declares no record key or no tolerant field: its copies carry no marks.
    #[error("dataset {0:?} declares no record_key and fingerprint-tolerant fields: nothing to trace")]
    NotFingerprinted(String),
    /// The gateway's master key cannot be read.
    #[error("cannot read the master key {path}: {source}")]
    MasterKey {
        /// Where the key was looked for.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The audit log cannot be read.
    #[error("cannot read the audit log: {0}")]
    Audit(#[from] AuditError),
    /// The dataset's source could not be read for the originals behind leaked pseudonyms.
    #[error("cannot read the dataset's source: {0}")]
    Source(String),
}

/// The chance that a given text equals a licensee's pseudonym of a value without being it:
/// 2⁻¹²⁸ (pseudonyms carry 128 bits of HMAC-SHA256).
const PSEUDONYM_CHANCE: f64 = 1.0 / (1u128 << 127) as f64 / 2.0;

/// One candidate's evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// The licensee.
    pub licensee: String,
    /// Marked values of records it received, read from the leak.
    pub marks: u32,
    /// Those that lie on its lattice.
    pub matches: u32,
    /// P(at least `matches` of `marks`) if the leak did not come from it (not adjusted for the
    /// number of candidates).
    pub p_value: f64,
    /// Responses of the dataset its audit records show it received.
    pub responses: u64,
    /// Leaked pseudonyms that are this licensee's pseudonyms of the source's values.
    pub pseudonyms: u32,
}

/// What `sluice trace` concludes.
#[derive(Debug, Clone, Serialize)]
pub struct TraceReport {
    /// `"named"` or `"cannot-tell"`.
    pub verdict: &'static str,
    /// The licensee named.
    pub licensee: Option<String>,
    /// The named licensee's p-value multiplied by the number of candidates (Bonferroni).
    pub p_value: Option<f64>,
    /// Marked values the named (or best) candidate's score read.
    pub marks_used: u32,
    /// Leaked pseudonyms checked against the source's values (each against every candidate).
    pub pseudonyms_checked: u32,
    /// The dataset traced.
    pub dataset: String,
    /// Records read from the leak.
    pub records: usize,
    /// The family-wise threshold a verdict must meet.
    pub alpha: f64,
    /// Every candidate, best first.
    pub candidates: Vec<Candidate>,
}

/// Reads the gateway's master key without creating one (a gateway that never ran has none).
pub fn read_master_key(config: &Config) -> Result<Vec<u8>, TraceError> {
    let path = config
        .gateway
        .master_key_file
        .clone()
        .unwrap_or_else(|| config.gateway.state_dir.join("pseudonym.key"));
    std::fs::read(&path).map_err(|source| TraceError::MasterKey { path, source })
}

/// The source's records behind leaked rows, by record key (every field's text).
pub type Originals = HashMap<String, Row>;

/// Whether a text is a pseudonym as sluice writes them: `p_` and 22 base64url characters
/// (128 bits of HMAC-SHA256).
fn is_pseudonym(text: &str) -> bool {
    text.len() == 24
        && text.starts_with("p_")
        && text[2..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What `sluice trace` needs before scoring: the leak's rows, its dataset, and the record keys
/// of rows holding pseudonyms (whose source values [`originals`] reads).
pub struct Leak<'c> {
    rows: Vec<Row>,
    spec: &'c DatasetSpec,
}

impl<'c> Leak<'c> {
    /// Reads the leaked file and picks its dataset (given, or told from its columns).
    pub fn read(config: &'c Config, dataset: Option<&str>, leak: &[u8]) -> Result<Self, TraceError> {
        let rows = read_leak(leak)?;
        let spec = pick_dataset(config, dataset, &rows)?;
        Ok(Self { rows, spec })
    }

    /// Record keys of the leaked rows that hold pseudonyms: tracing them needs the source's
    /// values.
    pub fn pseudonymised_keys(&self) -> HashSet<String> {
        let Some(key) = self.spec.record_key.as_deref() else {
            return HashSet::new();
        };
        self.rows
            .iter()
            .filter(|r| r.iter().any(|(f, v)| f != key && is_pseudonym(v)))
            .filter_map(|r| r.get(key).cloned())
            .collect()
    }

    /// The dataset traced.
    pub fn dataset(&self) -> &DatasetSpec {
        self.spec
    }
}

/// Reads the source's records whose keys are in `keys` (every declared field, in the clear, as
/// the masker reads them), through the dataset's connector. Nothing leaves the machine.
pub async fn originals(
    config: &Config,
    dataset: &DatasetSpec,
    keys: &HashSet<String>,
) -> Result<Originals, TraceError> {
    use crate::data_plane::scan::{member_text, scan, Scan};
    use sluice_policy::plan::{FieldAction, FieldPlan, PlannedField};
    let mut out = Originals::new();
    let (Some(key), Some(source)) = (dataset.record_key.as_deref(), config.sources.get(&dataset.id)) else {
        return Ok(out);
    };
    if keys.is_empty() {
        return Ok(out);
    }
    let shared = sluice_connectors::Shared::for_sources(config.sources.values());
    let connector = sluice_connectors::connect(source, &shared);
    let plan = std::sync::Arc::new(FieldPlan {
        fields: dataset
            .fields
            .iter()
            .map(|f| PlannedField {
                name: f.name.clone(),
                action: FieldAction::Emit { scan: false },
            })
            .collect(),
        row_filter: None,
        key: sluice_policy::mask::PseudonymKey::derive(b"", "", ""),
        record_key: None,
        marks: None,
    });
    let query = sluice_policy::query::ClientQuery::default();
    let read = Scan {
        plan,
        row_filter: None,
        query: &query,
        request_id: "sluice-trace",
    };
    let names: Vec<&str> = dataset.fields.iter().map(|f| f.name.as_str()).collect();
    scan(connector.as_ref(), &config.limits, &read, |line| {
        let rec: HashMap<String, Box<serde_json::value::RawValue>> =
            serde_json::from_slice(line).map_err(|e| e.to_string())?;
        if let Some(k) = member_text(&rec, key).filter(|k| keys.contains(k)) {
            let row: Row = names
                .iter()
                .filter_map(|n| Some(((*n).to_owned(), member_text(&rec, n)?)))
                .collect();
            out.insert(k, row);
        }
        Ok::<(), String>(())
    })
    .await
    .map_err(|e| TraceError::Source(format!("{e:?}")))?;
    Ok(out)
}

/// Traces `leak` (the file's bytes) against the gateway's licensees for `dataset`, or for the
/// fingerprinted dataset whose columns the leak has.
pub fn trace(
    config: &Config,
    master_key: &[u8],
    dataset: Option<&str>,
    leak: &[u8],
) -> Result<TraceReport, TraceError> {
    trace_leak(
        config,
        master_key,
        &Leak::read(config, dataset, leak)?,
        &Originals::new(),
    )
}

/// Traces a leak read with [`Leak::read`]; `originals` holds the source's records behind its
/// pseudonymised rows ([`originals`]), so that a pseudonym names the licensee it was computed
/// for (a chance match has probability 2⁻¹²⁸).
pub fn trace_leak(
    config: &Config,
    master_key: &[u8],
    leak: &Leak<'_>,
    originals: &Originals,
) -> Result<TraceReport, TraceError> {
    let (rows, spec) = (&leak.rows, leak.spec);
    let (key_field, tolerant) = match marked_fields(spec) {
        Ok(m) => m,
        // A dataset without marks can still be traced by its pseudonyms.
        Err(e) if originals.is_empty() => return Err(e),
        Err(_) => (spec.record_key.as_deref().unwrap_or_default(), Vec::new()),
    };
    // (record key, field, leaked pseudonym, the source's value)
    let pseudonyms: Vec<(&str, &str, &str)> = rows
        .iter()
        .filter_map(|r| Some((r, originals.get(r.get(key_field)?)?)))
        .flat_map(|(r, orig)| {
            r.iter()
                .filter(|(f, v)| f.as_str() != key_field && is_pseudonym(v))
                .filter_map(move |(f, v)| Some((f.as_str(), v.as_str(), orig.get(f)?.as_str())))
        })
        .collect();
    let observations: Vec<Observation<'_>> = rows
        .iter()
        .filter_map(|r| Some((r.get(key_field)?, r)))
        .flat_map(|(key, r)| {
            tolerant.iter().filter_map(move |(f, _)| {
                Some(Observation {
                    record_key: key.as_bytes(),
                    field: f,
                    value: r.get(*f)?,
                })
            })
        })
        .collect();
    let served = served_digests(config, &spec.id)?;
    let mut licensees: Vec<String> = served.keys().cloned().collect();
    licensees.extend(licence_holders(config, &spec.id));
    licensees.sort();
    licensees.dedup();

    let mut candidates = Vec::with_capacity(licensees.len());
    let mut scores = Vec::with_capacity(licensees.len());
    for licensee in licensees {
        let digests = served.get(&licensee).map(Vec::as_slice).unwrap_or_default();
        let received =
            |o: &Observation<'_>| digests.is_empty() || digests.iter().any(|d| d.contains(o.record_key));
        let evidence = Evidence::new(&tolerant, observations.iter().copied().filter(received));
        let mut score = evidence.score(&FingerprintKey::derive(master_key, &licensee, &spec.id));
        let pkey = PseudonymKey::derive(master_key, &licensee, &spec.id);
        let named_by_pseudonym = pseudonyms
            .iter()
            .filter(|(_, leaked, original)| pkey.pseudonym(original.as_bytes()) == *leaked)
            .count() as u32;
        if named_by_pseudonym > 0 {
            // Another key's pseudonym, or a made-up one, equals this licensee's with
            // probability 2^-128 per value checked.
            score.p_value = score.p_value.min(PSEUDONYM_CHANCE * pseudonyms.len() as f64);
        }
        scores.push(score);
        candidates.push(Candidate {
            licensee,
            marks: score.marks,
            matches: score.matches,
            p_value: score.p_value,
            responses: digests.len() as u64,
            pseudonyms: named_by_pseudonym,
        });
    }
    let (verdict_text, licensee, p_value, marks_used) = match verdict(&scores, DEFAULT_ALPHA) {
        Verdict::Named { candidate, p_value } => (
            "named",
            Some(candidates[candidate].licensee.clone()),
            Some(p_value),
            candidates[candidate].marks,
        ),
        Verdict::CannotTell => {
            let best = scores
                .iter()
                .min_by(|a, b| a.p_value.total_cmp(&b.p_value))
                .map_or(0, |s| s.marks);
            ("cannot-tell", None, None, best)
        }
    };
    candidates.sort_by(|a, b| {
        a.p_value
            .total_cmp(&b.p_value)
            .then_with(|| a.licensee.cmp(&b.licensee))
    });
    Ok(TraceReport {
        verdict: verdict_text,
        licensee,
        p_value,
        marks_used,
        pseudonyms_checked: pseudonyms.len() as u32,
        dataset: spec.id.clone(),
        records: rows.len(),
        alpha: DEFAULT_ALPHA,
        candidates,
    })
}

/// A dataset's record key and its tolerant fields with their tolerances.
type MarkedFields<'a> = (&'a str, Vec<(&'a str, Tolerance)>);

/// The record key and the tolerant fields of a dataset whose copies carry marks.
fn marked_fields(spec: &DatasetSpec) -> Result<MarkedFields<'_>, TraceError> {
    let tolerant: Vec<(&str, Tolerance)> = spec
        .fields
        .iter()
        .filter_map(|f| Some((f.name.as_str(), f.fingerprint?.tolerance()?)))
        .collect();
    match spec.record_key.as_deref() {
        Some(k) if !tolerant.is_empty() => Ok((k, tolerant)),
        _ => Err(TraceError::NotFingerprinted(spec.id.clone())),
    }
}

/// The dataset named, or the one fingerprinted dataset whose key and a tolerant field are
/// among the leak's columns.
fn pick_dataset<'c>(
    config: &'c Config,
    dataset: Option<&str>,
    rows: &[Row],
) -> Result<&'c DatasetSpec, TraceError> {
    if let Some(d) = dataset {
        return config
            .datasets
            .iter()
            .find(|s| s.id == d)
            .ok_or_else(|| TraceError::UnknownDataset(d.to_owned()));
    }
    let has = |c: &str| rows.iter().any(|r| r.contains_key(c));
    let fits: Vec<&DatasetSpec> = config
        .datasets
        .iter()
        .filter(|s| marked_fields(s).is_ok_and(|(k, t)| has(k) && t.iter().any(|(f, _)| has(f))))
        .collect();
    match fits.as_slice() {
        [one] => Ok(one),
        [] => Err(TraceError::NoDataset(
            "no fingerprinted dataset has the leak's columns".into(),
        )),
        many => Err(TraceError::NoDataset(format!(
            "{} fit: {}",
            many.len(),
            many.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Licensees of the gateway's licences for the dataset: its config's and the persisted
/// registry snapshot's, in any state (a revoked licence's holder may have leaked before).
fn licence_holders(config: &Config, dataset: &str) -> Vec<String> {
    let mut out: Vec<String> = config
        .licences
        .iter()
        .filter(|l| l.dataset == dataset)
        .map(|l| l.licensee.clone())
        .collect();
    if let Some(r) = &config.registry {
        if let Some(snap) = Subscription::open(r, &config.gateway.state_dir)
            .ok()
            .and_then(|s| s.current())
        {
            out.extend(
                snap.licences
                    .iter()
                    .filter(|l| l.dataset == dataset)
                    .map(|l| l.licensee.clone()),
            );
        }
    }
    out
}

/// The served-record digests of the dataset's allowed responses, per licensee. A response
/// without a digest (no records, or written before digests existed) adds none.
fn served_digests(config: &Config, dataset: &str) -> Result<HashMap<String, Vec<ServedDigest>>, TraceError> {
    let dir = config.gateway.state_dir.join("audit");
    let mut out: HashMap<String, Vec<ServedDigest>> = HashMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    let filter = Filter {
        dataset: Some(dataset.to_owned()),
        decision: Some("allow".into()),
        ..Filter::default()
    };
    for r in query(&dir, &filter)? {
        let Some(licensee) = r.licensee else { continue };
        let digests = out.entry(licensee).or_default();
        if let Some(d) = r.served.as_deref().and_then(|t| ServedDigest::decode(t).ok()) {
            digests.push(d);
        }
    }
    Ok(out)
}

/// One leaked record: its columns' texts (strings as they are, numbers as written).
pub type Row = BTreeMap<String, String>;

/// Reads a leaked file: a JSON array of records, an object holding one (e.g. `{"data": […]}`),
/// NDJSON, or CSV with a header row.
pub fn read_leak(bytes: &[u8]) -> Result<Vec<Row>, TraceError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    match start.map(|i| bytes[i]) {
        None => Err(TraceError::Leak("the file is empty".into())),
        Some(b'[') => {
            let v: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| TraceError::Leak(e.to_string()))?;
            Ok(json_rows(&v))
        }
        Some(b'{') => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(serde_json::Value::Object(o)) => Ok(o
                .values()
                .find(|v| v.is_array())
                .map(json_rows)
                .unwrap_or_else(|| json_rows(&serde_json::Value::Array(vec![o.clone().into()])))),
            _ => bytes
                .split(|b| *b == b'\n')
                .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
                .map(|l| {
                    serde_json::from_slice::<serde_json::Value>(l)
                        .map_err(|e| TraceError::Leak(format!("NDJSON: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|v| json_rows(&serde_json::Value::Array(v))),
        },
        Some(_) => csv_rows(bytes),
    }
}

fn json_rows(v: &serde_json::Value) -> Vec<Row> {
    let Some(items) = v.as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|r| r.as_object())
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Number(n) => n.to_string(),
                        _ => return None,
                    };
                    Some((k.clone(), text))
                })
                .collect()
        })
        .collect()
}

fn csv_rows(bytes: &[u8]) -> Result<Vec<Row>, TraceError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| TraceError::Leak(format!("CSV: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| TraceError::Leak(format!("CSV: {e}")))?;
        rows.push(
            header
                .iter()
                .zip(record.iter())
                .filter(|(_, v)| !v.is_empty())
                .map(|(h, v)| (h.clone(), v.to_owned()))
                .collect(),
        );
    }
    Ok(rows)
}

#[cfg(test)]
mod tests;

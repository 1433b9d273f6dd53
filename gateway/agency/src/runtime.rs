//! The runtime: everything a request needs that comes from config, compiled once per load and
//! swapped whole on reload.

use crate::config::Config;
use bytes::Bytes;
use serde::Serialize;
use sluice_connectors::{connect, Connector, Shared};
use sluice_policy::classify::{Grades, OpenCategory};
use sluice_policy::decide::Measures;
use sluice_policy::snapshot::Snapshot;
use sluice_policy::PolicySet;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Config compiled for the request path.
pub struct Runtime {
    /// The config it was built from.
    pub config: Config,
    /// Datasets, licences and measures indexed for decisions.
    pub policy: PolicySet,
    /// `/v1/catalog` body on the data listener.
    pub catalog: Bytes,
    /// `/v1/catalog` body on the public listener (unconditional datasets only).
    pub public_catalog: Bytes,
    /// Client certificate serials the registry revoked (lower-case hex, no leading zeros).
    pub revoked_serials: HashSet<String>,
    /// Revision of the registry snapshot in force, if any.
    pub snapshot_revision: Option<u64>,
    /// The connector of each dataset's source.
    pub sources: HashMap<String, Arc<dyn Connector>>,
    /// Seals keyset cursors (a key derived from the master key).
    pub cursor: Arc<crate::data_plane::cursor::CursorSeal>,
}

impl Runtime {
    /// Compiles a validated config. `master_key` derives pseudonym keys. When `[registry]` is
    /// configured, the `snapshot`'s licences replace the local ones (none before the first
    /// snapshot) and its measures add to the config's. Connectors share `shared` (the HTTP
    /// pool).
    pub fn build(config: Config, master_key: &[u8], snapshot: Option<&Snapshot>, shared: &Shared) -> Self {
        let mut measures = Measures {
            closed_datasets: config.closed_datasets.iter().cloned().collect(),
            ..Measures::default()
        };
        let licences = match snapshot {
            Some(s) => {
                measures.closed_datasets.extend(s.closed_datasets.iter().cloned());
                measures.all_conditional_closed = s.all_conditional_closed;
                measures.restricted_licensees = s
                    .restricted_licensees
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                measures.record_marks = s
                    .record_marks
                    .iter()
                    .filter(|(_, m)| !m.is_empty())
                    .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
                    .collect();
                for d in &config.datasets {
                    if d.record_key.is_none() && measures.record_marks.contains_key(&d.id) {
                        tracing::error!(
                            dataset = %d.id,
                            "the registry suppresses or disputes records of this dataset, which declares no record_key to find them by: it is refused as closed until it does"
                        );
                    }
                }
                // Only licences for the datasets this gateway serves are compiled (the rest
                // are skipped there), so only those are copied: a city's snapshot carries
                // every agency's licences (200,000 copied took 140–230 ms per change).
                let served: HashSet<&str> = config.datasets.iter().map(|d| d.id.as_str()).collect();
                s.licences
                    .iter()
                    .filter(|l| served.contains(l.dataset.as_str()))
                    .map(|l| sluice_policy::licence::Licence::clone(l))
                    .collect()
            }
            // With a registry, only its licences count: none until a snapshot arrives.
            None if config.registry.is_some() => Vec::new(),
            None => config.licences.clone(),
        };
        let policy = PolicySet::compile(
            &config.datasets,
            licences,
            &config.classification,
            measures,
            master_key,
        );
        let revoked_serials = snapshot
            .map(|s| s.revoked_serials.iter().map(|x| normalise_serial(x)).collect())
            .unwrap_or_default();
        let sources = config
            .sources
            .iter()
            .map(|(id, c)| (id.clone(), connect(c, shared)))
            .collect();
        let catalog = catalog_json(&config, false);
        let public_catalog = catalog_json(&config, true);
        Self {
            config,
            policy,
            catalog,
            public_catalog,
            revoked_serials,
            snapshot_revision: snapshot.map(|s| s.revision),
            sources,
            cursor: Arc::new(crate::data_plane::cursor::CursorSeal::new(master_key)),
        }
    }
}

/// Serials compare as lower-case hex without leading zeros, like `Identity::serial_hex`.
pub fn normalise_serial(serial: &str) -> String {
    let s = serial.trim().to_ascii_lowercase();
    let s = s.trim_start_matches('0');
    if s.is_empty() {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// The catalog document. Typed, so that its member order is the order written here in every
/// build (a `json!` map's order depends on serde_json's `preserve_order` feature, which
/// workspace test builds enable and the release binary does not).
#[derive(Serialize)]
struct CatalogDoc<'a> {
    gateway: &'a str,
    datasets: Vec<CatalogDataset<'a>>,
}

#[derive(Serialize)]
struct CatalogDataset<'a> {
    id: &'a str,
    title: &'a str,
    owner: &'a str,
    update_frequency: &'a str,
    version: u32,
    grades: &'a Grades,
    open_category: OpenCategory,
    closed: bool,
    records_url: String,
    fields: Vec<CatalogField<'a>>,
}

#[derive(Serialize)]
struct CatalogField<'a> {
    name: &'a str,
    description: &'a str,
    grades: &'a Grades,
    open_category: OpenCategory,
    requires_masking: bool,
    /// Licensees' clear copies carry fingerprint marks moving values by at most half this.
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint_tolerance: Option<f64>,
}

fn catalog_json(config: &Config, public_only: bool) -> Bytes {
    let rules = &config.classification;
    let datasets = config
        .datasets
        .iter()
        .filter(|d| !public_only || d.category(rules) == OpenCategory::Unconditional)
        .map(|d| CatalogDataset {
            id: &d.id,
            title: &d.title,
            owner: &d.owner,
            update_frequency: &d.update_frequency,
            version: d.version,
            grades: &d.grades,
            open_category: d.category(rules),
            closed: config.closed_datasets.contains(&d.id),
            records_url: format!("/v1/datasets/{}/records", d.id),
            fields: d
                .fields
                .iter()
                .filter(|f| !public_only || rules.category(&f.grades) == OpenCategory::Unconditional)
                .map(|f| CatalogField {
                    name: &f.name,
                    description: &f.description,
                    grades: &f.grades,
                    open_category: rules.category(&f.grades),
                    requires_masking: rules.requires_masking(&f.grades),
                    fingerprint_tolerance: f.fingerprint.map(|fp| fp.tolerance),
                })
                .collect(),
        })
        .collect();
    let doc = CatalogDoc {
        gateway: &config.gateway.id,
        datasets,
    };
    Bytes::from(serde_json::to_vec_pretty(&doc).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_the_licences_of_served_datasets_are_taken_from_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::from_toml(
            &crate::config::tests::base(dir.path()),
            &dir.path().join("gw.toml"),
        )
        .unwrap();
        let licence = |id: &str, dataset: &str| -> sluice_policy::licence::Licence {
            serde_json::from_value(serde_json::json!({
                "id": id, "licensee": "acme", "dataset": dataset, "scenario": "s",
                "fields": { "id": { "rule": "clear" } },
                "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2036-01-01T00:00:00Z",
            }))
            .unwrap()
        };
        // A city's snapshot: this gateway serves `parks`, another agency `permits`.
        let snapshot = Snapshot {
            revision: 7,
            issued_at: 0,
            licences: vec![
                licence("l-parks", "parks").into(),
                licence("l-permits", "permits").into(),
            ],
            closed_datasets: vec![],
            all_conditional_closed: false,
            restricted_licensees: Default::default(),
            revoked_serials: vec![],
            ..Snapshot::default()
        };
        let shared = Shared::for_sources(config.sources.values());
        let rt = Runtime::build(config, b"master", Some(&snapshot), &shared);
        assert_eq!(rt.policy.licence_count(), 1, "the served dataset's licence, only");
    }

    #[test]
    fn the_catalog_members_come_in_one_order_in_every_build() {
        let dir = tempfile::tempdir().unwrap();
        let text = crate::config::tests::base(dir.path());
        let config = Config::from_toml(&text, &dir.path().join("gw.toml")).unwrap();
        let doc = String::from_utf8(catalog_json(&config, false).to_vec()).unwrap();
        let at = |key: &str| {
            doc.find(&format!("\"{key}\":"))
                .unwrap_or_else(|| panic!("{key} in {doc}"))
        };
        // Not alphabetical (serde_json's default map order): the order of the document's
        // description, dataset before fields, id first.
        let order = [
            "gateway",
            "datasets",
            "id",
            "title",
            "owner",
            "update_frequency",
            "version",
            "open_category",
            "closed",
            "records_url",
            "fields",
            "name",
            "description",
            "requires_masking",
        ];
        for pair in order.windows(2) {
            assert!(at(pair[0]) < at(pair[1]), "{} before {}: {doc}", pair[0], pair[1]);
        }
    }
}

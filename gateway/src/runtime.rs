//! The runtime: everything a request needs that comes from config, compiled once per load and
//! swapped whole on reload.

use crate::config::Config;
use bytes::Bytes;
use serde_json::json;
use sluice_policy::classify::OpenCategory;
use sluice_policy::decide::Measures;
use sluice_policy::PolicySet;

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
}

impl Runtime {
    /// Compiles a validated config. `master_key` derives pseudonym keys.
    pub fn build(config: Config, master_key: &[u8]) -> Self {
        let measures = Measures {
            closed_datasets: config.closed_datasets.iter().cloned().collect(),
            ..Measures::default()
        };
        let policy = PolicySet::compile(
            &config.datasets,
            config.licences.iter().cloned(),
            &config.classification,
            measures,
            master_key,
        );
        let catalog = catalog_json(&config, false);
        let public_catalog = catalog_json(&config, true);
        Self {
            config,
            policy,
            catalog,
            public_catalog,
        }
    }
}

fn catalog_json(config: &Config, public_only: bool) -> Bytes {
    let rules = &config.classification;
    let datasets: Vec<_> = config
        .datasets
        .iter()
        .filter(|d| !public_only || d.category(rules) == OpenCategory::Unconditional)
        .map(|d| {
            let fields: Vec<_> = d
                .fields
                .iter()
                .filter(|f| !public_only || rules.category(&f.grades) == OpenCategory::Unconditional)
                .map(|f| {
                    json!({
                        "name": f.name,
                        "description": f.description,
                        "grades": f.grades,
                        "open_category": rules.category(&f.grades),
                        "requires_masking": rules.requires_masking(&f.grades),
                    })
                })
                .collect();
            json!({
                "id": d.id,
                "title": d.title,
                "owner": d.owner,
                "update_frequency": d.update_frequency,
                "version": d.version,
                "grades": d.grades,
                "open_category": d.category(rules),
                "closed": config.closed_datasets.contains(&d.id),
                "records_url": format!("/v1/datasets/{}/records", d.id),
                "fields": fields,
            })
        })
        .collect();
    let doc = json!({ "gateway": config.gateway.id, "datasets": datasets });
    Bytes::from(serde_json::to_vec_pretty(&doc).unwrap_or_default())
}

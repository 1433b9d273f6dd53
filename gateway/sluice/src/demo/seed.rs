//! Filling the demo registry through its admin API, as an administrator would with `sluice
//! admin`: both agencies and their gateways, the licensees (with valid unified social credit
//! codes), the catalog of both agencies, the scenarios, a fusion rule across the agencies, and
//! the licences (the same validation as `sluice admin grant`; one completes the fusion rule and
//! is granted on an expert review). Every step is an audited admin change.

use super::config::{FIRE, UTILITIES};
use anyhow::Context;
use serde_json::{json, Value};
use sluice_net::registry_client::{RegistryClient, Reply};
use sluice_policy::catalog::DatasetSpec;
use sluice_registry::credit_code::check_char;

/// A licensee the demo registers.
pub struct DemoLicensee {
    /// Id, as in its certificate.
    pub id: &'static str,
    /// Registered name.
    pub name: &'static str,
    /// The first 17 characters of its credit code; the check character is computed.
    pub code17: &'static str,
}

/// The registered licensees.
pub const LICENSEES: &[DemoLicensee] = &[
    DemoLicensee {
        id: super::ACME,
        name: "Acme Insurance (Shanghai) Co., Ltd.",
        code17: "91310101MA1K4AC0M",
    },
    DemoLicensee {
        id: super::MAPS,
        name: "City Maps Technology Co., Ltd.",
        code17: "91310104MA1G8MAP0",
    },
    DemoLicensee {
        id: super::GREEN_BANK,
        name: "Pudong Green Credit Bank Co., Ltd.",
        code17: "91310115MA1H2GB7N",
    },
    DemoLicensee {
        id: super::STATS,
        name: "Shanghai Municipal Statistics Bureau",
        code17: "11310000002431427",
    },
];

/// The declared scenarios: id, title, what the data is used for, the dataset covered.
pub const SCENARIOS: &[(&str, &str, &str, &str)] = &[
    (
        "fire-hydrant-adoption",
        "Hydrant adoption insurance",
        "insuring volunteers who adopt a hydrant",
        "fire-hydrants",
    ),
    (
        "map-overlay",
        "Hydrant map overlay",
        "showing hydrants on a public city map",
        "fire-hydrants",
    ),
    (
        "crew-routing",
        "Inspection crew routing",
        "routing hydrant inspection crews to the exact hydrant",
        "fire-hydrants",
    ),
    (
        "property-underwriting",
        "Commercial property underwriting",
        "pricing enterprise property insurance by activity level",
        "enterprise-utilities",
    ),
    (
        "district-statistics",
        "District statistics",
        "publishing water and power use by district and month",
        "enterprise-utilities",
    ),
    (
        "green-credit-scoring",
        "Green credit scoring",
        "scoring borrowers' energy and water intensity for green loans",
        "enterprise-utilities",
    ),
];

/// A fusion rule across the two agencies: who adopts a hydrant (name, mobile) together with
/// enterprises' addresses and power use could locate adopters' businesses.
pub const FUSION_RULE: &str = "hydrant-adopters-and-enterprise-power";

/// The expert review under which `lic-acme-underwriting` completes [`FUSION_RULE`].
pub const EXPERT_REVIEW: &str = "ER-DEMO-2025-017";

/// A demo licence: its id, licensee, dataset, scenario and the gateway that enforces it.
pub struct DemoLicence {
    /// Licence id.
    pub id: &'static str,
    /// Licensee.
    pub licensee: &'static str,
    /// Dataset.
    pub dataset: &'static str,
    /// Scenario.
    pub scenario: &'static str,
}

/// The granted licences (see [`grant_body`] for their fields and masking rules).
pub const LICENCES: &[DemoLicence] = &[
    DemoLicence {
        id: "lic-acme-adoption",
        licensee: super::ACME,
        dataset: "fire-hydrants",
        scenario: "fire-hydrant-adoption",
    },
    DemoLicence {
        id: "lic-maps-overlay",
        licensee: super::MAPS,
        dataset: "fire-hydrants",
        scenario: "map-overlay",
    },
    DemoLicence {
        id: "lic-maps-routing",
        licensee: super::MAPS,
        dataset: "fire-hydrants",
        scenario: "crew-routing",
    },
    DemoLicence {
        id: "lic-acme-underwriting",
        licensee: super::ACME,
        dataset: "enterprise-utilities",
        scenario: "property-underwriting",
    },
    DemoLicence {
        id: "lic-stats-districts",
        licensee: super::STATS,
        dataset: "enterprise-utilities",
        scenario: "district-statistics",
    },
    DemoLicence {
        id: "lic-greenbank-scoring",
        licensee: super::GREEN_BANK,
        dataset: "enterprise-utilities",
        scenario: "green-credit-scoring",
    },
];

/// A licensee's full credit code.
pub fn credit_code(l: &DemoLicensee) -> anyhow::Result<String> {
    let check =
        check_char(l.code17).with_context(|| format!("credit code of {}: bad first 17 characters", l.id))?;
    Ok(format!("{}{check}", l.code17))
}

/// The grant request of a demo licence.
pub fn grant_body(l: &DemoLicence) -> Value {
    let (fields, extra) = match l.id {
        "lic-acme-adoption" => (
            json!({
                "id": { "rule": "clear" },
                "district": { "rule": "clear" },
                "street": { "rule": "clear" },
                "latitude": { "rule": "decimals", "places": 3 },
                "longitude": { "rule": "decimals", "places": 3 },
                "status": { "rule": "clear" },
                "last_inspection": { "rule": "month" },
                "adopter_name": { "rule": "partial", "first": 1, "last": 0 },
                "adopter_mobile": { "rule": "partial", "first": 3, "last": 4 },
                "notes": { "rule": "clear" },
            }),
            // High enough for the load harness (tests/load/run.sh).
            json!({
                "rate": { "per_second": 50000, "burst": 100000 },
                "quota": { "requests_per_day": 100_000_000u64, "records_per_day": 10_000_000_000u64 },
            }),
        ),
        "lic-maps-overlay" => (
            json!({
                "id": { "rule": "clear" },
                "district": { "rule": "clear" },
                "latitude": { "rule": "grid", "cell": 0.01 },
                "longitude": { "rule": "grid", "cell": 0.01 },
                "status": { "rule": "clear" },
                "adopter_name": { "rule": "pseudonym" },
            }),
            json!({
                "row_filter": "district = 'Huangpu'",
                "rate": { "per_second": 5, "burst": 10 },
                "quota": { "requests_per_day": 1000, "records_per_day": 50000 },
            }),
        ),
        // Crews need the exact hydrant: coordinates unrounded, so this copy carries the maps
        // company's fingerprint marks; no adopter data.
        "lic-maps-routing" => (
            json!({
                "id": { "rule": "clear" },
                "district": { "rule": "clear" },
                "street": { "rule": "clear" },
                "latitude": { "rule": "clear" },
                "longitude": { "rule": "clear" },
                "status": { "rule": "clear" },
            }),
            json!({
                "rate": { "per_second": 20, "burst": 40 },
                "quota": { "requests_per_day": 10000, "records_per_day": 1000000 },
            }),
        ),
        // The insurer sees which region and industry, and how much, but not who in the clear.
        "lic-acme-underwriting" => (
            json!({
                "credit_code": { "rule": "partial", "first": 8, "last": 0 },
                "enterprise_name": { "rule": "pseudonym" },
                "district": { "rule": "clear" },
                "industry_code": { "rule": "clear" },
                "month": { "rule": "clear" },
                "water_m3": { "rule": "decimals", "places": 0 },
                "electricity_kwh": { "rule": "range", "width": 10000 },
                "contact_phone": { "rule": "drop" },
            }),
            // Completes the fusion rule with the adoption licence: granted on expert review.
            json!({
                "rate": { "per_second": 50, "burst": 100 },
                "quota": { "requests_per_day": 100000, "records_per_day": 10000000 },
                "expert_review": EXPERT_REVIEW,
            }),
        ),
        // The statistics office gets aggregates only (the data sandbox): grouped by district
        // and month, cells of fewer than 11 enterprises suppressed, no record. (By industry as
        // well, the demo's 240 enterprises would leave almost every cell below 11.)
        "lic-stats-districts" => (
            json!({}),
            json!({
                "mode": "aggregate",
                "aggregate": {
                    "group_by": ["district", "month"],
                    "measures": ["water_m3", "electricity_kwh"],
                    "k": 11,
                },
                "rate": { "per_second": 10, "burst": 20 },
            }),
        ),
        // The bank scores Pudong enterprises it lends to: identities in the clear, phone masked.
        _ => (
            json!({
                "credit_code": { "rule": "clear" },
                "enterprise_name": { "rule": "clear" },
                "district": { "rule": "clear" },
                "address": { "rule": "clear" },
                "industry_code": { "rule": "clear" },
                "month": { "rule": "clear" },
                "water_m3": { "rule": "clear" },
                "electricity_kwh": { "rule": "clear" },
                "contact_phone": { "rule": "partial", "first": 3, "last": 4 },
            }),
            json!({
                "row_filter": "district = 'Pudong'",
                "rate": { "per_second": 20, "burst": 40 },
                "quota": { "requests_per_day": 10000, "records_per_day": 1000000 },
            }),
        ),
    };
    let mut body = json!({
        "id": l.id,
        "licensee": l.licensee,
        "dataset": l.dataset,
        "scenario": l.scenario,
        "fields": fields,
        "valid_from": "2025-01-01T00:00:00Z",
        "valid_until": "2030-01-01T00:00:00Z",
        "reason": "sluice demo",
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// The revision a change produced, from its `Sluice-Revision` header.
fn created(what: &str, r: &Reply) -> anyhow::Result<u64> {
    if !r.status.is_success() {
        anyhow::bail!("registry refused {what}: {} {}", r.status, r.json());
    }
    r.headers
        .get("sluice-revision")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{what}: no sluice-revision header"))
}

/// The data-use agreement of the hydrant register, which applicants accept.
pub const HYDRANT_AGREEMENT: &str = "Data-use agreement for the fire hydrant register.\n\
1. Use the data only for the scenario licensed.\n\
2. Do not try to identify adopters beyond what the licence shows.\n\
3. Do not pass the data on; keep it no longer than the licence runs.\n\
4. Report any leak to the Shanghai Fire and Rescue Bureau within 24 hours.\n";

/// Registers agencies, gateways, licensees, datasets (each with its owning agency),
/// scenarios, a fusion rule, the licences and the hydrant register's agreement; returns the
/// registry's revision afterwards.
pub async fn seed(admin: &RegistryClient, datasets: &[(DatasetSpec, &str)]) -> anyhow::Result<u64> {
    let mut revision = 0;
    let reason = "sluice demo";
    for gw in [&FIRE, &UTILITIES] {
        let body = json!({ "id": gw.agency_id, "name": gw.agency, "reason": reason });
        let r = admin.post("/admin/agencies", &body).await?;
        revision = revision.max(created(&format!("agency {}", gw.agency_id), &r)?);
        let body = json!({ "id": gw.id, "agency": gw.agency_id, "reason": reason });
        let r = admin.post("/admin/gateways", &body).await?;
        revision = revision.max(created(&format!("gateway {}", gw.id), &r)?);
    }
    for l in LICENSEES {
        let body = json!({
            "id": l.id, "name": l.name, "credit_code": credit_code(l)?, "reason": "sluice demo",
        });
        let r = admin.post("/admin/licensees", &body).await?;
        revision = revision.max(created(&format!("licensee {}", l.id), &r)?);
    }
    for (d, agency) in datasets {
        let r = admin
            .post(
                "/admin/datasets",
                &json!({ "dataset": d, "agency": agency, "reason": "sluice demo catalog" }),
            )
            .await?;
        revision = revision.max(created(&format!("dataset {}", d.id), &r)?);
    }
    for (id, title, description, dataset) in SCENARIOS {
        let body = json!({
            "id": id, "title": title, "description": description, "datasets": [dataset],
            "reason": reason,
        });
        let r = admin.post("/admin/scenarios", &body).await?;
        revision = revision.max(created(&format!("scenario {id}"), &r)?);
    }
    let rule = json!({
        "id": FUSION_RULE,
        "description": "hydrant adopters plus enterprise addresses and power use locate adopters' businesses",
        "members": [
            { "dataset": "fire-hydrants", "fields": ["adopter_name", "adopter_mobile"] },
            { "dataset": "enterprise-utilities", "fields": ["address", "electricity_kwh"] },
        ],
        "reason": reason,
    });
    let r = admin.post("/admin/fusion-rules", &rule).await?;
    revision = revision.max(created(&format!("fusion rule {FUSION_RULE}"), &r)?);
    for l in LICENCES {
        let r = admin.post("/admin/licences", &grant_body(l)).await?;
        revision = revision.max(created(&format!("licence {}", l.id), &r)?);
    }
    let body = json!({ "dataset": "fire-hydrants", "text": HYDRANT_AGREEMENT, "reason": reason });
    let r = admin.post("/admin/agreements", &body).await?;
    anyhow::ensure!(r.status == 201, "agreement: {} {}", r.status, r.json());
    Ok(revision)
}

/// Two demands from the public, filed without a certificate: street-light faults the
/// catalog does not list (asked twice, so merged and counted twice) and more fields of the
/// hydrant register.
pub async fn demands(public: &RegistryClient) -> anyhow::Result<()> {
    for body in [
        json!({ "kind": "open-dataset", "dataset": "Street light faults",
                "why": "a repair-tracking app for residents" }),
        json!({ "kind": "open-dataset", "dataset": "street  light faults ",
                "why": "night cycling route planning" }),
        json!({ "kind": "more-fields", "dataset": "fire-hydrants", "fields": ["flow_rate_lpm"],
                "why": "sprinkler design for warehouses next to hydrants" }),
    ] {
        let r = public.post("/v1/demands", &body).await?;
        anyhow::ensure!(r.status == 201, "demand: {} {}", r.status, r.json());
    }
    Ok(())
}

/// The bank applies for the hydrant register under the adoption scenario, accepting its
/// agreement, as a licensee would with its certificate: one open application for the
/// walkthrough.
pub async fn apply(bank: &RegistryClient) -> anyhow::Result<String> {
    let terms = bank.get("/v1/agreements/fire-hydrants").await?;
    anyhow::ensure!(
        terms.status == 200,
        "agreement: {} {}",
        terms.status,
        terms.json()
    );
    let terms = terms.json();
    let until = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    let body = json!({
        "dataset": "fire-hydrants",
        "scenario": "fire-hydrant-adoption",
        "purpose": "green loans for small businesses whose staff adopt a hydrant",
        "fields": ["id", "district", "status", "adopter_name"],
        "valid_until": until.format(&time::format_description::well_known::Rfc3339)?,
        "volume": 2000,
        "agreement": { "version": terms["version"], "digest": terms["digest"] },
    });
    let r = bank.post("/v1/applications", &body).await?;
    anyhow::ensure!(r.status == 201, "application: {} {}", r.status, r.json());
    Ok(r.json()["id"].as_str().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_codes_are_valid_and_grants_parse() {
        for l in LICENSEES {
            let code = credit_code(l).unwrap();
            assert!(sluice_registry::credit_code::validate(&code).is_ok(), "{code}");
        }
        for l in LICENCES {
            assert!(SCENARIOS.iter().any(|s| (s.0, s.3) == (l.scenario, l.dataset)));
            let g: sluice_registry::model::GrantRequest = serde_json::from_value(grant_body(l)).unwrap();
            assert_eq!(g.id.as_deref(), Some(l.id));
            assert!(!g.fields.is_empty() || g.aggregate.is_some());
        }
    }
}

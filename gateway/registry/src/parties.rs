//! The registry's other parties of record: agencies (the data owners), the gateways they run,
//! and scenarios (declared purposes) that licences are granted for.
//!
//! Only registered, unretired gateways receive snapshots; a grant must name a registered
//! scenario, and a scenario that lists datasets only covers those.

use super::api::{body, json_response, need_reason, valid_id};
use super::problem::{Problem, ProblemCode as P};
use super::snapshot::Distributor;
use super::store::{map_unique, now, Change, Result, Store, StoreError};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// Tables, created with the store's own.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS agencies (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS gateways (id TEXT PRIMARY KEY, agency TEXT NOT NULL, retired BIGINT NOT NULL, \
     created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS scenarios (id TEXT PRIMARY KEY, title TEXT NOT NULL, description TEXT NOT NULL, \
     datasets TEXT NOT NULL, created_at TEXT NOT NULL)",
];

/// A government agency that owns data and runs gateways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyRecord {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: String,
    /// When it was registered (RFC 3339).
    pub created_at: String,
}

/// A gateway of an agency; its certificate carries `urn:sluice:gateway:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayRecord {
    /// Identifier, as in its certificate.
    pub id: String,
    /// The agency running it.
    pub agency: String,
    /// Retired gateways no longer receive snapshots.
    pub retired: bool,
    /// When it was registered (RFC 3339).
    pub created_at: String,
}

/// A declared purpose licences are granted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioRecord {
    /// Identifier, sent by licensees in `Sluice-Scenario`.
    pub id: String,
    /// Short title.
    pub title: String,
    /// What the data is used for.
    pub description: String,
    /// The datasets it covers; empty means any.
    pub datasets: Vec<String>,
    /// When it was registered (RFC 3339).
    pub created_at: String,
}

/// `POST /admin/agencies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgency {
    /// Identifier (`[A-Za-z0-9._-]{1,64}`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Why (recorded).
    #[serde(default)]
    pub reason: String,
}

/// `POST /admin/gateways`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGateway {
    /// Identifier, as in the gateway's certificate.
    pub id: String,
    /// A registered agency.
    pub agency: String,
    /// Why (recorded).
    #[serde(default)]
    pub reason: String,
}

/// `POST /admin/scenarios`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewScenario {
    /// Identifier.
    pub id: String,
    /// Short title.
    pub title: String,
    /// What the data is used for.
    #[serde(default)]
    pub description: String,
    /// Registered datasets it covers; empty means any.
    #[serde(default)]
    pub datasets: Vec<String>,
    /// Why (recorded).
    #[serde(default)]
    pub reason: String,
}

fn scenario_from(r: &sqlx::any::AnyRow) -> Result<ScenarioRecord> {
    let id: String = r.try_get("id")?;
    let datasets: String = r.try_get("datasets")?;
    Ok(ScenarioRecord {
        datasets: serde_json::from_str(&datasets)
            .map_err(|e| StoreError::Corrupt(format!("scenario {id}"), e.to_string()))?,
        id,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// Registers an agency.
    pub async fn add_agency(&self, a: &NewAgency, change: &Change<'_>) -> Result<(AgencyRecord, u64)> {
        let rec = AgencyRecord {
            id: a.id.clone(),
            name: a.name.clone(),
            created_at: now(),
        };
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO agencies (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&rec.id)
            .bind(&rec.name)
            .bind(&rec.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, &format!("agency {}", rec.id)))?;
        Ok((rec, Self::finish(tx, change).await?))
    }

    /// All agencies by id.
    pub async fn agencies(&self) -> Result<Vec<AgencyRecord>> {
        let rows = sqlx::query("SELECT id, name, created_at FROM agencies ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AgencyRecord {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Registers a gateway of a registered agency.
    pub async fn add_gateway(&self, g: &NewGateway, change: &Change<'_>) -> Result<(GatewayRecord, u64)> {
        let rec = GatewayRecord {
            id: g.id.clone(),
            agency: g.agency.clone(),
            retired: false,
            created_at: now(),
        };
        let mut tx = self.begin().await?;
        let agency = sqlx::query("SELECT id FROM agencies WHERE id = $1")
            .bind(&g.agency)
            .fetch_optional(&mut *tx)
            .await?;
        if agency.is_none() {
            return Err(StoreError::Invalid(format!("unknown agency {}", g.agency)));
        }
        sqlx::query("INSERT INTO gateways (id, agency, retired, created_at) VALUES ($1, $2, 0, $3)")
            .bind(&rec.id)
            .bind(&rec.agency)
            .bind(&rec.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, &format!("gateway {}", rec.id)))?;
        Ok((rec, Self::finish(tx, change).await?))
    }

    /// All gateways by id.
    pub async fn gateways(&self) -> Result<Vec<GatewayRecord>> {
        let rows = sqlx::query("SELECT id, agency, retired, created_at FROM gateways ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let retired: i64 = r.try_get("retired")?;
                Ok(GatewayRecord {
                    id: r.try_get("id")?,
                    agency: r.try_get("agency")?,
                    retired: retired != 0,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Retires a gateway: it receives no further snapshots. Final.
    pub async fn retire_gateway(&self, id: &str, change: &Change<'_>) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE gateways SET retired = 1 WHERE id = $1 AND retired = 0")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            let exists = sqlx::query("SELECT id FROM gateways WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Err(if exists {
                StoreError::Conflict(format!("gateway {id} is already retired"))
            } else {
                StoreError::NotFound(format!("gateway {id}"))
            });
        }
        Self::finish(tx, change).await
    }

    /// Whether `id` is a registered gateway: `None` if not, `Some(retired)` if it is.
    pub async fn gateway_retired(&self, id: &str) -> Result<Option<bool>> {
        let row = sqlx::query("SELECT retired FROM gateways WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok(r.try_get::<i64, _>("retired")? != 0)).transpose()
    }

    /// Whether `id` is a registered gateway that is not retired.
    pub async fn gateway_active(&self, id: &str) -> Result<bool> {
        Ok(self.gateway_retired(id).await? == Some(false))
    }

    /// Registers a scenario; the datasets it names must be in the catalog.
    pub async fn add_scenario(&self, s: &NewScenario, change: &Change<'_>) -> Result<(ScenarioRecord, u64)> {
        let rec = ScenarioRecord {
            id: s.id.clone(),
            title: s.title.clone(),
            description: s.description.clone(),
            datasets: s.datasets.clone(),
            created_at: now(),
        };
        let mut tx = self.begin().await?;
        for d in &rec.datasets {
            let found = sqlx::query("SELECT id FROM datasets WHERE id = $1")
                .bind(d)
                .fetch_optional(&mut *tx)
                .await?;
            if found.is_none() {
                return Err(StoreError::Invalid(format!("unknown dataset {d}")));
            }
        }
        let datasets =
            serde_json::to_string(&rec.datasets).map_err(|e| StoreError::Invalid(e.to_string()))?;
        sqlx::query(
            "INSERT INTO scenarios (id, title, description, datasets, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&rec.id)
        .bind(&rec.title)
        .bind(&rec.description)
        .bind(datasets)
        .bind(&rec.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, &format!("scenario {}", rec.id)))?;
        Ok((rec, Self::finish(tx, change).await?))
    }

    /// One scenario.
    pub async fn scenario(&self, id: &str) -> Result<Option<ScenarioRecord>> {
        sqlx::query("SELECT id, title, description, datasets, created_at FROM scenarios WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(scenario_from)
            .transpose()
    }

    /// All scenarios by id.
    pub async fn scenarios(&self) -> Result<Vec<ScenarioRecord>> {
        let rows =
            sqlx::query("SELECT id, title, description, datasets, created_at FROM scenarios ORDER BY id")
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(scenario_from).collect()
    }
}

/// Checks that a grant's scenario is registered and covers its dataset.
pub async fn check_scenario(store: &Store, scenario: &str, dataset: &str) -> Result<(), Problem> {
    match store.scenario(scenario).await? {
        None => Err(Problem::new(
            P::Invalid,
            format!("scenario {scenario} is not registered (sluice admin scenario add)"),
        )),
        Some(s) if !s.datasets.is_empty() && !s.datasets.iter().any(|d| d == dataset) => Err(Problem::new(
            P::Invalid,
            format!(
                "scenario {scenario} covers {}, not {dataset}",
                s.datasets.join(", ")
            ),
        )),
        Some(_) => Ok(()),
    }
}

fn not_empty(what: &str, v: &str) -> Result<(), Problem> {
    if v.trim().is_empty() {
        return Err(Problem::new(P::Invalid, format!("{what} must not be empty")));
    }
    Ok(())
}

/// `/admin/agencies`, `/admin/gateways[/<id>/retire]`, `/admin/scenarios`.
pub async fn admin(
    store: &Store,
    dist: &Distributor,
    admin: &str,
    segs: &[&str],
    method: &Method,
    req: Request<Incoming>,
) -> Result<Response<sluice_net::body::RespBody>, Problem> {
    let (get, post) = (method == Method::GET, method == Method::POST);
    match segs {
        ["admin", "agencies"] if get => Ok(json_response(StatusCode::OK, &store.agencies().await?, None)),
        ["admin", "agencies"] if post => {
            let b: NewAgency = body(req).await?;
            valid_id(&b.id)?;
            not_empty("name", &b.name)?;
            let ch = Change {
                admin,
                action: "agency.add",
                target: &b.id,
                reason: &b.reason,
            };
            let (rec, rev) = store.add_agency(&b, &ch).await?;
            dist.advance(rev);
            Ok(json_response(StatusCode::CREATED, &rec, Some(rev)))
        }
        ["admin", "gateways"] if get => Ok(json_response(StatusCode::OK, &store.gateways().await?, None)),
        ["admin", "gateways"] if post => {
            let b: NewGateway = body(req).await?;
            valid_id(&b.id)?;
            let ch = Change {
                admin,
                action: "gateway.add",
                target: &b.id,
                reason: &b.reason,
            };
            let (rec, rev) = store.add_gateway(&b, &ch).await?;
            dist.advance(rev);
            Ok(json_response(StatusCode::CREATED, &rec, Some(rev)))
        }
        ["admin", "gateways", id, "retire"] if post => {
            let b: super::model::ReasonBody = body(req).await?;
            need_reason(&b.reason)?;
            let ch = Change {
                admin,
                action: "gateway.retire",
                target: id,
                reason: &b.reason,
            };
            let rev = store.retire_gateway(id, &ch).await?;
            dist.advance(rev);
            let v = serde_json::json!({ "gateway": id, "retired": true });
            Ok(json_response(StatusCode::OK, &v, Some(rev)))
        }
        ["admin", "scenarios"] if get => Ok(json_response(StatusCode::OK, &store.scenarios().await?, None)),
        ["admin", "scenarios"] if post => {
            let b: NewScenario = body(req).await?;
            valid_id(&b.id)?;
            not_empty("title", &b.title)?;
            let ch = Change {
                admin,
                action: "scenario.add",
                target: &b.id,
                reason: &b.reason,
            };
            let (rec, rev) = store.add_scenario(&b, &ch).await?;
            dist.advance(rev);
            Ok(json_response(StatusCode::CREATED, &rec, Some(rev)))
        }
        _ => Err(Problem::new(
            P::NotFound,
            format!("no route {method} /{}", segs.join("/")),
        )),
    }
}

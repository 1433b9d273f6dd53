//! The federation's health as the registry sees it: `gateway_contacts`, one row per gateway
//! with the snapshot revision it was last answered on `GET /v1/snapshot` (a 304 included),
//! when, and the certificate it came with (serial, end of validity). Written by
//! [`crate::snapshot::Distributor::record_contact`], spaced out so that a busy federation's
//! long-polls do not each write. Not admin changes: no change number, no revision.
//!
//! Also the reads `GET /admin/gateways/health` combines with it: each gateway's last usage
//! report (`usage_reports`, indexed here by gateway and time) and when a revision was made
//! (`admin_changes`).

use super::{to_u64, Result, Store};
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;

/// Tables and indexes, created after the store's own (`usage_reports` is the store's).
pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS gateway_contacts (gateway TEXT PRIMARY KEY, revision BIGINT NOT NULL, \
     seen_at TEXT NOT NULL, cert_serial TEXT NOT NULL, cert_not_after BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS usage_reports_by_gateway_time ON usage_reports (gateway, received_at)",
];

/// A gateway's last recorded contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayContact {
    /// The gateway's id.
    pub gateway: String,
    /// The snapshot revision of the answer (its `Sluice-Revision`).
    pub revision: u64,
    /// When (RFC 3339).
    pub seen_at: String,
    /// The serial of its client certificate, hex.
    pub cert_serial: String,
    /// The end of that certificate's validity, unix seconds.
    pub cert_not_after: i64,
}

/// A gateway's latest accepted usage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageReportSeen {
    /// The report's id, as the gateway chose it.
    pub report_id: String,
    /// When the registry accepted it (RFC 3339).
    pub received_at: String,
}

impl Store {
    /// Records `c` as the gateway's last contact, replacing the one before.
    pub async fn record_gateway_contact(&self, c: &GatewayContact) -> Result<()> {
        sqlx::query(
            "INSERT INTO gateway_contacts (gateway, revision, seen_at, cert_serial, cert_not_after) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (gateway) DO UPDATE SET \
             revision = excluded.revision, seen_at = excluded.seen_at, \
             cert_serial = excluded.cert_serial, cert_not_after = excluded.cert_not_after",
        )
        .bind(&c.gateway)
        .bind(i64::try_from(c.revision).unwrap_or(i64::MAX))
        .bind(&c.seen_at)
        .bind(&c.cert_serial)
        .bind(c.cert_not_after)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every recorded contact, by gateway.
    pub async fn gateway_contacts(&self) -> Result<BTreeMap<String, GatewayContact>> {
        let rows = sqlx::query(
            "SELECT gateway, revision, seen_at, cert_serial, cert_not_after FROM gateway_contacts",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let c = GatewayContact {
                    gateway: r.try_get("gateway")?,
                    revision: to_u64(r.try_get("revision")?),
                    seen_at: r.try_get("seen_at")?,
                    cert_serial: r.try_get("cert_serial")?,
                    cert_not_after: r.try_get("cert_not_after")?,
                };
                Ok((c.gateway.clone(), c))
            })
            .collect()
    }

    /// The usage report from `gateway` the registry accepted last; `None` if none.
    pub async fn last_usage_report(&self, gateway: &str) -> Result<Option<UsageReportSeen>> {
        let row = sqlx::query(
            "SELECT report_id, received_at FROM usage_reports WHERE gateway = $1 \
             ORDER BY received_at DESC, report_id DESC LIMIT 1",
        )
        .bind(gateway)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(UsageReportSeen {
                report_id: r.try_get("report_id")?,
                received_at: r.try_get("received_at")?,
            })
        })
        .transpose()
    }

    /// When change number `change` was made (RFC 3339); `None` for 0 or a number not made.
    pub async fn change_made_at(&self, change: u64) -> Result<Option<String>> {
        let Ok(number) = i64::try_from(change) else {
            return Ok(None);
        };
        let row = sqlx::query("SELECT at FROM admin_changes WHERE revision = $1")
            .bind(number)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get("at")).transpose()?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::super::{Action, Change, Store};
    use super::GatewayContact;
    use crate::model::{NewAgency, NewGateway};

    fn change(action: Action) -> Change<'static> {
        Change {
            admin: "alice",
            action,
            target: "t",
            reason: "contacts test",
        }
    }

    fn contact(gateway: &str, revision: u64, seen_at: &str) -> GatewayContact {
        GatewayContact {
            gateway: gateway.into(),
            revision,
            seen_at: seen_at.into(),
            cert_serial: "1a2b".into(),
            cert_not_after: 1_900_000_000,
        }
    }

    fn report(id: &str) -> sluice_policy::usage::UsageReport {
        serde_json::from_value(serde_json::json!({
            "report_id": id, "from": "2026-11-01T00:00:00Z", "until": "2026-11-01T00:01:00Z", "counts": [],
        }))
        .unwrap()
    }

    /// Contacts replace the one before per gateway, leave the revision and change log alone;
    /// the last usage report is the latest accepted; a change's time is found by its number.
    async fn contacts_and_last_reports(store: Store) {
        let agency = NewAgency {
            id: "fire".into(),
            name: "Fire".into(),
            review_days: None,
            reason: String::new(),
        };
        store
            .add_agency(&agency, &change(Action::AgencyAdd))
            .await
            .unwrap();
        for id in ["gw-a", "gw-b"] {
            let g = NewGateway {
                id: id.into(),
                agency: "fire".into(),
                url: None,
                reason: String::new(),
            };
            store.add_gateway(&g, &change(Action::GatewayAdd)).await.unwrap();
        }
        assert!(store.gateway_contacts().await.unwrap().is_empty());
        let (revision, last_change) = (
            store.revision().await.unwrap(),
            store.last_change().await.unwrap(),
        );

        store
            .record_gateway_contact(&contact("gw-a", 3, "2026-11-01T00:00:00Z"))
            .await
            .unwrap();
        let mut later = contact("gw-a", 7, "2026-11-01T00:00:20Z");
        later.cert_serial = "ff01".into();
        later.cert_not_after = 1_950_000_000;
        store.record_gateway_contact(&later).await.unwrap();
        store
            .record_gateway_contact(&contact("gw-b", 0, "2026-11-01T00:00:05Z"))
            .await
            .unwrap();
        let all = store.gateway_contacts().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["gw-a"], later, "the last contact replaces the one before");
        assert_eq!(all["gw-b"].revision, 0);
        assert_eq!(
            (
                store.revision().await.unwrap(),
                store.last_change().await.unwrap()
            ),
            (revision, last_change),
            "contacts are not changes"
        );

        assert_eq!(store.last_usage_report("gw-a").await.unwrap(), None);
        assert!(store.add_usage("gw-a", &report("r-1")).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(store.add_usage("gw-a", &report("r-2")).await.unwrap());
        assert!(store.add_usage("gw-b", &report("r-9")).await.unwrap());
        let last = store.last_usage_report("gw-a").await.unwrap().unwrap();
        assert_eq!(last.report_id, "r-2");
        assert!(last.received_at.starts_with("20"), "{last:?}");
        assert_eq!(
            store.last_usage_report("gw-b").await.unwrap().unwrap().report_id,
            "r-9"
        );
        assert_eq!(store.last_usage_report("gw-c").await.unwrap(), None);

        let changes = store.changes().await.unwrap();
        let first = &changes[0];
        assert_eq!(
            store.change_made_at(1).await.unwrap().as_deref(),
            Some(first.at.as_str())
        );
        assert_eq!(store.change_made_at(0).await.unwrap(), None);
        assert_eq!(store.change_made_at(999).await.unwrap(), None);
        store.close().await;
    }

    #[tokio::test]
    async fn contacts_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        contacts_and_last_reports(Store::open(&Store::sqlite_url(dir.path())).await.unwrap()).await;
    }

    #[tokio::test]
    async fn contacts_on_postgres() {
        let (schema, url) = crate::pgtest::create_schema("contacts").await.unwrap();
        contacts_and_last_reports(Store::open(&url).await.unwrap()).await;
        crate::pgtest::drop_schema(&schema).await.unwrap();
    }
}

//! The `risk_rules` table (each rule as a JSON body), read into every snapshot, and the
//! `risk_alerts` gateways report: one row per `(gateway, id)`, so a repeat changes nothing.

use super::{json, licence_from, map_unique, now, Action, Change, Committed, Result, Store, StoreError, Tx};
use crate::model::Measure;
use crate::risk::{suspension_reason, AlertOutcome, RiskAlertRecord};
use sluice_policy::licence::LicenceStatus;
use sluice_policy::risk::{RiskAction, RiskAlert, RiskRule};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Tables, created with the store's own. `change_number` is the alert's `risk.alert` change
/// (the list's order); `violation` the violation a `suspend` alert recorded; `suspended` 1
/// when it suspended the licence.
pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS risk_rules (id TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS risk_alerts (gateway TEXT NOT NULL, id TEXT NOT NULL, \
     licence TEXT NOT NULL, licensee TEXT NOT NULL, rule TEXT NOT NULL, body TEXT NOT NULL, \
     received_at TEXT NOT NULL, violation TEXT, suspended BIGINT NOT NULL, \
     change_number BIGINT NOT NULL, PRIMARY KEY (gateway, id))",
    "CREATE INDEX IF NOT EXISTS risk_alerts_by_change ON risk_alerts (change_number)",
];

/// What [`Store::record_risk_alert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertRecorded {
    /// Recorded now: its last change.
    New(Committed),
    /// Recorded before: nothing changed; the snapshot revision now (at least the one that
    /// carried the first delivery's suspension).
    Repeat {
        /// The snapshot revision.
        revision: u64,
    },
}

const ALERT_COLUMNS: &str = "gateway, id, body, received_at, violation, suspended";

fn rule_from(r: &AnyRow) -> Result<RiskRule> {
    let id: String = r.try_get("id")?;
    let body: String = r.try_get("body")?;
    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("risk rule {id}"), e.to_string()))
}

fn alert_from(r: &AnyRow) -> Result<RiskAlertRecord> {
    let gateway: String = r.try_get("gateway")?;
    let id: String = r.try_get("id")?;
    let body: String = r.try_get("body")?;
    let alert = serde_json::from_str(&body)
        .map_err(|e| StoreError::Corrupt(format!("risk alert {gateway}/{id}"), e.to_string()))?;
    let suspended: i64 = r.try_get("suspended")?;
    Ok(RiskAlertRecord {
        gateway,
        received_at: r.try_get("received_at")?,
        outcome: AlertOutcome {
            alert,
            violation: r.try_get("violation")?,
            suspended: suspended != 0,
        },
    })
}

/// Every risk rule by id, read in `tx` (a snapshot's read).
pub(super) async fn read_rules(tx: &mut Tx) -> Result<Vec<RiskRule>> {
    let rows = sqlx::query("SELECT id, body FROM risk_rules ORDER BY id")
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(rule_from).collect()
}

impl Store {
    /// Declares a risk rule (validated by the caller); an existing id is a conflict.
    pub async fn add_risk_rule(&self, rule: &RiskRule, change: &Change<'_>) -> Result<Committed> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO risk_rules (id, body) VALUES ($1, $2)")
            .bind(&rule.id)
            .bind(json(rule)?)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, &format!("risk rule {}", rule.id)))?;
        Self::finish(tx, change).await
    }

    /// All risk rules by id.
    pub async fn risk_rules(&self) -> Result<Vec<RiskRule>> {
        let rows = sqlx::query("SELECT id, body FROM risk_rules ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(rule_from).collect()
    }

    /// Removes a risk rule.
    pub async fn remove_risk_rule(&self, id: &str, change: &Change<'_>) -> Result<Committed> {
        let mut tx = self.begin().await?;
        let gone = sqlx::query("DELETE FROM risk_rules WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(StoreError::NotFound(format!("risk rule {id}")));
        }
        Self::finish(tx, change).await
    }

    /// Records an alert from `gateway` (checked by the caller) in one transaction with what
    /// it leads to, each change by admin `gateway:<gateway>`: `risk.alert` (target the
    /// licence, reason the evidence); for a `suspend` alert also a violation of the licence's
    /// licensee with measure `suspend` and the evidence as what happened (`violation.record`)
    /// and, when the licence is active, its suspension (`licence.suspend`, which moves the
    /// snapshot revision). A repeat of `(gateway, alert.id)` changes nothing and gives the
    /// stored outcome; an unknown licence or rule, or an alert its rule could not have raised
    /// ([`RiskRule::mismatch`]: another licence, action, signal or a count below the
    /// threshold), is [`StoreError::Invalid`]: a gateway suspends nothing no rule suspends.
    ///
    /// The transaction first takes the revision row's lock (as every change does when it
    /// commits), so two deliveries of one alert cannot both record it.
    pub async fn record_risk_alert(
        &self,
        gateway: &str,
        alert: &RiskAlert,
    ) -> Result<(RiskAlertRecord, AlertRecorded)> {
        let mut tx = self.begin().await?;
        Self::lock_changes(&mut tx).await?;
        let stored = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM risk_alerts WHERE gateway = $1 AND id = $2"
        ))
        .bind(gateway)
        .bind(&alert.id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = stored {
            let revision = Self::read_snapshot_revision(&mut tx).await?;
            tx.rollback().await?;
            return Ok((alert_from(&row)?, AlertRecorded::Repeat { revision }));
        }
        let rule = sqlx::query("SELECT id, body FROM risk_rules WHERE id = $1")
            .bind(&alert.rule)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("unknown risk rule {}", alert.rule)))?;
        if let Some(why) = rule_from(&rule)?.mismatch(alert) {
            return Err(StoreError::Invalid(format!("risk alert: {why}")));
        }
        let licence = sqlx::query("SELECT id, body FROM licences WHERE id = $1")
            .bind(&alert.licence)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("unknown licence {}", alert.licence)))?;
        let licence = licence_from(&licence)?;
        let admin = format!("gateway:{gateway}");
        let evidence = alert.evidence();
        let (mut last, mut altered) = Self::record(
            &mut tx,
            &Change {
                admin: &admin,
                action: Action::RiskAlert,
                target: &alert.licence,
                reason: &evidence,
            },
            None,
        )
        .await?;
        let alert_change = last.change;
        let mut violation = None;
        let mut suspended = false;
        if alert.action == RiskAction::Suspend {
            let reason = format!(
                "gateway {gateway} reported risk rule {} crossed on licence {}; the rule suspends it",
                alert.rule, alert.licence
            );
            let v = Self::insert_violation(&mut tx, &licence.licensee, &evidence, Measure::Suspend, &reason)
                .await?;
            let change = Change {
                admin: &admin,
                action: Action::ViolationRecord,
                target: &licence.licensee,
                reason: &reason,
            };
            (last, altered) = Self::record(&mut tx, &change, Some(Measure::Suspend)).await?;
            violation = Some(v.id);
            if licence.status == LicenceStatus::Active {
                let why = suspension_reason(alert);
                let status = LicenceStatus::Suspended { reason: why.clone() };
                Self::set_status_in(&mut tx, &alert.licence, status).await?;
                let change = Change {
                    admin: &admin,
                    action: Action::LicenceSuspend,
                    target: &alert.licence,
                    reason: &why,
                };
                let (c, a) = Self::record(&mut tx, &change, None).await?;
                (last, altered) = (c, altered || a);
                suspended = true;
            }
        }
        let rec = RiskAlertRecord {
            gateway: gateway.to_owned(),
            received_at: now(),
            outcome: AlertOutcome {
                alert: alert.clone(),
                violation,
                suspended,
            },
        };
        sqlx::query(
            "INSERT INTO risk_alerts (gateway, id, licence, licensee, rule, body, received_at, \
             violation, suspended, change_number) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(gateway)
        .bind(&alert.id)
        .bind(&alert.licence)
        .bind(&licence.licensee)
        .bind(&alert.rule)
        .bind(json(alert)?)
        .bind(&rec.received_at)
        .bind(rec.outcome.violation.clone())
        .bind(i64::from(suspended))
        .bind(i64::try_from(alert_change).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        Self::commit(tx, last, altered).await?;
        Ok((rec, AlertRecorded::New(last)))
    }

    /// Every alert received, newest first.
    pub async fn risk_alerts(&self) -> Result<Vec<RiskAlertRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM risk_alerts ORDER BY change_number DESC"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(alert_from).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::model::LicenseeRecord;
    use sluice_policy::risk::{Signal, Window};

    /// Rule `r1` suspends, `w1` alerts: 100 records a minute, any licence.
    fn rule(action: RiskAction) -> RiskRule {
        RiskRule {
            id: if action == RiskAction::Suspend { "r1" } else { "w1" }.into(),
            signal: Signal::Records,
            window: Window::Minute,
            threshold: 100,
            factor: None,
            licence: None,
            codes: vec![],
            hours: None,
            action,
        }
    }

    fn alert(id: &str, licence: &str, action: RiskAction) -> RiskAlert {
        RiskAlert {
            id: id.into(),
            rule: rule(action).id,
            licence: licence.into(),
            signal: Signal::Records,
            window: Window::Minute,
            window_start: 60,
            value: 100,
            threshold: 100,
            baseline: 0.0,
            action,
            at: 61,
        }
    }

    fn admin(action: Action) -> Change<'static> {
        Change {
            admin: "alice",
            action,
            target: "t",
            reason: "test",
        }
    }

    /// One transaction records the alert, the `suspend` violation (which restricts nobody) and
    /// the licence's suspension; a repeat changes nothing; a suspended licence is not
    /// suspended again.
    #[tokio::test]
    async fn a_suspend_alert_suspends_the_licence_and_restricts_no_licensee() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::sqlite_url(dir.path())).await.unwrap();
        let acme = LicenseeRecord {
            id: "acme".into(),
            name: "Acme".into(),
            credit_code: "91350100M000100Y43".into(),
            created_at: String::new(),
        };
        store
            .add_licensee(&acme, &admin(Action::LicenseeAdd))
            .await
            .unwrap();
        for action in [RiskAction::Suspend, RiskAction::Alert] {
            store
                .add_risk_rule(&rule(action), &admin(Action::RiskRuleAdd))
                .await
                .unwrap();
        }
        let l1: sluice_policy::licence::Licence = serde_json::from_value(serde_json::json!({
            "id": "l1", "licensee": "acme", "dataset": "hydrants", "scenario": "s",
            "fields": { "district": { "rule": "clear" } },
            "valid_from": "2025-01-01T00:00:00Z", "valid_until": "2035-01-01T00:00:00Z",
        }))
        .unwrap();
        let granted = store
            .insert_licence(&l1, &admin(Action::LicenceGrant))
            .await
            .unwrap();

        let (rec, c) = store
            .record_risk_alert("gw1", &alert("a0", "l1", RiskAction::Alert))
            .await
            .unwrap();
        let AlertRecorded::New(c) = c else { panic!("{c:?}") };
        assert_eq!((c.change, c.revision), (granted.change + 1, granted.revision));
        assert_eq!((rec.outcome.violation, rec.outcome.suspended), (None, false));

        let a1 = alert("a1", "l1", RiskAction::Suspend);
        let (rec, c) = store.record_risk_alert("gw1", &a1).await.unwrap();
        let AlertRecorded::New(c) = c else { panic!("{c:?}") };
        assert!(rec.outcome.suspended);
        let violation = rec.outcome.violation.clone().unwrap();
        // Three changes: the alert, the violation, the suspension (the snapshot's revision).
        assert_eq!((c.change, c.revision), (granted.change + 4, granted.change + 4));
        let state = store.snapshot_state().await.unwrap();
        assert_eq!(state.revision, c.revision);
        assert!(
            state.restricted_licensees.is_empty(),
            "{:?}",
            state.restricted_licensees
        );
        assert!(
            matches!(&state.licences[0].status, LicenceStatus::Suspended { reason } if reason.starts_with("risk rule r1: suspended automatically"))
        );
        let v = store.violations().await.unwrap();
        assert_eq!(
            (v.len(), v[0].id.as_str(), v[0].measure),
            (1, violation.as_str(), Measure::Suspend)
        );
        assert_eq!(v[0].what, a1.evidence());
        let log = store.changes().await.unwrap();
        let tail: Vec<(&str, &str)> = log[log.len() - 3..]
            .iter()
            .map(|c| (c.admin.as_str(), c.action.as_str()))
            .collect();
        assert_eq!(
            tail,
            [
                ("gateway:gw1", "risk.alert"),
                ("gateway:gw1", "violation.record"),
                ("gateway:gw1", "licence.suspend")
            ]
        );

        // A repeat: the stored outcome, nothing recorded.
        let (again, c) = store.record_risk_alert("gw1", &a1).await.unwrap();
        assert_eq!(
            (again.outcome, c),
            (
                rec.outcome,
                AlertRecorded::Repeat {
                    revision: state.revision
                }
            )
        );
        assert_eq!(store.changes().await.unwrap().len(), log.len());
        // The same id from another gateway is another alert; the licence is suspended already.
        let (other, c) = store.record_risk_alert("gw2", &a1).await.unwrap();
        assert!(other.outcome.violation.is_some() && !other.outcome.suspended);
        let AlertRecorded::New(c) = c else { panic!("{c:?}") };
        assert_eq!(c.revision, state.revision, "no new suspension, no new snapshot");

        let listed: Vec<(String, String)> = store
            .risk_alerts()
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.gateway, r.outcome.alert.id))
            .collect();
        let want = [("gw2", "a1"), ("gw1", "a1"), ("gw1", "a0")].map(|(g, a)| (g.to_owned(), a.to_owned()));
        assert_eq!(listed, want);

        let unknown = store
            .record_risk_alert("gw1", &alert("a2", "nope", RiskAction::Suspend))
            .await;
        assert!(matches!(unknown, Err(StoreError::Invalid(_))), "{unknown:?}");
        // An alert its rule could not have raised changes nothing: an `alert` rule does not
        // suspend, an unknown rule is none, a count below the threshold crossed nothing.
        let before = store.changes().await.unwrap().len();
        for bad in [
            RiskAlert {
                rule: "w1".into(),
                ..alert("a3", "l1", RiskAction::Suspend)
            },
            RiskAlert {
                rule: "r9".into(),
                ..alert("a4", "l1", RiskAction::Suspend)
            },
            RiskAlert {
                value: 99,
                ..alert("a5", "l1", RiskAction::Suspend)
            },
        ] {
            let r = store.record_risk_alert("gw1", &bad).await;
            assert!(matches!(r, Err(StoreError::Invalid(_))), "{bad:?}: {r:?}");
        }
        assert_eq!(store.changes().await.unwrap().len(), before);
        store.close().await;
    }
}

//! The federation's health at the registry: `GET /admin/gateways/health` (administrator
//! certificates; every administrator reads it, as `GET /admin/gateways`), and the per-gateway
//! gauges of `GET /metrics`.
//!
//! One entry per registered gateway, retired ones included (`retired: true`), by id: the
//! snapshot revision it was last answered on `GET /v1/snapshot` (a long-poll's 304 included;
//! [`crate::snapshot::Distributor::record_contact`]), when, how far that is behind the
//! registry's revision, whether it is stale, its last accepted usage report and the expiry of
//! the client certificate it last came with.
//!
//! **Stale.** An unretired gateway is stale when
//!
//! 1. it was never answered a snapshot (`stale_reason: "never-seen"`), or
//! 2. it was last answered more than [`STALE_AFTER_SECS`] (90) seconds ago (`"not-seen"`): a
//!    polling gateway asks at least every 30 s (its long-poll wait, `poll_wait_s` ≤ 30) and
//!    its contact is written at least every 15 s while it does
//!    ([`crate::snapshot::CONTACT_WRITE_EVERY`]), so a healthy one is never that old, or
//! 3. it holds a revision older than the registry's, and the registry's revision was made
//!    more than [`BEHIND_GRACE_SECS`] (10) seconds ago (`"behind"`): it had that long to fetch
//!    it (a gateway long-polling gets a new revision within a second).
//!
//! A retired gateway is never stale: it is not served. `last_seen` is when its contact was
//! last written, up to 15 s before its last poll. Revisions are change numbers
//! (`GET /admin/changes`), so `revisions_behind` counts changes, including those that did not
//! alter the snapshot.

use super::model::GatewayRecord;
use super::problem::Problem;
use super::request::json_response;
use super::store::{GatewayContact, Store, StoreError, UsageReportSeen};
use http::{Response, StatusCode};
use serde::Serialize;
use sluice_net::body::RespBody;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A gateway last answered longer ago than this (seconds) is stale.
pub const STALE_AFTER_SECS: i64 = 90;

/// A gateway behind a registry revision made longer ago than this (seconds) is stale.
pub const BEHIND_GRACE_SECS: i64 = 10;

/// Why a gateway is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StaleReason {
    /// Never answered a snapshot.
    NeverSeen,
    /// Not answered for more than [`STALE_AFTER_SECS`].
    NotSeen,
    /// Behind a revision made more than [`BEHIND_GRACE_SECS`] ago.
    Behind,
}

/// One entry of `GET /admin/gateways/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayHealth {
    /// The gateway's id, as in its certificate.
    pub id: String,
    /// The agency running it.
    pub agency: String,
    /// Its data listener; `null` when not registered.
    pub url: Option<String>,
    /// Retired: no longer served, never stale.
    pub retired: bool,
    /// When it was last answered on `GET /v1/snapshot` (RFC 3339); `null`: never.
    pub last_seen: Option<String>,
    /// Seconds since `last_seen`; `null`: never seen.
    pub age_s: Option<i64>,
    /// The snapshot revision it was last answered; `null`: never seen.
    pub revision: Option<u64>,
    /// The snapshot revision the registry serves now.
    pub registry_revision: u64,
    /// `registry_revision - revision` (0 when not behind); `null`: never seen.
    pub revisions_behind: Option<u64>,
    /// See the module documentation.
    pub stale: bool,
    /// Why it is stale; `null` when it is not.
    pub stale_reason: Option<StaleReason>,
    /// The usage report from it the registry accepted last; `null`: none.
    pub last_usage_report: Option<UsageReportSeen>,
    /// The serial (hex) of the certificate it last came with; `null`: never seen.
    pub cert_serial: Option<String>,
    /// When that certificate expires (RFC 3339); `null`: never seen.
    pub cert_not_after: Option<String>,
    /// Whole days until then, rounded down (negative once expired); `null`: never seen.
    pub cert_days_left: Option<i64>,
}

fn unix(rfc3339: &str) -> Option<i64> {
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

fn rfc3339(unix: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

/// The health of gateway `g` at `now` (unix seconds), given its last contact, its last usage
/// report, the registry's revision and when that revision was made (unix seconds; `None` when
/// unknown, as for revision 0).
pub fn assess(
    g: &GatewayRecord,
    contact: Option<&GatewayContact>,
    last_usage_report: Option<UsageReportSeen>,
    registry_revision: u64,
    revision_made_at: Option<i64>,
    now: i64,
) -> GatewayHealth {
    let seen = contact.and_then(|c| unix(&c.seen_at));
    let stale_reason = match contact {
        _ if g.retired => None,
        None => Some(StaleReason::NeverSeen),
        Some(_) if seen.is_none_or(|s| now - s > STALE_AFTER_SECS) => Some(StaleReason::NotSeen),
        Some(c)
            if c.revision < registry_revision
                && revision_made_at.is_none_or(|t| now - t > BEHIND_GRACE_SECS) =>
        {
            Some(StaleReason::Behind)
        }
        Some(_) => None,
    };
    GatewayHealth {
        id: g.id.clone(),
        agency: g.agency.clone(),
        url: g.url.clone(),
        retired: g.retired,
        last_seen: contact.map(|c| c.seen_at.clone()),
        age_s: seen.map(|s| (now - s).max(0)),
        revision: contact.map(|c| c.revision),
        registry_revision,
        revisions_behind: contact.map(|c| registry_revision.saturating_sub(c.revision)),
        stale: stale_reason.is_some(),
        stale_reason,
        last_usage_report,
        cert_serial: contact.map(|c| c.cert_serial.clone()),
        cert_not_after: contact.and_then(|c| rfc3339(c.cert_not_after)),
        cert_days_left: contact.map(|c| (c.cert_not_after - now).div_euclid(86_400)),
    }
}

/// Every registered gateway's health by id, against `registry_revision`.
pub async fn read(store: &Store, registry_revision: u64) -> Result<Vec<GatewayHealth>, StoreError> {
    let gateways = store.gateways().await?;
    let contacts = store.gateway_contacts().await?;
    let made_at = store
        .change_made_at(registry_revision)
        .await?
        .and_then(|t| unix(&t));
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut out = Vec::with_capacity(gateways.len());
    for g in &gateways {
        let usage = store.last_usage_report(&g.id).await?;
        out.push(assess(
            g,
            contacts.get(&g.id),
            usage,
            registry_revision,
            made_at,
            now,
        ));
    }
    Ok(out)
}

/// `GET /admin/gateways/health`, against the revision this process serves.
pub async fn get(store: &Store, registry_revision: u64) -> Result<Response<RespBody>, Problem> {
    Ok(json_response(
        StatusCode::OK,
        &read(store, registry_revision).await?,
        None,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::Value;

    const NOW: i64 = 1_800_000_000;

    fn gateway(retired: bool) -> GatewayRecord {
        GatewayRecord {
            id: "gw1".into(),
            agency: "fire".into(),
            retired,
            created_at: "2026-01-01T00:00:00Z".into(),
            url: None,
        }
    }

    fn contact(revision: u64, ago: i64) -> GatewayContact {
        GatewayContact {
            gateway: "gw1".into(),
            revision,
            seen_at: rfc3339(NOW - ago).unwrap(),
            cert_serial: "0a".into(),
            cert_not_after: NOW + 30 * 86_400 + 5,
        }
    }

    fn reason(c: Option<&GatewayContact>, registry: u64, made_ago: Option<i64>) -> Option<StaleReason> {
        assess(&gateway(false), c, None, registry, made_ago.map(|a| NOW - a), NOW).stale_reason
    }

    #[test]
    fn staleness_is_never_seen_not_seen_for_90_s_or_behind_an_old_revision() {
        use StaleReason::*;
        assert_eq!(reason(None, 0, None), Some(NeverSeen));
        assert_eq!(reason(Some(&contact(5, 90)), 5, Some(1000)), None);
        assert_eq!(reason(Some(&contact(5, 91)), 5, Some(1000)), Some(NotSeen));
        // Behind a revision made 10 s ago: still fetching; 11 s: stale.
        assert_eq!(reason(Some(&contact(4, 1)), 5, Some(10)), None);
        assert_eq!(reason(Some(&contact(4, 1)), 5, Some(11)), Some(Behind));
        assert_eq!(reason(Some(&contact(4, 1)), 5, None), Some(Behind));
        // Ahead of this process (another replica answered a newer one): not behind.
        assert_eq!(reason(Some(&contact(6, 1)), 5, Some(1000)), None);
        let mut bad = contact(5, 1);
        bad.seen_at = "yesterday".into();
        assert_eq!(reason(Some(&bad), 5, Some(1000)), Some(NotSeen));
        // Retired: never stale.
        let h = assess(&gateway(true), None, None, 5, None, NOW);
        assert!(h.retired && !h.stale && h.stale_reason.is_none());
    }

    #[test]
    fn an_entry_has_ages_revisions_and_certificate_days() {
        let h = assess(
            &gateway(false),
            Some(&contact(3, 12)),
            None,
            7,
            Some(NOW - 2),
            NOW,
        );
        assert_eq!(
            (h.age_s, h.revision, h.revisions_behind, h.stale),
            (Some(12), Some(3), Some(4), false)
        );
        assert_eq!(h.cert_days_left, Some(30));
        assert_eq!(h.cert_not_after, rfc3339(NOW + 30 * 86_400 + 5));
        let v = serde_json::to_value(&h).unwrap();
        for k in [
            "id",
            "agency",
            "url",
            "retired",
            "last_seen",
            "age_s",
            "revision",
            "registry_revision",
            "revisions_behind",
            "stale",
            "stale_reason",
            "last_usage_report",
            "cert_serial",
            "cert_not_after",
            "cert_days_left",
        ] {
            assert!(v.get(k).is_some(), "{k} in {v}");
        }
        let mut expired = contact(3, 1);
        expired.cert_not_after = NOW - 1;
        let h = assess(&gateway(false), Some(&expired), None, 3, None, NOW);
        assert_eq!(h.cert_days_left, Some(-1));
        let never = assess(&gateway(false), None, None, 3, None, NOW);
        let v = serde_json::to_value(&never).unwrap();
        assert_eq!(
            (&v["last_seen"], &v["revision"], &v["stale_reason"]),
            (&Value::Null, &Value::Null, &serde_json::json!("never-seen"))
        );
    }
}
